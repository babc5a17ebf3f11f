import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PlatformError } from '../../core/errors.js';
import { decodeLoad, decodeRgb, loadSharp, maxConcurrentDecodes, maxImagePixels } from './image-decode.js';

async function solidPng(width: number, height: number): Promise<Buffer> {
  const sharp = await loadSharp();
  return sharp({ create: { width, height, channels: 3, background: '#3366cc' } })
    .png({ compressionLevel: 9 })
    .toBuffer();
}

describe('decodeRgb', () => {
  it('refuses images over 25 megapixels before decoding them', async () => {
    assert.equal(maxImagePixels, 25_000_000);
    // An SVG of 5000 x 5001 pixels: the limit trips on its size alone, nothing is rendered.
    const over = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="5000" height="5001"></svg>');
    await assert.rejects(
      decodeRgb(over, { width: 8, height: 8 }),
      (err: unknown) =>
        err instanceof PlatformError && err.code === 'BAD_REQUEST' && /larger than 25 megapixels/.test(err.message),
    );
    const under = await solidPng(64, 48);
    const decoded = await decodeRgb(under, { width: 8, height: 8 });
    assert.equal(decoded.data.length, 8 * 8 * 3);
  });

  it('runs at most a few decodes at once in the process; the others wait their turn', async () => {
    const png = await solidPng(1200, 900);
    const results = await Promise.all(Array.from({ length: 6 }, () => decodeRgb(png, { width: 16, height: 16 })));
    for (const result of results) assert.equal(result.data.length, 16 * 16 * 3);
    const load = decodeLoad();
    assert.equal(load.peakRunning, maxConcurrentDecodes);
    assert.ok(load.peakWaiting >= 6 - maxConcurrentDecodes, `peak waiting ${load.peakWaiting}`);
    assert.equal(load.running, 0);
    assert.equal(load.waiting, 0);
  });
});

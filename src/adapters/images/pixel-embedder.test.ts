import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { sniffImageType } from '../../core/image-type.js';
import { syntheticImages } from '../../../test/helpers/synthetic-images.js';
import { decodeRgb } from './image-decode.js';
import { PixelEmbedder } from './pixel-embedder.js';

const distance = (a: Float32Array, b: Float32Array): number => {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return 1 - dot;
};

describe('PixelEmbedder', () => {
  it('embeds images to unit vectors, near-duplicates nearly equal, and reports bad files one by one', async () => {
    const set = await syntheticImages();
    const embedder = new PixelEmbedder();
    const results = await embedder.embed(set.map((image) => image.bytes));
    assert.equal(results.length, set.length);
    const vectors = new Map<string, Float32Array>();
    for (const [i, image] of set.entries()) {
      const result = results[i]!;
      if (image.kind === 'corrupt' || image.kind === 'not-image') {
        assert.ok('error' in result, `${image.name} should fail`);
        continue;
      }
      assert.ok('vector' in result, `${image.name}: ${'error' in result ? result.error : ''}`);
      assert.equal(result.vector.length, embedder.dimensions);
      assert.ok(Math.abs(distance(result.vector, result.vector)) < 1e-5, 'unit length');
      vectors.set(image.name, result.vector);
    }
    assert.match((results[set.findIndex((i) => i.name === 'readme.txt')] as { error: string }).error, /not an image/);
    for (const image of set.filter((i) => i.kind === 'duplicate')) {
      assert.ok(distance(vectors.get(image.name)!, vectors.get(image.duplicateOf!)!) < 0.02, image.name);
    }
    // Different pictures of one cluster are not near-duplicates of each other.
    const bases = set.filter((i) => i.kind === 'base');
    for (const a of bases) {
      for (const b of bases) {
        if (a.name < b.name && a.cluster === b.cluster) {
          assert.ok(distance(vectors.get(a.name)!, vectors.get(b.name)!) > 0.05, `${a.name} ${b.name}`);
        }
      }
    }
    // The same bytes give the same vector.
    const again = await embedder.embed([set[0]!.bytes]);
    assert.deepEqual(again[0], results[0]);
    await embedder.close();
    await assert.rejects(embedder.embed([set[0]!.bytes]), /closed/);
  });

  it('refuses images over 25 megapixels before decoding them', async () => {
    // An SVG of 6000 x 5000 pixels: the limit trips on its size alone, nothing is rendered.
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="6000" height="5000"></svg>');
    const [result] = await new PixelEmbedder().embed([svg]);
    assert.deepEqual(result, { error: 'image is larger than 25 megapixels' });
  });
});

describe('image helpers', () => {
  it('decodes to RGB at the asked size and sniffs formats from magic bytes', async () => {
    const set = await syntheticImages({ clusters: 1, perCluster: 3, duplicates: 0, outliers: 0, broken: false });
    const png = set.find((i) => i.name.endsWith('.png'))!;
    const jpeg = set.find((i) => i.name.endsWith('.jpg'))!;
    const image = await decodeRgb(png.bytes, { width: 7, height: 5, fit: 'cover' });
    assert.deepEqual([image.width, image.height, image.data.length], [7, 5, 7 * 5 * 3]);
    assert.deepEqual(sniffImageType(png.bytes), { contentType: 'image/png', extension: '.png' });
    assert.deepEqual(sniffImageType(jpeg.bytes), { contentType: 'image/jpeg', extension: '.jpg' });
    assert.equal(sniffImageType(Buffer.from('GIF89a....'))?.contentType, 'image/gif');
    assert.equal(sniffImageType(Buffer.from('RIFF\0\0\0\0WEBPVP8 '))?.contentType, 'image/webp');
    assert.equal(sniffImageType(Buffer.from('\0\0\0\x1cftypavif'))?.contentType, 'image/avif');
    assert.equal(sniffImageType(Buffer.from('hello')), null);
    await assert.rejects(decodeRgb(Buffer.from('hello'), { width: 4, height: 4 }), /BAD_REQUEST.*not an image/);
  });
});

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import sharp from 'sharp';
import { PlatformError } from '../../core/errors.js';
import { createOnnxEmbedder } from './onnx-embedder.js';
import type { OnnxEmbedder } from './onnx-embedder.js';

const modelPath = resolve(import.meta.dirname, '../../../../shared/models/mobilenetv2-12-int8.onnx');
const skip = existsSync(modelPath) ? false : `no test model at ${modelPath}`;

/** A 256x256 PNG drawn from SVG. */
function png(body: string): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256">${body}</svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

function cosine(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += (a[i] as number) * (b[i] as number);
  return dot;
}

function vectorOf(result: { vector: Float32Array } | { error: string } | undefined): Float32Array {
  assert.ok(result !== undefined && 'vector' in result, JSON.stringify(result));
  return result.vector;
}

describe('OnnxEmbedder (mobilenetv2-12-int8)', { skip }, () => {
  let embedder: OnnxEmbedder;
  before(async () => {
    embedder = await createOnnxEmbedder({ modelPath, outputTensor: '464', threads: 1, batch: 4 });
  });
  after(() => embedder.close());

  it('gives 1280-d unit vectors of the pooled features', async () => {
    assert.equal(embedder.dimensions, 1280);
    assert.equal(embedder.id, 'onnx:mobilenetv2-12-int8.onnx#464');
    const [result] = await embedder.embed([await png('<rect width="256" height="256" fill="#3a7"/>')]);
    const vector = vectorOf(result);
    assert.equal(vector.length, 1280);
    assert.ok(Math.abs(cosine(vector, vector) - 1) < 1e-5);
  });

  it('puts similar images closer than unlike ones, in batches and alone alike', async () => {
    const background = '<rect width="256" height="256" fill="white"/>';
    const images = await Promise.all([
      png(`${background}<circle cx="128" cy="128" r="70" fill="red"/>`),
      png(`${background}<circle cx="120" cy="134" r="64" fill="#e01010"/>`),
      png(
        Array.from({ length: 16 }, (_, i) => `<rect x="${i * 16}" width="8" height="256" fill="blue"/>`).join('') +
          '<rect y="100" width="256" height="20" fill="yellow"/>',
      ),
      png(`${background}<circle cx="128" cy="128" r="70" fill="red"/>`),
      png('<rect width="256" height="256" fill="#222"/>'),
    ]);
    const vectors = (await embedder.embed(images)).map(vectorOf);
    const [circle, similar, stripes, again] = vectors as [Float32Array, Float32Array, Float32Array, Float32Array];
    assert.ok(
      cosine(circle, similar) > cosine(circle, stripes) + 0.1,
      `${cosine(circle, similar)} vs ${cosine(circle, stripes)}`,
    );
    // Batched (5 images, batch 4) and alone give the same vector.
    const alone = vectorOf((await embedder.embed([images[0]]))[0]);
    assert.ok(cosine(alone, circle) > 0.9999);
    assert.ok(cosine(again, circle) > 0.9999);
  });

  it('a corrupt or non-image file gets its own error and the others are embedded', async () => {
    const good = await png('<circle cx="128" cy="128" r="70" fill="green"/>');
    const truncated = good.subarray(0, good.length / 2);
    const results = await embedder.embed([Buffer.from('not an image at all'), good, truncated]);
    assert.equal(results.length, 3);
    assert.ok('error' in (results[0] ?? {}), JSON.stringify(results[0]));
    assert.match((results[0] as { error: string }).error, /not an image/);
    assert.equal(vectorOf(results[1]).length, 1280);
    assert.ok('error' in (results[2] ?? {}), 'a truncated PNG is an error');
    assert.deepEqual(await embedder.embed([]), []);
  });

  it('the model output is used when no tensor is named; unknown tensors and bad options are BAD_REQUEST', async () => {
    const scores = await createOnnxEmbedder({ modelPath, threads: 1 });
    try {
      assert.equal(scores.dimensions, 1000);
      assert.equal(scores.id, 'onnx:mobilenetv2-12-int8.onnx');
    } finally {
      await scores.close();
    }
    const badRequest = (err: unknown): boolean => err instanceof PlatformError && err.code === 'BAD_REQUEST';
    await assert.rejects(createOnnxEmbedder({ modelPath, outputTensor: 'no-such-tensor' }), badRequest);
    await assert.rejects(createOnnxEmbedder({ modelPath, inputSize: 256 }), badRequest);
    await assert.rejects(createOnnxEmbedder({ modelPath: `${modelPath}.missing` }), badRequest);
    await assert.rejects(createOnnxEmbedder({ modelPath, batch: 0 }), badRequest);
  });
});

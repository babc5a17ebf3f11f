// The CPU trainer example (`examples/fine-tune-trainer`): a logistic-regression probe on embeddings, run as the
// function's module is (its handler and its exported `train`).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';

interface Item {
  imageId: string;
  label: 0 | 1;
  embedding: number[];
}
interface Trained {
  model: { weights: number[]; bias: number; dimensions: number };
  metrics: {
    trainAccuracy: number;
    loss: number;
    examples: number;
    heldOutAccuracy: number | null;
    heldOutExamples: number;
    learningRate: number;
    steps: number;
    warnings: string[];
  };
  heldOut: string[];
}
const trainer = createRequire(import.meta.url)('../../examples/fine-tune-trainer/index.js') as {
  train(event: unknown): Trained;
  handler(event: unknown): Promise<Trained>;
};

/** A deterministic generator (mulberry32), so the data is the same every run. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Two clusters of unit vectors around two directions, `n` of each, with noise. */
function separable(n: number, dimensions: number, noise: number, seed = 7): Item[] {
  const next = random(seed);
  const items: Item[] = [];
  for (let i = 0; i < 2 * n; i += 1) {
    const label = (i % 2) as 0 | 1;
    const v = Array.from({ length: dimensions }, (_, d) => (d % 2 === label ? 1 : 0) + noise * (next() * 2 - 1));
    const norm = Math.hypot(...v);
    items.push({ imageId: `img-${i}`, label, embedding: v.map((x) => x / norm) });
  }
  return items;
}

describe('fine-tune-trainer', () => {
  it('learns separable data to full accuracy on the training and held-out examples', async () => {
    const items = separable(20, 16, 0.4);
    const result = await trainer.handler({
      plan: { hyperparameters: { learning_rate: 1e-4, train_steps: 300, batch_size: 1 } },
      curatedDatasetUri: 's3://savassan/curated/ds-x/',
      trainingSet: { dimensions: 16, items },
    });
    assert.equal(result.model.dimensions, 16);
    assert.equal(result.model.weights.length, 16);
    assert.equal(result.metrics.trainAccuracy, 1);
    assert.equal(result.metrics.heldOutAccuracy, 1);
    // Every 5th of each label: 4 of 20 positives and 4 of 20 negatives.
    assert.equal(result.metrics.heldOutExamples, 8);
    assert.equal(result.heldOut.length, 8);
    assert.equal(result.metrics.examples, 32);
    assert.equal(result.metrics.learningRate, 1);
    assert.equal(result.metrics.steps, 300);
    assert.ok(result.metrics.loss < 0.2, `loss ${result.metrics.loss}`);
    // The weights apply to the raw embeddings: score the held-out ones by hand.
    for (const item of items.filter((i) => result.heldOut.includes(i.imageId))) {
      const z = item.embedding.reduce((sum, x, d) => sum + x * result.model.weights[d]!, result.model.bias);
      assert.equal(z >= 0 ? 1 : 0, item.label, item.imageId);
    }
  });

  it('scales the plan to the probe and holds nothing out of a small set', () => {
    const result = trainer.train({
      plan: { hyperparameters: { learning_rate: 1e-6, train_steps: 50000 } },
      trainingSet: { dimensions: 4, items: separable(3, 4, 0.1) },
    });
    assert.equal(result.metrics.learningRate, 0.01);
    assert.equal(result.metrics.steps, 2000);
    assert.equal(result.metrics.heldOutAccuracy, null);
    assert.deepEqual(result.heldOut, []);
    assert.equal(result.metrics.trainAccuracy, 1);
  });

  it('trains one label with a warning, and refuses a malformed set', () => {
    const one = separable(3, 4, 0.1).filter((item) => item.label === 1);
    const result = trainer.train({ trainingSet: { dimensions: 4, items: one } });
    assert.equal(result.metrics.trainAccuracy, 1);
    assert.match(result.metrics.warnings[0]!, /one label only/);
    assert.throws(() => trainer.train({ trainingSet: { dimensions: 4, items: [] } }), /training set is empty/);
    assert.throws(
      () => trainer.train({ trainingSet: { dimensions: 4, items: [{ imageId: 'a', label: 1, embedding: [1] }] } }),
      /item 0: embedding must have 4 numbers/,
    );
    assert.throws(() => trainer.train({}), /trainingSet/);
  });
});

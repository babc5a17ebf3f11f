import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';

import { PixelEmbedder } from '../../adapters/images/pixel-embedder.js';
import { syntheticImages, type SyntheticImage } from '../../../test/helpers/synthetic-images.js';
import { clusterCount, kMeans, removeNearDuplicates, sampleForFeedback, type SampleItem } from './sampling.js';
import { refine } from './refine.js';

let images: SyntheticImage[] = [];
let items: SampleItem[] = [];

before(async () => {
  images = (await syntheticImages({ perCluster: 9, outliers: 1 })).filter(
    (i) => i.kind !== 'corrupt' && i.kind !== 'not-image',
  );
  const results = await new PixelEmbedder().embed(images.map((i) => i.bytes));
  items = images.map((image, i) => {
    const result = results[i]!;
    assert.ok('vector' in result);
    return { id: `id-${image.name}`, name: image.name, vector: result.vector };
  });
});

const imageOf = (id: string): SyntheticImage => images.find((i) => `id-${i.name}` === id)!;

describe('sampling', () => {
  it('removes near-duplicates (re-encoded, shifted by a pixel), keeping the first by name', async () => {
    const { kept, duplicates } = await removeNearDuplicates([...items].reverse());
    assert.deepEqual(
      duplicates.map((d) => [d.name, d.of]).sort(),
      images
        .filter((i) => i.kind === 'duplicate')
        .map((i) => [i.name, `id-${i.duplicateOf}`])
        .sort(),
    );
    assert.equal(kept.length, items.length - duplicates.length);
    assert.deepEqual(
      kept.map((k) => k.name),
      kept.map((k) => k.name).sort(),
    );
  });

  it('k is round(sqrt(n/2)) within 1..12', () => {
    assert.deepEqual([0, 1, 2, 8, 18, 50, 288, 10_000].map(clusterCount), [1, 1, 1, 2, 3, 5, 12, 12]);
  });

  it('finds the clusters, offers every cluster, outliers and uncertain images, at most 24, deterministically', async () => {
    const sample = await sampleForFeedback(items);
    const k = sample.clustering.centroids.length;
    assert.equal(k, clusterCount(items.length - sample.duplicates.length));
    // Each synthetic cluster lands whole in one k-means cluster.
    for (let cluster = 0; cluster < 4; cluster++) {
      const found = new Set(
        sample.kept.filter((i) => imageOf(i.id).cluster === cluster).map((i) => sample.clusterOf.get(i.id)),
      );
      assert.equal(found.size, 1, `synthetic cluster ${cluster} split over ${[...found].join(', ')}`);
    }
    const reasons = sample.feedback.map((f) => f.reason);
    assert.deepEqual(
      new Set(sample.feedback.filter((f) => f.reason === 'cluster').map((f) => f.cluster)),
      new Set(Array.from({ length: k }, (_, c) => c)),
    );
    assert.ok(reasons.includes('outlier') && reasons.includes('uncertain'), reasons.join());
    // The noise image is the most outlying.
    assert.equal(imageOf(sample.feedback.find((f) => f.reason === 'outlier')!.imageId).kind, 'outlier');
    assert.equal(new Set(sample.feedback.map((f) => f.imageId)).size, sample.feedback.length);
    for (const f of sample.feedback) assert.equal(sample.clusterOf.get(f.imageId), f.cluster);
    assert.deepEqual(await sampleForFeedback(items), sample);
    assert.deepEqual((await sampleForFeedback([...items].reverse())).feedback, sample.feedback);
  });

  it('caps the sample and still represents every cluster', async () => {
    const many: SampleItem[] = [];
    for (let i = 0; i < 400; i++) {
      const vector = new Float32Array(16);
      vector[i % 12] = 1;
      vector[12 + (i % 4)] = 0.2 + (i % 7) * 0.05;
      const length = Math.hypot(...vector);
      many.push({ id: `v${i}`, name: `v${String(i).padStart(3, '0')}`, vector: vector.map((x) => x / length) });
    }
    const sample = await sampleForFeedback(many, { duplicateDistance: 0 });
    assert.equal(sample.clustering.centroids.length, 12);
    assert.equal(sample.feedback.length, 24);
    assert.equal(new Set(sample.feedback.filter((f) => f.reason === 'cluster').map((f) => f.cluster)).size, 12);
  });

  it('handles one image and none', async () => {
    assert.deepEqual((await sampleForFeedback([])).feedback, []);
    const one = await sampleForFeedback(items.slice(0, 1));
    assert.deepEqual(one.feedback, [{ imageId: items[0]!.id, reason: 'cluster', cluster: 0 }]);
    assert.deepEqual(await kMeans([], 3, 1), { assignments: [], centroids: [] });
  });
});

describe('refinement', () => {
  it('accepted pull near neighbours in, rejected push theirs out, the nearer verdict wins, the rest are kept', async () => {
    const { kept } = await removeNearDuplicates(items);
    const c0 = kept.filter((i) => imageOf(i.id).cluster === 0);
    const c1 = kept.filter((i) => imageOf(i.id).cluster === 1);
    const labels = refine(
      kept,
      new Map([
        [c0[0]!.id, true],
        [c1[0]!.id, false],
      ]),
      { neighbours: 3, radius: 0.5 },
    );
    assert.equal(labels.get(c0[0]!.id), 'accepted');
    assert.equal(labels.get(c1[0]!.id), 'rejected');
    const pulled = kept.filter((i) => labels.get(i.id) === 'neighbour-accepted');
    const pushed = kept.filter((i) => labels.get(i.id) === 'neighbour-rejected');
    assert.equal(pulled.length, 3);
    assert.equal(pushed.length, 3);
    assert.ok(pulled.every((i) => imageOf(i.id).cluster === 0));
    assert.ok(pushed.every((i) => imageOf(i.id).cluster === 1));
    assert.ok(kept.filter((i) => imageOf(i.id).cluster === 2).every((i) => labels.get(i.id) === 'kept'));
    // Nothing within the radius: nothing is reached.
    const far = refine(kept, new Map([[c0[0]!.id, true]]), { radius: 0.001 });
    assert.deepEqual(
      [...far.values()].filter((l) => l !== 'kept'),
      ['accepted'],
    );
  });

  it('gives an image reached by both verdicts to the nearer one', () => {
    const v = (...x: number[]): Float32Array => {
      const length = Math.hypot(...x);
      return Float32Array.from(x.map((value) => value / length));
    };
    const line: SampleItem[] = [
      { id: 'a', name: 'a', vector: v(1, 0) },
      { id: 'm', name: 'm', vector: v(1, 0.3) },
      { id: 'r', name: 'r', vector: v(1, 0.7) },
      { id: 't', name: 't', vector: v(1, 0.35) },
    ];
    const labels = refine(
      line,
      new Map([
        ['a', true],
        ['r', false],
      ]),
    );
    assert.equal(labels.get('m'), 'neighbour-accepted');
    assert.equal(labels.get('t'), 'neighbour-rejected');
  });
});

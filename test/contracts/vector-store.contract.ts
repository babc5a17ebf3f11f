import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PlatformError } from '../../src/core/errors.js';
import type { StoredVector, VectorStore } from '../../src/core/ports/vector-store.js';
import { seededRandom } from '../../src/core/seeded-random.js';

/** A fresh, empty store of `dimensions`; `reopen` opens another over the same data where the data outlives it. */
export type VectorStoreFixture = (dimensions: number) => Promise<{
  store: VectorStore;
  reopen?: () => Promise<VectorStore>;
  cleanup: () => Promise<void>;
}>;

/** Every `VectorStore` adapter answers these the same way; the exact memory store is the oracle for the others. */
export function vectorStoreContract(name: string, fixture: VectorStoreFixture): void {
  const using = async (
    dimensions: number,
    body: (store: VectorStore, reopen: (() => Promise<VectorStore>) | undefined) => Promise<void>,
  ): Promise<void> => {
    const { store, reopen, cleanup } = await fixture(dimensions);
    const opened: VectorStore[] = [store];
    try {
      await body(
        store,
        reopen &&
          (async () => {
            const again = await reopen();
            opened.push(again);
            return again;
          }),
      );
    } finally {
      for (const each of opened) await each.close();
      await cleanup();
    }
  };

  describe(`VectorStore contract: ${name}`, () => {
    it('stores vectors by collection and id, lists them by id and counts them', () =>
      using(3, async (store) => {
        assert.equal(store.dimensions, 3);
        assert.equal(await store.count('c1'), 0);
        assert.deepEqual(await store.list('c1'), []);
        await store.upsert('c1', [
          stored('b', [0, 1, 0]),
          stored('a', [1, 0, 0]),
          stored('c', [0.1234567, -0.000012345, 3.5e-20]),
        ]);
        assert.equal(await store.count('c1'), 3);
        const listed = await store.list('c1');
        assert.deepEqual(
          listed.map((v) => [v.id, v.uri]),
          [
            ['a', 's3://savassan/a.png'],
            ['b', 's3://savassan/b.png'],
            ['c', 's3://savassan/c.png'],
          ],
        );
        // Float32 values come back exactly.
        assert.deepEqual(listed[2]?.vector, Float32Array.from([0.1234567, -0.000012345, 3.5e-20]));
        assert.ok(listed[0]?.vector instanceof Float32Array);
        await store.upsert('c1', []);
        assert.equal(await store.count('c1'), 3);
      }));

    it('upsert replaces the vector and uri of an id; the last of one id in a batch wins', () =>
      using(2, async (store) => {
        await store.upsert('c', [stored('x', [1, 0]), stored('y', [0, 1])]);
        await store.upsert('c', [{ id: 'x', uri: 's3://savassan/moved.png', vector: Float32Array.from([0, 1]) }]);
        await store.upsert('c', [stored('y', [1, 1]), stored('y', [-1, 0])]);
        assert.equal(await store.count('c'), 2);
        const listed = await store.list('c');
        assert.deepEqual(
          listed.map((v) => [v.id, v.uri, [...v.vector]]),
          [
            ['x', 's3://savassan/moved.png', [0, 1]],
            ['y', 's3://savassan/y.png', [-1, 0]],
          ],
        );
        const nearest = await store.search('c', Float32Array.from([0, 1]), 1);
        assert.deepEqual(
          nearest.map((m) => m.id),
          ['x'],
        );
      }));

    it('ids, uris and collections are any text', () =>
      using(2, async (store) => {
        const odd = 'we"ird, {id} \\ ünïcode';
        await store.upsert(odd, [{ id: odd, uri: `s3://savassan/${odd}`, vector: Float32Array.from([1, 2]) }]);
        assert.deepEqual(
          (await store.list(odd)).map((v) => [v.id, v.uri]),
          [[odd, `s3://savassan/${odd}`]],
        );
        assert.equal((await store.search(odd, Float32Array.from([1, 2]), 1))[0]?.id, odd);
      }));

    it('a vector of the wrong length is a BAD_REQUEST and the batch stores nothing', () =>
      using(4, async (store) => {
        await assert.rejects(
          store.upsert('c', [stored('ok', [1, 0, 0, 0]), stored('short', [1, 0, 0])]),
          (err: unknown) => err instanceof PlatformError && err.code === 'BAD_REQUEST' && /4/.test(err.message),
        );
        assert.equal(await store.count('c'), 0);
        await store.upsert('c', [stored('ok', [1, 0, 0, 0])]);
        await assert.rejects(
          store.search('c', Float32Array.from([1, 0, 0, 0, 0]), 3),
          (err: unknown) => err instanceof PlatformError && err.code === 'BAD_REQUEST',
        );
        assert.equal(await store.count('c'), 1);
      }));

    it('search answers nearest first by cosine distance, ties by id, at most k (k ≥ 1)', () =>
      using(2, async (store) => {
        await store.upsert('c', [
          stored('far', [-1, 0]),
          stored('right', [1, 0]),
          stored('up2', [0, 2]),
          stored('up1', [0, 1]),
          stored('diagonal', [1, 1]),
        ]);
        const matches = await store.search('c', Float32Array.from([1, 0]), 10);
        assert.deepEqual(
          matches.map((m) => m.id),
          ['right', 'diagonal', 'up1', 'up2', 'far'],
        );
        const distances = matches.map((m) => m.distance);
        for (const [actual, expected] of distances.map((d, i) => [d, [0, 1 - Math.SQRT1_2, 1, 1, 2][i]])) {
          assert.ok(Math.abs((actual as number) - (expected as number)) < 1e-5, `${actual} ≈ ${expected}`);
        }
        assert.equal(matches[0]?.uri, 's3://savassan/right.png');
        assert.deepEqual(
          (await store.search('c', Float32Array.from([1, 0]), 2)).map((m) => m.id),
          ['right', 'diagonal'],
        );
        await assert.rejects(
          store.search('c', Float32Array.from([1, 0]), 0),
          (err: unknown) => err instanceof PlatformError && err.code === 'BAD_REQUEST',
        );
        assert.deepEqual(await store.search('elsewhere', Float32Array.from([1, 0]), 5), []);
      }));

    it('collections are isolated, and deleting one leaves the others', () =>
      using(2, async (store) => {
        await store.upsert('one', [stored('a', [1, 0]), stored('shared-id', [0, 1])]);
        await store.upsert('two', [stored('shared-id', [1, 0.1]), stored('b', [0, -1])]);
        assert.deepEqual(
          (await store.search('one', Float32Array.from([1, 0.1]), 10)).map((m) => m.id),
          ['a', 'shared-id'],
        );
        assert.deepEqual(
          (await store.list('two')).map((v) => [v.id, [...v.vector].map((x) => Math.round(x * 10) / 10)]),
          [
            ['b', [0, -1]],
            ['shared-id', [1, 0.1]],
          ],
        );
        await store.deleteCollection('one');
        assert.equal(await store.count('one'), 0);
        assert.deepEqual(await store.search('one', Float32Array.from([1, 0]), 5), []);
        assert.equal(await store.count('two'), 2);
        await store.deleteCollection('never-there');
      }));

    it('top-k agrees with brute force on 2,000 random unit vectors (recall@10 at least 0.9)', () =>
      using(64, async (store) => {
        const random = seededRandom(7);
        const vectors = Array.from({ length: 2000 }, (_, i) => ({
          id: `img-${String(i).padStart(4, '0')}`,
          uri: `s3://savassan/${i}.png`,
          vector: randomUnit(64, random),
        }));
        await store.upsert('big', vectors);
        // A small collection beside the big one still gets min(k, its size) matches.
        await store.upsert('small', vectors.slice(0, 3));
        assert.equal(await store.count('big'), 2000);
        let found = 0;
        const queries = 20;
        for (let q = 0; q < queries; q++) {
          const query = randomUnit(64, random);
          const exact = bruteForce(vectors, query, 10);
          const matches = await store.search('big', query, 10);
          assert.equal(matches.length, 10);
          for (let i = 1; i < matches.length; i++) {
            assert.ok((matches[i - 1]?.distance ?? 0) <= (matches[i]?.distance ?? 0), 'nearest first');
          }
          const expected = new Set(exact.map((m) => m.id));
          found += matches.filter((m) => expected.has(m.id)).length;
          // Every distance reported is the true cosine distance of that vector.
          for (const match of matches) {
            const vector = vectors[Number(match.id.slice(4))]?.vector as Float32Array;
            assert.ok(Math.abs(match.distance - cosineDistance(vector, query)) < 1e-5);
          }
        }
        const recall = found / (queries * 10);
        assert.ok(recall >= 0.9, `recall@10 ${recall}`);
        const small = await store.search('small', randomUnit(64, random), 10);
        assert.deepEqual(small.map((m) => m.id).sort(), ['img-0000', 'img-0001', 'img-0002']);
      }));

    it('keeps what it stored across a reopen, where the data outlives the store', () =>
      using(2, async (store, reopen) => {
        if (reopen === undefined) return;
        await store.upsert('c', [stored('kept', [0.5, 0.25])]);
        await store.close();
        const again = await reopen();
        assert.deepEqual(
          (await again.list('c')).map((v) => [v.id, [...v.vector]]),
          [['kept', [0.5, 0.25]]],
        );
        assert.equal((await again.search('c', Float32Array.from([1, 0.5]), 1))[0]?.id, 'kept');
      }));

    it('close is idempotent and later calls fail', () =>
      using(2, async (store) => {
        await store.upsert('c', [stored('a', [1, 0])]);
        await store.close();
        await store.close();
        await assert.rejects(store.count('c'), (err: unknown) => err instanceof PlatformError);
      }));
  });
}

function stored(id: string, vector: number[]): StoredVector {
  return { id, uri: `s3://savassan/${id}.png`, vector: Float32Array.from(vector) };
}

/** A random direction (normal entries by Box-Muller), L2-normalised. */
export function randomUnit(dimensions: number, random: () => number): Float32Array {
  const vector = new Float32Array(dimensions);
  let norm = 0;
  for (let i = 0; i < dimensions; i++) {
    const value = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
    vector[i] = value;
    norm += value * value;
  }
  const scale = 1 / Math.sqrt(norm);
  for (let i = 0; i < dimensions; i++) vector[i] = (vector[i] as number) * scale;
  return vector;
}

function cosineDistance(a: Float32Array, b: Float32Array): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += (a[i] as number) * (b[i] as number);
    na += (a[i] as number) ** 2;
    nb += (b[i] as number) ** 2;
  }
  return 1 - dot / Math.sqrt(na * nb);
}

function bruteForce(vectors: readonly StoredVector[], query: Float32Array, k: number): { id: string }[] {
  return vectors
    .map((v) => ({ id: v.id, distance: cosineDistance(v.vector, query) }))
    .sort((a, b) => a.distance - b.distance)
    .slice(0, k);
}

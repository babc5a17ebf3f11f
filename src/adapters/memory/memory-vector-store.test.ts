import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { PlatformError } from '../../core/errors.js';
import { MemoryVectorStore } from './memory-vector-store.js';

// Behaviour shared by every adapter belongs in the vector store contract suite; this covers the oracle's basics.

const v = (...values: number[]): Float32Array => Float32Array.from(values);

describe('MemoryVectorStore', () => {
  it('finds the nearest by cosine distance, ties by id, per collection', async () => {
    const store = new MemoryVectorStore(2);
    await store.upsert('a', [
      { id: 'x', uri: 's3://b/x', vector: v(1, 0) },
      { id: 'w', uri: 's3://b/w', vector: v(2, 0) },
      { id: 'y', uri: 's3://b/y', vector: v(0, 1) },
      { id: 'z', uri: 's3://b/z', vector: v(-1, 0) },
    ]);
    await store.upsert('b', [{ id: 'q', uri: 's3://b/q', vector: v(1, 0) }]);
    const matches = await store.search('a', v(1, 0), 3);
    assert.deepEqual(
      matches.map((m) => [m.id, Math.round(m.distance * 1e6) / 1e6]),
      [
        ['w', 0],
        ['x', 0],
        ['y', 1],
      ],
    );
    assert.equal(await store.count('a'), 4);
    assert.deepEqual(
      (await store.list('a')).map((item) => item.id),
      ['w', 'x', 'y', 'z'],
    );
    await store.deleteCollection('a');
    assert.equal(await store.count('a'), 0);
    assert.equal(await store.count('b'), 1);
  });

  it('replaces by id, copies vectors, refuses the wrong length without storing any', async () => {
    const store = new MemoryVectorStore(2);
    const vector = v(1, 0);
    await store.upsert('a', [{ id: 'x', uri: 'u1', vector }]);
    vector[0] = 0;
    await store.upsert('a', [{ id: 'x', uri: 'u2', vector: v(0, 1) }]);
    assert.deepEqual(await store.list('a'), [{ id: 'x', uri: 'u2', vector: v(0, 1) }]);
    await assert.rejects(
      store.upsert('a', [
        { id: 'y', uri: 'u', vector: v(1, 1) },
        { id: 'z', uri: 'u', vector: v(1, 1, 1) },
      ]),
      (err: unknown) => err instanceof PlatformError && err.code === 'BAD_REQUEST',
    );
    assert.equal(await store.count('a'), 1);
    await store.close();
    await assert.rejects(
      store.count('a'),
      (err: unknown) => err instanceof PlatformError && err.code === 'UNAVAILABLE',
    );
  });
});

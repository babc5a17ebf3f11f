import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PlatformError } from '../../src/core/errors.js';
import { createPgliteVectorStore, pgliteVectorStoreOn } from '../../src/adapters/pglite/pglite-vector-store.js';
import { randomUnit, vectorStoreContract } from './vector-store.contract.js';
import { seededRandom } from '../../src/core/seeded-random.js';
import { dropVectorTables } from './vector-store-fixtures.js';

// One in-memory PGlite for the file (opening one is the slow part); each test's store starts from no tables.
let shared: Promise<PGlite> | undefined;
const database = (): Promise<PGlite> => (shared ??= PGlite.create({ extensions: { vector } }));
after(async () => (await shared)?.close());

vectorStoreContract('PGlite', async (dimensions) => {
  const db = await database();
  await dropVectorTables((text) => db.query(text).then((result) => result.rows as Record<string, unknown>[]));
  return {
    store: pgliteVectorStoreOn(db, { dimensions }),
    reopen: () => Promise.resolve(pgliteVectorStoreOn(db, { dimensions })),
    cleanup: () => Promise.resolve(),
  };
});

it('the PGlite store opens its database in <dataDir>/vectors on first use and keeps it across a reopen', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'sv-vectors-'));
  try {
    const store = createPgliteVectorStore({ dataDir, dimensions: 3 });
    assert.deepEqual(await readdir(dataDir), [], 'nothing opened before first use');
    await store.upsert('cur-1', [{ id: 'img-1', uri: 's3://savassan/a.png', vector: Float32Array.from([1, 2, 3]) }]);
    await store.close();
    assert.deepEqual(await readdir(dataDir), ['vectors']);
    const again = createPgliteVectorStore({ dataDir, dimensions: 3 });
    try {
      assert.deepEqual(
        (await again.list('cur-1')).map((v) => [v.id, v.uri, [...v.vector]]),
        [['img-1', 's3://savassan/a.png', [1, 2, 3]]],
      );
    } finally {
      await again.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
});

it('the pgvector store refuses non-finite and all-zero vectors (pgvector has no cosine distance for them)', async () => {
  const store = pgliteVectorStoreOn(await database(), { dimensions: 2 });
  try {
    for (const vector of [
      [Number.NaN, 1],
      [Infinity, 0],
      [0, 0],
    ]) {
      await assert.rejects(
        store.upsert('non-finite', [{ id: 'x', uri: 's3://savassan/x.png', vector: Float32Array.from(vector) }]),
        (err: unknown) => err instanceof PlatformError && err.code === 'BAD_REQUEST',
      );
      await assert.rejects(
        store.search('non-finite', Float32Array.from(vector), 1),
        (err: unknown) => err instanceof PlatformError && err.code === 'BAD_REQUEST',
      );
    }
    assert.equal(await store.count('non-finite'), 0);
  } finally {
    await store.close();
  }
});

it('the pgvector store searches a large collection through the HNSW index and a small one exactly', async () => {
  const db = await database();
  await dropVectorTables((text) => db.query(text).then((result) => result.rows as Record<string, unknown>[]));
  const store = pgliteVectorStoreOn(db, { dimensions: 16 });
  try {
    const random = seededRandom(3);
    const vectors = (count: number) =>
      Array.from({ length: count }, (_, i) => ({
        id: `img-${i}`,
        uri: `s3://savassan/${i}.png`,
        vector: randomUnit(16, random),
      }));
    await store.upsert('large', vectors(2000));
    await store.upsert('small', vectors(20));
    const plan = async (collection: string): Promise<string> => {
      const rows = await db.query<{ 'QUERY PLAN': string }>(
        `explain select id from image_embeddings_16 where project_id = $1 order by embedding <=> $2::vector limit 10`,
        [collection, `[${[...randomUnit(16, random)].join(',')}]`],
      );
      return rows.rows.map((row) => row['QUERY PLAN']).join('\n');
    };
    assert.match(await plan('large'), /Index Scan using image_embeddings_16_hnsw/);
    assert.doesNotMatch(await plan('small'), /hnsw/);
  } finally {
    await store.close();
  }
});

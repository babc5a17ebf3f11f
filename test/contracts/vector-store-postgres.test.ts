import assert from 'node:assert/strict';
import { after, it } from 'node:test';
import { PGlite } from '@electric-sql/pglite';
import { vector } from '@electric-sql/pglite-pgvector';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import { openPostgresVectorStore } from '../../src/adapters/postgres/pgvector-vector-store.js';
import { PlatformError } from '../../src/core/errors.js';
import { startPostgresServer } from '../kit/postgres-server.js';
import { sharedServer } from '../kit/sql-server-common.js';
import { vectorStoreContract } from './vector-store.contract.js';
import { dropVectorTables } from './vector-store-fixtures.js';

// The PostgreSQL adapter over the wire protocol, to a PGlite with pgvector served on a loopback port (one for the
// file; each test starts from no tables). That server runs one query at a time for all its connections, so a
// transaction must not share it: the store's pool keeps one connection.
let shared: Promise<{ db: PGlite; server: PGLiteSocketServer }> | undefined;
const wireServer = (): Promise<{ db: PGlite; server: PGLiteSocketServer }> =>
  (shared ??= (async () => {
    const db = await PGlite.create({ extensions: { vector } });
    const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 });
    await server.start();
    return { db, server };
  })());
after(async () => {
  const started = await shared;
  await started?.server.stop();
  await started?.db.close();
});

vectorStoreContract('PostgreSQL protocol (PGlite server)', async (dimensions) => {
  const { db, server } = await wireServer();
  await dropVectorTables((text) => db.query(text).then((result) => result.rows as Record<string, unknown>[]));
  const url = `postgres://postgres@${server.getServerConn()}/postgres`;
  const open = () => openPostgresVectorStore(url, { dimensions, maxConnections: 1 });
  return { store: await open(), reopen: open, cleanup: () => Promise.resolve() };
});

const postgres = sharedServer(startPostgresServer);

it('the PostgreSQL store names the missing vector extension on a server without pgvector', async () => {
  const server = await postgres();
  const url = server.url(await server.createDatabase());
  await assert.rejects(
    openPostgresVectorStore(url, { dimensions: 8 }),
    (err: unknown) =>
      err instanceof PlatformError &&
      err.code === 'UNAVAILABLE' &&
      /no "vector" extension \(pgvector\)/.test(err.message) &&
      !err.message.includes(server.password),
  );
});

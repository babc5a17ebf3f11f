import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { PlatformError } from '../../core/errors.js';
import { PgvectorVectorStore, compilePgvectorOptions, pgvectorSessionSettings } from '../sql/pgvector-vector-store.js';
import type { PgvectorSession, PgvectorStoreOptions } from '../sql/pgvector-vector-store.js';

/** Options of `createPgliteVectorStore`. */
export interface PgliteVectorStoreOptions extends PgvectorStoreOptions {
  /** The platform's data directory: the database lives in `<dataDir>/vectors`. Absent: in memory, gone at close. */
  dataDir?: string;
}

/** The subset of PGlite's API the store uses (the package is loaded on first use, so its types are not imported). */
export interface PgliteDatabase {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  exec(text: string): Promise<unknown>;
  transaction<T>(work: (tx: PgliteTransaction) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export interface PgliteTransaction {
  query<R>(text: string, params?: unknown[]): Promise<{ rows: R[] }>;
  exec(text: string): Promise<unknown>;
}

/**
 * The default vector store: PostgreSQL with pgvector embedded in the process (PGlite, WebAssembly), in
 * `<dataDir>/vectors`, or in memory when there is no data directory. PGlite is loaded and the database opened on
 * first use, so a platform that never curates pays nothing at start-up. One process opens a directory at a time.
 *
 * @example
 * const store = createPgliteVectorStore({ dataDir: '/var/lib/savassan', dimensions: 512 });
 * await store.upsert('cur-123', [{ id: 'img-1', uri: 's3://savassan/a.png', vector }]);
 * const nearest = await store.search('cur-123', vector, 10);
 */
export function createPgliteVectorStore(options: PgliteVectorStoreOptions): PgvectorVectorStore {
  const compiled = compilePgvectorOptions(options);
  const dataDir = options.dataDir === undefined ? undefined : join(options.dataDir, 'vectors');
  return new PgvectorVectorStore(compiled, () => openPglite(dataDir, compiled.efSearch));
}

/**
 * The same store over a PGlite database the caller opened (with the `vector` extension loaded) and closes: closing
 * the store leaves the database open.
 */
export function pgliteVectorStoreOn(db: PgliteDatabase, options: PgvectorStoreOptions): PgvectorVectorStore {
  const compiled = compilePgvectorOptions(options);
  return new PgvectorVectorStore(compiled, async () => {
    await db.exec(['create extension if not exists vector', ...pgvectorSessionSettings(compiled.efSearch)].join(';'));
    return { ...pgliteSession(db), close: () => Promise.resolve() };
  });
}

async function openPglite(dataDir: string | undefined, efSearch: number): Promise<PgvectorSession> {
  let db: PgliteDatabase;
  try {
    const [{ PGlite }, { vector }] = await Promise.all([
      import('@electric-sql/pglite'),
      import('@electric-sql/pglite-pgvector'),
    ]);
    if (dataDir !== undefined) await mkdir(dataDir, { recursive: true });
    db = await PGlite.create({ dataDir, extensions: { vector } });
  } catch (err) {
    const where = dataDir ?? 'memory';
    throw new PlatformError('UNAVAILABLE', `cannot open the embedded vector database (${where}): ${String(err)}`, {
      cause: err,
    });
  }
  try {
    await db.exec(['create extension if not exists vector', ...pgvectorSessionSettings(efSearch)].join(';'));
  } catch (err) {
    await db.close().catch(() => undefined);
    throw err;
  }
  return pgliteSession(db);
}

function pgliteSession(db: PgliteDatabase): PgvectorSession {
  const over = (target: PgliteTransaction): Omit<PgvectorSession, 'transaction' | 'close'> => ({
    query: async <R>(text: string, params?: readonly unknown[]) =>
      (await target.query<R>(text, params === undefined ? undefined : [...params])).rows,
    exec: async (text) => {
      await target.exec(text);
    },
  });
  const session: PgvectorSession = {
    ...over(db),
    transaction: (work) =>
      db.transaction((tx) => {
        // Work nested in the transaction stays in it.
        const inTransaction: PgvectorSession = {
          ...over(tx),
          transaction: (inner) => inner(inTransaction),
          close: () => Promise.resolve(),
        };
        return work(inTransaction);
      }),
    close: () => db.close(),
  };
  return session;
}

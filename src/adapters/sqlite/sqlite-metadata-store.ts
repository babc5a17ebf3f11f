import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Kysely } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import type { Database } from '../sql/schema.js';
import { SqlMetadataStore } from '../sql/sql-metadata-store.js';
import type { SqlMetadataStoreOptions } from '../sql/sql-metadata-store.js';
import { WorkerSqliteDialect } from './worker-sqlite-dialect.js';

export interface SqliteMetadataStoreOptions extends SqlMetadataStoreOptions {
  /** How long a write waits for another process's lock before failing with UNAVAILABLE. Default 5000 ms. */
  busyTimeoutMs?: number;
}

/**
 * Open (creating if needed) a SQLite metadata database at `path` and apply pending migrations.
 * `:memory:` gives a private in-memory database that lives until `close()`.
 *
 * WAL with `synchronous=FULL`: every committed transaction is on disk before its promise resolves. better-sqlite3
 * runs in a worker thread (`WorkerSqliteDialect`), so statements and fsyncs do not block the event loop, and a
 * batch of invocation records is written in one round trip to it.
 */
export async function openSqliteMetadataStore(
  path: string,
  options: SqliteMetadataStoreOptions = {},
): Promise<SqlMetadataStore> {
  const inMemory = path === ':memory:' || path === '';
  try {
    if (!inMemory) await mkdir(dirname(path), { recursive: true });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new PlatformError('UNAVAILABLE', `cannot open SQLite database ${path}: ${message}`, { cause: err });
  }
  const dialect = new WorkerSqliteDialect({ path, busyTimeoutMs: options.busyTimeoutMs ?? 5000 });
  const db = new Kysely<Database>({ dialect });
  try {
    // Start the worker and open the database now, so a bad path fails here rather than inside the migration.
    await db.connection().execute(() => Promise.resolve());
  } catch (err) {
    await db.destroy();
    throw PlatformError.from(err, 'UNAVAILABLE');
  }
  const store = new SqlMetadataStore(db, {
    ...options,
    executeBatch: (statements) => dialect.executeBatch(statements),
  });
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

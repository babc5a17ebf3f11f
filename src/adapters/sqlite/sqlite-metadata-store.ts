import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { Kysely, SqliteDialect } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import type { Database } from '../sql/schema.js';
import { SqlMetadataStore } from '../sql/sql-metadata-store.js';
import type { SqlMetadataStoreOptions } from '../sql/sql-metadata-store.js';

export interface SqliteMetadataStoreOptions extends SqlMetadataStoreOptions {
  /** How long a write waits for another process's lock before failing with UNAVAILABLE. Default 5000 ms. */
  busyTimeoutMs?: number;
}

/**
 * Open (creating if needed) a SQLite metadata database at `path` and apply pending migrations.
 * `:memory:` gives a private in-memory database that lives until `close()`.
 *
 * WAL with `synchronous=FULL`: every committed transaction is on disk before its promise resolves.
 */
export async function openSqliteMetadataStore(
  path: string,
  options: SqliteMetadataStoreOptions = {},
): Promise<SqlMetadataStore> {
  const inMemory = path === ':memory:' || path === '';
  let database: BetterSqlite3.Database | undefined;
  try {
    if (!inMemory) await mkdir(dirname(path), { recursive: true });
    database = new BetterSqlite3(path);
    database.pragma('journal_mode = WAL');
    database.pragma('synchronous = FULL');
    database.pragma(`busy_timeout = ${Math.max(0, Math.trunc(options.busyTimeoutMs ?? 5000))}`);
    database.pragma('foreign_keys = ON');
  } catch (err) {
    database?.close();
    const message = err instanceof Error ? err.message : String(err);
    throw new PlatformError('UNAVAILABLE', `cannot open SQLite database ${path}: ${message}`, { cause: err });
  }
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  const store = new SqlMetadataStore(db, options);
  try {
    await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

import { chmod, mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Kysely, sql } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import type { Database } from '../sql/schema.js';
import { SqlMetadataStore } from '../sql/sql-metadata-store.js';
import type { SqlMetadataStoreOptions } from '../sql/sql-metadata-store.js';
import { RecordJournal, recoverJournal } from './record-journal.js';
import { WorkerSqliteDialect } from './worker-sqlite-dialect.js';

export interface SqliteMetadataStoreOptions extends SqlMetadataStoreOptions {
  /** How long a write waits for another process's lock before failing with UNAVAILABLE. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * `process` (default): invocation records are acknowledged once written to the record journal and committed with
   * `synchronous=NORMAL` right after — they survive any crash of the Savassan process, and an OS crash or power
   * loss can lose the last ones; deploys, version changes and deletes are checkpointed and survive both. `full`: no
   * journal, and every commit is fsynced (`synchronous=FULL`) before its records are acknowledged, about 0.15-0.3 ms
   * more per invocation at low concurrency on these machines.
   */
  durability?: 'process' | 'full';
}

/**
 * Open (creating if needed) a SQLite metadata database at `path` and apply pending migrations.
 * `:memory:` gives a private in-memory database that lives until `close()`.
 *
 * WAL mode; see `durability` for when a commit reaches the disk. better-sqlite3 runs in a worker thread
 * (`WorkerSqliteDialect`), so statements and fsyncs do not block the event loop. Invocation records, the hot path,
 * are acknowledged from an append-only journal and committed by the worker right after (`RecordJournal`); records
 * a crashed process journalled are committed here on open.
 */
export async function openSqliteMetadataStore(
  path: string,
  options: SqliteMetadataStoreOptions = {},
): Promise<SqlMetadataStore> {
  const inMemory = path === ':memory:' || path === '';
  try {
    if (!inMemory) {
      await mkdir(dirname(path), { recursive: true });
      // Readable by the platform's user only; SQLite gives its -wal and -shm files the database's mode.
      await (await open(path, 'a', 0o600)).close();
      await chmod(path, 0o600);
    }
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new PlatformError('UNAVAILABLE', `cannot open SQLite database ${path}: ${message}`, { cause: err });
  }
  const full = options.durability === 'full';
  const dialect = new WorkerSqliteDialect({
    path,
    busyTimeoutMs: options.busyTimeoutMs ?? 5000,
    synchronous: full ? 'FULL' : 'NORMAL',
  });
  const db = new Kysely<Database>({ dialect });
  try {
    // Start the worker and open the database now, so a bad path fails here rather than inside the migration.
    await db.connection().execute(() => Promise.resolve());
  } catch (err) {
    await db.destroy();
    throw PlatformError.from(err, 'UNAVAILABLE');
  }
  let journal: RecordJournal | undefined;
  try {
    // With `full` durability records are committed (and fsynced) before they are acknowledged, journal or not.
    if (!full && !inMemory) journal = RecordJournal.open(path);
  } catch (err) {
    await db.destroy();
    throw new PlatformError('UNAVAILABLE', `cannot open the invocation record journal of ${path}: ${errorText(err)}`, {
      cause: err,
    });
  }
  const store = new SqlMetadataStore(db, {
    ...options,
    executeBatch: (statements) => dialect.executeBatch(statements),
    journal,
    // With NORMAL, a checkpoint fsyncs the WAL and then the database: what was committed is on disk after it.
    durabilityBarrier:
      full || inMemory ? undefined : () => sql`PRAGMA wal_checkpoint(FULL)`.execute(db).then(() => undefined),
  });
  try {
    await store.migrate();
    if (!inMemory) await recoverJournal(store, path, options.logger ?? silentLogger);
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

import { createHash } from 'node:crypto';
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { silentLogger } from '../../core/logger.js';
import { RecordJournal, recoverJournal } from '../sqlite/record-journal.js';
import type { Database } from './schema.js';
import { errorMessage, SqlMetadataStore } from './sql-metadata-store.js';

/** Options shared by the metadata stores on a database server (PostgreSQL, MySQL). */
export interface ServerMetadataStoreOptions {
  /** Most invocation records written in one group-commit transaction. Default 256. */
  maxInvocationBatch?: number;
  /** Most connections the store keeps open to the server. Default 10. */
  maxConnections?: number;
  /**
   * How long opening a connection may take before the call fails with UNAVAILABLE, in milliseconds. Default 2000:
   * while the server is down, calls fail fast instead of queueing, and the pool reconnects once it is back.
   */
  connectTimeoutMs?: number;
  /**
   * A local directory (created 0700 if missing) for the invocation record journal. With it, a record is acknowledged
   * once appended to a journal file there (0600) and committed to the database in batches right after, as the SQLite
   * store does; the journals that processes which stopped left there for this database are committed on open. A
   * journalled record is visible to `getInvocation` and `listInvocations` of this store at once (they commit what
   * is journalled first), and to other processes once committed. Without it, each record is acknowledged once its
   * own group commit is done.
   */
  journalDir?: string | undefined;
  /** Where journal recovery and commit failures are logged. */
  logger?: Logger | undefined;
}

/** `ServerMetadataStoreOptions` with the defaults applied. */
export interface CompiledServerOptions {
  maxInvocationBatch: number | undefined;
  maxConnections: number;
  connectTimeoutMs: number;
  journalDir: string | undefined;
  logger: Logger;
}

/** Where a database server is, as said in messages: never with the password. */
export interface ServerAddress {
  /** `PostgreSQL` or `MySQL`. */
  backend: string;
  host: string;
  port: number;
  /** The database named in the URL; empty when it names none. */
  database: string;
}

/** How one engine's URLs look. */
export interface UrlScheme {
  backend: string;
  /** Accepted URL protocols, with the colon: `postgres:`. */
  protocols: readonly string[];
  defaultPort: number;
}

/** Validate and default the options once, at the edge. */
export function compileServerOptions(options: ServerMetadataStoreOptions): CompiledServerOptions {
  const maxConnections = options.maxConnections ?? 10;
  const connectTimeoutMs = options.connectTimeoutMs ?? 2000;
  if (!Number.isInteger(maxConnections) || maxConnections < 1) {
    throw new PlatformError('BAD_REQUEST', `maxConnections must be a positive integer, got ${String(maxConnections)}`);
  }
  if (!Number.isInteger(connectTimeoutMs) || connectTimeoutMs < 1) {
    throw new PlatformError(
      'BAD_REQUEST',
      `connectTimeoutMs must be a positive integer, got ${String(connectTimeoutMs)}`,
    );
  }
  return {
    maxInvocationBatch: options.maxInvocationBatch,
    maxConnections,
    connectTimeoutMs,
    journalDir: options.journalDir,
    logger: options.logger ?? silentLogger,
  };
}

/**
 * Parse a database URL (`postgres://user:password@host:5432/db`) into the address that messages name.
 * Throws BAD_REQUEST, without the password, for a URL that is not one of `scheme`'s.
 */
export function parseServerUrl(url: string, scheme: UrlScheme): ServerAddress {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `${scheme.backend} URL ${redactUrl(url)} is not a valid URL`, {
      cause: err,
    });
  }
  if (!scheme.protocols.includes(parsed.protocol)) {
    const expected = scheme.protocols.map((protocol) => `${protocol}//`).join(' or ');
    throw new PlatformError('BAD_REQUEST', `${scheme.backend} URL ${redactUrl(url)} must start with ${expected}`);
  }
  // `?host=/run/postgresql` (a socket directory) stands in for the host in libpq-style URLs.
  const host = decodeURIComponent(parsed.hostname) || parsed.searchParams.get('host') || 'localhost';
  const port = parsed.port === '' ? scheme.defaultPort : Number(parsed.port);
  return { backend: scheme.backend, host, port, database: decodeURIComponent(parsed.pathname.slice(1)) };
}

/** `PostgreSQL at 127.0.0.1:5432`. */
export function describeServer(address: ServerAddress): string {
  return `${address.backend} at ${address.host}:${address.port}`;
}

/** The URL with any password replaced by `***`; unparsable text is not echoed at all. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.href;
  } catch {
    return '(unparsable)';
  }
}

/**
 * Where the journal of records for the database at `address` lives in `dir`: named after the engine and a hash of
 * host, port and database, so that a journal is only ever committed to the database it was written for.
 */
export function journalPathFor(dir: string, address: ServerAddress): string {
  const identity = `${address.backend}\n${address.host}\n${address.port}\n${address.database}`;
  const hash = createHash('sha256').update(identity).digest('hex').slice(0, 16);
  return join(dir, `${address.backend.toLowerCase()}-${hash}`);
}

/**
 * Check the server answers, apply pending migrations, commit what stopped processes journalled (with `journalDir`)
 * and return the store; on failure the connections are closed and the error is UNAVAILABLE naming the server.
 * Kysely's migrator serializes concurrent opens with a lock (PostgreSQL: an advisory lock; MySQL: `GET_LOCK`), so
 * gateways may start together.
 */
export async function openServerMetadataStore(
  db: Kysely<Database>,
  address: ServerAddress,
  options: CompiledServerOptions,
  engine: 'PostgreSQL' | 'MySQL',
): Promise<SqlMetadataStore> {
  try {
    await sql`select 1`.execute(db);
  } catch (err) {
    await db.destroy();
    throw new PlatformError('UNAVAILABLE', `cannot connect to ${describeServer(address)}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  const journalPath = options.journalDir === undefined ? undefined : journalPathFor(options.journalDir, address);
  let journal: RecordJournal | undefined;
  if (options.journalDir !== undefined && journalPath !== undefined) {
    try {
      // Readable by the platform's user only: records name functions, nodes and errors.
      await mkdir(options.journalDir, { recursive: true, mode: 0o700 });
      await chmod(options.journalDir, 0o700);
      journal = RecordJournal.open(journalPath);
    } catch (err) {
      await db.destroy();
      throw new PlatformError(
        'UNAVAILABLE',
        `cannot open the invocation record journal in ${options.journalDir}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
  }
  const store = new SqlMetadataStore(db, {
    maxInvocationBatch: options.maxInvocationBatch,
    backend: describeServer(address),
    journal,
    // Other processes delete functions too: their journalled records must not outlive the delete.
    sharedDatabase: { engine },
    logger: options.logger,
  });
  try {
    await store.migrate();
    if (journalPath !== undefined) await recoverJournal(store, journalPath, options.logger);
  } catch (err) {
    await store.close();
    const platformError = PlatformError.from(err, 'UNAVAILABLE');
    throw new PlatformError(platformError.code, `${describeServer(address)}: ${platformError.rawMessage}`, {
      cause: err,
    });
  }
  return store;
}

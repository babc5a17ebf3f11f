/**
 * Messages between the SQLite worker thread (`sqlite-worker.ts`, which owns the better-sqlite3 connection) and
 * its client on the main thread (`worker-sqlite-dialect.ts`). Messages travel by `postMessage` (structured clone),
 * so bigints, Uint8Arrays and nulls survive; Buffers arrive as plain Uint8Arrays.
 *
 * Every request carries an `id`; the worker answers each with exactly one `result` or `error` carrying the same id,
 * in the order the requests were posted.
 */

// ---- main → worker ----

export interface OpenRequest {
  type: 'open';
  id: number;
  path: string;
  busyTimeoutMs: number;
  synchronous: 'FULL' | 'NORMAL';
}

export interface QueryRequest {
  type: 'query';
  id: number;
  /** Run `begin` first: the start of a transaction travels with its first statement. */
  begin: boolean;
  sql: string;
  parameters: readonly unknown[];
}

/** Statements run as one transaction in one round trip (begin, each statement, commit; rollback on error). */
export interface BatchRequest {
  type: 'batch';
  id: number;
  statements: { sql: string; parameters: readonly unknown[] }[];
}

export interface CloseRequest {
  type: 'close';
  id: number;
}

export type WorkerRequest = OpenRequest | QueryRequest | BatchRequest | CloseRequest;

// ---- worker → main ----

/** An error as it crosses the thread boundary. `code` is better-sqlite3's (e.g. `SQLITE_BUSY`), when it has one. */
export interface WireSqlError {
  name: string;
  message: string;
  code?: string | undefined;
}

export interface ResultReply {
  type: 'result';
  id: number;
  /** Rows of a reader statement (`SELECT`, `... RETURNING`); empty for a writer. */
  rows: Record<string, unknown>[];
  /** True when some row value is a blob: the client turns those Uint8Arrays back into Buffers. */
  hasBlobs?: boolean | undefined;
  /** Writer statements only: better-sqlite3's `changes`. */
  numAffectedRows?: bigint | undefined;
  /** Writer statements only: better-sqlite3's `lastInsertRowid`. */
  insertId?: bigint | undefined;
}

export interface ErrorReply {
  type: 'error';
  id: number;
  error: WireSqlError;
}

export type WorkerReply = ResultReply | ErrorReply;

/** A message that does not follow this protocol: the sender is broken. */
export class SqliteWorkerProtocolError extends Error {
  override readonly name = 'SqliteWorkerProtocolError';
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRequestId(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** The id of a message that carries a valid one, so even a malformed request can be answered. */
export function messageId(message: unknown): number | undefined {
  return isRecord(message) && isRequestId(message.id) ? message.id : undefined;
}

/** Throws SqliteWorkerProtocolError for anything that is not a well-formed `WorkerRequest`. */
export function parseWorkerRequest(message: unknown): WorkerRequest {
  if (!isRecord(message)) throw new SqliteWorkerProtocolError('request is not an object');
  const { id } = message;
  if (!isRequestId(id)) throw new SqliteWorkerProtocolError('request has no valid id');
  switch (message.type) {
    case 'open': {
      const { path, busyTimeoutMs, synchronous } = message;
      if (synchronous !== 'FULL' && synchronous !== 'NORMAL') {
        throw new SqliteWorkerProtocolError('open: synchronous must be FULL or NORMAL');
      }
      if (typeof path !== 'string') throw new SqliteWorkerProtocolError('open: path must be a string');
      if (typeof busyTimeoutMs !== 'number' || !Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
        throw new SqliteWorkerProtocolError('open: busyTimeoutMs must be a non-negative integer');
      }
      return { type: 'open', id, path, busyTimeoutMs, synchronous };
    }
    case 'query': {
      const { begin, sql, parameters } = message;
      if (typeof begin !== 'boolean') throw new SqliteWorkerProtocolError('query: begin must be a boolean');
      if (typeof sql !== 'string') throw new SqliteWorkerProtocolError('query: sql must be a string');
      if (!Array.isArray(parameters)) throw new SqliteWorkerProtocolError('query: parameters must be an array');
      return { type: 'query', id, begin, sql, parameters: parameters as unknown[] };
    }
    case 'batch': {
      const { statements } = message;
      if (!Array.isArray(statements)) throw new SqliteWorkerProtocolError('batch: statements must be an array');
      const parsed = statements.map((statement: unknown, i) => {
        if (!isRecord(statement) || typeof statement.sql !== 'string' || !Array.isArray(statement.parameters)) {
          throw new SqliteWorkerProtocolError(`batch: statement ${i} must be { sql: string, parameters: array }`);
        }
        return { sql: statement.sql, parameters: statement.parameters as unknown[] };
      });
      return { type: 'batch', id, statements: parsed };
    }
    case 'close':
      return { type: 'close', id };
    default:
      throw new SqliteWorkerProtocolError(`unknown request type ${JSON.stringify(message.type) ?? 'undefined'}`);
  }
}

/** Throws SqliteWorkerProtocolError for anything that is not a well-formed `WorkerReply`. */
export function parseWorkerReply(message: unknown): WorkerReply {
  if (!isRecord(message)) throw new SqliteWorkerProtocolError('reply is not an object');
  const { id } = message;
  if (!isRequestId(id)) throw new SqliteWorkerProtocolError('reply has no valid id');
  switch (message.type) {
    case 'result': {
      const { rows, hasBlobs, numAffectedRows, insertId } = message;
      if (!Array.isArray(rows)) throw new SqliteWorkerProtocolError('result: rows must be an array');
      if (hasBlobs !== undefined && typeof hasBlobs !== 'boolean') {
        throw new SqliteWorkerProtocolError('result: hasBlobs must be a boolean');
      }
      if (numAffectedRows !== undefined && typeof numAffectedRows !== 'bigint') {
        throw new SqliteWorkerProtocolError('result: numAffectedRows must be a bigint');
      }
      if (insertId !== undefined && typeof insertId !== 'bigint') {
        throw new SqliteWorkerProtocolError('result: insertId must be a bigint');
      }
      return { type: 'result', id, rows: rows as Record<string, unknown>[], hasBlobs, numAffectedRows, insertId };
    }
    case 'error': {
      const { error } = message;
      if (!isRecord(error) || typeof error.name !== 'string' || typeof error.message !== 'string') {
        throw new SqliteWorkerProtocolError('error: error must have a name and a message');
      }
      if (error.code !== undefined && typeof error.code !== 'string') {
        throw new SqliteWorkerProtocolError('error: error.code must be a string');
      }
      return { type: 'error', id, error: { name: error.name, message: error.message, code: error.code } };
    }
    default:
      throw new SqliteWorkerProtocolError(`unknown reply type ${JSON.stringify(message.type) ?? 'undefined'}`);
  }
}

/** An error from better-sqlite3 (or the worker) as plain data. */
export function toWireError(err: unknown): WireSqlError {
  if (err instanceof Error) {
    const code = 'code' in err && typeof err.code === 'string' ? err.code : undefined;
    return code === undefined
      ? { name: err.name, message: err.message }
      : { name: err.name, message: err.message, code };
  }
  return { name: 'Error', message: String(err) };
}

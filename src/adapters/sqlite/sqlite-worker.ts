/**
 * Worker thread that owns a better-sqlite3 connection, so its synchronous work (statement execution and each
 * commit's fsync) runs off the main event loop. Started by `WorkerSqliteDriver`; speaks the protocol in
 * `sqlite-worker-protocol.ts`, one request at a time, in the order they were posted.
 */
import { parentPort } from 'node:worker_threads';
import BetterSqlite3 from 'better-sqlite3';
import { messageId, parseWorkerRequest, toWireError } from './sqlite-worker-protocol.js';
import type { BatchRequest, OpenRequest, QueryRequest, ResultReply, WorkerReply } from './sqlite-worker-protocol.js';

/** Prepared statements kept per SQL text; Kysely compiles the same few statements over and over. */
const statementCacheSize = 128;

type Statement = BetterSqlite3.Statement<unknown[], unknown>;

const port = parentPort;
if (port === null) throw new Error('sqlite-worker must be started as a worker thread');

let database: BetterSqlite3.Database | undefined;
const statements = new Map<string, Statement>();

port.on('message', (message: unknown) => {
  let reply: WorkerReply;
  let closed = false;
  try {
    const request = parseWorkerRequest(message);
    switch (request.type) {
      case 'open':
        reply = open(request);
        break;
      case 'query':
        reply = query(request);
        break;
      case 'batch':
        reply = batch(request);
        break;
      case 'close':
        closed = true;
        close();
        reply = { type: 'result', id: request.id, rows: [] };
        break;
    }
  } catch (err) {
    const id = messageId(message);
    // Without an id nobody can be answered: crash, and the client fails everything it is waiting for.
    if (id === undefined) throw err;
    reply = { type: 'error', id, error: toWireError(err) };
  }
  port.postMessage(reply);
  // Nothing left to do: let the thread end by itself (the client terminates it if it lingers).
  if (closed) port.close();
});

function open(request: OpenRequest): ResultReply {
  if (database !== undefined) throw new Error('the database is already open');
  const opened = new BetterSqlite3(request.path);
  try {
    opened.pragma('journal_mode = WAL');
    opened.pragma(`synchronous = ${request.synchronous}`);
    opened.pragma(`busy_timeout = ${request.busyTimeoutMs}`);
    opened.pragma('foreign_keys = ON');
    // Statement journals and temporary indexes in memory: a multi-row insert inside a transaction otherwise
    // creates, writes and unlinks a file under /var/tmp on every commit.
    opened.pragma('temp_store = MEMORY');
  } catch (err) {
    opened.close();
    throw err;
  }
  database = opened;
  return { type: 'result', id: request.id, rows: [] };
}

function query(request: QueryRequest): ResultReply {
  if (request.begin) prepare('begin').run();
  const stmt = prepare(request.sql);
  // Same split as Kysely's SqliteDriver: statements that return rows (SELECT, ... RETURNING) use all().
  if (stmt.reader) {
    const rows = stmt.all(request.parameters) as Record<string, unknown>[];
    return { type: 'result', id: request.id, rows, hasBlobs: rows.some(hasBlob) };
  }
  const { changes, lastInsertRowid } = stmt.run(request.parameters);
  return {
    type: 'result',
    id: request.id,
    rows: [],
    numAffectedRows: BigInt(changes),
    insertId: BigInt(lastInsertRowid),
  };
}

function batch(request: BatchRequest): ResultReply {
  if (database === undefined) throw new Error('the database is not open');
  let changes = 0;
  database.transaction(() => {
    for (const statement of request.statements) changes += prepare(statement.sql).run(statement.parameters).changes;
  })();
  return { type: 'result', id: request.id, rows: [], numAffectedRows: BigInt(changes) };
}

function prepare(sql: string): Statement {
  if (database === undefined) throw new Error('the database is not open');
  const cached = statements.get(sql);
  if (cached !== undefined) {
    // Most recently used last, so the first key is the one to evict.
    statements.delete(sql);
    statements.set(sql, cached);
    return cached;
  }
  const stmt = database.prepare<unknown[], unknown>(sql);
  statements.set(sql, stmt);
  if (statements.size > statementCacheSize) {
    const oldest = statements.keys().next();
    if (oldest.done !== true) statements.delete(oldest.value);
  }
  return stmt;
}

function hasBlob(row: Record<string, unknown>): boolean {
  for (const key in row) if (row[key] instanceof Uint8Array) return true;
  return false;
}

function close(): void {
  statements.clear();
  const closing = database;
  database = undefined;
  closing?.close();
}

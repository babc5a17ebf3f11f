import type { Worker } from 'node:worker_threads';
import {
  CompiledQuery,
  IdentifierNode,
  RawNode,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  createQueryId,
} from 'kysely';
import type {
  DatabaseConnection,
  DatabaseIntrospector,
  Dialect,
  DialectAdapter,
  Driver,
  Kysely,
  QueryCompiler,
  QueryResult,
} from 'kysely';
import { PlatformError } from '../../core/errors.js';
import { startModuleWorker } from '../../core/module-worker.js';
import { parseWorkerReply } from './sqlite-worker-protocol.js';
import type { ResultReply, WireSqlError, WorkerReply, WorkerRequest } from './sqlite-worker-protocol.js';

export interface WorkerSqliteDialectConfig {
  /** Database file, or `:memory:` for a private in-memory database that lives as long as the worker. */
  path: string;
  /** How long a write waits for another connection's lock before failing with SQLITE_BUSY. Default 5000 ms. */
  busyTimeoutMs?: number;
  /** SQLite's `synchronous` pragma (WAL mode): FULL fsyncs every commit, NORMAL only at checkpoints. Default FULL. */
  synchronous?: 'FULL' | 'NORMAL';
  /** Called with each worker thread right after it is created (tests use it to kill the worker). */
  onWorkerStart?: (worker: Worker) => void;
}

/**
 * Kysely dialect for SQLite that runs better-sqlite3 in a worker thread: statements, and each commit's fsync,
 * no longer block the main event loop. Same SQL, pragmas and single connection as Kysely's `SqliteDialect`; only
 * where the synchronous work happens changes. `streamQuery` is not supported.
 */
export class WorkerSqliteDialect implements Dialect {
  readonly #config: WorkerSqliteDialectConfig;
  #driver: WorkerSqliteDriver | undefined;

  constructor(config: WorkerSqliteDialectConfig) {
    this.#config = { ...config };
  }

  createDriver(): Driver {
    this.#driver = new WorkerSqliteDriver(this.#config);
    return this.#driver;
  }

  /** `WorkerSqliteDriver.executeBatch` of the driver Kysely created from this dialect. */
  executeBatch(statements: readonly CompiledQuery[]): Promise<void> {
    if (this.#driver === undefined) {
      return Promise.reject(new PlatformError('INTERNAL', 'the SQLite worker dialect has no driver yet'));
    }
    return this.#driver.executeBatch(statements);
  }

  createQueryCompiler(): QueryCompiler {
    return new SqliteQueryCompiler();
  }

  createAdapter(): DialectAdapter {
    return new SqliteAdapter();
  }

  createIntrospector(db: Kysely<unknown>): DatabaseIntrospector {
    return new SqliteIntrospector(db);
  }
}

/**
 * One connection (SQLite has one writer anyway), lent to one caller at a time: a transaction holds it from
 * `begin` to `commit` / `rollback`, exactly as in Kysely's `SqliteDriver`.
 */
export class WorkerSqliteDriver implements Driver {
  readonly #config: WorkerSqliteDialectConfig;
  readonly #mutex = new ConnectionMutex();
  #channel: WorkerChannel | undefined;
  #connection: WorkerSqliteConnection | undefined;

  constructor(config: WorkerSqliteDialectConfig) {
    this.#config = config;
  }

  async init(): Promise<void> {
    const { path } = this.#config;
    const busyTimeoutMs = Math.max(0, Math.trunc(this.#config.busyTimeoutMs ?? 5000));
    let worker: Worker;
    try {
      worker = startModuleWorker(import.meta.url, 'sqlite-worker');
    } catch (err) {
      throw new PlatformError('UNAVAILABLE', `cannot start the SQLite worker for ${path}: ${errorMessage(err)}`, {
        cause: err,
      });
    }
    const channel = new WorkerChannel(worker, path);
    try {
      this.#config.onWorkerStart?.(worker);
      await channel.request({ type: 'open', path, busyTimeoutMs, synchronous: this.#config.synchronous ?? 'FULL' });
    } catch (err) {
      await channel.close().catch(() => undefined);
      const message = err instanceof PlatformError ? err.rawMessage : errorMessage(err);
      throw new PlatformError('UNAVAILABLE', `cannot open SQLite database ${path}: ${message}`, { cause: err });
    }
    this.#channel = channel;
    this.#connection = new WorkerSqliteConnection(channel);
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    await this.#mutex.lock();
    const connection = this.#connection;
    if (connection === undefined) {
      this.#mutex.unlock();
      throw new PlatformError('INTERNAL', 'the SQLite worker driver is not initialised');
    }
    return connection;
  }

  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    if (connection instanceof WorkerSqliteConnection) connection.deferBegin();
    else await connection.executeQuery(CompiledQuery.raw('begin'));
  }

  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    if (connection instanceof WorkerSqliteConnection && connection.cancelDeferredBegin()) return;
    await connection.executeQuery(CompiledQuery.raw('commit'));
  }

  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (connection instanceof WorkerSqliteConnection && connection.cancelDeferredBegin()) return;
    await connection.executeQuery(CompiledQuery.raw('rollback'));
  }

  async savepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await connection.executeQuery(savepointCommand('savepoint', savepointName, compileQuery));
  }

  async rollbackToSavepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await connection.executeQuery(savepointCommand('rollback to', savepointName, compileQuery));
  }

  async releaseSavepoint(
    connection: DatabaseConnection,
    savepointName: string,
    compileQuery: QueryCompiler['compileQuery'],
  ): Promise<void> {
    await connection.executeQuery(savepointCommand('release', savepointName, compileQuery));
  }

  releaseConnection(): Promise<void> {
    this.#mutex.unlock();
    return Promise.resolve();
  }

  /**
   * Runs write statements as one transaction in a single round trip to the worker (the group commit of
   * invocation records uses it). All or nothing: an error rolls the whole batch back.
   */
  async executeBatch(statements: readonly CompiledQuery[]): Promise<void> {
    await this.#mutex.lock();
    try {
      const channel = this.#channel;
      if (channel === undefined) throw new PlatformError('INTERNAL', 'the SQLite worker driver is not initialised');
      await channel.request({
        type: 'batch',
        statements: statements.map((q) => ({ sql: q.sql, parameters: q.parameters })),
      });
    } finally {
      this.#mutex.unlock();
    }
  }

  /** Closes the database in the worker (after the statements already sent to it), then ends the thread. */
  async destroy(): Promise<void> {
    const channel = this.#channel;
    this.#channel = undefined;
    this.#connection = undefined;
    await channel?.close();
  }
}

function savepointCommand(
  command: string,
  savepointName: string,
  compileQuery: QueryCompiler['compileQuery'],
): CompiledQuery {
  const node = RawNode.createWithChildren([RawNode.createWithSql(`${command} `), IdentifierNode.create(savepointName)]);
  return compileQuery(node, createQueryId());
}

/**
 * `begin` is not sent on its own: the worker runs it just before the transaction's first statement, which saves
 * a round trip per transaction. SQLite's (deferred) `begin` takes no lock and cannot fail on a connection that is
 * not already in a transaction, so nothing observable changes. A transaction that ran no statement sends nothing.
 */
class WorkerSqliteConnection implements DatabaseConnection {
  readonly #channel: WorkerChannel;
  #beginDeferred = false;

  constructor(channel: WorkerChannel) {
    this.#channel = channel;
  }

  deferBegin(): void {
    this.#beginDeferred = true;
  }

  /** True when the transaction never started in the worker, so there is nothing to commit or roll back. */
  cancelDeferredBegin(): boolean {
    const deferred = this.#beginDeferred;
    this.#beginDeferred = false;
    return deferred;
  }

  async executeQuery<R>(compiledQuery: CompiledQuery): Promise<QueryResult<R>> {
    const reply = await this.#channel.request({
      type: 'query',
      begin: this.cancelDeferredBegin(),
      sql: compiledQuery.sql,
      parameters: compiledQuery.parameters,
    });
    const rows = (reply.hasBlobs === true ? reply.rows.map(restoreBuffers) : reply.rows) as R[];
    if (reply.numAffectedRows === undefined) return { rows };
    return { rows, numAffectedRows: reply.numAffectedRows, insertId: reply.insertId };
  }

  streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    const error = new PlatformError('INTERNAL', 'the SQLite worker dialect does not support streaming queries');
    const iterator: AsyncIterableIterator<QueryResult<R>> = {
      next: () => Promise.reject(error),
      [Symbol.asyncIterator]: () => iterator,
    };
    return iterator;
  }
}

/** Blobs cross the thread boundary as Uint8Arrays; better-sqlite3 returns Buffers. */
function restoreBuffers(row: Record<string, unknown>): Record<string, unknown> {
  for (const key in row) {
    const value = row[key];
    if (value instanceof Uint8Array && !Buffer.isBuffer(value)) {
      row[key] = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    }
  }
  return row;
}

/** A better-sqlite3 error rebuilt on the main thread: same name, message and `code` (SQLITE_BUSY, ...). */
export class SqliteWorkerError extends Error {
  readonly code: string | undefined;

  constructor(wire: WireSqlError) {
    super(wire.message);
    this.name = wire.name;
    this.code = wire.code;
  }
}

interface PendingRequest {
  resolve: (reply: ResultReply) => void;
  reject: (err: Error) => void;
}

/** How long `close()` waits for the worker to end by itself before terminating it. */
const exitGraceMs = 2000;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * Request/reply over one worker. The worker is referenced (keeps the process alive) only while a request is
 * waiting for its reply, so an idle open database never holds the process open, just as an in-process
 * better-sqlite3 handle does not. If the thread dies, every waiting and later request fails with UNAVAILABLE.
 */
class WorkerChannel {
  readonly #worker: Worker;
  readonly #path: string;
  readonly #pending = new Map<number, PendingRequest>();
  #nextId = 1;
  #state: 'open' | 'closing' | 'closed' = 'open';
  /** Set once the worker is gone for a reason other than `close()`. */
  #failure: PlatformError | undefined;
  #closing: Promise<void> | undefined;
  readonly #exited: Promise<void>;

  constructor(worker: Worker, path: string) {
    this.#worker = worker;
    this.#path = path;
    this.#exited = new Promise((resolve) => worker.once('exit', () => resolve()));
    worker.unref();
    worker.on('message', (message: unknown) => this.#onMessage(message));
    worker.on('error', (err: Error) => {
      this.#fail(`the SQLite worker for ${path} crashed: ${err.message}`, err);
    });
    worker.on('messageerror', (err: Error) => {
      this.#fail(`the SQLite worker for ${path} sent an unreadable message: ${err.message}`, err);
      void worker.terminate();
    });
    worker.on('exit', (exitCode: number) => {
      if (this.#state === 'open') this.#fail(`the SQLite worker for ${path} exited unexpectedly (code ${exitCode})`);
      this.#state = 'closed';
      // Replies are delivered before 'exit', so anything still waiting will never be answered.
      this.#rejectAll(new PlatformError('UNAVAILABLE', `the SQLite database ${path} is closed`));
    });
  }

  request(request: DistributiveOmit<WorkerRequest, 'id'>): Promise<ResultReply> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#state !== 'open' && request.type !== 'close') {
      return Promise.reject(new PlatformError('UNAVAILABLE', `the SQLite database ${this.#path} is closed`));
    }
    const id = this.#nextId++;
    return new Promise<ResultReply>((resolve, reject) => {
      try {
        this.#worker.postMessage({ ...request, id });
      } catch (err) {
        // Parameters that cannot be cloned (a function, a symbol): nothing was sent.
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      this.#pending.set(id, { resolve, reject });
      if (this.#pending.size === 1) this.#worker.ref();
    });
  }

  /** Idempotent. Closes the database after the requests already sent, then terminates the thread. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#state === 'open') this.#state = 'closing';
    try {
      if (this.#failure === undefined) await this.request({ type: 'close' });
    } finally {
      await this.#ended();
      this.#state = 'closed';
      this.#rejectAll(new PlatformError('UNAVAILABLE', `the SQLite database ${this.#path} is closed`));
    }
  }

  /** The worker ends by itself once it has closed the database; one that does not is terminated. */
  async #ended(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), exitGraceMs);
    });
    const terminate = await Promise.race([this.#exited.then(() => false), timedOut]);
    clearTimeout(timer);
    if (terminate) await this.#worker.terminate();
  }

  #onMessage(message: unknown): void {
    let reply: WorkerReply;
    try {
      reply = parseWorkerReply(message);
    } catch (err) {
      this.#fail(`the SQLite worker for ${this.#path} broke the protocol: ${errorMessage(err)}`, err);
      void this.#worker.terminate();
      return;
    }
    const pending = this.#take(reply.id);
    if (pending === undefined) return;
    if (reply.type === 'result') pending.resolve(reply);
    else pending.reject(new SqliteWorkerError(reply.error));
  }

  #take(id: number): PendingRequest | undefined {
    const pending = this.#pending.get(id);
    if (pending === undefined) return undefined;
    this.#pending.delete(id);
    if (this.#pending.size === 0) this.#worker.unref();
    return pending;
  }

  #fail(message: string, cause?: unknown): void {
    if (this.#failure !== undefined) return;
    this.#failure = new PlatformError('UNAVAILABLE', message, cause === undefined ? {} : { cause });
    this.#rejectAll(this.#failure);
  }

  #rejectAll(err: PlatformError): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#worker.unref();
    for (const request of pending) request.reject(err);
  }
}

/** FIFO lock around the single connection. */
class ConnectionMutex {
  #locked = false;
  readonly #waiters: (() => void)[] = [];

  lock(): Promise<void> {
    if (!this.#locked) {
      this.#locked = true;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  unlock(): void {
    const next = this.#waiters.shift();
    if (next === undefined) this.#locked = false;
    else next();
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

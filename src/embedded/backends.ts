import { join } from 'node:path';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { MemoryPool } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import { openMysqlMetadataStore } from '../adapters/mysql/mysql-metadata-store.js';
import { openPostgresMetadataStore } from '../adapters/postgres/postgres-metadata-store.js';
import { redisDisplayUrl } from '../adapters/redis/redis-connection.js';
import { RedisInvocationQueue } from '../adapters/redis/redis-invocation-queue.js';
import { RedisPool } from '../adapters/redis/redis-pool.js';
import { RedisProvisionQueue } from '../adapters/redis/redis-provision-queue.js';
import { openS3BlobStore } from '../adapters/s3/s3-blob-store.js';
import type { EnvSealer } from '../adapters/sealed/env-sealer.js';
import { SealedMetadataStore } from '../adapters/sealed/sealed-metadata-store.js';
import type { SqlMetadataStore } from '../adapters/sql/sql-metadata-store.js';
import { SqlInvocationQueue } from '../adapters/sql/sql-invocation-queue.js';
import { SqlScheduleStore } from '../adapters/sql/sql-schedule-store.js';
import { SqlWorkflowStore } from '../adapters/sql/sql-workflow-store.js';
import { SqlIntelligenceStore } from '../adapters/sql/sql-intelligence-store.js';
import { SqlTrafficStore } from '../adapters/sql/sql-traffic-store.js';
import { SqlMessageQueues } from '../adapters/sql/sql-message-queues.js';
import { SqlTriggerStore } from '../adapters/sql/sql-trigger-store.js';
import { SqlFunctionUrlStore } from '../adapters/sql/sql-function-url-store.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { InvocationQueue } from '../core/ports/invocation-queue.js';
import type { MessageQueues } from '../core/ports/message-queue.js';
import type { TriggerStore } from '../core/ports/trigger-store.js';
import type { FunctionUrlStore } from '../core/ports/function-url-store.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { ScheduleStore } from '../core/ports/schedule-store.js';
import type { WorkflowStore } from '../core/ports/workflow-store.js';
import type { IntelligenceStore } from '../core/ports/intelligence-store.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';

/** Where the ports live. Each one left out keeps its embedded default. URLs may carry credentials. */
export interface BackendUrls {
  /** `redis://[:password@]host:port[/db]`: pool and provisioning queue on Redis instead of in memory. */
  redisUrl?: string | undefined;
  /** `postgres://…` or `mysql://…` (also `postgresql://`, `mariadb://`): metadata there instead of SQLite. */
  dbUrl?: string | undefined;
  /** An S3 URL as `openS3BlobStore` takes it: code and logs there instead of `{dataDir}/blobs`. */
  s3Url?: string | undefined;
}

export interface BackendOptions extends BackendUrls {
  /** Home of the embedded defaults: `savassan.db` (SQLite) and `blobs/`. */
  dataDir: string;
  queueCapacity: number;
  /** Asynchronous invocations queued or running per function (default 10 000). */
  asyncQueueCapacity?: number | undefined;
  /**
   * When invocation records are acknowledged. `process`: once appended to a journal in the data dir (SQLite: beside
   * the database; PostgreSQL and MySQL: `{dataDir}/journal`), committed in batches right after. `full`: once
   * committed (SQLite: and fsynced). See `openSqliteMetadataStore` and `ServerMetadataStoreOptions.journalDir`.
   */
  durability: 'process' | 'full';
  /** Encrypts function environments (and keys content hashes) before they reach the metadata store. */
  sealer: EnvSealer;
  /**
   * A pool and provisioning queue held elsewhere (the control-plane leader's, over gRPC): used instead of Redis or
   * memory. Closed with the backends. `summary` says where they are, for the start banner.
   */
  sharedPool?: { pool: Pool; queue: ProvisionQueue; summary: string } | undefined;
  logger: Logger;
}

/** What backs each port, in words and without credentials: for the start banner and logs. */
export interface BackendSummary {
  /** Pool, provisioning queue and (on Redis) the asynchronous invocations' queue. */
  pool: string;
  metadata: string;
  blobs: string;
}

export interface Backends {
  readonly pool: Pool;
  readonly queue: ProvisionQueue;
  readonly metadata: MetadataStore;
  /** Aliases and rollouts, on the metadata database (closed with it). */
  readonly traffic: TrafficStore;
  /** Asynchronous invocations waiting, running and dead-lettered: on Redis where it is given, else the metadata database. */
  readonly invocations: InvocationQueue;
  /** Schedules, on the metadata database (closed with it). */
  readonly schedules: ScheduleStore;
  /** Named message queues, on the metadata database (closed with it). */
  readonly messageQueues: MessageQueues;
  /** Queue triggers, on the metadata database (closed with it). */
  readonly triggers: TriggerStore;
  /** Function URL configs, on the metadata database (closed with it). */
  readonly functionUrls: FunctionUrlStore;
  /** Workflows, their executions, node executions and output cache, on the metadata database (closed with it). */
  readonly workflows: WorkflowStore;
  /** Plan logs, dataset images, curation jobs and fine-tuning runs, on the metadata database (closed with it). */
  readonly intelligence: IntelligenceStore;
  readonly blobStore: BlobStore;
  /** The bucket `s3://` URIs of blobs name: the S3 store's bucket, or `savassan` for the filesystem store. */
  readonly blobBucket: string;
  describe(): BackendSummary;
  /** Closes every backend once (idempotent); the caller has stopped using them. */
  close(): Promise<void>;
}

interface Opened<T> {
  value: T;
  summary: string;
  close: () => Promise<void>;
}

/** The bucket name `s3://` URIs give the filesystem blob store. */
export const fsBlobBucket = 'savassan';

/**
 * Opens the backends that `options` name, each checked to answer (and, for databases, migrated), with the embedded
 * defaults for the others: memory pool and queue, SQLite in the data dir, blobs in the data dir. A backend that
 * cannot be reached fails the whole call with UNAVAILABLE, `cannot start: …` naming it (never its password), after
 * closing the ones that did open.
 *
 * @example
 * const backends = await openBackends({ dataDir, queueCapacity: 1000, durability: 'process', logger,
 *   redisUrl: 'redis://127.0.0.1:6379/0', dbUrl: 'postgres://savassan:secret@db:5432/savassan' });
 */
export async function openBackends(options: BackendOptions): Promise<Backends> {
  const results = await Promise.allSettled([openPoolAndQueue(options), openMetadata(options), openBlobs(options)]);
  const [pool, metadata, blobs] = results;
  if (pool.status === 'rejected' || metadata.status === 'rejected' || blobs.status === 'rejected') {
    const opened = results.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
    await Promise.allSettled(opened.map((backend) => backend.close()));
    const failed = results.find((result) => result.status === 'rejected');
    throw startError(failed?.reason);
  }
  const summary: BackendSummary = {
    pool: pool.value.summary,
    metadata: metadata.value.summary,
    blobs: blobs.value.summary,
  };
  let closing: Promise<void> | undefined;
  return {
    pool: pool.value.value.pool,
    queue: pool.value.value.queue,
    metadata: metadata.value.value.metadata,
    traffic: metadata.value.value.traffic,
    invocations: pool.value.value.invocations ?? metadata.value.value.invocations,
    schedules: metadata.value.value.schedules,
    messageQueues: metadata.value.value.messageQueues,
    triggers: metadata.value.value.triggers,
    functionUrls: metadata.value.value.functionUrls,
    workflows: metadata.value.value.workflows,
    intelligence: metadata.value.value.intelligence,
    blobStore: blobs.value.value,
    blobBucket: blobs.value.bucket,
    describe: () => ({ ...summary }),
    close() {
      // Pool and queue first: the metadata store may still be writing the last invocation records.
      closing ??= (async () => {
        await pool.value.close();
        await metadata.value.close();
        await blobs.value.close();
      })();
      return closing;
    },
  };
}

/** The pool and provisioning queue, and on Redis the asynchronous invocations' queue too. */
interface PoolAndQueues {
  pool: Pool;
  queue: ProvisionQueue;
  /** Null: on the metadata database. */
  invocations: InvocationQueue | null;
}

async function openPoolAndQueue(options: BackendOptions): Promise<Opened<PoolAndQueues>> {
  const { redisUrl, queueCapacity, logger, sharedPool } = options;
  if (sharedPool !== undefined) {
    const { pool, queue } = sharedPool;
    // Asynchronous invocations stay on Redis where it is given, else on the metadata database.
    const invocations =
      redisUrl === undefined
        ? null
        : new RedisInvocationQueue({ url: redisUrl, logger, capacityPerFunction: options.asyncQueueCapacity });
    return {
      value: { pool, queue, invocations },
      summary: sharedPool.summary,
      close: () => closeAll(pool, queue, ...(invocations === null ? [] : [invocations])),
    };
  }
  if (redisUrl === undefined) {
    const pool = new MemoryPool();
    const queue = new MemoryProvisionQueue({ capacity: queueCapacity });
    return {
      value: { pool, queue, invocations: null },
      summary: 'memory (this process)',
      close: () => closeAll(pool, queue),
    };
  }
  const displayUrl = redisDisplayUrl(redisUrl);
  const pool = new RedisPool({ url: redisUrl, logger });
  const queue = new RedisProvisionQueue({ url: redisUrl, capacity: queueCapacity, logger });
  const invocations = new RedisInvocationQueue({
    url: redisUrl,
    logger,
    capacityPerFunction: options.asyncQueueCapacity,
  });
  try {
    // The constructors do no I/O: make each connect now, so an unreachable Redis fails the start.
    await Promise.all([pool.keys(), queue.size(), invocations.stats('savassan')]);
  } catch (err) {
    await closeAll(pool, queue, invocations);
    // The adapter says `Redis at URL is unavailable (keys): why`; the start only needs the why.
    const message = err instanceof PlatformError ? err.rawMessage : String(err);
    const reason = message.replace(/^Redis at \S+ is unavailable \([^)]*\): /, '');
    throw new PlatformError('UNAVAILABLE', `Redis at ${displayUrl} is unreachable: ${reason}`, { cause: err });
  }
  return {
    value: { pool, queue, invocations },
    summary: `Redis at ${displayUrl}`,
    close: () => closeAll(pool, queue, invocations),
  };
}

/** The metadata store, sealed, and the stores on the same database. */
interface MetadataStores {
  metadata: MetadataStore;
  traffic: TrafficStore;
  invocations: InvocationQueue;
  schedules: ScheduleStore;
  messageQueues: MessageQueues;
  triggers: TriggerStore;
  functionUrls: FunctionUrlStore;
  workflows: WorkflowStore;
  intelligence: IntelligenceStore;
}

function storesOver(store: SqlMetadataStore, options: BackendOptions): MetadataStores {
  const shared = store.shared();
  return {
    metadata: new SealedMetadataStore(store, options.sealer),
    traffic: new SqlTrafficStore(shared),
    invocations: new SqlInvocationQueue(shared, { capacityPerFunction: options.asyncQueueCapacity }),
    schedules: new SqlScheduleStore(shared),
    messageQueues: new SqlMessageQueues(shared),
    triggers: new SqlTriggerStore(shared),
    functionUrls: new SqlFunctionUrlStore(shared),
    workflows: new SqlWorkflowStore(shared),
    intelligence: new SqlIntelligenceStore(shared),
  };
}

async function openMetadata(options: BackendOptions): Promise<Opened<MetadataStores>> {
  const { dbUrl } = options;
  if (dbUrl === undefined) {
    const path = join(options.dataDir, 'savassan.db');
    const store = await openSqliteMetadataStore(path, { durability: options.durability, logger: options.logger });
    return {
      value: storesOver(store, options),
      summary: `SQLite at ${path}`,
      close: () => store.close(),
    };
  }
  const scheme = schemeOf(dbUrl, 'database');
  // Records are acknowledged from a journal in the data dir and committed in batches, as with SQLite; with `full`
  // durability each one is committed before it is acknowledged.
  const serverOptions = {
    journalDir: options.durability === 'process' ? join(options.dataDir, 'journal') : undefined,
    logger: options.logger,
  };
  let store: SqlMetadataStore;
  let engine: string;
  if (scheme === 'postgres:' || scheme === 'postgresql:') {
    engine = 'PostgreSQL';
    store = await openPostgresMetadataStore(dbUrl, serverOptions);
  } else if (scheme === 'mysql:' || scheme === 'mariadb:') {
    engine = 'MySQL';
    store = await openMysqlMetadataStore(dbUrl, serverOptions);
  } else {
    throw new PlatformError(
      'BAD_REQUEST',
      `database URL scheme ${scheme}// is not supported: use postgres:// or mysql:// (leave it out for SQLite)`,
    );
  }
  return {
    value: storesOver(store, options),
    summary: `${engine} at ${displayUrl(dbUrl)}`,
    close: () => store.close(),
  };
}

/** Only the blob store (an Agent needs nothing else): S3 when `s3Url` is given, else `{dataDir}/blobs`. */
export async function openBlobStore(
  options: Pick<BackendOptions, 'dataDir' | 's3Url'>,
): Promise<{ blobStore: BlobStore; summary: string }> {
  try {
    const opened = await openBlobs(options);
    return { blobStore: opened.value, summary: opened.summary };
  } catch (err) {
    throw startError(err);
  }
}

async function openBlobs(
  options: Pick<BackendOptions, 'dataDir' | 's3Url'>,
): Promise<Opened<BlobStore> & { bucket: string }> {
  if (options.s3Url === undefined) {
    const root = join(options.dataDir, 'blobs');
    const store = new FsBlobStore(root);
    return { value: store, bucket: fsBlobBucket, summary: `the filesystem at ${root}`, close: () => store.close() };
  }
  const store = await openS3BlobStore(options.s3Url);
  const prefix = store.keyPrefix === '' ? '' : `, key prefix ${store.keyPrefix}`;
  return {
    value: store,
    bucket: store.bucket,
    summary: `S3 at ${store.endpoint} (bucket ${store.bucket}${prefix})`,
    close: () => store.close(),
  };
}

async function closeAll(...backends: { close(): Promise<void> }[]): Promise<void> {
  await Promise.all(backends.map((backend) => backend.close()));
}

/** The protocol of a URL, with its colon; the URL itself is never echoed (it may hold a password). */
function schemeOf(url: string, what: string): string {
  try {
    return new URL(url).protocol;
  } catch {
    throw new PlatformError('BAD_REQUEST', `the ${what} URL is not a valid URL (expected scheme://host:port/…)`);
  }
}

/** `scheme://host:port/path`: no user, password or query (libpq URLs may carry `?password=`). */
function displayUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
}

function startError(err: unknown): PlatformError {
  const error = PlatformError.from(err, 'UNAVAILABLE');
  return new PlatformError(error.code, `cannot start: ${error.rawMessage}`, { cause: err, details: error.details });
}

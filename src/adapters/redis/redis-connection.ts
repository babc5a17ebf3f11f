import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';

import { PlatformError } from '../../core/errors.js';
import { silentLogger } from '../../core/logger.js';
import type { Logger } from '../../core/logger.js';
import type { LuaSource } from './scripts.js';

/** Connection settings shared by the Redis adapters. */
export interface RedisConnectionOptions {
  /** `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS. */
  url: string;
  /**
   * Prepended to every key, so several clusters or tests can share one server. Default `savassan:`. On Redis
   * Cluster give it a hash tag (`{savassan}:`): the Lua scripts need every key of a pool in one slot.
   */
  keyPrefix?: string;
  /** A command without a reply after this long fails with UNAVAILABLE. Default 2000 ms. */
  commandTimeoutMs?: number;
  /** Where background failures (a mailbox read, an instance given back) are reported. Default: dropped. */
  logger?: Logger;
}

/** {@link RedisConnectionOptions} validated, with defaults applied. */
export interface CompiledRedisConnectionOptions {
  url: string;
  /** The URL without credentials, for messages and logs. */
  displayUrl: string;
  keyPrefix: string;
  commandTimeoutMs: number;
  logger: Logger;
}

const DEFAULT_KEY_PREFIX = 'savassan:';
const DEFAULT_COMMAND_TIMEOUT_MS = 2_000;
/** Reconnect delays grow from 50 ms and stop growing here, so a returning Redis is used again within a second. */
const MAX_RECONNECT_DELAY_MS = 1_000;
const CONNECT_TIMEOUT_MS = 2_000;
/** A blocking connection whose server-side timeout passed this long ago is considered dead (a silent partition). */
const BLOCKING_GRACE_MS = 1_000;
const UNBLOCK_RETRY_MS = 20;
const UNBLOCK_ATTEMPTS = 50;

/** Validates connection options once, at the edge. */
export function compileRedisConnectionOptions(options: RedisConnectionOptions): CompiledRedisConnectionOptions {
  const keyPrefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
  if (keyPrefix.length === 0) throw new PlatformError('BAD_REQUEST', 'Redis key prefix must not be empty');
  const commandTimeoutMs = options.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS;
  if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) {
    throw new PlatformError('BAD_REQUEST', `Redis command timeout must be a positive number, got ${commandTimeoutMs}`);
  }
  return {
    url: options.url,
    displayUrl: redisDisplayUrl(options.url),
    keyPrefix,
    commandTimeoutMs,
    logger: options.logger ?? silentLogger,
  };
}

/** The URL without user name or password; throws BAD_REQUEST for something that is not a Redis URL. */
export function redisDisplayUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PlatformError('BAD_REQUEST', 'Redis URL is not a valid URL (expected redis://host:port/db)');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new PlatformError('BAD_REQUEST', `Redis URL must start with redis:// or rediss://, got ${parsed.protocol}//`);
  }
  parsed.username = '';
  parsed.password = '';
  return parsed.toString();
}

/**
 * Maps a failure of a Redis command to a PlatformError: a refused command (script error, wrong type) is INTERNAL,
 * anything else (no connection, timeout, server loading or read-only) is UNAVAILABLE.
 */
export function redisFailure(err: unknown, displayUrl: string, action: string): PlatformError {
  if (err instanceof PlatformError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const transient = /^(LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|OOM)\b/.test(message);
  if (err instanceof Error && err.name === 'ReplyError' && !transient) {
    return new PlatformError('INTERNAL', `Redis at ${displayUrl} refused ${action}: ${message}`, { cause: err });
  }
  return unavailable(displayUrl, action, message, err);
}

function unavailable(displayUrl: string, action: string, reason: string, cause: unknown): PlatformError {
  return new PlatformError('UNAVAILABLE', `Redis at ${displayUrl} is unavailable (${action}): ${reason}`, { cause });
}

/** ioredis settings that make a command fail fast during an outage while the client reconnects by itself. */
function clientOptions(compiled: CompiledRedisConnectionOptions): RedisOptions {
  return {
    // Constructors do no I/O: the first command connects.
    lazyConnect: true,
    // Commands issued while (re)connecting wait for the next attempt only: each failed attempt flushes them.
    enableOfflineQueue: true,
    maxRetriesPerRequest: 0,
    // A script in flight when the connection dropped may have run: never send it twice.
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(50 * 2 ** Math.max(0, attempt - 1), MAX_RECONNECT_DELAY_MS),
    connectTimeout: CONNECT_TIMEOUT_MS,
    commandTimeout: compiled.commandTimeoutMs,
  };
}

/**
 * Options of a connection dedicated to blocking pops: no command timeout, but a client-side guard that ends a BLPOP
 * whose server-side timeout passed `blockingTimeoutGrace` ago (a silently dead connection). `blockingTimeout` itself
 * only applies to pops without a timeout, which the adapters never send.
 */
const blockingOverrides: RedisOptions = {
  commandTimeout: undefined,
  blockingTimeout: 60_000,
  blockingTimeoutGrace: BLOCKING_GRACE_MS,
};

/**
 * The connections of one adapter: a shared one for commands and scripts, and dedicated ones for blocking pops.
 * Maps every failure to a PlatformError naming Redis and its URL (without credentials), and closes everything once.
 */
export class RedisConnection {
  readonly options: CompiledRedisConnectionOptions;
  /** Shared connection for every non-blocking command. */
  readonly client: Redis;
  readonly #blockers = new Set<Redis>();
  /** The last connection error, so that a command flushed during an outage says why. */
  #lastError: string | undefined;
  #closed = false;

  constructor(options: CompiledRedisConnectionOptions) {
    this.options = options;
    this.client = this.#watch(new Redis(options.url, clientOptions(options)));
  }

  /** A new connection for blocking pops; closed by {@link close} or {@link closeBlocker}. */
  openBlocker(): Redis {
    const blocker = this.#watch(this.client.duplicate(blockingOverrides));
    this.#blockers.add(blocker);
    return blocker;
  }

  /** Closes a blocking connection that is no longer needed (no pop may be running on it). */
  closeBlocker(blocker: Redis): void {
    this.#blockers.delete(blocker);
    blocker.disconnect();
  }

  /** Runs `command`, mapping a failure to a PlatformError for `action` (e.g. 'checkout'). */
  async run<T>(action: string, command: (client: Redis) => Promise<T>): Promise<T> {
    try {
      return await command(this.client);
    } catch (err) {
      throw this.failure(err, action);
    }
  }

  /** Runs a Lua script by its SHA1, loading it on first use (or after a server restart). */
  async runScript(script: LuaScript, keys: string[], args: (string | number)[]): Promise<unknown> {
    return this.run(script.name, (client) => script.run(client, keys, args));
  }

  /** The PlatformError for a failed `action`; UNAVAILABLE errors carry the last connection error when known. */
  failure(err: unknown, action: string): PlatformError {
    // ioredis fails the commands pending when a connection drops with this error; say what is known instead.
    if (err instanceof Error && err.name === 'MaxRetriesPerRequestError') {
      const reason = this.#lastError === undefined ? 'connection lost' : `connection lost (${this.#lastError})`;
      return unavailable(this.options.displayUrl, action, reason, err);
    }
    return redisFailure(err, this.options.displayUrl, action);
  }

  /** Closes every connection; idempotent. Pending replies on the shared connection are awaited briefly. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const blocker of this.#blockers) blocker.disconnect();
    this.#blockers.clear();
    await quit(this.client);
  }

  #watch(client: Redis): Redis {
    // Without a listener ioredis prints every connection error; the adapters report failures through their calls.
    client.on('error', (err: Error) => {
      this.#lastError = err.message;
    });
    client.on('ready', () => {
      this.#lastError = undefined;
    });
    return client;
  }
}

async function quit(client: Redis): Promise<void> {
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  try {
    await client.quit();
  } catch {
    client.disconnect();
  }
}

/** A Lua script run with EVALSHA, falling back to EVAL when the server does not know it yet. */
export class LuaScript {
  readonly name: string;
  readonly #lua: string;
  readonly #sha: string;

  constructor(source: LuaSource) {
    this.name = source.name;
    this.#lua = source.lua;
    this.#sha = createHash('sha1').update(source.lua).digest('hex');
  }

  async run(client: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await client.evalsha(this.#sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('NOSCRIPT'))) throw err;
      return client.eval(this.#lua, keys.length, ...keys, ...args);
    }
  }
}

/** What a blocking pop got: the value (possibly non-null even when interrupted) and whether it was interrupted. */
export interface BlockingPopResult {
  value: string | null;
  interrupted: boolean;
}

/**
 * BLPOP on a dedicated connection that `signal` can interrupt without losing an element: on abort, CLIENT UNBLOCK
 * (sent on `control`) makes the pop return as if timed out; an element it had already taken is still returned, with
 * `interrupted` set, so the caller can put it back. Rejects with the raw ioredis error when the connection fails.
 */
export async function blockingPop(
  blocker: Redis,
  control: Redis,
  key: string,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<BlockingPopResult> {
  // Sent together with the pop: no extra round trip, and the id is at hand if the pop has to be interrupted.
  const clientId = blocker.client('ID');
  const popping = blocker.blpop(key, Math.max(timeoutMs, 1) / 1000);
  clientId.catch(() => undefined); // the pop fails the same way
  let interrupted = false;
  const onAbort = (): void => {
    interrupted = true;
    void unblock(blocker, control, clientId, popping);
  };
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();
  try {
    const reply = await popping;
    return { value: reply?.[1] ?? null, interrupted };
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/**
 * Unblocks a pending pop. CLIENT UNBLOCK can arrive before the pop itself reaches the server (two connections), so
 * it is repeated until the pop settles; as a last resort the blocking connection is dropped.
 */
async function unblock(
  blocker: Redis,
  control: Redis,
  clientId: Promise<number>,
  popping: Promise<unknown>,
): Promise<void> {
  const settled = popping.then(
    () => true,
    () => true,
  );
  let id: number;
  try {
    id = await clientId;
  } catch {
    return;
  }
  for (let attempt = 0; attempt < UNBLOCK_ATTEMPTS; attempt++) {
    try {
      await control.client('UNBLOCK', id);
    } catch {
      // The shared connection is down; the blocking one most likely too, which ends the pop.
    }
    if (await Promise.race([settled, sleep(UNBLOCK_RETRY_MS, false)])) return;
  }
  blocker.disconnect(true);
}

import type { Redis } from 'ioredis';

import { PlatformError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { ProvisionQueue } from '../../core/ports/provision-queue.js';
import type { ProvisionRequest } from '../../core/types.js';
import { requestFromJson, serializedRequest } from './redis-codec.js';
import { blockingPop, compileRedisConnectionOptions, LuaScript, RedisConnection } from './redis-connection.js';
import type { RedisConnectionOptions } from './redis-connection.js';
import { queueScripts } from './scripts.js';

/** Options of {@link RedisProvisionQueue}. */
export interface RedisProvisionQueueOptions extends RedisConnectionOptions {
  /**
   * Most requests held at once; `push` returns false beyond it. Default 1000. Every process sharing the queue must
   * use the same value: each enforces its own when it pushes.
   */
  capacity?: number;
}

const DEFAULT_CAPACITY = 1000;
/** Blocking connections kept open for later pops; a Manager usually has one or two consumers. */
const MAX_IDLE_BLOCKERS = 4;
/** Longest single BLPOP (a day); a longer timeout returns null after it, as a timed-out pop does. */
const MAX_POP_MS = 86_400_000;

const pushScript = new LuaScript(queueScripts.push);

/**
 * ProvisionQueue backed by one Redis list (`{prefix}queue:provision`), shared by every Gateway and Manager of a
 * cluster. `push` checks the capacity and appends in one Lua script; `pop` blocks with BLPOP on a connection of its
 * own (Redis serves blocked pops first-come first-served). An abort or `close` interrupts the BLPOP with CLIENT
 * UNBLOCK; a request it had taken at that moment is put back at the head of the list, so nothing is lost.
 *
 * @example
 * const queue = new RedisProvisionQueue({ url: 'redis://127.0.0.1:6379/0', capacity: 500 });
 * if (!(await queue.push(request))) throw new PlatformError('TOO_MANY_REQUESTS', 'provisioning queue is full');
 */
export class RedisProvisionQueue implements ProvisionQueue {
  readonly capacity: number;
  readonly #redis: RedisConnection;
  readonly #logger: Logger;
  readonly #key: string;
  readonly #idleBlockers: Redis[] = [];
  /** Blocking pops in flight, awaited by `close`. */
  readonly #pops = new Set<Promise<unknown>>();
  readonly #stopping = new AbortController();
  #closed = false;

  constructor(options: RedisProvisionQueueOptions) {
    const capacity = options.capacity ?? DEFAULT_CAPACITY;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new PlatformError('BAD_REQUEST', `provision queue capacity must be a positive integer, got ${capacity}`);
    }
    const compiled = compileRedisConnectionOptions(options);
    this.capacity = capacity;
    this.#redis = new RedisConnection(compiled);
    this.#logger = compiled.logger.child({ component: 'redis-provision-queue' });
    this.#key = `${compiled.keyPrefix}queue:provision`;
  }

  async push(request: ProvisionRequest): Promise<boolean> {
    this.#assertOpen();
    const json = JSON.stringify(serializedRequest(request));
    return (await this.#redis.runScript(pushScript, [this.#key], [this.capacity, json])) === 1;
  }

  async pop(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null> {
    this.#assertOpen();
    if (signal?.aborted) return null;
    if (!(timeoutMs > 0)) {
      const raw = await this.#redis.run('pop', (client) => client.lpop(this.#key));
      return raw === null ? null : requestFromJson(raw);
    }
    const popping = this.#blockingPop(Math.min(timeoutMs, MAX_POP_MS), signal);
    this.#pops.add(popping);
    try {
      return await popping;
    } finally {
      this.#pops.delete(popping);
    }
  }

  async size(): Promise<number> {
    this.#assertOpen();
    return this.#redis.run('size', (client) => client.llen(this.#key));
  }

  /** Resolves blocked pops with null (putting back what they had just taken), then closes every connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopping.abort();
    await Promise.allSettled(this.#pops);
    this.#idleBlockers.length = 0;
    await this.#redis.close();
  }

  async #blockingPop(timeoutMs: number, signal: AbortSignal | undefined): Promise<ProvisionRequest | null> {
    const blocker = this.#idleBlockers.pop() ?? this.#redis.openBlocker();
    const stop = signal ? AbortSignal.any([signal, this.#stopping.signal]) : this.#stopping.signal;
    let popped: { value: string | null; interrupted: boolean };
    try {
      popped = await blockingPop(blocker, this.#redis.client, this.#key, timeoutMs, stop);
    } catch (err) {
      this.#redis.closeBlocker(blocker);
      throw this.#redis.failure(err, 'pop');
    }
    this.#recycle(blocker);
    if (popped.value === null) return null;
    if (popped.interrupted) {
      await this.#putBack(popped.value);
      return null;
    }
    return requestFromJson(popped.value);
  }

  /** Returns a request taken by an interrupted pop to the head of the queue, where it was. */
  async #putBack(raw: string): Promise<void> {
    try {
      await this.#redis.run('pop', (client) => client.lpush(this.#key, raw));
    } catch (err) {
      this.#logger.error({ err, request: raw }, 'lost a provisioning request: could not put it back after an abort');
    }
  }

  #recycle(blocker: Redis): void {
    if (this.#closed || this.#idleBlockers.length >= MAX_IDLE_BLOCKERS) this.#redis.closeBlocker(blocker);
    else this.#idleBlockers.push(blocker);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'Redis provision queue is closed');
  }
}

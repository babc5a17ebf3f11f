import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { PlatformError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { CheckoutOptions, Pool, PoolItem, WaitOptions } from '../../core/ports/pool.js';
import { retiredKeyTtlMs } from '../../core/ports/pool.js';
import { poolKey } from '../../core/types.js';
import type { InstanceRef, SerializedError } from '../../core/types.js';
import {
  deliveryFromJson,
  instanceFromJson,
  numberList,
  optionalString,
  serializedError,
  serializedInstance,
  stringList,
} from './redis-codec.js';
import type { Delivery } from './redis-codec.js';
import { blockingPop, compileRedisConnectionOptions, LuaScript, RedisConnection } from './redis-connection.js';
import type { RedisConnectionOptions } from './redis-connection.js';
import { poolScripts } from './scripts.js';

/** Options of {@link RedisPool}. */
export interface RedisPoolOptions extends RedisConnectionOptions {
  /**
   * Clock for `idleSince`, lease expiry and waiter deadlines (ms since epoch). Every gateway and manager sharing a
   * pool compares these stamps, so their clocks must agree within `waiterGraceMs`. Wait timeouts use real timers.
   */
  now?: () => number;
  /**
   * How long a waiter's registration outlives its timeout. A waiter normally removes itself when it times out; this
   * bounds how long the waiter of a gateway that died keeps counting (and can be handed an instance, which is then
   * reclaimed when its lease expires). Default 5000 ms.
   */
  waiterGraceMs?: number;
}

/** A waiter as queued in Redis (`pool:waiters:{key}`): where to deliver and how to lease. */
interface WaiterEntry {
  id: string;
  /** The mailbox list of the RedisPool that waits. */
  mailbox: string;
  holder: string;
  leaseMs: number;
  /** After this (ms since epoch) the entry is skipped: its gateway is presumed dead. */
  deadline: number;
}

type ScriptName = keyof typeof poolScripts;

const scripts = Object.fromEntries(
  Object.entries(poolScripts).map(([name, source]) => [name, new LuaScript(source)]),
) as Record<ScriptName, LuaScript>;

const DEFAULT_WAITER_GRACE_MS = 5_000;
/** The longest delay setTimeout supports. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Server-side timeout of one mailbox read; the reader loops until the pool closes. */
const MAILBOX_BLOCK_MS = 10_000;
/** Pause before reading the mailbox again after a failed read (Redis down). */
const MAILBOX_RETRY_MS = 200;
/** How long a timed-out waiter whose entry was taken at the same moment waits for that delivery to be handled. */
const ORPHAN_WAIT_MS = 2_000;
/** Most deliveries given back when the pool closes; more would mean a runaway producer. */
const MAX_DRAINED_ON_CLOSE = 10_000;

/**
 * Pool backed by Redis, shared by every Gateway and Manager of a cluster. Each operation is one Lua script, so an
 * instance is idle or leased, never both, and is never handed out twice.
 *
 * Waiters are queued in Redis (`pool:waiters:{key}`, FIFO across all gateways); `push` hands an instance to the
 * oldest live waiter inside the same script, leasing it with that waiter's holder, and appends it to the mailbox
 * list of the waiter's RedisPool. One dedicated connection per RedisPool reads its mailbox with BLPOP and settles
 * the local `wait` calls, however many there are. A waiter that times out or is aborted removes its entry in one
 * script; if a push won the race, the instance already delivered to it is given back (to the next waiter or idle)
 * before `wait` resolves null. Keys are described in `docs/redis-keys.md`.
 *
 * If Redis loses its data (a restart without persistence), blocked waiters are queued again when the connection
 * comes back, detected by the `pool:epoch` key changing.
 *
 * @example
 * const pool = new RedisPool({ url: 'redis://127.0.0.1:6379/0', keyPrefix: 'savassan:' });
 * const lease = { holder: 'gw-1', leaseMs: 60_000 };
 * const item = await pool.wait('hello:9f86d081884c7d65@1', { ...lease, timeoutMs: 30_000 }); // null on timeout
 * await pool.close();
 */
export class RedisPool implements Pool {
  readonly #redis: RedisConnection;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #waiterGraceMs: number;
  readonly #prefix: string;
  /** `pool:keys`: passed as KEYS[1] to every script (cluster routing). */
  readonly #keysKey: string;
  readonly #mailbox: string;
  readonly #epochKey: string;
  #epoch: string | undefined;
  /** This process's blocked `wait` calls by waiter id, oldest first. */
  readonly #waits = new Map<string, PendingWait>();
  /** Registrations in flight, awaited by `close` so that none lands after the waiters are cancelled. */
  readonly #registering = new Set<Promise<unknown>>();
  readonly #stopping = new AbortController();
  #reader: Promise<void> | undefined;
  #closed = false;

  constructor(options: RedisPoolOptions) {
    const compiled = compileRedisConnectionOptions(options);
    const waiterGraceMs = options.waiterGraceMs ?? DEFAULT_WAITER_GRACE_MS;
    if (!Number.isFinite(waiterGraceMs) || waiterGraceMs < 0) {
      throw new PlatformError('BAD_REQUEST', `waiterGraceMs must be a non-negative number, got ${waiterGraceMs}`);
    }
    this.#redis = new RedisConnection(compiled);
    this.#logger = compiled.logger.child({ component: 'redis-pool' });
    this.#now = options.now ?? Date.now;
    this.#waiterGraceMs = waiterGraceMs;
    this.#prefix = compiled.keyPrefix;
    this.#keysKey = `${compiled.keyPrefix}pool:keys`;
    this.#mailbox = `${compiled.keyPrefix}pool:mailbox:${randomUUID()}`;
    this.#epochKey = `${compiled.keyPrefix}pool:epoch`;
    this.#redis.client.on('ready', () => void this.#checkEpoch());
  }

  async checkout(key: string, options: CheckoutOptions): Promise<InstanceRef | null> {
    this.#assertOpen();
    const json = optionalString(
      await this.#script('checkout', [this.#now(), key, options.holder, options.leaseMs]),
      'checkout',
    );
    return json === null ? null : instanceFromJson(json);
  }

  async wait(key: string, options: WaitOptions): Promise<PoolItem | null> {
    this.#assertOpen();
    const { signal } = options;
    if (signal?.aborted) return null;
    // NaN or <= 0: no blocking. Longer than a timer can run: clamped, as setTimeout would otherwise fire at once.
    if (!(options.timeoutMs > 0)) {
      const instance = await this.checkout(key, options);
      return instance ? { kind: 'instance', instance } : null;
    }
    const timeoutMs = Math.min(options.timeoutMs, MAX_TIMER_MS);
    const startedAt = Date.now();
    const entry: WaiterEntry = {
      id: randomUUID(),
      mailbox: this.#mailbox,
      holder: options.holder,
      leaseMs: options.leaseMs,
      deadline: this.#now() + timeoutMs + this.#waiterGraceMs,
    };
    const pending = new PendingWait(key, entry);
    // Registered locally first: the delivery can reach the mailbox reader before the script's reply reaches us.
    this.#waits.set(entry.id, pending);
    this.#startReader();
    try {
      await this.#track(this.#register(pending, false, signal));
    } catch (err) {
      // Served by a delivery anyway: the script ran and only its reply was lost.
      if (pending.state !== 'waiting') return pending.result;
      this.#waits.delete(entry.id);
      throw err;
    }
    if (pending.state === 'waiting') {
      pending.arm(timeoutMs - (Date.now() - startedAt), signal, () => void this.#expire(pending));
    }
    return pending.result;
  }

  async push(instance: InstanceRef): Promise<boolean> {
    this.#assertOpen();
    // 'duplicate' (already idle) leaves the instance idle once, as the port asks.
    return (await this.#pushScript(instance, '')) !== 'retired';
  }

  async restore(instances: InstanceRef[]): Promise<InstanceRef[]> {
    this.#assertOpen();
    if (instances.length === 0) return [];
    const now = this.#now();
    const args = instances.flatMap((instance) => [
      instance.instanceId,
      poolKey(instance),
      instance.nodeId,
      JSON.stringify(serializedInstance(instance, now)),
    ]);
    return this.#instances('restore', [now, ...args]);
  }

  async pushFailure(key: string, error: SerializedError): Promise<boolean> {
    this.#assertOpen();
    const item: PoolItem = { kind: 'failure', error: serializedError(error) };
    const reply = await this.#script('pushFailure', [this.#now(), key, JSON.stringify(item)]);
    return reply === 1;
  }

  async release(instanceId: string): Promise<void> {
    this.#assertOpen();
    await this.#script('release', [instanceId]);
  }

  /** No-op when the instance is not checked out (returned, released or reclaimed meanwhile). */
  async renew(instanceId: string, leaseMs: number): Promise<void> {
    this.#assertOpen();
    await this.#script('renew', [this.#now(), instanceId, leaseMs]);
  }

  async reapIdle(key: string, idleBefore: number, keep: number): Promise<InstanceRef[]> {
    this.#assertOpen();
    return this.#instances('reapIdle', [key, idleBefore, keep]);
  }

  async drain(key: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    return this.#instances('drain', [key]);
  }

  async retire(key: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    return this.#instances('retire', [key, retiredKeyTtlMs]);
  }

  async purgeNode(nodeId: string): Promise<InstanceRef[]> {
    this.#assertOpen();
    return this.#instances('purgeNode', [nodeId]);
  }

  async reclaimExpired(now: number): Promise<InstanceRef[]> {
    this.#assertOpen();
    return this.#instances('reclaimExpired', [now]);
  }

  async stats(key: string): Promise<{ idle: number; checkedOut: number; waiters: number }> {
    this.#assertOpen();
    const [idle, checkedOut, waiters] = numberList(await this.#script('stats', [this.#now(), key]), 'stats', 3);
    return { idle: idle ?? 0, checkedOut: checkedOut ?? 0, waiters: waiters ?? 0 };
  }

  async instances(key: string): Promise<{ idle: number; checkedOut: number }> {
    this.#assertOpen();
    const [idle, checkedOut] = numberList(await this.#script('instances', [key]), 'instances', 2);
    return { idle: idle ?? 0, checkedOut: checkedOut ?? 0 };
  }

  async keys(): Promise<string[]> {
    this.#assertOpen();
    return this.#redis.run('keys', (client) => client.hkeys(this.#keysKey));
  }

  /**
   * Resolves every pending `wait` with null and removes its registration, gives back what was already delivered to
   * this pool, then closes every connection. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.allSettled(this.#registering);
    const pending = [...this.#waits.values()];
    this.#waits.clear();
    for (const wait of pending) wait.settle(null);
    if (pending.length > 0) {
      await this.#script(
        'cancel',
        pending.flatMap((wait) => [wait.key, wait.entryJson]),
      ).catch((err: unknown) => this.#logger.warn({ err }, 'could not remove waiters from Redis on close'));
    }
    this.#stopping.abort();
    if (this.#reader) {
      await this.#reader;
      await this.#drainMailbox();
    }
    await this.#redis.close();
  }

  /** Queues the waiter in Redis, or serves it at once from an idle instance. */
  async #register(pending: PendingWait, onlyIfAbsent: boolean, signal?: AbortSignal): Promise<void> {
    const { entry } = pending;
    const json = optionalString(
      await this.#script('wait', [
        this.#now(),
        pending.key,
        entry.holder,
        entry.leaseMs,
        entry.id,
        pending.entryJson,
        onlyIfAbsent ? '1' : '0',
      ]),
      'wait',
    );
    if (json === null) return;
    this.#waits.delete(entry.id);
    const instance = instanceFromJson(json);
    if (pending.state === 'waiting' && !signal?.aborted) {
      pending.settle({ kind: 'instance', instance });
      return;
    }
    pending.settle(null);
    await this.#giveBack(instance, entry.id);
  }

  /** Timeout or abort: removes the waiter's entry; if a push served it meanwhile, waits until that is given back. */
  async #expire(pending: PendingWait): Promise<void> {
    if (pending.state !== 'waiting') return;
    pending.state = 'cancelling';
    // An entry that is no longer queued was taken by a push or dropped as expired; either left a mailbox message.
    let delivered = false;
    try {
      const [removed] = numberList(await this.#script('cancel', [pending.key, pending.entryJson]), 'cancel', 1);
      delivered = removed === 0;
    } catch (err) {
      // The entry stays queued until its deadline; anything delivered to it is given back by the reader.
      this.#logger.warn({ err }, 'could not remove a timed-out waiter from Redis');
    }
    if (delivered) await pending.orphanReturned(ORPHAN_WAIT_MS);
    this.#waits.delete(pending.entry.id);
    pending.settle(null);
  }

  #startReader(): void {
    this.#reader ??= this.#readMailbox();
  }

  /** Reads this pool's mailbox until close, on a connection of its own. */
  async #readMailbox(): Promise<void> {
    const blocker = this.#redis.openBlocker();
    const signal = this.#stopping.signal;
    while (!signal.aborted) {
      try {
        const { value } = await blockingPop(blocker, this.#redis.client, this.#mailbox, MAILBOX_BLOCK_MS, signal);
        if (value !== null) await this.#dispatch(value);
      } catch (err) {
        if (signal.aborted) break;
        this.#logger.debug({ err }, 'reading the pool mailbox failed; retrying');
        await sleep(MAILBOX_RETRY_MS, undefined, { signal }).catch(() => undefined);
      }
    }
    this.#redis.closeBlocker(blocker);
  }

  /** Settles the waiter a delivery is for, or gives the instance back when that waiter is gone. Never throws. */
  async #dispatch(raw: string): Promise<void> {
    let delivery: Delivery;
    try {
      delivery = deliveryFromJson(raw);
    } catch (err) {
      this.#logger.error({ err }, 'dropped a malformed pool delivery');
      return;
    }
    const pending = this.#waits.get(delivery.waiter);
    if (pending?.state === 'waiting') {
      this.#waits.delete(delivery.waiter);
      pending.settle(delivery.item);
      return;
    }
    // A failure for a waiter that is gone is dropped, as when nobody waits.
    if (delivery.item?.kind === 'instance') await this.#giveBack(delivery.item.instance, delivery.waiter);
    pending?.orphanHandled();
  }

  /** Empties the mailbox when closing: whatever is there was meant for waiters that no longer exist. */
  async #drainMailbox(): Promise<void> {
    try {
      for (let drained = 0; drained < MAX_DRAINED_ON_CLOSE; drained++) {
        const raw = await this.#redis.run('close', (client) => client.lpop(this.#mailbox));
        if (raw === null) return;
        await this.#dispatch(raw);
      }
    } catch (err) {
      this.#logger.warn({ err }, 'could not empty the pool mailbox on close');
    }
  }

  /** Returns an instance leased to a waiter that is gone, unless it changed hands meanwhile. Never throws. */
  async #giveBack(instance: InstanceRef, waiterId: string): Promise<void> {
    try {
      await this.#pushScript(instance, waiterId);
    } catch (err) {
      // Still leased to the gone waiter: reclaimExpired reports it when the lease runs out.
      this.#logger.warn({ err, instanceId: instance.instanceId }, 'could not give back an instance of a gone waiter');
    }
  }

  async #pushScript(instance: InstanceRef, expectWaiter: string): Promise<string> {
    const now = this.#now();
    const json = JSON.stringify(serializedInstance(instance, now));
    const key = poolKey(instance);
    const reply = await this.#script('push', [now, instance.instanceId, key, instance.nodeId, json, expectWaiter]);
    return optionalString(reply, 'push') ?? '';
  }

  /**
   * After a reconnect: if the epoch key changed, Redis lost its data (and with it the queued waiters), so every
   * blocked waiter of this process is queued again, oldest first.
   */
  async #checkEpoch(): Promise<void> {
    try {
      const client = this.#redis.client;
      // A fresh value each time: after a data loss, the first client back sets a new epoch that everyone then reads.
      await client.set(this.#epochKey, randomUUID(), 'NX');
      const current = await client.get(this.#epochKey);
      const previous = this.#epoch;
      this.#epoch = current ?? undefined;
      if (previous === undefined || previous === current) return;
      this.#logger.warn({ url: this.#redis.options.displayUrl }, 'Redis lost its data; queueing blocked waiters again');
      for (const pending of [...this.#waits.values()]) {
        if (pending.state === 'waiting') await this.#track(this.#register(pending, true));
      }
    } catch (err) {
      this.#logger.warn({ err }, 'could not check the Redis pool epoch after a reconnect');
    }
  }

  async #track<T>(operation: Promise<T>): Promise<T> {
    this.#registering.add(operation);
    try {
      return await operation;
    } finally {
      this.#registering.delete(operation);
    }
  }

  async #instances(name: ScriptName, args: (string | number)[]): Promise<InstanceRef[]> {
    return stringList(await this.#script(name, args), name).map(instanceFromJson);
  }

  #script(name: ScriptName, args: (string | number)[]): Promise<unknown> {
    return this.#redis.runScript(scripts[name], [this.#keysKey], [this.#prefix, ...args]);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'Redis pool is closed');
  }
}

/** One blocked `wait` call: its Redis entry, its promise, and its timer and abort listener once armed. */
class PendingWait {
  /** waiting: may be served; cancelling: timed out or aborted, removing its entry; done: settled. */
  state: 'waiting' | 'cancelling' | 'done' = 'waiting';
  readonly key: string;
  readonly entry: WaiterEntry;
  /** The exact string queued in Redis, which LREM needs to find it. */
  readonly entryJson: string;
  readonly result: Promise<PoolItem | null>;
  #resolve: (item: PoolItem | null) => void = () => {};
  #disarm = (): void => {};
  #orphanDone = false;
  #onOrphanDone = (): void => {};

  constructor(key: string, entry: WaiterEntry) {
    this.key = key;
    this.entry = entry;
    this.entryJson = JSON.stringify(entry);
    this.result = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  /** Starts the timeout and the abort listener; `expire` runs when either fires. */
  arm(timeoutMs: number, signal: AbortSignal | undefined, expire: () => void): void {
    const timer = setTimeout(expire, Math.max(0, timeoutMs));
    signal?.addEventListener('abort', expire, { once: true });
    this.#disarm = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', expire);
    };
    if (signal?.aborted) expire();
  }

  /** Resolves the `wait` call once; later calls do nothing. */
  settle(item: PoolItem | null): void {
    if (this.state === 'done') return;
    this.state = 'done';
    this.#disarm();
    this.orphanHandled();
    this.#resolve(item);
  }

  /** The reader gave back what was delivered to this waiter after it stopped waiting. */
  orphanHandled(): void {
    this.#orphanDone = true;
    this.#onOrphanDone();
  }

  /** Resolves when {@link orphanHandled} has been called (maybe already), or after `capMs`. */
  orphanReturned(capMs: number): Promise<void> {
    if (this.#orphanDone) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, capMs);
      this.#onOrphanDone = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

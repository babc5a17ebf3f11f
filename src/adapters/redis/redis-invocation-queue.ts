import { randomUUID } from 'node:crypto';

import { PlatformError } from '../../core/errors.js';
import { timeOrderedUuid } from '../../core/ids.js';
import {
  attemptsFromJson,
  storedAttempt,
  deadLetterLimit,
  defaultQueueCapacityPerFunction,
  queueFullError,
  validateAttempt,
  validateCapacity,
  validateEndedRetention,
  validateEnqueue,
  validateQueuedFunctionName,
  validateReceive,
  validTime,
} from '../../core/invocation-queue-rules.js';
import { idempotencyWindowMs } from '../../core/ports/invocation-queue.js';
import type {
  EnqueueResult,
  InvocationAttempt,
  InvocationDelivery,
  InvocationEnqueue,
  InvocationQueue,
  InvocationQueueStats,
  QueuedInvocation,
  QueuedInvocationState,
  ReceiveOptions,
} from '../../core/ports/invocation-queue.js';
import { invocationQueueScripts } from './invocation-queue-scripts.js';
import { compileRedisConnectionOptions, LuaScript, RedisConnection } from './redis-connection.js';
import type { RedisConnectionOptions } from './redis-connection.js';

/** Options of {@link RedisInvocationQueue}. */
export interface RedisInvocationQueueOptions extends RedisConnectionOptions {
  /**
   * Events queued or running per function; `enqueue` beyond it fails with TOO_MANY_REQUESTS. Default 10 000. Every
   * process sharing the queue must use the same value: each enforces its own when it enqueues.
   */
  capacityPerFunction?: number;
  /**
   * How long a succeeded or failed event stays readable with `get` after it ended (ms): its key expires then, by
   * Redis's clock. Default 7 days.
   */
  endedRetentionMs?: number;
  /**
   * The clock, epoch ms: due times, visibility expiry and the idempotency window. Default `Date.now`. Processes
   * sharing a queue must agree on it.
   */
  now?: () => number;
}

const scripts = {
  enqueue: new LuaScript(invocationQueueScripts.enqueue),
  receive: new LuaScript(invocationQueueScripts.receive),
  settle: new LuaScript(invocationQueueScripts.settle),
  redrive: new LuaScript(invocationQueueScripts.redrive),
  listDeadLetters: new LuaScript(invocationQueueScripts.listDeadLetters),
  purgeDeadLetters: new LuaScript(invocationQueueScripts.purgeDeadLetters),
  stats: new LuaScript(invocationQueueScripts.stats),
  leave: new LuaScript(invocationQueueScripts.leave),
};

const states: ReadonlySet<string> = new Set<QueuedInvocationState>([
  'queued',
  'running',
  'succeeded',
  'failed',
  'dead_lettered',
]);

type SettleOutcome = 'succeeded' | 'failed' | 'retry' | 'dead_lettered';

/**
 * InvocationQueue on Redis Streams, shared by every process of a cluster under one key prefix (`docs/redis-keys.md`
 * lists the keys). Each event is a hash; each function has a stream read by the consumer group `dispatchers`, each
 * `RedisInvocationQueue` object being one consumer. An event waits in its function's sorted set of waiting events
 * until due, then becomes a stream entry (moved by the next enqueue or receive of the function, so no timer runs);
 * `receive` reads ready entries with XREADGROUP and takes over deliveries whose visibility expired with XAUTOCLAIM;
 * settling acknowledges and deletes the entry (XACK, XDEL) and updates the event in the same script, so a stale
 * receipt changes nothing.
 *
 * Visibility is judged by the queue's clock (`now`), not Redis's idle time: the event's hash holds its visibility
 * expiry, and an expired delivery is claimed with XAUTOCLAIM at min-idle 0 starting at its own entry. Succeeded and
 * failed events expire after `endedRetentionMs`; dead letters stay until redriven or purged.
 *
 * @example
 * const queue = new RedisInvocationQueue({ url: 'redis://127.0.0.1:6379/0' });
 * const { id } = await queue.enqueue({ functionName: 'billing', payload: '{"order":42}' });
 * const [delivery] = await queue.receive({ max: 1, visibilityMs: 30_000 });
 */
export class RedisInvocationQueue implements InvocationQueue {
  readonly capacityPerFunction: number;
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  /** KEYS[1] of every script: routes it on a Redis Cluster. */
  readonly #routeKey: string;
  readonly #consumer = `consumer-${randomUUID()}`;
  readonly #endedRetentionMs: number;
  readonly #now: () => number;
  /** Functions whose stream group knows this consumer (it received from them). */
  readonly #joined = new Set<string>();
  #closed = false;

  constructor(options: RedisInvocationQueueOptions) {
    this.capacityPerFunction = validateCapacity(options.capacityPerFunction ?? defaultQueueCapacityPerFunction);
    this.#endedRetentionMs = validateEndedRetention(options.endedRetentionMs);
    const compiled = compileRedisConnectionOptions(options);
    this.#redis = new RedisConnection(compiled);
    this.#prefix = compiled.keyPrefix;
    this.#routeKey = `${compiled.keyPrefix}iq:functions`;
    this.#now = options.now ?? Date.now;
  }

  async enqueue(input: InvocationEnqueue): Promise<EnqueueResult> {
    this.#assertOpen();
    const now = this.#now();
    const { dueAt, idempotencyKey } = validateEnqueue(input, now);
    const [id, outcome] = (await this.#run(scripts.enqueue, now, [
      input.functionName,
      input.payload,
      dueAt,
      idempotencyKey ?? '',
      timeOrderedUuid(now),
      this.capacityPerFunction,
      idempotencyWindowMs,
    ])) as [string, number];
    if (outcome === 2) throw queueFullError(input.functionName, this.capacityPerFunction);
    return { id, duplicate: outcome === 1 };
  }

  async receive(options: ReceiveOptions): Promise<InvocationDelivery[]> {
    this.#assertOpen();
    validateReceive(options);
    const reply = (await this.#run(scripts.receive, this.#now(), [
      options.max,
      options.visibilityMs,
      options.functionName ?? '',
      this.#consumer,
      randomUUID(),
    ])) as (string | number)[];
    const deliveries: InvocationDelivery[] = [];
    for (let i = 0; i < reply.length; i += 8) {
      this.#joined.add(String(reply[i + 1]));
      deliveries.push({
        id: String(reply[i]),
        functionName: String(reply[i + 1]),
        payload: String(reply[i + 2]),
        enqueuedAt: new Date(Number(reply[i + 3])),
        receipt: String(reply[i + 4]),
        deliveryCount: Number(reply[i + 5]),
        attempts: attemptsFromJson(String(reply[i + 6])),
        redrivenAt: reply[i + 7] === '' ? null : new Date(Number(reply[i + 7])),
      });
    }
    return deliveries;
  }

  complete(receipt: string, attempt: InvocationAttempt): Promise<boolean> {
    return this.#settle(receipt, 'succeeded', attempt, '');
  }

  fail(receipt: string, attempt: InvocationAttempt): Promise<boolean> {
    return this.#settle(receipt, 'failed', attempt, '');
  }

  async retry(receipt: string, attempt: InvocationAttempt, notBefore: Date): Promise<boolean> {
    this.#assertOpen();
    const dueAt = validTime(notBefore, 'the retry time');
    return this.#settle(receipt, 'retry', attempt, String(dueAt));
  }

  deadLetter(receipt: string, attempt: InvocationAttempt | null, reason: string): Promise<boolean> {
    return this.#settle(receipt, 'dead_lettered', attempt, reason);
  }

  async get(id: string): Promise<QueuedInvocation | null> {
    this.#assertOpen();
    const fields = await this.#redis.run('get', (client) => client.hgetall(`${this.#prefix}iq:event:${id}`));
    return fields['state'] === undefined ? null : queuedFromHash(id, fields, this.#now());
  }

  async listDeadLetters(functionName: string, limit?: number): Promise<QueuedInvocation[]> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    const count = deadLetterLimit(limit);
    const now = this.#now();
    const reply = (await this.#run(scripts.listDeadLetters, now, [functionName, count])) as string[][];
    const listed: QueuedInvocation[] = [];
    for (const flat of reply) {
      const fields: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]!] = flat[i + 1]!;
      if (fields['state'] !== undefined) listed.push(queuedFromHash(fields['id']!, fields, now));
    }
    return listed;
  }

  async redrive(functionName: string, id: string): Promise<boolean> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    return (await this.#run(scripts.redrive, this.#now(), [functionName, id])) === 1;
  }

  async purgeDeadLetters(functionName: string): Promise<number> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    return Number(await this.#run(scripts.purgeDeadLetters, this.#now(), [functionName]));
  }

  async stats(functionName: string): Promise<InvocationQueueStats> {
    this.#assertOpen();
    validateQueuedFunctionName(functionName);
    const [live, running, dead, oldest] = (await this.#run(scripts.stats, this.#now(), [functionName])) as [
      number,
      number,
      number,
      string,
    ];
    return {
      queued: live - running,
      running,
      deadLettered: dead,
      oldestEnqueuedAt: oldest === '' ? null : new Date(Number(oldest)),
    };
  }

  /**
   * Leaves the consumer group where this consumer holds no delivery, and closes the connection. Deliveries it still
   * holds are taken over by other consumers once their visibility ends (so is the consumer of a process that died:
   * it stays in the group, holding nothing).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      if (this.#joined.size > 0) await this.#run(scripts.leave, this.#now(), [this.#consumer, ...this.#joined]);
    } catch {
      // Redis is unreachable: the consumer stays in the group, holding nothing once its deliveries are taken over.
    }
    await this.#redis.close();
  }

  async #settle(
    receipt: string,
    outcome: SettleOutcome,
    attempt: InvocationAttempt | null,
    extra: string,
  ): Promise<boolean> {
    this.#assertOpen();
    if (attempt !== null) validateAttempt(attempt);
    const json = attempt === null ? '' : JSON.stringify(storedAttempt(attempt));
    const settled = await this.#run(scripts.settle, this.#now(), [
      receipt,
      outcome,
      json,
      extra,
      this.#endedRetentionMs,
    ]);
    return settled === 1;
  }

  #run(script: LuaScript, now: number, args: (string | number)[]): Promise<unknown> {
    return this.#redis.runScript(script, [this.#routeKey], [this.#prefix, now, ...args]);
  }

  #assertOpen(): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', 'Redis invocation queue is closed');
  }
}

function queuedFromHash(id: string, fields: Record<string, string>, now: number): QueuedInvocation {
  const stored = fields['state'] ?? '';
  if (!states.has(stored))
    throw new PlatformError('INTERNAL', `queued invocation ${id} is in an unknown state ${stored}`);
  const dueAt = fields['due'] === undefined ? null : Number(fields['due']);
  const state = stored === 'running' && dueAt !== null && dueAt <= now ? 'queued' : (stored as QueuedInvocationState);
  const deadLetteredAt = fields['dla'];
  return {
    id,
    functionName: fields['fn'] ?? '',
    state,
    payload: fields['payload'] ?? '',
    enqueuedAt: new Date(Number(fields['enq'])),
    dueAt: dueAt === null ? null : new Date(dueAt),
    deliveryCount: Number(fields['dc'] ?? 0),
    attempts: attemptsFromJson(fields['attempts'] ?? '[]'),
    idempotencyKey: fields['ikey'] ?? null,
    deadLetterReason: fields['dlr'] ?? null,
    deadLetteredAt: deadLetteredAt === undefined ? null : new Date(Number(deadLetteredAt)),
    redrivenAt: fields['rda'] === undefined ? null : new Date(Number(fields['rda'])),
  };
}

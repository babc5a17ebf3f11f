import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { PlatformError, isPlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { CheckoutOptions, Pool, PoolItem, WaitOptions } from '../core/ports/pool.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { InstanceRef, ProvisionRequest, SerializedError } from '../core/types.js';
import { LeaderClient } from './leader-client.js';

/**
 * Which manager leads, and where its Leader service listens: the cluster wiring reads the leader's id from etcd's
 * election and its address from the managers registry.
 */
export interface LeaderResolver {
  /** The leader now (may be remembered from an earlier read); rejects UNAVAILABLE while nobody leads. */
  current(): Promise<{ id: string; address: string }>;
  /**
   * Forget the leader resolved so far: the next `current()` reads again. `staleId`, when given, is the manager that
   * turned out not to lead (a forwarded answer named another) or not to answer.
   */
  invalidate(staleId?: string): void;
}

export interface LeaderLinkOptions {
  resolver: LeaderResolver;
  /** The shared cluster token. */
  token: string;
  /** How long a call that does not block keeps retrying while the leader is unreachable or changing. Default 5 s. */
  retryMs?: number | undefined;
  logger?: Logger | undefined;
}

/** The first pause between two tries, and the longest: short, since a handover or failover takes about a second. */
const firstBackoffMs = 25;
const maxBackoffMs = 500;

/** Whether a failed call may be made again (to the leader resolved again). */
function retryable(err: unknown, safeToRepeat: boolean): boolean {
  if (!isPlatformError(err, 'UNAVAILABLE')) return false;
  // Never delivered (refused connection, unverified manager, nobody leads, not the leader): nothing happened.
  return err.details.notDelivered === true || safeToRepeat;
}

/**
 * The connection to whichever manager leads, shared by the calls of one LeaderPool or LeaderProvisionQueue: one
 * client at a time, replaced when the leader changes (a `savassan-leader` answer) or stops answering.
 */
class LeaderLink {
  private readonly resolver: LeaderResolver;
  private readonly token: string;
  private readonly retryMs: number;
  private readonly logger: Logger;
  private target: LeaderClient | null = null;
  private readonly closing = new AbortController();

  constructor(
    options: LeaderLinkOptions,
    private readonly what: string,
  ) {
    this.resolver = options.resolver;
    this.token = options.token;
    this.retryMs = options.retryMs ?? 5000;
    this.logger = (options.logger ?? silentLogger).child({ component: what });
  }

  /** Aborts when the link closes. */
  get closed(): AbortSignal {
    return this.closing.signal;
  }

  assertOpen(method: string): void {
    if (this.closing.signal.aborted) {
      throw new PlatformError('UNAVAILABLE', `cannot call ${method}: the ${this.what} is closed`);
    }
  }

  /**
   * Run `call` on the leader's client; on UNAVAILABLE (when safe to repeat, or when the call never left), resolve
   * the leader again and retry with backoff until `deadline` (default: `retryMs` from now). Rejects with the last
   * error once time is up.
   */
  async run<T>(
    method: string,
    call: (client: LeaderClient) => Promise<T>,
    options: { safeToRepeat: boolean; deadline?: number | undefined; signal?: AbortSignal | undefined },
  ): Promise<T> {
    this.assertOpen(method);
    const deadline = options.deadline ?? Date.now() + this.retryMs;
    let backoffMs = firstBackoffMs;
    for (;;) {
      let client: LeaderClient | null = null;
      try {
        client = await this.client();
        return await call(client);
      } catch (err) {
        if (this.closing.signal.aborted) {
          throw new PlatformError('UNAVAILABLE', `cannot call ${method}: the ${this.what} is closed`, { cause: err });
        }
        // A leader that cannot be resolved (nobody leads) was never called.
        if (!retryable(err, options.safeToRepeat || client === null)) throw err;
        if (client !== null) this.drop(client);
        if (Date.now() + backoffMs >= deadline || options.signal?.aborted === true) throw err;
        this.logger.debug({ err, method, backoffMs }, 'leader call failed: resolving the leader again');
      }
      const signal =
        options.signal === undefined ? this.closing.signal : AbortSignal.any([this.closing.signal, options.signal]);
      await sleep(backoffMs, undefined, { signal }).catch(() => undefined);
      backoffMs = Math.min(backoffMs * 2, maxBackoffMs);
    }
  }

  close(): void {
    if (this.closing.signal.aborted) return;
    this.closing.abort();
    this.target?.close();
    this.target = null;
  }

  private async client(): Promise<LeaderClient> {
    if (this.target !== null) return this.target;
    const { id, address } = await this.resolver.current();
    this.assertOpen('a call');
    // Another call may have resolved meanwhile.
    if (this.target !== null) return this.target;
    const client = new LeaderClient({
      managerId: id,
      address,
      token: this.token,
      onLeader: (leaderId) => {
        if (this.target !== client) return;
        this.logger.info({ from: id, to: leaderId }, 'the leader moved: following it');
        this.drop(client);
      },
    });
    this.target = client;
    return client;
  }

  /** Stop using `client` (no longer the leader, or unreachable): calls under way on it finish where they are. */
  private drop(client: LeaderClient): void {
    if (this.target !== client) return;
    this.target = null;
    this.resolver.invalidate(client.managerId);
    client.closeWhenIdle();
  }
}

/**
 * The warm pool the control-plane leader holds (`--pool leader`), over its Leader service. Calls go to the manager
 * that leads; while it changes (a handover, a failover) or cannot be reached, calls that are safe to repeat are made
 * again to the leader resolved anew, within about `retryMs`; a wait keeps its waiter id and its own deadline.
 */
export class LeaderPool implements Pool {
  private readonly link: LeaderLink;
  /** Waits under way: close() ends them with null. */
  private readonly waits = new Set<AbortController>();

  constructor(options: LeaderLinkOptions) {
    this.link = new LeaderLink(options, 'leader pool');
  }

  checkout(key: string, options: CheckoutOptions): Promise<InstanceRef | null> {
    return this.link.run('Checkout', (client) => client.checkout(key, options), { safeToRepeat: false });
  }

  /**
   * Wait on the leader. The wait has one id for its whole life, so when it is made again (the leader changed or was
   * unreachable) it keeps its place among the waiters, and an instance already handed to it is not lost.
   */
  async wait(key: string, options: WaitOptions): Promise<PoolItem | null> {
    this.link.assertOpen('Wait');
    if (options.signal?.aborted) return null;
    const deadline = Date.now() + options.timeoutMs;
    const waiterId = randomUUID();
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    this.waits.add(controller);
    try {
      return await this.link.run(
        'Wait',
        (client) =>
          client.wait(key, {
            holder: options.holder,
            leaseMs: options.leaseMs,
            timeoutMs: Math.max(0, deadline - Date.now()),
            waiterId,
            signal: controller.signal,
          }),
        { safeToRepeat: true, deadline, signal: controller.signal },
      );
    } catch (err) {
      if (controller.signal.aborted) return null;
      throw err;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      this.waits.delete(controller);
    }
  }

  push(instance: InstanceRef): Promise<boolean> {
    return this.link.run('Push', (client) => client.push(instance), { safeToRepeat: true });
  }

  restore(instances: InstanceRef[]): Promise<InstanceRef[]> {
    return this.link.run('Restore', (client) => client.restore(instances), { safeToRepeat: true });
  }

  pushFailure(key: string, error: SerializedError): Promise<boolean> {
    return this.link.run('PushFailure', (client) => client.pushFailure(key, error), { safeToRepeat: false });
  }

  release(instanceId: string): Promise<void> {
    return this.link.run('Release', (client) => client.release(instanceId), { safeToRepeat: true });
  }

  renew(instanceId: string, leaseMs: number): Promise<void> {
    return this.link.run('Renew', (client) => client.renew(instanceId, leaseMs), { safeToRepeat: true });
  }

  reapIdle(key: string, idleBefore: number, keep: number): Promise<InstanceRef[]> {
    return this.link.run('ReapIdle', (client) => client.reapIdle(key, idleBefore, keep), { safeToRepeat: false });
  }

  drain(key: string): Promise<InstanceRef[]> {
    return this.link.run('Drain', (client) => client.drain(key), { safeToRepeat: false });
  }

  retire(key: string): Promise<InstanceRef[]> {
    return this.link.run('RetireKey', (client) => client.retire(key), { safeToRepeat: false });
  }

  purgeNode(nodeId: string): Promise<InstanceRef[]> {
    return this.link.run('PurgeNode', (client) => client.purgeNode(nodeId), { safeToRepeat: false });
  }

  reclaimExpired(now: number): Promise<InstanceRef[]> {
    return this.link.run('ReclaimExpired', (client) => client.reclaimExpired(now), { safeToRepeat: false });
  }

  stats(key: string): Promise<{ idle: number; checkedOut: number; waiters: number }> {
    return this.link.run('PoolStats', (client) => client.stats(key), { safeToRepeat: true });
  }

  instances(key: string): Promise<{ idle: number; checkedOut: number }> {
    return this.link.run('PoolStats', (client) => client.instances(key), { safeToRepeat: true });
  }

  keys(): Promise<string[]> {
    return this.link.run('PoolKeys', (client) => client.keys(), { safeToRepeat: true });
  }

  /** End the waits under way (they resolve null) and close the connection; later calls reject UNAVAILABLE. */
  close(): Promise<void> {
    for (const controller of this.waits) controller.abort();
    this.link.close();
    return Promise.resolve();
  }
}

export interface LeaderProvisionQueueOptions extends LeaderLinkOptions {
  /** The cluster's queue capacity (what the leader's queue holds at most), as `capacity` reports it. */
  capacity: number;
}

/**
 * The provisioning queue the control-plane leader holds (`--pool leader`), over its Leader service, with the
 * leader resolution and retries of LeaderPool. A request is enqueued or dequeued again only when the first call
 * provably never reached the pool's actor, so a request is never taken twice.
 */
export class LeaderProvisionQueue implements ProvisionQueue {
  readonly capacity: number;
  private readonly link: LeaderLink;
  private readonly pops = new Set<AbortController>();

  constructor(options: LeaderProvisionQueueOptions) {
    if (!Number.isInteger(options.capacity) || options.capacity < 1) {
      throw new PlatformError(
        'BAD_REQUEST',
        `provision queue capacity must be a positive integer, got ${options.capacity}`,
      );
    }
    this.capacity = options.capacity;
    this.link = new LeaderLink(options, 'leader provisioning queue');
  }

  push(request: ProvisionRequest): Promise<boolean> {
    return this.link.run('Enqueue', (client) => client.enqueue(request), { safeToRepeat: false });
  }

  async pop(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null> {
    this.link.assertOpen('Dequeue');
    if (signal?.aborted) return null;
    const deadline = Date.now() + timeoutMs;
    const controller = new AbortController();
    const onAbort = (): void => controller.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    this.pops.add(controller);
    try {
      return await this.link.run(
        'Dequeue',
        (client) => client.dequeue(Math.max(0, deadline - Date.now()), controller.signal),
        { safeToRepeat: false, deadline, signal: controller.signal },
      );
    } catch (err) {
      if (controller.signal.aborted) return null;
      throw err;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.pops.delete(controller);
    }
  }

  async size(): Promise<number> {
    return (await this.link.run('QueueSize', (client) => client.queueSize(), { safeToRepeat: true })).size;
  }

  /** End the pops under way (they resolve null) and close the connection; later calls reject UNAVAILABLE. */
  close(): Promise<void> {
    for (const controller of this.pops) controller.abort();
    this.link.close();
    return Promise.resolve();
  }
}

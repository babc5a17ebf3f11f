import {
  Metadata,
  credentials,
  status,
  type ClientReadableStream,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { controlProtocolVersion, type BuildInfo } from '../core/build-info.js';
import type { ControlPlaneView, UpgradeStatus } from '../core/control-plane-view.js';
import { PlatformError } from '../core/errors.js';
import type { CheckoutOptions, PoolItem, WaitOptions } from '../core/ports/pool.js';
import type { InstanceRef, ProvisionRequest, SerializedError } from '../core/types.js';
import type { ControlSnapshot } from '../control-plane/control-state.js';
import type { FollowEvent } from '../control-plane/leader-host.js';
import { LeaderClient as GeneratedLeaderClient, type FollowResponse } from '../gen/savassan/leader/v1/leader.js';
import { platformErrorFromGrpc } from '../grpc/grpc-errors.js';
import { bearerMetadata, grpcChannelOptions, type UnaryMethod } from '../grpc/grpc-transport.js';
import { newChallenge, verifyPeer } from '../grpc/peer-proof.js';
import {
  buildToProto,
  failureToProto,
  followEventFromProto,
  instanceFromProto,
  instanceToProto,
  poolItemFromProto,
  provisionRequestFromProto,
  provisionRequestToProto,
  snapshotToBytes,
  upgradeFromBytes,
  viewFromBytes,
} from './leader-codec.js';

/** Request metadata: the control protocol the caller speaks (a manager refuses another one). */
export const protocolMetadataKey = 'savassan-protocol';
/** Response metadata of a forwarded pool or queue call: the id of the manager that leads, where to call next. */
export const leaderMetadataKey = 'savassan-leader';
/** Request metadata of a call a manager forwards to the leader: the forwarding manager's id (never forwarded again). */
export const forwardedByMetadataKey = 'savassan-forwarded-by';

export interface LeaderClientOptions {
  /** The manager's id and Leader address, as read from etcd: Prove must sign exactly these. */
  managerId: string;
  address: string;
  /** The shared cluster token. */
  token: string;
  /** Deadline of calls that do not block. Default 10 s. */
  callDeadlineMs?: number | undefined;
  /** Added to a Wait's or Dequeue's own timeout for its deadline: the manager answers at the timeout. Default 5 s. */
  blockingMarginMs?: number | undefined;
  /** Called when an answer names another manager as the leader (`savassan-leader`): call that one next. */
  onLeader?: ((leaderId: string) => void) | undefined;
  /** Set when a manager forwards a call it received: the leader serves it or refuses it, never forwards it again. */
  forwardedBy?: string | undefined;
}

/** A manager that does not prove its identity within this long is not verified (it is asked again on the next call). */
const proveDeadlineMs = 3000;
/** Handover, BecomeLeader and Upgrade move state between managers: they get longer. */
const slowCallDeadlineMs = 60_000;

/** An open Follow stream. */
export interface FollowSubscription {
  /**
   * Resolves when the stream is over: null after close() or when the leader ended it (it stopped leading), the
   * PlatformError when it failed (refused: TOO_MANY_REQUESTS when the leader has enough followers; lost: UNAVAILABLE).
   */
  readonly ended: Promise<PlatformError | null>;
  /** Cancel the stream. Idempotent. */
  close(): void;
}

/** An abort the caller asked for: `wait` and `dequeue` answer null for it. */
class Aborted extends Error {}

/**
 * One manager's Leader service (savassan.leader.v1), reached over gRPC. The constructor does no I/O; the first call
 * makes the manager prove (Prove, without the token) that it holds the cluster token for this id and address, and
 * only then is the token sent. Every call carries `savassan-protocol`. Failures keep the PlatformError the manager
 * answered; a manager that cannot be reached is UNAVAILABLE (with `details.notDelivered` when the call never left).
 */
export class LeaderClient {
  readonly managerId: string;
  readonly address: string;
  private readonly token: string;
  private readonly peer: string;
  private readonly callDeadlineMs: number;
  private readonly blockingMarginMs: number;
  private readonly onLeader: ((leaderId: string) => void) | undefined;
  private readonly forwardedBy: string | undefined;
  private readonly client: GeneratedLeaderClient;
  private readonly calls = new Set<ClientUnaryCall | ClientReadableStream<FollowResponse>>();
  private verified: Promise<void> | null = null;
  private proven = false;
  private closed = false;
  private closeWhenIdleAsked = false;

  constructor(options: LeaderClientOptions) {
    this.managerId = options.managerId;
    this.address = options.address;
    this.token = options.token;
    this.peer = `manager ${options.managerId} at ${options.address}`;
    this.callDeadlineMs = options.callDeadlineMs ?? 10_000;
    this.blockingMarginMs = options.blockingMarginMs ?? 5000;
    this.onLeader = options.onLeader;
    this.forwardedBy = options.forwardedBy;
    this.client = new GeneratedLeaderClient(options.address, credentials.createInsecure(), grpcChannelOptions);
  }

  /** Calls under way (Follow streams included). */
  get inFlight(): number {
    return this.calls.size;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Check, once, that the manager at this address holds the cluster token and is this manager id. Rejects UNAVAILABLE
   * (`details.notDelivered`: nothing was sent) when it is not; a failed check is tried again on the next call.
   */
  verify(): Promise<void> {
    this.assertOpen('Prove');
    this.verified ??= verifyPeer(this.token, 'manager', newChallenge(this.managerId, this.address), (challenge) =>
      this.unary(
        'Prove',
        this.client.prove.bind(this.client),
        { nonce: challenge.nonce, managerId: challenge.memberId, address: challenge.address },
        { deadlineMs: Math.min(this.callDeadlineMs, proveDeadlineMs), withToken: false },
      ).then((response) => response.proof),
    ).then(
      () => {
        this.proven = true;
      },
      (err: unknown) => {
        this.verified = null;
        const error = PlatformError.from(err, 'UNAVAILABLE');
        throw new PlatformError(error.code, error.rawMessage, {
          cause: err,
          details: { ...error.details, notDelivered: true },
        });
      },
    );
    return this.verified;
  }

  async checkout(key: string, options: CheckoutOptions): Promise<InstanceRef | null> {
    const { instance } = await this.call('Checkout', this.client.checkout.bind(this.client), {
      key,
      holder: options.holder,
      leaseMs: options.leaseMs,
    });
    return instance === undefined ? null : instanceFromProto(instance);
  }

  /**
   * Wait for an instance or a failure of `key`, as the leader's pool waits; `waiterId` names the waiter (a re-issued
   * wait with the same id keeps its place). Null on timeout, or at once when `signal` aborts (the call is cancelled,
   * which removes the waiter).
   */
  async wait(key: string, options: WaitOptions & { waiterId?: string | undefined }): Promise<PoolItem | null> {
    if (options.signal?.aborted) return null;
    const timeoutMs = Math.max(0, Math.ceil(options.timeoutMs));
    try {
      const response = await this.call(
        'Wait',
        this.client.wait.bind(this.client),
        { key, holder: options.holder, leaseMs: options.leaseMs, timeoutMs, waiterId: options.waiterId ?? '' },
        { deadlineMs: timeoutMs + this.blockingMarginMs, signal: options.signal },
      );
      return poolItemFromProto(response);
    } catch (err) {
      if (err instanceof Aborted) return null;
      throw err;
    }
  }

  async push(instance: InstanceRef): Promise<boolean> {
    const { accepted } = await this.call('Push', this.client.push.bind(this.client), {
      instance: instanceToProto(instance),
    });
    return accepted;
  }

  async restore(instances: InstanceRef[]): Promise<InstanceRef[]> {
    const { restored } = await this.call('Restore', this.client.restore.bind(this.client), {
      instances: instances.map(instanceToProto),
    });
    return restored.map(instanceFromProto);
  }

  async pushFailure(key: string, error: SerializedError): Promise<boolean> {
    const { delivered } = await this.call('PushFailure', this.client.pushFailure.bind(this.client), {
      key,
      failure: failureToProto(error),
    });
    return delivered;
  }

  async release(instanceId: string): Promise<void> {
    await this.call('Release', this.client.release.bind(this.client), { instanceId });
  }

  async renew(instanceId: string, leaseMs: number): Promise<void> {
    await this.call('Renew', this.client.renew.bind(this.client), { instanceId, leaseMs });
  }

  async reapIdle(key: string, idleBefore: number, keep: number): Promise<InstanceRef[]> {
    const { instances } = await this.call('ReapIdle', this.client.reapIdle.bind(this.client), {
      key,
      idleBeforeMs: idleBefore,
      keep,
    });
    return instances.map(instanceFromProto);
  }

  async drain(key: string): Promise<InstanceRef[]> {
    const { instances } = await this.call('Drain', this.client.drain.bind(this.client), { key });
    return instances.map(instanceFromProto);
  }

  async retire(key: string): Promise<InstanceRef[]> {
    const { instances } = await this.call('RetireKey', this.client.retireKey.bind(this.client), { key });
    return instances.map(instanceFromProto);
  }

  async purgeNode(nodeId: string): Promise<InstanceRef[]> {
    const { instances } = await this.call('PurgeNode', this.client.purgeNode.bind(this.client), { nodeId });
    return instances.map(instanceFromProto);
  }

  async reclaimExpired(now: number): Promise<InstanceRef[]> {
    const { instances } = await this.call('ReclaimExpired', this.client.reclaimExpired.bind(this.client), {
      nowMs: now,
    });
    return instances.map(instanceFromProto);
  }

  async stats(key: string): Promise<{ idle: number; checkedOut: number; waiters: number }> {
    const { idle, checkedOut, waiters } = await this.call('PoolStats', this.client.poolStats.bind(this.client), {
      key,
      withoutWaiters: false,
    });
    return { idle, checkedOut, waiters };
  }

  async instances(key: string): Promise<{ idle: number; checkedOut: number }> {
    const { idle, checkedOut } = await this.call('PoolStats', this.client.poolStats.bind(this.client), {
      key,
      withoutWaiters: true,
    });
    return { idle, checkedOut };
  }

  async keys(): Promise<string[]> {
    const { keys } = await this.call('PoolKeys', this.client.poolKeys.bind(this.client), {});
    return keys;
  }

  async enqueue(request: ProvisionRequest): Promise<boolean> {
    const { accepted } = await this.call('Enqueue', this.client.enqueue.bind(this.client), {
      request: provisionRequestToProto(request),
    });
    return accepted;
  }

  /** Take the oldest provisioning request, blocking up to `timeoutMs`; null on timeout, or at once on abort. */
  async dequeue(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null> {
    if (signal?.aborted) return null;
    const blockMs = Math.max(0, Math.ceil(timeoutMs));
    try {
      const { request } = await this.call(
        'Dequeue',
        this.client.dequeue.bind(this.client),
        { timeoutMs: blockMs },
        { deadlineMs: blockMs + this.blockingMarginMs, signal },
      );
      return request === undefined ? null : provisionRequestFromProto(request);
    } catch (err) {
      if (err instanceof Aborted) return null;
      throw err;
    }
  }

  async queueSize(): Promise<{ size: number; capacity: number }> {
    const { size, capacity } = await this.call('QueueSize', this.client.queueSize.bind(this.client), {});
    return { size, capacity };
  }

  /**
   * Follow the manager's state: `listener` gets the snapshot, then every batch of changes, in order. Resolves once
   * the stream is open; a listener that throws ends it (`ended` resolves with that error).
   */
  async follow(
    followerId: string,
    build: BuildInfo,
    listener: (event: FollowEvent) => void,
  ): Promise<FollowSubscription> {
    this.assertOpen('Follow');
    if (!this.proven) await this.verify();
    this.assertOpen('Follow');
    const call = this.client.follow({ followerId, build: buildToProto(build) }, this.metadata());
    this.calls.add(call);
    let cancelled = false;
    let settle: (result: PlatformError | null) => void = () => {};
    const ended = new Promise<PlatformError | null>((resolve) => {
      settle = (result) => {
        this.finished(call);
        resolve(result);
      };
    });
    const close = (): void => {
      cancelled = true;
      call.cancel();
    };
    call.on('data', (message: FollowResponse) => {
      try {
        listener(followEventFromProto(message));
      } catch (err) {
        settle(PlatformError.from(err));
        close();
      }
    });
    call.on('error', (err: ServiceError) => {
      settle(cancelled && err.code === status.CANCELLED ? null : platformErrorFromGrpc(err, this.describe('Follow')));
    });
    call.on('end', () => settle(null));
    return { ended, close };
  }

  async reportApplied(followerId: string, appliedSeq: number): Promise<void> {
    await this.call('ReportApplied', this.client.reportApplied.bind(this.client), { followerId, appliedSeq });
  }

  async becomeLeader(fromId: string, fromTerm: number, snapshot: ControlSnapshot): Promise<{ term: number }> {
    const { term } = await this.call(
      'BecomeLeader',
      this.client.becomeLeader.bind(this.client),
      { fromId, fromTerm, snapshotJson: snapshotToBytes(snapshot) },
      { deadlineMs: slowCallDeadlineMs },
    );
    return { term };
  }

  async handover(toId?: string): Promise<{ fromId: string; toId: string; term: number; pausedMs: number }> {
    const response = await this.call(
      'Handover',
      this.client.handover.bind(this.client),
      { toId: toId ?? '' },
      { deadlineMs: slowCallDeadlineMs },
    );
    return { fromId: response.fromId, toId: response.toId, term: response.term, pausedMs: response.pausedMs };
  }

  async status(): Promise<ControlPlaneView> {
    const { viewJson } = await this.call('Status', this.client.status.bind(this.client), {});
    return viewFromBytes(viewJson);
  }

  async upgrade(target: string): Promise<UpgradeStatus> {
    const { statusJson } = await this.call(
      'Upgrade',
      this.client.upgrade.bind(this.client),
      { to: target },
      { deadlineMs: slowCallDeadlineMs },
    );
    return upgradeFromBytes(statusJson);
  }

  /** Ask the manager to leave (hand over if it leads, drain, stop); resolves once it answered, before it stops. */
  async shutdown(reason: string): Promise<void> {
    await this.call('Shutdown', this.client.shutdown.bind(this.client), { reason });
  }

  /** Close at once: calls under way are cancelled (they reject UNAVAILABLE), later calls reject UNAVAILABLE. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const call of this.calls) call.cancel();
    this.calls.clear();
    this.client.close();
  }

  /** Take no more calls, and close once the calls under way are over (a leader change: they finish where they are). */
  closeWhenIdle(): void {
    this.closeWhenIdleAsked = true;
    if (this.calls.size === 0) this.close();
  }

  private finished(call: ClientUnaryCall | ClientReadableStream<FollowResponse>): void {
    this.calls.delete(call);
    if (this.closeWhenIdleAsked && this.calls.size === 0) this.close();
  }

  private describe(method: string, deadlineMs?: number): { peer: string; method: string; deadlineMs?: number } {
    return deadlineMs === undefined ? { peer: this.peer, method } : { peer: this.peer, method, deadlineMs };
  }

  private assertOpen(method: string): void {
    if (this.closed || this.closeWhenIdleAsked) {
      throw new PlatformError('UNAVAILABLE', `cannot call ${method} on ${this.peer}: the client is closed`, {
        details: { notDelivered: true },
      });
    }
  }

  private metadata(withToken = true): Metadata {
    const metadata = withToken ? bearerMetadata(this.token) : new Metadata();
    metadata.set(protocolMetadataKey, String(controlProtocolVersion));
    if (this.forwardedBy !== undefined) metadata.set(forwardedByMetadataKey, this.forwardedBy);
    return metadata;
  }

  private async call<Req, Res>(
    method: string,
    unary: UnaryMethod<Req, Res>,
    request: Req,
    options: { deadlineMs?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<Res> {
    this.assertOpen(method);
    if (!this.proven) await this.verify();
    return this.unary(method, unary, request, {
      deadlineMs: options.deadlineMs ?? this.callDeadlineMs,
      signal: options.signal,
    });
  }

  /**
   * One unary call: rejects with the PlatformError the failure stands for, or `Aborted` when `signal` aborted it;
   * a `savassan-leader` header naming another manager reaches `onLeader`.
   */
  private unary<Req, Res>(
    method: string,
    unary: UnaryMethod<Req, Res>,
    request: Req,
    options: { deadlineMs: number; signal?: AbortSignal | undefined; withToken?: boolean },
  ): Promise<Res> {
    this.assertOpen(method);
    const { deadlineMs, signal } = options;
    return new Promise<Res>((resolve, reject) => {
      let call: ClientUnaryCall;
      const onAbort = (): void => call.cancel();
      try {
        call = unary(
          request,
          this.metadata(options.withToken ?? true),
          { deadline: Date.now() + deadlineMs },
          (error, response) => {
            signal?.removeEventListener('abort', onAbort);
            this.finished(call);
            if (error === null) resolve(response);
            else if (signal?.aborted === true && error.code === status.CANCELLED) reject(new Aborted());
            else reject(platformErrorFromGrpc(error, this.describe(method, deadlineMs)));
          },
        );
      } catch (err) {
        // grpc-js throws at once on a closed client.
        reject(platformErrorFromGrpc(err, this.describe(method, deadlineMs)));
        return;
      }
      this.calls.add(call);
      call.on('metadata', (metadata: Metadata) => {
        const [leader] = metadata.get(leaderMetadataKey);
        if (typeof leader === 'string' && leader !== '' && leader !== this.managerId) this.onLeader?.(leader);
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

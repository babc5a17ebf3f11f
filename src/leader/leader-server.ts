import { Metadata, type ServerUnaryCall, type handleUnaryCall, type sendUnaryData } from '@grpc/grpc-js';
import { controlProtocolVersion } from '../core/build-info.js';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { InstanceRef } from '../core/types.js';
import type { FollowEvent, LeaderHost, PoolRoute } from '../control-plane/leader-host.js';
import {
  LeaderService,
  type FollowResponse,
  type InstancesResponse,
  type LeaderServer,
} from '../gen/savassan/leader/v1/leader.js';
import { CallGuard, serveGrpc, type GrpcServerHandle } from '../grpc/grpc-transport.js';
import { ProofSigner } from '../grpc/peer-proof.js';
import { StreamWriter } from '../grpc/stream-writer.js';
import {
  buildFromProto,
  failureFromProto,
  followEventToProto,
  instanceFromProto,
  instanceToProto,
  poolItemToProto,
  provisionRequestFromProto,
  provisionRequestToProto,
  snapshotFromBytes,
  upgradeToBytes,
  viewToBytes,
} from './leader-codec.js';
import { LeaderClient, forwardedByMetadataKey, leaderMetadataKey, protocolMetadataKey } from './leader-client.js';

export interface LeaderServerOptions {
  /** `host:port` (port 0 picks one) or `unix:/path`. */
  address: string;
  /** The address others dial, as registered in etcd; Prove signs only this one. Default: the bound one. */
  advertise?: string | undefined;
  /** This manager's id, as registered in etcd: Prove signs only this one. */
  managerId: string;
  /** The shared cluster token every call but Prove must present (and present to the leader when forwarding). */
  token: string;
  /** The control plane this service answers for. */
  host: LeaderHost;
  logger?: Logger | undefined;
  graceMs?: number | undefined;
}

/** The longest a Wait or Dequeue blocks, whatever it asks: a waiter lives no longer than a lease. */
const maxBlockMs = 15 * 60 * 1000;
/** Forwarding clients kept (one per leader address); older ones are closed once idle. */
const maxForwardClients = 4;
/** Follow messages a follower may leave unread before the stream is ended (it follows again from a snapshot). */
const maxHeldFollowMessages = 10_000;

/** What a pool or queue handler knows of its call. */
interface CallContext {
  /** Aborts when the caller cancels the call (or the server closes). */
  signal: AbortSignal;
  /** When the call arrived: the time a forwarded Wait has left is counted from here. */
  receivedAt: number;
  /** The manager that forwarded this call, if one did. */
  forwardedBy: string | undefined;
  /** Tell the caller which manager leads (response header `savassan-leader`). */
  hint(leaderId: string): void;
}

function protocolRefusal(metadata: Metadata): PlatformError | null {
  const [value] = metadata.get(protocolMetadataKey);
  const spoken = typeof value === 'string' && value !== '' ? value : null;
  if (spoken === String(controlProtocolVersion)) return null;
  return new PlatformError(
    'CONFLICT',
    spoken === null
      ? `the caller speaks no control protocol (metadata "${protocolMetadataKey}" is missing); this manager speaks ${controlProtocolVersion}`
      : `the caller speaks control protocol ${spoken}; this manager speaks ${controlProtocolVersion}`,
  );
}

/** How long a blocking call may still block: what it asked, less the time it already spent here. */
function timeLeft(requestedMs: number, context: CallContext): number {
  return Math.max(0, Math.min(requestedMs, maxBlockMs) - (Date.now() - context.receivedAt));
}

function instances(list: InstanceRef[]): InstancesResponse {
  return { instances: list.map(instanceToProto) };
}

/**
 * A manager's Leader service (savassan.leader.v1.Leader) over its control plane (`host`). Every call but Prove must
 * carry the cluster token and speak this control protocol (`savassan-protocol`). Pool and queue calls go where
 * `host.route()` says: served here when this manager leads, forwarded to the leader (answered with its answer and
 * the header `savassan-leader` naming it, so callers move), or refused UNAVAILABLE while nobody leads.
 */
export async function serveLeader(options: LeaderServerOptions): Promise<GrpcServerHandle> {
  const { host, managerId, token } = options;
  const logger = (options.logger ?? silentLogger).child({ component: 'leader-grpc', managerId });
  const guard = new CallGuard(token, logger);
  let bound = '';
  const signer = new ProofSigner(token, 'manager', managerId, () => options.advertise ?? bound, logger);
  /** Calls and streams under way: aborted when the server closes. */
  const open = new Set<AbortController>();
  let closing = false;
  /**
   * A blocking call that ended empty because this server closes, not because its time was up: UNAVAILABLE, so the
   * caller makes it again elsewhere (nothing was taken: an aborted waiter or pop holds nothing).
   */
  const unlessClosing = <T>(result: T | null, method: string): T | null => {
    if (result === null && closing) {
      throw new PlatformError('UNAVAILABLE', `manager ${managerId} is shutting down: ${method} ended early`, {
        details: { notDelivered: true },
      });
    }
    return result;
  };
  const forwardClients = new Map<string, LeaderClient>();

  const forwardClient = (route: { leaderId: string; address: string }): LeaderClient => {
    const key = `${route.leaderId}\n${route.address}`;
    let client = forwardClients.get(key);
    if (client === undefined || client.isClosed) {
      client = new LeaderClient({ managerId: route.leaderId, address: route.address, token, forwardedBy: managerId });
      forwardClients.set(key, client);
      for (const [oldKey, old] of forwardClients) {
        if (forwardClients.size <= maxForwardClients) break;
        forwardClients.delete(oldKey);
        old.closeWhenIdle();
      }
    }
    return client;
  };

  /** A unary handler: the token, the protocol, then `body`; its answer or its error. */
  const handler =
    <Req, Res>(method: string, body: (request: Req, context: CallContext) => Promise<Res>): handleUnaryCall<Req, Res> =>
    (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      if (!guard.authorized(call.metadata)) return callback(guard.unauthenticated(method, call.getPeer()));
      const refusal = protocolRefusal(call.metadata);
      if (refusal !== null) return callback(guard.failure(method, refusal));
      const controller = new AbortController();
      open.add(controller);
      call.on('cancelled', () => controller.abort());
      if (call.cancelled) controller.abort();
      const [forwardedBy] = call.metadata.get(forwardedByMetadataKey);
      let hinted = false;
      const context: CallContext = {
        signal: controller.signal,
        receivedAt: Date.now(),
        forwardedBy: typeof forwardedBy === 'string' && forwardedBy !== '' ? forwardedBy : undefined,
        hint(leaderId) {
          if (hinted) return;
          hinted = true;
          const metadata = new Metadata();
          metadata.set(leaderMetadataKey, leaderId);
          call.sendMetadata(metadata);
        },
      };
      Promise.resolve()
        .then(() => body(call.request, context))
        .then(
          (response) => callback(null, response),
          (err: unknown) => callback(guard.failure(method, err)),
        )
        .finally(() => open.delete(controller));
    };

  /**
   * A pool or queue call, where the route says: `local` runs here, `forward` proxies to the leader (once: a call
   * forwarded to a manager that does not lead either is refused, so two managers with stale views never loop).
   */
  const routed = <Req, Res>(
    method: string,
    local: (route: Extract<PoolRoute, { kind: 'local' }>, request: Req, context: CallContext) => Promise<Res>,
    forward: (client: LeaderClient, request: Req, context: CallContext) => Promise<Res>,
  ): handleUnaryCall<Req, Res> =>
    handler(method, async (request: Req, context) => {
      // One turn of the event loop first: a cancellation that reached this server before the call (a wait the
      // caller aborted, then a push) is processed before the call, so the push never goes to the aborted waiter.
      await new Promise((resolve) => setImmediate(resolve));
      const route = await host.route();
      switch (route.kind) {
        case 'local':
          return local(route, request, context);
        case 'none':
          throw new PlatformError('UNAVAILABLE', `manager ${managerId} cannot serve ${method}: ${route.reason}`, {
            details: { notDelivered: true },
          });
        case 'forward': {
          context.hint(route.leaderId);
          if (context.forwardedBy !== undefined) {
            throw new PlatformError(
              'UNAVAILABLE',
              `manager ${managerId} does not lead (manager ${route.leaderId} does): ${method} forwarded by ` +
                `${context.forwardedBy} is not forwarded again`,
              { details: { notDelivered: true, leaderId: route.leaderId } },
            );
          }
          return forward(forwardClient(route), request, context);
        }
      }
    });

  const service: LeaderServer = {
    checkout: routed(
      'Checkout',
      async ({ pool }, { key, holder, leaseMs }) => {
        const instance = await pool.checkout(key, { holder, leaseMs });
        return instance === null ? {} : { instance: instanceToProto(instance) };
      },
      async (client, { key, holder, leaseMs }) => {
        const instance = await client.checkout(key, { holder, leaseMs });
        return instance === null ? {} : { instance: instanceToProto(instance) };
      },
    ),
    wait: routed(
      'Wait',
      async ({ pool }, { key, holder, leaseMs, timeoutMs, waiterId }, context) =>
        poolItemToProto(
          unlessClosing(
            await pool.wait(key, {
              holder,
              leaseMs,
              timeoutMs: timeLeft(timeoutMs, context),
              signal: context.signal,
              waiterId: waiterId === '' ? undefined : waiterId,
            }),
            'Wait',
          ),
        ),
      async (client, { key, holder, leaseMs, timeoutMs, waiterId }, context) =>
        poolItemToProto(
          unlessClosing(
            await client.wait(key, {
              holder,
              leaseMs,
              timeoutMs: timeLeft(timeoutMs, context),
              signal: context.signal,
              waiterId: waiterId === '' ? undefined : waiterId,
            }),
            'Wait',
          ),
        ),
    ),
    push: routed(
      'Push',
      async ({ pool }, request) => ({ accepted: await pool.push(instanceFromProto(request.instance)) }),
      async (client, request) => ({ accepted: await client.push(instanceFromProto(request.instance)) }),
    ),
    restore: routed(
      'Restore',
      async ({ pool }, request) => ({
        restored: (await pool.restore(request.instances.map(instanceFromProto))).map(instanceToProto),
      }),
      async (client, request) => ({
        restored: (await client.restore(request.instances.map(instanceFromProto))).map(instanceToProto),
      }),
    ),
    pushFailure: routed(
      'PushFailure',
      async ({ pool }, request) => ({
        delivered: await pool.pushFailure(request.key, failureFromProto(request.failure)),
      }),
      async (client, request) => ({
        delivered: await client.pushFailure(request.key, failureFromProto(request.failure)),
      }),
    ),
    release: routed(
      'Release',
      async ({ pool }, request) => {
        await pool.release(request.instanceId);
        return {};
      },
      async (client, request) => {
        await client.release(request.instanceId);
        return {};
      },
    ),
    renew: routed(
      'Renew',
      async ({ pool }, request) => {
        await pool.renew(request.instanceId, request.leaseMs);
        return {};
      },
      async (client, request) => {
        await client.renew(request.instanceId, request.leaseMs);
        return {};
      },
    ),
    reapIdle: routed(
      'ReapIdle',
      async ({ pool }, { key, idleBeforeMs, keep }) => instances(await pool.reapIdle(key, idleBeforeMs, keep)),
      async (client, { key, idleBeforeMs, keep }) => instances(await client.reapIdle(key, idleBeforeMs, keep)),
    ),
    drain: routed(
      'Drain',
      async ({ pool }, { key }) => instances(await pool.drain(key)),
      async (client, { key }) => instances(await client.drain(key)),
    ),
    retireKey: routed(
      'RetireKey',
      async ({ pool }, { key }) => instances(await pool.retire(key)),
      async (client, { key }) => instances(await client.retire(key)),
    ),
    purgeNode: routed(
      'PurgeNode',
      async ({ pool }, { nodeId }) => instances(await pool.purgeNode(nodeId)),
      async (client, { nodeId }) => instances(await client.purgeNode(nodeId)),
    ),
    reclaimExpired: routed(
      'ReclaimExpired',
      async ({ pool }, { nowMs }) => instances(await pool.reclaimExpired(nowMs)),
      async (client, { nowMs }) => instances(await client.reclaimExpired(nowMs)),
    ),
    poolStats: routed(
      'PoolStats',
      async ({ pool }, { key, withoutWaiters }) =>
        withoutWaiters ? { ...(await pool.instances(key)), waiters: 0 } : pool.stats(key),
      async (client, { key, withoutWaiters }) =>
        withoutWaiters ? { ...(await client.instances(key)), waiters: 0 } : client.stats(key),
    ),
    poolKeys: routed(
      'PoolKeys',
      async ({ pool }) => ({ keys: await pool.keys() }),
      async (client) => ({ keys: await client.keys() }),
    ),
    enqueue: routed(
      'Enqueue',
      async ({ queue }, request) => ({ accepted: await queue.push(provisionRequestFromProto(request.request)) }),
      async (client, request) => ({ accepted: await client.enqueue(provisionRequestFromProto(request.request)) }),
    ),
    dequeue: routed(
      'Dequeue',
      async ({ queue }, { timeoutMs }, context) => {
        const request = unlessClosing(await queue.pop(timeLeft(timeoutMs, context), context.signal), 'Dequeue');
        return request === null ? {} : { request: provisionRequestToProto(request) };
      },
      async (client, { timeoutMs }, context) => {
        const request = unlessClosing(await client.dequeue(timeLeft(timeoutMs, context), context.signal), 'Dequeue');
        return request === null ? {} : { request: provisionRequestToProto(request) };
      },
    ),
    queueSize: routed(
      'QueueSize',
      async ({ queue }) => ({ size: await queue.size(), capacity: queue.capacity }),
      async (client) => client.queueSize(),
    ),
    follow: (call) => {
      if (!guard.authorized(call.metadata)) {
        call.emit('error', guard.unauthenticated('Follow', call.getPeer()));
        return;
      }
      const refusal = protocolRefusal(call.metadata);
      if (refusal !== null) {
        call.emit('error', guard.failure('Follow', refusal));
        return;
      }
      const controller = new AbortController();
      open.add(controller);
      call.on('cancelled', () => controller.abort());
      const writer = new StreamWriter<FollowResponse>(call);
      let failed = false;
      const fail = (err: unknown): void => {
        if (failed) return;
        failed = true;
        controller.abort();
        call.emit('error', guard.failure('Follow', err));
      };
      const send = (event: FollowEvent): void => {
        if (failed || controller.signal.aborted) return;
        try {
          for (const message of followEventToProto(event)) writer.write(message);
        } catch (err) {
          fail(err);
          return;
        }
        if (writer.heldCount > maxHeldFollowMessages) {
          fail(
            new PlatformError(
              'UNAVAILABLE',
              `follower ${call.request.followerId} does not keep up (${writer.heldCount} messages unread): follow again`,
            ),
          );
        }
      };
      Promise.resolve()
        .then(() => host.follow(call.request.followerId, buildFromProto(call.request.build), send, controller.signal))
        .then(
          () => {
            if (!failed) writer.end();
          },
          (err: unknown) => fail(err),
        )
        .finally(() => open.delete(controller));
    },
    reportApplied: handler('ReportApplied', (request) => {
      host.reportApplied(request.followerId, request.appliedSeq);
      return Promise.resolve({});
    }),
    becomeLeader: handler('BecomeLeader', async (request) => {
      const { term } = await host.becomeLeader(
        request.fromId,
        request.fromTerm,
        snapshotFromBytes(request.snapshotJson),
      );
      return { term };
    }),
    handover: handler('Handover', (request) => host.handover(request.toId === '' ? undefined : request.toId)),
    status: handler('Status', async () => ({ viewJson: viewToBytes(await host.status()) })),
    upgrade: handler('Upgrade', async (request) => ({ statusJson: upgradeToBytes(await host.upgrade(request.to)) })),
    shutdown: handler('Shutdown', (request) => {
      logger.info({ reason: request.reason }, 'asked to shut down');
      // Answered first: the caller hears back before this process starts to leave.
      setImmediate(() => host.shutdown(request.reason));
      return Promise.resolve({});
    }),
    prove: guard.withoutToken('Prove', (request, peer) =>
      Promise.resolve({
        proof: signer.sign({ nonce: request.nonce, memberId: request.managerId, address: request.address }, peer),
      }),
    ),
  };

  const handle = await serveGrpc(options.address, (server) => server.addService(LeaderService, service), {
    graceMs: options.graceMs,
    beforeClose: () => {
      closing = true;
      // Waits, dequeues and follow streams end now rather than hold the server for the whole grace.
      for (const controller of open) controller.abort();
      for (const client of forwardClients.values()) client.closeWhenIdle();
    },
  });
  bound = handle.address;
  logger.info({ address: handle.address }, 'leader gRPC server listening');
  return {
    port: handle.port,
    address: handle.address,
    async close() {
      await handle.close();
      for (const client of forwardClients.values()) client.close();
      forwardClients.clear();
    },
  };
}

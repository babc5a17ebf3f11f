// The Pool and ProvisionQueue ports over the control-plane leader's gRPC service (src/leader), on loopback: the
// contract suites against LeaderPool and LeaderProvisionQueue talking to a real serveLeader whose host serves a
// MemoryPool and a MemoryProvisionQueue; then forwarding between managers, leader changes, and refusals.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';

import { MemoryPool } from '../../src/adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../../src/adapters/memory/memory-provision-queue.js';
import { controlProtocolVersion } from '../../src/core/build-info.js';
import { silentLogger } from '../../src/core/logger.js';
import type { InstanceRef } from '../../src/core/types.js';
import type { ControlChange, ControlSnapshot } from '../../src/control-plane/control-state.js';
import type { FollowEvent, PoolRoute } from '../../src/control-plane/leader-host.js';
import {
  LeaderClient as GeneratedLeaderClient,
  LeaderService,
  type LeaderServer,
} from '../../src/gen/savassan/leader/v1/leader.js';
import { bearerMetadata, serveGrpc, type GrpcServerHandle } from '../../src/grpc/grpc-transport.js';
import { ProofSigner } from '../../src/grpc/peer-proof.js';
import { LeaderClient, protocolMetadataKey } from '../../src/leader/leader-client.js';
import { LeaderPool, LeaderProvisionQueue, type LeaderResolver } from '../../src/leader/leader-pool.js';
import { serveLeader } from '../../src/leader/leader-server.js';
import { assertRejectsWith } from '../helpers/assertions.js';
import { TestLeaderHost, type TestLeaderHostParts } from '../helpers/leader-host.js';
import { poolContract } from './pool.contract.js';
import { provisionQueueContract } from './provision-queue.contract.js';

const token = 'leader-test-token';
const lease = { holder: 'gw-test', leaseMs: 60_000 };

/** A manager on loopback: its Leader service over a test host. */
interface Manager {
  id: string;
  address: string;
  host: TestLeaderHost;
  server: GrpcServerHandle;
}

async function startManager(id: string, route: PoolRoute, parts: TestLeaderHostParts = {}): Promise<Manager> {
  const host = new TestLeaderHost(id, route, parts);
  const server = await serveLeader({ address: '127.0.0.1:0', managerId: id, token, host, logger: silentLogger });
  return { id, address: server.address, host, server };
}

/** A manager that leads: its route serves a fresh MemoryPool and MemoryProvisionQueue. */
async function startLeader(
  id: string,
  capacity = 100,
): Promise<Manager & { pool: MemoryPool; queue: MemoryProvisionQueue }> {
  const pool = new MemoryPool();
  const queue = new MemoryProvisionQueue({ capacity });
  const manager = await startManager(id, { kind: 'local', pool, queue });
  return { ...manager, pool, queue };
}

/** A resolver as the cluster wiring's: it remembers the leader it read until told to forget it. */
class TestResolver implements LeaderResolver {
  readonly invalidated: (string | undefined)[] = [];
  resolved = 0;
  private cached: { id: string; address: string } | null;

  constructor(
    /** What etcd says now. */
    public truth: { id: string; address: string },
    /** What the resolver remembers from an earlier read. */
    remembered?: { id: string; address: string },
  ) {
    this.cached = remembered ?? null;
  }

  current(): Promise<{ id: string; address: string }> {
    this.resolved++;
    this.cached ??= this.truth;
    return Promise.resolve(this.cached);
  }

  invalidate(staleId?: string): void {
    this.invalidated.push(staleId);
    this.cached = null;
  }
}

let counter = 0;
function instance(overrides: Partial<InstanceRef> = {}): InstanceRef {
  counter++;
  return {
    instanceId: `i-${counter}-${randomUUID().slice(0, 8)}`,
    functionName: 'fn',
    incarnation: 'inc',
    version: 1,
    nodeId: 'node-a',
    createdAt: Date.now(),
    initMs: 5,
    invocations: 0,
    idleSince: 0,
    ...overrides,
  };
}
const key = 'fn:inc@1';

poolContract('LeaderPool', async () => {
  const leader = await startLeader(`mgr-${randomUUID().slice(0, 8)}`);
  const pool = new LeaderPool({ resolver: new TestResolver(leader), token, logger: silentLogger });
  return {
    pool,
    cleanup: async () => {
      await pool.close();
      await leader.server.close();
      await leader.pool.close();
    },
  };
});

provisionQueueContract('LeaderProvisionQueue', async (capacity) => {
  const leader = await startLeader(`mgr-${randomUUID().slice(0, 8)}`, capacity);
  const queue = new LeaderProvisionQueue({ resolver: new TestResolver(leader), token, capacity, logger: silentLogger });
  return {
    queue,
    cleanup: async () => {
      await queue.close();
      await leader.server.close();
      await leader.queue.close();
    },
  };
});

describe('Leader service: forwarding', () => {
  it('serves calls through a manager that does not lead, and moves its callers to the leader', async () => {
    const a = await startLeader('mgr-a');
    const b = await startManager('mgr-b', { kind: 'forward', leaderId: 'mgr-a', address: a.address });
    // The caller still remembers B as the leader; etcd already names A.
    const resolver = new TestResolver(a, b);
    const pool = new LeaderPool({ resolver, token, logger: silentLogger });
    try {
      const pushed = instance();
      assert.equal(await pool.push(pushed), true, 'answered by A through B');
      assert.equal(b.host.routed, 1);
      assert.deepEqual(await a.pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 });
      assert.deepEqual(resolver.invalidated, ['mgr-b'], 'the savassan-leader answer made the caller forget B');

      assert.equal((await pool.checkout(key, lease))?.instanceId, pushed.instanceId);
      assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 1, waiters: 0 });
      assert.equal(b.host.routed, 1, 'later calls go to A directly');
    } finally {
      await pool.close();
      await b.server.close();
      await a.server.close();
    }
  });

  it('forwards a wait with its waiter id and time left, and its cancellation', async () => {
    const a = await startLeader('mgr-a');
    const b = await startManager('mgr-b', { kind: 'forward', leaderId: 'mgr-a', address: a.address });
    const leaders: string[] = [];
    const client = new LeaderClient({
      managerId: 'mgr-b',
      address: b.address,
      token,
      onLeader: (id) => leaders.push(id),
    });
    try {
      const waiting = client.wait(key, { ...lease, timeoutMs: 10_000, waiterId: 'waiter-1' });
      await until(async () => (await a.pool.stats(key)).waiters === 1);
      const pushed = instance();
      await a.pool.push(pushed);
      const item = await waiting;
      assert.equal(item?.kind === 'instance' ? item.instance.instanceId : null, pushed.instanceId);
      assert.deepEqual(leaders, ['mgr-a']);

      // Timing out: the leader answers empty once the time (counted where the call arrived) is up.
      assert.equal(await client.wait(key, { ...lease, timeoutMs: 30 }), null);

      // Cancelled at B: B cancels its call to A, which removes the waiter.
      const controller = new AbortController();
      const cancelled = client.wait(key, { ...lease, timeoutMs: 10_000, signal: controller.signal });
      await until(async () => (await a.pool.stats(key)).waiters === 1);
      controller.abort();
      assert.equal(await cancelled, null);
      await until(async () => (await a.pool.stats(key)).waiters === 0);
    } finally {
      client.close();
      await b.server.close();
      await a.server.close();
    }
  });

  it('forwards queue calls, a blocking dequeue included', async () => {
    const a = await startLeader('mgr-a', 5);
    const b = await startManager('mgr-b', { kind: 'forward', leaderId: 'mgr-a', address: a.address });
    const client = new LeaderClient({ managerId: 'mgr-b', address: b.address, token });
    try {
      const popping = client.dequeue(10_000);
      await sleep(50);
      const request = { functionName: 'fn', incarnation: 'inc', version: 1, reason: 'demand' as const, requestedAt: 1 };
      assert.equal(await client.enqueue(request), true);
      assert.deepEqual(await popping, request);
      assert.deepEqual(await client.queueSize(), { size: 0, capacity: 5 });
    } finally {
      client.close();
      await b.server.close();
      await a.server.close();
    }
  });

  it('never forwards a forwarded call again', async () => {
    const a = await startManager('mgr-a', { kind: 'none', reason: 'placeholder' });
    const b = await startManager('mgr-b', { kind: 'forward', leaderId: 'mgr-a', address: a.address });
    // Each believes the other leads.
    a.host.routeTo = { kind: 'forward', leaderId: 'mgr-b', address: b.address };
    const client = new LeaderClient({ managerId: 'mgr-b', address: b.address, token });
    try {
      await assertRejectsWith(
        client.keys(),
        'UNAVAILABLE',
        /does not lead \(manager mgr-b does\).*not forwarded again/,
      );
      assert.equal(a.host.routed, 1);
      assert.equal(b.host.routed, 1);
    } finally {
      client.close();
      await b.server.close();
      await a.server.close();
    }
  });

  it('retries a call refused while nobody leads, at the leader resolved again', async () => {
    const a = await startLeader('mgr-a');
    const c = await startManager('mgr-c', { kind: 'none', reason: 'no manager leads (election under way)' });
    const direct = new LeaderClient({ managerId: 'mgr-c', address: c.address, token });
    const resolver = new TestResolver(a, c);
    const pool = new LeaderPool({ resolver, token, logger: silentLogger });
    try {
      await assertRejectsWith(direct.keys(), 'UNAVAILABLE', /cannot serve PoolKeys: no manager leads/);
      const pushed = instance();
      assert.equal(await pool.push(pushed), true);
      assert.deepEqual(resolver.invalidated, ['mgr-c']);
      assert.equal((await a.pool.checkout(key, lease))?.instanceId, pushed.instanceId);
    } finally {
      direct.close();
      await pool.close();
      await c.server.close();
      await a.server.close();
    }
  });

  it('makes a wait again at the next leader when the one it waits on shuts down', async () => {
    const old = await startLeader('mgr-old');
    const next = await startLeader('mgr-next');
    const resolver = new TestResolver(next, old);
    const pool = new LeaderPool({ resolver, token, logger: silentLogger });
    try {
      const waiting = pool.wait(key, { ...lease, timeoutMs: 10_000 });
      await until(async () => (await old.pool.stats(key)).waiters === 1);
      await old.server.close();
      await until(async () => (await next.pool.stats(key)).waiters === 1);
      const pushed = instance();
      await next.pool.push(pushed);
      const item = await waiting;
      assert.equal(item?.kind === 'instance' ? item.instance.instanceId : null, pushed.instanceId);
      assert.deepEqual(resolver.invalidated, ['mgr-old']);
    } finally {
      await pool.close();
      await next.server.close();
    }
  });

  it('re-issues a wait whose leader went away with the same waiter id, within its timeout', async () => {
    const gone = await startLeader('mgr-gone');
    const goneAddress = gone.address;
    await gone.server.close();
    const a = await startLeader('mgr-a');
    const waiterIds: (string | undefined)[] = [];
    const wait = a.pool.wait.bind(a.pool);
    a.pool.wait = (k, options) => {
      waiterIds.push((options as { waiterId?: string }).waiterId);
      return wait(k, options);
    };
    const resolver = new TestResolver(a, { id: 'mgr-gone', address: goneAddress });
    const pool = new LeaderPool({ resolver, token, logger: silentLogger });
    try {
      const waiting = pool.wait(key, { ...lease, timeoutMs: 10_000 });
      await until(async () => (await a.pool.stats(key)).waiters === 1);
      const pushed = instance();
      await a.pool.push(pushed);
      const item = await waiting;
      assert.equal(item?.kind === 'instance' ? item.instance.instanceId : null, pushed.instanceId);
      assert.deepEqual(resolver.invalidated, ['mgr-gone']);
      assert.equal(waiterIds.length, 1);
      assert.match(waiterIds[0] ?? '', /^[0-9a-f-]{36}$/);
    } finally {
      await pool.close();
      await a.server.close();
    }
  });
});

describe('Leader service: refusals', () => {
  /** A raw call (no proof) of PoolKeys with `metadata`: the error it ends with. */
  async function rawKeys(address: string, metadata: Metadata): Promise<ServiceError | null> {
    const raw = new GeneratedLeaderClient(address, credentials.createInsecure());
    try {
      return await new Promise<ServiceError | null>((resolve) => raw.poolKeys({}, metadata, (err) => resolve(err)));
    } finally {
      raw.close();
    }
  }

  it('refuses a call without the token, and one from another control protocol', async () => {
    const a = await startLeader('mgr-a');
    try {
      const noToken = new Metadata();
      noToken.set(protocolMetadataKey, String(controlProtocolVersion));
      assert.equal((await rawKeys(a.address, noToken))?.code, status.UNAUTHENTICATED);

      const otherProtocol = bearerMetadata(token);
      otherProtocol.set(protocolMetadataKey, String(controlProtocolVersion + 1));
      const refused = await rawKeys(a.address, otherProtocol);
      assert.equal(refused?.code, status.FAILED_PRECONDITION);
      assert.equal(
        refused?.details,
        `the caller speaks control protocol ${controlProtocolVersion + 1}; this manager speaks ${controlProtocolVersion}`,
      );
      assert.equal((await rawKeys(a.address, bearerMetadata(token)))?.code, status.FAILED_PRECONDITION);

      const right = bearerMetadata(token);
      right.set(protocolMetadataKey, String(controlProtocolVersion));
      assert.equal(await rawKeys(a.address, right), null);
      assert.equal(a.host.routed, 1, 'only the accepted call reached the host');
    } finally {
      await a.server.close();
    }
  });

  it('sends no token to a manager that cannot prove it holds it, or is another manager', async () => {
    const authorizations: unknown[] = [];
    const impostor: Partial<LeaderServer> = {
      prove: (call, callback) => {
        const signer = new ProofSigner('another-token', 'manager', 'mgr-a', () => server.address, silentLogger);
        const { nonce, managerId, address } = call.request;
        callback(null, { proof: signer.sign({ nonce, memberId: managerId, address }, call.getPeer()) });
      },
      poolKeys: (call, callback) => {
        authorizations.push(call.metadata.get('authorization'));
        callback(null, { keys: [] });
      },
    };
    const server = await serveGrpc('127.0.0.1:0', (s) => s.addService(LeaderService, impostor as LeaderServer));
    const a = await startLeader('mgr-a');
    const client = new LeaderClient({ managerId: 'mgr-a', address: server.address, token });
    const wrongId = new LeaderClient({ managerId: 'mgr-z', address: a.address, token });
    try {
      await assertRejectsWith(
        client.keys(),
        'UNAVAILABLE',
        /manager mgr-a at .* is not verified: its proof does not match/,
      );
      assert.deepEqual(authorizations, []);
      await assertRejectsWith(wrongId.keys(), 'UNAVAILABLE', /manager mgr-z at .* is not verified/);
      assert.equal(a.host.routed, 0);
    } finally {
      client.close();
      wrongId.close();
      await server.close();
      await a.server.close();
    }
  });
});

describe('Leader service: replication and control calls', () => {
  const build = { version: '0.1.0', build: 'dev', protocol: controlProtocolVersion };
  const snapshot: ControlSnapshot = {
    seq: 4,
    leaderId: 'mgr-a',
    term: 9,
    takenAt: 1_700_000_000_000,
    pool: {
      idle: { [key]: [instance()] },
      leases: [{ instance: instance(), holder: 'gw-1', expiresAt: 1_700_000_060_000 }],
      retired: {},
      waiters: [{ id: 'waiter-1', key, holder: 'gw-1', leaseMs: 60_000, deadline: 1_700_000_010_000 }],
    },
    queue: { items: [{ functionName: 'fn', incarnation: 'inc', version: 1, reason: 'demand', requestedAt: 1 }] },
    upgrade: null,
    routingVersion: 3,
    rollouts: [],
    schedules: 0,
  };
  const changes: ControlChange[] = [{ queue: { op: 'dequeue' } }, { upgrade: null }];

  it('streams the snapshot then the changes to a follower, until it cancels', async () => {
    const followers: { id: string; protocol: number }[] = [];
    let stopped = false;
    const a = await startManager(
      'mgr-a',
      { kind: 'none', reason: 'test' },
      {
        follow: async (followerId, followerBuild, send, signal) => {
          followers.push({ id: followerId, protocol: followerBuild.protocol });
          send({ snapshot });
          send({ firstSeq: 5, changes });
          await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
          stopped = true;
        },
      },
    );
    const client = new LeaderClient({ managerId: 'mgr-a', address: a.address, token });
    try {
      const events: FollowEvent[] = [];
      const subscription = await client.follow('mgr-b', build, (event) => events.push(event));
      await until(() => Promise.resolve(events.length === 2));
      assert.deepEqual(events, [{ snapshot }, { firstSeq: 5, changes }]);
      assert.deepEqual(followers, [{ id: 'mgr-b', protocol: controlProtocolVersion }]);
      subscription.close();
      assert.equal(await subscription.ended, null);
      await until(() => Promise.resolve(stopped));
    } finally {
      client.close();
      await a.server.close();
    }
  });

  it('ends a follow stream with the error the host refuses with', async () => {
    const a = await startManager(
      'mgr-a',
      { kind: 'none', reason: 'test' },
      {
        follow: () => Promise.reject(new (class extends Error {})('not leading')),
      },
    );
    const client = new LeaderClient({ managerId: 'mgr-a', address: a.address, token });
    try {
      const subscription = await client.follow('mgr-b', build, () => {});
      const ended = await subscription.ended;
      assert.equal(ended?.code, 'INTERNAL');
    } finally {
      client.close();
      await a.server.close();
    }
  });

  it('maps the other calls one to one to the host', async () => {
    const calls: unknown[] = [];
    const a = await startManager(
      'mgr-a',
      { kind: 'none', reason: 'test' },
      {
        reportApplied: (id, seq) => calls.push(['reportApplied', id, seq]),
        becomeLeader: (fromId, fromTerm, taken) => {
          calls.push(['becomeLeader', fromId, fromTerm, taken]);
          return Promise.resolve({ term: 12 });
        },
        handover: (toId) => {
          calls.push(['handover', toId]);
          return Promise.resolve({ fromId: 'mgr-a', toId: toId ?? 'mgr-b', term: 13, pausedMs: 42 });
        },
        shutdown: (reason) => calls.push(['shutdown', reason]),
      },
    );
    const client = new LeaderClient({ managerId: 'mgr-a', address: a.address, token });
    try {
      await client.reportApplied('mgr-b', 17);
      assert.deepEqual(await client.becomeLeader('mgr-x', 8, snapshot), { term: 12 });
      assert.deepEqual(await client.handover(), { fromId: 'mgr-a', toId: 'mgr-b', term: 13, pausedMs: 42 });
      assert.deepEqual(await client.handover('mgr-c'), { fromId: 'mgr-a', toId: 'mgr-c', term: 13, pausedMs: 42 });
      await client.shutdown('upgrade to 0.2.0 (build B)');
      await until(() => Promise.resolve(calls.length === 5));
      assert.deepEqual(calls, [
        ['reportApplied', 'mgr-b', 17],
        ['becomeLeader', 'mgr-x', 8, snapshot],
        ['handover', undefined],
        ['handover', 'mgr-c'],
        ['shutdown', 'upgrade to 0.2.0 (build B)'],
      ]);
      await assertRejectsWith(client.status(), 'INTERNAL', /does not implement status/);
    } finally {
      client.close();
      await a.server.close();
    }
  });
});

/** Polls `condition` until it holds (5 s at most). */
async function until(condition: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail('condition not met within 5 s');
    await sleep(5);
  }
}

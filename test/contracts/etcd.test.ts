import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { openEtcdCluster } from '../../src/adapters/etcd/etcd-cluster.js';
import type { EtcdCluster, EtcdClusterOptions } from '../../src/adapters/etcd/etcd-cluster.js';
import { isPlatformError } from '../../src/core/errors.js';
import type { MembershipEvent, NodeInfo, RoutingTable } from '../../src/core/ports/cluster.js';
import { etcdAvailable, etcdBinary, startEtcdServer } from '../kit/etcd-server.js';
import type { EtcdServer } from '../kit/etcd-server.js';
import { freeLoopbackPort } from '../kit/free-port.js';
import { makeTestCertificates, opensslAvailable } from '../kit/test-certificates.js';
import { clusterContract } from './cluster.contract.js';
import { RoutingPublisher } from '../../src/control-plane/routing-publisher.js';
import { silentLogger } from '../../src/core/logger.js';
import { pushRoutingTable, serveRouting } from '../../src/gateway/grpc-routing.js';

/** A key prefix no other test uses; the test's cleanup deletes its keys. */
const uniquePrefix = (): string => `/savassan-test-${randomUUID().slice(0, 8)}`;

const QUIET_MS = 300;

function node(nodeId: string, overrides: Partial<NodeInfo> = {}): NodeInfo {
  return {
    nodeId,
    agentAddress: `10.0.0.1:${nodeId.length}`,
    capacity: 4,
    sandboxes: 0,
    sandboxRuntime: 'bwrap',
    isolating: true,
    codeCached: [],
    startedAt: 1,
    ...overrides,
  };
}

function table(version: number): RoutingTable {
  return { version, agents: { 'node-a': '10.0.0.1:7001' }, updatedAt: 1_700_000_000_000 + version };
}

const code =
  (expected: string) =>
  (err: unknown): boolean =>
    isPlatformError(err, expected as 'UNAVAILABLE');

async function until(condition: () => boolean, what: () => string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what()}`);
    await sleep(10);
  }
}

/** The lease id (hex, as etcdctl wants it) that holds `key`. */
async function leaseOf(server: EtcdServer, key: string): Promise<string> {
  const fields = await server.ctl(['get', key, '-w', 'fields']);
  const lease = /"Lease" : (\d+)/.exec(fields)?.[1];
  assert.ok(lease, `${key} has no lease:\n${fields}`);
  return BigInt(lease).toString(16);
}

async function revision(server: EtcdServer): Promise<string> {
  const fields = await server.ctl(['get', '/', '-w', 'fields']);
  const found = /"Revision" : (\d+)/.exec(fields)?.[1];
  assert.ok(found, fields);
  return found;
}

/** A TCP proxy to a loopback port that a test can cut: while paused, connections are dropped and refused. */
async function startProxy(targetPort: number): Promise<{
  endpoint: string;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}> {
  const sockets = new Set<Socket>();
  let paused = false;
  const server = createServer((downstream) => {
    if (paused) {
      downstream.destroy();
      return;
    }
    const upstream = connect(targetPort, '127.0.0.1');
    const end = (): void => {
      downstream.destroy();
      upstream.destroy();
      sockets.delete(downstream);
      sockets.delete(upstream);
    };
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('error', end).on('close', end);
    }
    downstream.pipe(upstream).pipe(downstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const cut = (): void => {
    paused = true;
    for (const socket of sockets) socket.destroy();
  };
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    pause: cut,
    resume: () => {
      paused = false;
    },
    close: () => {
      cut();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

if (!etcdAvailable()) {
  it('etcd adapter', { skip: `${etcdBinary} is not installed` }, () => {});
} else {
  let server: EtcdServer;

  before(async () => {
    server = await startEtcdServer();
  });

  after(async () => {
    // Every test deleted its own keys: the shared server must be empty.
    const left = await server.ctl(['get', '/', '--prefix', '--keys-only']);
    await server.stop();
    assert.equal(left.trim(), '');
  });

  clusterContract('EtcdCluster', ({ leaderTtlSeconds }) => {
    const prefix = uniquePrefix();
    const clients: EtcdCluster[] = [];
    return Promise.resolve({
      open: async () => {
        const client = await openEtcdCluster({ endpoints: server.endpoints, prefix, leaderTtlSeconds });
        clients.push(client);
        return client;
      },
      expireLease: async (nodeId) => {
        await server.ctl(['lease', 'revoke', await leaseOf(server, `${prefix}/nodes/${nodeId}`)]);
      },
      cleanup: async () => {
        await Promise.all(clients.map((client) => client.close()));
        await server.ctl(['del', '--prefix', `${prefix}/`]);
      },
    });
  });

  describe('EtcdCluster on etcd', () => {
    /** Clusters opened by one test, closed (and their keys deleted) by `cleanup`. */
    const opened = (endpoints = (): string[] => server.endpoints) => {
      const prefix = uniquePrefix();
      const clients: EtcdCluster[] = [];
      const open = async (options: Partial<EtcdClusterOptions> = {}): Promise<EtcdCluster> => {
        const client = await openEtcdCluster({ endpoints: endpoints(), prefix, leaderTtlSeconds: 2, ...options });
        clients.push(client);
        return client;
      };
      const cleanup = async (): Promise<void> => {
        await Promise.all(clients.map((client) => client.close()));
      };
      return { prefix, open, cleanup };
    };

    it('keeps its keys where docs/etcd-keys.md says', async () => {
      const { prefix, open, cleanup } = opened();
      try {
        const cluster = await open();
        await cluster.registry.register(node('node-1'), 30);
        assert.equal(await cluster.routing.put(table(1), 0), true);
        await cluster.campaign('manager-1');

        const keys = (await server.ctl(['get', `${prefix}/`, '--prefix', '--keys-only']))
          .split('\n')
          .filter((line) => line.length > 0);
        assert.equal(keys.length, 4, keys.join('\n'));
        const [since = '', leader = ''] = keys;
        assert.match(since, new RegExp(`^${prefix}/leader-since/\\d+$`));
        assert.match(leader, new RegExp(`^${prefix}/leader/\\d+$`));
        assert.equal(since.split('/').pop(), leader.split('/').pop(), "on the leader's lease");
        assert.deepEqual(keys.slice(2), [`${prefix}/nodes/node-1`, `${prefix}/routing`]);
        const value = async (key: string): Promise<string> =>
          (await server.ctl(['get', key, '--print-value-only'])).trim();
        assert.equal(await value(leader), 'manager-1');
        const recorded = JSON.parse(await value(since)) as { id: string; since: number };
        assert.equal(recorded.id, 'manager-1');
        assert.ok(Number.isSafeInteger(recorded.since) && recorded.since <= Date.now());
        assert.deepEqual(JSON.parse(await value(`${prefix}/nodes/node-1`)), node('node-1'));
        assert.deepEqual(JSON.parse(await value(`${prefix}/routing`)), table(1));
        await cluster.close();
        assert.equal((await server.ctl(['get', `${prefix}/`, '--prefix', '--keys-only'])).trim(), `${prefix}/routing`);
      } finally {
        await cleanup();
        await server.ctl(['del', '--prefix', `${prefix}/`]);
      }
    });

    it('loses leadership when its election key is deleted, and the next candidate leads', async () => {
      const { prefix, open, cleanup } = opened();
      try {
        const [a, b] = [await open(), await open()];
        const leader = await a.campaign('manager-a');
        const next = b.campaign('manager-b');
        const leaderKey = (await server.ctl(['get', `${prefix}/leader/`, '--prefix', '--keys-only'])).split('\n')[0];
        await server.ctl(['del', leaderKey ?? '']);
        await leader.lost;
        await (await next).resign();
      } finally {
        await cleanup();
        await server.ctl(['del', '--prefix', `${prefix}/`]);
      }
    });

    it("moves the election key and its leader-since record to the taker's lease, and the old lease goes", async () => {
      const { prefix, open, cleanup } = opened();
      try {
        const [a, b] = [await open(), await open()];
        const leadA = await a.campaign('manager-a');
        const leaderKey =
          (await server.ctl(['get', `${prefix}/leader/`, '--prefix', '--keys-only'])).split('\n')[0] ?? '';
        const sinceKey = leaderKey.replace('/leader/', '/leader-since/');
        const oldLease = await leaseOf(server, leaderKey);
        const created = /"CreateRevision" : (\d+)/.exec(await server.ctl(['get', leaderKey, '-w', 'fields']))?.[1];
        const leadB = await b.takeOver('manager-b', 'manager-a');
        await leadA.lost;
        const newLease = await leaseOf(server, leaderKey);
        assert.notEqual(newLease, oldLease);
        assert.equal(await leaseOf(server, sinceKey), newLease);
        const fields = await server.ctl(['get', leaderKey, '-w', 'fields']);
        assert.equal(/"CreateRevision" : (\d+)/.exec(fields)?.[1], created, 'the key keeps its place');
        assert.match(fields, new RegExp(`"ModRevision" : ${leadB.term}\\b`), 'the term is the mod revision');
        assert.equal((await server.ctl(['get', leaderKey, '--print-value-only'])).trim(), 'manager-b');
        const revoked = async (): Promise<boolean> =>
          /lease \w+ already expired|not found/i.test(
            await server.ctl(['lease', 'timetolive', oldLease]).catch((err: unknown) => String(err)),
          );
        const deadline = Date.now() + 5_000;
        while (!(await revoked())) {
          assert.ok(Date.now() < deadline, 'the old lease was not revoked');
          await sleep(50);
        }
        await leadB.resign();
        assert.equal((await server.ctl(['get', `${prefix}/leader`, '--prefix', '--keys-only'])).trim(), '');
      } finally {
        await cleanup();
        await server.ctl(['del', '--prefix', `${prefix}/`]);
      }
    });

    it('drops the invalid entries of a stored routing table, so that the next write and every push go on', async () => {
      const { prefix, open, cleanup } = opened();
      const token = 'routing-test-token';
      const pushed: RoutingTable[] = [];
      const gateway = await serveRouting({
        address: '127.0.0.1:0',
        gatewayId: 'gw-1',
        token,
        onTable: (table) => {
          pushed.push(table);
        },
      });
      try {
        const cluster = await open();
        // Written by hand (or by a broken writer): revisions that int64 cannot encode, an agent that is no address.
        const stored = {
          version: 5,
          agents: { 'node-a': '10.0.0.1:7001', 'node-b': 7 },
          updatedAt: 1_700_000_000_000,
          traffic: { good: 4, negative: -1, fraction: 1.5, huge: 1e300, text: 'x', none: null, unsafe: 2 ** 53 },
        };
        await server.ctl(['put', `${prefix}/routing`, JSON.stringify(stored)]);
        const clean = {
          version: 5,
          agents: { 'node-a': '10.0.0.1:7001' },
          updatedAt: 1_700_000_000_000,
          traffic: { good: 4 },
        };
        assert.deepEqual(await cluster.routing.get(), clean);
        const watched: RoutingTable[] = [];
        await cluster.routing.watch((table) => watched.push(table));
        assert.deepEqual(watched, [clean]);

        const publisher = new RoutingPublisher({
          routing: cluster.routing,
          isLeader: () => true,
          nodes: () => [{ nodeId: 'node-a', agentAddress: '10.0.0.1:7001' }],
          push: (to, table) => pushRoutingTable(to, token, table),
          logger: silentLogger,
        });
        publisher.publishTraffic(['shop']);
        await publisher.settled();
        publisher.gatewayJoined({ gatewayId: 'gw-1', address: gateway.address });
        await until(
          () => pushed.some((table) => table.version === 6),
          () => `pushed: ${JSON.stringify(pushed)}`,
        );
        assert.deepEqual(pushed.at(-1)?.traffic, { good: 4, shop: 6 });
        assert.deepEqual(JSON.parse((await server.ctl(['get', `${prefix}/routing`, '--print-value-only'])).trim()), {
          version: 6,
          agents: { 'node-a': '10.0.0.1:7001' },
          updatedAt: pushed.at(-1)?.updatedAt,
          traffic: { good: 4, shop: 6 },
        });

        // A value that is no table at all is refused, not half read.
        await server.ctl(['put', `${prefix}/routing`, JSON.stringify({ version: -1, agents: {} })]);
        await assert.rejects(cluster.routing.get(), code('INTERNAL'));
      } finally {
        await gateway.close();
        await cleanup();
        await server.ctl(['del', '--prefix', `${prefix}/`]);
      }
    });

    it('fails fast with UNAVAILABLE naming etcd when nothing answers', async () => {
      const port = await freeLoopbackPort();
      const started = Date.now();
      await assert.rejects(openEtcdCluster({ endpoints: [`http://127.0.0.1:${port}`] }), (err) => {
        assert.ok(isPlatformError(err, 'UNAVAILABLE'), String(err));
        assert.match(err.message, new RegExp(`etcd at http://127\\.0\\.0\\.1:${port} is unavailable`));
        return true;
      });
      assert.ok(Date.now() - started < 3_000, `took ${Date.now() - started} ms`);
    });

    it('refuses bad options with BAD_REQUEST', async () => {
      await assert.rejects(openEtcdCluster({ endpoints: [] }), code('BAD_REQUEST'));
      await assert.rejects(openEtcdCluster({ endpoints: ['ftp://127.0.0.1:2379'] }), code('BAD_REQUEST'));
      await assert.rejects(
        openEtcdCluster({ endpoints: ['https://127.0.0.1:2379', 'http://127.0.0.1:2380'] }),
        code('BAD_REQUEST'),
      );
      await assert.rejects(openEtcdCluster({ endpoints: server.endpoints, prefix: 'x' }), code('BAD_REQUEST'));
      await assert.rejects(openEtcdCluster({ endpoints: server.endpoints, leaderTtlSeconds: 0 }), code('BAD_REQUEST'));
    });
  });

  describe('EtcdCluster with etcd authentication and TLS', () => {
    it('works as an etcd user, and fails clearly without the user or with a wrong password', async () => {
      const own = await startEtcdServer();
      const password = `pw-${randomUUID()}`;
      try {
        await own.ctl(['user', 'add', 'root', '--new-user-password', password]);
        await own.ctl(['auth', 'enable']);
        const auth = { username: 'root', password };
        const cluster = await openEtcdCluster({ endpoints: own.endpoints, prefix: uniquePrefix(), auth });
        try {
          const registration = await cluster.registry.register(node('node-a'), 5);
          assert.equal(await cluster.routing.put({ version: 1, agents: {}, updatedAt: 1 }, 0), true);
          await registration.deregister();
        } finally {
          await cluster.close();
        }
        await assert.rejects(openEtcdCluster({ endpoints: own.endpoints }), (err) => {
          assert.ok(isPlatformError(err, 'UNAUTHORIZED'), String(err));
          assert.match(err.message, /etcd at .* requires a user: pass --etcd-user and SAVASSAN_ETCD_PASSWORD/);
          return true;
        });
        await assert.rejects(
          openEtcdCluster({ endpoints: own.endpoints, auth: { ...auth, password: 'wrong' } }),
          (err) => {
            assert.ok(isPlatformError(err, 'UNAUTHORIZED'), String(err));
            assert.match(err.message, /etcd at .* refused the user root: wrong user name or password/);
            return true;
          },
        );
      } finally {
        await own.stop();
      }
    });

    it(
      'talks TLS with a client certificate, and fails clearly without one',
      { skip: !opensslAvailable() },
      async () => {
        const dir = await mkdtemp(join(tmpdir(), 'sv-etcd-tls-'));
        const files = await makeTestCertificates(dir);
        const own = await startEtcdServer({ tls: files });
        try {
          const [ca, cert, key] = await Promise.all(
            [files.ca, files.clientCert, files.clientKey].map((f) => readFile(f)),
          );
          assert.match(own.endpoints[0] ?? '', /^https:/);
          const cluster = await openEtcdCluster({
            endpoints: own.endpoints,
            prefix: uniquePrefix(),
            tls: { ca, cert, key },
          });
          try {
            const registration = await cluster.registry.register(node('node-a'), 5);
            await registration.deregister();
          } finally {
            await cluster.close();
          }
          // etcd checks client certificates: the CA alone is not enough.
          await assert.rejects(openEtcdCluster({ endpoints: own.endpoints, tls: { ca } }), code('UNAVAILABLE'));
          await assert.rejects(
            openEtcdCluster({ endpoints: [own.endpoints[0]!.replace('https:', 'http:')], tls: { ca, cert, key } }),
            code('BAD_REQUEST'),
          );
          await assert.rejects(openEtcdCluster({ endpoints: own.endpoints, tls: { ca, cert } }), code('BAD_REQUEST'));
        } finally {
          await own.stop();
          await rm(dir, { recursive: true, force: true });
        }
      },
    );
  });

  describe('EtcdCluster across etcd restarts', () => {
    it('keeps nodes and watches through a restart, with no event repeated', async () => {
      const own = await startEtcdServer();
      const prefix = uniquePrefix();
      const clients: EtcdCluster[] = [];
      try {
        const [writer, watcher] = [
          await openEtcdCluster({ endpoints: own.endpoints, prefix }),
          await openEtcdCluster({ endpoints: own.endpoints, prefix }),
        ];
        clients.push(writer, watcher);
        const registration = await writer.registry.register(node('node-a'), 2);
        const events: MembershipEvent[] = [];
        await watcher.membership.watch((event) => events.push(event));

        await own.kill();
        await own.restart();
        await writer.registry.register(node('node-b'), 2);
        await until(
          () => events.length >= 2,
          () => JSON.stringify(events),
        );
        await sleep(2_500); // past node-a's TTL: its keepalives resumed after the restart
        assert.deepEqual(events, [
          { type: 'join', node: node('node-a') },
          { type: 'join', node: node('node-b') },
        ]);
        assert.deepEqual(
          (await watcher.registry.list()).map((info) => info.nodeId),
          ['node-a', 'node-b'],
        );
        let lost = false;
        void registration.lost.then(() => (lost = true));
        await sleep(0);
        assert.equal(lost, false);
      } finally {
        await Promise.all(clients.map((client) => client.close()));
        await own.stop();
      }
    });

    it('after a reconnect re-reads the nodes and routing and emits what changed while the watch was away', async () => {
      const own = await startEtcdServer();
      const proxy = await startProxy(own.clientPort);
      const prefix = uniquePrefix();
      const clients: EtcdCluster[] = [];
      try {
        const writer = await openEtcdCluster({ endpoints: own.endpoints, prefix });
        // The watcher reaches etcd through a proxy the test can cut.
        const watcher = await openEtcdCluster({ endpoints: [proxy.endpoint], prefix });
        clients.push(writer, watcher);
        const a = await writer.registry.register(node('node-a'), 10);
        const b = await writer.registry.register(node('node-b'), 10);
        const events: MembershipEvent[] = [];
        const tables: RoutingTable[] = [];
        await watcher.membership.watch((event) => events.push(event));
        await watcher.routing.watch((t) => tables.push(t));
        assert.equal(events.length, 2);

        // etcd restarts; the watcher stays cut off until the writer has changed everything and compacted the history
        // (no watch could resume where it stopped).
        await own.kill();
        proxy.pause();
        await own.restart();
        await b.deregister();
        await a.update(node('node-a', { sandboxes: 2 }));
        await writer.registry.register(node('node-c'), 10);
        assert.equal(await writer.routing.put(table(1), 0), true);
        await own.ctl(['compact', await revision(own)]);
        assert.deepEqual(events.length, 2);
        proxy.resume();

        await until(
          () => events.length >= 5 && tables.length >= 1,
          () => JSON.stringify({ events, tables }),
        );
        assert.deepEqual(events.slice(2), [
          { type: 'leave', nodeId: 'node-b' },
          { type: 'update', node: node('node-a', { sandboxes: 2 }) },
          { type: 'join', node: node('node-c') },
        ]);
        assert.deepEqual(tables, [table(1)]);

        // Watching again, from the fresh snapshot on.
        await writer.registry.register(node('node-d'), 10);
        assert.equal(await writer.routing.put(table(2), 1), true);
        await until(
          () => events.length >= 6 && tables.length >= 2,
          () => JSON.stringify({ events, tables }),
        );
        await sleep(QUIET_MS);
        assert.deepEqual(events.slice(5), [{ type: 'join', node: node('node-d') }]);
        assert.deepEqual(tables, [table(1), table(2)]);
      } finally {
        await Promise.all(clients.map((client) => client.close()));
        await proxy.close();
        await own.stop();
      }
    });
  });
}

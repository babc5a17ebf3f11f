import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { isPlatformError } from '../../src/core/errors.js';
import type { Cluster, MembershipEvent, NodeInfo, RoutingTable } from '../../src/core/ports/cluster.js';

/** A Cluster client that a test can also end as a killed process would. */
export interface ClusterClient extends Cluster {
  /** Stop without revoking anything: keepalives end, entries stay until their leases expire. */
  abandon(): Promise<void>;
}

/** One test's cluster: several clients (processes) can open it, isolated from every other test. */
export interface ClusterFixture {
  /** A new client of the test's cluster, with its own leases and watchers. */
  open(): Promise<ClusterClient>;
  /** Ends the lease behind `nodes/{nodeId}` from outside its process, as if it expired. */
  expireLease(nodeId: string): Promise<void>;
  /** Closes the clients still open and removes what the test left behind. */
  cleanup(): Promise<void>;
}

export type MakeClusterFixture = (options: { leaderTtlSeconds: number }) => Promise<ClusterFixture>;

/** TTL of registrations that must not expire during a test. */
const LONG_TTL_SECONDS = 30;
/** TTL of registrations a test lets expire. */
const SHORT_TTL_SECONDS = 1;
const LEADER_TTL_SECONDS = 2;
/** etcd checks for expired leases every 500 ms; then the delete reaches the watchers. */
const EXPIRY_SLACK_MS = 1_500;
/** How long to watch for something that must not happen. */
const QUIET_MS = 300;

/**
 * The Cluster contract, run against every adapter (`test/contracts/memory-cluster.test.ts`, `etcd.test.ts`).
 *
 * `makeFixture` must return an empty cluster isolated from every other test (etcd: a fresh key prefix); clients
 * opened from it share it as processes of one cluster would.
 */
export function clusterContract(name: string, makeFixture: MakeClusterFixture): void {
  describe(`Cluster contract: ${name}`, () => {
    let fixture: ClusterFixture;
    let cluster: ClusterClient;

    beforeEach(async () => {
      fixture = await makeFixture({ leaderTtlSeconds: LEADER_TTL_SECONDS });
      cluster = await fixture.open();
    });

    afterEach(async () => {
      await fixture.cleanup();
    });

    describe('registry', () => {
      it('lists what is registered, updated and deregistered', async () => {
        assert.deepEqual(await cluster.registry.list(), []);
        const b = await cluster.registry.register(node('node-b'), LONG_TTL_SECONDS);
        const a = await cluster.registry.register(node('node-a', { codeCached: ['sha-1'] }), LONG_TTL_SECONDS);
        assert.deepEqual(await cluster.registry.list(), [node('node-a', { codeCached: ['sha-1'] }), node('node-b')]);

        await b.update(node('node-b', { sandboxes: 3 }));
        assert.deepEqual(await cluster.registry.list(), [
          node('node-a', { codeCached: ['sha-1'] }),
          node('node-b', { sandboxes: 3 }),
        ]);

        await a.deregister();
        await a.deregister();
        assert.deepEqual(await cluster.registry.list(), [node('node-b', { sandboxes: 3 })]);
        await assert.rejects(a.update(node('node-a')), code('BAD_REQUEST'));
      });

      it('refuses bad node ids, TTLs and updates with BAD_REQUEST', async () => {
        await assert.rejects(cluster.registry.register(node(''), LONG_TTL_SECONDS), code('BAD_REQUEST'));
        await assert.rejects(cluster.registry.register(node('a/b'), LONG_TTL_SECONDS), code('BAD_REQUEST'));
        await assert.rejects(cluster.registry.register(node('node-a'), 0), code('BAD_REQUEST'));
        await assert.rejects(cluster.registry.register(node('node-a'), 1.5), code('BAD_REQUEST'));
        const a = await cluster.registry.register(node('node-a'), LONG_TTL_SECONDS);
        await assert.rejects(a.update(node('node-b')), code('BAD_REQUEST'));
        assert.deepEqual(await cluster.registry.list(), [node('node-a')]);
      });

      it('removes the node of a process that died within its TTL', async () => {
        const events = await record(cluster);
        const doomed = await fixture.open();
        await doomed.registry.register(node('node-dead'), SHORT_TTL_SECONDS);
        await cluster.registry.register(node('node-alive'), LONG_TTL_SECONDS);
        await events.until(2);

        await doomed.abandon();
        const died = Date.now();
        await events.until(3, SHORT_TTL_SECONDS * 1000 + EXPIRY_SLACK_MS);
        assert.ok(Date.now() - died <= SHORT_TTL_SECONDS * 1000 + EXPIRY_SLACK_MS);
        assert.deepEqual(events.list.slice(2), [{ type: 'leave', nodeId: 'node-dead' }]);
        assert.deepEqual(await cluster.registry.list(), [node('node-alive')]);
      });

      it('keeps a live node past its TTL through keepalives', async () => {
        const events = await record(cluster);
        await cluster.registry.register(node('node-a'), SHORT_TTL_SECONDS);
        await sleep(SHORT_TTL_SECONDS * 1000 + EXPIRY_SLACK_MS);
        assert.deepEqual(await cluster.registry.list(), [node('node-a')]);
        assert.deepEqual(events.list, [{ type: 'join', node: node('node-a') }]);
      });

      it('resolves lost when the lease ends from outside, and update then fails with UNAVAILABLE', async () => {
        const registration = await cluster.registry.register(node('node-a'), SHORT_TTL_SECONDS);
        await fixture.expireLease('node-a');
        assert.equal(await resolvesWithin(registration.lost, SHORT_TTL_SECONDS * 1000 + EXPIRY_SLACK_MS), true);
        assert.deepEqual(await cluster.registry.list(), []);
        await assert.rejects(registration.update(node('node-a', { sandboxes: 1 })), code('UNAVAILABLE'));
        assert.deepEqual(await cluster.registry.list(), []);
        await registration.deregister();
      });

      it('does not resolve lost on deregister', async () => {
        const registration = await cluster.registry.register(node('node-a'), SHORT_TTL_SECONDS);
        await registration.deregister();
        assert.equal(await resolvesWithin(registration.lost, QUIET_MS), false);
      });
    });

    describe('membership', () => {
      it('delivers the current members as joins before watch() resolves, then join, update and leave in order', async () => {
        const b = await cluster.registry.register(node('node-b'), LONG_TTL_SECONDS);
        await cluster.registry.register(node('node-a'), LONG_TTL_SECONDS);
        const events = await record(cluster);
        assert.deepEqual(events.list, [
          { type: 'join', node: node('node-a') },
          { type: 'join', node: node('node-b') },
        ]);

        const c = await cluster.registry.register(node('node-c'), LONG_TTL_SECONDS);
        await b.update(node('node-b', { sandboxes: 2 }));
        await c.update(node('node-c', { capacity: 8 }));
        await b.deregister();
        await events.until(6);
        assert.deepEqual(events.list.slice(2), [
          { type: 'join', node: node('node-c') },
          { type: 'update', node: node('node-b', { sandboxes: 2 }) },
          { type: 'update', node: node('node-c', { capacity: 8 }) },
          { type: 'leave', nodeId: 'node-b' },
        ]);
        await sleep(QUIET_MS);
        assert.equal(events.list.length, 6);
      });

      it("sees other clients' nodes, and a node registered again after leaving as a leave then a join", async () => {
        const other = await fixture.open();
        const events = await record(cluster);
        const first = await other.registry.register(node('node-x'), LONG_TTL_SECONDS);
        await events.until(1);
        await first.deregister();
        await other.registry.register(node('node-x', { startedAt: 2 }), LONG_TTL_SECONDS);
        await events.until(3);
        assert.deepEqual(events.list, [
          { type: 'join', node: node('node-x') },
          { type: 'leave', nodeId: 'node-x' },
          { type: 'join', node: node('node-x', { startedAt: 2 }) },
        ]);
      });

      it('keeps delivering to the other watchers when a listener throws', async () => {
        const thrower = await cluster.membership.watch(() => {
          throw new Error('listener bug');
        });
        const events = await record(cluster);
        await cluster.registry.register(node('node-a'), LONG_TTL_SECONDS);
        await cluster.registry.register(node('node-b'), LONG_TTL_SECONDS);
        await events.until(2);
        await thrower.close();
      });

      it('stops delivering once the watch is closed, and keeps other watches going', async () => {
        const stopped = await record(cluster);
        const going = await record(cluster);
        await stopped.close();
        await cluster.registry.register(node('node-a'), LONG_TTL_SECONDS);
        await going.until(1);
        await sleep(QUIET_MS);
        assert.deepEqual(stopped.list, []);
      });
    });

    describe('routing', () => {
      it('has no table at first, then writes with compare-and-swap on the version', async () => {
        assert.equal(await cluster.routing.get(), null);
        assert.equal(await cluster.routing.put(table(2), 1), false);
        assert.equal(await cluster.routing.put(table(1), 0), true);
        assert.deepEqual(await cluster.routing.get(), table(1));
        assert.equal(await cluster.routing.put(table(2, 'other'), 0), false);
        assert.equal(await cluster.routing.put(table(2), 1), true);
        assert.equal(await cluster.routing.put(table(3), 1), false);
        assert.equal(await cluster.routing.put(table(5), 2), true);
        assert.deepEqual(await cluster.routing.get(), table(5));
      });

      it('refuses a version that does not move past the expected one with BAD_REQUEST', async () => {
        await assert.rejects(cluster.routing.put(table(0), 0), code('BAD_REQUEST'));
        assert.equal(await cluster.routing.put(table(1), 0), true);
        await assert.rejects(cluster.routing.put(table(1), 1), code('BAD_REQUEST'));
        await assert.rejects(cluster.routing.put(table(2), -1), code('BAD_REQUEST'));
        assert.deepEqual(await cluster.routing.get(), table(1));
      });

      it('lets exactly one of two writers of the same version win', async () => {
        const other = await fixture.open();
        assert.equal(await cluster.routing.put(table(1), 0), true);
        for (let round = 1; round <= 5; round++) {
          const results = await Promise.all([
            cluster.routing.put(table(round + 1, 'mine'), round),
            other.routing.put(table(round + 1, 'theirs'), round),
          ]);
          assert.equal(results.filter(Boolean).length, 1, `round ${round}: ${results.join(',')}`);
          const winner = results[0] ? 'mine' : 'theirs';
          assert.deepEqual(await other.routing.get(), table(round + 1, winner));
        }
      });

      it('watch delivers the current table first, then each change', async () => {
        const empty: RoutingTable[] = [];
        const beforeFirst = await cluster.routing.watch((t) => empty.push(t));
        await sleep(QUIET_MS / 3);
        assert.deepEqual(empty, []);
        assert.equal(await cluster.routing.put(table(1), 0), true);
        await until(() => empty.length === 1);
        await beforeFirst.close();

        const other = await fixture.open();
        const seen: RoutingTable[] = [];
        const watch = await other.routing.watch((t) => seen.push(t));
        assert.deepEqual(seen, [table(1)]);
        assert.equal(await cluster.routing.put(table(2), 1), true);
        assert.equal(await cluster.routing.put(table(3), 2), true);
        await until(() => seen.length === 3);
        assert.deepEqual(seen, [table(1), table(2), table(3)]);
        await watch.close();
        assert.equal(await cluster.routing.put(table(4), 3), true);
        await sleep(QUIET_MS);
        assert.equal(seen.length, 3);
      });
    });

    describe('leadership', () => {
      it('has one leader at a time, hands over on resign, and serves candidates in campaign order', async () => {
        const [b, c] = [await fixture.open(), await fixture.open()];
        const leaderA = await cluster.campaign('manager-a');
        const electedB = b.campaign('manager-b');
        await sleep(QUIET_MS / 3); // b campaigns before c
        const electedC = c.campaign('manager-c');
        assert.equal(await resolvesWithin(electedB, QUIET_MS), false);
        assert.equal(await resolvesWithin(electedC, 0), false);

        await leaderA.resign();
        await leaderA.resign();
        const leaderB = await electedB;
        assert.equal(await resolvesWithin(electedC, QUIET_MS), false);
        await leaderB.resign();
        const leaderC = await electedC;
        assert.equal(await resolvesWithin(leaderA.lost, 0), false);
        await leaderC.resign();

        // The election is free again.
        const again = await cluster.campaign('manager-a');
        await again.resign();
      });

      it('tells every client who leads and since when', async () => {
        const other = await fixture.open();
        assert.equal(await other.leader(), null);
        const before = Date.now();
        const leaderA = await cluster.campaign('manager-a');
        const electedB = other.campaign('manager-b');
        const seen = await other.leader();
        assert.equal(seen?.id, 'manager-a');
        assert.ok(seen.since instanceof Date && seen.since.getTime() >= before - 1000, 'elected now');
        await leaderA.resign();
        const leaderB = await electedB;
        assert.equal((await cluster.leader())?.id, 'manager-b');
        await leaderB.resign();
        assert.equal(await cluster.leader(), null);
      });

      it('elects the next candidate within the leader TTL when the leader dies', async () => {
        const doomed = await fixture.open();
        await doomed.campaign('manager-dead');
        const elected = cluster.campaign('manager-next');
        assert.equal(await resolvesWithin(elected, QUIET_MS), false);
        await doomed.abandon();
        const died = Date.now();
        const next = await elected;
        assert.ok(Date.now() - died <= LEADER_TTL_SECONDS * 1000 + EXPIRY_SLACK_MS, `${Date.now() - died} ms`);
        await next.resign();
      });

      it('refuses an empty candidate id with BAD_REQUEST', async () => {
        await assert.rejects(cluster.campaign(''), code('BAD_REQUEST'));
      });

      it('takes the lead over with no moment without a leader; the old lead is lost and resigns to no effect', async () => {
        const taker = await fixture.open();
        const observer = await fixture.open();
        const leadA = await cluster.campaign('manager-a');
        const seen: (string | null)[] = [];
        let polling = true;
        const poll = (async () => {
          while (polling) {
            seen.push((await observer.leader())?.id ?? null);
            await new Promise((resolve) => setImmediate(resolve)); // an in-memory read never yields to timers
          }
        })();
        await until(() => seen.length >= 3);
        const before = Date.now();
        const leadB = await taker.takeOver('manager-b', 'manager-a');
        await until(() => seen.includes('manager-b'));
        polling = false;
        await poll;
        assert.ok(!seen.includes(null), `a moment without a leader: ${seen.join(',')}`);
        const first = seen.indexOf('manager-b');
        assert.deepEqual(new Set(seen.slice(0, first)), new Set(['manager-a']));
        assert.deepEqual(new Set(seen.slice(first)), new Set(['manager-b']));

        assert.equal(await resolvesWithin(leadA.lost, 5_000), true, "the old lead's lost resolves");
        assert.equal(await resolvesWithin(leadB.lost, 0), false);
        assert.ok(leadB.term > leadA.term, `term ${leadB.term} after ${leadA.term}`);
        const now = await observer.leader();
        assert.equal(now?.id, 'manager-b');
        assert.ok(now.since instanceof Date && now.since.getTime() >= before - 1000, 'since the takeover');

        await leadA.resign();
        await sleep(QUIET_MS);
        assert.equal((await observer.leader())?.id, 'manager-b', 'the old lead resigns to no effect');
        assert.equal(await resolvesWithin(leadB.lost, 0), false);
        await leadB.resign();
        assert.equal(await observer.leader(), null);
      });

      it('gives a higher term with every election and takeover', async () => {
        const [b, c] = [await fixture.open(), await fixture.open()];
        const terms: number[] = [];
        const leadA = await cluster.campaign('manager-a');
        terms.push(leadA.term);
        const leadB = await b.takeOver('manager-b', 'manager-a');
        terms.push(leadB.term);
        const leadC = await c.takeOver('manager-c', 'manager-b');
        terms.push(leadC.term);
        assert.equal(await resolvesWithin(leadB.lost, 5_000), true, 'a taker loses to the next taker');
        await leadC.resign();
        const again = await b.campaign('manager-b');
        terms.push(again.term);
        await again.resign();
        for (const term of terms) assert.ok(Number.isSafeInteger(term) && term > 0, String(term));
        for (let i = 1; i < terms.length; i++) assert.ok(terms[i]! > terms[i - 1]!, terms.join(' < '));
      });

      it('refuses a takeover from a candidate that does not lead with CONFLICT', async () => {
        const taker = await fixture.open();
        await assert.rejects(taker.takeOver('manager-b', 'manager-a'), code('CONFLICT'));
        const leadA = await cluster.campaign('manager-a');
        const waiting = cluster.campaign('manager-w');
        await sleep(QUIET_MS / 3);
        await assert.rejects(taker.takeOver('manager-b', 'manager-w'), code('CONFLICT'));
        await assert.rejects(taker.takeOver('manager-b', 'manager-z'), code('CONFLICT'));
        await assert.rejects(taker.takeOver('', 'manager-a'), code('BAD_REQUEST'));
        assert.equal((await taker.leader())?.id, 'manager-a');
        assert.equal(await resolvesWithin(leadA.lost, QUIET_MS), false);
        await leadA.resign();
        await (await waiting).resign();
        assert.equal(await taker.leader(), null, 'the refused takeovers left nothing behind');
      });

      it('withdraws a waiting campaign when its signal aborts', async () => {
        const other = await fixture.open();
        const reason = new Error('withdrawn');
        const already = new AbortController();
        already.abort(reason);
        await assert.rejects(other.campaign('manager-b', { signal: already.signal }), (err) => err === reason);

        const leadA = await cluster.campaign('manager-a');
        const withdrawn = new AbortController();
        const waitingB = other.campaign('manager-b', { signal: withdrawn.signal });
        await sleep(QUIET_MS / 3); // b campaigns before c
        const waitingC = other.campaign('manager-c', { signal: new AbortController().signal });
        assert.equal(await resolvesWithin(waitingB, QUIET_MS), false);
        withdrawn.abort(reason);
        await assert.rejects(waitingB, (err) => err === reason);
        await leadA.resign();
        const leadC = await waitingC;
        assert.equal((await cluster.leader())?.id, 'manager-c');
        await leadC.resign();
        assert.equal(await cluster.leader(), null);
      });

      it('keeps the waiting candidates in their order after a takeover: the taker leads in the old place', async () => {
        const [b, c, taker] = [await fixture.open(), await fixture.open(), await fixture.open()];
        const leadA = await cluster.campaign('manager-a');
        const electedB = b.campaign('manager-b');
        await sleep(QUIET_MS / 3); // b campaigns before c
        const electedC = c.campaign('manager-c');
        await sleep(QUIET_MS / 3);
        const leadT = await taker.takeOver('manager-t', 'manager-a');
        assert.equal(await resolvesWithin(leadA.lost, 5_000), true);
        assert.equal((await cluster.leader())?.id, 'manager-t');
        assert.equal(await resolvesWithin(electedB, QUIET_MS), false);
        assert.equal(await resolvesWithin(electedC, 0), false);

        await leadT.resign();
        const leadB = await electedB;
        assert.ok(leadB.term > leadT.term, `term ${leadB.term} after the taker's ${leadT.term}`);
        assert.equal((await cluster.leader())?.id, 'manager-b');
        assert.equal(await resolvesWithin(electedC, QUIET_MS), false);
        await leadB.resign();
        const leadC = await electedC;
        assert.equal((await cluster.leader())?.id, 'manager-c');
        await leadC.resign();
      });
    });

    describe('close', () => {
      it('releases everything at once: nodes leave, leadership passes, watches stop, calls fail', async () => {
        const observer = await fixture.open();
        const events = await record(observer);
        const routings: RoutingTable[] = [];
        await cluster.routing.watch((t) => routings.push(t));
        await cluster.registry.register(node('node-a'), LONG_TTL_SECONDS);
        await cluster.campaign('manager-a');
        const next = observer.campaign('manager-b');
        const ownEvents = await record(cluster);
        await events.until(1);
        const pending = cluster.campaign('manager-a2');
        const pendingFails = assert.rejects(pending, code('UNAVAILABLE'));

        const closing = Date.now();
        await cluster.close();
        await cluster.close();
        await pendingFails;
        await events.until(2, 3_000);
        assert.deepEqual(events.list[1], { type: 'leave', nodeId: 'node-a' });
        await next;
        assert.ok(Date.now() - closing < 3_000, 'released at close, not after the TTLs');

        assert.equal(await observer.routing.put(table(1), 0), true);
        await observer.registry.register(node('node-b'), LONG_TTL_SECONDS);
        await sleep(QUIET_MS);
        assert.deepEqual(routings, []);
        assert.deepEqual(ownEvents.list, [{ type: 'join', node: node('node-a') }]);
        await assert.rejects(cluster.registry.list(), code('UNAVAILABLE'));
        await assert.rejects(cluster.routing.get(), code('UNAVAILABLE'));
        await assert.rejects(cluster.campaign('again'), code('UNAVAILABLE'));
      });
    });
  });
}

function node(nodeId: string, overrides: Partial<NodeInfo> = {}): NodeInfo {
  return {
    nodeId,
    agentAddress: `127.0.0.1:${7000 + nodeId.length}`,
    capacity: 4,
    sandboxes: 0,
    sandboxRuntime: 'process',
    isolating: false,
    codeCached: [],
    startedAt: 1,
    ...overrides,
  };
}

function table(version: number, writer = 'leader'): RoutingTable {
  return { version, agents: { 'node-a': `${writer}:7001` }, updatedAt: 1_700_000_000_000 + version };
}

function code(expected: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isPlatformError(err), `expected a PlatformError, got ${String(err)}`);
    assert.equal(err.code, expected, err.message);
    return true;
  };
}

/** A membership watch on `cluster` that keeps its events. */
async function record(cluster: Cluster): Promise<{
  list: MembershipEvent[];
  until: (count: number, timeoutMs?: number) => Promise<void>;
  close: () => Promise<void>;
}> {
  const list: MembershipEvent[] = [];
  const watch = await cluster.membership.watch((event) => list.push(event));
  return {
    list,
    until: (count, timeoutMs) =>
      until(
        () => list.length >= count,
        timeoutMs,
        () => JSON.stringify(list),
      ),
    close: () => watch.close(),
  };
}

async function until(condition: () => boolean, timeoutMs = 5_000, state?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`condition not met within ${timeoutMs} ms${state ? `: ${state()}` : ''}`);
    await sleep(10);
  }
}

/** Whether `promise` settles within `ms` (a rejection counts: the test then sees it where it awaits). */
async function resolvesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  const settled = promise.then(
    () => true,
    () => true,
  );
  return Promise.race([settled, sleep(ms).then(() => false)]);
}

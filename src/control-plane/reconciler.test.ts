// The Reconciler with a real Manager, the real memory pool and an in-memory SQLite store; the Agent is a fake that
// implements the port, since these tests are about what the reconcile does with what an Agent reports.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { MemoryPool } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import type { SqlMetadataStore } from '../adapters/sql/sql-metadata-store.js';
import type { SqlTrafficStore } from '../adapters/sql/sql-traffic-store.js';
import type { Logger } from '../core/logger.js';
import { SingleAgentDirectory } from '../core/ports/agent-directory.js';
import { endRollout } from '../core/rollouts.js';
import { noFigures } from '../core/traffic-rules.js';
import { compileRolloutSettings } from '../core/rollouts.js';
import type { Rollout } from '../core/types.js';
import { Manager } from '../manager/manager.js';
import type { FakeAgent } from '../../test/helpers/fakes.js';
import { recordingLogger } from '../../test/helpers/fakes.js';
import { openPlaneFixture } from '../../test/helpers/plane-fixture.js';
import type { PlaneFixture } from '../../test/helpers/plane-fixture.js';
import { Reconciler } from './reconciler.js';

const intervalMs = 1000;

describe('Reconciler', () => {
  let fixture: PlaneFixture;
  let metadata: SqlMetadataStore;
  let traffic: SqlTrafficStore;
  let pool: MemoryPool;
  let agent: FakeAgent;
  let fn: string;
  let clock: number;

  beforeEach(async () => {
    clock = Date.now();
    fixture = await openPlaneFixture();
    ({ metadata, traffic, pool, agent, fn } = fixture);
  });

  afterEach(() => fixture.close());

  /** A Manager that provisions (started by the test when it needs the queue served) and a Reconciler over it. */
  const plane = (options: { logger?: Logger } = {}) => {
    const agents = new SingleAgentDirectory(agent);
    const manager = new Manager({
      queue: new MemoryProvisionQueue({ capacity: 10 }),
      pool,
      metadata,
      agents,
      logger: options.logger,
      concurrency: 1,
      now: () => clock,
    });
    const reconciler = new Reconciler({
      pool,
      metadata,
      traffic,
      agents,
      provisioning: manager,
      logger: options.logger,
      intervalMs,
      now: () => clock,
    });
    return {
      start: () => manager.start(),
      reconcile: () => reconciler.reconcile(),
      stop: async () => {
        await reconciler.stop();
        await manager.stop();
      },
    };
  };

  describe('replacements', () => {
    it('asks for a replacement when a lease expires while requests wait at max instances', async () => {
      await fixture.deploy('single', { maxInstances: 1 });
      const m = plane();
      m.start();
      const key = fixture.keyOf('single', 1);
      try {
        // The only instance is checked out by a gateway that then dies: its lease runs out.
        await pool.push(agent.ref(agent.add('single', 1, 'busy', 1)));
        assert.notEqual(await pool.checkout(key, { holder: 'dead-gw', leaseMs: 1_000 }), null);
        const waiting = pool.wait(key, { holder: 'gw', leaseMs: 60_000, timeoutMs: 3_000 });
        clock += 2_000;
        // Its sandbox is gone with the gateway's call: the reconcile destroys it, and must ask for another.
        await m.reconcile();
        const item = await waiting;
        assert.equal(item?.kind, 'instance', 'the waiter got a new sandbox instead of timing out');
      } finally {
        await m.stop();
      }
    });
  });

  describe('pool rebuild from the agent', () => {
    it('puts back idle sandboxes the pool lost, once they have been idle for a reconcile interval', async () => {
      const logger = recordingLogger();
      const m = plane({ logger });
      const key = fixture.keyOf(fn, 1);
      const held = agent.add(fn, 1, 'idle', 3);
      const lost = agent.add(fn, 1, 'idle', 2);
      const busy = agent.add(fn, 1, 'busy', 1);
      await pool.push(agent.ref(held));

      await m.reconcile();
      assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 }, 'not idle long enough yet');
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(await pool.stats(key), { idle: 2, checkedOut: 0, waiters: 0 });
      const warm = [await pool.checkout(key, { holder: 'gw', leaseMs: 60_000 })];
      warm.push(await pool.checkout(key, { holder: 'gw', leaseMs: 60_000 }));
      assert.deepEqual(warm.map((i) => i?.instanceId).sort(), [held.instanceId, lost.instanceId].sort());
      assert.equal(warm.find((i) => i?.instanceId === lost.instanceId)?.invocations, 2);
      assert.ok(!warm.some((i) => i?.instanceId === busy.instanceId), 'a busy sandbox is not put in the pool');
      assert.equal(logger.lines.filter((l) => l.msg.startsWith('pool rebuilt from the agent')).length, 1);

      // Checked out (leased): never added a second time, however long the agent reports it idle.
      clock += 10 * intervalMs;
      await m.reconcile();
      assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 2, waiters: 0 });
      await m.stop();
    });

    it('puts back lost sandboxes while the metadata store is down', async () => {
      const m = plane();
      const key = fixture.keyOf(fn, 1);
      const lost = agent.add(fn, 1, 'idle', 2);
      await metadata.close(); // every call now fails with UNAVAILABLE, as with the database down
      await m.reconcile();
      clock += intervalMs;
      await m.reconcile();
      assert.equal((await pool.checkout(key, { holder: 'gw', leaseMs: 60_000 }))?.instanceId, lost.instanceId);
      await m.stop();
    });

    it('waits again when a sandbox served an invocation between two passes', async () => {
      const m = plane();
      const key = fixture.keyOf(fn, 1);
      const sandbox = agent.add(fn, 1, 'idle', 1);
      await m.reconcile();
      clock += intervalMs / 2;
      sandbox.invocations = 2; // it went out, served, and is on its way back: not a candidate yet
      await m.reconcile();
      clock += intervalMs / 2;
      await m.reconcile();
      assert.equal((await pool.stats(key)).idle, 0);
      clock += intervalMs / 2;
      await m.reconcile();
      assert.equal((await pool.stats(key)).idle, 1);
      await m.stop();
    });

    it('retires a restored sandbox of a version that is no longer current in the same pass', async () => {
      const m = plane();
      await fixture.deploy(fn); // version 2 is current now
      const old = agent.add(fn, 1, 'idle', 4);
      await m.reconcile();
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [old.instanceId]);
      assert.deepEqual(await pool.keys(), []);
      await m.stop();
    });
  });

  describe('pool rebuild warnings', () => {
    it('reports only sandboxes that go back into the pool: not those of a deleted function or a retired version', async () => {
      const logger = recordingLogger();
      const m = plane({ logger });
      const rebuilt = () => logger.lines.filter((l) => l.msg.startsWith('pool rebuilt from the agent'));
      // A deleted function whose idle sandbox is still on the agent, its pool key retired as the deleting gateway
      // retires it; and a version no longer current, whose idle sandbox the pool does not hold.
      await fixture.deploy('doomed');
      const doomed = agent.add('doomed', 1, 'idle', 1);
      const old = agent.add(fn, 1, 'idle', 1);
      await fixture.deploy(fn); // version 2 is current now
      await m.reconcile();
      assert.equal(await metadata.deleteFunction('doomed'), true);
      await pool.retire(fixture.keyOf('doomed', 1));
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(agent.destroyed.sort(), [doomed.instanceId, old.instanceId].sort());
      assert.deepEqual(rebuilt(), [], 'nothing went back into the pool');

      // A real loss: an idle sandbox of the current version that the pool does not hold.
      const lost = agent.add(fn, 2, 'idle', 3);
      await m.reconcile();
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(
        rebuilt().map((l) => [l.level, l.msg]),
        [['warn', 'pool rebuilt from the agent: 1 idle sandbox(es) the pool had lost are back in it']],
      );
      assert.equal(
        (await pool.checkout(fixture.keyOf(fn, 2), { holder: 'gw', leaseMs: 60_000 }))?.instanceId,
        lost.instanceId,
      );
      await m.stop();
    });
  });

  describe('deleted functions', () => {
    it('destroys idle sandboxes of a deleted function and never pools them for its re-created successor', async () => {
      const m = plane();
      const oldKey = fixture.keyOf(fn, 1);
      const pooled = agent.add(fn, 1, 'idle', 1);
      await pool.push(agent.ref(pooled));
      const lost = agent.add(fn, 1, 'idle', 2); // idle on the agent, not in the pool
      const busy = agent.add(fn, 1, 'busy', 1); // still running an invocation
      assert.equal(await metadata.deleteFunction(fn), true);
      await fixture.deploy(fn); // re-created: version 1 again, another incarnation
      assert.notEqual(fixture.keyOf(fn, 1), oldKey);

      await m.reconcile();
      assert.deepEqual(agent.destroyed.sort(), [pooled.instanceId, lost.instanceId].sort());
      clock += 10 * intervalMs;
      await m.reconcile();
      assert.deepEqual(await pool.stats(fixture.keyOf(fn, 1)), { idle: 0, checkedOut: 0, waiters: 0 });
      // The busy one comes back after its invocation: the old key is retired, so it is refused.
      busy.state = 'idle';
      assert.equal(await pool.push(agent.ref(busy)), false);
      await m.stop();
    });
  });

  describe('outages', () => {
    it('survives reconcile failures while metadata is down, logging the outage once', async () => {
      const logger = recordingLogger();
      const m = plane({ logger });
      await metadata.close(); // every call now fails with UNAVAILABLE, as with the database down
      await m.reconcile();
      await m.reconcile();
      assert.equal(logger.lines.filter((l) => l.msg.startsWith('reconcile') && l.level === 'warn').length, 1);

      await m.stop();
    });
  });

  describe('versions in service', () => {
    /** A new version of `fn`, rolled out over the current one (`live` at 90/10). */
    const rollOut = async (config = {}): Promise<Rollout> => {
      const { version } = await fixture.deploy(fn, config, false);
      return traffic.startRollout({
        functionName: fn,
        alias: 'live',
        version: version.version,
        settings: compileRolloutSettings({ rollbackWindowSeconds: 600 }),
      });
    };
    const end = async (rollout: Rollout, outcome: 'promoted' | 'rolled_back'): Promise<void> => {
      const change = endRollout(rollout, outcome, new Date(), { canary: noFigures, baseline: noFigures }, 'test');
      assert.equal((await traffic.updateRollout(fn, rollout.id, rollout.revision, change)).applied, true);
    };
    /** An idle instance of a version of `fn` in the pool, idle since long ago. */
    const pooled = async (version: number): Promise<string> => {
      const sandbox = agent.add(fn, version, 'idle', 1);
      assert.equal(await pool.push(agent.ref(sandbox)), true);
      return sandbox.instanceId;
    };

    it("keeps a running rollout's canary warm and keeps min instances of every version with traffic", async () => {
      await fixture.deploy(fn, { minInstances: 1 }); // version 2, current
      await rollOut({ minInstances: 1 }); // version 3, its canary
      const m = plane();
      await m.reconcile();
      const created = agent.specs.map((spec) => spec.version).sort();
      assert.deepEqual(created, [2, 3], 'one sandbox for the baseline and one for the canary');
      assert.deepEqual(agent.destroyed, []);
      await m.stop();
    });

    it('drains a rolled-back canary, and keeps the baseline of a promotion for its rollback window only', async () => {
      const rollout = await rollOut();
      const baseline = await pooled(1);
      const canary = await pooled(2);
      const m = plane();
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [], 'both versions of a running rollout stay warm');

      await end(rollout, 'rolled_back');
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [canary], 'the rolled-back canary is drained; the baseline serves again');
      agent.destroyed.length = 0;

      // Again, promoted this time: the baseline has no traffic, but keeps its warm instance while the rollback window
      // lasts (and the instance is idle for less than the version's idleSeconds, 300 s).
      await pool.drain(fixture.keyOf(fn, 1));
      agent.sandboxes.clear();
      const again = await traffic.startRollout({
        functionName: fn,
        alias: 'live',
        version: 2,
        settings: compileRolloutSettings({ rollbackWindowSeconds: 600 }),
      });
      const kept = await pooled(1);
      await end(again, 'promoted');
      clock = Date.now() + 299_000;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, []);
      assert.equal((await pool.stats(fixture.keyOf(fn, 1))).idle, 1);
      clock = Date.now() + 601_000;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [kept], 'retired once the rollback window is over');
      assert.notEqual(baseline, kept);
      await m.stop();
    });

    it("reaps a retained baseline's instances idle past its idleSeconds, keeps no min instances for it", async () => {
      await fixture.deploy(fn, { minInstances: 1, idleSeconds: 60 }); // version 2, current
      const rollout = await rollOut(); // version 3
      await end(rollout, 'promoted');
      const m = plane();
      await m.reconcile();
      assert.deepEqual(
        agent.specs.map((spec) => spec.version),
        [],
        'no min instance for a version without traffic',
      );
      const idle = await pooled(2);
      clock = Date.now() + 30_000;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [], 'idle for less than its idleSeconds');
      clock = Date.now() + 61_000;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [idle], 'reaped within the rollback window: it is idle past its idleSeconds');
      assert.deepEqual(
        agent.specs.map((spec) => spec.version),
        [],
        'and not replaced',
      );
      await m.stop();
    });

    it('retires a retained baseline with a long idleSeconds once the rollback window is over', async () => {
      await fixture.deploy(fn, { idleSeconds: 3600 }); // version 2, current
      const rollout = await rollOut(); // version 3, rollback window 600 s
      await end(rollout, 'promoted');
      const kept = await pooled(2);
      const m = plane();
      clock = Date.now() + 599_000;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, []);
      clock = Date.now() + 601_000;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [kept]);
      await m.stop();
    });
  });
});

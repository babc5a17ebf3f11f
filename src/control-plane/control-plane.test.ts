// The control plane's rollout driver with real components: the SQLite metadata and traffic stores, the memory pool
// and cluster, a real Manager; the Agent is a fake that implements the port. Invocation records are written as the
// gateway writes them; the clock is the test's, so each step's interval ends when the test says.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { MemoryCluster } from '../adapters/memory/memory-cluster.js';
import { MemoryInvocationQueue } from '../adapters/memory/memory-invocation-queue.js';
import { SqlScheduleStore } from '../adapters/sql/sql-schedule-store.js';
import { compileScheduleInput } from '../core/schedule-rules.js';
import { AsyncInvocations } from '../events/async-invocations.js';
import { functionMustExist } from '../events/function-must-exist.js';
import type { MemoryPool } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import type { SqlMetadataStore } from '../adapters/sql/sql-metadata-store.js';
import type { SqlTrafficStore } from '../adapters/sql/sql-traffic-store.js';
import { isPlatformError } from '../core/errors.js';
import { SingleAgentDirectory } from '../core/ports/agent-directory.js';
import type { RoutingTable } from '../core/ports/cluster.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import { compileRolloutSettings, endRollout } from '../core/rollouts.js';
import { noFigures, stepWeights } from '../core/traffic-rules.js';
import type { InvocationStatus, Rollout } from '../core/types.js';
import { Manager } from '../manager/manager.js';
import type { FakeAgent } from '../../test/helpers/fakes.js';
import { openPlaneFixture } from '../../test/helpers/plane-fixture.js';
import type { PlaneFixture } from '../../test/helpers/plane-fixture.js';
import { invocationRecord } from '../../test/helpers/records.js';
import { ControlPlane, type ControlPlaneClusterOptions, type ControlPlaneOptions } from './control-plane.js';

const hour = 3_600_000;

describe('ControlPlane rollouts', () => {
  let fixture: PlaneFixture;
  let metadata: SqlMetadataStore;
  let traffic: SqlTrafficStore;
  let pool: MemoryPool;
  let agent: FakeAgent;
  let fn: string;
  let clock: number;
  /** Functions whose traffic the control plane reported moved, in order. */
  let changed: string[];
  const planes: ControlPlane[] = [];
  const managers: Manager[] = [];

  beforeEach(async () => {
    changed = [];
    clock = Date.now();
    fixture = await openPlaneFixture();
    ({ metadata, traffic, pool, agent, fn } = fixture);
    await fixture.deploy(fn, {}, false); // version 2, without traffic
  });

  afterEach(async () => {
    for (const plane of planes.splice(0)) await plane.stop();
    for (const manager of managers.splice(0)) await manager.stop();
    await fixture.close();
  });

  /**
   * A started control plane whose loops never fire on their own (the test drives each tick); in embedded mode
   * unless `cluster` is given.
   */
  const controlPlane = (
    options: {
      cluster?: ControlPlaneClusterOptions;
      traffic?: TrafficStore;
      schedules?: ControlPlaneOptions['schedules'];
    } = {},
  ) => {
    const agents = new SingleAgentDirectory(agent);
    const queue = new MemoryProvisionQueue({ capacity: 10 });
    const manager = new Manager({ queue, pool, metadata, agents, concurrency: 1, now: () => clock });
    managers.push(manager);
    const plane = new ControlPlane({
      pool,
      metadata,
      traffic: options.traffic ?? traffic,
      agents,
      provisioning: manager,
      cluster: options.cluster,
      reconcileIntervalMs: hour,
      rolloutTickMs: hour,
      schedules: options.schedules,
      scheduleTickMs: hour,
      onTrafficChange: (name) => changed.push(name),
      now: () => clock,
    });
    planes.push(plane);
    plane.start();
    return plane;
  };

  /** Version 2 rolled out over version 1 on `live`: 10, 50, then 100%, 30 s each, judged from 20 calls. */
  const start = (): Promise<Rollout> =>
    traffic.startRollout({
      functionName: fn,
      alias: 'live',
      version: 2,
      settings: compileRolloutSettings({ steps: [10, 50, 100], intervalSeconds: 30, minRequests: 20 }),
    });

  /** `count` invocations of a version, `errors` of them failed, recorded just after `at`. */
  const record = async (version: number, count: number, at: Date, errors = 0): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const status: InvocationStatus = i < errors ? 'error' : 'success';
      await metadata.recordInvocation(
        invocationRecord({
          id: randomUUID(),
          functionName: fn,
          version,
          status,
          durationMs: 10,
          createdAt: new Date(at.getTime() + 1),
        }),
      );
    }
  };

  const current = async (rollout: Rollout): Promise<Rollout> => {
    const now = await traffic.getRollout(fn, rollout.id);
    assert.ok(now !== null);
    return now;
  };
  const weights = async () => (await traffic.getAlias(fn, 'live'))?.weights;
  const decisions = (rollout: Rollout) => rollout.history.map((event) => event.decision);

  /** Record a healthy step (the canary's share of 200 calls, none failing) and end its interval. */
  const healthyStep = async (rollout: Rollout, canaryShare: number): Promise<void> => {
    await record(2, Math.max(20, 2 * canaryShare), rollout.stepStartedAt);
    if (canaryShare < 100) await record(1, 2 * (100 - canaryShare), rollout.stepStartedAt);
    clock = rollout.stepStartedAt.getTime() + 30_000;
  };

  it('advances a healthy canary step by step after each interval, then promotes it', async () => {
    let rollout = await start();
    const plane = controlPlane();
    assert.deepEqual(await weights(), stepWeights(1, 2, 10));

    await record(2, 20, rollout.stepStartedAt);
    await record(1, 180, rollout.stepStartedAt);
    clock = rollout.stepStartedAt.getTime() + 29_999;
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.stepIndex, 0, 'the interval is not over');
    assert.deepEqual(decisions(rollout), ['started'], 'waiting leaves no history entry');

    clock += 1;
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.stepIndex, 1);
    assert.equal(rollout.stepStartedAt.getTime(), clock, "the next step's figures count from now");
    assert.deepEqual(await weights(), stepWeights(1, 2, 50));
    const advanced = rollout.history.at(-1);
    assert.equal(advanced?.decision, 'advanced');
    assert.equal(advanced?.step, 10);
    assert.deepEqual(advanced?.canary, { requests: 20, errors: 0, p99Ms: 10 });
    assert.deepEqual(advanced?.baseline, { requests: 180, errors: 0, p99Ms: 10 });
    assert.deepEqual(changed, [fn], 'the gateway is told at once');

    await healthyStep(rollout, 50);
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.stepIndex, 2);
    assert.deepEqual(await weights(), [{ version: 2, weight: 1 }]);

    // At 100% the baseline has no traffic: the canary is compared with the baseline's figures of the 50% step.
    await healthyStep(rollout, 100);
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.state, 'promoted');
    assert.ok(rollout.endedAt !== null);
    assert.deepEqual(decisions(rollout), ['started', 'advanced', 'advanced', 'promoted']);
    assert.match(rollout.history.at(-1)?.reason ?? '', /compared with its figures at the 50% step/);
    assert.equal((await metadata.getFunction(fn))?.currentVersion, 2);
    assert.deepEqual(changed, [fn, fn, fn]);

    await plane.driveRollouts();
    assert.equal((await current(rollout)).revision, rollout.revision, 'an ended rollout is left alone');
  });

  it('rolls back a canary that fails 20% of its calls before its next step, with the reason', async () => {
    let rollout = await start();
    const plane = controlPlane();
    await record(2, 100, rollout.stepStartedAt, 20);
    await record(1, 900, rollout.stepStartedAt);
    clock = rollout.stepStartedAt.getTime() + 5_000; // long before the interval's end
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.state, 'rolled_back');
    assert.deepEqual(await weights(), [{ version: 1, weight: 1 }], 'all traffic back to the baseline at once');
    assert.equal((await metadata.getFunction(fn))?.currentVersion, 1);
    const event = rollout.history.at(-1);
    assert.equal(event?.decision, 'rolled_back');
    assert.deepEqual(event?.canary, { requests: 100, errors: 20, p99Ms: 10 });
    assert.match(event?.reason ?? '', /^canary error rate 20\.0% \(20\/100\) against the baseline's 0\.0% \(0\/900\)/);
    assert.deepEqual(changed, [fn]);
  });

  it('waits while the canary has fewer calls than minRequests, however the interval went', async () => {
    let rollout = await start();
    const plane = controlPlane();
    await record(2, 19, rollout.stepStartedAt, 19);
    clock = rollout.stepStartedAt.getTime() + 10 * 30_000;
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.state, 'running');
    assert.equal(rollout.stepIndex, 0);
    assert.deepEqual(changed, []);
  });

  it('leaves a rollout ended by hand as it is', async () => {
    let rollout = await start();
    const plane = controlPlane();
    const abort = endRollout(rollout, 'aborted', new Date(), { canary: noFigures, baseline: noFigures }, 'by hand');
    assert.equal((await traffic.updateRollout(fn, rollout.id, rollout.revision, abort)).applied, true);
    await healthyStep(rollout, 10);
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.state, 'aborted');
    assert.deepEqual(decisions(rollout), ['started', 'aborted']);
    assert.deepEqual(await weights(), [{ version: 1, weight: 1 }]);
  });

  it('loses a race to a change made meanwhile, re-reads the rollout and goes on from there', async () => {
    let rollout = await start();
    // Between the driver's read and its write, someone else (a hand abort, or a former leader) changes the rollout.
    let meddle: (() => Promise<void>) | null = null;
    const racing = racingStore(traffic, async () => {
      const now = meddle;
      meddle = null;
      await now?.();
    });
    const plane = controlPlane({ traffic: racing });
    await healthyStep(rollout, 10);
    const stale = rollout;
    meddle = async () => {
      // A former leader advances the same step first.
      const change = endRollout(stale, 'aborted', new Date(), { canary: noFigures, baseline: noFigures }, 'x');
      const advanced = { ...change, state: 'running' as const, stepIndex: 1, stepStartedAt: new Date(clock) };
      advanced.weights = stepWeights(1, 2, 50);
      advanced.events = [{ ...change.events[0]!, decision: 'advanced', reason: 'by the former leader' }];
      assert.equal((await traffic.updateRollout(fn, stale.id, stale.revision, advanced)).applied, true);
    };
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.stepIndex, 1, 'the step is not advanced twice');
    assert.deepEqual(decisions(rollout), ['started', 'advanced']);
    assert.equal(rollout.history.at(-1)?.reason, 'by the former leader');

    // Then a hand abort wins the race with the next step's judgement: the driver stops there, without an error.
    await healthyStep(rollout, 50);
    const judged = rollout;
    meddle = async () => {
      const change = endRollout(judged, 'aborted', new Date(), { canary: noFigures, baseline: noFigures }, 'by hand');
      assert.equal((await traffic.updateRollout(fn, judged.id, judged.revision, change)).applied, true);
    };
    await plane.driveRollouts();
    rollout = await current(rollout);
    assert.equal(rollout.state, 'aborted');
    assert.deepEqual(decisions(rollout), ['started', 'advanced', 'aborted']);
    assert.deepEqual(await weights(), [{ version: 1, weight: 1 }]);
  });

  it('is driven by the leader only; a new leader resumes the rollout where it stood and publishes each change', async () => {
    const cluster = new MemoryCluster({ leaderTtlSeconds: 1 });
    const peer = cluster.peer();
    const pushed: RoutingTable[] = [];
    const clusterOptions = (of: MemoryCluster, candidateId: string): ControlPlaneClusterOptions => ({
      cluster: of,
      candidateId,
      nodes: () => [{ nodeId: 'node-test', agentAddress: '10.0.0.1:7070' }],
      push: (_gateway, table) => {
        pushed.push(table);
        return Promise.resolve();
      },
    });
    try {
      let rollout = await start();
      const first = controlPlane({ cluster: clusterOptions(cluster, 'manager-a') });
      await until(() => first.leading);
      const second = controlPlane({ cluster: clusterOptions(peer, 'manager-b') });
      second.gatewayJoined({ gatewayId: 'gw-1', address: '10.0.0.9:7071' });
      await healthyStep(rollout, 10);

      await second.driveRollouts();
      assert.equal((await current(rollout)).stepIndex, 0, 'a Manager that does not lead drives nothing');
      await first.driveRollouts();
      rollout = await current(rollout);
      assert.equal(rollout.stepIndex, 1);

      // The leader goes; the other Manager leads, and goes on from the stored step (not from the first).
      await first.stop();
      await until(() => second.leading);
      await healthyStep(rollout, 50);
      await second.driveRollouts();
      rollout = await current(rollout);
      assert.equal(rollout.stepIndex, 2);
      assert.deepEqual(decisions(rollout), ['started', 'advanced', 'advanced']);

      // Its routing table names the function's traffic change, and the gateway got it.
      const table = await until(async () => {
        const now = await peer.routing.get();
        return now?.traffic?.[fn] !== undefined && pushed.some((t) => t.version === now.version) ? now : null;
      });
      assert.equal(table.traffic?.[fn], table.version);
      assert.deepEqual(table.agents, { 'node-test': '10.0.0.1:7070' });
    } finally {
      for (const plane of planes.splice(0)) await plane.stop();
      await peer.close();
      await cluster.close();
    }
  });
  it('takes the lead over from the leader with a higher term; the former leader stops leading', async () => {
    const cluster = new MemoryCluster({ leaderTtlSeconds: 1 });
    const peer = cluster.peer();
    const lost: string[] = [];
    const clusterOptions = (of: MemoryCluster, candidateId: string): ControlPlaneClusterOptions => ({
      cluster: of,
      candidateId,
      nodes: () => [],
      push: () => Promise.resolve(),
      onLose: () => lost.push(candidateId),
    });
    try {
      const first = controlPlane({ cluster: clusterOptions(cluster, 'manager-a') });
      await until(() => first.leading);
      const second = controlPlane({ cluster: clusterOptions(peer, 'manager-b') });
      assert.equal(second.term, 0);
      const firstTerm = first.term;
      assert.ok(firstTerm > 0);
      const term = await second.takeOver('manager-a');
      assert.ok(term > firstTerm);
      assert.equal(second.leading, true);
      assert.equal(second.term, term);
      await until(() => !first.leading);
      assert.equal(first.term, 0);
      assert.deepEqual(lost, ['manager-a']);
      assert.equal((await cluster.leader())?.id, 'manager-b');
      await assert.rejects(controlPlane().takeOver('manager-b'), (err) => isPlatformError(err, 'BAD_REQUEST'));
    } finally {
      for (const plane of planes.splice(0)) await plane.stop();
      await peer.close();
      await cluster.close();
    }
  });

  it('fires schedules on the leader only; a new leader goes on with the next tick', async () => {
    const cluster = new MemoryCluster({ leaderTtlSeconds: 1 });
    const peer = cluster.peer();
    const queue = new MemoryInvocationQueue({ now: () => clock });
    const store = new SqlScheduleStore(metadata.shared());
    const schedules = {
      schedules: store,
      asyncInvocations: new AsyncInvocations({ queue, check: functionMustExist(metadata) }),
    };
    const clusterOptions = (of: MemoryCluster, candidateId: string): ControlPlaneClusterOptions => ({
      cluster: of,
      candidateId,
      nodes: () => [],
      push: () => Promise.resolve(),
    });
    const keys = async () =>
      Promise.all(
        (await queue.receive({ max: 100, visibilityMs: hour })).map(
          async (d) => (await queue.get(d.id))?.idempotencyKey,
        ),
      );
    /** A pass of `plane`'s own that began before the clock moved (on taking the lead) ends first. */
    const fireNow = async (plane: ControlPlane) => {
      await plane.fireSchedules();
      await plane.fireSchedules();
    };
    try {
      const created = clock;
      await store.create(compileScheduleInput({ name: 'beat', functionName: fn, rate: '1 minute' }, new Date(created)));
      const first = controlPlane({ cluster: clusterOptions(cluster, 'manager-a'), schedules });
      await until(() => first.leading);
      const second = controlPlane({ cluster: clusterOptions(peer, 'manager-b'), schedules });

      clock = created + 60_000;
      await fireNow(second);
      assert.deepEqual(await keys(), [], 'a Manager that does not lead fires nothing');
      await fireNow(first);
      assert.deepEqual(await keys(), [`schedule:beat:${new Date(created + 60_000).toISOString()}`]);

      await first.stop();
      await until(() => second.leading);
      clock = created + 120_000;
      await fireNow(second);
      assert.deepEqual(await keys(), [`schedule:beat:${new Date(created + 120_000).toISOString()}`]);
    } finally {
      for (const plane of planes.splice(0)) await plane.stop();
      await queue.close();
      await peer.close();
      await cluster.close();
    }
  });
});

/** Wait for `check` to hold (or return a value), yielding to the event loop between tries. */
async function until<T>(check: () => T | Promise<T>): Promise<NonNullable<T>> {
  for (let i = 0; i < 100_000; i++) {
    const value = await check();
    if (value !== null && value !== undefined && value !== false) return value;
    await yieldToLoop();
  }
  throw new Error('the condition never held');
}

/** The store as it is, except that `before` runs each time figures are read: between the driver's read and its write. */
function racingStore(store: TrafficStore, before: () => Promise<void>): TrafficStore {
  return {
    getAlias: (...args) => store.getAlias(...args),
    listAliases: (...args) => store.listAliases(...args),
    putAlias: (...args) => store.putAlias(...args),
    deleteAlias: (...args) => store.deleteAlias(...args),
    startRollout: (...args) => store.startRollout(...args),
    getRollout: (...args) => store.getRollout(...args),
    listRollouts: (...args) => store.listRollouts(...args),
    runningRollouts: () => store.runningRollouts(),
    updateRollout: (...args) => store.updateRollout(...args),
    versionFigures: async (...args) => {
      const figures = await store.versionFigures(...args);
      await before();
      return figures;
    },
    servedVersions: (...args) => store.servedVersions(...args),
  };
}

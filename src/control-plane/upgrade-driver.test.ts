import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { sameBuild, type BuildInfo } from '../core/build-info.js';
import type { UpgradeStatus } from '../core/control-plane-view.js';
import { isPlatformError, PlatformError } from '../core/errors.js';
import type {
  ControlProcess,
  Infrastructure,
  InstalledBuild,
  LaunchedProcess,
  LaunchSpec,
} from '../core/ports/infrastructure.js';
import { fixedPort, UpgradeDriver, type Fleet, type UpgradeStatusSink } from './upgrade-driver.js';

const buildA: BuildInfo = { version: '0.1.0', build: 'a', protocol: 1 };
const buildB: BuildInfo = { version: '0.2.0', build: 'b', protocol: 1 };
const buildC: BuildInfo = { version: '0.3.0', build: 'c', protocol: 2 };

/**
 * An in-memory cluster: the Fleet and the Infrastructure over one set of processes, writing every call to one log so
 * that the tests see their order. A launched process registers at once (as a real one does after it starts).
 */
class MemoryCluster implements Fleet, Infrastructure {
  readonly kind = 'memory';
  readonly log: string[] = [];
  readonly members = new Map<string, ControlProcess>();
  readonly builds = new Map<string, InstalledBuild>([
    ['B', { ...buildB, location: '/builds/b' }],
    ['C', { ...buildC, location: '/builds/c' }],
    ['A', { ...buildA, location: '/builds/a' }],
  ]);
  /** Ids whose join fails, and a gate a join waits on. */
  readonly failJoin = new Set<string>();
  joinGate: Promise<void> | undefined;
  leader = 'manager-1';

  constructor(processes: ControlProcess[]) {
    for (const p of processes) this.members.set(p.id, p);
  }

  resolve(target: string): Promise<InstalledBuild> {
    const build = this.builds.get(target);
    if (build === undefined)
      return Promise.reject(new PlatformError('NOT_FOUND', `version ${target} is not installed`));
    return Promise.resolve(build);
  }

  launch(spec: LaunchSpec): Promise<LaunchedProcess> {
    this.log.push(`launch ${spec.id} like ${spec.like.id}`);
    this.members.set(spec.id, { id: spec.id, role: spec.role, build: spec.build, args: spec.like.args });
    return Promise.resolve({ id: spec.id, where: `memory:${spec.id}` });
  }

  retire(process: ControlProcess): Promise<void> {
    this.log.push(`retire ${process.id}`);
    this.members.delete(process.id);
    return Promise.resolve();
  }

  processes(): Promise<ControlProcess[]> {
    return Promise.resolve([...this.members.values()]);
  }

  async waitJoined(id: string, build: BuildInfo): Promise<void> {
    this.log.push(`wait ${id}`);
    await this.joinGate;
    const member = this.members.get(id);
    if (this.failJoin.has(id) || member === undefined || !sameBuild(member.build, build)) {
      throw new PlatformError('UNAVAILABLE', `${id} did not join within 1 s`);
    }
  }

  handoverTo(id: string): Promise<void> {
    this.log.push(`handover ${id}`);
    this.leader = id;
    return Promise.resolve();
  }

  shutdown(process: ControlProcess): Promise<void> {
    this.log.push(`shutdown ${process.id}`);
    return Promise.resolve();
  }
}

/** The replicated status, with every step it went through. */
class MemorySink implements UpgradeStatusSink {
  status: UpgradeStatus | null = null;
  readonly steps: string[] = [];

  get(): UpgradeStatus | null {
    return this.status;
  }

  set(status: UpgradeStatus): void {
    if (this.steps.at(-1) !== status.step) this.steps.push(status.step);
    this.status = structuredClone(status);
  }
}

function cluster(): MemoryCluster {
  return new MemoryCluster([
    { id: 'manager-1', role: 'manager', build: buildA, args: ['--id', 'manager-1'] },
    { id: 'manager-2', role: 'manager', build: buildA, args: ['--id', 'manager-2'] },
    { id: 'gateway-1', role: 'gateway', build: buildA, args: ['--port', '0'] },
    { id: 'gateway-2', role: 'gateway', build: buildA, args: ['--port', '8080'] },
  ]);
}

function driver(fleet: MemoryCluster, sink: MemorySink, self = { id: 'manager-1', build: buildA }): UpgradeDriver {
  const counts = { manager: 0, gateway: 0 };
  return new UpgradeDriver({
    infrastructure: fleet,
    fleet,
    status: sink,
    self,
    newId: (role) => `${role}-new-${++counts[role]}`,
    relaunchDelayMs: 1,
    now: () => 1000,
  });
}

describe('UpgradeDriver', () => {
  it('replaces the gateways one by one, starts the new managers, hands over, and the new leader retires the old managers', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    const upgrade = driver(fleet, sink);
    const started = await upgrade.start('B');
    assert.equal(started.state, 'running');
    assert.deepEqual(started.to, buildB);
    assert.deepEqual(started.from, [buildA]);
    await upgrade.idle();
    assert.deepEqual(fleet.log, [
      'launch gateway-new-1 like gateway-1',
      'wait gateway-new-1',
      'shutdown gateway-1',
      'retire gateway-1',
      // A fixed port cannot be shared: the old gateway goes first.
      'shutdown gateway-2',
      'retire gateway-2',
      'launch gateway-new-2 like gateway-2',
      'wait gateway-new-2',
      'launch manager-new-1 like manager-1',
      'wait manager-new-1',
      'launch manager-new-2 like manager-2',
      'wait manager-new-2',
      'handover manager-new-1',
    ]);
    assert.deepEqual(sink.status, {
      target: 'B',
      to: buildB,
      from: [buildA],
      state: 'running',
      step: 'hand over to manager-new-1',
      started: ['gateway-new-1', 'gateway-new-2', 'manager-new-1', 'manager-new-2'],
      retired: ['gateway-1', 'gateway-2'],
      toRetire: [
        { id: 'manager-1', role: 'manager' },
        { id: 'manager-2', role: 'manager' },
      ],
      startedAt: 1000,
      updatedAt: 1000,
    });

    // The new leader finds the upgrade in the replicated state and finishes it.
    fleet.log.length = 0;
    await driver(fleet, sink, { id: 'manager-new-1', build: buildB }).resume();
    assert.deepEqual(fleet.log, ['shutdown manager-1', 'retire manager-1', 'shutdown manager-2', 'retire manager-2']);
    assert.equal(sink.status?.state, 'succeeded');
    assert.equal(sink.status.step, 'done');
    assert.deepEqual(sink.status.toRetire, []);
    assert.deepEqual(sink.status.retired, ['gateway-1', 'gateway-2', 'manager-1', 'manager-2']);
    assert.deepEqual(
      [...fleet.members.values()].map((p) => [p.id, p.build.build]),
      [
        ['gateway-new-1', 'b'],
        ['gateway-new-2', 'b'],
        ['manager-new-1', 'b'],
        ['manager-new-2', 'b'],
      ],
    );
    assert.deepEqual(sink.steps, [
      'start',
      'start gateway 1 of 2',
      'wait for gateway 1 of 2 (gateway-new-1) to join',
      'stop gateway 1 of 2 (gateway-1)',
      'stop gateway 2 of 2 (gateway-2): port 8080 cannot be shared',
      'start gateway 2 of 2',
      'wait for gateway 2 of 2 (gateway-new-2) to join',
      'start manager 1 of 2',
      'wait for manager 1 of 2 (manager-new-1) to join and catch up',
      'start manager 2 of 2',
      'wait for manager 2 of 2 (manager-new-2) to join and catch up',
      'hand over to manager-new-1',
      'stop old manager 1 of 2 (manager-1)',
      'stop old manager 2 of 2 (manager-2)',
      'done',
    ]);
  });

  it('refuses a target it cannot resolve, one of another control protocol, and one every process already runs', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    const upgrade = driver(fleet, sink);
    await assert.rejects(upgrade.start('Z'), (err) => isPlatformError(err, 'NOT_FOUND'));
    await assert.rejects(upgrade.start('C'), (err) => {
      assert.ok(isPlatformError(err, 'CONFLICT'));
      assert.equal(
        err.rawMessage,
        'build 0.3.0 (c) speaks control protocol 2; this cluster speaks 1: an upgrade across protocols is not supported',
      );
      return true;
    });
    await assert.rejects(
      upgrade.start('A'),
      (err) => isPlatformError(err, 'CONFLICT') && /already running 0\.1\.0 \(build a/.test(err.message),
    );
    assert.equal(sink.status, null);
    assert.deepEqual(fleet.log, []);
  });

  it('refuses a second upgrade while one runs, here or recorded by another leader', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    let open = () => {};
    fleet.joinGate = new Promise((resolve) => (open = resolve));
    const upgrade = driver(fleet, sink);
    await upgrade.start('B');
    await assert.rejects(
      upgrade.start('B'),
      (err) => isPlatformError(err, 'CONFLICT') && err.message.includes('already running'),
    );
    // Another leader's driver sees it in the replicated state.
    await assert.rejects(driver(fleet, sink, { id: 'manager-2', build: buildA }).start('B'), (err) =>
      isPlatformError(err, 'CONFLICT'),
    );
    open();
    await upgrade.idle();
    assert.equal(sink.status?.step, 'hand over to manager-new-1');
  });

  it('stops at a gateway that does not join: it is shut down, the earlier replacement stays, no manager is touched', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    fleet.failJoin.add('gateway-new-2');
    const upgrade = driver(fleet, sink);
    await upgrade.start('B');
    await upgrade.idle();
    assert.equal(sink.status?.state, 'failed');
    assert.equal(sink.status.step, 'wait for gateway 2 of 2 (gateway-new-2) to join');
    assert.equal(sink.status.error, 'gateway-new-2 did not join within 1 s');
    assert.deepEqual(fleet.log.slice(-4), [
      'launch gateway-new-2 like gateway-2',
      'wait gateway-new-2',
      'shutdown gateway-new-2',
      'retire gateway-new-2',
    ]);
    assert.ok(!fleet.log.some((line) => line.includes('manager')));
    assert.ok(fleet.members.has('gateway-new-1'));
    // A failed upgrade does not block the next one.
    fleet.failJoin.clear();
    assert.equal((await upgrade.start('B')).state, 'running');
    await upgrade.idle();
  });

  it('stops at a manager that does not catch up: every new manager is shut down and the old leader keeps the lead', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    fleet.failJoin.add('manager-new-2');
    const upgrade = driver(fleet, sink);
    await upgrade.start('B');
    await upgrade.idle();
    assert.equal(sink.status?.state, 'failed');
    assert.equal(sink.status.step, 'wait for manager 2 of 2 (manager-new-2) to join and catch up');
    assert.deepEqual(fleet.log.slice(-4 - 2), [
      'launch manager-new-2 like manager-2',
      'wait manager-new-2',
      'shutdown manager-new-1',
      'retire manager-new-1',
      'shutdown manager-new-2',
      'retire manager-new-2',
    ]);
    assert.equal(fleet.leader, 'manager-1');
    assert.deepEqual(sink.status.toRetire, []);
    assert.ok(fleet.members.has('manager-1') && fleet.members.has('manager-2'));
  });

  it('stops at a failed handover: the new managers are shut down and nothing is left to retire', async () => {
    const fleet = cluster();
    fleet.handoverTo = (id) => {
      fleet.log.push(`handover ${id}`);
      return Promise.reject(new PlatformError('UNAVAILABLE', `${id} did not take the lead`));
    };
    const sink = new MemorySink();
    const upgrade = driver(fleet, sink);
    await upgrade.start('B');
    await upgrade.idle();
    assert.equal(sink.status?.state, 'failed');
    assert.equal(sink.status.step, 'hand over to manager-new-1');
    assert.equal(sink.status.error, 'manager-new-1 did not take the lead');
    assert.deepEqual(sink.status.toRetire, []);
    assert.deepEqual(fleet.log.slice(-5), [
      'handover manager-new-1',
      'shutdown manager-new-1',
      'retire manager-new-1',
      'shutdown manager-new-2',
      'retire manager-new-2',
    ]);
  });

  it('reports a launch the infrastructure refuses', async () => {
    const fleet = cluster();
    fleet.launch = () => Promise.reject(new PlatformError('UNAVAILABLE', 'gateway-new-1 exited with code 1'));
    const sink = new MemorySink();
    const upgrade = driver(fleet, sink);
    await upgrade.start('B');
    await upgrade.idle();
    assert.equal(sink.status?.state, 'failed');
    assert.equal(sink.status.step, 'start gateway 1 of 2');
    assert.equal(sink.status.error, 'gateway-new-1 exited with code 1');
    assert.deepEqual(fleet.log, []);
  });

  it('launches a gateway on a fixed port again while the old one releases the port', async () => {
    const fleet = cluster();
    const launch = fleet.launch.bind(fleet);
    let refusals = 2;
    fleet.launch = (spec) => {
      if (spec.like.id === 'gateway-2' && refusals-- > 0) {
        fleet.log.push(`refuse ${spec.id}`);
        return Promise.reject(new PlatformError('UNAVAILABLE', 'EADDRINUSE'));
      }
      return launch(spec);
    };
    const sink = new MemorySink();
    const upgrade = driver(fleet, sink);
    await upgrade.start('B');
    await upgrade.idle();
    assert.deepEqual(fleet.log.slice(4, 9), [
      'shutdown gateway-2',
      'retire gateway-2',
      'refuse gateway-new-2',
      'refuse gateway-new-3',
      'launch gateway-new-4 like gateway-2',
    ]);
    assert.equal(sink.status?.state, 'running');
    assert.deepEqual(sink.status.started, ['gateway-new-1', 'gateway-new-4', 'manager-new-1', 'manager-new-2']);
  });

  it('marks failed an upgrade whose leader was lost before the handover', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    sink.status = {
      target: 'B',
      to: buildB,
      from: [buildA],
      state: 'running',
      step: 'start gateway 2 of 2',
      started: ['gateway-new-1'],
      retired: ['gateway-1'],
      toRetire: [],
      startedAt: 1,
      updatedAt: 1,
    };
    await driver(fleet, sink, { id: 'manager-2', build: buildA }).resume();
    assert.equal(sink.status.state, 'failed');
    assert.equal(sink.status.step, 'start gateway 2 of 2');
    assert.match(
      sink.status.error ?? '',
      /stopped during "start gateway 2 of 2" \(new processes started so far: gateway-new-1\)/,
    );
    assert.deepEqual(fleet.log, []);
  });

  it('resume retires an old manager that already left the registry without asking it to leave', async () => {
    const fleet = cluster();
    fleet.members.delete('manager-2');
    const sink = new MemorySink();
    sink.status = {
      target: 'B',
      to: buildB,
      from: [buildA],
      state: 'running',
      step: 'hand over to manager-new-1',
      started: ['manager-new-1'],
      retired: [],
      toRetire: [
        { id: 'manager-2', role: 'manager' },
        { id: 'manager-1', role: 'manager' },
      ],
      startedAt: 1,
      updatedAt: 1,
    };
    await driver(fleet, sink, { id: 'manager-new-1', build: buildB }).resume();
    assert.deepEqual(fleet.log, ['retire manager-2', 'shutdown manager-1', 'retire manager-1']);
    assert.equal(sink.status.state, 'succeeded');
  });

  it('resume on an old manager that is still to be retired fails the upgrade with what to do', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    sink.status = {
      target: 'B',
      to: buildB,
      from: [buildA],
      state: 'running',
      step: 'hand over to manager-new-1',
      started: ['manager-new-1'],
      retired: [],
      toRetire: [{ id: 'manager-2', role: 'manager' }],
      startedAt: 1,
      updatedAt: 1,
    };
    await driver(fleet, sink, { id: 'manager-2', build: buildA }).resume();
    assert.equal(sink.status.state, 'failed');
    assert.match(sink.status.error ?? '', /savassan leader handover --to ID/);
    assert.deepEqual(fleet.log, []);
  });

  it('resume does nothing without a running upgrade', async () => {
    const fleet = cluster();
    const sink = new MemorySink();
    await driver(fleet, sink).resume();
    assert.equal(sink.status, null);
    assert.deepEqual(fleet.log, []);
  });

  it('retires old managers itself when it already runs the new build', async () => {
    const fleet = new MemoryCluster([
      { id: 'manager-1', role: 'manager', build: buildB, args: [] },
      { id: 'manager-2', role: 'manager', build: buildA, args: [] },
    ]);
    const sink = new MemorySink();
    const upgrade = driver(fleet, sink, { id: 'manager-1', build: buildB });
    await upgrade.start('B');
    await upgrade.idle();
    assert.deepEqual(fleet.log, [
      'launch manager-new-1 like manager-2',
      'wait manager-new-1',
      'shutdown manager-2',
      'retire manager-2',
    ]);
    assert.equal(sink.status?.state, 'succeeded');
  });
});

describe('fixedPort', () => {
  it('reads --port in both forms; 0 is not fixed; without it the default 8080 is', () => {
    assert.equal(fixedPort(['--port', '9000']), 9000);
    assert.equal(fixedPort(['--port=9001']), 9001);
    assert.equal(fixedPort(['--port', '0']), undefined);
    assert.equal(fixedPort(['--host', '0.0.0.0']), 8080);
  });
});

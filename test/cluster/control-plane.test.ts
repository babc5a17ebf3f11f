// The self-managed control plane on a real cluster without Redis: 2 agent hosts in network namespaces, etcd,
// PostgreSQL and S3, 3 managers and 2 gateways with `--pool leader` (the leading manager holds the warm pool and
// the provisioning queue and streams every change to its followers), each a `savassan` process started from an
// installed build A. Under a steady load of warm invocations through the gateways: a handover asked for on the CLI,
// then SIGTERM of the leader, lose no invocation and start no sandbox; SIGKILL of the leader gives a new leader
// within the leader TTL and loses no acknowledged invocation; `savassan upgrade` replaces every manager and gateway
// with build B and fails no invocation; a build of another control protocol is refused, by the upgrade and by the
// cluster it tries to join.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient, type AsyncInvocationAnswer } from '../../src/client/client.js';
import type { ControlPlaneView, MemberView } from '../../src/core/control-plane-view.js';
import { installBuild } from '../helpers/builds.js';
import { clusterSkipReason, track, type Proc } from '../helpers/cluster-processes.js';
import {
  startClusterServices,
  startNetnsAgents,
  stopProcessesUnder,
  type ClusterServices,
} from '../helpers/cluster-rig.js';
import { eventually, runCli } from '../helpers/server-process.js';
import { describeFailures, GatewayFollower, SteadyLoad, type LoadRecord } from '../helpers/steady-load.js';
import { pool } from '../helpers/traffic.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const probe = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
const leaderTtlSeconds = 3;
const agentLeaseTtlSeconds = 2;
/** Sandboxes of the function under load, all kept warm; the load never runs more invocations at once. */
const warmInstances = 4;

/** The CLI of an installed build. */
const cliOf = (build: string): string => join(build, 'bin', 'savassan.js');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves when `promise` does; rejects naming `what` if that takes longer than `ms`. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

describe(
  'a Redis-free cluster whose managers hold the warm pool',
  { skip: clusterSkipReason({ redis: false, netns: true }) },
  () => {
    let services: ClusterServices;
    let buildA = '';
    let buildB = '';
    /** Build A, speaking control protocol 2. */
    let buildOtherProtocol = '';
    const agents: Proc[] = [];
    /** Every manager and gateway this test started, by id (those an upgrade starts are the leader's). */
    const processes = new Map<string, Proc>();
    let managersStarted = 0;
    /** The URLs gateway-0 and gateway-1 announced. */
    let announcedUrls: string[] = [];
    let follower: GatewayFollower;
    let load: SteadyLoad | null = null;

    /** The flags of a manager with id `id`: the leader holds the pool, no Redis. */
    const managerArgs = (build: string, id: string): string[] => [
      cliOf(build),
      'manager',
      '--pool',
      'leader',
      '--id',
      id,
      '--listen',
      '127.0.0.1:0',
      '--leader-ttl',
      String(leaderTtlSeconds),
      '--builds-dir',
      join(services.root, 'builds'),
      '--data-dir',
      join(services.root, id),
      '--json',
      ...services.common,
    ];

    /** Starts the next `manager-N` from `build`; resolves once it announced its control address. */
    const startManager = async (build: string): Promise<Proc> => {
      const id = `manager-${managersStarted++}`;
      const proc = track(id, spawn(process.execPath, managerArgs(build, id), { env: services.env }));
      processes.set(id, proc);
      const [line] = await proc.waitFor(/^\{"role":"manager".*\}$/m);
      const announced = JSON.parse(line) as { role: string; id: string; address: unknown };
      assert.equal(announced.id, id);
      assert.ok(typeof announced.address === 'string' && /:\d+$/.test(announced.address), line);
      return proc;
    };

    /** Starts `gateway-<i>` from build A; resolves with its URL. */
    const startGateway = async (i: number): Promise<string> => {
      const id = `gateway-${i}`;
      const args = [cliOf(buildA), 'gateway', '--pool', 'leader', '--id', id, '--port', '0'];
      args.push('--data-dir', join(services.root, id), '--json', ...services.common);
      const proc = track(id, spawn(process.execPath, args, { env: services.env }));
      processes.set(id, proc);
      const [, announced = '', url = ''] = await proc.waitFor(
        /^\{"role":"gateway","id":"([^"]+)","address":"(http:\/\/[^"]+)"/m,
      );
      assert.equal(announced, id);
      return url;
    };

    /** A client of a gateway that answers now (the follower's list changes as gateways come and go). */
    const gateway = (i = 0): SavassanClient => {
      const urls = follower.urls();
      return new SavassanClient({ url: urls[i % urls.length] ?? '' });
    };

    /** GET /v1/control-plane through the first gateway that answers. */
    const viewNow = async (): Promise<ControlPlaneView> => {
      let failure: unknown = new Error('no gateway is known');
      for (const url of follower.urls()) {
        try {
          return await new SavassanClient({ url }).json<ControlPlaneView>('GET', '/v1/control-plane');
        } catch (err) {
          failure = err;
        }
      }
      throw failure;
    };

    /** The view once a manager leads with 2 followers: all the 3 managers take part. */
    const settledView = () =>
      eventually(viewNow, (view) => view.leader !== null && view.followers.length === 2, 30_000);

    const membersOf = (view: ControlPlaneView, role: MemberView['role']): MemberView[] =>
      view.members.filter((member) => member.role === role);
    const idsOf = (view: ControlPlaneView, role: MemberView['role']): string[] =>
      membersOf(view, role)
        .map((member) => member.id)
        .sort();

    /** `savassan ARGS` against a gateway that answers now; its exit code and output. */
    const cli = (args: string[], timeoutMs = 60_000) =>
      within(runCli(follower.urls()[0] ?? '', args), timeoutMs, `savassan ${args.join(' ')}`);

    /**
     * The load on `steady` (deployed with every sandbox warm), started once: `warmInstances` loops through the
     * gateways the control plane lists; resolves once it runs on warm sandboxes only.
     */
    const steadyLoad = async (): Promise<SteadyLoad> => {
      if (load !== null) return load;
      const code = zipSync({
        'index.js': strToU8(
          'exports.handler = async (event) => { await new Promise((r) => setTimeout(r, event.sleepMs ?? 0)); return { ok: true }; };',
        ),
      });
      await eventually(
        () =>
          gateway().deploy('steady', code, {
            minInstances: warmInstances,
            maxInstances: warmInstances,
            asyncConcurrency: 2,
          }),
        () => true,
        20_000,
      );
      load = new SteadyLoad({
        gateways: () => follower.urls(),
        functionName: 'steady',
        concurrency: warmInstances,
        event: { sleepMs: 10 },
        // About 80 invocations a second: room for the processes under test on a small machine.
        pauseMs: 25,
      }).start();
      const running = load;
      const recent = await eventually(
        () => Promise.resolve(running.records.slice(-20)),
        (last) => last.length === 20 && last.every((r) => r.error === null && r.start === 'warm'),
        30_000,
      );
      assert.deepEqual(describeFailures(recent), [], 'the load runs before the test starts');
      assert.deepEqual(
        recent.map((r) => r.start),
        recent.map(() => 'warm'),
        'every sandbox of the function is warm',
      );
      return load;
    };

    /** At most `n` of `records`, evenly spread. */
    const sample = <T>(records: readonly T[], n: number): T[] =>
      records.length <= n
        ? [...records]
        : Array.from({ length: n }, (_, i) => records[Math.floor((i * records.length) / n)]!);

    /** The invocation records of the synchronous successes among `records`, read through the gateways. */
    const invocationRecords = (records: readonly LoadRecord[]) => {
      const ids = records.filter((r) => r.error === null && r.mode === 'sync').map((r) => r.invocationId ?? '');
      // A gateway's records reach the database in batches: another gateway sees them a moment later.
      return pool(ids.length, 8, (i) =>
        eventually(
          () => gateway(i).getInvocation(ids[i] ?? ''),
          () => true,
          10_000,
        ),
      );
    };

    /** Zero failures and zero cold starts among `records` (of which there must be a few). */
    const assertSteady = (records: readonly LoadRecord[], what: string): void => {
      assert.ok(records.length >= 20, `${what}: only ${records.length} invocations ran`);
      assert.deepEqual(describeFailures(records), [], `${what}: no invocation fails`);
      const cold = records.filter((r) => r.start === 'cold').length;
      assert.equal(cold, 0, `${what}: no sandbox is started (${cold} of ${records.length} invocations ran cold)`);
    };

    before(async () => {
      services = await startClusterServices({
        prefix: 'sv-control-plane',
        hosts: 2,
        redis: false,
        bucket: 'control-plane',
      });
      const builds = join(services.root, 'builds');
      [buildA, buildB, buildOtherProtocol] = await Promise.all([
        installBuild(join(builds, 'A'), 'A'),
        installBuild(join(builds, 'B'), 'B'),
        installBuild(join(builds, 'A-protocol-2'), 'A2', { protocol: 2 }),
      ]);
      await startNetnsAgents(services, agents, {
        cli: cliOf(buildA),
        capacity: 8,
        leaseTtlSeconds: agentLeaseTtlSeconds,
      });
      await Promise.all([0, 1, 2].map(() => startManager(buildA)));
      announcedUrls = await Promise.all([0, 1].map(startGateway));
      follower = new GatewayFollower(announcedUrls);
      // The leader pushed its routing table to both gateways.
      for (const url of announcedUrls) {
        const client = new SavassanClient({ url });
        await eventually(
          async () => (await client.listNodes()).nodes.filter((n) => n.routed === true).length,
          (routed) => routed === 2,
          20_000,
        );
      }
    });

    after(async () => {
      follower?.stop();
      await load?.stop();
      await Promise.all([...processes.values(), ...agents].map((proc) => proc.stop()));
      // What an upgrade started runs detached, its data under the root.
      if (services !== undefined) await stopProcessesUnder(services.root);
      await services?.stop();
    });

    it('serves without Redis: invocations through both gateways, a leader with 2 followers on build A', async () => {
      await gateway(0).deploy('probe', await readBundle(probe), { maxInstances: 2 });
      for (const url of announcedUrls) {
        const answer = await new SavassanClient({ url }).invoke('probe', { through: url });
        assert.deepEqual((JSON.parse(answer.payload) as { event: unknown }).event, { through: url });
      }

      await settledView();
      const status = await cli(['leader', 'status', '--json']);
      assert.equal(status.code, 0, status.stderr);
      const view = JSON.parse(status.stdout) as ControlPlaneView;
      assert.deepEqual([view.mode, view.pool], ['cluster', 'leader']);
      const managerIds = ['manager-0', 'manager-1', 'manager-2'];
      assert.ok(view.leader !== null && managerIds.includes(view.leader.id), JSON.stringify(view.leader));
      assert.ok(view.leader.term > 0, `term ${view.leader.term}`);
      assert.equal(view.leader.build?.build, 'A');
      assert.equal(view.followersWanted, 2, 'followers: ⌈log₂ 3⌉ of 3 managers');
      assert.deepEqual(
        view.followers.map((f) => f.id).sort(),
        managerIds.filter((id) => id !== view.leader?.id),
      );
      for (const f of view.followers) {
        assert.ok(f.lag >= 0 && f.appliedSeq >= 0, JSON.stringify(f));
        assert.equal(f.build.build, 'A', f.id);
      }
      assert.deepEqual(idsOf(view, 'manager'), managerIds);
      assert.deepEqual(idsOf(view, 'gateway'), ['gateway-0', 'gateway-1']);
      assert.deepEqual(idsOf(view, 'agent'), ['node-0', 'node-1']);
      for (const member of view.members) {
        assert.equal(member.build?.build, 'A', `${member.role} ${member.id}`);
        assert.equal(member.compatible, true, member.id);
      }
      const addresses = membersOf(view, 'gateway').map((m) => m.address);
      assert.deepEqual(addresses.sort(), [...announcedUrls].sort(), "gateways are listed by their API's URL");
      // The HTTP route gives what the CLI printed.
      const http = await viewNow();
      assert.deepEqual([http.leader?.id, http.leader?.term], [view.leader.id, view.leader.term]);
    });

    it('hands the lead over under steady load, on the CLI and on SIGTERM: no invocation fails or runs cold', async (t) => {
      const running = await steadyLoad();
      const before = await settledView();
      const mark = running.mark();
      const handover = await cli(['leader', 'handover']);
      assert.equal(handover.code, 0, `${handover.stdout}${handover.stderr}`);
      await sleep(1000);
      const after = await viewNow();
      const records = running.since(mark);
      assertSteady(records, 'during the handover');
      assert.ok(after.leader !== null && before.leader !== null);
      assert.notEqual(after.leader.id, before.leader.id, 'another manager leads');
      assert.ok(
        before.followers.some((f) => f.id === after.leader?.id),
        `${after.leader.id} was a follower`,
      );
      assert.ok(after.leader.term > before.leader.term, `term ${before.leader.term} → ${after.leader.term}`);
      // The last handover, as the new leader knows it (it may know none).
      assert.ok(after.handover === null || after.handover.state === 'done', JSON.stringify(after.handover));
      const stored = await invocationRecords(records);
      assert.deepEqual(
        stored.filter((r) => r.start !== 'warm').map((r) => r.id),
        [],
        'every record says warm',
      );

      // SIGTERM to the leader: it hands over first, then leaves.
      const leading = await settledView();
      const leaderId = leading.leader?.id ?? '';
      const doomed = processes.get(leaderId);
      assert.ok(doomed !== undefined, `the leader ${leaderId} is one of the test's managers`);
      const termMark = running.mark();
      await within(doomed.stop('SIGTERM'), 30_000, `${leaderId} stopping on SIGTERM`);
      assert.equal(await doomed.exited, 0, doomed.output());
      await sleep(1000);
      const left = await eventually(viewNow, (view) => !view.members.some((m) => m.id === leaderId), 15_000);
      const termRecords = running.since(termMark);
      assertSteady(termRecords, 'during the SIGTERM of the leader');
      assert.ok(left.leader !== null && leading.leader !== null);
      assert.notEqual(left.leader.id, leaderId);
      assert.ok(
        leading.followers.some((f) => f.id === left.leader?.id),
        `${left.leader.id} was a follower`,
      );
      assert.ok(left.leader.term > leading.leader.term);
      assert.deepEqual(
        left.members.filter((m) => m.id === leaderId),
        [],
        'the stopped manager is gone from the view',
      );
      const stoppedRecords = await invocationRecords(termRecords);
      assert.equal(stoppedRecords.filter((r) => r.start !== 'warm').length, 0, 'every record says warm');
      t.diagnostic(
        `${records.length} invocations during the handover (paused ${after.handover?.pausedMs ?? '?'} ms), ` +
          `${termRecords.length} during the SIGTERM`,
      );

      // Three managers again for the tests below.
      await startManager(buildA);
      await settledView();
    });

    it('elects a new leader within the leader TTL after SIGKILL; every acknowledged invocation is kept', async (t) => {
      const running = await steadyLoad();
      const events = new SteadyLoad({
        gateways: () => follower.urls(),
        functionName: 'steady',
        concurrency: 1,
        mode: 'async',
        event: { sleepMs: 10 },
        pauseMs: 100,
      }).start();
      try {
        const leading = await settledView();
        const leaderId = leading.leader?.id ?? '';
        const doomed = processes.get(leaderId);
        assert.ok(doomed !== undefined, `the leader ${leaderId} is one of the test's managers`);
        const mark = running.mark();
        await sleep(1000);
        await doomed.stop('SIGKILL');
        const killedAt = Date.now();
        const successor = await eventually(
          viewNow,
          (view) => view.leader !== null && view.leader.id !== leaderId,
          (leaderTtlSeconds + 20) * 1000,
        );
        const ledAfterMs = Date.now() - killedAt;
        assert.ok(successor.leader !== null && successor.leader.id !== leaderId, 'another manager leads');
        assert.ok(
          leading.followers.some((f) => f.id === successor.leader?.id),
          `${successor.leader.id} was a follower`,
        );
        assert.ok(successor.leader.term > (leading.leader?.term ?? 0));
        // The killed leader's election key outlives it by the TTL; polling the view adds a little.
        assert.ok(
          ledAfterMs <= (leaderTtlSeconds + 3) * 1000,
          `a new leader ${ledAfterMs} ms after the kill (leader TTL ${leaderTtlSeconds} s)`,
        );
        // Errors, if any, stop once the new leader leads.
        await sleep(2000);
        const quietFrom = Date.now();
        await sleep(2000);
        const records = running.since(mark);
        const late = records.filter((r) => r.sentAt >= quietFrom);
        assert.deepEqual(describeFailures(late), [], `failures ${ledAfterMs} ms and more after the kill`);
        await events.stop();

        // Every invocation acknowledged (200) has its record; every event accepted (202) runs to success.
        const stored = await invocationRecords(records);
        assert.equal(stored.length, records.filter((r) => r.error === null).length);
        const accepted = events.records.filter((r) => r.error === null);
        assert.ok(accepted.length >= 10, `only ${accepted.length} events accepted`);
        const settled = await eventually(
          () =>
            Promise.all(
              accepted.map(
                (r, i) => gateway(i).getAsyncInvocation(r.invocationId ?? '') as Promise<AsyncInvocationAnswer>,
              ),
            ),
          (answers) => answers.every((a) => a.state !== 'queued' && a.state !== 'running'),
          60_000,
        );
        assert.deepEqual(
          settled.filter((a) => a.state !== 'succeeded').map((a) => `${a.invocationId} ${a.state}`),
          [],
          'every accepted event succeeds',
        );
        t.diagnostic(
          `a new leader ${ledAfterMs} ms after the kill; ${describeFailures(records).join('; ') || 'no failures'} ` +
            `among ${records.length} invocations; ${accepted.length} events`,
        );

        // The killed manager leaves once its entry's lease expires; three managers again for the tests below.
        await eventually(viewNow, (view) => !view.members.some((m) => m.id === leaderId), 30_000);
        await startManager(buildA);
        await settledView();
      } finally {
        await events.stop();
      }
    });

    it('upgrades every manager and gateway from build A to B under load, failing no invocation', async (t) => {
      const running = await steadyLoad();
      const before = await settledView();
      const old = before.members.filter((m) => m.role !== 'agent');
      const mark = running.mark();
      const refusedBefore = running.refused;
      const upgrade = await cli(['upgrade', '--to', buildB], 150_000);
      assert.equal(upgrade.code, 0, `${upgrade.stdout}${upgrade.stderr}`);
      const after = await eventually(
        viewNow,
        (view) => view.members.every((m) => m.role === 'agent' || m.build?.build === 'B'),
        30_000,
      );
      await sleep(1000);
      const records = running.since(mark);
      assert.deepEqual(describeFailures(records), [], 'no invocation fails during the upgrade');
      assert.equal(after.upgrade?.state, 'succeeded', JSON.stringify(after.upgrade));
      assert.equal(after.upgrade.to.build, 'B');
      assert.equal(after.leader?.build?.build, 'B');
      const runs = (role: MemberView['role']) =>
        membersOf(after, role)
          .map((m) => m.build?.build ?? 'none')
          .sort();
      assert.deepEqual(runs('manager'), ['B', 'B', 'B'], 'as many managers as before, all on build B');
      assert.deepEqual(runs('gateway'), ['B', 'B'], 'as many gateways as before, all on build B');
      assert.deepEqual(
        after.members.filter((m) => old.some((o) => o.id === m.id)).map((m) => m.id),
        [],
        'none of the processes of build A is left',
      );
      // The old processes left on their own, without an error.
      for (const member of old) {
        const proc = processes.get(member.id);
        assert.ok(proc !== undefined, member.id);
        assert.equal(await within(proc.exited, 30_000, `${member.id} leaving`), 0, proc.output());
      }
      await settledView();
      // Reading them all would take longer than the upgrade: a few hundred, from its start to its end.
      const checked = sample(records, 300);
      const stored = await invocationRecords(checked);
      assert.deepEqual(
        stored.map((r) => r.id),
        checked.map((r) => r.invocationId),
        'every invocation has its record',
      );
      const cold = records.filter((r) => r.start === 'cold').length;
      t.diagnostic(
        `${records.length} invocations during the upgrade, ${running.refused - refusedBefore} refused at connect and ` +
          `sent again, ${cold} cold; ${follower.refreshes} gateway lists read`,
      );
    });

    it('refuses a build of another control protocol, for an upgrade and as a manager', async () => {
      const running = await steadyLoad();
      const before = await settledView();
      const mark = running.mark();
      const refused = await cli(['upgrade', '--to', buildOtherProtocol]);
      const said = `${refused.stdout}${refused.stderr}`;
      assert.equal(refused.code, 1, said);
      assert.match(said, /protocol/i);
      assert.match(said, /\b2\b/, 'names the build’s protocol');
      assert.match(said, /\b1\b/, 'names the cluster’s protocol');

      const view = await viewNow();
      assert.notEqual(view.upgrade?.state, 'running');
      assert.notEqual(view.upgrade?.to.build, 'A2', 'no upgrade to the refused build');
      assert.equal(view.leader?.id, before.leader?.id);
      for (const member of view.members.filter((m) => m.role !== 'agent')) {
        assert.equal(member.build?.build, 'B', `${member.role} ${member.id} still runs build B`);
      }

      const stranger = track(
        'manager-protocol-2',
        spawn(process.execPath, managerArgs(buildOtherProtocol, 'manager-protocol-2'), { env: services.env }),
      );
      processes.set('manager-protocol-2', stranger);
      const code = await within(stranger.exited, 60_000, 'a manager of control protocol 2 against the cluster');
      assert.notEqual(code, 0, stranger.output());
      assert.match(stranger.output(), /protocol/i);
      // Its entry may linger until its lease expires: never as a compatible member, never following or leading.
      const after = await viewNow();
      const entry = after.members.find((m) => m.id === 'manager-protocol-2');
      assert.ok(entry === undefined || !entry.compatible, JSON.stringify(entry));
      assert.ok(!after.followers.some((f) => f.id === 'manager-protocol-2'), 'the stranger follows no one');
      assert.equal(after.leader?.id, before.leader?.id);
      await sleep(500);
      assert.deepEqual(describeFailures(running.since(mark)), [], 'the cluster serves on');
    });
  },
);

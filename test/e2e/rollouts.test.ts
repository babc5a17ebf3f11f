// Rollouts driven by the control plane, end to end against a real `savassan start` process with real sandbox
// processes: a healthy canary promoted step by step under steady load, a failing one rolled back automatically, the
// per-version figures through the API, /metrics and the CLI, and the baseline kept warm (or drained) after promotion.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RolloutAnswer } from '../../src/client/client.js';
import { readBundle } from '../../src/client/bundle.js';
import { eventually, repoRoot, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

/** One invocation as the load saw it. `seq` orders the calls by when they were sent. */
interface Call {
  seq: number;
  status: number;
  version: number;
  start: string | null;
  pid: number | null;
  text: string;
}

/**
 * Steady load on a function: `concurrency` callers, each invoking it again as soon as its last call is answered,
 * until `stop`. Every call gets a sequence number when it is sent: `mark()` splits the calls into those sent before
 * and those sent after a moment, without comparing clocks.
 */
class Load {
  readonly calls: Call[] = [];
  #next = 0;
  #stopped = false;
  readonly #callers: Promise<void>[];

  constructor(
    private readonly url: string,
    private readonly name: string,
    concurrency: number,
  ) {
    this.#callers = Array.from({ length: concurrency }, () => this.#caller());
  }

  /** The sequence number of the next call: calls with `seq >= mark()` are sent after this moment. */
  mark(): number {
    return this.#next;
  }

  /** The calls sent from `mark` on that have been answered. */
  since(mark: number): Call[] {
    return this.calls.filter((call) => call.seq >= mark);
  }

  /** Until `count` calls sent from `mark` on have been answered. */
  async answered(mark: number, count: number): Promise<void> {
    await eventually(
      () => Promise.resolve(this.since(mark).length),
      (n) => n >= count,
      30_000,
    );
    assert.ok(this.since(mark).length >= count, `${count} calls answered`);
  }

  /** Stop sending and wait for the calls under way; resolves with every call, in the order they were sent. */
  async stop(): Promise<Call[]> {
    this.#stopped = true;
    await Promise.all(this.#callers);
    return [...this.calls].sort((a, b) => a.seq - b.seq);
  }

  async #caller(): Promise<void> {
    while (!this.#stopped) {
      const seq = this.#next++;
      this.calls.push(await invoke(this.url, this.name, seq));
    }
  }
}

async function invoke(url: string, name: string, seq = 0, query = ''): Promise<Call> {
  try {
    const response = await fetch(`${url}/v1/functions/${name}/invoke${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    const text = await response.text();
    const pid = response.status === 200 ? (JSON.parse(text) as { pid: number }).pid : null;
    return {
      seq,
      status: response.status,
      version: Number(response.headers.get('x-savassan-version')),
      start: response.headers.get('x-savassan-start'),
      pid,
      text,
    };
  } catch (err) {
    return { seq, status: 0, version: 0, start: null, pid: null, text: String(err) };
  }
}

/** Whether a process runs (a zombie, gone but not yet waited for, does not). */
async function alive(pid: number): Promise<boolean> {
  try {
    return !/^State:\s+Z/m.test(await readFile(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

const versionsOf = (calls: readonly Call[]) => [...new Set(calls.map((call) => call.version))].sort();
const decisions = (rollout: RolloutAnswer) => rollout.history.map((event) => [event.decision, event.step]);

describe('rollouts end to end', () => {
  let server: ServerProcess;
  let code: Uint8Array;
  /** The calls of the rollout rolled back, and its id: the figures test reads them. */
  let flaky: { calls: Call[]; rolloutId: string } | undefined;
  const api = () => server.client;
  const cli = (...args: string[]) => runCli(server.url, args);
  /** Deploys the fixture as `name`: version 1 live; with `failEvery`, a version 2 without traffic that fails so often. */
  const deployPair = async (name: string, failEvery = 0) => {
    await api().deploy(name, code);
    const second = await api().deploy(name, code, { env: { FAIL_EVERY: String(failEvery) } }, { promote: false });
    assert.deepEqual([second.version.version, second.function.currentVersion], [2, 1]);
  };
  /** Until the rollout is no longer running; the rollout then. */
  const ended = async (name: string, id: string): Promise<RolloutAnswer> =>
    eventually(
      () => api().getRollout(name, id),
      (rollout) => rollout.state !== 'running',
      30_000,
    );

  before(async () => {
    code = await readBundle(join(repoRoot, 'test', 'fixtures', 'functions', 'flaky'));
    server = await startServer(['--no-examples']);
  });
  after(async () => {
    await server.cleanup();
  });

  it('promotes a healthy canary step by step under steady load, with no failed request', async () => {
    await deployPair('healthy');
    const load = new Load(server.url, 'healthy', 4);
    await load.answered(0, 40);
    const started = load.mark();
    const rollout = await api().startRollout('healthy', {
      version: 2,
      steps: [20, 50, 100],
      intervalSeconds: 1,
      minRequests: 30,
      // A trivial handler answers in about a millisecond: on a busy host, the new version's instances starting beside
      // the load slow a few of its calls, and the p99 of 30 calls is their slowest. This test is about the steps
      // under load; the p99 rule has its own tests (rollout-analysis.test.ts).
      maxP99Ratio: 100,
    });
    assert.deepEqual([rollout.state, rollout.step, rollout.weights], ['running', 20, { '1': 0.8, '2': 0.2 }]);
    const done = await ended('healthy', rollout.id);
    const promotedSeen = load.mark();
    await load.answered(promotedSeen, 40);
    const calls = await load.stop();

    assert.deepEqual(
      calls.filter((call) => call.status !== 200),
      [],
      'no failed request',
    );
    assert.equal(done.state, 'promoted', JSON.stringify(done.history));
    assert.deepEqual(decisions(done), [
      ['started', 20],
      ['advanced', 20],
      ['advanced', 50],
      ['promoted', 100],
    ]);
    for (const event of done.history.slice(1)) {
      assert.ok(event.canary.requests >= 30, `${event.decision} at ${event.step}% on ${event.canary.requests} calls`);
      assert.equal(event.canary.errors, 0);
    }
    assert.deepEqual(done.weights, { '2': 1 });
    assert.notEqual(done.endedAt, null);
    assert.deepEqual((await api().getAlias('healthy', 'live')).weights, { '2': 1 });
    assert.equal((await api().getFunction('healthy')).currentVersion, 2);

    // The versions that ran: version 1 before, both during, version 2 once the promotion could be seen.
    assert.deepEqual(versionsOf(calls.filter((call) => call.seq < started)), [1]);
    assert.deepEqual(versionsOf(calls.filter((call) => call.seq >= started && call.seq < promotedSeen)), [1, 2]);
    assert.deepEqual(versionsOf(calls.filter((call) => call.seq >= promotedSeen)), [2]);

    const status = await cli('rollout', 'status', 'healthy');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^rollout \S+ of healthy \(live\): promoted at 100%, version 2 over 1; weights 2=1$/m);
    assert.match(status.stdout, /^steps 20 50 \[100\]$/m);
    assert.match(status.stdout, /^AT\s+STEP\s+DECISION\s+CANARY\s+BASELINE\s+REASON$/m);
    assert.match(status.stdout, /^\S+\s+20%\s+advanced\s+\d+ req, 0 err, p99 [\d.]+ ms\s+\d+ req, 0 err/m);
    assert.match(status.stdout, /^\S+\s+50%\s+advanced\s+\d+ req, 0 err/m);
    assert.match(status.stdout, /^\S+\s+100%\s+promoted\s+\d+ req, 0 err.*compared with its figures at the 50% step/m);
  });

  it('rolls a canary that fails one call in five back before its next step; later calls run the baseline, warm', async () => {
    await deployPair('flaky', 5);
    const load = new Load(server.url, 'flaky', 4);
    // Enough calls at once that version 1 has an instance for each caller.
    await load.answered(0, 60);
    const started = load.mark();
    const rollout = await api().startRollout('flaky', {
      version: 2,
      steps: [20, 50, 100],
      // Only the statistical test can end the first step.
      intervalSeconds: 60,
      minRequests: 50,
    });
    const done = await ended('flaky', rollout.id);
    const rolledBackSeen = load.mark();
    await load.answered(rolledBackSeen, 100);
    const calls = await load.stop();

    assert.equal(done.state, 'rolled_back', JSON.stringify(done.history));
    assert.deepEqual(decisions(done), [
      ['started', 20],
      ['rolled_back', 20],
    ]);
    const decision = done.history.at(-1)!;
    assert.match(
      decision.reason,
      /^canary error rate (1\d\.\d|20\.0)% \(\d+\/\d+\) against the baseline's 0\.0% \(0\/\d+\): /,
    );
    assert.match(decision.reason, /exceeds it by more than 1\.0%/);
    assert.ok(decision.canary.requests >= 50, `judged on ${decision.canary.requests} calls`);
    assert.equal(decision.baseline.errors, 0);
    assert.deepEqual(done.weights, { '1': 1 });
    assert.notEqual(done.endedAt, null);
    assert.equal((await api().getFunction('flaky')).currentVersion, 1);

    // Every failure came from the canary, which fails one call in five of each instance exactly.
    const failed = calls.filter((call) => call.status !== 200);
    assert.ok(failed.length > 0);
    for (const call of failed) {
      assert.equal(call.status, 502, call.text);
      assert.equal(call.version, 2, call.text);
      assert.match(call.text, /FUNCTION_ERROR.*fails \(one in 5\)/);
    }
    const canaryCalls = calls.filter((call) => call.version === 2);
    assert.ok(failed.length <= canaryCalls.length / 5, `${failed.length} failures in ${canaryCalls.length} calls`);
    // The canary had its share (20%) of the calls sent until the rollback could be seen: within 5 standard
    // deviations of that (a false failure about once in 1.7 million runs), so the failures are bounded by it too.
    const before = calls.filter((call) => call.seq >= started && call.seq < rolledBackSeen).length;
    const share = 0.2;
    const canaryBound = before * share + 5 * Math.sqrt(before * share * (1 - share));
    assert.ok(canaryCalls.length <= canaryBound, `${canaryCalls.length} canary calls of ${before}`);
    assert.ok(failed.length <= canaryBound / 5, `${failed.length} failures of ${before} calls`);
    assert.deepEqual(versionsOf(calls.filter((call) => call.seq < started)), [1]);

    // Every call sent once the rollback could be seen ran the baseline on an instance already warm.
    const later = calls.filter((call) => call.seq >= rolledBackSeen);
    assert.ok(later.length >= 100);
    for (const call of later) {
      assert.deepEqual([call.status, call.version, call.start], [200, 1, 'warm'], call.text);
    }
    flaky = { calls, rolloutId: rollout.id };
  });

  it('shows the figures of each version through the API, /metrics and the CLI, and the rollout as a table', async () => {
    assert.ok(flaky !== undefined, 'runs after the rollback above');
    const { calls, rolloutId } = flaky;
    // Per-version figures: the API, the CLI and /metrics count exactly the calls made.
    const count = (version: number, failing: boolean) =>
      calls.filter((call) => call.version === version && (call.status !== 200) === failing).length;
    const { versions } = await api().listVersions('flaky');
    assert.deepEqual(
      versions.map((v) => [v.version, v.current, v.traffic, v.stats.invocations, v.stats.errors]),
      [
        [1, true, 1, count(1, false), 0],
        [2, false, 0, count(2, false) + count(2, true), count(2, true)],
      ],
    );
    for (const v of versions) assert.equal(typeof v.stats.p99Ms, 'number', `p99 of version ${v.version}`);
    const table = await cli('versions', 'flaky');
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^VERSION\s+CURRENT\s+TRAFFIC\s+INVOCATIONS\s+ERRORS\s+P99/m);
    assert.match(table.stdout, new RegExp(`^1\\s+\\*\\s+100%\\s+${count(1, false)}\\s+0\\s+[\\d.]+ms`, 'm'));
    assert.match(
      table.stdout,
      new RegExp(`^2\\s+0%\\s+${count(2, false) + count(2, true)}\\s+${count(2, true)}\\s+[\\d.]+ms`, 'm'),
    );
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const counted = (version: number, status: string) =>
      [
        ...metrics.matchAll(
          new RegExp(
            `^savassan_invocations_total\\{function="flaky",version="${version}",status="${status}",[^}]*\\} (\\d+)$`,
            'gm',
          ),
        ),
      ].reduce((sum, match) => sum + Number(match[1]), 0);
    assert.equal(counted(1, 'success'), count(1, false));
    assert.equal(counted(2, 'success'), count(2, false));
    assert.equal(counted(2, 'error'), count(2, true));

    const status = await cli('rollout', 'status', 'flaky');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^rollout \S+ of flaky \(live\): rolled back at 20%, version 2 over 1; weights 1=1$/m);
    assert.match(status.stdout, /^steps \[20\] 50 100$/m);
    assert.match(
      status.stdout,
      /^every 60 s once the canary has 50 requests; fails past \+0\.01 error rate or 1\.5x p99/m,
    );
    assert.match(status.stdout, /^AT\s+STEP\s+DECISION\s+CANARY\s+BASELINE\s+REASON$/m);
    assert.match(status.stdout, /^\S+\s+20%\s+started\s+/m);
    assert.match(
      status.stdout,
      /^\S+\s+20%\s+rolled back\s+\d+ req, [1-9]\d* err, p99 [\d.]+ ms\s+\d+ req, 0 err.*canary error rate/m,
    );
    const json = await cli('rollout', 'status', 'flaky', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout), await api().getRollout('flaky', rolloutId));
  });

  it("keeps the baseline's warm instances for the rollback window after promotion, and drains them without one", async () => {
    /** Two calls at once, twice: the pids of the instances of version 1 that answered. */
    const warmUp = async (name: string) => {
      const calls = [
        ...(await Promise.all([invoke(server.url, name), invoke(server.url, name)])),
        ...(await Promise.all([invoke(server.url, name), invoke(server.url, name)])),
      ];
      assert.ok(calls.every((call) => call.status === 200 && call.version === 1));
      return new Set(calls.map((call) => call.pid!));
    };
    const promote = async (name: string, rollbackWindowSeconds: number) => {
      const rollout = await api().startRollout(name, { version: 2, intervalSeconds: 86_400, rollbackWindowSeconds });
      const promoted = await api().promoteRollout(name, rollout.id);
      assert.deepEqual([promoted.state, promoted.weights], ['promoted', { '2': 1 }]);
    };
    await deployPair('kept');
    await deployPair('drained');
    const keptPids = await warmUp('kept');
    const drainedPids = await warmUp('drained');
    // Promoted in this order, a reconcile that drains "drained" read both promotions.
    await promote('kept', 600);
    await promote('drained', 0);

    const gone = async (pids: Set<number>) => (await Promise.all([...pids].map(alive))).every((a) => !a);
    assert.ok(await eventually(() => gone(drainedPids), Boolean, 30_000), 'the baseline without a window is drained');
    for (const pid of keptPids) assert.ok(await alive(pid), `instance ${pid} of the kept baseline runs`);

    // Back to version 1 by hand: warm on an instance kept for it.
    const use = await cli('versions', 'kept', '--use', '1');
    assert.equal(use.code, 0, use.stderr);
    const back = await invoke(server.url, 'kept');
    assert.deepEqual([back.status, back.version, back.start], [200, 1, 'warm'], back.text);
    // Without a window, going back costs a cold start.
    assert.equal((await cli('versions', 'drained', '--use', '1')).code, 0);
    const cold = await invoke(server.url, 'drained');
    assert.deepEqual([cold.status, cold.version, cold.start], [200, 1, 'cold'], cold.text);
  });
});

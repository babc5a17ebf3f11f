// Metrics and the console's figures, end to end: a known mix of invocations on a real `savassan start` process with
// real sandboxes, read back from /metrics, the stats endpoints and the Grafana dashboard's queries.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { readBundle } from '../../src/client/bundle.js';
import { repoRoot, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const fixture = (name: string) => join(repoRoot, 'test', 'fixtures', 'e2e', name);

/** The value of one sample line of the Prometheus text, or null when there is none. */
function sample(text: string, line: string): number | null {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? null : Number(found.slice(line.length + 1));
}

interface Point {
  start: string;
  invocations: number;
  errors: number;
  p50Ms?: number | null;
  p99Ms: number | null;
}

interface FunctionStats {
  from: string;
  to: string;
  stepSeconds: number;
  versions: {
    version: number;
    invocations: number;
    errors: number;
    p50Ms: number | null;
    p99Ms: number | null;
    series: Point[];
  }[];
}

interface FunctionsStats {
  from: string;
  to: string;
  stepSeconds: number;
  functions: { name: string; invocations: number; errors: number; p99Ms: number | null; series: Point[] }[];
}

describe('metrics and stats end to end', () => {
  let server: ServerProcess;
  /** The invocations run, as their answers told: version, HTTP status, start kind. */
  const answers: { version: string; status: number; start: string | null }[] = [];

  const invoke = async (version: string, event: unknown): Promise<void> => {
    const res = await fetch(`${server.url}/v1/functions/mixed/invoke?qualifier=${version}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event),
    });
    await res.arrayBuffer();
    answers.push({ version, status: res.status, start: res.headers.get('x-savassan-start') });
  };
  /** A GET's status and JSON body, whatever the status. */
  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    const res = await fetch(`${server.url}${path}`);
    return { status: res.status, body: await res.json() };
  };
  const metrics = async (): Promise<string> => (await server.client.request('GET', '/metrics')).text();

  before(async () => {
    server = await startServer(['--no-examples']);
    const zip = await readBundle(fixture('mixed'));
    await server.client.deploy('mixed', zip, { timeoutSeconds: 1, env: { V: '1' } });
    await server.client.deploy('mixed', zip, { timeoutSeconds: 1, env: { V: '2' } });
    await server.client.deploy('idle', zip, {});
    // Version 1: a cold success, a warm one, a function error, a timeout (its sandbox is destroyed).
    await invoke('1', {});
    await invoke('1', {});
    await invoke('1', { throw: true });
    await invoke('1', { sleepMs: 3000 });
    // Version 2: a cold success, a crash (its sandbox is destroyed), a cold success again.
    await invoke('2', {});
    await invoke('2', { exit: true });
    await invoke('2', {});
  });
  after(async () => {
    await server.cleanup();
  });

  it('ran the mix it meant to', () => {
    assert.deepEqual(answers, [
      { version: '1', status: 200, start: 'cold' },
      { version: '1', status: 200, start: 'warm' },
      { version: '1', status: 502, start: 'warm' },
      { version: '1', status: 504, start: 'warm' },
      { version: '2', status: 200, start: 'cold' },
      { version: '2', status: 502, start: 'warm' },
      { version: '2', status: 200, start: 'cold' },
    ]);
  });

  it('counts every invocation by version, status and start kind on /metrics', async () => {
    const text = await metrics();
    const total = (version: number, status: string, start: string) =>
      sample(
        text,
        `savassan_invocations_total{function="mixed",version="${version}",status="${status}",start="${start}"}`,
      );
    assert.equal(total(1, 'success', 'cold'), 1);
    assert.equal(total(1, 'success', 'warm'), 1);
    assert.equal(total(1, 'error', 'warm'), 1);
    assert.equal(total(1, 'timeout', 'warm'), 1);
    assert.equal(total(2, 'success', 'cold'), 2);
    assert.equal(total(2, 'crash', 'warm'), 1);
    assert.equal(total(2, 'success', 'warm'), null);
    const errors = (version: number, status: string) =>
      sample(text, `savassan_invocation_errors_total{function="mixed",version="${version}",status="${status}"}`);
    assert.equal(errors(1, 'error'), 1);
    assert.equal(errors(1, 'timeout'), 1);
    assert.equal(errors(2, 'crash'), 1);
    const durations = (version: number, start: string) =>
      sample(
        text,
        `savassan_invocation_duration_seconds_count{function="mixed",version="${version}",start="${start}"}`,
      );
    assert.equal(durations(1, 'cold'), 1);
    assert.equal(durations(1, 'warm'), 3);
    assert.equal(durations(2, 'cold'), 2);
    assert.equal(durations(2, 'warm'), 1);
    assert.equal(sample(text, 'savassan_invocation_init_duration_seconds_count{function="mixed",version="1"}'), 1);
    assert.equal(sample(text, 'savassan_invocation_init_duration_seconds_count{function="mixed",version="2"}'), 2);
    // The warm sandbox of version 2 waits in its pool; nothing runs now.
    assert.equal(sample(text, 'savassan_pool_instances{function="mixed",version="2",state="idle"}'), 1);
    assert.equal(sample(text, 'savassan_pool_instances{function="mixed",version="2",state="busy"}'), 0);
    assert.equal(sample(text, 'savassan_concurrent_executions{function="mixed"}'), 0);
    assert.match(text, /^savassan_node_sandboxes\{node="[^"]+"\} \d+$/m);
    assert.equal(sample(text, 'savassan_async_queue_events{function="idle",state="queued"}'), 0);
  });

  it("answers a function's figures per version, newest first", async () => {
    const stats = await server.client.json<FunctionStats>('GET', '/v1/functions/mixed/stats?minutes=5&step=60');
    assert.equal(stats.stepSeconds, 60);
    assert.equal(Date.parse(stats.to) - Date.parse(stats.from), 5 * 60_000);
    assert.deepEqual(
      stats.versions.map(({ version, invocations, errors }) => ({ version, invocations, errors })),
      [
        { version: 2, invocations: 3, errors: 1 },
        { version: 1, invocations: 4, errors: 2 },
      ],
    );
    for (const version of stats.versions) {
      assert.equal(version.series.length, 5);
      assert.equal(
        version.series.reduce((sum, point) => sum + point.invocations, 0),
        version.invocations,
      );
      assert.ok(version.p50Ms !== null && version.p99Ms !== null && version.p50Ms <= version.p99Ms);
      assert.ok(version.series.every((point) => (point.invocations === 0) === (point.p99Ms === null)));
    }
    // The timeout ran about a second: version 1's p99 says so.
    assert.ok((stats.versions[1]?.p99Ms ?? 0) >= 500, `p99 ${stats.versions[1]?.p99Ms}`);
  });

  it("answers every function's figures, idle ones as zeros, with a dense series", async () => {
    const stats = await server.client.json<FunctionsStats>('GET', '/v1/stats/functions?minutes=5&step=10');
    assert.equal(stats.stepSeconds, 10);
    const byName = new Map(stats.functions.map((fn) => [fn.name, fn]));
    assert.deepEqual([...byName.keys()], ['idle', 'mixed']);
    assert.equal(byName.get('mixed')?.invocations, 7);
    assert.equal(byName.get('mixed')?.errors, 3);
    assert.equal(byName.get('idle')?.invocations, 0);
    assert.equal(byName.get('idle')?.p99Ms, null);
    for (const fn of stats.functions) {
      assert.equal(fn.series.length, 30);
      const starts = fn.series.map((point) => Date.parse(point.start));
      assert.equal(starts[0], Date.parse(stats.from));
      assert.ok(
        starts.every((start, i) => i === 0 || start - (starts[i - 1] ?? 0) === 10_000),
        'oldest first',
      );
    }
  });

  it('refuses bad windows with 400 and unknown functions with 404', async () => {
    for (const query of ['minutes=0', 'minutes=1441', 'step=9', 'step=3601', 'minutes=abc', 'minutes=1440&step=60']) {
      const { status, body } = await get(`/v1/stats/functions?${query}`);
      assert.equal(status, 400, query);
      assert.equal((body as { error: { code: string } }).error.code, 'BAD_REQUEST');
    }
    const { status, body } = await get('/v1/functions/nobody/stats');
    assert.equal(status, 404);
    assert.equal((body as { error: { code: string } }).error.code, 'NOT_FOUND');
  });

  it('tells the mode: embedded, no leader, no routing table', async () => {
    assert.deepEqual(await server.client.json('GET', '/v1/cluster'), { mode: 'embedded', leader: null, routing: null });
  });

  it('queries only metrics a real scrape has, in a dashboard Grafana imports as is', async () => {
    const dashboard = JSON.parse(await readFile(join(repoRoot, 'deploy', 'grafana', 'savassan.json'), 'utf8')) as {
      __inputs: { name: string; type: string; pluginId: string }[];
      panels: { title: string; targets?: { expr: string; datasource: { uid: string } }[] }[];
    };
    assert.deepEqual(
      dashboard.__inputs.map(({ name, type, pluginId }) => ({ name, type, pluginId })),
      [{ name: 'DS_PROMETHEUS', type: 'datasource', pluginId: 'prometheus' }],
    );
    const text = await metrics();
    const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
    const queried = new Set<string>();
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        assert.equal(target.datasource.uid, '${DS_PROMETHEUS}', panel.title);
        for (const [name] of target.expr.matchAll(/savassan_[a-z_]+/g)) {
          queried.add(name.replace(/_(bucket|count|sum)$/, ''));
        }
      }
    }
    assert.ok(queried.size >= 8, [...queried].join(', '));
    assert.deepEqual(
      [...queried].filter((name) => !exported.has(name)),
      [],
    );
  });

  it("removes a deleted function's series", async () => {
    const res = await server.client.request('DELETE', '/v1/functions/mixed');
    await res.arrayBuffer();
    assert.ok(res.ok);
    const text = await metrics();
    assert.doesNotMatch(text, /savassan_invocation[a-z_]*\{[^}]*function="mixed"/);
  });
});

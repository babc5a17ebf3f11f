// Several event loops serve one gateway's port (src/gateway/lanes/): worker threads accept connections beside the
// main loop and pass invocations to its invoker, so the node's one pool keeps its guarantees whichever loop took a
// request, and every other request reaches the main loop's API. To be sure the lanes are the ones serving, each test
// blocks the main loop while a client in another process connects: only the lanes can accept meanwhile.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient } from '../../src/client/client.js';
import { compileEmbeddedOptions, startEmbedded } from '../../src/embedded/embedded-platform.js';
import { isPlatformError } from '../../src/core/errors.js';
import { defaultEventLoops } from '../../src/gateway/lanes/lane-host.js';
import type { EmbeddedPlatform } from '../../src/embedded/embedded-platform.js';
import { repoRoot } from '../helpers/server-process.js';

interface Hit {
  status: number;
  headers?: Record<string, string>;
  body: string;
  error?: string;
}

/** Blocks this process's event loop, as a busy gateway would be. */
function blockMainLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // spin
  }
}

/**
 * Runs test/helpers/lane-client.mjs against `url` and blocks the main loop for `blockMs` once it has started, so
 * that its connections are accepted by the lanes.
 */
function fromLanes(url: string, plan: unknown, blockMs = 800): Promise<Hit[]> {
  const child = spawn(
    process.execPath,
    [join(repoRoot, 'test', 'helpers', 'lane-client.mjs'), url, JSON.stringify(plan)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  let blocked = false;
  child.stdout.setEncoding('utf8').on('data', (text: string) => {
    out += text;
    if (!blocked && out.includes('started\n')) {
      blocked = true;
      blockMainLoop(blockMs);
    }
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`lane-client exited with ${code}: ${out}`));
      else resolve(JSON.parse(out.split('\n').filter(Boolean).at(-1)!) as Hit[]);
    });
  });
}

/** `savassan_lane_invocations_total` by lane, from /metrics. */
async function laneInvocations(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const counts = new Map<string, number>();
  for (const match of text.matchAll(/^savassan_lane_invocations_total\{lane="(\d+)"\} (\d+)$/gm)) {
    counts.set(match[1]!, Number(match[2]));
  }
  return counts;
}

const sum = (counts: Map<string, number>): number => [...counts.values()].reduce((a, b) => a + b, 0);

describe('the number of event loops', () => {
  it('is one below 8 cores, then a quarter of the cores, at most 16', () => {
    assert.deepEqual(
      [1, 2, 4, 7, 8, 16, 32, 64, 128].map((cores) => defaultEventLoops(cores)),
      [1, 1, 1, 1, 2, 4, 8, 16, 16],
    );
  });

  it('refuses what is not a whole number from 1 to 64', () => {
    for (const eventLoops of [0, -1, 1.5, 65, Number.NaN]) {
      assert.throws(
        () => compileEmbeddedOptions({ eventLoops }),
        (err: unknown) => isPlatformError(err, 'INVALID_CONFIG') && /eventLoops must be an integer/.test(err.message),
      );
    }
  });
});

describe('a gateway with three event loops', () => {
  let dataDir: string;
  let platform: EmbeddedPlatform;
  let client: SavassanClient;
  const fixtures = join(repoRoot, 'test', 'fixtures', 'functions');

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'savassan-loops-'));
    platform = await startEmbedded({ dataDir, port: 0, sandbox: 'process', stemCells: false, eventLoops: 3 });
    client = new SavassanClient({ url: platform.url });
    await client.deploy('exclusive', await readBundle(join(fixtures, 'exclusive')), { maxInstances: 2 });
    await client.deploy('single', await readBundle(join(fixtures, 'exclusive')), { maxInstances: 1 });
    await client.deploy('echo', await readBundle(join(fixtures, 'echo')), {});
  });

  after(async () => {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('says so in /metrics', async () => {
    const text = await (await fetch(`${platform.url}/metrics`)).text();
    assert.match(text, /^savassan_gateway_event_loops 3$/m);
  });

  it('serves invocations from the lanes with one invocation per instance and at most max instances', async () => {
    const before = await laneInvocations(platform.url);
    const total = 240;
    const hits = await fromLanes(platform.url, {
      load: { path: '/v1/functions/exclusive/invoke', body: '{"sleepMs":2}', total, concurrency: 24 },
    });
    assert.equal(hits.length, total);
    const bad = hits.filter((hit) => hit.status !== 200);
    assert.deepEqual(bad, [], 'every invocation succeeds (waiters are served, none gets 429)');
    const results = hits.map((hit) => JSON.parse(hit.body) as { pid: number; overlapped: boolean });
    assert.ok(
      results.every((result) => !result.overlapped),
      'no sandbox ever ran two invocations at once',
    );
    const pids = new Set(results.map((result) => result.pid));
    assert.ok(pids.size <= 2, `at most max instances (2) sandboxes served, got ${pids.size}`);
    const after = await laneInvocations(platform.url);
    // The client connected while the main loop was blocked: the lanes took every request.
    assert.equal(sum(after) - sum(before), total, `lanes: ${JSON.stringify([...after])}`);
  });

  it('queues requests from several lanes for a single instance and serves them all', async () => {
    const hits = await fromLanes(platform.url, {
      requests: Array.from({ length: 30 }, () => ({
        method: 'POST',
        path: '/v1/functions/single/invoke',
        body: '{"sleepMs":5}',
        headers: { 'content-type': 'application/json' },
      })),
    });
    assert.deepEqual(
      hits.map((hit) => hit.status),
      Array.from({ length: 30 }, () => 200),
    );
    const results = hits.map((hit) => JSON.parse(hit.body) as { pid: number; overlapped: boolean; served: number });
    assert.equal(new Set(results.map((result) => result.pid)).size, 1, 'max instances 1: one sandbox');
    assert.ok(results.every((result) => !result.overlapped));
    // Served one after another: each answer saw a different count of invocations served before it.
    assert.equal(new Set(results.map((result) => result.served)).size, 30);
  });

  it('passes a live log WebSocket that a lane accepted to the main loop', async () => {
    const answers = fromLanes(platform.url, {
      websocket: { path: '/v1/functions/echo/logs/ws', until: 'echo: invoked with' },
    });
    // The socket shows a line once echo runs after it opened: invoke it until then.
    let settled = false;
    void answers.finally(() => (settled = true)).catch(() => {});
    while (!settled) {
      await fetch(`${platform.url}/v1/functions/echo/invoke`, { method: 'POST', body: '{}' }).then((r) => r.text());
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const [socket] = await answers;
    assert.equal(socket!.status, 101, JSON.stringify(socket));
    const line = JSON.parse(socket!.body.split('\n').at(-1)!) as { type: string; functionName: string; line: string };
    assert.equal(line.type, 'line');
    assert.equal(line.functionName, 'echo');
    assert.match(line.line, /^echo: invoked with/);
  });

  it('gives the lanes the whole API: routes, errors, streams', async () => {
    const answers = fromLanes(platform.url, {
      requests: [
        { method: 'GET', path: '/v1/functions' },
        { method: 'GET', path: '/v1/functions/echo' },
        { method: 'GET', path: '/v1/nope' },
        {
          method: 'POST',
          path: '/v1/functions/echo/invoke',
          body: '{"a":',
          headers: { 'content-type': 'application/json' },
        },
        { method: 'POST', path: '/v1/functions/echo/invoke?async=maybe', body: '{}' },
        { method: 'POST', path: '/v1/functions/echo/invoke?async=1', body: '{}' },
        { method: 'GET', path: '/v1/functions/echo/logs?follow=1', until: 'echo: invoked with' },
      ],
    });
    // The log stream ends (for the client) once it has shown an invocation of echo: invoke it until then.
    let settled = false;
    void answers.finally(() => (settled = true)).catch(() => {});
    while (!settled) {
      await fetch(`${platform.url}/v1/functions/echo/invoke`, { method: 'POST', body: '{}' }).then((r) => r.text());
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const [list, one, missing, badEvent, badQuery, queued, stream] = await answers;
    assert.equal(queued!.status, 202, 'an asynchronous invocation through a lane');
    assert.equal(stream!.status, 200);
    assert.match(stream!.headers!['content-type']!, /text\/event-stream/);
    assert.match(stream!.body, /event: invocation/);
    assert.equal(list!.status, 200);
    assert.deepEqual(
      (JSON.parse(list!.body) as { functions: { name: string }[] }).functions.map((f) => f.name).sort(),
      ['echo', 'exclusive', 'single'],
    );
    assert.equal(one!.status, 200);
    assert.equal((JSON.parse(one!.body) as { name: string }).name, 'echo');
    assert.equal(missing!.status, 404);
    assert.equal((JSON.parse(missing!.body) as { error: { code: string } }).error.code, 'NOT_FOUND');
    assert.equal(badEvent!.status, 400);
    assert.match((JSON.parse(badEvent!.body) as { error: { message: string } }).error.message, /not valid JSON/);
    assert.equal(badQuery!.status, 400);
    assert.equal((JSON.parse(badQuery!.body) as { error: { code: string } }).error.code, 'BAD_REQUEST');
  });

  it("picks a sticky alias's version from the request's header in the lanes as in the main loop", async () => {
    const echo = await readBundle(join(fixtures, 'echo'));
    await client.deploy('sticky', echo, { env: { V: '1' } });
    await client.deploy('sticky', echo, { env: { V: '2' } }, { promote: false });
    await client.putAlias('sticky', 'live', { '1': 0.5, '2': 0.5 }, 'x-user-id');
    const keys = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const before = await laneInvocations(platform.url);
    const hits = await fromLanes(platform.url, {
      requests: keys.map((key) => ({
        method: 'POST',
        path: '/v1/functions/sticky/invoke',
        body: '{}',
        headers: { 'content-type': 'application/json', 'x-user-id': key },
      })),
    });
    const after = await laneInvocations(platform.url);
    assert.equal(sum(after) - sum(before), keys.length, 'the lanes took every request');
    for (const [i, hit] of hits.entries()) {
      assert.equal(hit.status, 200, hit.body);
      assert.equal(hit.headers!['x-savassan-alias'], 'live');
      const again = await client.invoke('sticky', {}, { headers: { 'x-user-id': keys[i]! } });
      assert.equal(Number(hit.headers!['x-savassan-version']), again.version, `${keys[i]} keeps its version`);
    }
    assert.equal(new Set(hits.map((hit) => hit.headers!['x-savassan-version'])).size, 2, 'both versions serve');
  });

  it('runs the version or alias the URL names in the lanes as in the main loop', async () => {
    const echo = await readBundle(join(fixtures, 'echo'));
    await client.deploy('qualified', echo, { env: { V: '1' } });
    await client.deploy('qualified', echo, { env: { V: '2' } }, { promote: false });
    await client.putAlias('qualified', 'beta', { '2': 1 });
    const paths = ['', '?qualifier=1', '?qualifier=2', '?qualifier=beta', '?qualifier=nope'];
    const before = await laneInvocations(platform.url);
    const hits = await fromLanes(platform.url, {
      requests: paths.map((query) => ({
        method: 'POST',
        path: `/v1/functions/qualified/invoke${query}`,
        body: '{}',
        headers: { 'content-type': 'application/json' },
      })),
    });
    const after = await laneInvocations(platform.url);
    assert.equal(sum(after) - sum(before), paths.length, 'the lanes took every request');
    assert.deepEqual(
      hits.map((hit) => [hit.status, hit.headers!['x-savassan-version'], hit.headers!['x-savassan-alias']]),
      [
        [200, '1', 'live'],
        [200, '1', undefined],
        [200, '2', undefined],
        [200, '2', 'beta'],
        [404, undefined, undefined],
      ],
    );
  });
});

describe('a gateway with one lane', () => {
  let dataDir: string;
  let platform: EmbeddedPlatform;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'savassan-lane-'));
    platform = await startEmbedded({ dataDir, port: 0, sandbox: 'process', stemCells: false, eventLoops: 2 });
  });

  after(async () => {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('passes a chunked body on framed: a request hidden in it never reaches the main loop', async () => {
    const client = new SavassanClient({ url: platform.url });
    await client.deploy('victim', await readBundle(join(repoRoot, 'test', 'fixtures', 'functions', 'echo')), {});
    // Unframed on the connection to the main loop, this body would be read there as a request of its own.
    const smuggled = 'DELETE /v1/functions/victim HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n';
    const requests = [
      { method: 'GET', path: '/healthz', headers: { 'transfer-encoding': 'chunked' }, body: smuggled },
      ...Array.from({ length: 3 }, () => ({ method: 'GET', path: '/v1/functions/victim' })),
    ];
    const [first, ...next] = await fromLanes(platform.url, { requests, sequential: true });
    assert.equal(first!.status, 200);
    for (const hit of next) {
      assert.equal(hit.status, 200, hit.body);
      assert.equal((JSON.parse(hit.body) as { name: string }).name, 'victim');
    }
    assert.equal((await client.getFunction('victim')).name, 'victim');
  });
});

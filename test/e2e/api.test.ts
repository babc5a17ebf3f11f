// End to end through the HTTP API against a real `savassan start` process with real sandbox processes.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'node:http';
import { join } from 'node:path';
import { readBundle } from '../../src/client/bundle.js';
import type { FunctionConfigInput } from '../../src/core/function-config.js';
import { apiError, eventually, repoRoot, sandboxPids, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const fixture = (name: string) => join(repoRoot, 'test', 'fixtures', 'e2e', name);

interface Probe {
  pid: number;
  begin: number;
  end: number;
  env: Record<string, string | null>;
  hostEnvLeak: string | null;
  context: { functionName: string; functionVersion: string; memoryLimitInMB: string; remaining: number };
  event: unknown;
}

/**
 * POSTs an oversized body the way careful clients do (curl, for one): headers first, then the body only if the
 * server has not answered yet. The server refuses it (413) from its content-length and closes the connection;
 * a client that kept writing would get EPIPE instead of the answer.
 */
function postOversized(url: string, bytes: number): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = request(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': String(bytes) },
    });
    req.on('response', (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, code: (JSON.parse(text) as { error: { code: string } }).error.code });
      });
    });
    req.on('error', (err) => {
      if (!answered) reject(err);
    });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let sent = 0;
    const pump = () => {
      if (answered || sent >= bytes) return;
      const part = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
      sent += part.length;
      req.write(part, () => setImmediate(pump));
    };
    // The server judges by content-length and answers before any body is sent; only start sending if it waits.
    req.flushHeaders();
    setTimeout(pump, 1000);
  });
}

describe('HTTP API end to end', () => {
  let server: ServerProcess;
  const deploy = async (name: string, dir: string, config: FunctionConfigInput = {}) =>
    server.client.deploy(name, await readBundle(fixture(dir)), config);
  const invoke = async <T>(name: string, event: unknown = {}) => {
    const answer = await server.client.invoke(name, event);
    return { ...answer, body: JSON.parse(answer.payload) as T };
  };

  before(async () => {
    process.env.SAVASSAN_E2E_SECRET = 'host-secret';
    server = await startServer(['--queue-wait', '1', '--no-examples']);
  });
  after(async () => {
    await server.cleanup();
  });

  it('serves health, readiness, OpenAPI and metrics', async () => {
    assert.deepEqual(await server.client.json('GET', '/healthz'), { status: 'ok' });
    assert.deepEqual(await server.client.json('GET', '/readyz'), { status: 'ready' });
    const openapi = await server.client.json<{ openapi: string; paths: Record<string, unknown> }>(
      'GET',
      '/v1/openapi.json',
    );
    assert.equal(openapi.openapi, '3.1.0');
    assert.ok('/v1/functions/{name}/invoke' in openapi.paths);
    const metrics = await (await server.client.request('GET', '/metrics')).text();
    assert.match(metrics, /savassan_invocations_total/);
  });

  it('deploys, invokes cold then warm, passes env and the Lambda context, keeps host env out', async () => {
    const deployed = await deploy('probe', 'probe', {
      env: { GREETING: 'hallo', TOKEN: 'a=b' },
      memoryMB: 192,
      timeoutSeconds: 7,
    });
    assert.equal(deployed.created, true);
    assert.equal(deployed.version.version, 1);
    const first = await invoke<Probe>('probe', { n: 1 });
    assert.equal(first.start, 'cold');
    assert.match(first.invocationId, /^[0-9a-f-]{36}$/);
    assert.deepEqual(first.body.event, { n: 1 });
    assert.equal(first.body.env.GREETING, 'hallo');
    assert.equal(first.body.env.TOKEN, 'a=b');
    assert.equal(first.body.hostEnvLeak, null, 'host environment must not reach the function');
    assert.equal(first.body.context.functionName, 'probe');
    assert.equal(first.body.context.functionVersion, '1');
    assert.equal(first.body.context.memoryLimitInMB, '192', 'a string, as in AWS Lambda');
    assert.ok(first.body.context.remaining > 5000 && first.body.context.remaining <= 7000);
    const second = await invoke<Probe>('probe', { n: 2 });
    assert.equal(second.start, 'warm');
    assert.equal(second.body.pid, first.body.pid, 'a warm invoke reuses the sandbox');

    const record = await server.client.getInvocation(first.invocationId);
    assert.equal(record.functionName, 'probe');
    assert.equal(record.version, 1);
    assert.equal(record.start, 'cold');
    assert.equal(record.status, 'success');
    assert.ok(typeof record.initMs === 'number' && record.initMs >= 0);
    assert.ok(record.durationMs >= 0);
    assert.ok(typeof record.peakMemoryBytes === 'number' && record.peakMemoryBytes > 1_000_000);
    assert.equal((await server.client.getInvocation(second.invocationId)).initMs, null);
    const log = await server.client.invocationLog(first.invocationId);
    assert.match(log, new RegExp(`probe ${first.invocationId} in pid ${first.body.pid}`));
  });

  it('takes an empty body as the event {}', async () => {
    const response = await server.client.request('POST', '/v1/functions/probe/invoke');
    const body = (await response.json()) as Probe;
    assert.deepEqual(body.event, {});
  });

  it('streams the recent logs, then new lines as they are written, with follow=1 (server-sent events)', async () => {
    const abort = new AbortController();
    const response = await fetch(`${server.url}/v1/functions/probe/logs?follow=1&limit=1`, { signal: abort.signal });
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const reader = (response.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = '';
    const nextEvent = async <T>(type: string): Promise<T> => {
      for (;;) {
        const match = new RegExp(`event: ${type}\ndata: (.*)\n\n`).exec(text);
        if (match !== null) {
          text = text.slice(match.index + match[0].length);
          return JSON.parse(match[1]!) as T;
        }
        const { value, done } = await reader.read();
        assert.ok(!done, 'the stream ended');
        text += decoder.decode(value, { stream: true });
      }
    };
    await nextEvent('invocation'); // the most recent invocation, replayed first
    const { invocationId } = await invoke<Probe>('probe', { followed: true });
    const line = await nextEvent<{ invocationId: string; line: string; functionName: string }>('line');
    assert.equal(line.invocationId, invocationId);
    assert.equal(line.functionName, 'probe');
    assert.match(line.line, new RegExp(`^probe ${invocationId}`));
    abort.abort();
  });

  it('keeps versions immutable and can go back to an older one', async () => {
    await deploy('flip', 'probe');
    const again = await deploy('flip', 'probe');
    assert.equal(again.created, false, 'same code and config is the same version');
    await deploy('env-order', 'probe', { env: { A: '1', B: '2' } });
    const reordered = await deploy('env-order', 'probe', { env: { B: '2', A: '1' } });
    assert.equal(reordered.created, false, 'the order of environment variables does not make a new version');
    const v2 = await deploy('flip', 'v2');
    assert.equal(v2.version.version, 2);
    assert.deepEqual((await invoke('flip')).body, { version: 'two' });
    const { versions } = await server.client.listVersions('flip');
    assert.deepEqual(
      versions.map((v) => [v.version, v.current]),
      [
        [1, false],
        [2, true],
      ],
    );
    await server.client.setCurrentVersion('flip', 1);
    const back = await invoke<Probe>('flip');
    assert.equal(back.version, 1);
    assert.equal(back.body.context.functionVersion, '1');
    const err = await apiError(server.client.setCurrentVersion('flip', 9));
    assert.equal(err.status, 404);
  });

  it('answers a handler error with 502, its type, message and a trimmed stack', async () => {
    await deploy('throws', 'throws');
    const err = await apiError(server.client.invoke('throws'));
    assert.equal(err.status, 502);
    assert.equal(err.code, 'FUNCTION_ERROR');
    assert.equal(err.body.errorType, 'PaymentDeclined');
    assert.equal(err.body.message, 'card 4242 was declined');
    assert.match(String(err.body.stack), /index\.mjs/);
    assert.ok(String(err.body.stack).split('\n').length <= 25);
    const id = String(err.body.invocationId);
    assert.equal(err.headers.get('x-savassan-invocation-id'), id);
    const record = await server.client.getInvocation(id);
    assert.equal(record.status, 'error');
    assert.equal(record.error?.name, 'PaymentDeclined');
    assert.match(await server.client.invocationLog(id), /about to fail/);
  });

  it('kills a sandbox past its timeout with 504 and never reuses it', async () => {
    await deploy('sleepy', 'sleepy', { timeoutSeconds: 1 });
    const warm = await invoke<{ pid: number }>('sleepy', { ms: 1 });
    const err = await apiError(server.client.invoke('sleepy', { ms: 30_000 }));
    assert.equal(err.status, 504);
    assert.equal(err.code, 'FUNCTION_TIMEOUT');
    assert.match(err.message, /Task timed out after 1.00 seconds/);
    assert.ok(!(await sandboxPids(server.dataDir)).includes(warm.body.pid), 'the timed-out sandbox is gone');
    const next = await invoke<{ pid: number }>('sleepy', { ms: 1 });
    assert.notEqual(next.body.pid, warm.body.pid);
    assert.equal((await server.client.getInvocation(String(err.body.invocationId))).status, 'timeout');
  });

  it('reports process.exit as a crash, discards the instance and the next request works', async () => {
    await deploy('exits', 'exits');
    const before = await invoke<{ pid: number }>('exits');
    const err = await apiError(server.client.invoke('exits', { exit: true }));
    assert.equal(err.status, 502);
    assert.equal(err.code, 'FUNCTION_CRASHED');
    assert.match(err.message, /code 3/);
    const after = await invoke<{ pid: number }>('exits');
    assert.notEqual(after.body.pid, before.body.pid);
  });

  it('reports running out of memory with the limit, and recovers', async () => {
    await deploy('hog', 'hog', { memoryMB: 64 });
    const err = await apiError(server.client.invoke('hog', { hog: true }));
    assert.equal(err.status, 502);
    assert.equal(err.code, 'FUNCTION_OUT_OF_MEMORY');
    assert.match(err.message, /out of memory.*64 MB/);
    assert.equal((await invoke<{ pid: number }>('hog')).start, 'cold');
  });

  it('rejects bad input with clear errors', async () => {
    const unknown = await apiError(server.client.invoke('nope'));
    assert.equal(unknown.status, 404);
    assert.match(unknown.message, /function nope not found/);
    const badJson = await apiError(server.client.invoke('probe', '{"a":'));
    assert.equal(badJson.status, 400);
    assert.match(badJson.message, /not valid JSON/);
    const big = await postOversized(`${server.url}/v1/functions/probe/invoke`, 6 * 1024 * 1024 + 10);
    assert.equal(big.status, 413);
    assert.equal(big.code, 'PAYLOAD_TOO_LARGE');
    const badName = await apiError(deploy('Bad_Name', 'probe'));
    assert.equal(badName.status, 400);
    assert.equal(badName.code, 'INVALID_NAME');
    const badConfig = await apiError(deploy('okname', 'probe', { timeoutSeconds: 0 }));
    assert.equal(badConfig.code, 'INVALID_CONFIG');
    assert.match(badConfig.message, /timeoutSeconds/);
    const badEnv = await apiError(deploy('okname', 'probe', { env: { 'BAD-KEY': 'x' } }));
    assert.equal(badEnv.code, 'INVALID_CONFIG');
    const allowWithoutNetwork = await apiError(deploy('okname', 'probe', { allowNet: ['10.1.0.0/16'] }));
    assert.equal(allowWithoutNetwork.status, 400);
    assert.equal(allowWithoutNetwork.code, 'INVALID_CONFIG');
    assert.match(allowWithoutNetwork.message, /allowNet needs network: true/);
    const badCidr = await apiError(deploy('okname', 'probe', { network: true, allowNet: ['10.1.0.1/16'] }));
    assert.equal(badCidr.status, 400);
    assert.equal(badCidr.code, 'INVALID_CONFIG');
    const badZip = await apiError(
      server.client.json('PUT', '/v1/functions/okname', { code: Buffer.from('not a zip').toString('base64') }),
    );
    assert.equal(badZip.status, 400);
    const extra = await apiError(
      server.client.json('PUT', '/v1/functions/okname', { code: 'UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==', bogus: 1 }),
    );
    assert.equal(extra.status, 400);
    assert.equal((await apiError(server.client.getFunction('okname'))).status, 404, 'nothing was created');
    assert.equal((await apiError(server.client.json('GET', '/v1/nowhere'))).status, 404);
  });

  it('rejects a broken bundle at deploy and keeps the previous version serving', async () => {
    await deploy('guarded', 'probe');
    const syntax = await apiError(deploy('guarded', 'broken'));
    assert.equal(syntax.status, 400);
    assert.equal(syntax.code, 'INVALID_BUNDLE');
    assert.match(syntax.message, /SyntaxError|Unexpected/);
    const missing = await apiError(deploy('guarded', 'noexport'));
    assert.equal(missing.code, 'INVALID_BUNDLE');
    assert.match(missing.message, /handler/);
    assert.equal((await server.client.getFunction('guarded')).currentVersion, 1);
    assert.equal((await invoke<Probe>('guarded')).body.context.functionVersion, '1');
  });

  it('runs concurrent invocations one at a time per sandbox, within max instances, then 429s past the wait', async () => {
    await deploy('capped', 'probe', { maxInstances: 3 });
    const results = await Promise.all(
      // 4 rounds of 60 ms on 3 instances: well inside the server's 1 s queue wait, even on a loaded machine.
      Array.from({ length: 12 }, (_, i) => invoke<Probe>('capped', { sleepMs: 60, i })),
    );
    const byPid = new Map<number, Probe[]>();
    for (const { body } of results) byPid.set(body.pid, [...(byPid.get(body.pid) ?? []), body]);
    assert.ok(byPid.size <= 3, `at most 3 sandboxes, saw ${byPid.size}`);
    for (const runs of byPid.values()) {
      runs.sort((a, b) => a.begin - b.begin);
      for (let i = 1; i < runs.length; i++)
        assert.ok(runs[i]!.begin >= runs[i - 1]!.end, 'invocations overlapped in one sandbox');
    }

    await deploy('single', 'probe', { maxInstances: 1 });
    await invoke('single');
    const slow = invoke('single', { sleepMs: 2500 });
    await new Promise((r) => setTimeout(r, 200));
    const throttled = await apiError(server.client.invoke('single'));
    assert.equal(throttled.status, 429);
    assert.equal(throttled.code, 'TOO_MANY_REQUESTS');
    assert.ok(Number(throttled.headers.get('retry-after')) >= 1);
    await slow;
  });

  it('keeps min instances warm and reaps idle instances', async () => {
    const sandboxes = async () => (await server.client.listNodes()).nodes[0]!.sandboxes;
    const start = await sandboxes();
    await deploy('prewarmed', 'probe', { minInstances: 2, idleSeconds: 1 });
    assert.ok((await eventually(sandboxes, (n) => n >= start + 2)) >= start + 2, 'two instances started');
    const first = await invoke<Probe>('prewarmed');
    assert.equal(first.start, 'warm', 'a min instance was ready');
    await deploy('idler', 'probe', { idleSeconds: 1 });
    const before = await sandboxes();
    await invoke('idler');
    const reaped = await eventually(sandboxes, (n) => n <= before, 8000);
    assert.ok(reaped <= before, 'the idle instance was reaped');
    await new Promise((r) => setTimeout(r, 2500));
    const stillWarm = await invoke<Probe>('prewarmed');
    assert.equal(stillWarm.start, 'warm', 'min instances survive idle reaping');
  });

  it('deletes a function and its sandboxes', async () => {
    await deploy('doomed', 'probe');
    const { body } = await invoke<Probe>('doomed');
    await server.client.deleteFunction('doomed');
    assert.equal((await apiError(server.client.invoke('doomed'))).status, 404);
    const pids = await eventually(
      () => sandboxPids(server.dataDir),
      (p) => !p.includes(body.pid),
    );
    assert.ok(!pids.includes(body.pid));
    assert.equal((await apiError(server.client.deleteFunction('doomed'))).status, 404);
  });

  it('drains in-flight invocations on SIGTERM and leaves no sandbox behind', async () => {
    const inFlight = invoke<Probe>('probe', { sleepMs: 1000 });
    await new Promise((r) => setTimeout(r, 300));
    assert.ok((await sandboxPids(server.dataDir)).length > 0);
    const code = await server.stop('SIGTERM');
    const result = await inFlight;
    assert.equal(result.body.event && (result.body.event as { sleepMs: number }).sleepMs, 1000);
    assert.equal(code, 0);
    assert.deepEqual(await sandboxPids(server.dataDir), []);
  });
});

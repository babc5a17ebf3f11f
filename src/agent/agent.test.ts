// Real sandboxes: the compiled guest shim (`npm run build`) in child processes, real socket pairs, real files.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { zipSync } from 'fflate';
import { isPlatformError } from '../core/errors.js';
import { compileFunctionConfig, type FunctionConfigInput } from '../core/function-config.js';
import type { InvokeOutcome, SandboxSpec } from '../core/ports/agent-api.js';
import { blobKeys } from '../core/types.js';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { ProcessRuntime } from '../sandbox/process-runtime.js';
import { Agent, sandboxKind } from './agent.js';

const fixturesDir = fileURLToPath(new URL('../../test/fixtures/functions/', import.meta.url));
const logCapBytes = 64 * 1024;

/** The real filesystem blob store, whose puts can be made to fail (a blob store outage). */
class FlakyBlobStore extends FsBlobStore {
  failPuts = false;
  override put(key: string, data: Uint8Array | string): Promise<void> {
    if (this.failPuts) return Promise.reject(new Error('blob store is down'));
    return super.put(key, data);
  }
}

async function filesOf(
  dir: string,
  root = dir,
  out: Record<string, Uint8Array> = {},
): Promise<Record<string, Uint8Array>> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await filesOf(path, root, out);
    else out[relative(root, path).split(sep).join('/')] = await readFile(path);
  }
  return out;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Guest shims whose working directory is under `dir`: sandboxes of this test file still running. */
async function shimsUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8');
      if (!cmdline.includes('shim.js')) continue;
      if ((await readlink(`/proc/${entry}/cwd`)).startsWith(dir)) pids.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return pids;
}

/** A result's JSON text; "null" when there is none. */
function textOf(bytes: Uint8Array | undefined): string {
  return bytes === undefined ? 'null' : Buffer.from(bytes).toString('utf8');
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('Agent with the process runtime', () => {
  let root: string;
  let workDir: string;
  let blobs: FlakyBlobStore;
  let agent: Agent;
  const agents: Agent[] = [];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-agent-'));
    workDir = join(root, 'w');
    blobs = new FlakyBlobStore(join(root, 'blobs'));
    agent = new Agent({ nodeId: 'node-a', runtime: new ProcessRuntime(), blobStore: blobs, workDir, logCapBytes });
    agents.push(agent);
    process.env['SAVASSAN_TEST_HOST_SECRET'] = 'must-not-leak';
  });

  after(async () => {
    await Promise.all(agents.map((a) => a.close()));
    assert.deepEqual(await shimsUnder(root), [], 'no sandbox process may outlive the agents');
    await blobs.close();
    await rm(root, { recursive: true, force: true });
    delete process.env['SAVASSAN_TEST_HOST_SECRET'];
  });

  async function deploy(
    fixture: string,
    config: FunctionConfigInput = {},
    extraFiles: Record<string, string> = {},
  ): Promise<SandboxSpec> {
    const files = await filesOf(join(fixturesDir, fixture));
    for (const [name, text] of Object.entries(extraFiles)) files[name] = Buffer.from(text);
    const zip = zipSync(files);
    const sha = createHash('sha256').update(zip).digest('hex');
    await blobs.put(blobKeys.code(sha), zip);
    return {
      functionName: fixture,
      incarnation: 'i1',
      version: 1,
      codeSha256: sha,
      config: compileFunctionConfig(config),
    };
  }

  function invoke(instanceId: string, event: unknown, timeoutMs = 5000, on = agent): Promise<InvokeOutcome> {
    return on.invoke(instanceId, {
      invocationId: randomUUID(),
      eventJson: Buffer.from(JSON.stringify(event)),
      timeoutMs,
    });
  }

  async function logOf(outcome: InvokeOutcome): Promise<string> {
    assert.ok(outcome.logKey !== null, 'the outcome has a log key');
    await agent.flushLogs();

    const data = await blobs.get(outcome.logKey);
    assert.ok(data !== null, `log ${outcome.logKey} was stored`);
    return data.toString('utf8');
  }

  async function pidOf(instanceId: string, on = agent): Promise<number> {
    const info = (await on.listSandboxes()).find((sandbox) => sandbox.instanceId === instanceId);
    assert.ok(info?.pid != null, `sandbox ${instanceId} has a pid`);
    return info.pid;
  }

  function payload(outcome: InvokeOutcome): Record<string, unknown> {
    assert.equal(outcome.status, 'success', JSON.stringify(outcome.error));
    return JSON.parse(textOf(outcome.payloadJson)) as Record<string, unknown>;
  }

  it('runs an async ESM handler warm, with Lambda context, function env and a minimal host env', async () => {
    const spec = await deploy('echo', { env: { GREETING: 'hej' }, memoryMB: 128 });
    const ref = await agent.createSandbox(spec);
    assert.equal(ref.nodeId, 'node-a');
    assert.equal(ref.functionName, 'echo');
    assert.equal(ref.version, 1);
    assert.equal(ref.invocations, 0);
    assert.ok(ref.initMs > 0);
    assert.ok(ref.createdAt <= Date.now() && ref.idleSince === ref.createdAt);
    const [info] = (await agent.listSandboxes()).filter((s) => s.instanceId === ref.instanceId);
    assert.equal(info?.state, 'idle');

    const invocationId = randomUUID();
    const first = await agent.invoke(ref.instanceId, {
      invocationId,
      eventJson: Buffer.from('{"hello":"world","n":[1,2]}'),
      timeoutMs: 3000,
    });
    assert.equal(first.reusable, true);
    assert.ok(first.durationMs >= 0);
    assert.ok(first.peakMemoryBytes !== null && first.peakMemoryBytes > 10 * 1024 * 1024);
    const body = payload(first);
    assert.deepEqual(body['event'], { hello: 'world', n: [1, 2] });
    const context = body['context'] as Record<string, unknown>;
    assert.equal(context['awsRequestId'], invocationId);
    assert.equal(context['functionName'], 'echo');
    assert.equal(context['functionVersion'], '1');
    assert.equal(context['memoryLimitInMB'], '128');
    assert.equal(context['invokedFunctionArn'], 'arn:savassan:lambda:local:000000000000:function:echo:1');
    assert.equal(context['callbackWaitsForEmptyEventLoop'], true);
    const remaining = context['remaining'] as number;
    assert.ok(remaining > 2000 && remaining <= 3000, `remaining time ${remaining}`);
    const env = body['env'] as Record<string, unknown>;
    // The code is placed (hard-linked) into the sandbox's own task directory.
    const codeDir = join(workDir, 'sandboxes', ref.instanceId, 'task');
    assert.deepEqual(env, {
      GREETING: 'hej',
      AWS_LAMBDA_FUNCTION_NAME: 'echo',
      AWS_LAMBDA_FUNCTION_VERSION: '1',
      AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '128',
      LAMBDA_TASK_ROOT: codeDir,
      HOME: join(workDir, 'sandboxes', ref.instanceId, 'tmp'),
      TMPDIR: join(workDir, 'sandboxes', ref.instanceId, 'tmp'),
      TZ: 'UTC',
      NODE_ENV: 'production',
      SAVASSAN_CHANNEL_FD: null,
      hostLeak: null,
    });
    assert.equal(body['cwd'], codeDir);
    assert.equal(first.logKey, blobKeys.log('echo', new Date(), invocationId));
    const firstLog = await logOf(first);
    assert.equal(
      firstLog,
      "echo: module loaded\necho: invoked with { hello: 'world', n: [ 1, 2 ] }\necho: to stderr 42\necho: raw write\n",
    );

    const second = await invoke(ref.instanceId, { again: true });
    const secondBody = payload(second);
    assert.equal(secondBody['pid'], body['pid'], 'the same process serves warm invocations');
    assert.equal(secondBody['loadedAt'], body['loadedAt'], 'the module is loaded once');
    assert.equal(
      await logOf(second),
      'echo: invoked with { again: true }\necho: to stderr 42\necho: raw write\n',
      'each invocation gets only its own output',
    );
    const [after] = (await agent.listSandboxes()).filter((s) => s.instanceId === ref.instanceId);
    assert.equal(after?.invocations, 2);
    assert.equal(after?.state, 'idle');
    await agent.destroySandbox(ref.instanceId);
  });

  it('runs callback-style CommonJS handlers; the first completion wins', async () => {
    const ref = await agent.createSandbox(await deploy('callback', { handler: 'index.handler' }));
    assert.deepEqual(payload(await invoke(ref.instanceId, { n: 21 })), { via: 'callback', doubled: 42 });
    assert.deepEqual(payload(await invoke(ref.instanceId, { mode: 'succeed' })), { via: 'succeed' });
    const failed = await invoke(ref.instanceId, { fail: 'boom' });
    assert.equal(failed.status, 'error');
    assert.equal(failed.error?.name, 'Error');
    assert.equal(failed.error?.message, 'callback failure: boom');
    assert.equal(failed.reusable, true);
    assert.deepEqual(payload(await invoke(ref.instanceId, { n: 1 })), { via: 'callback', doubled: 2 });
    await agent.destroySandbox(ref.instanceId);
  });

  it('resolves .mjs handlers in subdirectories and loads dependencies from node_modules', async () => {
    const nested = await agent.createSandbox(await deploy('nested-mjs', { handler: 'src/app.main' }));
    assert.deepEqual(payload(await invoke(nested.instanceId, { value: 7 })), { nested: true, got: 7 });
    const deps = await agent.createSandbox(await deploy('with-deps'));
    assert.deepEqual(payload(await invoke(deps.instanceId, { text: 'ab', width: 5 })), { padded: '***ab' });
    await Promise.all([agent.destroySandbox(nested.instanceId), agent.destroySandbox(deps.instanceId)]);
  });

  it('loads CommonJS and ES modules in .js files alike, an ES module with top-level await once', async () => {
    const files = {
      'fn.cjs': 'module.exports = function () {};\nmodule.exports.handler = async () => ({ style: "function" });\n',
      'prim.cjs': 'module.exports = 42;\n',
      'esm/package.json': '{ "type": "module" }\n',
      'esm/tla.js':
        'globalThis.loads = (globalThis.loads ?? 0) + 1;\nconst answer = await Promise.resolve(42);\n' +
        'export const handler = async () => ({ answer, loads: globalThis.loads });\n',
      'esm/plain.js': 'export default { handler: async () => ({ via: "default" }) };\n',
      'bad.js': 'exports.handler = async () => {\n',
    };
    const loaded = async (handler: string) => {
      const ref = await agent.createSandbox(await deploy('missing-export', { handler }, files));
      const body = payload(await invoke(ref.instanceId, {}));
      await agent.destroySandbox(ref.instanceId);
      return body;
    };
    assert.deepEqual(await loaded('fn.handler'), { style: 'function' });
    assert.deepEqual(await loaded('esm/tla.handler'), { answer: 42, loads: 1 });
    assert.deepEqual(await loaded('esm/plain.handler'), { via: 'default' });
    const refused = [
      { handler: 'prim.handler', message: /prim\.cjs exports no function "handler"/ },
      { handler: 'bad.handler', message: /SyntaxError in bad\.js:\d+: Unexpected end of input/ },
    ];
    for (const { handler, message } of refused) {
      await assert.rejects(agent.createSandbox(await deploy('missing-export', { handler }, files)), (err: unknown) => {
        assert.ok(isPlatformError(err, 'FUNCTION_INIT_ERROR'), String(err));
        assert.match(err.message, message);
        return true;
      });
    }
  });

  it('reports handler errors with name, code and a trimmed stack, and keeps the sandbox', async () => {
    const ref = await agent.createSandbox(await deploy('throws'));
    const outcome = await invoke(ref.instanceId, { x: 1 });
    assert.equal(outcome.status, 'error');
    assert.equal(outcome.reusable, true);
    assert.equal(outcome.error?.name, 'ValidationError');
    assert.equal(outcome.error?.code, 'E_VALIDATION');
    assert.equal(outcome.error?.message, 'bad input: {"x":1}');
    const stack = outcome.error?.stack ?? '';
    assert.match(stack, /^ValidationError: bad input/);
    assert.match(stack, /index\.mjs/);
    assert.doesNotMatch(stack, /shim\.js|node:internal/);
    assert.ok(stack.split('\n').length <= 21);
    assert.equal(await logOf(outcome), 'throws: about to fail\n');
    const sync = await invoke(ref.instanceId, { sync: true });
    assert.equal(sync.error?.message, 'sync failure');
    assert.equal(sync.reusable, true);
    await agent.destroySandbox(ref.instanceId);
  });

  it('turns results that cannot be sent into errors, and undefined or functions into null', async () => {
    const ref = await agent.createSandbox(await deploy('bad-result'));
    for (const kind of ['bigint', 'circular', 'huge']) {
      const outcome = await invoke(ref.instanceId, { kind });
      assert.equal(outcome.status, 'error', kind);
      assert.equal(outcome.error?.name, 'Runtime.ResponseInvalid', kind);
      assert.equal(outcome.reusable, true);
    }
    const huge = await invoke(ref.instanceId, { kind: 'huge' });
    assert.match(huge.error?.message ?? '', /over the 6291456-byte limit/);
    for (const kind of ['function', 'undefined']) {
      const outcome = await invoke(ref.instanceId, { kind });
      assert.equal(outcome.status, 'success');
      assert.equal(textOf(outcome.payloadJson), 'null');
    }
    await agent.destroySandbox(ref.instanceId);
  });

  it('rejects creation with FUNCTION_INIT_ERROR for broken code, and cleans up', async () => {
    const before = (await agent.listSandboxes()).length;
    const cases: { fixture: string; handler?: string; type: string; message: RegExp }[] = [
      {
        fixture: 'syntax-error',
        type: 'Runtime.UserCodeSyntaxError',
        message: /SyntaxError in index\.mjs:\d+: Unexpected end of input/,
      },
      {
        fixture: 'missing-export',
        type: 'Runtime.HandlerNotFound',
        message: /handler "index\.handler" not found: index\.js exports no function "handler"/,
      },
      {
        fixture: 'missing-export',
        handler: 'index.notAFunction',
        type: 'Runtime.HandlerNotFound',
        message: /index\.js exports "notAFunction" as a number, not a function/,
      },
      {
        fixture: 'missing-export',
        handler: 'lib/nope.handler',
        type: 'Runtime.HandlerNotFound',
        message: /not found: no lib\/nope\.js, lib\/nope\.mjs or lib\/nope\.cjs in the function code/,
      },
    ];
    for (const { fixture, handler, type, message } of cases) {
      const spec = await deploy(fixture, handler === undefined ? {} : { handler });
      await assert.rejects(agent.createSandbox(spec), (err: unknown) => {
        assert.ok(isPlatformError(err, 'FUNCTION_INIT_ERROR'), String(err));
        assert.match(err.message, message);
        assert.equal(err.details['errorType'], type);
        return true;
      });
    }
    assert.equal((await agent.listSandboxes()).length, before);
    assert.deepEqual(await readdir(join(workDir, 'sandboxes')), []);
  });

  it('rejects NOT_FOUND for code missing from the blob store and INVALID_BUNDLE for a corrupt zip', async () => {
    const spec = await deploy('echo');
    const missing = { ...spec, codeSha256: 'a'.repeat(64) };
    await assert.rejects(agent.createSandbox(missing), (err: unknown) => isPlatformError(err, 'NOT_FOUND'));
    const corrupt = { ...spec, codeSha256: 'b'.repeat(64) };
    await blobs.put(blobKeys.code(corrupt.codeSha256), 'not a zip');
    await assert.rejects(agent.createSandbox(corrupt), (err: unknown) => isPlatformError(err, 'INVALID_BUNDLE'));
  });

  it('kills a sandbox that runs past its timeout', async () => {
    const ref = await agent.createSandbox(await deploy('sleeper'));
    const pid = await pidOf(ref.instanceId);
    const outcome = await invoke(ref.instanceId, { ms: 60_000 }, 300);
    assert.equal(outcome.status, 'timeout');
    assert.equal(outcome.reusable, false);
    assert.deepEqual(outcome.error, { name: 'TimeoutError', message: 'Task timed out after 0.30 seconds' });
    // Killed at its timeout, not before it (timers may fire a fraction of a millisecond early).
    assert.ok(outcome.durationMs >= 250 && outcome.durationMs < 10_000, `duration ${outcome.durationMs}`);
    assert.ok(outcome.peakMemoryBytes !== null && outcome.peakMemoryBytes > 0);
    assert.equal(isAlive(pid), false, 'the sandbox process is gone');
    const log = await logOf(outcome);
    assert.match(log, /^sleeper: going to sleep\n\[savassan\] Task timed out after 0\.30 seconds\n$/);
    assert.deepEqual(
      (await agent.listSandboxes()).filter((s) => s.instanceId === ref.instanceId),
      [],
    );
    await assert.rejects(invoke(ref.instanceId, {}), (err: unknown) => {
      assert.ok(isPlatformError(err, 'UNAVAILABLE'));
      assert.match(err.message, /is gone/);
      return true;
    });
  });

  it('reports process.exit during an invocation as a crash', async () => {
    const ref = await agent.createSandbox(await deploy('exit3'));
    const pid = await pidOf(ref.instanceId);
    const outcome = await invoke(ref.instanceId, {});
    assert.equal(outcome.status, 'crash');
    assert.equal(outcome.reusable, false);
    assert.equal(outcome.error?.message, 'process exited with code 3 during the invocation');
    assert.equal(isAlive(pid), false);
    assert.match(await logOf(outcome), /^exit3: exiting with code 3\n\[savassan\] process exited with code 3/);
  });

  it('reports a memory bomb as oom', async () => {
    const ref = await agent.createSandbox(await deploy('memory-bomb', { memoryMB: 64 }));
    const pid = await pidOf(ref.instanceId);
    const outcome = await invoke(ref.instanceId, {}, 30_000);
    assert.equal(outcome.status, 'oom', JSON.stringify(outcome.error));
    assert.equal(outcome.reusable, false);
    assert.equal(outcome.error?.message, 'out of memory: the function exceeded its memory limit of 64 MB');
    assert.equal(isAlive(pid), false);
    assert.match(
      await logOf(outcome),
      /^memory-bomb: allocating\n\[savassan\] out of memory: the function exceeded its memory limit of 64 MB\n\[savassan\] sandbox stderr:\nFATAL ERROR: [^\n]*heap out of memory\n$/,
    );
  });

  it('reports uncaught exceptions and unhandled rejections as errors and discards the sandbox', async () => {
    const spec = await deploy('uncaught');
    const thrown = await agent.createSandbox(spec);
    const thrownPid = await pidOf(thrown.instanceId);
    const outcome = await invoke(thrown.instanceId, { kind: 'throw' });
    assert.equal(outcome.status, 'error');
    assert.equal(outcome.reusable, false);
    assert.equal(outcome.error?.name, 'TypeError');
    assert.equal(outcome.error?.message, 'thrown from a timer');
    assert.equal(isAlive(thrownPid), false);

    const rejected = await agent.createSandbox(spec);
    const rejection = await invoke(rejected.instanceId, { kind: 'rejection' });
    assert.equal(rejection.status, 'error');
    assert.equal(rejection.reusable, false);
    assert.equal(rejection.error?.name, 'Runtime.UnhandledPromiseRejection');
    assert.equal(rejection.error?.message, 'RangeError: nobody handles this');
  });

  it('caps a log at logCapBytes with an explicit truncation marker', async () => {
    const ref = await agent.createSandbox(await deploy('chatty'));
    const lines = 2000;
    const outcome = await invoke(ref.instanceId, { lines, width: 100 });
    assert.equal(outcome.status, 'success');
    let total = 0;
    for (let i = 0; i < lines; i++) total += `${i} ${'x'.repeat(100)}\n`.length;
    const log = await logOf(outcome);
    const marker = /\[savassan\] log truncated: (\d+) bytes omitted\n$/.exec(log);
    assert.ok(marker !== null, 'the log ends with the truncation marker');
    // ASCII output: exactly logCapBytes are kept, cut mid-line, so the marker starts on a line of its own.
    assert.equal(log.slice(0, marker.index), `${log.slice(0, logCapBytes)}\n`);
    assert.equal(Number(marker[1]), total - logCapBytes);
    const small = await invoke(ref.instanceId, { lines: 2, width: 3 });
    assert.equal(await logOf(small), '0 xxx\n1 xxx\n');
    await agent.destroySandbox(ref.instanceId);
  });

  it('refuses a second invocation on a busy sandbox, as not delivered (the caller takes another instance)', async () => {
    const ref = await agent.createSandbox(await deploy('sleeper'));
    const running = invoke(ref.instanceId, { ms: 300 });
    await assert.rejects(
      invoke(ref.instanceId, { ms: 1 }),
      (err: unknown) =>
        isPlatformError(err, 'UNAVAILABLE') && err.details['notDelivered'] === true && err.details['busy'] === true,
    );
    assert.deepEqual(payload(await running), { slept: true });
    await agent.destroySandbox(ref.instanceId);
  });

  it('kills a sandbox whose code floods the channel with forged messages', async () => {
    const ref = await agent.createSandbox(await deploy('forger'));
    const outcome = await invoke(ref.instanceId, { forge: 'flood', count: 150 });
    assert.equal(outcome.status, 'crash');
    assert.match(outcome.error?.message ?? '', /broke the protocol.*more than 100 unexpected messages/);
    assert.equal(outcome.reusable, false);
    assert.equal(
      (await agent.listSandboxes()).some((s) => s.instanceId === ref.instanceId),
      false,
    );
  });

  it('treats a sandbox that sends a bad frame as broken: a crash that says why, the sandbox discarded', async () => {
    const spec = await deploy('forger');
    const attacks = {
      // Refused from its prefix alone, before any of its 7 MB is buffered.
      'big-result': /a frame of type 6 has a 7340032-byte body \(at most 6291456 allowed\)/,
      'huge-frame': /a frame of 4294967295 bytes exceeds the 16777216-byte limit/,
      garbage: /a frame of \d+ bytes exceeds the 16777216-byte limit/,
      'unknown-type': /unexpected frame type 99/,
      'bad-header': /invalid result message: "id" must be a non-empty string, got 5/,
      'header-over-frame': /header length \(11\) exceeds its frame length \(10\)/,
    };
    for (const [forge, why] of Object.entries(attacks)) {
      const ref = await agent.createSandbox(spec);
      const pid = await pidOf(ref.instanceId);
      const outcome = await invoke(ref.instanceId, { forge });
      assert.equal(outcome.status, 'crash', forge);
      assert.equal(outcome.error?.name, 'Runtime.ExitError', forge);
      assert.match(outcome.error?.message ?? '', /the sandbox broke the protocol during the invocation/, forge);
      assert.match(outcome.error?.message ?? '', why, forge);
      assert.equal(outcome.payloadJson, undefined, forge);
      assert.equal(outcome.reusable, false, forge);
      assert.equal(
        (await agent.listSandboxes()).some((s) => s.instanceId === ref.instanceId),
        false,
        `${forge}: the sandbox is gone`,
      );
      assert.equal(isAlive(pid), false, `${forge}: its process is gone`);
      await assert.rejects(invoke(ref.instanceId, {}), (err: unknown) => isPlatformError(err, 'UNAVAILABLE'));
    }
  });

  it('refuses an event over the size limit before sending it to the sandbox', async () => {
    const ref = await agent.createSandbox(await deploy('echo'));
    const request = { invocationId: randomUUID(), eventJson: Buffer.alloc(6 * 1024 * 1024 + 1, 0x20), timeoutMs: 3000 };
    await assert.rejects(agent.invoke(ref.instanceId, request), (err: unknown) =>
      isPlatformError(err, 'PAYLOAD_TOO_LARGE'),
    );
    assert.deepEqual(payload(await invoke(ref.instanceId, { after: true }))['event'], { after: true });
    await agent.destroySandbox(ref.instanceId);
  });

  it('marks an idle sandbox whose process died as gone', async () => {
    const ref = await agent.createSandbox(await deploy('echo'));
    const pid = await pidOf(ref.instanceId);
    process.kill(pid, 'SIGKILL');
    await eventually(
      async () => !(await agent.listSandboxes()).some((s) => s.instanceId === ref.instanceId),
      'the dead sandbox to be dropped',
    );
    await assert.rejects(invoke(ref.instanceId, {}), (err: unknown) => isPlatformError(err, 'UNAVAILABLE'));
    assert.equal(await exists(join(workDir, 'sandboxes', ref.instanceId)), false);
  });

  it('destroys idempotently, killing the process and removing its directory', async () => {
    const ref = await agent.createSandbox(await deploy('echo'));
    const pid = await pidOf(ref.instanceId);
    assert.equal(await exists(join(workDir, 'sandboxes', ref.instanceId)), true);
    await Promise.all([agent.destroySandbox(ref.instanceId), agent.destroySandbox(ref.instanceId)]);
    await agent.destroySandbox(ref.instanceId);
    await agent.destroySandbox('no-such-sandbox');
    assert.equal(isAlive(pid), false);
    assert.equal(await exists(join(workDir, 'sandboxes', ref.instanceId)), false);
    await assert.rejects(invoke(ref.instanceId, {}), (err: unknown) => isPlatformError(err, 'UNAVAILABLE'));
  });

  it('extracts a bundle once for concurrent creations', async () => {
    const spec = await deploy('echo', {}, { 'unique.txt': randomUUID() });
    const refs = await Promise.all([1, 2, 3].map(() => agent.createSandbox(spec)));
    assert.equal(new Set(refs.map((r) => r.instanceId)).size, 3);
    const codeEntries = await readdir(join(workDir, 'code'));
    assert.ok(codeEntries.includes(spec.codeSha256));
    assert.deepEqual(
      codeEntries.filter((name) => name.startsWith('.')),
      [],
      'no temporary extraction directories left',
    );
    const outcomes = await Promise.all(refs.map((r) => invoke(r.instanceId, {})));
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['success', 'success', 'success'],
    );
    await Promise.all(refs.map((r) => agent.destroySandbox(r.instanceId)));
  });

  it('ships logs off the invocation path: a failed upload does not fail the invocation', async () => {
    const ref = await agent.createSandbox(await deploy('echo'));
    blobs.failPuts = true;
    try {
      const outcome = await invoke(ref.instanceId, {});
      assert.equal(outcome.status, 'success');
      assert.ok(outcome.logKey !== null);
      await agent.flushLogs();
      assert.equal(await blobs.get(outcome.logKey), null, 'the upload failed and was only logged');
    } finally {
      blobs.failPuts = false;
    }
    const stored = await invoke(ref.instanceId, {});
    await agent.flushLogs();
    assert.ok(stored.logKey !== null && (await blobs.get(stored.logKey)) !== null);
    await agent.destroySandbox(ref.instanceId);
  });

  it('runs sandboxes under a workDir deeper than a Unix socket path may be (no socket file)', async () => {
    const deep = join(root, 'd'.repeat(60), 'e'.repeat(40));
    const deepAgent = new Agent({ nodeId: 'deep', runtime: new ProcessRuntime(), blobStore: blobs, workDir: deep });
    agents.push(deepAgent);
    const spec = await deploy('echo');
    const ref = await deepAgent.createSandbox(spec);
    assert.equal(await exists(join(deep, 'sandboxes', ref.instanceId, 'sock', 'guest.sock')), false);
    const body = payload(await invoke(ref.instanceId, { deep: true }, 3000, deepAgent));
    assert.equal(body['cwd'], join(deep, 'sandboxes', ref.instanceId, 'task'));
    await deepAgent.close();
  });

  it('removes sandbox directories a dead Agent left and keeps its work dir private', async () => {
    const restartDir = join(root, 'restart');
    const leftover = join(restartDir, 'sandboxes', randomUUID());
    await mkdir(join(leftover, 'task'), { recursive: true, mode: 0o755 });
    await writeFile(join(leftover, 'task', 'index.js'), 'the previous function');
    await chmod(restartDir, 0o755);
    const restarted = new Agent({
      nodeId: 'restarted',
      runtime: new ProcessRuntime(),
      blobStore: blobs,
      workDir: restartDir,
    });
    agents.push(restarted);
    const ref = await restarted.createSandbox(await deploy('echo'));
    assert.deepEqual(await readdir(join(restartDir, 'sandboxes')), [ref.instanceId]);
    assert.equal((await stat(restartDir)).mode & 0o777, 0o700);
    await restarted.close();
  });

  it('close() destroys every sandbox, is idempotent, and refuses new work', async () => {
    const closing = new Agent({
      nodeId: 'closing',
      runtime: new ProcessRuntime(),
      blobStore: blobs,
      workDir: join(root, 'c'),
    });
    agents.push(closing);
    const spec = await deploy('echo');
    const refs = await Promise.all([closing.createSandbox(spec), closing.createSandbox(spec)]);
    const pids = await Promise.all(refs.map((r) => pidOf(r.instanceId, closing)));
    const starting = closing.createSandbox(spec);
    await Promise.all([closing.close(), closing.close()]);
    await assert.rejects(starting, (err: unknown) => isPlatformError(err, 'UNAVAILABLE'));
    assert.deepEqual(
      pids.filter((pid) => isAlive(pid)),
      [],
    );
    assert.deepEqual(await closing.listSandboxes(), []);
    await closing.close();
    await assert.rejects(closing.createSandbox(spec), (err: unknown) => isPlatformError(err, 'UNAVAILABLE'));
    await assert.rejects(invoke(refs[0]?.instanceId ?? '', {}, 1000, closing), (err: unknown) =>
      isPlatformError(err, 'UNAVAILABLE'),
    );
    assert.deepEqual(await shimsUnder(join(root, 'c')), []);
  });

  it('refuses sandboxes beyond its capacity with TOO_MANY_REQUESTS, and takes them again once one is gone', async () => {
    const capped = new Agent({
      nodeId: 'capped',
      runtime: new ProcessRuntime(),
      blobStore: blobs,
      workDir: join(root, 'cap'),
      capacity: 2,
    });
    agents.push(capped);
    const spec = await deploy('echo');
    const [first, second] = await Promise.all([capped.createSandbox(spec), capped.createSandbox(spec)]);
    await assert.rejects(capped.createSandbox(spec), (err: unknown) => {
      assert.ok(isPlatformError(err, 'TOO_MANY_REQUESTS'));
      assert.match(err.message, /capped is at its capacity of 2 sandboxes/);
      return true;
    });
    await capped.destroySandbox(first.instanceId);
    const third = await capped.createSandbox(spec);
    assert.equal((await capped.listSandboxes()).length, 2);
    await Promise.all([second, third].map((ref) => capped.destroySandbox(ref.instanceId)));
    await capped.close();
  });

  it('refuses sandboxes past its memory budget, counting stem cells, which it discards to make room', async () => {
    const spec = await deploy('echo', { memoryMB: 128 });
    const budgeted = new Agent({
      nodeId: 'budgeted',
      runtime: new ProcessRuntime(),
      blobStore: blobs,
      workDir: join(root, 'budget'),
      budget: { memoryMB: 512, pids: 100_000 },
      stemCells: { baseKinds: ['nodejs20/256MB/nonet'], maxPerKind: 2, maxTotal: 2 },
    });
    agents.push(budgeted);
    await eventually(() => Promise.resolve(budgeted.stemCellStats().idle === 2), 'two stem cells');
    assert.equal(budgeted.budgetUsage()?.usedMemoryMB, 512, 'the stem cells hold the whole budget');
    // Each creation may discard idle stem cells, never another function's sandbox: at most 4 fit.
    const created: string[] = [];
    let refusal: unknown = null;
    while (refusal === null && created.length < 6) {
      try {
        created.push((await budgeted.createSandbox(spec)).instanceId);
      } catch (err) {
        refusal = err;
      }
      assert.ok((budgeted.budgetUsage()?.usedMemoryMB ?? 0) <= 512);
    }
    assert.ok(created.length >= 1 && created.length <= 4, `${created.length} sandboxes`);
    assert.ok(isPlatformError(refusal, 'TOO_MANY_REQUESTS'), String(refusal));
    assert.match(refusal.message, /budgeted is full: its memory budget of 512 MB \(--node-memory\)/);
    await budgeted.close();
    assert.equal(budgeted.budgetUsage()?.usedMemoryMB, 0, 'every charge is released');
  });

  it('starts a function whose env holds start-up variables with them and its code in place, not from a stem cell', async () => {
    const env = {
      NODE_OPTIONS: '--stack-trace-limit=7',
      NODE_PATH: 'lib',
      NODE_EXTRA_CA_CERTS: 'certs/ca.pem',
      TZ: 'Asia/Seoul',
    };
    const spec = await deploy('startup-env', { env, memoryMB: 128 });
    const plain = await deploy('startup-env', { env: { TZ: 'Asia/Seoul' }, memoryMB: 128 });
    const kind = sandboxKind(spec.config);
    assert.equal(kind, sandboxKind(plain.config));
    const stemAgent = new Agent({
      nodeId: 'startup',
      runtime: new ProcessRuntime(),
      blobStore: blobs,
      workDir: join(root, 'startup'),
      stemCells: { baseKinds: [kind], maxPerKind: 1, maxTotal: 1 },
    });
    agents.push(stemAgent);
    await eventually(() => Promise.resolve(stemAgent.stemCellStats().idle === 1), 'the stem cell');

    const ref = await stemAgent.createSandbox(spec);
    assert.equal(stemAgent.stemCellStats().idle, 1, 'the stem cell is left for functions it suits');
    assert.deepEqual(payload(await invoke(ref.instanceId, {}, 5000, stemAgent)), {
      stackTraceLimit: 7,
      nodePath: 'found through NODE_PATH',
      tls: 'trusted',
      epoch: 'Thu Jan 01 1970 09:00:00 GMT+0900 (Korean Standard Time)',
    });
    // Without them, the same code in a stem cell: TZ applies when set, the start-up variables could not have.
    const other = await stemAgent.createSandbox(plain);
    const body = payload(await invoke(other.instanceId, {}, 5000, stemAgent));
    assert.equal(body['nodePath'], 'MODULE_NOT_FOUND');
    assert.equal(body['tls'], 'DEPTH_ZERO_SELF_SIGNED_CERT');
    assert.equal(body['epoch'], 'Thu Jan 01 1970 09:00:00 GMT+0900 (Korean Standard Time)');

    const preload = await deploy('startup-env', { env: { NODE_OPTIONS: '--require ./missing.js' } });
    await assert.rejects(stemAgent.createSandbox(preload), (err: unknown) => {
      assert.ok(isPlatformError(err, 'FUNCTION_INIT_ERROR'), String(err));
      assert.match(
        err.message,
        /function init failed: the process exited with code 1 as Node started with the function's NODE_OPTIONS; stderr: .*Cannot find module '\.\/missing\.js'/s,
      );
      return true;
    });
    await stemAgent.close();
  });

  it('specialises stem cells: a cold start takes a pre-started sandbox of its kind, refilled once it answered', async () => {
    const spec = await deploy('echo', { env: { GREETING: 'stem' }, memoryMB: 128 });
    const kind = sandboxKind(spec.config);
    const stemAgent = new Agent({
      nodeId: 'stem',
      runtime: new ProcessRuntime(),
      blobStore: blobs,
      workDir: join(root, 's'),
      stemCells: { baseKinds: [kind], maxPerKind: 1, maxTotal: 2, replaceAfterMs: 60_000 },
    });
    agents.push(stemAgent);
    await eventually(() => Promise.resolve(stemAgent.stemCellStats().idle === 1), 'the base stem cell');
    const [cellPid] = await shimsUnder(join(root, 's'));
    assert.ok(cellPid !== undefined);
    assert.deepEqual(await stemAgent.listSandboxes(), [], "a stem cell is nobody's sandbox");

    const ref = await stemAgent.createSandbox(spec);
    assert.equal(await pidOf(ref.instanceId, stemAgent), cellPid, 'the stem cell became the sandbox');
    assert.deepEqual(
      stemAgent.stemCellStats().byKind[kind],
      { idle: 0, starting: 0, target: 1 },
      'no replacement starts before the cold start has answered',
    );
    const body = payload(await invoke(ref.instanceId, { hi: 1 }, 3000, stemAgent));
    assert.equal((body['env'] as Record<string, unknown>)['GREETING'], 'stem', 'it runs the function it was given');
    await eventually(() => Promise.resolve(stemAgent.stemCellStats().idle === 1), 'the refill');
    // A cell whose function fails to load (a deploy's trial, say) leaves the invocations that follow to the kind's
    // other cells, and is replaced after replaceAfterMs.
    const broken = await deploy('syntax-error', { memoryMB: 128 });
    assert.equal(sandboxKind(broken.config), kind);
    await assert.rejects(stemAgent.createSandbox(broken));
    assert.deepEqual(stemAgent.stemCellStats().byKind[kind], { idle: 0, starting: 0, target: 1 });

    // Another kind misses, starts cold, and its kind gets a cell of its own within the total.
    const other = await deploy('echo', { memoryMB: 512 });
    const otherRef = await stemAgent.createSandbox(other);
    assert.notEqual(await pidOf(otherRef.instanceId, stemAgent), cellPid);
    await eventually(
      () => Promise.resolve(stemAgent.stemCellStats().byKind[sandboxKind(other.config)]?.idle === 1),
      'a cell of the second kind',
    );
    assert.ok(stemAgent.stemCellStats().idle <= 2);
    const memory = await stemAgent.stemCellMemory();
    assert.ok(
      memory.every((bytes) => bytes !== null && bytes > 1024 * 1024),
      `stem cell memory ${memory.join()}`,
    );

    await stemAgent.close();
    assert.deepEqual(await shimsUnder(join(root, 's')), [], 'close() also stops the stem cells');

    // A cell taken by a sandbox nobody invokes (min instances, a failed trial) is replaced after replaceAfterMs.
    const unhurried = new Agent({
      nodeId: 'unhurried',
      runtime: new ProcessRuntime(),
      blobStore: blobs,
      workDir: join(root, 'u'),
      stemCells: { baseKinds: [kind], maxPerKind: 1, maxTotal: 1, replaceAfterMs: 100 },
    });
    agents.push(unhurried);
    await eventually(() => Promise.resolve(unhurried.stemCellStats().idle === 1), 'the base stem cell');
    await assert.rejects(unhurried.createSandbox(broken));
    await eventually(() => Promise.resolve(unhurried.stemCellStats().idle === 1), 'the replacement, unasked');
    await unhurried.close();
  });
});

// The real guest shim (compiled: `npm run build`) in a real sandbox process, driven by hand over its channel: what
// it does with frames no Agent would send.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchSpecIn } from '../helpers/launch-spec.js';
import type { SandboxLaunchSpec, SandboxProcess } from '../../src/core/ports/sandbox-runtime.js';
import { ProcessRuntime } from '../../src/sandbox/process-runtime.js';
import {
  FRAME_PREFIX_BYTES,
  FrameDecoder,
  encodeMessage,
  frameTypes,
  guestFrameLimits,
  parseGuestMessage,
  type GuestMessage,
} from '../../src/sandbox/protocol.js';

/** The exit status of a shim that refuses what its Agent sent (EX_SOFTWARE). */
const protocolExitCode = 70;

function prefix(frameBytes: number, headerBytes: number, type: number): Buffer {
  const bytes = Buffer.alloc(FRAME_PREFIX_BYTES);
  bytes.writeUInt32BE(frameBytes, 0);
  bytes.writeUInt32BE(headerBytes, 4);
  bytes[8] = type;
  return bytes;
}

function frame(type: number, header: string): Buffer {
  return Buffer.concat([prefix(Buffer.byteLength(header), Buffer.byteLength(header), type), Buffer.from(header)]);
}

describe('guest shim', () => {
  let root: string;
  let spec: SandboxLaunchSpec;
  const runtime = new ProcessRuntime();

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-shim-'));
    await mkdir(join(root, 'code'));
    await mkdir(join(root, 'scratch'));
    await writeFile(join(root, 'code', 'index.js'), 'exports.handler = async (event) => event;\n');
    await writeFile(
      join(root, 'code', 'trace.js'),
      'exports.handler = async (event, context) => ({ traceparent: context.traceparent ?? null, ' +
        "xRay: context.xRayTraceId ?? null, fields: ['traceparent', 'xRayTraceId'].filter((k) => k in context), " +
        'env: process.env.TRACEPARENT ?? null, envXRay: process.env._X_AMZN_TRACE_ID ?? null });\n',
    );
    await writeFile(
      join(root, 'code', 'loud.js'),
      "exports.handler = async () => { throw new Error('x'.repeat(200000)); };\n",
    );
    spec = launchSpecIn(root);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A launched shim, with the messages it sent collected, once it said hello. */
  async function launch(): Promise<{
    proc: SandboxProcess;
    messages: GuestMessage[];
    next: () => Promise<GuestMessage>;
  }> {
    const proc = await runtime.launch(spec);
    const decoder = new FrameDecoder(guestFrameLimits);
    const messages: GuestMessage[] = [];
    const waiters: (() => void)[] = [];
    proc.channel.on('data', (chunk: Buffer) => {
      for (const frame of decoder.push(chunk)) messages.push(parseGuestMessage(frame));
      for (const wake of waiters.splice(0)) wake();
    });
    let read = 0;
    const next = async (): Promise<GuestMessage> => {
      while (messages.length <= read) await new Promise<void>((resolve) => waiters.push(resolve));
      return messages[read++]!;
    };
    assert.equal((await next()).type, 'hello');
    return { proc, messages, next };
  }

  /** Sends `init` for the handler of `file` in the code dir and waits for `init-ok`. */
  async function initialise(proc: SandboxProcess, next: () => Promise<GuestMessage>, file: string): Promise<void> {
    const init = encodeMessage({
      type: 'init',
      id: 'r1',
      handler: `${file}.handler`,
      codeDir: spec.taskDir,
      env: {},
      functionName: file,
      functionVersion: 1,
      memoryMB: 64,
      timeoutMs: 3000,
      offline: false,
    });
    for (const part of init) proc.channel.write(part);
    assert.equal((await next()).type, 'init-ok');
  }

  const attacks: Record<string, { bytes: () => Buffer; why: RegExp }> = {
    garbage: {
      bytes: () => Buffer.from('{"type":"invoke","id":"x","eventJson":"{}"}\n'),
      why: /exceeds the 16777216-byte limit/,
    },
    'an event over the limit (its prefix alone)': {
      bytes: () => prefix(7 * 1024 * 1024 + 10, 10, frameTypes.invoke),
      why: /a frame of type 5 has a 7340032-byte body \(at most 6291456 allowed\)/,
    },
    'a guest message type': { bytes: () => frame(frameTypes.result, '{"id":"x","maxRssBytes":0}'), why: /type 6/ },
    'a header longer than its frame': { bytes: () => prefix(4, 5, frameTypes.invoke), why: /header length \(5\)/ },
    'a header that is not JSON': { bytes: () => frame(frameTypes.invoke, '{"id":'), why: /header not JSON/ },
    'a bad header field': {
      bytes: () => frame(frameTypes.invoke, '{"id":"x","invocationId":"i","deadline":"soon"}'),
      why: /invalid invoke message: "deadline" must be a finite number/,
    },
  };

  for (const [name, attack] of Object.entries(attacks)) {
    it(`exits when the agent sends ${name}`, async () => {
      const { proc } = await launch();
      proc.channel.write(attack.bytes());
      const exit = await proc.exited;
      assert.equal(exit.code, protocolExitCode);
      assert.match(exit.stderrTail, /protocol error from the agent, exiting: /);
      assert.match(exit.stderrTail, attack.why);
    });
  }

  it('exits when the agent hangs up inside a frame', async () => {
    const { proc } = await launch();
    proc.channel.end(prefix(100, 10, frameTypes.invoke));
    const exit = await proc.exited;
    assert.equal(exit.code, protocolExitCode);
    assert.match(exit.stderrTail, /the stream ended inside a frame/);
  });

  it('serves an event written a byte at a time, and answers with its bytes untouched', async () => {
    const { proc, next } = await launch();
    await initialise(proc, next, 'index');
    const event = Buffer.from('{"text":"héllo ✓ 🎉","n":[1,2.5]}');
    const invoke = Buffer.concat(
      encodeMessage({ type: 'invoke', id: 'r2', invocationId: 'i', event, deadline: Date.now() + 3000 }),
    );
    for (let at = 0; at < invoke.length; at++) proc.channel.write(invoke.subarray(at, at + 1));
    const result = await next();
    assert.equal(result.type, 'result');
    assert.equal(
      result.type === 'result' && Buffer.from(result.payload).toString(),
      '{"text":"héllo ✓ 🎉","n":[1,2.5]}',
    );
    proc.channel.end();
    assert.equal((await proc.exited).code, 0);
  });

  it('gives each invocation its own trace context, and none to one without a traceparent', async () => {
    const { proc, next } = await launch();
    await initialise(proc, next, 'trace');
    const invoke = async (id: string, traceparent?: string): Promise<unknown> => {
      const message = {
        type: 'invoke' as const,
        id,
        invocationId: id,
        event: Buffer.from('{}'),
        deadline: Date.now() + 3000,
      };
      for (const part of encodeMessage(traceparent === undefined ? message : { ...message, traceparent }))
        proc.channel.write(part);
      const answer = await next();
      assert.equal(answer.type, 'result');
      return answer.type === 'result' ? JSON.parse(Buffer.from(answer.payload).toString()) : null;
    };
    const traceparent = '00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01';
    const xRay = 'Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1';
    const traced = { traceparent, xRay, fields: ['traceparent', 'xRayTraceId'], env: traceparent, envXRay: xRay };
    const none = { traceparent: null, xRay: null, fields: [], env: null, envXRay: null };
    assert.deepEqual(await invoke('r2', traceparent), traced);
    // The variables of the previous invocation do not leak into one that has no trace context.
    assert.deepEqual(await invoke('r3'), none);
    // Nor does a value that is not a valid traceparent reach the handler.
    assert.deepEqual(await invoke('r4', 'not-a-traceparent'), none);
    assert.deepEqual(await invoke('r5', traceparent), traced);
    proc.channel.end();
    assert.equal((await proc.exited).code, 0);
  });

  it('clips an error message far over its frame header limit instead of breaking the protocol', async () => {
    const { proc, next } = await launch();
    await initialise(proc, next, 'loud');
    const invoke = encodeMessage({
      type: 'invoke',
      id: 'r2',
      invocationId: 'i',
      event: Buffer.from('{}'),
      deadline: Date.now() + 3000,
    });
    for (const part of invoke) proc.channel.write(part);
    const answer = await next();
    assert.equal(answer.type, 'error');
    if (answer.type !== 'error') return;
    assert.equal(answer.fatal, false);
    assert.ok(answer.error.message.startsWith('x'.repeat(1000)));
    assert.match(answer.error.message, /\.\.\. \(134464 more characters\)$/);
    proc.channel.end();
    assert.equal((await proc.exited).code, 0);
  });
});

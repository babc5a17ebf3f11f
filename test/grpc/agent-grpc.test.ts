// The Agent over gRPC, end to end: a real Agent with real sandboxes (the process runtime and the compiled guest shim,
// `npm run build`), its gRPC server on loopback TCP and on a Unix socket, and the Gateway's client.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { zipSync } from 'fflate';
import { isPlatformError, type ErrorCode, type PlatformError } from '../../src/core/errors.js';
import { compileFunctionConfig, type FunctionConfigInput } from '../../src/core/function-config.js';
import type { SandboxSpec } from '../../src/core/ports/agent-api.js';
import type { NodeInfo, RoutingTable } from '../../src/core/ports/cluster.js';
import { blobKeys } from '../../src/core/types.js';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { Agent } from '../../src/agent/agent.js';
import { serveAgent } from '../../src/agent/grpc-server.js';
import {
  AgentClient,
  AgentService,
  InvokeStreamRequest,
  InvokeStreamResponse,
  InvokeStatus,
  type InvokeOutcome as ProtoInvokeOutcome,
  type ProveRequest,
  type StreamLogsResponse,
} from '../../src/gen/savassan/agent/v1/agent.js';
import { RoutingClient } from '../../src/gen/savassan/gateway/v1/routing.js';
import { GrpcAgentClient, type StreamedLogLine } from '../../src/gateway/grpc-agent-client.js';
import { pushRoutingTable, serveRouting, shutdownGateway } from '../../src/gateway/grpc-routing.js';
import { agentServiceDefinition } from '../../src/grpc/agent-codec.js';
import { bearerMetadata, serveGrpc, type GrpcServerHandle } from '../../src/grpc/grpc-transport.js';
import { ProofSigner } from '../../src/grpc/peer-proof.js';
import { silentLogger } from '../../src/core/logger.js';
import { ProcessRuntime } from '../../src/sandbox/process-runtime.js';
import { startTcpRelay } from '../kit/tcp-relay.js';

const fixturesDir = fileURLToPath(new URL('../fixtures/functions/', import.meta.url));
const agentProcessScript = fileURLToPath(new URL('../helpers/agent-process.ts', import.meta.url));
const token = 'cluster-secret-token';

/** A fixture function as the zip a deploy stores. */
async function zipFixture(name: string): Promise<Uint8Array> {
  const dir = join(fixturesDir, name);
  const files: Record<string, Uint8Array> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    const path = join(entry.parentPath, entry.name);
    if (entry.isFile()) files[relative(dir, path).split(sep).join('/')] = await readFile(path);
  }
  return zipSync(files);
}

function isAlive(pid: number): boolean {
  try {
    return process.kill(pid, 0);
  } catch {
    return false;
  }
}

function rejectsWith(code: ErrorCode, check?: (err: PlatformError) => void): (err: unknown) => boolean {
  return (err) => {
    assert.ok(isPlatformError(err, code), `expected ${code}, got ${String(err)}`);
    check?.(err);
    return true;
  };
}

/** The JSON a successful outcome carries. */
function payloadOf(outcome: { status: string; payloadJson?: Uint8Array | undefined }): unknown {
  assert.equal(outcome.status, 'success');
  return JSON.parse(new TextDecoder().decode(outcome.payloadJson));
}

/** The outcome a raw reply carries, as the client converts it. */
function agentOutcome(reply: InvokeStreamResponse | undefined): {
  status: string;
  payloadJson?: Uint8Array | undefined;
} {
  const outcome: ProtoInvokeOutcome | undefined = reply?.outcome;
  assert.ok(outcome, `expected an outcome, got ${JSON.stringify(reply)}`);
  return {
    status: outcome.status === InvokeStatus.INVOKE_STATUS_SUCCESS ? 'success' : 'other',
    payloadJson: outcome.payloadJson,
  };
}

/** A raw InvokeStream that sends and receives bytes as they are, to play a peer that sends anything. */
function rawInvokeStream(address: string, metadata: Metadata) {
  const client = new Client(address, credentials.createInsecure());
  const pass = (bytes: Buffer): Buffer => bytes;
  const call = client.makeBidiStreamRequest(AgentService.invokeStream.path, pass, pass, metadata);
  const replies: InvokeStreamResponse[] = [];
  const waiters: (() => void)[] = [];
  call.on('data', (bytes: Buffer) => {
    replies.push(InvokeStreamResponse.decode(bytes));
    for (const wake of waiters.splice(0)) wake();
  });
  const failed = new Promise<ServiceError>((resolve) => call.on('error', resolve));
  return {
    call,
    failed,
    send: (message: InvokeStreamRequest | Buffer) =>
      call.write(Buffer.isBuffer(message) ? message : Buffer.from(InvokeStreamRequest.encode(message).finish())),
    /** Resolves once `count` replies came. */
    async replies(count: number): Promise<InvokeStreamResponse[]> {
      while (replies.length < count) await new Promise<void>((resolve) => waiters.push(resolve));
      return replies;
    },
    close(): void {
      call.on('error', () => {});
      call.cancel();
      client.close();
    },
  };
}

/** An Agent in a process of its own (test/helpers/agent-process.ts). */
async function startAgentProcess(
  address: string,
  root: string,
): Promise<{ address: string; child: ChildProcess; kill(): Promise<void> }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', agentProcessScript, address, join(root, 'blobs'), join(root, `w-${randomUUID()}`), token],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  const bound = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const match = /serving (\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`the agent process exited (${code}): ${out}`)));
  });
  const exited = once(child, 'exit');
  return {
    address: bound,
    child,
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}

describe('Agent over gRPC', () => {
  let root: string;
  let blobs: FsBlobStore;
  let agent: Agent;
  let tcp: GrpcServerHandle;
  let unix: GrpcServerHandle;
  let tcpClient: GrpcAgentClient;
  let unixClient: GrpcAgentClient;
  const clients: GrpcAgentClient[] = [];
  const servers: GrpcServerHandle[] = [];
  const pids = new Set<number>();
  const nodeInfo: NodeInfo = {
    nodeId: 'node-a',
    agentAddress: '',
    capacity: 8,
    sandboxes: 0,
    sandboxRuntime: 'process',
    isolating: false,
    codeCached: ['a'.repeat(64)],
    startedAt: 1_700_000_000_123,
  };

  function client(address: string, options: { token?: string; nodeId?: string } = {}): GrpcAgentClient {
    const made = new GrpcAgentClient({ nodeId: options.nodeId ?? 'node-a', address, token: options.token ?? token });
    clients.push(made);
    return made;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-grpc-'));
    blobs = new FsBlobStore(join(root, 'blobs'));
    agent = new Agent({ nodeId: 'node-a', runtime: new ProcessRuntime(), blobStore: blobs, workDir: join(root, 'w') });
    const served = { address: '', token, nodeInfo: () => Promise.resolve(nodeInfo), graceMs: 1000 };
    tcp = await serveAgent(agent, { ...served, address: '127.0.0.1:0' });
    unix = await serveAgent(agent, { ...served, address: `unix:${join(root, 'agent.sock')}` });
    servers.push(tcp, unix);
    nodeInfo.agentAddress = tcp.address;
    tcpClient = client(tcp.address);
    unixClient = client(unix.address);
  });

  after(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(servers.map((s) => s.close()));
    await agent.close();
    for (const pid of pids) assert.ok(!isAlive(pid), `sandbox process ${pid} outlived the agent`);
    await blobs.close();
    await rm(root, { recursive: true, force: true });
  });

  async function deploy(fixture: string, config: FunctionConfigInput = {}): Promise<SandboxSpec> {
    const zip = await zipFixture(fixture);
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

  it('binds a TCP port and a Unix socket', () => {
    assert.ok(tcp.port > 0);
    assert.equal(tcp.address, `127.0.0.1:${tcp.port}`);
    assert.equal(unix.port, 0);
    assert.equal(unix.address, `unix:${join(root, 'agent.sock')}`);
  });

  for (const transport of ['tcp', 'unix'] as const) {
    it(`creates, invokes, lists and destroys sandboxes over ${transport}`, async () => {
      const remote = transport === 'tcp' ? tcpClient : unixClient;
      const echo = await remote.createSandbox(await deploy('echo', { env: { GREETING: 'hej' } }));
      assert.equal(echo.nodeId, 'node-a');
      assert.equal(echo.functionName, 'echo');
      assert.equal(echo.incarnation, 'i1');
      assert.equal(echo.version, 1);
      assert.equal(echo.invocations, 0);
      assert.ok(echo.initMs > 0 && echo.createdAt > 0 && echo.idleSince === echo.createdAt);

      const invocationId = randomUUID();
      const ok = await remote.invoke(echo.instanceId, {
        invocationId,
        eventJson: Buffer.from('{"n":[1,2],"s":"é"}'),
        timeoutMs: 3000,
      });
      assert.equal(ok.status, 'success');
      assert.equal(ok.reusable, true);
      assert.equal(ok.error, undefined);
      assert.ok(ok.peakMemoryBytes !== null && ok.peakMemoryBytes > 1024 * 1024);
      assert.equal(ok.logKey, blobKeys.log('echo', new Date(), invocationId));
      const body = JSON.parse(new TextDecoder().decode(ok.payloadJson)) as {
        event: unknown;
        context: { awsRequestId: string };
      };
      assert.deepEqual(body.event, { n: [1, 2], s: 'é' });
      assert.equal(body.context.awsRequestId, invocationId);

      const throws = await remote.createSandbox(await deploy('throws'));
      const failed = await remote.invoke(throws.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{"x":1}'),
        timeoutMs: 3000,
      });
      assert.equal(failed.status, 'error');
      assert.equal(failed.reusable, true);
      assert.equal(failed.payloadJson, undefined);
      assert.equal(failed.error?.name, 'ValidationError');
      assert.equal(failed.error?.code, 'E_VALIDATION');
      assert.equal(failed.error?.message, 'bad input: {"x":1}');
      assert.match(failed.error?.stack ?? '', /^ValidationError: bad input/);

      const sleeper = await remote.createSandbox(await deploy('sleeper'));
      const listed = await remote.listSandboxes();
      for (const ref of [echo, throws, sleeper]) {
        const info = listed.find((s) => s.instanceId === ref.instanceId);
        assert.ok(info, `${ref.functionName} is listed`);
        assert.equal(info.functionName, ref.functionName);
        assert.equal(info.incarnation, 'i1');
        assert.equal(info.state, 'idle');
        assert.ok(info.pid !== null && info.createdAt > 0);
        pids.add(info.pid);
      }
      assert.equal(listed.find((s) => s.instanceId === echo.instanceId)?.invocations, 1);

      const late = await remote.invoke(sleeper.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{"ms":60000}'),
        timeoutMs: 300,
      });
      assert.equal(late.status, 'timeout');
      assert.equal(late.reusable, false);
      assert.equal(late.error?.name, 'TimeoutError');
      assert.match(late.error?.message ?? '', /Task timed out after 0\.30 seconds/);

      await remote.destroySandbox(echo.instanceId);
      await remote.destroySandbox(throws.instanceId);
      await remote.destroySandbox(throws.instanceId);
      const left = (await remote.listSandboxes()).map((s) => s.instanceId);
      for (const ref of [echo, throws, sleeper]) assert.ok(!left.includes(ref.instanceId), ref.functionName);
    });
  }

  it('gives a sandbox its secret values as environment variables beside the plain ones', async () => {
    const spec = await deploy('env', { env: { PLAIN: 'visible' }, secrets: { TOKEN: 'API_TOKEN' } });
    const sandbox = await tcpClient.createSandbox({ ...spec, secretEnv: { TOKEN: 'the-secret-value' } });
    const outcome = await tcpClient.invoke(sandbox.instanceId, {
      invocationId: randomUUID(),
      eventJson: Buffer.from(JSON.stringify({ names: ['PLAIN', 'TOKEN', 'API_TOKEN'] })),
      timeoutMs: 3000,
    });
    assert.equal(outcome.status, 'success', JSON.stringify(outcome.error));
    assert.deepEqual(JSON.parse(new TextDecoder().decode(outcome.payloadJson)), {
      PLAIN: 'visible',
      TOKEN: 'the-secret-value',
      API_TOKEN: null,
    });
    await tcpClient.destroySandbox(sandbox.instanceId);
  });

  it('carries events and results of several MiB', async () => {
    const echo = await tcpClient.createSandbox(await deploy('echo'));
    const big = 'x'.repeat(5 * 1024 * 1024);
    const outcome = await tcpClient.invoke(echo.instanceId, {
      invocationId: randomUUID(),
      eventJson: Buffer.from(JSON.stringify({ big })),
      timeoutMs: 10_000,
    });
    assert.equal(outcome.status, 'success', JSON.stringify(outcome.error));
    assert.equal(
      (JSON.parse(new TextDecoder().decode(outcome.payloadJson)) as { event: { big: string } }).event.big,
      big,
    );
    await tcpClient.destroySandbox(echo.instanceId);
  });

  it('rethrows the Agent’s PlatformErrors with their code, message and details', async () => {
    const missing = await deploy('echo');
    missing.codeSha256 = '0'.repeat(64);
    await assert.rejects(
      tcpClient.createSandbox(missing),
      rejectsWith('NOT_FOUND', (err) =>
        assert.match(err.rawMessage, /code bundle code\/0{64}\.zip is not in the blob store/),
      ),
    );
    await assert.rejects(
      unixClient.createSandbox({ ...missing, codeSha256: 'not-a-sha' }),
      rejectsWith('INVALID_BUNDLE'),
    );
    await assert.rejects(
      tcpClient.createSandbox(await deploy('syntax-error')),
      rejectsWith('FUNCTION_INIT_ERROR', (err) => {
        assert.equal(err.details['errorType'], 'Runtime.UserCodeSyntaxError');
        assert.match(err.message, /^\[FUNCTION_INIT_ERROR\] function init failed: Runtime\.UserCodeSyntaxError/);
      }),
    );
    await assert.rejects(
      tcpClient.invoke(randomUUID(), { invocationId: randomUUID(), eventJson: Buffer.from('{}'), timeoutMs: 1000 }),
      rejectsWith('UNAVAILABLE', (err) => assert.match(err.rawMessage, /^sandbox [0-9a-f-]+ is gone$/)),
    );
  });

  it('answers GetNodeInfo', async () => {
    assert.deepEqual(await unixClient.getNodeInfo(), nodeInfo);
  });

  it('runs many invocations at once on one stream and pairs each reply with its call', async () => {
    const echoes = await Promise.all([1, 2, 3, 4, 5, 6].map(async () => tcpClient.createSandbox(await deploy('echo'))));
    const sleeper = await tcpClient.createSandbox(await deploy('sleeper'));
    // Sent first, answered last: replies come in the order the invocations finish.
    let slowAnswered = false;
    const slow = tcpClient
      .invoke(sleeper.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{"ms":60000}'),
        timeoutMs: 30_000,
      })
      .finally(() => (slowAnswered = true));
    for (let round = 0; round < 5; round++) {
      const sent = echoes.map((echo, i) => ({ echo, event: { round, i, id: randomUUID() } }));
      const outcomes = await Promise.all(
        sent.map(({ echo, event }) =>
          tcpClient.invoke(echo.instanceId, {
            invocationId: event.id,
            eventJson: Buffer.from(JSON.stringify(event)),
            timeoutMs: 5000,
          }),
        ),
      );
      outcomes.forEach((outcome, i) => {
        const body = payloadOf(outcome) as { event: unknown; context: { awsRequestId: string } };
        assert.deepEqual(body.event, sent[i]!.event);
        assert.equal(body.context.awsRequestId, sent[i]!.event.id);
      });
    }
    assert.equal(slowAnswered, false);
    // Destroying the busy sandbox ends its invocation, whose outcome reaches the call still waiting for it.
    await tcpClient.destroySandbox(sleeper.instanceId);
    const ended = await slow;
    assert.equal(ended.reusable, false);
    assert.notEqual(ended.status, 'success');
    for (const echo of echoes) await tcpClient.destroySandbox(echo.instanceId);
  });

  it('answers stream calls it cannot run with their error, ignores malformed messages, and keeps the stream', async () => {
    const echo = await tcpClient.createSandbox(await deploy('echo'));
    const raw = rawInvokeStream(tcp.address, bearerMetadata(token));
    const request = (instanceId: string, event: unknown) => ({
      instanceId,
      invocationId: randomUUID(),
      eventJson: Buffer.from(JSON.stringify(event)),
      timeoutMs: 3000,
    });
    try {
      raw.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x0f])); // not an InvokeStreamRequest
      raw.send({ callId: 0, request: request(echo.instanceId, { no: 'call id' }) });
      raw.send({ callId: 7, request: request(randomUUID(), {}) });
      raw.send({ callId: 8 });
      raw.send({ callId: 9, request: request(echo.instanceId, { after: 'garbage' }) });
      const replies = new Map((await raw.replies(3)).map((reply) => [reply.callId, reply]));
      assert.deepEqual([...replies.keys()].sort(), [7, 8, 9]);
      assert.equal(replies.get(7)?.error?.code, 'UNAVAILABLE');
      assert.match(replies.get(7)?.error?.message ?? '', /^sandbox [0-9a-f-]+ is gone$/);
      assert.deepEqual(JSON.parse(replies.get(7)?.error?.detailsJson ?? ''), { notDelivered: true });
      assert.equal(replies.get(8)?.error?.code, 'BAD_REQUEST');
      assert.deepEqual((payloadOf(agentOutcome(replies.get(9))) as { event: unknown }).event, { after: 'garbage' });
      // Nothing more was answered: the next reply is the next call's.
      raw.send({ callId: 10, request: request(echo.instanceId, { last: true }) });
      const [, , , next] = await raw.replies(4);
      assert.equal(next?.callId, 10);
    } finally {
      raw.close();
    }
    await tcpClient.destroySandbox(echo.instanceId);
  });

  it('ends a stream that keeps sending malformed messages', async () => {
    const raw = rawInvokeStream(tcp.address, bearerMetadata(token));
    try {
      for (let i = 0; i < 16; i++) raw.send(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]));
      const error = await raw.failed;
      assert.equal(error.code, 8); // RESOURCE_EXHAUSTED
      assert.match(error.details, /16 malformed messages/);
    } finally {
      raw.close();
    }
  });

  it('ignores replies of a node to no call in flight, and malformed ones', async () => {
    let bound = '';
    const signer = new ProofSigner(token, 'agent', 'node-fake', () => bound, silentLogger);
    const reply = (callId: number, answer: string) =>
      Buffer.from(
        InvokeStreamResponse.encode({
          callId,
          outcome: {
            status: InvokeStatus.INVOKE_STATUS_SUCCESS,
            payloadJson: Buffer.from(answer),
            durationMs: 1,
            reusable: true,
          },
        }).finish(),
      );
    // A node that answers each call with a reply to another call, bytes that are no reply, then the reply.
    const fake = await serveGrpc(
      '127.0.0.1:0',
      (server) =>
        server.addService(agentServiceDefinition, {
          prove: (
            call: { request: ProveRequest; getPeer(): string },
            callback: (error: null, response: { proof: Buffer }) => void,
          ) => {
            const { nonce, nodeId: memberId, address } = call.request;
            callback(null, { proof: signer.sign({ nonce, memberId, address }, call.getPeer()) });
          },
          invokeStream: (call: {
            on(event: 'data', listener: (m: InvokeStreamRequest) => void): void;
            write(b: Buffer): boolean;
          }) => {
            call.on('data', (message) => {
              call.write(reply(message.callId + 1000, '"wrong"'));
              call.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]));
              call.write(reply(message.callId, '"right"'));
            });
          },
        }),
      { graceMs: 100 },
    );
    bound = fake.address;
    servers.push(fake);
    const remote = client(fake.address, { nodeId: 'node-fake' });
    for (let i = 0; i < 3; i++) {
      const outcome = await remote.invoke(randomUUID(), {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{}'),
        timeoutMs: 3000,
      });
      assert.equal(payloadOf(outcome), 'right');
    }
    await remote.close();
  });

  it('answers invocations in flight when its server closes, and the next invocation reopens the stream', async () => {
    const first = await serveAgent(agent, { address: '127.0.0.1:0', token, nodeInfo: () => Promise.resolve(nodeInfo) });
    const remote = client(first.address);
    const echo = await remote.createSandbox(await deploy('echo'));
    const sleeper = await remote.createSandbox(await deploy('sleeper'));
    const invoke = (instanceId: string, event: unknown) =>
      remote.invoke(instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from(JSON.stringify(event)),
        timeoutMs: 10_000,
      });
    assert.deepEqual((payloadOf(await invoke(echo.instanceId, { n: 1 })) as { event: unknown }).event, { n: 1 });
    const running = invoke(sleeper.instanceId, { ms: 300 });
    while ((await agent.listSandboxes()).find((s) => s.instanceId === sleeper.instanceId)?.state !== 'busy') {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    // The stream ends once the sleeper answered; were it cut at the grace period instead, the call would fail.
    await first.close();
    assert.deepEqual(payloadOf(await running), { slept: true });
    const second = await serveAgent(agent, {
      address: first.address,
      token,
      nodeInfo: () => Promise.resolve(nodeInfo),
    });
    servers.push(second);
    assert.deepEqual((payloadOf(await invoke(echo.instanceId, { n: 3 })) as { event: unknown }).event, { n: 3 });
    await remote.destroySandbox(echo.instanceId);
    await remote.destroySandbox(sleeper.instanceId);
  });

  it('fails an invocation UNAVAILABLE when its node is killed mid-invocation, and invokes again once it is back', async () => {
    const killed = await startAgentProcess('127.0.0.1:0', root);
    const remote = new GrpcAgentClient({ nodeId: 'node-k', address: killed.address, token });
    clients.push(remote);
    const sleeper = await remote.createSandbox(await deploy('sleeper'));
    const [sandbox] = await remote.listSandboxes();
    const lines: string[] = [];
    const logs = await remote.streamLogs({ instanceId: sleeper.instanceId }, (line) => lines.push(line.text));
    const running = remote
      .invoke(sleeper.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{"ms":60000}'),
        timeoutMs: 30_000,
      })
      .then(
        () => assert.fail('the invocation outlived its node'),
        (err: unknown) => err,
      );
    while (!lines.some((line) => line.includes('going to sleep'))) await new Promise((r) => setTimeout(r, 5));
    await killed.kill();
    // It reached the sandbox, so it may have run: not to be retried elsewhere.
    assert.ok(
      rejectsWith('UNAVAILABLE', (err) => {
        assert.notEqual(err.details['notDelivered'], true);
        assert.match(err.rawMessage, /agent node-k at 127\.0\.0\.1:\d+/);
      })(await running),
    );
    assert.notEqual(await logs.ended, null);
    if (sandbox?.pid != null) pids.add(sandbox.pid);
    // While the node is down, an invocation never reaches it: safe to retry elsewhere.
    await assert.rejects(
      remote.invoke(sleeper.instanceId, { invocationId: randomUUID(), eventJson: Buffer.from('{}'), timeoutMs: 1000 }),
      rejectsWith('UNAVAILABLE', (err) => assert.equal(err.details['notDelivered'], true)),
    );
    const back = await startAgentProcess(killed.address, root);
    try {
      // The channel dials again after its reconnect backoff (about a second).
      for (let tries = 0; ; tries++) {
        try {
          await remote.getNodeInfo();
          break;
        } catch (err) {
          if (tries > 100) throw err;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
      const echo = await remote.createSandbox(await deploy('echo'));
      const outcome = await remote.invoke(echo.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{"back":true}'),
        timeoutMs: 3000,
      });
      assert.deepEqual((payloadOf(outcome) as { event: unknown }).event, { back: true });
    } finally {
      await remote.close();
      back.child.kill('SIGTERM');
      await once(back.child, 'exit');
    }
  });

  it('refuses calls without the cluster token', async () => {
    // A client with another token cannot verify the node, so it never sends its token.
    const wrong = client(tcp.address, { token: 'not-the-token' });
    const invoke = () =>
      wrong.invoke(randomUUID(), { invocationId: randomUUID(), eventJson: Buffer.from('{}'), timeoutMs: 1000 });
    for (const call of [() => wrong.listSandboxes(), () => wrong.streamLogs({}, () => {}), invoke]) {
      await assert.rejects(
        call(),
        rejectsWith('UNAVAILABLE', (err) => assert.match(err.rawMessage, /proof does not match the cluster token/)),
      );
    }

    // A client of another kind that sends no token, or a wrong one, gets UNAUTHENTICATED and the code in the trailer.
    for (const metadata of [new Metadata(), bearerMetadata('not-the-token')]) {
      const stream = rawInvokeStream(tcp.address, metadata);
      stream.send({
        callId: 1,
        request: {
          instanceId: randomUUID(),
          invocationId: randomUUID(),
          eventJson: Buffer.from('{}'),
          timeoutMs: 1000,
        },
      });
      const err = await stream.failed;
      assert.equal(err.code, status.UNAUTHENTICATED);
      assert.match(err.details, /InvokeStream needs the cluster token/);
      assert.deepEqual(err.metadata.get('savassan-error-code'), ['UNAUTHORIZED']);
      assert.deepEqual(await stream.replies(0), []);
      stream.close();
    }
    const raw = new AgentClient(tcp.address, credentials.createInsecure());
    try {
      for (const metadata of [new Metadata(), bearerMetadata('not-the-token')]) {
        const err = await new Promise<ServiceError | null>((resolve) =>
          raw.listSandboxes({}, metadata, (error) => resolve(error)),
        );
        assert.equal(err?.code, status.UNAUTHENTICATED);
        assert.match(err.details, /ListSandboxes needs the cluster token/);
        assert.deepEqual(err.metadata.get('savassan-error-code'), ['UNAUTHORIZED']);
      }
    } finally {
      raw.close();
    }
  });

  it('proves its identity only for its own node id and address, so a relay fails', async () => {
    // What a rogue etcd entry would point at: a TCP relay to the real Agent, recording what callers send it.
    const received: Buffer[] = [];
    const relay = await startTcpRelay(tcp.address, (chunk) => received.push(chunk));
    const { port } = relay;
    try {
      // The real node id at the relay's address, and another id: the Agent refuses to prove either.
      for (const nodeId of ['node-a', 'node-rogue']) {
        const relayed = client(`127.0.0.1:${port}`, { nodeId });
        await assert.rejects(
          relayed.listSandboxes(),
          rejectsWith('UNAVAILABLE', (err) =>
            assert.match(err.rawMessage, new RegExp(`agent ${nodeId} at 127\\.0\\.0\\.1:${port} is not verified`)),
          ),
        );
        await assert.rejects(
          relayed.streamLogs({}, () => {}),
          rejectsWith('UNAVAILABLE'),
        );
      }
      // At its own address, under another id, the node is not verified either.
      await assert.rejects(client(tcp.address, { nodeId: 'node-b' }).getNodeInfo(), rejectsWith('UNAVAILABLE'));
      assert.ok(received.length > 0, 'the callers did dial the relay');
      // An Agent that advertises another address (NAT, a name) proves that one only, not the bound one.
      const advertised = await serveAgent(agent, {
        address: '127.0.0.1:0',
        advertise: 'agent-a.example:7070',
        token,
        nodeInfo: () => Promise.resolve(nodeInfo),
      });
      servers.push(advertised);
      await assert.rejects(client(advertised.address).listSandboxes(), rejectsWith('UNAVAILABLE'));
    } finally {
      relay.close();
    }
  });

  it('fails fast with UNAVAILABLE naming the node when its Agent is not there', async () => {
    const stopped = await serveAgent(agent, {
      address: '127.0.0.1:0',
      token,
      nodeInfo: () => Promise.resolve(nodeInfo),
    });
    const gone = client(stopped.address);
    assert.equal((await gone.listSandboxes()).length >= 0, true);
    await stopped.close();
    for (const remote of [gone, client(`unix:${join(root, 'nobody.sock')}`, { nodeId: 'node-none' })]) {
      const started = Date.now();
      await assert.rejects(
        remote.listSandboxes(),
        rejectsWith('UNAVAILABLE', (err) =>
          assert.ok(err.rawMessage.includes(`agent ${remote.nodeId} at ${remote.address}`), err.rawMessage),
        ),
      );
      assert.ok(Date.now() - started < 3000, `failed after ${Date.now() - started} ms`);
    }
    // An invocation sent while the node is not there never reached it: the caller may try another instance.
    await assert.rejects(
      gone.invoke(randomUUID(), { invocationId: randomUUID(), eventJson: Buffer.from('{}'), timeoutMs: 1000 }),
      rejectsWith('UNAVAILABLE', (err) => assert.equal(err.details['notDelivered'], true)),
    );
    const closed = client(tcp.address);
    await closed.close();
    await assert.rejects(closed.listSandboxes(), rejectsWith('UNAVAILABLE'));
  });

  it('streams the live output of invocations, filtered', async () => {
    const spec = await deploy('echo');
    const echo = await unixClient.createSandbox(spec);
    const lines: StreamedLogLine[] = [];
    const others: StreamedLogLine[] = [];
    const mine = await tcpClient.streamLogs({ functionName: 'echo' }, (line) => lines.push(line));
    const elsewhere = await tcpClient.streamLogs({ functionName: 'throws' }, (line) => others.push(line));
    const invocationId = randomUUID();
    await unixClient.invoke(echo.instanceId, {
      invocationId,
      eventJson: Buffer.from('{"hello":"logs"}'),
      timeoutMs: 3000,
    });
    const deadline = Date.now() + 3000;
    while (!lines.some((line) => line.text.includes('raw write')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const invoked = lines.find((line) => line.text.includes('echo: invoked with'));
    assert.ok(invoked, `got ${JSON.stringify(lines)}`);
    assert.equal(invoked.text, "echo: invoked with { hello: 'logs' }\n");
    assert.equal(invoked.stream, 'stdout');
    assert.equal(invoked.instanceId, echo.instanceId);
    assert.equal(invoked.functionName, 'echo');
    assert.equal(invoked.invocationId, invocationId);
    assert.equal(invoked.version, spec.version, 'the version the sandbox runs');
    assert.equal(invoked.droppedBefore, 0);
    assert.ok(Math.abs(invoked.time - Date.now()) < 5000);
    assert.ok(lines.some((line) => line.stream === 'stderr' && line.text === 'echo: to stderr 42\n'));
    assert.deepEqual(others, []);
    mine.close();
    mine.close();
    assert.equal(await mine.ended, null);

    // Closing the server ends the streams it serves, without waiting out the grace period.
    const own = await serveAgent(agent, { address: '127.0.0.1:0', token, nodeInfo: () => Promise.resolve(nodeInfo) });
    const follower = client(own.address);
    const followed = await follower.streamLogs({}, () => {});
    const started = Date.now();
    await own.close();
    assert.equal(await followed.ended, null);
    assert.ok(Date.now() - started < 2000);
    elsewhere.close();
    await unixClient.destroySandbox(echo.instanceId);
  });

  it('drops and counts lines for a log reader that does not keep up', async () => {
    const own = await serveAgent(agent, {
      address: '127.0.0.1:0',
      token,
      nodeInfo: () => Promise.resolve(nodeInfo),
      logStreamBufferBytes: 64 * 1024,
    });
    servers.push(own);
    const raw = new AgentClient(own.address, credentials.createInsecure());
    try {
      const call = raw.streamLogs({ functionName: 'chatty' }, bearerMetadata(token));
      await once(call, 'metadata');
      let received = 0;
      let dropped = 0;
      call.on('data', (line: StreamLogsResponse) => {
        received += 1;
        dropped += line.droppedBefore;
      });
      // A reader that stops reading: grpc-js stops taking data from HTTP/2, whose window fills up.
      call.pause();
      const chatty = await tcpClient.createSandbox(await deploy('chatty'));
      const burst = await tcpClient.invoke(chatty.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{"lines":3000,"width":1000}'),
        timeoutMs: 10_000,
      });
      assert.equal(burst.status, 'success', 'the Agent is not held up by the reader');
      call.resume();
      // The count of dropped lines rides on the next line delivered.
      await tcpClient.invoke(chatty.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from('{"lines":1}'),
        timeoutMs: 3000,
      });
      const deadline = Date.now() + 5000;
      while (received + dropped < 3001 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      assert.equal(received + dropped, 3001, `received ${received}, dropped ${dropped}`);
      assert.ok(dropped > 0 && received > 0, `received ${received}, dropped ${dropped}`);
      call.on('error', () => {}); // CANCELLED, ours
      call.cancel();
      await tcpClient.destroySandbox(chatty.instanceId);
    } finally {
      raw.close();
    }
  });
});

describe('routing push to gateways', () => {
  it('delivers newer tables, acknowledges repeats, refuses older ones and strangers', async () => {
    const tables: RoutingTable[] = [];
    const server = await serveRouting({
      address: '127.0.0.1:0',
      gatewayId: 'gw-1',
      token,
      onTable: (table) => {
        tables.push(table);
      },
    });
    try {
      const table: RoutingTable = {
        version: 7,
        agents: { 'node-a': '10.0.0.1:7070', 'node-b': 'unix:/run/savassan/agent.sock' },
        updatedAt: 1_700_000_000_000,
      };
      const gateway = { gatewayId: 'gw-1', address: server.address };
      assert.deepEqual(await pushRoutingTable(gateway, token, table), { accepted: true, currentVersion: 7 });
      assert.deepEqual(tables, [table]);
      assert.deepEqual(await pushRoutingTable(gateway, token, table), { accepted: true, currentVersion: 7 });
      assert.deepEqual(await pushRoutingTable(gateway, token, { ...table, version: 6 }), {
        accepted: false,
        currentVersion: 7,
      });
      assert.equal(tables.length, 1);
      // A pusher with another token cannot verify the gateway and sends nothing; another id is not verified either.
      await assert.rejects(
        pushRoutingTable(gateway, 'wrong', { ...table, version: 8 }),
        rejectsWith('UNAVAILABLE', (err) => assert.match(err.rawMessage, /proof does not match the cluster token/)),
      );
      await assert.rejects(
        pushRoutingTable({ ...gateway, gatewayId: 'gw-2' }, token, { ...table, version: 8 }),
        rejectsWith('UNAVAILABLE', (err) => assert.match(err.rawMessage, /^gateway gw-2 at .* is not verified/)),
      );
      // A push without the right token is refused by the gateway.
      const raw = new RoutingClient(server.address, credentials.createInsecure());
      try {
        const err = await new Promise<ServiceError | null>((resolve) =>
          raw.pushRoutingTable(
            { table: { version: 8, agents: {}, updatedAtMs: 0, traffic: {} } },
            bearerMetadata('wrong'),
            (e) => resolve(e),
          ),
        );
        assert.equal(err?.code, status.UNAUTHENTICATED);
      } finally {
        raw.close();
      }
      assert.equal(tables.length, 1);
    } finally {
      await server.close();
    }
    await assert.rejects(
      pushRoutingTable({ gatewayId: 'gw-1', address: server.address }, token, { version: 9, agents: {}, updatedAt: 0 }),
      rejectsWith('UNAVAILABLE', (err) =>
        assert.match(err.rawMessage, /^gateway gw-1 at 127\.0\.0\.1:\d+ is not verified: .* is unreachable/),
      ),
    );
  });

  it('asks a verified gateway to shut down, answering before it leaves', async () => {
    const reasons: string[] = [];
    let left: () => void = () => {};
    const leaving = new Promise<void>((resolve) => {
      left = resolve;
    });
    const server = await serveRouting({
      address: '127.0.0.1:0',
      gatewayId: 'gw-1',
      token,
      onTable: () => {},
      onShutdown: (reason) => {
        reasons.push(reason);
        left();
      },
    });
    const plain = await serveRouting({ address: '127.0.0.1:0', gatewayId: 'gw-2', token, onTable: () => {} });
    try {
      const gateway = { gatewayId: 'gw-1', address: server.address };
      await shutdownGateway(gateway, token, 'upgrade to 0.2.0 (build B)');
      await leaving;
      assert.deepEqual(reasons, ['upgrade to 0.2.0 (build B)']);

      // Not verified: nothing is sent. Without the token: refused.
      await assert.rejects(
        shutdownGateway(gateway, 'wrong', 'stop'),
        rejectsWith('UNAVAILABLE', (err) => assert.match(err.rawMessage, /proof does not match the cluster token/)),
      );
      const raw = new RoutingClient(server.address, credentials.createInsecure());
      try {
        const err = await new Promise<ServiceError | null>((resolve) =>
          raw.shutdown({ reason: 'stop' }, bearerMetadata('wrong'), (e) => resolve(e)),
        );
        assert.equal(err?.code, status.UNAUTHENTICATED);
      } finally {
        raw.close();
      }
      // A gateway that was given no way to leave says so.
      await assert.rejects(
        shutdownGateway({ gatewayId: 'gw-2', address: plain.address }, token, 'stop'),
        rejectsWith('CONFLICT', (err) => assert.match(err.rawMessage, /gw-2 cannot be asked to shut down/)),
      );
      assert.deepEqual(reasons, ['upgrade to 0.2.0 (build B)']);
    } finally {
      await plain.close();
      await server.close();
    }
  });

  it('tells the gateway which functions changed traffic since the table it applied last', async () => {
    const changes: string[][] = [];
    const tables: RoutingTable[] = [];
    const server = await serveRouting({
      address: '127.0.0.1:0',
      gatewayId: 'gw-1',
      token,
      onTable: (table) => {
        tables.push(table);
      },
      onTrafficChange: (names) => changes.push(names),
    });
    try {
      const gateway = { gatewayId: 'gw-1', address: server.address };
      const agents = { 'node-a': '10.0.0.1:7070' };
      await pushRoutingTable(gateway, token, { version: 1, agents, updatedAt: 1 });
      assert.deepEqual(changes, [], 'no traffic entries: nothing to drop');
      await pushRoutingTable(gateway, token, { version: 4, agents, updatedAt: 4, traffic: { alpha: 2, beta: 4 } });
      await pushRoutingTable(gateway, token, { version: 5, agents, updatedAt: 5, traffic: { alpha: 2, beta: 4 } });
      // A table the gateway missed (version 6) is covered: the entries are compared with the last one applied.
      await pushRoutingTable(gateway, token, { version: 7, agents, updatedAt: 7, traffic: { alpha: 6, beta: 7 } });
      assert.deepEqual(changes, [
        ['alpha', 'beta'],
        ['alpha', 'beta'],
      ]);
      assert.deepEqual(tables.at(-1)?.traffic, { alpha: 6, beta: 7 });
      assert.equal(tables[0]?.traffic, undefined);
    } finally {
      await server.close();
    }
  });
});

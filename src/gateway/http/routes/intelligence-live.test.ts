// A run's live view over a real WebSocket (the `ws` client against a listening server): the view on each change,
// the trainer's lines, the close after the final view, 404 for an unknown run, and the key in the subprotocol list.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import type { SandboxLogLine } from '../../../core/ports/agent-api.js';
import type { RunService, RunView, StartRunRequest } from '../../../intelligence/services.js';
import { LiveLogHub } from '../../live-logs.js';
import type { LogFeed } from '../../live-logs.js';
import { apiKeyHook, runsSubprotocol } from '../api-keys.js';
import { toPlatformError } from '../route-defaults.js';
import { ErrorBody } from '../schemas.js';
import { websocketSupport } from '../websocket.js';
import { refusedUpgrade } from '../../../../test/helpers/live-logs.js';
import { intelligenceLiveRoutes } from './intelligence-live.js';
import type { RunFrame } from './intelligence-live.js';

const runId = 'run-abcdefghijklmnopqrstuvwxyz';
const otherId = 'run-bbbbbbbbbbbbbbbbbbbbbbbbbb';
const key = 'k-live-test';

/** Runs whose state the test sets (the port, without the workflow engine behind it). */
class TestRuns implements RunService {
  readonly views = new Map<string, RunView>();
  /** Reads, by run id. */
  readonly reads = new Map<string, number>();
  start(_request: StartRunRequest): Promise<RunView> {
    throw new Error('not used');
  }
  get(id: string): Promise<RunView | null> {
    this.reads.set(id, (this.reads.get(id) ?? 0) + 1);
    const view = this.views.get(id);
    return Promise.resolve(view === undefined ? null : structuredClone(view));
  }
  list(): Promise<RunView[]> {
    return Promise.resolve([...this.views.values()]);
  }
  set(id: string, change: Partial<RunView>): void {
    const view = this.views.get(id) ?? viewOf(id);
    this.views.set(id, { ...view, ...change });
  }
}

function viewOf(id: string): RunView {
  return {
    id,
    status: 'PLANNING',
    prompt: 'fine-tune on my dog',
    userId: 'anonymous',
    execution: { project: 'savassan', domain: 'development', name: id },
    planId: null,
    plan: null,
    curationId: null,
    curatedDatasetUri: null,
    output: null,
    error: null,
    createdAt: new Date(0).toISOString(),
  };
}

/** The Agents' output as the test writes it. */
class TestFeed implements LogFeed {
  private listener: ((chunk: SandboxLogLine) => void) | null = null;
  open(onChunk: (chunk: SandboxLogLine) => void): Promise<() => Promise<void>> {
    this.listener = onChunk;
    return Promise.resolve(() => {
      this.listener = null;
      return Promise.resolve();
    });
  }
  write(functionName: string, text: string): void {
    this.listener?.({
      instanceId: 'i-1',
      functionName,
      invocationId: 'inv-1',
      version: 1,
      stream: 'stdout',
      text,
      time: Date.now(),
    });
  }
}

interface RunSocket {
  frames: RunFrame[];
  protocol: string;
  until(ok: (frames: RunFrame[]) => boolean): Promise<void>;
  closed: Promise<{ code: number; reason: string }>;
  ws: WebSocket;
}

function openRunSocket(url: string, id: string, protocols: string[], headers: Record<string, string> = {}) {
  return new Promise<RunSocket>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/intelligence/runs/${id}/ws`, protocols, { headers });
    const frames: RunFrame[] = [];
    const waiters = new Set<() => void>();
    const closed = new Promise<{ code: number; reason: string }>((done) =>
      ws.once('close', (code, reason) => {
        done({ code, reason: reason.toString('utf8') });
        for (const waiter of [...waiters]) waiter();
      }),
    );
    ws.on('message', (data: Buffer) => {
      frames.push(JSON.parse(data.toString('utf8')) as RunFrame);
      for (const waiter of [...waiters]) waiter();
    });
    ws.once('error', reject);
    ws.once('open', () =>
      resolve({
        frames,
        protocol: ws.protocol,
        ws,
        closed,
        until: (ok) =>
          new Promise<void>((done, fail) => {
            const check = (): void => {
              if (ok(frames)) {
                waiters.delete(check);
                done();
              } else if (ws.readyState === ws.CLOSED) {
                waiters.delete(check);
                fail(new Error(`closed before: ${JSON.stringify(frames)}`));
              }
            };
            waiters.add(check);
            check();
          }),
      }),
    );
  });
}

const statuses = (frames: RunFrame[]) => frames.flatMap((f) => (f.type === 'run' ? [f.run.status] : []));

describe('GET /v1/intelligence/runs/{id}/ws', () => {
  let app: FastifyInstance;
  let url = '';
  const runs = new TestRuns();
  const feed = new TestFeed();
  const hub = new LiveLogHub({ feed, flushDelayMs: 10 });

  before(async () => {
    app = Fastify();
    app.addSchema(ErrorBody);
    app.setErrorHandler((err, _request, reply) => {
      const error = toPlatformError(err);
      return reply.status(error.status).send({ error: { code: error.code, message: error.message } });
    });
    // As the gateway does: an upgrade answered over HTTP leaves a socket the HTTP server no longer tracks.
    app.addHook('onResponse', (request, _reply, done) => {
      if ((request.raw as { upgrade?: boolean }).upgrade === true) request.raw.socket.destroy();
      done();
    });
    app.addHook('onRequest', apiKeyHook([key]));
    await websocketSupport(app);
    await app.register(
      intelligenceLiveRoutes({
        runs,
        hub,
        pollMs: 20,
        trainerOf: (run) => Promise.resolve(run.id === otherId ? 'my-trainer' : null),
      }),
    );
    await app.listen({ port: 0, host: '127.0.0.1' });
    url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await hub.close();
    await app.close();
  });

  it('sends the view on each change and the trainer’s lines, then the final view and a close', async () => {
    runs.set(runId, { status: 'CURATING' });
    const socket = await openRunSocket(url, runId, [runsSubprotocol, `bearer.${key}`]);
    assert.equal(socket.protocol, runsSubprotocol, 'the key is never echoed');
    await socket.until((frames) => statuses(frames).includes('CURATING'));
    runs.set(runId, { status: 'AWAITING_FEEDBACK', curationId: 'cur-x' });
    await socket.until((frames) => statuses(frames).includes('AWAITING_FEEDBACK'));
    runs.set(runId, { status: 'TRAINING' });
    await socket.until((frames) => statuses(frames).includes('TRAINING'));
    feed.write('someone-else', 'not this one\n');
    feed.write('fine-tune-trainer', 'epoch 1 loss 0.5\nepoch 2 loss 0.25\n');
    await socket.until((frames) => frames.filter((f) => f.type === 'log').length === 2);
    runs.set(runId, { status: 'SUCCEEDED', output: { accuracy: 1 } });
    const { code } = await socket.closed;
    assert.equal(code, 1000);
    const logs = socket.frames.flatMap((f) => (f.type === 'log' ? [f.line] : []));
    assert.deepEqual(
      logs.map((l) => [l.functionName, l.line]),
      [
        ['fine-tune-trainer', 'epoch 1 loss 0.5'],
        ['fine-tune-trainer', 'epoch 2 loss 0.25'],
      ],
    );
    // Each view once, in order, the last one the ended run's.
    assert.deepEqual(statuses(socket.frames), ['CURATING', 'AWAITING_FEEDBACK', 'TRAINING', 'SUCCEEDED']);
    const last = socket.frames.at(-1);
    assert.ok(last?.type === 'run');
    assert.deepEqual(last.run.output, { accuracy: 1 });
  });

  it('follows the trainer its run names, and closes at once on a run that has ended', async () => {
    runs.set(otherId, { status: 'TRAINING' });
    const socket = await openRunSocket(url, otherId, [], { authorization: `Bearer ${key}` });
    await socket.until((frames) => statuses(frames).includes('TRAINING'));
    // The subscription follows the first view: write until a line arrives.
    for (let i = 0; !socket.frames.some((f) => f.type === 'log'); i++) {
      feed.write('fine-tune-trainer', `default ${i}\n`);
      feed.write('my-trainer', `mine ${i}\n`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.ok(socket.frames.every((f) => f.type !== 'log' || f.line.functionName === 'my-trainer'));
    runs.set(otherId, { status: 'FAILED', error: { code: 'INTERNAL', message: 'the trainer failed' } });
    assert.equal((await socket.closed).code, 1000);

    const again = await openRunSocket(url, otherId, [], { authorization: `Bearer ${key}` });
    assert.equal((await again.closed).code, 1000);
    assert.deepEqual(statuses(again.frames), ['FAILED']);
  });

  it('answers 404 for an unknown run and 401 without a key, before any upgrade', async () => {
    const path = (id: string) => `/v1/intelligence/runs/${id}/ws`;
    const bearer = { protocols: [runsSubprotocol, `bearer.${key}`] };
    assert.deepEqual(await refusedUpgrade(url, path('run-zzzzzzzzzzzzzzzzzzzzzzzzzz'), bearer), {
      status: 404,
      code: 'NOT_FOUND',
    });
    assert.deepEqual(await refusedUpgrade(url, path(runId), { protocols: [runsSubprotocol] }), {
      status: 401,
      code: 'UNAUTHORIZED',
    });
    assert.deepEqual(await refusedUpgrade(url, path(runId), { protocols: [runsSubprotocol, 'bearer.wrong'] }), {
      status: 401,
      code: 'UNAUTHORIZED',
    });
    assert.deepEqual(await refusedUpgrade(url, `${path(runId)}?key=${key}`, {}), { status: 401, code: 'UNAUTHORIZED' });
    assert.equal((await refusedUpgrade(url, path('not-a-run'), bearer)).status, 400);
  });

  it('reads a run once per poll for all its sockets, and takes at most 20 sockets a run', async () => {
    const id = 'run-cccccccccccccccccccccccccc';
    runs.set(id, { status: 'CURATING' });
    const auth = { authorization: `Bearer ${key}` };
    const sockets = await Promise.all(Array.from({ length: 20 }, () => openRunSocket(url, id, [], auth)));
    await Promise.all(sockets.map((socket) => socket.until((frames) => statuses(frames).includes('CURATING'))));
    const path = `/v1/intelligence/runs/${id}/ws`;
    assert.deepEqual(await refusedUpgrade(url, path, { protocols: [runsSubprotocol, `bearer.${key}`] }), {
      status: 429,
      code: 'TOO_MANY_REQUESTS',
    });
    // Ten changes, each seen by every socket: the reads are those of one reader (a read or two per change), not
    // twenty readers' (at least twenty per change).
    const before = runs.reads.get(id) ?? 0;
    for (let step = 1; step <= 10; step++) {
      runs.set(id, { progress: step } as Partial<RunView>);
      await Promise.all(
        sockets.map((socket) =>
          socket.until((frames) =>
            frames.some((f) => f.type === 'run' && (f.run as { progress?: number }).progress === step),
          ),
        ),
      );
    }
    const reads = (runs.reads.get(id) ?? 0) - before;
    assert.ok(reads < 20 * 10, `${reads} reads for 10 changes seen by 20 sockets`);
    runs.set(id, { status: 'SUCCEEDED' });
    await Promise.all(sockets.map((socket) => socket.closed));
  });
});

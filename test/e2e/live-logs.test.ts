// Live logs end to end: a real `savassan start` process with real sandboxes, followed over a real WebSocket
// (`logs/ws`), server-sent events (`logs?follow=1`) and the CLI (`savassan logs -f`).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request, type IncomingMessage } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { cliPath, repoRoot, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { lineNumbers, openLogSocket, refusedUpgrade } from '../helpers/live-logs.js';
import type { LineFrame } from '../helpers/live-logs.js';

const talker = join(repoRoot, 'test', 'fixtures', 'e2e', 'talker');

/** Reads server-sent events from `response`, keeping those of type `event`. */
function sseReader(response: Response) {
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = '';
  const events: Array<{ event: string; data: unknown }> = [];
  return {
    events,
    cancel: () => reader.cancel(),
    async until(ok: (events: Array<{ event: string; data: unknown }>) => boolean) {
      while (!ok(events)) {
        const { value, done } = await reader.read();
        assert.ok(!done, `the stream ended; events: ${JSON.stringify(events.slice(-3))}`);
        text += decoder.decode(value, { stream: true });
        let end;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const frame = text.slice(0, end);
          text = text.slice(end + 2);
          const event = /^event: (.*)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) });
        }
      }
      return events;
    },
  };
}

describe('live logs', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--no-examples']);
    const bundle = await readBundle(talker);
    await server.client.deploy('talker', bundle);
    await server.client.deploy('other', bundle);
  });
  after(async () => {
    await server.cleanup();
  });

  it('sends the lines of an invocation in order, tagged, and never those of another function', async () => {
    const socket = await openLogSocket(server.url, 'talker');
    try {
      await server.client.invoke('other', { tag: 'b', lines: 20 });
      const answer = await server.client.invoke('talker', { tag: 'a', lines: 200, stderr: true, partial: 'tail' });
      const frames = await socket.until((all) => all.some((f) => f.type === 'line' && f.line === 'tail'));
      const lines = socket.lines();
      assert.ok(
        frames.every((f) => f.type === 'line'),
        'only lines',
      );
      assert.ok(
        lines.every((f) => f.functionName === 'talker'),
        'no line of another function',
      );
      const mine = lines.filter((f) => f.invocationId === answer.invocationId);
      assert.deepEqual(
        lineNumbers(mine, 'a'),
        Array.from({ length: 200 }, (_, i) => i),
      );
      const first = mine[0] as LineFrame;
      assert.equal(first.line, 'a 0');
      assert.equal(first.version, 1);
      assert.equal(first.stream, 'stdout');
      assert.ok(!Number.isNaN(Date.parse(first.time)));
      assert.deepEqual(
        mine.filter((f) => f.stream === 'stderr').map((f) => f.line),
        ['a on stderr'],
      );
      assert.equal(mine.at(-1)?.line, 'tail', 'a partial line is sent without waiting for a newline');
      // The module's own output, outside any invocation.
      assert.ok(lines.some((f) => f.line === 'talker loaded' && f.invocationId === null));
    } finally {
      await socket.close();
    }
  });

  it('filters by invocation', async () => {
    const all = await openLogSocket(server.url, 'talker');
    try {
      const slow = server.client.invoke('talker', { tag: 'x', lines: 30, intervalMs: 100 });
      const [firstX] = (await all.until((f) => f.some((l) => l.type === 'line' && l.line === 'x 0'))).filter(
        (f): f is LineFrame => f.type === 'line' && f.line === 'x 0',
      );
      const id = firstX?.invocationId;
      assert.ok(typeof id === 'string');
      const only = await openLogSocket(server.url, 'talker', { invocationId: id });
      try {
        // Another invocation of the same function, in another sandbox, at the same time.
        const other = await server.client.invoke('talker', { tag: 'x', lines: 5, intervalMs: 20 });
        const answer = await slow;
        assert.equal(answer.invocationId, id);
        await only.until((f) => f.some((l) => l.type === 'line' && l.line === 'x 29'));
        const lines = only.lines();
        assert.ok(lines.length > 0);
        assert.ok(
          lines.every((f) => f.invocationId === id),
          'only the invocation asked for',
        );
        const numbers = lineNumbers(lines, 'x');
        assert.deepEqual(
          numbers,
          numbers.toSorted((a, b) => a - b),
        );
        assert.ok(all.lines().some((f) => f.invocationId === other.invocationId));
      } finally {
        await only.close();
      }
    } finally {
      await all.close();
    }
  });

  it('drops a client that stops reading with a notice, while invocations complete', async () => {
    const slow = await openLogSocket(server.url, 'talker');
    const reader = await openLogSocket(server.url, 'talker');
    try {
      // The client's socket stops reading: what the server sends piles up in the kernel, then in the hub's queue.
      const raw = (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket;
      raw.pause();
      const invocations = await Promise.all(
        Array.from({ length: 4 }, (_, i) => server.client.invoke('talker', { tag: `s${i}`, lines: 6000, size: 1000 })),
      );
      assert.equal(invocations.length, 4, 'every invocation completed while the client did not read');
      raw.resume();
      const code = await slow.closed;
      const notice = slow.frames.at(-1);
      assert.equal(notice?.type, 'dropped');
      assert.ok(notice.type === 'dropped' && notice.missed > 0);
      assert.ok(code === 1013 || code >= 4000, `close code ${code}`);
      // A client that reads gets every line.
      await reader.until((f) => f.some((l) => l.type === 'line' && l.line.startsWith('s3 5999')));
      for (let i = 0; i < 4; i++) assert.equal(lineNumbers(reader.lines(), `s${i}`).length, 6000);
    } finally {
      await reader.close();
      await slow.close();
    }
  });

  it('streams the same lines as server-sent events after the recent invocations', async () => {
    const response = await fetch(`${server.url}/v1/functions/talker/logs?follow=1&limit=1`);
    assert.equal(response.headers.get('content-type'), 'text/event-stream');
    const sse = sseReader(response);
    const socket = await openLogSocket(server.url, 'talker');
    try {
      await sse.until((events) => events.some((e) => e.event === 'invocation'));
      const answer = await server.client.invoke('talker', { tag: 'e', lines: 10 });
      const events = await sse.until((all) =>
        all.some((e) => e.event === 'line' && (e.data as LineFrame).line === 'e 9'),
      );
      assert.equal(events[0]?.event, 'invocation', 'the recent invocation first');
      const lines = events.filter((e) => e.event === 'line').map((e) => e.data as Omit<LineFrame, 'type'>);
      await socket.until((f) => f.some((l) => l.type === 'line' && l.line === 'e 9'));
      const fromSocket = socket
        .lines()
        .filter((f) => f.invocationId === answer.invocationId)
        .map(({ type: _type, ...line }) => line);
      assert.deepEqual(
        lines.filter((l) => l.invocationId === answer.invocationId),
        fromSocket,
      );
      assert.equal(fromSocket.length, 10);
    } finally {
      await sse.cancel();
      await socket.close();
    }
  });

  it('ends the server-sent event stream of a client that stops reading with a dropped event', async () => {
    const { hostname, port } = new URL(server.url);
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request({ host: hostname, port, path: '/v1/functions/talker/logs?follow=1&limit=1' }, resolve);
      req.on('error', reject);
      req.end();
    });
    assert.equal(res.statusCode, 200);
    res.pause();
    const invocations = await Promise.all(
      Array.from({ length: 4 }, (_, i) => server.client.invoke('talker', { tag: `p${i}`, lines: 6000, size: 1000 })),
    );
    assert.equal(invocations.length, 4, 'every invocation completed while the client did not read');
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (text += chunk));
    const ended = new Promise((resolve) => res.once('end', resolve));
    res.resume();
    await ended;
    const last = text.trimEnd().split('\n\n').at(-1) ?? '';
    assert.match(last, /^event: dropped\ndata: /);
    const notice = JSON.parse(last.split('data: ')[1]!) as { missed: number };
    assert.ok(notice.missed > 0);
  });

  it('prints lines live with savassan logs -f', async () => {
    const child = spawn(process.execPath, [cliPath, 'logs', 'talker', '-f', '--limit', '1'], {
      cwd: repoRoot,
      env: { ...process.env, SAVASSAN_URL: server.url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    try {
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const seen = (what: () => boolean) =>
        new Promise<void>((resolve, reject) => {
          const check = (): void => {
            if (what()) resolve();
          };
          child.stdout.on('data', check);
          child.stderr.on('data', check);
          child.once('exit', (code) => reject(new Error(`exited ${code}: ${stdout} ${stderr}`)));
          check();
        });
      // The recent invocation's report comes first: from then on the stream follows.
      await seen(() => stdout.includes('REPORT'));
      const answer = await server.client.invoke('talker', { tag: 'cli', lines: 2, stderr: true });
      await seen(() => stdout.includes('cli 1\n') && stderr.includes('cli on stderr'));
      const tag = answer.invocationId.slice(0, 8);
      assert.match(stdout, new RegExp(`\\n${tag} cli 0\\n${tag} cli 1\\n`));
      assert.match(stderr, new RegExp(`${tag} cli on stderr\\n`));
      assert.doesNotMatch(stdout, /cli on stderr/);
    } finally {
      child.kill();
    }
  });

  it('refuses bad requests before the upgrade', async () => {
    assert.deepEqual(await refusedUpgrade(server.url, '/v1/functions/nope/logs/ws'), {
      status: 404,
      code: 'NOT_FOUND',
    });
    assert.deepEqual(await refusedUpgrade(server.url, '/v1/functions/talker/logs/ws?invocationId=x%20y'), {
      status: 400,
      code: 'BAD_REQUEST',
    });
    assert.deepEqual(await refusedUpgrade(server.url, '/v1/functions/talker/logs/ws?follow=1'), {
      status: 400,
      code: 'BAD_REQUEST',
    });
    const plain = await fetch(`${server.url}/v1/functions/talker/logs/ws`);
    assert.equal(plain.status, 400);
  });

  it('without API keys, refuses a WebSocket from a web page of a site that is not on this machine', async () => {
    const path = '/v1/functions/talker/logs/ws';
    for (const origin of ['https://attacker.example', 'null', 'http://127.0.0.1.attacker.example']) {
      assert.deepEqual(await refusedUpgrade(server.url, path, { headers: { origin } }), {
        status: 401,
        code: 'UNAUTHORIZED',
      });
    }
    for (const origin of [server.url, 'http://localhost:5173']) {
      const socket = await openLogSocket(server.url, 'talker', { ws: { headers: { origin } } });
      await socket.close();
    }
  });
});

describe('live logs with API keys', () => {
  let server: ServerProcess;
  const key = 'live-key-1';

  before(async () => {
    server = await startServer(['--no-examples'], undefined, { SAVASSAN_API_KEY: key });
    const { SavassanClient } = await import('../../src/client/client.js');
    server.client = new SavassanClient({ url: server.url, apiKey: key });
    await server.client.deploy('talker', await readBundle(talker));
  });
  after(async () => {
    await server.cleanup();
  });

  it('takes the key in a header or the subprotocol list, never without one or in the query', async () => {
    const path = '/v1/functions/talker/logs/ws';
    assert.equal((await refusedUpgrade(server.url, path)).status, 401);
    assert.equal(
      (await refusedUpgrade(server.url, path, { protocols: ['savassan.logs.v1', 'bearer.wrong'] })).status,
      401,
    );
    assert.equal((await refusedUpgrade(server.url, `${path}?apiKey=${key}`)).status, 401);
    // Without a key even an unknown function is a 401: nothing is learnt about what exists.
    assert.equal((await refusedUpgrade(server.url, '/v1/functions/nope/logs/ws')).status, 401);

    const byHeader = await openLogSocket(server.url, 'talker', { ws: { headers: { authorization: `Bearer ${key}` } } });
    const byProtocol = await openLogSocket(server.url, 'talker', { protocols: ['savassan.logs.v1', `bearer.${key}`] });
    try {
      assert.equal(byProtocol.ws.protocol, 'savassan.logs.v1', 'the key is never echoed back');
      await server.client.invoke('talker', { tag: 'k', lines: 1 });
      await byHeader.until((f) => f.some((l) => l.type === 'line' && l.line === 'k 0'));
      await byProtocol.until((f) => f.some((l) => l.type === 'line' && l.line === 'k 0'));
    } finally {
      await byHeader.close();
      await byProtocol.close();
    }
  });
});

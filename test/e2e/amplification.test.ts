// What a caller could make the server do cheaply, through the HTTP API of a real `savassan start` process: rejected
// deploys that leave files behind, log listings built whole in memory, request bodies that never finish, loosely
// typed input, and a stop that hangs on open streams.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdir, open, unlink } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zipSync } from 'fflate';
import { ApiError } from '../../src/client/client.js';
import { readBundle } from '../../src/client/bundle.js';
import { apiError, eventually, repoRoot, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const fixture = (name: string) => join(repoRoot, 'test', 'fixtures', 'e2e', name);

/** Replaces an invocation's stored log with a FIFO: reading it blocks until the test writes to it. */
async function logAsFifo(server: ServerProcess, invocationId: string): Promise<string> {
  const record = await server.client.getInvocation(invocationId);
  assert.ok(record.logKey !== null);
  const fifo = join(server.dataDir, 'blobs', ...record.logKey.split('/'));
  await unlink(fifo);
  execFileSync('mkfifo', [fifo]);
  return fifo;
}
const text = (value: string): Uint8Array => Buffer.from(value);

/** Entries of a directory, or none when it does not exist. */
async function entries(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => []);
}

/** Sends `head` and part of a body on a raw connection, then waits; resolves with what the server answered. */
function stalledRequest(url: string, head: string, body: string): Promise<{ answer: string; gaveUp: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let answer = '';
    // Not a timing assertion: a server that never answers would hang the test; this ends it with a failure.
    const giveUp = setTimeout(() => {
      socket.destroy();
      resolve({ answer, gaveUp: true });
    }, 30_000);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(giveUp);
      resolve({ answer, gaveUp: false });
    });
    socket.write(head + body);
  });
}

describe('cheap amplification, end to end', () => {
  let server: ServerProcess;

  before(async () => {
    server = await startServer(['--queue-wait', '5', '--no-examples', '--request-timeout', '2']);
  });
  after(async () => {
    await server.cleanup();
  });

  it('leaves no blob and no extracted code behind after any rejected deploy', async () => {
    const blobs = join(server.dataDir, 'blobs', 'code');
    const code = join(server.dataDir, 'agent', 'code');
    // A small zip that extracts to 32 MiB and then fails to load.
    const filler = new Uint8Array(32 * 1024 * 1024);
    const rejected: [string, Uint8Array, Record<string, unknown>, RegExp][] = [
      ['not a zip', text('not a zip at all'), {}, /not a valid zip archive/],
      ['syntax error', zipSync({ 'index.js': text('exports.handler = ('), 'fill.bin': filler }), {}, /failed to load/],
      ['missing handler', zipSync({ 'index.js': text('exports.main = 1;'), 'fill.bin': filler }), {}, /failed to load/],
      ['over the size limit', zipSync({ 'big.bin': new Uint8Array(251 * 1024 * 1024) }), {}, /uncompresses to more/],
      [
        'a name over 255 bytes',
        zipSync({ 'index.js': text('1'), [`${'n'.repeat(300)}.js`]: text('1') }),
        {},
        /over 255/,
      ],
    ];
    for (const [what, zip, config, message] of rejected) {
      const err = await apiError(server.client.deploy('rejected', zip, config));
      assert.equal(err.status, 400, `${what}: ${err.message}`);
      assert.equal(err.code, 'INVALID_BUNDLE', what);
      assert.match(err.message, message, what);
      assert.ok(!err.message.includes(server.dataDir), `${what}: no host path in ${err.message}`);
      assert.deepEqual(await entries(blobs), [], `${what}: no code blob left`);
      assert.deepEqual(await entries(code), [], `${what}: no extracted code left`);
    }

    // Code shared with a live version stays when a deploy of it is rejected.
    const probe = await readBundle(fixture('probe'));
    const good = await server.client.deploy('shared', probe, {});
    const err = await apiError(server.client.deploy('shared-bad', probe, { handler: 'index.missing' }));
    assert.equal(err.code, 'INVALID_BUNDLE');
    assert.deepEqual(await entries(blobs), [`${good.version.codeSha256}.zip`]);
    assert.equal((await server.client.invoke('shared', {})).start, 'cold');
  });

  it('refuses loosely typed bodies and query strings with a 400 naming the field', async () => {
    const zip = Buffer.from(await readBundle(fixture('probe'))).toString('base64');
    const put = (body: Record<string, unknown>) =>
      server.client.json('PUT', '/v1/functions/typed', { code: zip, ...body });
    for (const [field, value] of [
      ['memoryMB', '256'],
      ['timeoutSeconds', '3'],
      ['network', 'true'],
      ['maxInstances', 2.5],
    ] as const) {
      const err = await apiError(put({ [field]: value }));
      assert.equal(err.status, 400, `${field}: ${err.message}`);
      assert.match(err.message, new RegExp(`body/${field}`), err.message);
    }
    await put({ memoryMB: 256 });
    for (const limit of ['abc', '0', '1001', '1e3', '-1', '']) {
      const err = await apiError(server.client.json('GET', `/v1/functions/typed/invocations?limit=${limit}`));
      assert.equal(err.status, 400, `limit=${limit}: ${err.message}`);
      assert.match(err.message, /querystring\/limit/);
    }
    const err = await apiError(server.client.json('GET', '/v1/functions/typed/logs?limit=2x'));
    assert.match(err.message, /querystring\/limit/);
    await server.client.json('GET', '/v1/functions/typed/invocations?limit=5');
  });

  it('answers a body that stops arriving with 408 REQUEST_TIMEOUT, on the invoke fast path and on Fastify routes', async () => {
    const cases = [
      `POST /v1/functions/anything/invoke HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n`,
      `PUT /v1/functions/anything HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`,
    ];
    for (const head of cases) {
      const { answer, gaveUp } = await stalledRequest(server.url, head, '{"a":');
      assert.equal(gaveUp, false, `the server never answered ${head.split(' ', 2).join(' ')}`);
      assert.match(answer, /^HTTP\/1\.1 408 /);
      assert.match(answer, /"code":"REQUEST_TIMEOUT"/);
    }
    // The timeout is for receiving the request: an invocation may run longer than it.
    await server.client.deploy('sleepy', await readBundle(fixture('sleepy')), { timeoutSeconds: 30 });
    const answer = await server.client.invoke('sleepy', { ms: 3000 });
    assert.equal(typeof (JSON.parse(answer.payload) as { pid: number }).pid, 'number');
  });

  it('streams a function log listing: its first logs arrive while a later one is still being read', async () => {
    await server.client.deploy('probe', await readBundle(fixture('probe')), {});
    const ids: string[] = [];
    for (let n = 0; n < 3; n++) ids.push((await server.client.invoke('probe', {})).invocationId);
    for (const id of ids) {
      await eventually(
        () => server.client.invocationLog(id).catch(() => ''),
        (log) => log.includes(id),
      );
    }
    // The newest log becomes a FIFO: reading it blocks until this test writes to it.
    const fifo = await logAsFifo(server, ids[2] ?? '');

    const { hostname, port } = new URL(server.url);
    let received = '';
    let releasedAt = -1;
    const done = new Promise<number>((resolve, reject) => {
      const req = request({ host: hostname, port, path: '/v1/functions/probe/logs?limit=3' }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          if (received === '') void release('first bytes');
          received += chunk;
        });
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    let released = false;
    const release = async (why: string): Promise<void> => {
      if (released) return;
      released = true;
      releasedAt = why === 'first bytes' ? received.length : -1;
      const writer = await open(fifo, 'w');
      await writer.write('fifo log line\n');
      await writer.close();
    };
    // A server that buffers the whole listing sends nothing until every log was read: release it anyway, later.
    const fallback = setTimeout(() => void release('gave up waiting'), 20_000);
    assert.equal(await done, 200);
    clearTimeout(fallback);
    assert.equal(releasedAt, 0, 'bytes of the listing arrived before its last log could be read');
    assert.ok(received.indexOf(ids[0] ?? '') < received.indexOf('fifo log line'), received);
    assert.ok(received.includes(`probe ${ids[1]}`), received);
  });
});

describe('an invocation log', () => {
  it('is streamed from the blob store: its first part arrives before the rest is written', async () => {
    const server = await startServer(['--no-examples']);
    try {
      await server.client.deploy('probe', await readBundle(fixture('probe')), {});
      const { invocationId } = await server.client.invoke('probe', {});
      await eventually(
        () => server.client.invocationLog(invocationId).catch(() => ''),
        (log) => log.includes(invocationId),
      );
      const fifo = await logAsFifo(server, invocationId);
      const { hostname, port } = new URL(server.url);
      let received = '';
      let firstPart: () => void = () => {};
      const sawFirstPart = new Promise<string>((resolve) => (firstPart = () => resolve('first part')));
      const done = new Promise<string>((resolve, reject) => {
        const req = request({ host: hostname, port, path: `/v1/invocations/${invocationId}/logs` }, (res) => {
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            received += chunk;
            if (received.includes('part one')) firstPart();
          });
          res.on('end', () => resolve(received));
        });
        req.on('error', reject);
        req.end();
      });
      const writer = await open(fifo, 'w');
      await writer.write('part one\n');
      // Not a timing assertion: a server that waits for the whole log would never send the first part.
      let giveUp: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        sawFirstPart,
        new Promise<string>((resolve) => (giveUp = setTimeout(() => resolve('nothing yet'), 20_000))),
      ]);
      clearTimeout(giveUp);
      await writer.write('part two\n');
      await writer.close();
      assert.equal(outcome, 'first part');
      assert.equal(await done, 'part one\npart two\n');
    } finally {
      await server.cleanup();
    }
  });
});

describe('stopping', () => {
  it('ends logs?follow=1 streams on SIGTERM instead of waiting for them', { timeout: 60_000 }, async () => {
    const server = await startServer(['--no-examples']);
    try {
      await server.client.deploy('probe', await readBundle(fixture('probe')), {});
      const { hostname, port } = new URL(server.url);
      let ended: Promise<string> = Promise.resolve('never opened');
      const status = await new Promise<number>((resolve, reject) => {
        const req = request({ host: hostname, port, path: '/v1/functions/probe/logs?follow=1' }, (res) => {
          res.resume();
          ended = new Promise((done) => {
            res.on('end', () => done('ended'));
            res.on('error', () => done('errored'));
          });
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 200);
      assert.equal(await server.stop('SIGTERM'), 0);
      assert.equal(await ended, 'ended');
    } finally {
      await server.cleanup();
    }
  });

  it('stops at once on a second signal, without waiting for in-flight invocations', { timeout: 60_000 }, async () => {
    const server = await startServer(['--no-examples', '--no-stem-cells']);
    try {
      await server.client.deploy('sleepy', await readBundle(fixture('sleepy')), { timeoutSeconds: 300 });
      const invocation = server.client.invoke('sleepy', { ms: 240_000 }).then(
        () => 'answered',
        (err: unknown) => (err instanceof ApiError ? `answered ${err.status}` : 'connection lost'),
      );
      await eventually(
        () => server.client.listNodes(),
        ({ nodes }) => (nodes[0]?.sandboxes ?? 0) > 0,
      );
      const exited = server.stop('SIGTERM');
      await eventually(
        () => Promise.resolve(server.output()),
        (output) => output.includes('SIGTERM: draining'),
      );
      server.child.kill('SIGTERM');
      assert.equal(await exited, 130);
      assert.equal(await invocation, 'connection lost');
      assert.match(server.output(), /SIGTERM again: stopping at once/);
    } finally {
      await server.cleanup();
    }
  });
});

describe('logs?follow=1 under back-pressure', () => {
  it('sends a backlog larger than the socket buffers whole, one log at a time, to a client that reads slowly', async () => {
    const server = await startServer(['--no-examples']);
    try {
      const chatty = join(repoRoot, 'test', 'fixtures', 'functions', 'chatty');
      await server.client.deploy('chatty', await readBundle(chatty), {});
      const ids: string[] = [];
      for (let i = 0; i < 10; i++) {
        ids.push((await server.client.invoke('chatty', { lines: 2000, width: 250 })).invocationId);
      }
      const { hostname, port } = new URL(server.url);
      const received = await new Promise<string[]>((resolve, reject) => {
        const req = request({ host: hostname, port, path: '/v1/functions/chatty/logs?follow=1&limit=10' }, (res) => {
          const seen: string[] = [];
          let buffer = '';
          // Read with pauses, so the server's writes fill the socket and must wait for it to drain.
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            buffer += chunk;
            let end;
            while ((end = buffer.indexOf('\n\n')) >= 0) {
              const frame = buffer.slice(0, end);
              buffer = buffer.slice(end + 2);
              const data = frame.split('\n').find((line) => line.startsWith('data: '));
              if (data !== undefined) seen.push((JSON.parse(data.slice(6)) as { invocationId: string }).invocationId);
            }
            if (seen.length === ids.length) {
              req.destroy();
              resolve(seen);
              return;
            }
            res.pause();
            setTimeout(() => res.resume(), 2);
          });
          res.on('error', () => undefined);
        });
        req.on('error', reject);
        req.end();
      });
      assert.deepEqual(received, ids);
    } finally {
      await server.cleanup();
    }
  });
});

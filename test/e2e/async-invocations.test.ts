// Asynchronous invocations end to end against a real `savassan start` process with real sandbox processes: accepted
// with 202 once queued, run by the dispatcher, retried, dead-lettered and redriven, sent to destinations (a function
// and a webhook received by a real HTTP server here), deduplicated by idempotency key, and refused with the right
// error for bad input.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import type { AsyncInvocationAnswer } from '../../src/client/client.js';
import type { DestinationRecord } from '../../src/events/destinations.js';
import { apiError, eventually, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

/** A bundle of one handler, given as the source of `exports.handler`. */
function bundle(handler: string): Uint8Array {
  return zipSync({ 'index.js': strToU8(`let calls = 0;\nexports.handler = ${handler};`) });
}

const succeeds = bundle('async (event) => ({ ok: true, echo: event })');
const fails = bundle('async () => { throw new TypeError("always fails"); }');
/** Fails its first two calls in a sandbox, then succeeds. */
const flaky = bundle(
  'async (event) => { calls += 1; if (calls <= 2) throw new Error(`call ${calls} fails`); return { calls }; }',
);

interface Received {
  headers: IncomingMessage['headers'];
  body: DestinationRecord;
}

describe('asynchronous invocations end to end', () => {
  let server: ServerProcess;
  let webhook: Server;
  let webhookUrl: string;
  const received: Received[] = [];
  const api = () => server.client;

  before(async () => {
    server = await startServer([
      '--no-examples',
      '--async-queue-capacity',
      '3',
      '--queue-wait',
      '2',
      '--allow-loopback-webhooks',
    ]);
    webhook = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => (text += chunk.toString()));
      req.on('end', () => {
        received.push({ headers: req.headers, body: JSON.parse(text) as DestinationRecord });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve));
    webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/hook?token=t`;
  });

  after(async () => {
    await server?.cleanup();
    await new Promise((resolve) => webhook?.close(resolve));
  });

  const state = (id: string) => api().getAsyncInvocation(id) as Promise<AsyncInvocationAnswer>;
  const settled = (id: string, timeoutMs = 15_000) =>
    eventually(
      () => state(id),
      (s) => s.state !== 'queued' && s.state !== 'running',
      timeoutMs,
    );
  const post = (path: string, body: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });

  it('answers 202 once queued, runs the event, and shows the attempt with its record', async () => {
    await api().deploy('echo', succeeds);
    const response = await post('/v1/functions/echo/invoke?async=1', '{"n":1}');
    assert.equal(response.status, 202);
    const { invocationId } = (await response.json()) as { invocationId: string };
    assert.equal(response.headers.get('x-savassan-invocation-id'), invocationId);
    const done = await settled(invocationId);
    assert.equal(done.state, 'succeeded');
    assert.equal(done.invocationType, 'event');
    assert.deepEqual(done.event, { n: 1 });
    assert.equal(done.attempts.length, 1);
    assert.equal(done.attempts[0]?.status, 'success');
    const record = await api().getInvocation(done.attempts[0].invocationId!);
    assert.equal(record.functionName, 'echo');
    assert.equal(record.status, 'success');

    // The header asks for the same; the CLI prints the id.
    const viaHeader = await post('/v1/functions/echo/invoke', '{}', { 'x-savassan-invocation-type': 'Event' });
    assert.equal(viaHeader.status, 202);
    const cli = await runCli(server.url, ['invoke', 'echo', '--async', '--data', '{"n":2}']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal((await settled(cli.stdout.trim())).state, 'succeeded');
  });

  it('dedupes an idempotency key: the same id comes back and the event runs once', async () => {
    const first = await api().invokeAsync('echo', { order: 42 }, { idempotencyKey: 'order-42' });
    const second = await api().invokeAsync('echo', { order: 42 }, { idempotencyKey: 'order-42' });
    assert.equal(second.invocationId, first.invocationId);
    assert.deepEqual([first.duplicate, second.duplicate], [false, true]);
    const done = await settled(first.invocationId);
    assert.equal(done.attempts.length, 1);
    assert.equal(done.idempotencyKey, 'order-42');
  });

  it('refuses bad input with the problem named, and queues nothing', async () => {
    const missing = await post('/v1/functions/ghost/invoke?async=1', '{}');
    assert.equal(missing.status, 404);
    const tooLarge = await post('/v1/functions/echo/invoke?async=1', JSON.stringify({ pad: 'x'.repeat(1024 * 1024) }));
    assert.equal(tooLarge.status, 413);
    assert.match(((await tooLarge.json()) as { error: { message: string } }).error.message, /1 MiB/);
    const notJson = await post('/v1/functions/echo/invoke?async=1', '{oops');
    assert.equal(notJson.status, 400);
    const badType = await post('/v1/functions/echo/invoke', '{}', { 'x-savassan-invocation-type': 'dry-run' });
    assert.equal(badType.status, 400);
    const conflicting = await post('/v1/functions/echo/invoke?async=0', '{}', {
      'x-savassan-invocation-type': 'event',
    });
    assert.equal(conflicting.status, 400);
    const badVersion = await post('/v1/functions/echo/invoke?async=1&qualifier=99', '{}');
    assert.equal(badVersion.status, 404);
    const badRetries = await apiError(api().deploy('echo', succeeds, { retries: -1 }));
    assert.equal(badRetries.status, 400);
    assert.match(badRetries.message, /retries must be an integer from 0 to 2/);
    const badDestination = await apiError(api().deploy('echo', succeeds, { onFailure: 'ftp://x' }));
    assert.equal(badDestination.status, 400);
    assert.equal((await api().listDeadLetters('echo')).deadLetters.length, 0);
  });

  it('answers 429 when the function queue is full', async () => {
    // A slow function with one at a time: the fourth event finds three queued or running (capacity 3).
    await api().deploy('slow', bundle('async () => { await new Promise((r) => setTimeout(r, 1500)); return 1; }'), {
      asyncConcurrency: 1,
    });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await api().invokeAsync('slow', { i })).invocationId);
    const full = await post('/v1/functions/slow/invoke?async=1', '{}');
    assert.equal(full.status, 429);
    assert.match(
      ((await full.json()) as { error: { message: string } }).error.message,
      /queue of function slow is full/,
    );
    for (const id of ids) assert.equal((await settled(id, 20_000)).state, 'succeeded', 'nothing accepted is lost');
  });

  it('retries a function error after the retry delay, then succeeds', async () => {
    await api().deploy('flaky', flaky, { retries: 2, retryDelaySeconds: 1 });
    const { invocationId } = await api().invokeAsync('flaky', {});
    const done = await settled(invocationId, 20_000);
    assert.equal(done.state, 'succeeded');
    assert.deepEqual(
      done.attempts.map((a) => a.status),
      ['error', 'error', 'success'],
    );
    assert.match(done.attempts[0]!.error!, /call 1 fails/);
    const gaps = [1, 2].map(
      (i) => Date.parse(done.attempts[i]!.startedAt) - Date.parse(done.attempts[i - 1]!.startedAt),
    );
    // ~1 s then ~2 s (±20% jitter): never sooner than the delay allows.
    assert.ok(gaps[0]! >= 800 && gaps[1]! >= 1600, `gaps ${gaps.join(', ')} ms`);
  });

  it('dead-letters an event whose retries are spent; a redrive runs it again and it succeeds', async () => {
    await api().deploy('broken', fails, { retries: 1, retryDelaySeconds: 1 });
    const { invocationId } = await api().invokeAsync('broken', { order: 7 });
    const dead = await settled(invocationId, 20_000);
    assert.equal(dead.state, 'dead_lettered');
    assert.equal(dead.attempts.length, 2);
    assert.match(dead.deadLetterReason!, /retries exhausted after 2 attempts/);
    const listed = await runCli(server.url, ['dlq', 'ls', 'broken']);
    assert.match(listed.stdout, new RegExp(invocationId));
    const shown = await runCli(server.url, ['dlq', 'show', 'broken', invocationId]);
    assert.match(shown.stdout, /always fails/);

    // Fixed: a new version succeeds; the redrive runs the live version.
    await api().deploy('broken', succeeds);
    const redrive = await runCli(server.url, ['dlq', 'redrive', 'broken', invocationId]);
    assert.equal(redrive.code, 0, redrive.stderr);
    const fixed = await settled(invocationId);
    assert.equal(fixed.state, 'succeeded');
    assert.deepEqual(
      fixed.attempts.map((a) => a.status),
      ['error', 'error', 'success'],
    );
    assert.equal((await api().listDeadLetters('broken')).deadLetters.length, 0);
    const missing = await apiError(api().redriveDeadLetter('broken', invocationId));
    assert.equal(missing.status, 404, 'no longer a dead letter');
  });

  it('purges dead letters', async () => {
    await api().deploy('doomed', fails, { retries: 0 });
    const ids = [(await api().invokeAsync('doomed', { a: 1 })).invocationId];
    ids.push((await api().invokeAsync('doomed', { a: 2 })).invocationId);
    for (const id of ids) assert.equal((await settled(id)).state, 'dead_lettered');
    const tooMany = await fetch(`${server.url}/v1/functions/doomed/dead-letters?limit=101`);
    assert.equal(tooMany.status, 400, 'an answer lists at most 100');
    // --all takes each once, though each fails again at once.
    const all = await runCli(server.url, ['dlq', 'redrive', 'doomed', '--all']);
    assert.equal(all.stdout.trim().split('\n').length, 2, all.stdout);
    for (const id of ids) {
      assert.equal(
        (
          await eventually(
            () => state(id),
            (s) => s.state === 'dead_lettered' && s.attempts.length === 2,
          )
        ).attempts.length,
        2,
      );
    }
    const purged = await runCli(server.url, ['dlq', 'purge', 'doomed']);
    assert.match(purged.stdout, /purged 2 dead letters/);
    assert.equal((await api().listDeadLetters('doomed')).deadLetters.length, 0);
  });

  it('sends the record of a success to a function and of a failure to a webhook', async () => {
    // The destination function fails on purpose with no retries, so what it was sent waits in its dead letters.
    await api().deploy('recorder', fails, { retries: 0 });
    await api().deploy('source', succeeds, { onSuccess: 'recorder' });
    const { invocationId } = await api().invokeAsync('source', { hello: 'world' });
    assert.equal((await settled(invocationId)).state, 'succeeded');
    const letters = await eventually(
      () => api().listDeadLetters('recorder'),
      (answer) => answer.deadLetters.length > 0,
    );
    const record = letters.deadLetters[0]!.event as DestinationRecord;
    assert.equal(record.version, '1.0');
    assert.equal(record.requestContext.requestId, invocationId);
    assert.equal(record.requestContext.condition, 'Success');
    assert.equal(record.requestContext.approximateInvokeCount, 1);
    assert.match(record.requestContext.functionArn, /:function:source:1$/);
    assert.deepEqual(record.requestPayload, { hello: 'world' });
    assert.deepEqual(record.responsePayload, { ok: true, echo: { hello: 'world' } });
    assert.equal(letters.deadLetters[0]!.source, 'destination:source');

    // A queue destination gets the record as a message.
    await api().createQueue('records');
    await api().deploy('queued', succeeds, { onSuccess: 'queue:records' });
    const toQueue = await api().invokeAsync('queued', { to: 'queue' });
    assert.equal((await settled(toQueue.invocationId)).state, 'succeeded');
    const depth = await eventually(
      () => api().getQueue('records'),
      (q) => q.depth === 1,
    );
    assert.equal(depth.depth, 1);

    // A webhook on loopback is reached only where the function's allowNet lists it.
    await api().deploy('hooked', fails, {
      retries: 0,
      onFailure: webhookUrl,
      network: true,
      allowNet: ['127.0.0.1/32'],
    });
    const failed = await api().invokeAsync('hooked', { n: 3 });
    assert.equal((await settled(failed.invocationId)).state, 'failed');
    const hit = await eventually(
      () => Promise.resolve(received.find((r) => r.body.requestContext.requestId === failed.invocationId)),
      (found) => found !== undefined,
    );
    assert.equal(hit!.body.requestContext.condition, 'RetriesExhausted');
    assert.equal(hit!.body.responseContext.functionError, 'Unhandled');
    assert.equal((hit!.body.responsePayload as { errorType: string }).errorType, 'TypeError');
    assert.equal(hit!.headers['content-type'], 'application/json');

    // Without allowNet the webhook is refused, and the event waits in the dead letters saying why.
    await api().deploy('unhooked', fails, { retries: 0, onFailure: webhookUrl });
    const refused = await api().invokeAsync('unhooked', {});
    const dead = await settled(refused.invocationId);
    assert.equal(dead.state, 'dead_lettered');
    assert.match(dead.deadLetterReason!, /may not reach.*--allow-net/);
  });
});

// Message queues and queue triggers end to end: the HTTP API and the CLI against a real `savassan start` process, and
// functions in real sandbox processes that receive SQS-shaped batches. Each function logs the event it got; the test
// reads those logs back through the API.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { apiError, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

/**
 * Logs each batch as one `BATCH {...}` line; fails a record whose body starts with `fail-always`, or `fail-once` on
 * its first receive (a partial batch response); throws for a batch holding `throw-once` on its first receive.
 */
const consumer = `
exports.handler = async (event) => {
  console.log('BATCH ' + JSON.stringify(event));
  const first = (r) => r.attributes.ApproximateReceiveCount === '1';
  if (event.Records.some((r) => r.body === 'throw-once' && first(r))) throw new Error('asked to throw');
  const failed = event.Records.filter(
    (r) => r.body.startsWith('fail-always') || (r.body.startsWith('fail-once') && first(r)),
  );
  return { batchItemFailures: failed.map((r) => ({ itemIdentifier: r.messageId })) };
};
`;

interface QueueRecord {
  messageId: string;
  receiptHandle: string;
  body: string;
  attributes: { ApproximateReceiveCount: string; SentTimestamp: string; ApproximateFirstReceiveTimestamp: string };
  messageAttributes: object;
  md5OfBody: string;
  eventSource: string;
  eventSourceARN: string;
  awsRegion: string;
}

/** Polls `probe` until it answers a value other than undefined (a minute at most: this is a wait, not a timing). */
async function eventually<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('queues end to end', () => {
  let server: ServerProcess;
  const api = () => server.client;
  const cli = (...args: string[]) => runCli(server.url, args);
  const post = async (path: string, body: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: JSON.parse(text) as { error?: { code: string; message: string } } };
  };

  /** Every record the function has logged so far, in the order of its batches. */
  const batchesOf = async (functionName: string): Promise<QueueRecord[][]> => {
    const logs = await api().functionLogs(functionName, 100);
    return [...logs.matchAll(/BATCH (\{.*\})/g)].map(
      (match) => (JSON.parse(match[1]!) as { Records: QueueRecord[] }).Records,
    );
  };
  const deployConsumer = async (name: string) => {
    await api().deploy(name, zipSync({ 'index.js': strToU8(consumer) }), { timeoutSeconds: 10 });
  };
  /** Waits until the queue holds nothing, waiting or in flight. */
  const drained = (queue: string) =>
    eventually(`queue ${queue} drained`, async () => {
      const stats = await api().getQueue(queue);
      return stats.depth === 0 && stats.inFlight === 0 ? stats : undefined;
    });

  before(async () => {
    server = await startServer(['--no-examples']);
  });
  after(async () => {
    await server.cleanup();
  });

  it('refuses bad sends with 400, 404 and 413, and loses nothing sent before or after', async () => {
    const missing = await post('/v1/queues/nowhere/messages', { body: 'x' });
    assert.equal(missing.status, 404);
    assert.match(missing.body.error!.message, /queue nowhere does not exist/);

    assert.equal((await api().createQueue('inbox')).created, true);
    assert.equal((await api().createQueue('inbox')).created, false, 'idempotent');
    assert.deepEqual((await api().sendMessages('inbox', ['kept-1'])).messageIds.length, 1);

    const tooMany = await post('/v1/queues/inbox/messages', {
      messages: Array.from({ length: 101 }, (_, i) => ({ body: `m${i}` })),
    });
    assert.equal(tooMany.status, 400);
    const tooLarge = await post('/v1/queues/inbox/messages', {
      messages: [{ body: 'small' }, { body: 'x'.repeat(256 * 1024 + 1) }],
    });
    assert.equal(tooLarge.status, 413);
    assert.match(tooLarge.body.error!.message, /message 1: the body is 262145 bytes/);
    for (const bad of [
      {},
      { body: 'a', messages: [{ body: 'b' }] },
      { body: 42 },
      { messages: [] },
      { messages: [{}] },
    ]) {
      assert.equal((await post('/v1/queues/inbox/messages', bad)).status, 400, JSON.stringify(bad));
    }
    const badChar = await post('/v1/queues/inbox/messages', { messages: [{ body: 'ok' }, { body: 'nul\u0000' }] });
    assert.equal(badChar.status, 400);
    assert.match(badChar.body.error!.message, /message 1/);
    assert.equal((await post('/v1/queues/bad%20name/messages', { body: 'x' })).status, 400);

    // The limits themselves pass: 100 messages, one of exactly 256 KiB.
    const full = await post('/v1/queues/inbox/messages', {
      messages: [{ body: 'x'.repeat(256 * 1024) }, ...Array.from({ length: 99 }, (_, i) => ({ body: `m${i}` }))],
    });
    assert.equal(full.status, 201);
    // A request larger than an invocation's event (6 MiB): 30 bodies of 256 KiB.
    const large = await post('/v1/queues/inbox/messages', {
      messages: Array.from({ length: 30 }, () => ({ body: 'y'.repeat(256 * 1024) })),
    });
    assert.equal(large.status, 201);
    assert.deepEqual(await api().getQueue('inbox'), {
      name: 'inbox',
      depth: 131,
      inFlight: 0,
      oldestAgeSeconds: (await api().getQueue('inbox')).oldestAgeSeconds,
    });
    const listed = await cli('queue', 'ls');
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^inbox\s+131\s+0\s+\d+s$/m);
    const purged = await cli('queue', 'purge', 'inbox');
    assert.equal(purged.code, 0, purged.stderr);
    assert.match(purged.stdout, /purged 131 messages from inbox/);
    assert.deepEqual(await api().getQueue('inbox'), { name: 'inbox', depth: 0, inFlight: 0, oldestAgeSeconds: null });
    assert.equal((await apiError(api().getQueue('nowhere'))).status, 404);
  });

  it('runs a function with SQS-shaped batches of what the CLI sent, and acknowledges them', async () => {
    await deployConsumer('consumer');
    assert.equal((await cli('queue', 'create', 'work')).code, 0);
    const file = join(server.dataDir, 'message.json');
    await writeFile(file, '{"from":"file"}');
    const sent = await cli('queue', 'send', 'work', 'one', 'two', '{"three":3}', '--file', file);
    assert.equal(sent.code, 0, sent.stderr);
    const ids = sent.stdout.trim().split('\n');
    assert.equal(ids.length, 4);

    const added = await cli('trigger', 'add', 'consumer', '--queue', 'work', '--batch-size', '10', '--window', '1s');
    assert.equal(added.code, 0, added.stderr);
    const triggerId = /added trigger ([0-9a-f]{16})/.exec(added.stdout)?.[1];
    assert.ok(triggerId, added.stdout);
    assert.deepEqual(
      (await api().listTriggers()).triggers.map((t) => [t.id, t.functionName, t.queue, t.batchSize, t.windowSeconds]),
      [[triggerId, 'consumer', 'work', 10, 1]],
    );

    await drained('work');
    const records = await eventually('the batches logged', async () => {
      const got = (await batchesOf('consumer')).flat();
      return got.length >= 4 ? got : undefined;
    });
    assert.deepEqual(records.map((r) => r.messageId).sort(), [...ids].sort(), 'every message once');
    assert.deepEqual(records.map((r) => r.body).sort(), ['one', 'two', '{"three":3}', '{"from":"file"}'].sort());
    for (const record of records) {
      assert.equal(record.eventSource, 'savassan:queue');
      assert.equal(record.eventSourceARN, 'arn:savassan:sqs:local:000000000000:work');
      assert.equal(record.awsRegion, 'local');
      assert.equal(record.md5OfBody, createHash('md5').update(record.body).digest('hex'));
      assert.equal(record.attributes.ApproximateReceiveCount, '1');
      assert.match(record.attributes.SentTimestamp, /^\d{13}$/);
      assert.match(record.attributes.ApproximateFirstReceiveTimestamp, /^\d{13}$/);
      assert.deepEqual(record.messageAttributes, {});
      assert.equal(typeof record.receiptHandle, 'string');
    }

    // A queue in use cannot go; once the trigger is removed it can, and sends to it are 404.
    assert.equal((await apiError(api().deleteQueue('work'))).status, 409);
    const removed = await cli('trigger', 'rm', triggerId);
    assert.equal(removed.code, 0, removed.stderr);
    assert.deepEqual((await api().listTriggers()).triggers, []);
    await api().deleteQueue('work');
    assert.equal((await apiError(api().sendMessages('work', ['late']))).status, 404);
  });

  it('redelivers only the items a partial batch response names, and the whole batch after a function error', async () => {
    await deployConsumer('partial');
    await api().createQueue('partial-q');
    await api().createTrigger({ functionName: 'partial', queue: 'partial-q', batchSize: 10, windowSeconds: 1 });
    await api().sendMessages('partial-q', ['ok-1', 'fail-once', 'ok-2']);
    await drained('partial-q');
    const seen = await eventually('the redelivery logged', async () => {
      const got = (await batchesOf('partial')).flat();
      return got.length >= 4 ? got : undefined;
    });
    const counts = (body: string) =>
      seen.filter((r) => r.body === body).map((r) => r.attributes.ApproximateReceiveCount);
    assert.deepEqual(counts('ok-1'), ['1'], 'acknowledged the first time');
    assert.deepEqual(counts('ok-2'), ['1']);
    assert.deepEqual(counts('fail-once'), ['1', '2'], 'received again, and acknowledged then');

    await deployConsumer('thrower');
    await api().createQueue('thrower-q');
    await api().createTrigger({ functionName: 'thrower', queue: 'thrower-q', batchSize: 10, windowSeconds: 1 });
    await api().sendMessages('thrower-q', ['plain', 'throw-once']);
    await drained('thrower-q');
    const thrown = await eventually('the retried batch logged', async () => {
      const got = (await batchesOf('thrower')).flat();
      return got.filter((r) => r.body === 'plain').length >= 2 ? got : undefined;
    });
    for (const body of ['plain', 'throw-once']) {
      assert.deepEqual(
        thrown
          .filter((r) => r.body === body)
          .map((r) => r.attributes.ApproximateReceiveCount)
          .slice(0, 2),
        ['1', '2'],
        `${body}: the failed batch came back whole`,
      );
    }
  });

  it('moves a message received more than maxReceives times to the dead-letter queue', async () => {
    await deployConsumer('poisoned');
    await api().createQueue('poison');
    await api().createQueue('poison-dlq');
    const notFound = await apiError(
      api().createTrigger({ functionName: 'poisoned', queue: 'poison', deadLetterQueue: 'no-such-dlq' }),
    );
    assert.equal(notFound.status, 404);
    assert.match(notFound.rawMessage, /dead-letter queue no-such-dlq/);
    assert.match(
      (await apiError(api().createTrigger({ functionName: 'ghost', queue: 'poison' }))).rawMessage,
      /function ghost/,
    );
    assert.match(
      (await apiError(api().createTrigger({ functionName: 'poisoned', queue: 'nope' }))).rawMessage,
      /queue nope/,
    );
    assert.equal(
      (await apiError(api().createTrigger({ functionName: 'poisoned', queue: 'poison', batchSize: 101 }))).status,
      400,
    );
    const added = await cli(
      'trigger',
      'add',
      'poisoned',
      '--queue',
      'poison',
      '--max-receives',
      '2',
      '--window',
      '0s',
      '--dead-letter-queue',
      'poison-dlq',
    );
    assert.equal(added.code, 0, added.stderr);
    await api().sendMessages('poison', ['fail-always', 'fine']);
    const dlq = await eventually('the message dead-lettered', async () => {
      const stats = await api().getQueue('poison-dlq');
      return stats.depth === 1 ? stats : undefined;
    });
    assert.equal(dlq.inFlight, 0);
    await drained('poison');
    assert.equal((await apiError(api().deleteQueue('poison-dlq'))).status, 409, 'the trigger dead-letters into it');
    const seen = (await batchesOf('poisoned')).flat();
    assert.deepEqual(
      seen.filter((r) => r.body === 'fail-always').map((r) => r.attributes.ApproximateReceiveCount),
      ['1', '2'],
      'run maxReceives times, then moved',
    );
    assert.deepEqual(
      seen.filter((r) => r.body === 'fine').map((r) => r.attributes.ApproximateReceiveCount),
      ['1'],
    );
    const listed = await cli('trigger', 'ls');
    assert.match(listed.stdout, /poisoned\s+poison\s+10\s+0s\s+4\s+2\s+poison-dlq/);
  });
});

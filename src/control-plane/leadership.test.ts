import assert from 'node:assert/strict';
import { after, afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { MemoryCluster } from '../adapters/memory/memory-cluster.js';
import { isPlatformError } from '../core/errors.js';
import { silentLogger } from '../core/logger.js';
import { Leadership } from './leadership.js';

async function until(condition: () => boolean, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`not within ${timeoutMs} ms: ${what}`);
    await sleep(5);
  }
}

describe('Leadership', () => {
  const root = new MemoryCluster({ leaderTtlSeconds: 5 });
  const opened: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const each of opened.splice(0)) await each.stop();
  });
  after(() => root.close());

  /** A candidate on its own client of the cluster, with a record of its leads and losses. */
  const candidate = (candidateId: string) => {
    const cluster = root.peer();
    const events: string[] = [];
    const leadership = new Leadership({
      cluster,
      candidateId,
      logger: silentLogger,
      onLead: () => events.push('lead'),
      onLose: () => events.push('lose'),
      retryMs: 10,
    });
    opened.push({
      stop: async () => {
        await leadership.stop();
        await cluster.close();
      },
    });
    return { leadership, events, cluster };
  };

  it('leads with a term, and campaigns again after a loss', async () => {
    const a = candidate('manager-a');
    assert.equal(a.leadership.term, 0);
    a.leadership.start();
    await until(() => a.leadership.leading, 'a leads');
    assert.ok(a.leadership.term > 0);
    assert.deepEqual(a.events, ['lead']);
    await a.leadership.stop();
    assert.equal(a.leadership.leading, false);
    assert.equal(a.leadership.term, 0);
    await until(() => a.events.length === 2, 'a loses');
    assert.deepEqual(a.events, ['lead', 'lose']);
    assert.equal(await a.cluster.leader(), null);
  });

  it('takes the lead over: the old leader loses and campaigns again, the taker campaigns again after its lead', async () => {
    const [a, b, c] = [candidate('manager-a'), candidate('manager-b'), candidate('manager-c')];
    a.leadership.start();
    await until(() => a.leadership.leading, 'a leads');
    b.leadership.start(); // waits behind a
    await sleep(20);
    const termA = a.leadership.term;

    const termB = await b.leadership.takeOver('manager-a');
    assert.ok(termB > termA);
    assert.equal(b.leadership.leading, true);
    assert.equal(b.leadership.term, termB);
    assert.deepEqual(b.events, ['lead']);
    await until(() => !a.leadership.leading, 'a loses');
    assert.deepEqual(a.events, ['lead', 'lose']);
    assert.equal((await root.leader())?.id, 'manager-b');

    // A taker leads once: taking over again, or from one that does not lead, is a conflict.
    await assert.rejects(b.leadership.takeOver('manager-a'), (err) => isPlatformError(err, 'CONFLICT'));
    await assert.rejects(c.leadership.takeOver('manager-a'), (err) => isPlatformError(err, 'CONFLICT'));

    // c takes over from b; b campaigns again, after a, which campaigned again when it lost.
    const termC = await c.leadership.takeOver('manager-b');
    assert.ok(termC > termB);
    await until(() => b.events.length === 2, 'b loses');
    await sleep(20);
    await c.leadership.stop();
    await until(() => a.leadership.leading, 'a leads again');
    assert.equal(b.leadership.leading, false);
    await a.leadership.stop();
    await until(() => b.leadership.leading, 'b leads again');
    assert.deepEqual(b.events, ['lead', 'lose', 'lead']);
    assert.ok(b.leadership.term > termC);
  });

  it('refuses a takeover once stopped', async () => {
    const a = candidate('manager-a');
    await a.leadership.stop();
    await assert.rejects(a.leadership.takeOver('manager-b'), (err) => isPlatformError(err, 'UNAVAILABLE'));
  });
});

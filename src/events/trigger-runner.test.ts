import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryMessageQueues } from '../adapters/memory/memory-message-queues.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { NewTrigger, QueueTrigger, TriggerStore } from '../core/ports/trigger-store.js';
import type { RanInvocation, RunInvocation } from './run-invocation.js';
import { TriggerRunner } from './trigger-runner.js';

/** Triggers held in an array: what the runner reads, changed by the test. */
class ListTriggerStore implements TriggerStore {
  triggers: QueueTrigger[] = [];
  add(trigger: Partial<QueueTrigger> & NewTrigger): QueueTrigger {
    const full: QueueTrigger = {
      id: `t${this.triggers.length + 1}`,
      batchSize: 10,
      windowSeconds: 0,
      maxConcurrency: 4,
      maxReceives: 5,
      deadLetterQueue: null,
      createdAt: new Date(),
      ...trigger,
    };
    this.triggers.push(full);
    return full;
  }
  create(): Promise<QueueTrigger> {
    return Promise.reject(new PlatformError('INTERNAL', 'not used'));
  }
  get(id: string): Promise<QueueTrigger | null> {
    return Promise.resolve(this.triggers.find((t) => t.id === id) ?? null);
  }
  list(): Promise<QueueTrigger[]> {
    return Promise.resolve([...this.triggers]);
  }
  delete(id: string): Promise<boolean> {
    const before = this.triggers.length;
    this.triggers = this.triggers.filter((t) => t.id !== id);
    return Promise.resolve(this.triggers.length < before);
  }
}

interface Call {
  functionName: string;
  bodies: string[];
  counts: string[];
  ids: string[];
}

function eventOf(bytes: Uint8Array): {
  Records: { body: string; messageId: string; attributes: Record<string, string> }[];
} {
  return JSON.parse(new TextDecoder().decode(bytes)) as ReturnType<typeof eventOf>;
}

function ran(result: unknown): RanInvocation {
  return {
    invocationId: 'inv',
    functionName: 'fn',
    version: 1,
    outcome: {
      status: 'success',
      payloadJson: new TextEncoder().encode(JSON.stringify(result)),
      durationMs: 1,
      peakMemoryBytes: null,
      logKey: null,
      reusable: true,
    },
  };
}

function capturingLogger(lines: string[]): Logger {
  const logger: Logger = {
    debug() {},
    info(_obj, msg) {
      if (msg !== undefined) lines.push(msg);
    },
    warn(_obj, msg) {
      if (msg !== undefined) lines.push(msg);
    },
    error(_obj, msg) {
      if (msg !== undefined) lines.push(msg);
    },
    child: () => logger,
  };
  return logger;
}

async function until(what: string, probe: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function setup(run: (call: Call) => Promise<RanInvocation>) {
  const queues = new MemoryMessageQueues();
  const triggers = new ListTriggerStore();
  const calls: Call[] = [];
  const lines: string[] = [];
  const runInvocation: RunInvocation = (functionName, bytes) => {
    const records = eventOf(bytes).Records;
    const call = {
      functionName,
      bodies: records.map((r) => r.body),
      counts: records.map((r) => r.attributes['ApproximateReceiveCount']!),
      ids: records.map((r) => r.messageId),
    };
    calls.push(call);
    return run(call);
  };
  const runner = new TriggerRunner({
    triggers,
    queues,
    run: runInvocation,
    functionTimeoutSeconds: () => Promise.resolve(5),
    logger: capturingLogger(lines),
    pollIntervalMs: 5,
    refreshIntervalMs: 10,
  });
  return { queues, triggers, calls, lines, runner };
}

describe('TriggerRunner', () => {
  it('acknowledges a batch that succeeded and releases only the items a partial response names', async () => {
    const { queues, triggers, calls, runner } = setup((call) =>
      Promise.resolve(
        ran({
          batchItemFailures: call.bodies
            .map((body, i) => (body === 'bad' && call.counts[i] === '1' ? { itemIdentifier: call.ids[i] } : null))
            .filter((item) => item !== null),
        }),
      ),
    );
    await queues.createQueue('q');
    await queues.send('q', ['a', 'bad', 'c']);
    triggers.add({ functionName: 'fn', queue: 'q' });
    runner.start();
    try {
      await until('drained', async () => (await queues.stats('q')).depth + (await queues.stats('q')).inFlight === 0);
    } finally {
      await runner.stop();
    }
    assert.deepEqual(calls[0]?.bodies, ['a', 'bad', 'c']);
    assert.deepEqual(
      calls.slice(1).flatMap((call) => call.bodies.map((body, i) => `${body}:${call.counts[i]}`)),
      ['bad:2'],
    );
  });

  it('releases the whole batch when the invocation fails, and drops a message past maxReceives without a dead-letter queue', async () => {
    const { queues, triggers, calls, lines, runner } = setup(() =>
      Promise.reject(new PlatformError('TOO_MANY_REQUESTS', 'no capacity')),
    );
    await queues.createQueue('q');
    await queues.send('q', ['x']);
    triggers.add({ functionName: 'fn', queue: 'q', maxReceives: 3 });
    runner.start();
    try {
      await until('dropped', () => lines.some((line) => line.startsWith('message dropped')));
    } finally {
      await runner.stop();
    }
    assert.deepEqual(
      calls.map((call) => call.counts),
      [['1'], ['2'], ['3']],
    );
    assert.deepEqual(await queues.stats('q'), { name: 'q', depth: 0, inFlight: 0, oldestSentAt: null });
  });

  it('sends a message past maxReceives to the dead-letter queue, then acknowledges it', async () => {
    const { queues, triggers, calls, runner } = setup((call) =>
      Promise.resolve(ran({ batchItemFailures: call.ids.map((id) => ({ itemIdentifier: id })) })),
    );
    await queues.createQueue('q');
    await queues.createQueue('dlq');
    await queues.send('q', ['poison']);
    triggers.add({ functionName: 'fn', queue: 'q', maxReceives: 2, deadLetterQueue: 'dlq' });
    runner.start();
    try {
      await until('dead-lettered', async () => (await queues.stats('dlq')).depth === 1);
    } finally {
      await runner.stop();
    }
    assert.equal(calls.length, 2);
    assert.equal((await queues.stats('q')).depth + (await queues.stats('q')).inFlight, 0);
    const [moved] = await queues.receive('dlq', { max: 1, visibilityMs: 1000 });
    assert.equal(moved?.body, 'poison');
  });

  it('runs at most maxConcurrency batches at once, and stop waits for those in flight', async () => {
    const waiting: (() => void)[] = [];
    let running = 0;
    let most = 0;
    const { queues, triggers, runner } = setup(async () => {
      running += 1;
      most = Math.max(most, running);
      await new Promise<void>((resolve) => waiting.push(resolve));
      running -= 1;
      return ran(null);
    });
    await queues.createQueue('q');
    await queues.send('q', ['1', '2', '3', '4', '5']);
    triggers.add({ functionName: 'fn', queue: 'q', batchSize: 1, maxConcurrency: 2 });
    runner.start();
    await until('two batches running', () => waiting.length === 2);
    let stopped = false;
    const stopping = runner.stop().then(() => {
      stopped = true;
    });
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(stopped, false, 'stop waits for the batches in flight');
    for (const resolve of waiting.splice(0)) resolve();
    await stopping;
    assert.equal(most, 2);
    assert.deepEqual(await queues.stats('q'), {
      name: 'q',
      depth: 3,
      inFlight: 0,
      oldestSentAt: (await queues.stats('q')).oldestSentAt,
    });
  });

  it("splits batches whose event would be over an invocation's 6 MiB, and loses no message doing so", async () => {
    const { queues, triggers, calls, runner } = setup(() => Promise.resolve(ran(null)));
    await queues.createQueue('q');
    const big = 'z'.repeat(256 * 1024);
    const ids = await queues.send(
      'q',
      Array.from({ length: 40 }, () => big),
    );
    triggers.add({ functionName: 'fn', queue: 'q', batchSize: 100 });
    runner.start();
    try {
      await until('drained', async () => (await queues.stats('q')).depth + (await queues.stats('q')).inFlight === 0);
    } finally {
      await runner.stop();
    }
    assert.ok(calls.length >= 2, `${calls.length} batches`);
    for (const call of calls) assert.ok(call.bodies.length * big.length < 6 * 1024 * 1024, `${call.bodies.length}`);
    assert.deepEqual(calls.flatMap((call) => call.ids).sort(), [...ids].sort());
  });

  it('starts a trigger added and stops one removed on its next read of the list', async () => {
    const { queues, triggers, runner } = setup(() => Promise.resolve(ran(null)));
    await queues.createQueue('q');
    runner.start();
    try {
      const trigger = triggers.add({ functionName: 'fn', queue: 'q' });
      await until('started', () => runner.running().includes(trigger.id));
      await triggers.delete(trigger.id);
      await until('stopped', () => runner.running().length === 0);
    } finally {
      await runner.stop();
    }
  });
});

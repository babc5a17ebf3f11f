import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryInvocationQueue } from '../adapters/memory/memory-invocation-queue.js';
import { PlatformError } from '../core/errors.js';
import type { QueuedInvocation } from '../core/ports/invocation-queue.js';
import { encodeAsyncEvent } from './async-event.js';
import { Destinations } from './destinations.js';
import { type DispatchSettings, Dispatcher } from './dispatcher.js';
import type { RanInvocation, RunInvocation } from './run-invocation.js';
import type { WorkflowNodeOutcome, WorkflowNodeSink } from './workflow-node-sink.js';

const settings: DispatchSettings = {
  retries: 2,
  maxEventAgeSeconds: 60,
  retryDelaySeconds: 1,
  asyncConcurrency: 10,
  onSuccess: null,
  onFailure: null,
  timeoutSeconds: 5,
  allowNet: [],
};

function ran(status: 'success' | 'error' = 'success'): RanInvocation {
  return {
    invocationId: `run-${Math.random()}`,
    functionName: 'fn',
    version: 1,
    outcome: {
      status,
      payloadJson: Buffer.from('{"ok":true}'),
      ...(status === 'error' ? { error: { name: 'Error', message: 'boom' } } : {}),
      durationMs: 1,
      peakMemoryBytes: null,
      logKey: null,
      reusable: true,
    },
  };
}

/** A dispatcher over a memory queue with fast polls and backoff; `clock.skew` moves the queue's clock. */
function setup(run: RunInvocation, overrides: Partial<DispatchSettings> = {}) {
  const clock = { skew: 0 };
  const queue = new MemoryInvocationQueue({ now: () => Date.now() + clock.skew });
  const dispatcher = new Dispatcher({
    queue,
    run,
    functions: () => Promise.resolve(['fn']),
    settings: () => Promise.resolve({ ...settings, ...overrides }),
    destinations: new Destinations({ submit: () => Promise.resolve() }),
    idlePollMs: 20,
    backoffMs: 10,
    random: () => 0.5,
  });
  const ended = async (id: string): Promise<QueuedInvocation> => {
    for (;;) {
      const event = await queue.get(id);
      if (event !== null && event.state !== 'queued' && event.state !== 'running') return event;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  return { queue, dispatcher, clock, ended };
}

const payload = encodeAsyncEvent('{"n":1}');

describe('Dispatcher', () => {
  it('retries a throttle with backoff, then succeeds', async () => {
    let calls = 0;
    const { queue, dispatcher, ended } = setup(() => {
      calls += 1;
      if (calls <= 2) return Promise.reject(new PlatformError('TOO_MANY_REQUESTS', 'max instances reached'));
      return Promise.resolve(ran());
    });
    const { id } = await queue.enqueue({ functionName: 'fn', payload });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(event.state, 'succeeded');
    assert.deepEqual(
      event.attempts.map((a) => a.status),
      ['throttled', 'throttled', 'success'],
    );
    assert.match(event.attempts[0]!.error!, /TOO_MANY_REQUESTS/);
    assert.equal(event.attempts[0]!.invocationId, null, 'a throttled attempt made no record');
  });

  it('retries a platform error until the event is too old, then dead-letters it', async () => {
    const { queue, dispatcher, ended } = setup(() => Promise.reject(new PlatformError('UNAVAILABLE', 'node gone')), {
      maxEventAgeSeconds: 0.3,
    });
    const { id } = await queue.enqueue({ functionName: 'fn', payload });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(event.state, 'dead_lettered');
    assert.match(event.deadLetterReason!, /older than the maximum event age/);
    assert.ok(event.attempts.length >= 2, `${event.attempts.length} attempts`);
    assert.ok(event.attempts.every((a) => a.status === 'platform_error'));
  });

  it('dead-letters at once when the function is gone', async () => {
    const { queue, dispatcher, ended } = setup(() =>
      Promise.reject(new PlatformError('NOT_FOUND', 'function fn not found')),
    );
    const { id } = await queue.enqueue({ functionName: 'fn', payload });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(event.state, 'dead_lettered');
    assert.equal(event.attempts.length, 1);
    assert.match(event.deadLetterReason!, /NOT_FOUND: function fn not found/);
  });

  it('does not run an event older than the maximum age: dead-lettered without an attempt', async () => {
    let calls = 0;
    const { queue, dispatcher, clock, ended } = setup(
      () => {
        calls += 1;
        return Promise.resolve(ran());
      },
      { maxEventAgeSeconds: 60 },
    );
    clock.skew = -61_000;
    const { id } = await queue.enqueue({ functionName: 'fn', payload });
    clock.skew = 0;
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(calls, 0);
    assert.equal(event.state, 'dead_lettered');
    assert.equal(event.attempts.length, 0);
  });

  it('runs at most asyncConcurrency events of a function at once', async () => {
    let running = 0;
    let most = 0;
    const { queue, dispatcher, ended } = setup(
      async () => {
        running += 1;
        most = Math.max(most, running);
        await new Promise((resolve) => setTimeout(resolve, 30));
        running -= 1;
        return ran();
      },
      { asyncConcurrency: 2 },
    );
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) ids.push((await queue.enqueue({ functionName: 'fn', payload })).id);
    dispatcher.start();
    for (const id of ids) assert.equal((await ended(id)).state, 'succeeded');
    await dispatcher.stop();
    assert.equal(most, 2);
  });

  it("a schedule's retries override the function's", async () => {
    const { queue, dispatcher, ended } = setup(() => Promise.resolve(ran('error')), { retries: 2 });
    const { id } = await queue.enqueue({ functionName: 'fn', payload: encodeAsyncEvent('{}', { retries: 0 }) });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(event.state, 'dead_lettered');
    assert.equal(event.attempts.length, 1);
  });
});

describe('Dispatcher, workflow node attempts', () => {
  const ref = { project: 'p', domain: 'd', name: 'e1', node: 'a', attempt: 1 };
  const workflowPayload = encodeAsyncEvent('{"n":1}', { retries: 0, workflow: ref });

  /** A sink that records what the dispatcher asked; `grant` says whether claims succeed. */
  function recordingSink(grant: boolean) {
    const calls: string[] = [];
    const outcomes: WorkflowNodeOutcome[] = [];
    const sink: WorkflowNodeSink = {
      claim: (claimed, timeoutSeconds) => {
        assert.deepEqual(claimed, ref);
        calls.push(`claim:${timeoutSeconds}`);
        return Promise.resolve(grant);
      },
      release: () => {
        calls.push('release');
        return Promise.resolve();
      },
      report: (_ref, outcome) => {
        calls.push(`report:${outcome.status}`);
        outcomes.push(outcome);
        return Promise.resolve();
      },
    };
    return { sink, calls, outcomes };
  }

  function dispatcherWith(sink: WorkflowNodeSink, run: RunInvocation) {
    const queue = new MemoryInvocationQueue();
    const dispatcher = new Dispatcher({
      queue,
      run,
      functions: () => Promise.resolve(['fn']),
      settings: () => Promise.resolve({ ...settings, onSuccess: 'elsewhere', onFailure: 'elsewhere' }),
      destinations: new Destinations({
        submit: () => Promise.reject(new Error('workflow attempts send no destination records')),
      }),
      idlePollMs: 20,
      backoffMs: 10,
      random: () => 0.5,
      workflowSink: sink,
    });
    const ended = async (id: string): Promise<QueuedInvocation> => {
      for (;;) {
        const event = await queue.get(id);
        if (event !== null && event.state !== 'queued' && event.state !== 'running') return event;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    return { queue, dispatcher, ended };
  }

  it('claims before running and reports the output after; no destination', async () => {
    const { sink, calls, outcomes } = recordingSink(true);
    let runs = 0;
    const { queue, dispatcher, ended } = dispatcherWith(sink, () => {
      runs += 1;
      return Promise.resolve(ran());
    });
    const { id } = await queue.enqueue({ functionName: 'fn', payload: workflowPayload });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(event.state, 'succeeded');
    assert.equal(runs, 1);
    assert.deepEqual(calls, ['claim:5', 'report:succeeded']);
    const outcome = outcomes[0]!;
    assert.equal(outcome.status, 'succeeded');
    assert.equal(outcome.status === 'succeeded' && Buffer.from(outcome.outputJson).toString(), '{"ok":true}');
  });

  it('does not run an attempt it cannot claim', async () => {
    const { sink, calls } = recordingSink(false);
    let runs = 0;
    const { queue, dispatcher, ended } = dispatcherWith(sink, () => {
      runs += 1;
      return Promise.resolve(ran());
    });
    const { id } = await queue.enqueue({ functionName: 'fn', payload: workflowPayload });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(runs, 0);
    assert.deepEqual(calls, ['claim:5']);
    assert.notEqual(event.state, 'dead');
  });

  it('reports a function error once, without retrying it (the engine retries with a new attempt)', async () => {
    const { sink, calls, outcomes } = recordingSink(true);
    let runs = 0;
    const { queue, dispatcher, ended } = dispatcherWith(sink, () => {
      runs += 1;
      return Promise.resolve(ran('error'));
    });
    const { id } = await queue.enqueue({ functionName: 'fn', payload: workflowPayload });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(runs, 1);
    assert.equal(event.state, 'failed');
    assert.deepEqual(calls, ['claim:5', 'report:failed']);
    assert.deepEqual(outcomes[0], {
      status: 'failed',
      invocationId: (outcomes[0] as { invocationId: string }).invocationId,
      code: 'FUNCTION_ERROR',
      message: 'Error: boom',
      kind: 'USER',
    });
  });

  it('gives a throttled attempt back and runs it later, after the backoff', async () => {
    const { sink, calls } = recordingSink(true);
    let runs = 0;
    const { queue, dispatcher, ended } = dispatcherWith(sink, () => {
      runs += 1;
      if (runs === 1) return Promise.reject(new PlatformError('TOO_MANY_REQUESTS', 'max instances reached'));
      return Promise.resolve(ran());
    });
    const { id } = await queue.enqueue({ functionName: 'fn', payload: workflowPayload });
    dispatcher.start();
    const event = await ended(id);
    await dispatcher.stop();
    assert.equal(event.state, 'succeeded');
    assert.deepEqual(calls, ['claim:5', 'release', 'claim:5', 'report:succeeded']);
    assert.deepEqual(
      event.attempts.map((a) => a.status),
      ['throttled', 'success'],
    );
  });
});

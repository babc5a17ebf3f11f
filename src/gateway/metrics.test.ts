import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { InvocationResult } from './invoker.js';
import { GatewayMetrics } from './metrics.js';

function result(
  functionName: string,
  status: InvocationResult['outcome']['status'],
  start: 'cold' | 'warm',
  version = 1,
) {
  return {
    invocationId: 'id',
    functionName,
    version,
    alias: 'live',
    start,
    initMs: null,
    memoryMB: 256,
    outcome: { status, durationMs: 1, peakMemoryBytes: null, logKey: null, reusable: true },
  } satisfies InvocationResult;
}

/** The value of one sample line of the Prometheus text, or null when there is none. */
function sample(text: string, line: string): number | null {
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found === undefined ? null : Number(found.slice(line.length + 1));
}

describe('GatewayMetrics', () => {
  it('counts every invocation and duration by the time it is scraped, across scrapes', async () => {
    const metrics = new GatewayMetrics();
    metrics.observe(result('a', 'success', 'cold'), 0.02);
    for (let i = 0; i < 3; i++) metrics.observe(result('a', 'success', 'warm'), 0.0004);
    metrics.observe(result('b', 'error', 'warm'), 0.003);
    metrics.rejected('TOO_MANY_REQUESTS');
    let text = await metrics.render();
    assert.equal(sample(text, 'savassan_invocations_total{function="a",version="1",status="success",start="cold"}'), 1);
    assert.equal(sample(text, 'savassan_invocations_total{function="a",version="1",status="success",start="warm"}'), 3);
    assert.equal(sample(text, 'savassan_invocations_total{function="b",version="1",status="error",start="warm"}'), 1);
    assert.equal(sample(text, 'savassan_invocations_rejected_total{code="TOO_MANY_REQUESTS"}'), 1);
    assert.equal(sample(text, 'savassan_invocation_seconds_count{start="warm"}'), 4);
    assert.equal(sample(text, 'savassan_invocation_seconds_bucket{le="0.001",start="warm"}'), 3);
    assert.equal(sample(text, 'savassan_invocation_seconds_count{start="cold"}'), 1);

    metrics.observe(result('a', 'success', 'warm'), 0.0004);
    text = await metrics.render();
    assert.equal(sample(text, 'savassan_invocations_total{function="a",version="1",status="success",start="warm"}'), 4);
    assert.equal(sample(text, 'savassan_invocation_seconds_count{start="warm"}'), 5);
  });

  it('counts the invocations of each version apart', async () => {
    const metrics = new GatewayMetrics();
    for (let i = 0; i < 9; i++) metrics.observe(result('a', 'success', 'warm', 1), 0.001);
    metrics.observe(result('a', 'success', 'warm', 2), 0.001);
    metrics.observe(result('a', 'error', 'warm', 2), 0.001);
    const text = await metrics.render();
    assert.equal(sample(text, 'savassan_invocations_total{function="a",version="1",status="success",start="warm"}'), 9);
    assert.equal(sample(text, 'savassan_invocations_total{function="a",version="2",status="success",start="warm"}'), 1);
    assert.equal(sample(text, 'savassan_invocations_total{function="a",version="2",status="error",start="warm"}'), 1);
  });

  it('counts errors, function durations and cold-start init times by function and version', async () => {
    const metrics = new GatewayMetrics();
    metrics.observe({ ...result('a', 'success', 'cold', 1), initMs: 120 }, 0.2);
    metrics.observe(result('a', 'timeout', 'warm', 1), 1);
    metrics.observe(result('a', 'error', 'warm', 2), 0.001);
    metrics.observe(result('a', 'error', 'warm', 2), 0.001);
    const text = await metrics.render();
    assert.equal(sample(text, 'savassan_invocation_errors_total{function="a",version="1",status="timeout"}'), 1);
    assert.equal(sample(text, 'savassan_invocation_errors_total{function="a",version="2",status="error"}'), 2);
    assert.doesNotMatch(text, /savassan_invocation_errors_total\{[^}]*status="success"/);
    assert.equal(sample(text, 'savassan_invocation_duration_seconds_count{function="a",version="1",start="cold"}'), 1);
    assert.equal(sample(text, 'savassan_invocation_duration_seconds_count{function="a",version="2",start="warm"}'), 2);
    assert.equal(sample(text, 'savassan_invocation_init_duration_seconds_count{function="a",version="1"}'), 1);
    assert.equal(
      sample(text, 'savassan_invocation_init_duration_seconds_bucket{le="0.1",function="a",version="1"}'),
      0,
    );
    assert.equal(
      sample(text, 'savassan_invocation_init_duration_seconds_bucket{le="0.25",function="a",version="1"}'),
      1,
    );
    assert.equal(sample(text, 'savassan_invocation_init_duration_seconds_count{function="a",version="2"}'), null);
    metrics.forgetFunction('a');
    assert.doesNotMatch(await metrics.render(), /function="a"/);
  });

  it('keeps counting exactly when many invocations come between scrapes', async () => {
    const metrics = new GatewayMetrics();
    for (let i = 0; i < 10_000; i++) metrics.observe(result('a', 'success', 'warm'), 0.0002);
    const text = await metrics.render();
    assert.equal(
      sample(text, 'savassan_invocations_total{function="a",version="1",status="success",start="warm"}'),
      10_000,
    );
    assert.equal(sample(text, 'savassan_invocation_seconds_count{start="warm"}'), 10_000);
  });

  it("removes every series of a deleted function, counted or still pending, and keeps the others'", async () => {
    const metrics = new GatewayMetrics();
    metrics.observe(result('gone', 'success', 'warm', 1), 0.001);
    metrics.observe(result('gone', 'error', 'cold', 2), 0.001);
    metrics.observe(result('kept', 'success', 'warm', 1), 0.001);
    let text = await metrics.render();
    assert.equal(
      sample(text, 'savassan_invocations_total{function="gone",version="2",status="error",start="cold"}'),
      1,
    );
    metrics.observe(result('gone', 'success', 'warm', 3), 0.001); // pending: not scraped yet
    metrics.forgetFunction('gone');
    text = await metrics.render();
    assert.doesNotMatch(text, /function="gone"/);
    assert.equal(
      sample(text, 'savassan_invocations_total{function="kept",version="1",status="success",start="warm"}'),
      1,
    );
    // Created again, it counts from zero.
    metrics.observe(result('gone', 'success', 'warm', 1), 0.001);
    text = await metrics.render();
    assert.equal(
      sample(text, 'savassan_invocations_total{function="gone",version="1",status="success",start="warm"}'),
      1,
    );
  });

  it('reads pools, nodes and queues at each scrape, each backend once, and counts the reads that fail', async () => {
    const metrics = new GatewayMetrics();
    let keyReads = 0;
    let poolDown = false;
    metrics.watchPlatform({
      pool: {
        keys: () => {
          keyReads += 1;
          return poolDown ? Promise.reject(new Error('down')) : Promise.resolve(['f:inc@2', 'not a pool key']);
        },
        stats: () => Promise.resolve({ idle: 3, checkedOut: 2, waiters: 1 }),
      },
      nodes: () => Promise.resolve([{ nodeId: 'n1', sandboxes: 5, capacity: 8, stemCells: { idle: 2, starting: 1 } }]),
      invocations: {
        stats: () => Promise.resolve({ queued: 4, running: 1, deadLettered: 0, oldestEnqueuedAt: null }),
      },
      messageQueues: {
        listStats: () => Promise.resolve([{ name: 'q', depth: 7, inFlight: 2, oldestSentAt: null }]),
      },
      metadata: { listFunctions: () => Promise.reject(new Error('database down')) },
    });
    let text = await metrics.render();
    assert.equal(keyReads, 1, 'the three pool gauges share one read');
    assert.equal(sample(text, 'savassan_pool_instances{function="f",version="2",state="idle"}'), 3);
    assert.equal(sample(text, 'savassan_pool_instances{function="f",version="2",state="busy"}'), 2);
    assert.equal(sample(text, 'savassan_pool_waiters{function="f",version="2"}'), 1);
    assert.equal(sample(text, 'savassan_concurrent_executions{function="f"}'), 2);
    assert.equal(sample(text, 'savassan_node_sandboxes{node="n1"}'), 5);
    assert.equal(sample(text, 'savassan_node_capacity{node="n1"}'), 8);
    assert.equal(sample(text, 'savassan_node_stem_cells{node="n1",state="starting"}'), 1);
    assert.equal(sample(text, 'savassan_queue_depth{queue="q"}'), 7);
    assert.equal(sample(text, 'savassan_queue_in_flight{queue="q"}'), 2);
    assert.equal(sample(text, 'savassan_backend_errors_total{backend="metadata",operation="list functions"}'), 1);
    assert.doesNotMatch(text, /^savassan_async_queue_events\{/m);

    poolDown = true;
    text = await metrics.render();
    assert.equal(keyReads, 2);
    assert.doesNotMatch(text, /^savassan_pool_instances\{/m, 'no stale figures');
    assert.equal(sample(text, 'savassan_backend_errors_total{backend="pool",operation="keys"}'), 1);
  });
});

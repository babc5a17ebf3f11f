// The event loop delay monitor on this process's real loop: nothing before the first sample, a blocked loop shows
// in the worst delay, the figures are ordered, and stop keeps the last window readable.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { LoopDelayMonitor } from './loop-delay.js';

/** Keeps this thread busy for `ms`: every timer due meanwhile runs late by up to that much. */
function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // busy
  }
}

describe('LoopDelayMonitor', () => {
  it('has no figures before its first sample', () => {
    const monitor = new LoopDelayMonitor({ resolutionMs: 10 });
    assert.equal(monitor.figures(), null);
    monitor.start();
    assert.equal(monitor.figures(), null);
    monitor.stop();
  });

  it('shows a blocked loop in its worst delay, with p50 <= p99 <= max', async () => {
    const monitor = new LoopDelayMonitor({ resolutionMs: 10 });
    monitor.start();
    await sleep(50);
    block(200);
    // The sampling timer that was due during the block runs now, and records it.
    await sleep(50);
    const figures = monitor.figures();
    assert.ok(figures !== null);
    assert.ok(figures.max >= 150, JSON.stringify(figures));
    assert.ok(figures.p50 >= 0 && figures.p50 <= figures.p99 && figures.p99 <= figures.max, JSON.stringify(figures));
    monitor.stop();
    // Stopped: the last window stays readable; stopping twice is harmless, and it can start again.
    assert.deepEqual(monitor.figures(), figures);
    monitor.stop();
    monitor.start();
    assert.deepEqual(monitor.figures(), figures);
    monitor.stop();
  });

  it('starts a new window after windowMs, showing the last one until the new one has a sample', async () => {
    const monitor = new LoopDelayMonitor({ resolutionMs: 10, windowMs: 400 });
    monitor.start();
    await sleep(50);
    block(200);
    await sleep(20);
    assert.ok((monitor.figures()?.max ?? 0) >= 150);
    // Windows roll over while the loop is idle: the block leaves the figures once a window without it is reported.
    let figures = monitor.figures();
    while (figures !== null && figures.max >= 150) {
      await sleep(100);
      figures = monitor.figures();
    }
    assert.ok(figures !== null);
    assert.ok(figures.max < 150, JSON.stringify(figures));
    monitor.stop();
  });
});

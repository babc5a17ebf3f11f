import assert from 'node:assert/strict';
import { test } from 'node:test';
import { reportLine } from './report.js';

test('a cold REPORT line shows duration, init, memory used of the limit and the start', () => {
  const line = reportLine({
    id: 'abc',
    durationMs: 3.2,
    initMs: 41.4,
    peakMemoryBytes: 52 * 1024 * 1024,
    memoryMB: 256,
    start: 'cold',
  });
  assert.equal(line, 'REPORT abc Duration: 3.20 ms Init: 41 ms Memory: 52/256 MB start: cold');
});

test('a warm REPORT line has no Init, and says ? for what is not known', () => {
  const line = reportLine({
    id: 'abc',
    durationMs: 0.5,
    initMs: null,
    peakMemoryBytes: null,
    memoryMB: null,
    start: 'warm',
  });
  assert.equal(line, 'REPORT abc Duration: 0.50 ms Memory: ?/? MB start: warm');
});

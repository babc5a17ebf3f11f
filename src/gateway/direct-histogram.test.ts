import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Histogram, Registry } from 'prom-client';
import { DirectHistogram } from './direct-histogram.js';

describe('DirectHistogram', () => {
  it("prints exactly what prom-client's Histogram prints for the same observations", async () => {
    const bounds = [0.001, 0.01, 0.1, 1];
    const values: [string, string, number][] = [
      ['a', '1', 0.0005],
      ['a', '1', 0.001],
      ['a', '1', 0.05],
      ['a', '2', 3],
      ['b', '1', 0.2],
    ];
    const theirs = new Registry();
    const reference = new Histogram({
      name: 'h_seconds',
      help: 'help text',
      labelNames: ['function', 'version'] as const,
      buckets: bounds,
      registers: [theirs],
    });
    const ours = new Registry();
    const direct = new DirectHistogram<'function' | 'version'>(ours, 'h_seconds', 'help text', bounds);
    for (const [fn, version, value] of values) {
      reference.observe({ function: fn, version }, value);
      direct.observe(direct.series(`${fn} ${version}`, { function: fn, version }), value);
    }
    assert.equal(await ours.metrics(), await theirs.metrics());

    direct.removeWhere((labels) => labels.function === 'a');
    reference.remove({ function: 'a', version: '1' });
    reference.remove({ function: 'a', version: '2' });
    assert.equal(await ours.metrics(), await theirs.metrics());
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoutingTable } from './ports/cluster.js';
import { maxTrafficEntries, trafficChanges, withTrafficChange } from './routing-table.js';

const table = (version: number, traffic?: Record<string, number>): RoutingTable => ({
  version,
  agents: {},
  updatedAt: 0,
  ...(traffic === undefined ? {} : { traffic }),
});

describe('withTrafficChange', () => {
  it('gives the changed functions the new version and keeps the others', () => {
    assert.deepEqual(withTrafficChange(undefined, ['beta'], 3), { beta: 3 });
    assert.deepEqual(withTrafficChange({ alpha: 1, beta: 3 }, ['alpha'], 4), { alpha: 4, beta: 3 });
    assert.deepEqual(withTrafficChange({ alpha: 1 }, [], 4), { alpha: 1 });
  });

  it('keeps only the functions changed last', () => {
    const many = Object.fromEntries(Array.from({ length: maxTrafficEntries }, (_, i) => [`fn-${i}`, i + 1]));
    const next = withTrafficChange(many, ['newest'], maxTrafficEntries + 1);
    assert.equal(Object.keys(next).length, maxTrafficEntries);
    assert.equal(next['newest'], maxTrafficEntries + 1);
    assert.equal('fn-0' in next, false, 'the oldest entry went');
  });
});

describe('trafficChanges', () => {
  it('names the functions whose revision is new or different', () => {
    assert.deepEqual(trafficChanges(null, table(1)), []);
    assert.deepEqual(trafficChanges(null, table(2, { alpha: 2 })), ['alpha']);
    assert.deepEqual(trafficChanges(table(2, { alpha: 2 }), table(3, { alpha: 2 })), []);
    assert.deepEqual(trafficChanges(table(2, { alpha: 2 }), table(5, { alpha: 5, beta: 4 })), ['alpha', 'beta']);
    // Names that are also Object.prototype's keys are names like any other.
    assert.deepEqual(trafficChanges(table(1, {}), table(2, { constructor: 2 })), ['constructor']);
  });
});

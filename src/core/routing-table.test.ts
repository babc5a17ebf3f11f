import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoutingTable } from './ports/cluster.js';
import {
  maxStoredTrafficEntries,
  maxTrafficEntries,
  routingTableFromStored,
  trafficChanges,
  withTrafficChange,
} from './routing-table.js';

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

describe('routingTableFromStored', () => {
  it('keeps a valid table as it is', () => {
    const stored = { version: 3, agents: { a: 'h:1' }, updatedAt: 9, traffic: { shop: 3, zero: 0 } };
    assert.deepEqual(routingTableFromStored(stored), { table: stored, dropped: [] });
    assert.deepEqual(routingTableFromStored({ version: 0, agents: {}, updatedAt: 0 }), {
      table: { version: 0, agents: {}, updatedAt: 0 },
      dropped: [],
    });
  });

  it('drops revisions, times and addresses that are not what a push can encode', () => {
    const read = routingTableFromStored({
      version: 3,
      agents: { a: 'h:1', b: 2, c: null },
      updatedAt: -5,
      traffic: { ok: 2, neg: -1, frac: 0.5, big: 2 ** 53, inf: 1e308, text: '3', obj: {} },
    });
    assert.deepEqual(read?.table, { version: 3, agents: { a: 'h:1' }, updatedAt: 0, traffic: { ok: 2 } });
    assert.deepEqual(read?.dropped, [
      'agents.b',
      'agents.c',
      'updatedAt',
      'traffic.neg',
      'traffic.frac',
      'traffic.big',
      'traffic.inf',
      'traffic.text',
      'traffic.obj',
    ]);
    assert.deepEqual(routingTableFromStored({ version: 1, agents: {}, updatedAt: 1, traffic: [1] })?.table, {
      version: 1,
      agents: {},
      updatedAt: 1,
    });
  });

  it(`drops traffic that names more than ${maxStoredTrafficEntries} functions`, () => {
    const traffic = Object.fromEntries(Array.from({ length: maxStoredTrafficEntries + 1 }, (_, i) => [`f${i}`, 1]));
    const read = routingTableFromStored({ version: 1, agents: {}, updatedAt: 1, traffic });
    assert.equal(read?.table.traffic, undefined);
    assert.match(read?.dropped[0] ?? '', /^traffic \(100001 entries, over 100000\)$/);
  });

  it('refuses what is no table: no object, a version that is not a safe whole number >= 0, no agents', () => {
    for (const value of [
      null,
      'x',
      [],
      { agents: {} },
      { version: -1, agents: {} },
      { version: 1.5, agents: {} },
      { version: 2 ** 53, agents: {} },
      { version: '1', agents: {} },
      { version: 1 },
      { version: 1, agents: [] },
    ]) {
      assert.equal(routingTableFromStored(value), null, JSON.stringify(value));
    }
  });
});

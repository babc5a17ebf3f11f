import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { enforcementClaims } from './cluster-checks.js';

describe('enforcementClaims', () => {
  const memory = { mechanism: 'cgroup memory.limit', enforced: true, note: 'cgroup v1' };

  it('keeps a well-formed report as it is', () => {
    const report = { memory, network: { mechanism: 'none', enforced: false, note: 'no namespace' } };
    assert.deepEqual(enforcementClaims(report), report);
  });

  it('leaves out what a registry entry could abuse: odd names, wrong types, long text, extra fields', () => {
    const claimed = {
      memory: { ...memory, extra: 'x'.repeat(10_000) },
      __proto__x: memory,
      'bad name': memory,
      ['a'.repeat(33)]: memory,
      cpu: { mechanism: 'cfs', enforced: 'yes', note: '' },
      pids: { mechanism: 'x'.repeat(301), enforced: true, note: '' },
      tmp: null,
    };
    assert.deepEqual(enforcementClaims(claimed), { memory });
    for (const notAReport of [undefined, null, 'memory', 42, [memory], {}]) {
      assert.equal(enforcementClaims(notAReport), undefined);
    }
  });

  it('keeps at most 32 limits', () => {
    const many = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`limit${i}`, memory]));
    assert.equal(Object.keys(enforcementClaims(many) ?? {}).length, 32);
  });
});

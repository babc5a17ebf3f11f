import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { enforcementClaims, launchArgsClaim, nodeUrlClaim } from './cluster-checks.js';

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

describe('launchArgsClaim', () => {
  it('keeps up to 100 strings of up to 1000 characters without control characters', () => {
    assert.deepEqual(launchArgsClaim([]), []);
    const args = ['--port', '8080', '--data-dir', '/var/lib/savassan', 'x'.repeat(1000)];
    assert.deepEqual(launchArgsClaim(args), args);
    assert.equal(launchArgsClaim(Array.from({ length: 100 }, () => 'a'))?.length, 100);
  });

  it('is no claim for anything else', () => {
    for (const claimed of [
      undefined,
      null,
      '--port 8080',
      { 0: 'a' },
      [1],
      ['ok', null],
      ['x'.repeat(1001)],
      ['tab\there'],
      ['nul\u0000'],
      Array.from({ length: 101 }, () => 'a'),
    ]) {
      assert.equal(launchArgsClaim(claimed), undefined, JSON.stringify(claimed));
    }
  });
});

describe('nodeUrlClaim', () => {
  it('keeps an http(s) URL and nothing else', () => {
    assert.equal(nodeUrlClaim('http://10.0.0.1:8080'), 'http://10.0.0.1:8080');
    assert.equal(nodeUrlClaim('https://api.example.com/'), 'https://api.example.com/');
    for (const claimed of [undefined, 8080, '', 'not a url', 'ftp://h/', 'javascript:alert(1)', 'http://a b/']) {
      assert.equal(nodeUrlClaim(claimed), undefined, String(claimed));
    }
    assert.equal(nodeUrlClaim(`http://h/${'x'.repeat(2048)}`), undefined);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isNetworkFailure, offlineHint, withOfflineHint } from './network-hint.js';

function errorWith(fields: Record<string, unknown>, message = 'failed'): Error {
  return Object.assign(new Error(message), fields);
}

describe('the offline hint of the guest', () => {
  it('recognises a failed lookup or connection, also as the cause of fetch failed or in an AggregateError', () => {
    for (const code of ['EAI_AGAIN', 'ENOTFOUND', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL']) {
      assert.equal(isNetworkFailure(errorWith({ code })), true, code);
    }
    const fetchFailed = new TypeError('fetch failed', { cause: errorWith({ code: 'EAI_AGAIN' }) });
    assert.equal(isNetworkFailure(fetchFailed), true);
    const aggregate = new AggregateError([errorWith({ code: 'ENETUNREACH' })], 'all failed');
    assert.equal(isNetworkFailure(new TypeError('fetch failed', { cause: aggregate })), true);
    assert.equal(isNetworkFailure(errorWith({ code: 'ECONNREFUSED', address: '93.184.216.34' })), true);
  });

  it('leaves other errors alone: a refused loopback connection works without a network', () => {
    assert.equal(isNetworkFailure(errorWith({ code: 'ECONNREFUSED', address: '127.0.0.1' })), false);
    assert.equal(isNetworkFailure(errorWith({ code: 'ECONNREFUSED', address: '::1' })), false);
    assert.equal(isNetworkFailure(errorWith({ code: 'ENOENT' })), false);
    assert.equal(isNetworkFailure(new TypeError('fetch failed', { cause: new Error('bad port') })), false);
    assert.equal(isNetworkFailure('EAI_AGAIN'), false);
    assert.equal(isNetworkFailure(null), false);
    const loop: { cause?: unknown } = {};
    loop.cause = loop;
    assert.equal(isNetworkFailure(loop), false);
  });

  it('adds the hint to the message and the first line of the stack, only offline, and only once', () => {
    const error = new TypeError('fetch failed', { cause: errorWith({ code: 'EAI_AGAIN' }) });
    const wire = { name: 'TypeError', message: 'fetch failed', stack: 'TypeError: fetch failed\n    at handler' };
    const hinted = withOfflineHint(wire, error, true);
    assert.equal(hinted.message, `fetch failed${offlineHint}`);
    assert.equal(hinted.stack, `TypeError: fetch failed${offlineHint}\n    at handler`);
    assert.deepEqual(withOfflineHint(hinted, error, true), hinted);
    assert.deepEqual(withOfflineHint(wire, error, false), wire);
    assert.deepEqual(withOfflineHint(wire, new Error('other'), true), wire);
  });
});

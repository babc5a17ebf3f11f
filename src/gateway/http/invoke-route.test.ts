import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { maxEventBytes } from '../../core/function-config.js';
import { apiKeyCheck } from './api-keys.js';
import { fastPathTarget, requestHeaders } from './invoke-route.js';

/** The function the fast path takes a request for, null where it leaves it to Fastify (no qualifier expected). */
const fastPathName = (...args: Parameters<typeof fastPathTarget>): string | null => {
  const target = fastPathTarget(...args);
  if (target === null) return null;
  assert.equal(target.qualifier, undefined);
  return target.name;
};

const plain = { method: 'POST', url: '/v1/functions/echo/invoke', headers: { 'content-length': '2' } };

describe('fastPathTarget', () => {
  it('takes a plain invoke request', () => {
    assert.equal(fastPathName(plain, null, true), 'echo');
    assert.equal(fastPathName({ ...plain, headers: { 'content-length': '0' } }, null, true), 'echo');
    assert.equal(fastPathName({ ...plain, url: '/v1/functions/a-b_c.d/invoke' }, null, true), 'a-b_c.d');
    const limit = { ...plain, headers: { 'content-length': String(maxEventBytes) } };
    assert.equal(fastPathName(limit, null, true), 'echo');
    assert.equal(
      fastPathName({ ...plain, url: `/v1/functions/${'a'.repeat(100)}/invoke` }, null, true),
      'a'.repeat(100),
    );
    for (const type of ['application/json', 'text/plain', 'application/json; charset=utf-8', ' foo/bar;x']) {
      assert.equal(fastPathName({ ...plain, headers: { ...plain.headers, 'content-type': type } }, null, true), 'echo');
    }
  });

  it('takes a plain qualifier: a version number or an alias name as they are written', () => {
    for (const qualifier of ['2', '007', 'beta', 'live', 'Bad-Alias', 'a'.repeat(100)]) {
      assert.deepEqual(
        fastPathTarget({ ...plain, url: `/v1/functions/echo/invoke?qualifier=${qualifier}` }, null, true),
        {
          name: 'echo',
          qualifier,
        },
      );
    }
  });

  it('leaves to Fastify every other request', () => {
    const others = [
      { ...plain, method: 'GET' },
      { ...plain, method: 'PUT' },
      { ...plain, url: '/v1/functions/echo/invoke?x=1' },
      { ...plain, url: '/v1/functions/echo/invoke?qualifier=' },
      { ...plain, url: '/v1/functions/echo/invoke?qualifier=a%62' },
      { ...plain, url: '/v1/functions/echo/invoke?qualifier=2&x=1' },
      { ...plain, url: '/v1/functions/echo/invoke?qualifier=2&qualifier=3' },
      { ...plain, url: '/v1/functions/echo/invoke?x=1&qualifier=2' },
      { ...plain, url: '/v1/functions/echo/invoke?qualifier=beta#x' },
      { ...plain, url: `/v1/functions/echo/invoke?qualifier=${'a'.repeat(101)}` },
      { ...plain, url: '/v1/functions/echo?qualifier=2' },
      { ...plain, url: '/v1/functions/echo/invoke/?qualifier=2' },
      { ...plain, url: '/v1/functions/ech%6f/invoke' },
      { ...plain, url: '/v1/functions//invoke' },
      { ...plain, url: '/v1/functions/a/b/invoke' },
      { ...plain, url: '/v1/functions/echo/invoke/' },
      { ...plain, url: `/v1/functions/${'a'.repeat(101)}/invoke` },
      { ...plain, headers: { ...plain.headers, 'content-type': 'json' } },
      { ...plain, headers: { ...plain.headers, 'content-type': '' } },
      { ...plain, headers: { ...plain.headers, 'content-type': 'application/' } },
      { ...plain, url: '/v1/functions/echo' },
      { ...plain, headers: {} },
      { ...plain, headers: { 'content-length': String(maxEventBytes + 1) } },
    ];
    for (const request of others) assert.equal(fastPathName(request, null, true), null, JSON.stringify(request));
    assert.equal(fastPathName(plain, null, false), null, 'not while starting or draining');
  });

  it('takes a request with a valid API key only', () => {
    const keys = apiKeyCheck(['k-1', 'k-2']);
    const withHeaders = (headers: Record<string, string>) => ({ ...plain, headers: { ...plain.headers, ...headers } });
    assert.equal(fastPathName(withHeaders({ authorization: 'Bearer k-2' }), keys, true), 'echo');
    assert.equal(fastPathName(withHeaders({ 'x-api-key': 'k-1' }), keys, true), 'echo');
    assert.equal(fastPathName(plain, keys, true), null);
    assert.equal(fastPathName(withHeaders({ authorization: 'Bearer k-3' }), keys, true), null);
  });
});

describe('requestHeaders', () => {
  it("reads a request's header by its lowercase name, repeated values joined", () => {
    const header = requestHeaders({ 'x-user-id': 'u-1', 'set-cookie': ['a=1', 'b=2'] });
    assert.equal(header('x-user-id'), 'u-1');
    assert.equal(header('set-cookie'), 'a=1, b=2');
    assert.equal(header('x-missing'), undefined);
  });
});

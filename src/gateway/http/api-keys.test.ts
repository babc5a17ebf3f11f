import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Fastify from 'fastify';
import { isPlatformError } from '../../core/errors.js';
import { apiKeyCheck, apiKeyHook, isLoopbackHost, requireApiKeys } from './api-keys.js';

describe('isLoopbackHost', () => {
  it('tells loopback addresses from the rest', () => {
    for (const host of ['127.0.0.1', '127.0.0.5', '127.255.255.254', '::1', '[::1]', '0:0:0:0:0:0:0:1', 'localhost']) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    assert.equal(isLoopbackHost('LocalHost'), true);
    assert.equal(isLoopbackHost('::ffff:127.0.0.1'), true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '128.0.0.1', '::2', '::ffff:10.0.0.1', 'example.com', '']) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });
});

describe('requireApiKeys', () => {
  it('splits commas, trims, drops blanks and duplicates', () => {
    assert.deepEqual(requireApiKeys('0.0.0.0', ['k1, k2', 'k3', '', 'k1,']), ['k1', 'k2', 'k3']);
  });

  it('lets loopback go without a key, and keeps keys given there', () => {
    assert.deepEqual(requireApiKeys('127.0.0.1', []), []);
    assert.deepEqual(requireApiKeys('::1', ['']), []);
    assert.deepEqual(requireApiKeys('localhost', ['k1']), ['k1']);
  });

  it('refuses a non-loopback host without a key', () => {
    for (const host of ['0.0.0.0', '::', '10.0.0.1']) {
      assert.throws(
        () => requireApiKeys(host, [' , ']),
        (err: unknown) =>
          isPlatformError(err, 'INVALID_CONFIG') &&
          err.rawMessage === `listening on ${host} needs an API key: set SAVASSAN_API_KEY or pass --api-key-file FILE`,
      );
    }
  });

  it('refuses keys that cannot travel in a header', () => {
    assert.throws(() => requireApiKeys('0.0.0.0', ['a b']), /visible ASCII/);
    assert.throws(() => requireApiKeys('0.0.0.0', ['clé']), /visible ASCII/);
  });
});

describe('apiKeyHook', () => {
  const app = async () => {
    const server = Fastify();
    server.setErrorHandler((err, _request, reply) => {
      const status = isPlatformError(err) ? err.status : 500;
      return reply.code(status).send({ error: { code: isPlatformError(err) ? err.code : 'INTERNAL' } });
    });
    server.addHook('onRequest', apiKeyHook(['k1', 'a-much-longer-second-key']));
    server.get('/healthz', () => ({ ok: true }));
    server.get('/private', () => ({ ok: true }));
    await server.ready();
    return server;
  };

  it('asks for a key on every route but the public ones', async () => {
    const server = await app();
    assert.equal((await server.inject({ url: '/healthz' })).statusCode, 200);
    for (const url of ['/private', '/unknown']) {
      const refused = await server.inject({ url });
      assert.equal(refused.statusCode, 401, url);
      assert.equal(refused.headers['www-authenticate'], 'Bearer realm="savassan"');
      assert.equal(refused.json<{ error: { code: string } }>().error.code, 'UNAUTHORIZED');
    }
    await server.close();
  });

  it('takes any of its keys, as a bearer token or in x-api-key', async () => {
    const server = await app();
    const status = async (headers: Record<string, string>) =>
      (await server.inject({ url: '/private', headers })).statusCode;
    assert.equal(await status({ authorization: 'Bearer k1' }), 200);
    assert.equal(await status({ authorization: 'bearer a-much-longer-second-key' }), 200);
    assert.equal(await status({ 'x-api-key': 'k1' }), 200);
    assert.equal(await status({ authorization: 'Basic azE6', 'x-api-key': 'k1' }), 200);
    assert.equal(await status({ authorization: 'Bearer k2' }), 401);
    assert.equal(await status({ authorization: 'Bearer k1x' }), 401);
    assert.equal(await status({ authorization: 'k1' }), 401);
    assert.equal(await status({ 'x-api-key': '' }), 401);
    await server.close();
  });

  it('needs at least one key', () => {
    assert.throws(() => apiKeyHook([]), /at least one key/);
  });
});

describe('apiKeyCheck with a WebSocket subprotocol', () => {
  const check = apiKeyCheck(['k1']);

  it('takes bearer.KEY from the subprotocol list only where asked to', () => {
    const headers = { 'sec-websocket-protocol': 'savassan.logs.v1, bearer.k1' };
    assert.deepEqual(check(headers, true), { presented: 1, valid: true });
    assert.deepEqual(check(headers), { presented: 0, valid: false }, 'other routes ignore the subprotocol');
    assert.deepEqual(check({ 'sec-websocket-protocol': 'savassan.logs.v1, bearer.k2' }, true), {
      presented: 1,
      valid: false,
    });
    assert.deepEqual(check({ 'sec-websocket-protocol': 'savassan.logs.v1' }, true), { presented: 0, valid: false });
  });
});

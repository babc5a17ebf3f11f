// Function URLs end to end against a real `savassan start` process: a real Express 5 app wrapped by
// `serverless-http` (both from npm, bundled with their dependencies) deployed as a function and called over raw HTTP
// at /fn/NAME/... and on NAME.--url-domain: routes, query strings, cookies, redirects, JSON and binary bodies, the
// app's 404s, CORS preflights, and auth key versus none on a server with API keys.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { SavassanClient } from '../../src/client/client.js';
import { bundleWithPackages } from '../helpers/node-modules-bundle.js';
import { apiError, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const app = `
const express = require('express');
const serverless = require('serverless-http');
const app = express();
app.use(express.json());
app.get('/', (req, res) => res.send('home'));
app.get('/hello/:name', (req, res) => res.json({ hello: req.params.name, query: req.query, path: req.path }));
app.post('/echo', (req, res) => res.status(201).json({ body: req.body, method: req.method }));
app.put('/upload', express.raw({ type: 'application/octet-stream' }), (req, res) =>
  res.type('application/octet-stream').send(Buffer.from([...req.body].reverse())));
app.get('/cookies', (req, res) => {
  res.cookie('session', 'abc', { httpOnly: true });
  res.cookie('theme', 'dark');
  res.json({ cookies: req.get('cookie') ?? null });
});
app.get('/go', (req, res) => res.redirect(302, '/hello/redirected'));
app.get('/pixel', (req, res) => res.type('image/png').send(Buffer.from([137, 80, 78, 71, 0, 255, 1])));
app.all('/method', (req, res) => res.json({ method: req.method, agent: req.get('user-agent') }));
app.get('/credentials', (req, res) =>
  res.json({ authorization: req.get('authorization') ?? null, apiKey: req.get('x-api-key') ?? null }));
module.exports.handler = serverless(app, { binary: ['image/*', 'application/octet-stream'] });
`;

const key = 'url-test-key';

/** A raw HTTP request with any Host header (fetch does not let a caller set it). */
function rawRequest(
  url: string,
  path: string,
  headers: Record<string, string>,
  method = 'GET',
  body = '',
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers, method, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('function URLs end to end', () => {
  let server: ServerProcess;
  let api: SavassanClient;
  const fn = (path: string, init: RequestInit = {}) =>
    fetch(`${server.url}/fn/web${path}`, { redirect: 'manual', ...init });

  before(async () => {
    server = await startServer(['--no-examples', '--url-domain', 'fn.test', '--event-loops', '2'], undefined, {
      SAVASSAN_API_KEY: key,
    });
    api = new SavassanClient({ url: server.url, apiKey: key });
    await api.deploy('web', bundleWithPackages({ 'index.js': app }, ['express', 'serverless-http']), {
      timeoutSeconds: 30,
    });
    await api.deploy(
      'plain',
      zipSync({ 'index.js': strToU8('exports.handler = async (event) => [event.rawPath, 1];') }),
    );
    await api.deploy(
      'broken',
      zipSync({ 'index.js': strToU8('exports.handler = async () => { throw new RangeError("bad input"); };') }),
    );
  });

  after(async () => {
    await server?.cleanup();
  });

  it('answers 404 for a function without a URL, then serves it once it has one', async () => {
    const before = await fn('/');
    assert.equal(before.status, 404);
    assert.equal(((await before.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    const created = await api.putFunctionUrl('web', { auth: 'none' });
    assert.deepEqual(
      { ...created, createdAt: '' },
      {
        functionName: 'web',
        auth: 'none',
        cors: null,
        path: '/fn/web/',
        host: 'web.fn.test',
        createdAt: '',
      },
    );
    const home = await fn('');
    assert.equal(home.status, 200);
    assert.equal(await home.text(), 'home');
    assert.equal((await fn('/')).status, 200);
  });

  it('routes paths and query strings to the app', async () => {
    const answer = await fn('/hello/ana?x=1&tag=a&tag=b&q=two%20words');
    assert.equal(answer.status, 200);
    assert.match(answer.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await answer.json(), {
      hello: 'ana',
      query: { x: '1', tag: ['a', 'b'], q: 'two words' },
      path: '/hello/ana',
    });
  });

  it('takes JSON bodies and any method, and passes the status through', async () => {
    const echo = await fn('/echo', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n: 1, s: 'é' }),
    });
    assert.equal(echo.status, 201);
    assert.deepEqual(await echo.json(), { body: { n: 1, s: 'é' }, method: 'POST' });
    for (const method of ['PATCH', 'DELETE', 'PUT']) {
      const answer = await fn('/method', { method, headers: { 'user-agent': 'e2e-agent' } });
      assert.deepEqual(await answer.json(), { method, agent: 'e2e-agent' });
    }
  });

  it('carries binary bodies both ways', async () => {
    const upload = await fn('/upload', {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array([0, 1, 2, 200, 255]),
    });
    assert.equal(upload.status, 200);
    assert.deepEqual([...new Uint8Array(await upload.arrayBuffer())], [255, 200, 2, 1, 0]);
    // 5 MiB is 6.7 MiB as base64: over what an event may hold.
    const tooLarge = await fn('/upload', {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream' },
      body: new Uint8Array(5 * 1024 * 1024),
    });
    assert.equal(tooLarge.status, 413);
    assert.equal(((await tooLarge.json()) as { error: { code: string } }).error.code, 'PAYLOAD_TOO_LARGE');
    const pixel = await fn('/pixel');
    assert.equal(pixel.headers.get('content-type'), 'image/png');
    assert.deepEqual([...new Uint8Array(await pixel.arrayBuffer())], [137, 80, 78, 71, 0, 255, 1]);
  });

  it('passes cookies in and Set-Cookie headers out', async () => {
    const answer = await fn('/cookies', { headers: { cookie: 'a=1; b=2' } });
    assert.deepEqual(await answer.json(), { cookies: 'a=1; b=2' });
    const cookies = answer.headers.getSetCookie();
    assert.equal(cookies.length, 2);
    assert.match(cookies[0] ?? '', /^session=abc; Path=\/; HttpOnly$/);
    assert.match(cookies[1] ?? '', /^theme=dark; Path=\//);
  });

  it("passes redirects and the app's own 404s through", async () => {
    const redirect = await fn('/go');
    assert.equal(redirect.status, 302);
    assert.equal(redirect.headers.get('location'), '/hello/redirected');
    const missing = await fn('/no/such/page');
    assert.equal(missing.status, 404);
    assert.match(await missing.text(), /Cannot GET \/no\/such\/page/);
  });

  it('serves NAME.--url-domain with the whole path', async () => {
    const answer = await rawRequest(server.url, '/hello/host?y=2', { host: 'web.fn.test' });
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body), { hello: 'host', query: { y: '2' }, path: '/hello/host' });
    const other = await rawRequest(server.url, '/', { host: 'ghost.fn.test' });
    assert.equal(other.status, 404);
    // On the URL's host every path is the function's, the invoke route's and the API's too (on every event loop).
    for (let i = 0; i < 8; i++) {
      const invokePath = await rawRequest(
        server.url,
        '/v1/functions/web/invoke',
        {
          host: 'web.fn.test',
          authorization: `Bearer ${key}`,
          'content-type': 'application/json',
          'content-length': '2',
        },
        'POST',
        '{}',
      );
      assert.equal(invokePath.status, 404);
      assert.match(invokePath.body, /Cannot POST \/v1\/functions\/web\/invoke/);
    }
  });

  it('answers other JSON values as 200 JSON, and a function error as 502 JSON without its stack', async () => {
    await api.putFunctionUrl('plain', { auth: 'none' });
    const plain = await fetch(`${server.url}/fn/plain/a/b`);
    assert.equal(plain.status, 200);
    assert.match(plain.headers.get('content-type') ?? '', /application\/json/);
    assert.deepEqual(await plain.json(), ['/a/b', 1]);
    await api.putFunctionUrl('broken', { auth: 'none' });
    const broken = await fetch(`${server.url}/fn/broken/`);
    assert.equal(broken.status, 502);
    const body = (await broken.json()) as { error: Record<string, unknown> };
    assert.equal(body.error.code, 'FUNCTION_ERROR');
    assert.equal(body.error.errorType, 'RangeError');
    assert.equal(body.error.message, 'bad input');
    assert.equal('stack' in body.error, false);
  });

  it("gives the client's address as sourceIp on every event loop, whatever header a client sends", async () => {
    await api.deploy(
      'whoami',
      zipSync({
        'index.js': strToU8(
          'exports.handler = async (e) => ({ ip: e.requestContext.http.sourceIp, headers: e.headers });',
        ),
      }),
    );
    await api.putFunctionUrl('whoami', { auth: 'none' });
    for (let i = 0; i < 8; i++) {
      const answer = await rawRequest(server.url, '/fn/whoami/', { 'x-savassan-client-address': '203.0.113.9' });
      const { ip, headers } = JSON.parse(answer.body) as { ip: string; headers: Record<string, string> };
      assert.match(ip, /^(::ffff:)?127\.0\.0\.1$/);
      assert.equal(headers['x-savassan-client-address'], undefined);
    }
  });

  it('answers CORS preflights and adds CORS headers where the URL has CORS', async () => {
    const noCors = await fn('/method', {
      method: 'OPTIONS',
      headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' },
    });
    // Without CORS the app gets the OPTIONS request itself.
    assert.deepEqual(await noCors.json(), { method: 'OPTIONS', agent: 'node' });
    await api.putFunctionUrl('web', {
      auth: 'none',
      cors: { allowOrigins: ['https://app.example'], allowMethods: ['GET', 'POST'], allowHeaders: ['x-token'] },
    });
    const preflight = await fn('/echo', {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'X-Token',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example');
    assert.equal(preflight.headers.get('access-control-allow-methods'), 'GET, POST');
    assert.equal(preflight.headers.get('access-control-allow-headers'), 'x-token');
    const refused = await fn('/echo', {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    assert.equal(refused.status, 403);
    assert.equal(refused.headers.get('access-control-allow-origin'), null);
    const answer = await fn('/hello/cors', { headers: { origin: 'https://app.example' } });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('access-control-allow-origin'), 'https://app.example');
  });

  it('needs an API key where auth is key, and none where auth is none', async () => {
    await api.putFunctionUrl('web', { auth: 'key' });
    const without = await fn('/hello/k');
    assert.equal(without.status, 401);
    assert.equal(((await without.json()) as { error: { code: string } }).error.code, 'UNAUTHORIZED');
    assert.equal((await fn('/hello/k', { headers: { 'x-api-key': 'wrong' } })).status, 401);
    const withKey = await fn('/hello/k', { headers: { authorization: `Bearer ${key}` } });
    assert.equal(withKey.status, 200);
    // The platform's key is checked, never handed to the function.
    const seen = await fn('/credentials', { headers: { authorization: `Bearer ${key}`, 'x-api-key': key } });
    assert.deepEqual(await seen.json(), { authorization: null, apiKey: null });
    await api.putFunctionUrl('web', { auth: 'none' });
    assert.equal((await fn('/hello/k')).status, 200);
    // The API itself still needs a key.
    assert.equal((await fetch(`${server.url}/v1/urls`)).status, 401);
  });

  it('lists and removes URLs from the CLI; a removed URL answers 404, as does a deleted function', async () => {
    const env = { SAVASSAN_API_KEY: key };
    const created = await runCli(server.url, ['url', 'create', 'plain', '--auth', 'none', '--cors-origin', '*'], env);
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /plain answers at http:\/\/.*\/fn\/plain\/ and http:\/\/plain\.fn\.test\//);
    const listed = await runCli(server.url, ['url', 'ls', '--json'], env);
    const names = (JSON.parse(listed.stdout) as { urls: { functionName: string; cors: unknown }[] }).urls.map(
      (url) => url.functionName,
    );
    assert.deepEqual(names, ['broken', 'plain', 'web', 'whoami']);
    const table = await runCli(server.url, ['url', 'ls'], env);
    assert.match(table.stdout, /^FUNCTION\s+AUTH\s+CORS ORIGINS\s+PATH\s+HOST/);
    const removed = await runCli(server.url, ['url', 'rm', 'plain'], env);
    assert.equal(removed.code, 0, removed.stderr);
    assert.equal((await fetch(`${server.url}/fn/plain/`)).status, 404);
    const again = await runCli(server.url, ['url', 'rm', 'plain'], env);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /\[NOT_FOUND\] function plain has no URL/);
    assert.equal((await apiError(api.getFunctionUrl('plain'))).status, 404);
    await api.deleteFunction('broken');
    assert.equal((await fetch(`${server.url}/fn/broken/`)).status, 404);
    assert.equal((await apiError(api.putFunctionUrl('ghost'))).status, 404);
  });

  it('leaves the invoke route and the API as they were', async () => {
    const answer = await fetch(`${server.url}/v1/functions/plain/invoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}` },
      body: JSON.stringify({ rawPath: '/direct' }),
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(await answer.json(), ['/direct', 1]);
  });
});

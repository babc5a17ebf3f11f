// The console's static files, served from a real directory: types and caching, client routes, a missing build, and
// paths that try to leave the build.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { gunzipSync } from 'node:zlib';
import { asksForJson, consoleRoutes, takesGzip } from './console.js';

let dir = '';
let app: FastifyInstance;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sv-console-'));
  await mkdir(join(dir, 'build', 'assets'), { recursive: true });
  await writeFile(join(dir, 'build', 'index.html'), '<!doctype html><title>console</title>');
  await writeFile(join(dir, 'build', 'assets', 'index-abc123.js'), 'console.log(1);');
  await writeFile(join(dir, 'build', 'assets', 'index-abc123.css'), 'body{}');
  await writeFile(join(dir, 'secret.txt'), 'outside the build');
  await symlink(join(dir, 'secret.txt'), join(dir, 'build', 'assets', 'link.txt'));
  app = Fastify();
  await app.register(consoleRoutes({ dir: join(dir, 'build') }));
  await app.ready();
});

after(async () => {
  await app.close();
  await rm(dir, { recursive: true, force: true });
});

describe('console routes', () => {
  it('serves index.html without caching and hashed assets for a year, with their types', async () => {
    const index = await app.inject('/console/');
    assert.equal(index.statusCode, 200);
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.match(String(index.headers['content-security-policy']), /default-src 'self'/);
    assert.match(String(index.headers['content-security-policy']), /img-src 'self' data: blob:;/);
    assert.equal(index.body, '<!doctype html><title>console</title>');

    const script = await app.inject('/console/assets/index-abc123.js');
    assert.equal(script.statusCode, 200);
    assert.equal(script.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(script.headers['cache-control'], 'public, max-age=31536000, immutable');
    assert.equal(script.body, 'console.log(1);');
    const style = await app.inject('/console/assets/index-abc123.css');
    assert.equal(style.headers['content-type'], 'text/css; charset=utf-8');
  });

  it('sends text gzipped to a client that takes it', async () => {
    const script = await app.inject({
      url: '/console/assets/index-abc123.js',
      headers: { 'accept-encoding': 'br, gzip;q=0.8' },
    });
    assert.equal(script.headers['content-encoding'], 'gzip');
    assert.equal(script.headers.vary, 'accept-encoding');
    assert.equal(gunzipSync(script.rawPayload).toString(), 'console.log(1);');
    const plain = await app.inject({
      url: '/console/assets/index-abc123.js',
      headers: { 'accept-encoding': 'gzip;q=0' },
    });
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.body, 'console.log(1);');
    assert.equal(takesGzip('gzip, deflate'), true);
    assert.equal(takesGzip('identity'), false);
    assert.equal(takesGzip(undefined), false);
  });

  it('answers index.html for client routes and 404 for a missing file', async () => {
    const route = await app.inject('/console/functions/hello/logs');
    assert.equal(route.statusCode, 200);
    assert.equal(route.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal((await app.inject('/console/assets/index-gone.js')).statusCode, 404);
    const bare = await app.inject('/console');
    assert.equal(bare.statusCode, 302);
    assert.equal(bare.headers.location, '/console/');
  });

  it('serves nothing outside the build', async () => {
    for (const path of [
      '/console/../secret.txt',
      '/console/%2e%2e/secret.txt',
      '/console/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
      '/console/..%5csecret.txt',
      '/console/assets/link.txt',
      '/console/%00index.html',
    ]) {
      const answer = await app.inject(path);
      assert.notEqual(answer.body, 'outside the build', path);
      assert.ok(answer.statusCode === 404 || answer.statusCode === 400, `${path}: ${answer.statusCode}`);
    }
  });

  it('answers 503 naming npm run build while there is no build', async () => {
    const bare = Fastify();
    await bare.register(consoleRoutes({ dir: join(dir, 'not-built') }));
    const answer = await bare.inject('/console/');
    assert.equal(answer.statusCode, 503);
    assert.match(String(answer.headers['content-type']), /^text\/plain/);
    assert.match(answer.body, /npm run build/);
    await bare.close();
  });

  it('tells an API call asking for JSON from everything else', () => {
    assert.equal(asksForJson('text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'), false);
    assert.equal(asksForJson('application/json'), true);
    assert.equal(asksForJson('text/plain, application/json;q=0.9'), true);
    assert.equal(asksForJson('*/*'), false);
    assert.equal(asksForJson(undefined), false);
    assert.equal(asksForJson('application/jsonx'), false);
  });
});

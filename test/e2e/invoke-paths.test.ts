// The invoke route has two ways in (src/gateway/http/invoke-route.ts): plain requests are answered by the fast path,
// anything unusual by Fastify. Both must give the same answers; requests the fast path leaves alone must still work.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient } from '../../src/client/client.js';
import { startEmbedded } from '../../src/embedded/embedded-platform.js';
import type { EmbeddedPlatform } from '../../src/embedded/embedded-platform.js';
import { repoRoot } from '../helpers/server-process.js';

interface Hit {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One POST; `chunked` sends the body without a Content-Length (Transfer-Encoding: chunked). */
function post(url: string, body: string, headers: Record<string, string> = {}, chunked = false): Promise<Hit> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers: chunked ? headers : { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
      },
    );
    req.on('error', reject);
    if (chunked) req.write(body);
    req.end(chunked ? undefined : body);
  });
}

/** What must match between the two paths: status, body and the headers a client reads. */
function comparable(hit: Hit, keepInvocationFields = false) {
  const body = JSON.parse(hit.body) as Record<string, unknown>;
  const error = body['error'] as Record<string, unknown> | undefined;
  if (!keepInvocationFields && error !== undefined) delete error['invocationId'];
  return {
    status: hit.status,
    contentType: hit.headers['content-type'],
    connection: hit.headers['connection'],
    start: hit.headers['x-savassan-start'],
    version: hit.headers['x-savassan-version'],
    hasInvocationId: typeof hit.headers['x-savassan-invocation-id'] === 'string',
    retryAfter: hit.headers['retry-after'],
    body: error === undefined ? (body['event'] ?? body) : { error: { ...error, stack: typeof error['stack'] } },
  };
}

for (const apiKeys of [[], ['k-1']]) {
  describe(`the invoke route's two paths${apiKeys.length > 0 ? ', with API keys' : ''}`, () => {
    let dataDir: string;
    let platform: EmbeddedPlatform;
    let base: string;
    const auth: Record<string, string> = apiKeys.length > 0 ? { authorization: `Bearer ${apiKeys[0]}` } : {};

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'savassan-invoke-paths-'));
      platform = await startEmbedded({ dataDir, port: 0, sandbox: 'process', stemCells: false, apiKeys });
      base = `${platform.url}/v1/functions`;
      const client = new SavassanClient({ url: platform.url, apiKey: apiKeys[0] });
      const fixtures = join(repoRoot, 'test', 'fixtures', 'functions');
      await client.deploy('echo', await readBundle(join(fixtures, 'echo')), {});
      await client.deploy('throws', await readBundle(join(fixtures, 'throws')), {});
      // Cold starts out of the way: every comparison below is warm on both paths.
      await post(`${base}/echo/invoke`, '{}', auth);
      await post(`${base}/throws/invoke`, '{}', auth);
    });

    after(async () => {
      await platform.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('answers a result, a function error, bad JSON and an unknown function the same on both paths', async () => {
      const cases: [string, string][] = [
        ['echo', '{"a":[1,2,{"b":"ü"}]}'],
        ['echo', ''],
        ['echo', ' \r\n\t '],
        // Multi-byte characters and escapes across every chunk boundary on the way, in and out as bytes.
        ['echo', JSON.stringify({ s: 'é✓🎉"\\\n'.repeat(60_000), n: [1, 2.5, null] })],
        ['throws', '{}'],
        ['echo', '{"a":'],
        ['nope', '{}'],
      ];
      for (const [name, body] of cases) {
        const fast = await post(`${base}/${name}/invoke`, body, auth);
        const fastify = await post(`${base}/${name}/invoke`, body, auth, true);
        const what = `${name} ${JSON.stringify(body.slice(0, 40))}`;
        assert.deepEqual(comparable(fastify), comparable(fast), what);
        if (name === 'echo' && fast.status === 200) {
          assert.deepEqual(comparable(fast).body, JSON.parse(body.trim() === '' ? '{}' : body), what);
        }
      }
      // Requests the fast path leaves to Fastify answer the same whether or not they have a Content-Length.
      for (const headers of [{ 'content-type': 'json' }, { 'content-type': '' }]) {
        const fast = await post(`${base}/echo/invoke`, '{}', { ...auth, ...headers });
        const fastify = await post(`${base}/echo/invoke`, '{}', { ...auth, ...headers }, true);
        assert.equal(fast.status, 400, JSON.stringify(headers));
        assert.deepEqual(comparable(fastify), comparable(fast), JSON.stringify(headers));
      }
      const long = `${base}/${'a'.repeat(101)}/invoke`;
      assert.deepEqual((await post(long, '{}', auth)).status, (await post(long, '{}', auth, true)).status);
      const ok = await post(`${base}/echo/invoke`, '{"x":1}', auth);
      assert.equal(ok.status, 200);
      assert.deepEqual((JSON.parse(ok.body) as { event: unknown }).event, { x: 1 });
      assert.equal((await post(`${base}/echo/invoke`, '{"a":', auth)).status, 400);
      assert.equal((await post(`${base}/nope/invoke`, '{}', auth)).status, 404);
      assert.equal((await post(`${base}/throws/invoke`, '{}', auth)).status, 502);
    });

    it('leaves to Fastify what the fast path does not take, with the same answers', async () => {
      // An encoded name: Fastify decodes and routes it.
      const encoded = await post(`${base}/ech%6f/invoke`, '{"y":2}', auth);
      assert.equal(encoded.status, 200);
      assert.deepEqual((JSON.parse(encoded.body) as { event: unknown }).event, { y: 2 });
      // A query string: Fastify refuses the parameter the route does not take, and the function does not run.
      const query = await post(`${base}/echo/invoke?trace=1`, '{"y":2}', auth);
      assert.equal(query.status, 400);
      assert.equal(query.headers['x-savassan-invocation-id'], undefined);
      assert.match(query.body, /unknown query parameter trace/);
      // A declared body over the 6 MiB limit: 413 before any of it is read.
      const tooLarge = await new Promise<number>((resolve, reject) => {
        const req = request(
          `${base}/echo/invoke`,
          { method: 'POST', headers: { ...auth, 'content-length': String(7 * 1024 * 1024) } },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.write('{');
      });
      assert.equal(tooLarge, 413);
    });

    if (apiKeys.length > 0) {
      it('refuses a missing or wrong key with 401 (from Fastify), and does not run the function', async () => {
        const missing = await post(`${base}/echo/invoke`, '{}');
        const wrong = await post(`${base}/echo/invoke`, '{}', { 'x-api-key': 'k-2' });
        for (const hit of [missing, wrong]) {
          assert.equal(hit.status, 401);
          assert.equal(hit.headers['www-authenticate'], 'Bearer realm="savassan"');
          assert.equal(hit.headers['x-savassan-invocation-id'], undefined);
        }
        const good = await post(`${base}/echo/invoke`, '{}', { 'x-api-key': 'k-1' });
        assert.equal(good.status, 200);
      });
    }
  });
}

// API keys end to end: a real `savassan start` with SAVASSAN_API_KEY=k1, driven through raw HTTP, SavassanClient and
// the real CLI, and a start on a non-loopback address without a key, which must refuse to run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient } from '../../src/client/client.js';
import { apiError, cliPath, repoRoot, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const probe = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');

describe('API keys end to end', () => {
  let server: ServerProcess;
  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${server.url}${path}`, { headers });

  before(async () => {
    server = await startServer(['--no-examples'], undefined, { SAVASSAN_API_KEY: 'k1' });
  });
  after(async () => {
    await server.cleanup();
  });

  it('says in the banner that keys are required, without printing them', () => {
    assert.match(server.output(), /API keys: 1 key, required/);
    assert.match(server.output(), /Authorization: Bearer <key>/);
    assert.doesNotMatch(server.output(), /\bk1\b/);
  });

  it('refuses requests without a key or with a wrong one, with 401 and WWW-Authenticate', async () => {
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer k2' }, { 'x-api-key': 'wrong' }];
    for (const headers of attempts) {
      for (const path of ['/v1/functions', '/metrics', '/v1/nodes', '/v1/no-such-route']) {
        const response = await get(path, headers);
        assert.equal(response.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.match(response.headers.get('www-authenticate') ?? '', /^Bearer\b/);
        const body = (await response.json()) as { error: { code: string; message: string } };
        assert.equal(body.error.code, 'UNAUTHORIZED');
      }
    }
    const missing = (await (await get('/v1/functions')).json()) as { error: { message: string } };
    assert.match(missing.error.message, /Authorization: Bearer <key>/);
    // An invocation without a key never reaches the function.
    const invoke = await fetch(`${server.url}/v1/functions/p/invoke`, { method: 'POST', body: '{}' });
    assert.equal(invoke.status, 401);
  });

  it('answers /, health, readiness and the OpenAPI description without a key, and describes the 401s', async () => {
    assert.equal((await get('/')).status, 200);
    assert.equal((await get('/healthz')).status, 200);
    assert.equal((await get('/readyz')).status, 200);
    const openapi = (await (await get('/v1/openapi.json')).json()) as {
      components: { securitySchemes: object };
      paths: Record<string, Record<string, { security?: unknown[]; responses: Record<string, unknown> }>>;
    };
    assert.deepEqual(Object.keys(openapi.components.securitySchemes).sort(), ['apiKey', 'bearer']);
    const open: string[] = [];
    for (const [path, methods] of Object.entries(openapi.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const isPublic = operation.security?.length === 0;
        if (isPublic) open.push(path);
        assert.equal('401' in operation.responses, !isPublic, `${method} ${path}`);
      }
    }
    assert.deepEqual(open.sort(), ['/', '/healthz', '/readyz', '/v1/openapi.json']);
  });

  it('takes the key as a bearer token or in x-api-key', async () => {
    assert.equal((await get('/v1/functions', { authorization: 'Bearer k1' })).status, 200);
    assert.equal((await get('/v1/functions', { 'x-api-key': 'k1' })).status, 200);
    const metrics = await get('/metrics', { authorization: 'Bearer k1' });
    assert.equal(metrics.status, 200);
    assert.match(await metrics.text(), /^# HELP/m);
  });

  it('deploys and invokes through SavassanClient with apiKey', async () => {
    const client = new SavassanClient({ url: server.url, apiKey: 'k1' });
    const deployed = await client.deploy('keyed', await readBundle(probe));
    assert.equal(deployed.version.version, 1);
    const answer = await client.invoke('keyed', { x: 1 });
    assert.deepEqual((JSON.parse(answer.payload) as { event: unknown }).event, { x: 1 });
    const refused = await apiError(new SavassanClient({ url: server.url, apiKey: 'nope' }).listFunctions());
    assert.equal(refused.status, 401);
    assert.equal(refused.code, 'UNAUTHORIZED');
    assert.match(refused.headers.get('www-authenticate') ?? '', /^Bearer\b/);
  });

  it('drives the CLI with SAVASSAN_API_KEY, logs -f included', async () => {
    const cli = (env: Record<string, string>, ...args: string[]) => runCli(server.url, args, env);
    const deployed = await cli({ SAVASSAN_API_KEY: 'k1' }, 'deploy', 'cli-keyed', probe);
    assert.equal(deployed.code, 0, deployed.stderr);
    const invoked = await cli({ SAVASSAN_API_KEY: 'k1' }, 'invoke', 'cli-keyed', '-d', '{"y":2}', '-v');
    assert.equal(invoked.code, 0, invoked.stderr);
    const id = /invocation ([0-9a-f-]+)/.exec(invoked.stderr)?.[1] ?? '';
    // The first of several comma-separated keys, as `savassan start` reads them.
    const ls = await cli({ SAVASSAN_API_KEY: 'k1,other' }, 'ls');
    assert.match(ls.stdout, /^cli-keyed\s+1/m);

    const refused = await cli({ SAVASSAN_API_KEY: '' }, 'ls');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^\[UNAUTHORIZED\] this API needs an API key/);
    const wrong = await cli({ SAVASSAN_API_KEY: 'k2' }, 'invoke', 'cli-keyed');
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /^\[UNAUTHORIZED\] the API key is not valid/);

    // Server-sent events: the stream starts with the recent invocations.
    const follow = spawn(process.execPath, [cliPath, 'logs', 'cli-keyed', '-f'], {
      cwd: repoRoot,
      env: { ...process.env, SAVASSAN_URL: server.url, SAVASSAN_API_KEY: 'k1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    follow.stdout.on('data', (d: Buffer) => (output += d.toString()));
    follow.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => follow.once('exit', (code) => resolve(code)));
    try {
      const deadline = Date.now() + 10_000;
      while (!output.includes(`probe ${id}`) && follow.exitCode === null && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.match(output, new RegExp(`--- \\S+ ${id} success\\nprobe ${id}`));
    } finally {
      follow.kill('SIGTERM');
      await exited;
    }
  });
});

describe('savassan start on a non-loopback address', () => {
  it('refuses to start without an API key', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sv-'));
    try {
      await assert.rejects(
        startServer(['--host', '0.0.0.0', '--port', '0'], dataDir, { SAVASSAN_API_KEY: '' }),
        (err: Error) => {
          assert.match(err.message, /exited \(code 1\)/);
          assert.match(
            err.message,
            /listening on 0\.0\.0\.0 needs an API key: set SAVASSAN_API_KEY or pass --api-key-file FILE/,
          );
          return true;
        },
      );
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('starts with a key from SAVASSAN_API_KEY, and enforces it', async () => {
    const server = await startServer(['--host', '0.0.0.0', '--no-examples'], undefined, {
      SAVASSAN_API_KEY: 'e1,e2',
    });
    try {
      const url = server.url.replace('0.0.0.0', '127.0.0.1');
      assert.equal((await fetch(`${url}/v1/functions`)).status, 401);
      for (const key of ['e1', 'e2']) {
        const ok = await fetch(`${url}/v1/functions`, { headers: { authorization: `Bearer ${key}` } });
        assert.equal(ok.status, 200, key);
      }
    } finally {
      await server.cleanup();
    }
  });
});

describe('savassan start keeps secrets out of its arguments', () => {
  it('refuses --api-key and URLs with a password, naming what to use instead', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sv-'));
    try {
      const refusals: [string[], RegExp][] = [
        [['--api-key', 'k1'], /--api-key would be visible to every local user in ps: set SAVASSAN_API_KEY/],
        [
          ['--db', 'postgres://savassan:hunter2@127.0.0.1:1/savassan'],
          /--db with a password in the URL would be visible to every local user in ps: set SAVASSAN_DB_URL/,
        ],
      ];
      for (const [args, message] of refusals) {
        await assert.rejects(startServer(['--no-examples', ...args], dataDir), (err: Error) => {
          assert.match(err.message, message);
          assert.doesNotMatch(err.message, /hunter2/);
          return true;
        });
      }
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it('reads keys from --api-key-file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sv-keys-'));
    const keyFile = join(dir, 'keys');
    await writeFile(keyFile, 'f1\nf2\n', { mode: 0o600 });
    const server = await startServer(['--no-examples', '--api-key-file', keyFile], undefined, {
      SAVASSAN_API_KEY: '',
    });
    try {
      assert.equal((await fetch(`${server.url}/v1/functions`)).status, 401);
      const ok = await fetch(`${server.url}/v1/functions`, { headers: { authorization: 'Bearer f2' } });
      assert.equal(ok.status, 200);
      assert.doesNotMatch(server.output(), /\bf[12]\b/);
    } finally {
      await server.cleanup();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

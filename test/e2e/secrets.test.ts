// Secrets through the real CLI and HTTP API against a real server: a value goes in through standard input or a
// prompt that does not echo it, reaches the function's process.env when its sandbox starts, and appears in no answer,
// no log, no server output and no file of the data dir.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { apiError, cliPath, repoRoot, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const probe = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
const firstValue = 'sv-e2e-first-value-7f3a9c';
const secondValue = 'sv-e2e-second-value-b81d04';
const thirdValue = 'sv-e2e-third-value-3c9e51';
const typedValue = 'sv-e2e-typed-value-52e1aa';

interface ProbeResult {
  pid: number;
  env: { GREETING: string | null; TOKEN: string | null };
}

/** Every regular file under `dir`, as latin1 text. */
async function filesUnder(dir: string): Promise<{ path: string; text: string }[]> {
  const found: { path: string; text: string }[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) found.push(...(await filesUnder(path)));
    else if (entry.isFile()) found.push({ path, text: (await readFile(path)).toString('latin1') });
  }
  return found;
}

/** Runs the CLI on a pseudo-terminal (python3's pty), types `typed` after the prompt, and returns what the terminal showed. */
function runOnTerminal(
  url: string,
  args: string[],
  typed: string,
): Promise<{ code: number | null; screen: string; stderr: string }> {
  const script = `
import os, pty, sys, json
argv = json.loads(sys.argv[1])
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
screen = b''
typed = False
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    screen += chunk
    if not typed and b'(not shown): ' in screen:
        os.write(fd, sys.argv[2].encode() + b'\\r')
        typed = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(json.dumps({'code': os.waitstatus_to_exitcode(status), 'screen': screen.decode('utf-8', 'replace')}))
`;
  return new Promise((resolve) => {
    const child = spawn('python3', ['-c', script, JSON.stringify([process.execPath, cliPath, ...args]), typed], {
      cwd: repoRoot,
      env: { ...process.env, SAVASSAN_URL: url },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', () => {
      const { code, screen } = JSON.parse(stdout || '{"code":null,"screen":""}') as { code: number; screen: string };
      resolve({ code, screen, stderr });
    });
  });
}

describe('secrets', () => {
  let server: ServerProcess;
  const cli = (args: string[], stdin?: string) => runCli(server.url, args, {}, stdin);

  before(async () => {
    // Debug logs: everything the server says is checked for the values.
    server = await startServer(['--no-examples', '--log-level', 'debug']);
  });
  after(async () => {
    await server.cleanup();
  });

  it('sets a secret from stdin and gives its value to the function, never to an answer, a log or a file', async () => {
    const set = await cli(['secret', 'set', 'API_TOKEN'], `${firstValue}\n`);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'created secret API_TOKEN\n');

    const deployed = await cli([
      'deploy',
      'billing',
      probe,
      '--env',
      'GREETING=hej',
      '--secret',
      'TOKEN=API_TOKEN',
      '--json',
    ]);
    assert.equal(deployed.code, 0, deployed.stderr);
    const answer = JSON.parse(deployed.stdout) as { version: { config: { env: unknown; secrets: unknown } } };
    assert.deepEqual(answer.version.config.env, { GREETING: 'hej' }, 'env values stay visible');
    assert.deepEqual(answer.version.config.secrets, { TOKEN: 'API_TOKEN' }, 'secrets by name only');

    const invoked = await cli(['invoke', 'billing']);
    assert.equal(invoked.code, 0, invoked.stderr);
    const result = JSON.parse(invoked.stdout) as ProbeResult;
    assert.deepEqual([result.env.GREETING, result.env.TOKEN], ['hej', firstValue]);

    const { client } = server;
    const fn = await client.getFunction('billing');
    assert.deepEqual(fn.config?.secrets, { TOKEN: 'API_TOKEN' });
    const ls = await cli(['secret', 'ls', '--json']);
    assert.equal(ls.code, 0, ls.stderr);
    const { secrets } = JSON.parse(ls.stdout) as { secrets: { name: string; usedBy: string[] }[] };
    assert.deepEqual(
      secrets.map((s) => [s.name, s.usedBy]),
      [['API_TOKEN', ['billing']]],
    );
    const human = await cli(['secret', 'ls']);
    assert.match(human.stdout, /^NAME\s+USED BY\s+UPDATED\nAPI_TOKEN\s+billing\s+\S+Z\n$/);
    const logs = await cli(['logs', 'billing', '--json']);
    assert.equal(logs.code, 0, logs.stderr);
    const openapi = await client.json<{ paths: Record<string, Record<string, { responses: object }>> }>(
      'GET',
      '/v1/openapi.json',
    );
    assert.deepEqual(Object.keys(openapi.paths['/v1/secrets/{name}']?.put?.responses ?? {}), [
      '200',
      '201',
      '400',
      '413',
      '500',
      '503',
    ]);
    assert.deepEqual(Object.keys(openapi.paths['/v1/secrets/{name}']?.delete?.responses ?? {}), [
      '204',
      '400',
      '404',
      '409',
      '500',
      '503',
    ]);
    assert.deepEqual(Object.keys(openapi.paths['/v1/secrets']?.get?.responses ?? {}), ['200', '400', '500', '503']);
    const answers = [
      deployed.stdout,
      invoked.stderr,
      ls.stdout,
      human.stdout,
      logs.stdout,
      JSON.stringify(fn),
      JSON.stringify(await client.listFunctions()),
      JSON.stringify(await client.listVersions('billing')),
      JSON.stringify(await client.listInvocations('billing')),
      await client.functionLogs('billing'),
      JSON.stringify(openapi),
    ];
    for (const [i, text] of answers.entries()) assert.ok(!text.includes(firstValue), `answer ${i} holds the value`);
  });

  it('gives sandboxes started after a new value the new value; set --json prints no value', async () => {
    const before = JSON.parse((await cli(['invoke', 'billing'])).stdout) as ProbeResult;
    const set = await cli(['secret', 'set', 'API_TOKEN', '--json'], secondValue);
    assert.equal(set.code, 0, set.stderr);
    const printed = JSON.parse(set.stdout) as { created: boolean; secret: Record<string, unknown> };
    assert.equal(printed.created, false);
    assert.deepEqual(Object.keys(printed.secret).sort(), ['createdAt', 'name', 'updatedAt']);
    assert.ok(!set.stdout.includes(secondValue));
    // The idle sandbox holding the old value was stopped: the next invocation starts one with the new value.
    const after = JSON.parse((await cli(['invoke', 'billing'])).stdout) as ProbeResult;
    assert.equal(after.env.TOKEN, secondValue);
    assert.notEqual(after.pid, before.pid);
  });

  it('gives every version that serves, not only the current one, the new value', async () => {
    const canary = await cli(['deploy', 'billing', probe, '--env', 'CANARY=1', '--no-promote']);
    assert.equal(canary.code, 0, canary.stderr);
    const version = /version (\d+)/.exec(canary.stdout)?.[1] ?? '';
    assert.equal((await cli(['alias', 'set', 'billing', 'canary', `${version}=1`])).code, 0);
    const before = JSON.parse((await cli(['invoke', 'billing', '--qualifier', 'canary'])).stdout) as ProbeResult;
    assert.equal(before.env.TOKEN, secondValue);
    assert.equal((await cli(['secret', 'set', 'API_TOKEN'], thirdValue)).code, 0);
    // The canary's idle sandbox, holding the old value, was stopped too.
    const after = JSON.parse((await cli(['invoke', 'billing', '--qualifier', 'canary'])).stdout) as ProbeResult;
    assert.equal(after.env.TOKEN, thirdValue);
    assert.notEqual(after.pid, before.pid);
    assert.equal((await cli(['alias', 'rm', 'billing', 'canary'])).code, 0);
  });

  it('refuses to delete a secret a function uses (409), and a deploy naming a missing secret (400)', async () => {
    const rm = await cli(['secret', 'rm', 'API_TOKEN']);
    assert.equal(rm.code, 1);
    assert.match(
      rm.stderr,
      /^\[CONFLICT\] secret API_TOKEN is used by billing: a version its aliases point at names it/,
    );
    const rmJson = await cli(['secret', 'rm', 'API_TOKEN', '--json']);
    const { error } = JSON.parse(rmJson.stdout) as { error: { code: string; usedBy: string[] } };
    assert.deepEqual([error.code, error.usedBy], ['CONFLICT', ['billing']]);
    const conflict = await apiError(server.client.deleteSecret('API_TOKEN'));
    assert.equal(conflict.status, 409);

    const missing = await apiError(
      server.client.deploy('orders', await readBundle(probe), {
        secrets: { TOKEN: 'NOT_SET_YET' },
      }),
    );
    assert.equal(missing.status, 400);
    assert.equal(missing.code, 'INVALID_CONFIG');
    assert.match(missing.message, /NOT_SET_YET/);
    const viaCli = await cli(['deploy', 'orders', probe, '--secret', 'TOKEN=NOT_SET_YET']);
    assert.equal(viaCli.code, 1);
    assert.match(viaCli.stderr, /^\[INVALID_CONFIG\] function orders uses a secret that does not exist: NOT_SET_YET/);
    assert.equal((await apiError(server.client.getFunction('orders'))).status, 404, 'nothing deployed');

    const both = await apiError(
      server.client.deploy('orders', await readBundle(probe), {
        env: { TOKEN: 'x' },
        secrets: { TOKEN: 'API_TOKEN' },
      }),
    );
    assert.equal(both.code, 'INVALID_CONFIG');
  });

  it('validates names and bodies without echoing a value', async () => {
    const badName = await cli(['secret', 'set', 'not-valid'], 'v');
    assert.equal(badName.code, 1);
    assert.match(badName.stderr, /^\[INVALID_NAME\] invalid secret name "not-valid"/);
    const empty = await cli(['secret', 'set', 'EMPTY']);
    assert.equal(empty.code, 1);
    assert.match(empty.stderr, /^\[BAD_REQUEST\] no value on standard input/);

    const put = (body: string) =>
      fetch(`${server.url}/v1/secrets/RAW`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
    const broken = await put(`{"value": ${firstValue}}`);
    assert.equal(broken.status, 400);
    const brokenText = await broken.text();
    assert.ok(!brokenText.includes(firstValue), brokenText);
    assert.match(brokenText, /BAD_REQUEST/);
    const tooBig = await put(JSON.stringify({ value: `${firstValue}${'x'.repeat(4096)}` }));
    assert.equal(tooBig.status, 400);
    assert.ok(!(await tooBig.text()).includes(firstValue));
    const multibyte = await put(JSON.stringify({ value: 'é'.repeat(2049) }));
    assert.equal(multibyte.status, 400, '4098 bytes although 2049 characters');
    const extra = await put(JSON.stringify({ value: 'v', other: 1 }));
    assert.equal(extra.status, 400);
    const created = await put(JSON.stringify({ value: 'v' }));
    assert.equal(created.status, 201);
    assert.deepEqual(Object.keys((await created.json()) as object).sort(), ['createdAt', 'name', 'updatedAt']);
    assert.equal((await put(JSON.stringify({ value: 'w' }))).status, 200);
    const gone = await fetch(`${server.url}/v1/secrets/RAW`, { method: 'DELETE' });
    assert.equal(gone.status, 204);
    assert.equal((await apiError(server.client.deleteSecret('RAW'))).status, 404);
  });

  it('reads a value typed at a prompt without echoing it', async () => {
    const typed = await runOnTerminal(server.url, ['secret', 'set', 'TYPED'], typedValue);
    assert.equal(typed.code, 0, typed.screen + typed.stderr);
    assert.match(typed.screen, /Value of secret TYPED \(not shown\): /);
    assert.match(typed.screen, /created secret TYPED/);
    assert.ok(!typed.screen.includes(typedValue), `the terminal showed the value:\n${typed.screen}`);
    await cli(['deploy', 'typed', probe, '--secret', 'TOKEN=TYPED']);
    const result = JSON.parse((await cli(['invoke', 'typed'])).stdout) as ProbeResult;
    assert.equal(result.env.TOKEN, typedValue);
  });

  it('deletes a secret no current version uses; the server output and data dir never held a value', async () => {
    assert.equal((await cli(['rm', 'typed'])).code, 0);
    const rm = await cli(['secret', 'rm', 'TYPED', '--json']);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual(JSON.parse(rm.stdout), { deleted: 'TYPED' });
    assert.equal((await cli(['secret', 'rm', 'TYPED'])).code, 1);

    await server.stop();
    const output = server.output();
    assert.match(output, /secret (created|updated)/, 'debug logs were on');
    for (const value of [firstValue, secondValue, thirdValue, typedValue]) {
      assert.ok(!output.includes(value), `the server output holds ${value}`);
    }
    const files = await filesUnder(server.dataDir);
    assert.ok(
      files.some((file) => file.path.endsWith('.db')),
      'the SQLite database is in the data dir',
    );
    for (const file of files) {
      for (const value of [firstValue, secondValue, thirdValue]) {
        assert.ok(!file.text.includes(value), `${file.path} holds a secret value in clear`);
      }
    }
  });
});

describe('secrets of versions no alias serves', () => {
  let server: ServerProcess;
  const cli = (args: string[], stdin?: string) => runCli(server.url, args, {}, stdin);
  /** Invokes a version of `kept` by number: the status, and the probe's answer when it ran. */
  const invokeVersion = async (version: number): Promise<{ status: number; text: string; result?: ProbeResult }> => {
    const response = await fetch(`${server.url}/v1/functions/kept/invoke?qualifier=${version}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    const text = await response.text();
    return response.status === 200
      ? { status: 200, text, result: JSON.parse(text) as ProbeResult }
      : { status: response.status, text };
  };

  before(async () => {
    server = await startServer(['--no-examples']);
  });
  after(async () => {
    await server.cleanup();
  });

  it("stops a promoted rollout's baseline on a new value or a delete; without the secret it starts no sandbox", async () => {
    const { client } = server;
    assert.equal((await cli(['secret', 'set', 'KEPT_TOKEN'], firstValue)).code, 0);
    assert.equal((await cli(['deploy', 'kept', probe, '--secret', 'TOKEN=KEPT_TOKEN'])).code, 0);
    await client.deploy(
      'kept',
      await readBundle(probe),
      { secrets: null, env: { GREETING: 'v2' } },
      { promote: false },
    );
    const warm = await invokeVersion(1);
    assert.equal(warm.result?.env.TOKEN, firstValue);
    // Version 2 takes all the traffic; version 1 is kept warm for a day's rollback window, serving nothing.
    const rollout = await client.startRollout('kept', { version: 2, rollbackWindowSeconds: 86400 });
    assert.equal((await client.promoteRollout('kept', rollout.id)).state, 'promoted');
    const stillWarm = await invokeVersion(1);
    assert.equal(stillWarm.result?.pid, warm.result?.pid, 'the retained baseline answers warm');

    // A new value reaches the retained baseline too: its idle sandbox with the old value was stopped.
    assert.equal((await cli(['secret', 'set', 'KEPT_TOKEN'], secondValue)).code, 0);
    const renewed = await invokeVersion(1);
    assert.equal(renewed.result?.env.TOKEN, secondValue);
    assert.notEqual(renewed.result?.pid, warm.result?.pid);

    // No alias serves a version naming it: the delete is allowed, and leaves no sandbox holding the value.
    const gone = await fetch(`${server.url}/v1/secrets/KEPT_TOKEN`, { method: 'DELETE' });
    assert.equal(gone.status, 204);
    const refused = await invokeVersion(1);
    assert.equal(refused.status, 400, refused.text);
    assert.match(refused.text, /INVALID_CONFIG/);
    assert.match(refused.text, /function kept uses a secret that does not exist: KEPT_TOKEN/);
    assert.ok(!refused.text.includes(secondValue));
    assert.equal((await invokeVersion(2)).status, 200, 'the version serving traffic runs on');

    // Set again: the version starts sandboxes with the value it names now.
    assert.equal((await cli(['secret', 'set', 'KEPT_TOKEN'], thirdValue)).code, 0);
    assert.equal((await invokeVersion(1)).result?.env.TOKEN, thirdValue);
  });
});

describe('SAVASSAN_SECRET_KEY', () => {
  const key = 'a1'.repeat(32);

  it('seals with the key from the environment instead of a key file, across restarts', async () => {
    const first = await startServer(['--no-examples'], undefined, { SAVASSAN_SECRET_KEY: key });
    try {
      assert.equal((await runCli(first.url, ['secret', 'set', 'K'], {}, firstValue)).code, 0);
      assert.equal((await runCli(first.url, ['deploy', 'keyed', probe, '--secret', 'TOKEN=K'])).code, 0);
      await first.stop();
      await assert.rejects(stat(join(first.dataDir, 'secret.key')), /ENOENT/);

      const again = await startServer(['--no-examples'], first.dataDir, { SAVASSAN_SECRET_KEY: key });
      try {
        const invoked = await runCli(again.url, ['invoke', 'keyed']);
        assert.equal(invoked.code, 0, invoked.stderr);
        assert.equal((JSON.parse(invoked.stdout) as ProbeResult).env.TOKEN, firstValue);
      } finally {
        await again.stop();
      }
    } finally {
      await first.cleanup();
    }
  });

  it('takes the same key from --secret-key-file, which keeps it out of the environment', async () => {
    const first = await startServer(['--no-examples'], undefined, { SAVASSAN_SECRET_KEY: key });
    try {
      assert.equal((await runCli(first.url, ['secret', 'set', 'K'], {}, firstValue)).code, 0);
      assert.equal((await runCli(first.url, ['deploy', 'keyed', probe, '--secret', 'TOKEN=K'])).code, 0);
      await first.stop();
      const keyFile = join(first.dataDir, 'key.txt');
      await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
      const again = await startServer(['--no-examples', '--secret-key-file', keyFile], first.dataDir);
      try {
        const invoked = await runCli(again.url, ['invoke', 'keyed']);
        assert.equal(invoked.code, 0, invoked.stderr);
        assert.equal((JSON.parse(invoked.stdout) as ProbeResult).env.TOKEN, firstValue);
        const environ = await readFile(`/proc/${again.pid}/environ`, 'utf8');
        assert.ok(!environ.includes(key), 'the key is not in the server environment');
      } finally {
        await again.stop();
      }
    } finally {
      await first.cleanup();
    }
  });

  it('refuses a key that is not 32 bytes, without printing it', async () => {
    const bad = 'not-a-key-9d2f';
    const dataDir = await mkdtemp(join(tmpdir(), 'sv-badkey-'));
    try {
      await assert.rejects(startServer(['--no-examples'], dataDir, { SAVASSAN_SECRET_KEY: bad }), (err: Error) => {
        assert.match(err.message, /\[INVALID_CONFIG\] SAVASSAN_SECRET_KEY must be 32 bytes/);
        assert.ok(!err.message.includes(bad));
        return true;
      });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

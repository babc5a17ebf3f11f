// End to end through the real CLI (`bin/savassan.js`) against a real server started with the examples.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { repoRoot, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

describe('CLI end to end', () => {
  let server: ServerProcess;
  const cli = (...args: string[]) => runCli(server.url, args);

  before(async () => {
    // Data inside the project, as `npm start` has it: bundles are extracted below a package.json with
    // "type": "module", which must not turn the CommonJS examples into ES modules.
    server = await startServer([], await mkdtemp(join(repoRoot, '.savassan-test-')));
  });
  after(async () => {
    await server.cleanup();
  });

  it('deploys the examples on first start and says what to try', async () => {
    assert.match(server.output(), /Deployed the examples: echo, fine-tune-trainer, hello, workflow greeting/);
    assert.match(server.output(), /npx savassan workflow run greeting --input name=Ada --wait/);
    assert.match(server.output(), /Try:/);
    assert.match(server.output(), /WARNING: --sandbox process/);
    const ls = await cli('ls');
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^NAME\s+VERSION/m);
    assert.match(ls.stdout, /^hello\s+1\s+index\.handler/m);
    // The fine-tune template is the platform's own, deployed with or without the examples.
    const workflows = await cli('workflow', 'ls');
    assert.match(workflows.stdout, /^fine-tune\s+1\s+5\s/m);
    const hello = await cli('invoke', 'hello', '--data', '{"name":"Ada"}', '--verbose');
    assert.equal(hello.code, 0, hello.stderr);
    assert.equal((JSON.parse(hello.stdout) as { message: string }).message, 'Hello, Ada!');
    assert.match(hello.stderr, /\(cold, version 1\)/);
    const echo = await cli('invoke', 'echo', '-d', '[1,2]');
    assert.equal((JSON.parse(echo.stdout) as { greeting: string; event: unknown }).greeting, 'hi from savassan.json');
    const run = await cli('workflow', 'run', 'greeting', '--input', 'name=Ada', '--wait');
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /SUCCEEDED/);
    assert.match(run.stdout, /Hello, Ada!/);
  });

  it('deploys with flags, invokes cold then warm, shows logs and versions, rolls back', async () => {
    const dir = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
    const deployed = await cli(
      'deploy',
      'cli-probe',
      dir,
      '--env',
      'GREETING=hey',
      '--env',
      'TOKEN=x=y',
      '--timeout',
      '5',
      '--memory',
      '128',
      '--max-instances',
      '2',
    );
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.match(deployed.stdout, /deployed cli-probe version 1/);
    const cold = await cli('invoke', 'cli-probe', '-d', '{"a":1}', '-v');
    assert.match(cold.stderr, /cold/);
    const payload = JSON.parse(cold.stdout) as { env: Record<string, string>; context: { memoryLimitInMB: string } };
    assert.equal(payload.env.GREETING, 'hey');
    assert.equal(payload.env.TOKEN, 'x=y');
    assert.equal(payload.context.memoryLimitInMB, '128');
    const warm = await cli('invoke', 'cli-probe', '-v');
    assert.match(warm.stderr, /warm/);
    const id = /invocation ([0-9a-f-]+)/.exec(cold.stderr)?.[1] ?? '';
    const oneLog = await cli('logs', 'cli-probe', '--invocation', id);
    assert.match(oneLog.stdout, new RegExp(`probe ${id}`));
    const logs = await cli('logs', 'cli-probe');
    assert.equal((logs.stdout.match(/^--- /gm) ?? []).length, 2);

    const eventFile = join(server.dataDir, 'event.json');
    await writeFile(eventFile, '{"from":"file"}');
    const fromFile = await cli('invoke', 'cli-probe', '--file', eventFile);
    assert.deepEqual((JSON.parse(fromFile.stdout) as { event: unknown }).event, { from: 'file' });

    const v2 = await cli('deploy', 'cli-probe', join(repoRoot, 'test', 'fixtures', 'e2e', 'v2'));
    assert.match(v2.stdout, /version 2/);
    assert.deepEqual(JSON.parse((await cli('invoke', 'cli-probe')).stdout), { version: 'two' });
    const versions = await cli('versions', 'cli-probe');
    assert.match(versions.stdout, /^2\s+\*/m);
    const rollback = await cli('versions', 'cli-probe', '--use', '1');
    assert.match(rollback.stdout, /now serves version 1/);
    assert.ok('env' in (JSON.parse((await cli('invoke', 'cli-probe')).stdout) as object));

    const nodes = await cli('nodes');
    assert.match(nodes.stdout, /^local\s+ready\s+process\s+NO/m);

    assert.equal((await cli('rm', 'cli-probe')).code, 0);
    const gone = await cli('invoke', 'cli-probe');
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /^\[NOT_FOUND\] function cli-probe not found$/m);
  });

  it('deploys a .zip with a nested handler', async () => {
    const { zipSync, strToU8 } = await import('fflate');
    const zip = zipSync({ 'src/app.mjs': strToU8('export const main = async (e) => ({ zipped: e.x });') });
    const path = join(server.dataDir, 'fn.zip');
    await writeFile(path, zip);
    const deployed = await cli('deploy', 'zipped', path, '--handler', 'src/app.main');
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.deepEqual(JSON.parse((await cli('invoke', 'zipped', '-d', '{"x":7}')).stdout), { zipped: 7 });
  });

  it('takes secrets from --env-from, with --env winning over the file', async () => {
    const envFile = join(server.dataDir, 'probe.env');
    await writeFile(envFile, '# secrets stay out of argv\nTOKEN="from file"\nGREETING=file\n');
    const dir = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
    const deployed = await cli('deploy', 'env-file-probe', dir, '--env-from', envFile, '--env', 'GREETING=flag');
    assert.equal(deployed.code, 0, deployed.stderr);
    const { env } = JSON.parse((await cli('invoke', 'env-file-probe')).stdout) as { env: Record<string, string> };
    assert.equal(env.TOKEN, 'from file');
    assert.equal(env.GREETING, 'flag');
    const missing = await cli('deploy', 'env-file-probe', dir, '--env-from', join(server.dataDir, 'none.env'));
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /cannot read the env file/);
  });

  it('deploys with --network and repeated --allow-net, and refuses --allow-net alone', async () => {
    const dir = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
    const alone = await cli('deploy', 'cli-net', dir, '--allow-net', '10.1.0.0/16');
    assert.equal(alone.code, 1);
    assert.match(alone.stderr, /allowNet needs network: true/);
    const bad = await cli('deploy', 'cli-net', dir, '--network', '--allow-net', '10.1.0.1/16');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /IPv4 CIDRs with no host bits set/);
    const deployed = await cli(
      'deploy',
      'cli-net',
      dir,
      '--network',
      '--allow-net',
      '192.168.7.0/24',
      '--allow-net',
      '10.1.0.0/16',
    );
    assert.equal(deployed.code, 0, deployed.stderr);
    const fn = (await (await fetch(`${server.url}/v1/functions/cli-net`)).json()) as {
      config: { network: boolean; allowNet: string[] };
    };
    assert.equal(fn.config.network, true);
    assert.deepEqual(fn.config.allowNet, ['10.1.0.0/16', '192.168.7.0/24']);
  });

  it('explains errors and bad usage', async () => {
    const failing = await cli('deploy', 'x', '/definitely/not/here');
    assert.equal(failing.code, 1);
    assert.match(failing.stderr, /no such file or directory/);
    const badFlag = await cli('deploy', 'x', '.', '--timeout', 'soon');
    assert.notEqual(badFlag.code, 0);
    assert.match(badFlag.stderr, /not an integer/);
    const unreachable = await runCli('http://127.0.0.1:1', ['ls']);
    assert.equal(unreachable.code, 1);
    assert.match(unreachable.stderr, /cannot reach Savassan/);
  });
});

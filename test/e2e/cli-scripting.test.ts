// The CLI as scripts use it, through the real `bin/savassan.js` against a real server: `--json` on every command,
// the REPORT line, invocation facts on failure, the event from standard input, one-line errors, help with defaults.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliPath, repoRoot, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const probe = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
const throws = join(repoRoot, 'test', 'fixtures', 'e2e', 'throws');
const report =
  /^REPORT ([0-9a-f-]{36}) Duration: \d+\.\d\d ms (Init: \d+ ms )?Memory: (\d+|\?)\/(\d+) MB start: (cold|warm)$/m;

describe('CLI for scripts', () => {
  let server: ServerProcess;
  const cli = (...args: string[]) => runCli(server.url, args);
  const json = async <T>(...args: string[]): Promise<T> => {
    const result = await cli(...args, '--json');
    assert.equal(result.code, 0, result.stderr);
    return JSON.parse(result.stdout) as T;
  };

  before(async () => {
    server = await startServer(['--no-examples']);
  });
  after(async () => {
    await server.cleanup();
  });

  it('prints JSON for every client command', async () => {
    const deployed = await json<{ created: boolean; version: { version: number } }>(
      'deploy',
      'scripted',
      probe,
      '--memory',
      '128',
    );
    assert.equal(deployed.created, true);
    assert.equal(deployed.version.version, 1);

    const invoked = await json<{
      invocationId: string;
      start: string;
      version: number;
      memoryMB: number;
      result: unknown;
    }>('invoke', 'scripted', '-d', '{"n":1}');
    assert.equal(invoked.start, 'cold');
    assert.equal(invoked.version, 1);
    assert.equal(invoked.memoryMB, 128);
    assert.deepEqual((invoked.result as { event: unknown }).event, { n: 1 });

    const { functions } = await json<{ functions: { name: string }[] }>('ls');
    assert.deepEqual(
      functions.map((f) => f.name),
      ['scripted'],
    );
    const { versions } = await json<{ versions: { version: number; current: boolean }[] }>('versions', 'scripted');
    assert.deepEqual(versions, [{ ...versions[0], version: 1, current: true }]);
    const used = await json<{ currentVersion: number }>('versions', 'scripted', '--use', '1');
    assert.equal(used.currentVersion, 1);
    const { nodes } = await json<{ nodes: { nodeId: string }[] }>('nodes');
    assert.equal(nodes[0]?.nodeId, 'local');
    // The table shows what the sandbox runtime enforces, mechanism by mechanism.
    const table = await cli('nodes');
    assert.match(table.stdout, /^local enforces:$/m);
    assert.match(table.stdout, /^ {2}memory\s+\S+/m);
    const shown = await json<{ id: string; functionName: string; memoryMB: number; report: string }>(
      'invocation',
      'show',
      invoked.invocationId,
    );
    assert.equal(shown.id, invoked.invocationId);
    assert.equal(shown.functionName, 'scripted');
    assert.match(shown.report, report);

    const logs = await cli('logs', 'scripted', '--json');
    assert.equal(logs.code, 0, logs.stderr);
    const entries = logs.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { invocationId: string; log: string; report: string });
    assert.deepEqual(
      entries.map((e) => e.invocationId),
      [invoked.invocationId],
    );
    assert.match(entries[0]?.log ?? '', /probe/);
    assert.match(entries[0]?.report ?? '', report);

    const removed = await json<{ deleted: string }>('rm', 'scripted');
    assert.deepEqual(removed, { deleted: 'scripted' });
    const failed = await cli('invoke', 'scripted', '--json');
    assert.equal(failed.code, 1);
    const error = JSON.parse(failed.stdout) as { error: { code: string; message: string } };
    assert.equal(error.error.code, 'NOT_FOUND');
    assert.match(error.error.message, /function scripted not found/);
  });

  it('prints the invocation id and a REPORT line with invoke -v, on success and on failure, and in logs', async () => {
    assert.equal((await cli('deploy', 'reported', probe, '--memory', '192')).code, 0);
    const cold = await cli('invoke', 'reported', '-v');
    assert.equal(cold.code, 0, cold.stderr);
    const line = report.exec(cold.stderr);
    assert.ok(line, cold.stderr);
    assert.equal(line[5], 'cold');
    assert.ok(line[2] !== undefined, 'a cold start reports its init time');
    assert.equal(line[4], '192');
    const warm = await cli('invoke', 'reported', '-v');
    assert.equal(report.exec(warm.stderr)?.[5], 'warm');

    const logs = await cli('logs', 'reported');
    assert.equal((logs.stdout.match(new RegExp(report.source, 'gm')) ?? []).length, 2, logs.stdout);
    const one = await cli('logs', 'reported', '-i', line[1] ?? '');
    assert.match(one.stdout, new RegExp(`probe ${line[1]}`));
    assert.equal(report.exec(one.stdout)?.[1], line[1]);

    assert.equal((await cli('deploy', 'failing', throws)).code, 0);
    const failing = await cli('invoke', 'failing', '-v');
    assert.equal(failing.code, 1);
    assert.match(failing.stderr, /^\[FUNCTION_ERROR\] card 4242 was declined$/m);
    const id = /^invocation ([0-9a-f-]{36}) failed \(cold, version 1\)$/m.exec(failing.stderr)?.[1];
    assert.ok(id, failing.stderr);
    assert.equal(report.exec(failing.stderr)?.[1], id);
    const shown = await cli('invocation', 'show', id);
    assert.match(shown.stdout, /^status\s+error$/m);
    assert.match(shown.stdout, /^error\s+PaymentDeclined: card 4242 was declined$/m);

    // The log of an invocation of another function is not this function's.
    const other = await cli('logs', 'reported', '-i', id);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /^\[NOT_FOUND\] invocation \S+ is not of function reported \(it is of failing\)$/m);
  });

  it('reads the event from standard input with -f -', async () => {
    assert.equal((await cli('deploy', 'stdin-probe', probe)).code, 0);
    const result = await runCli(server.url, ['invoke', 'stdin-probe', '-f', '-'], {}, '{"from":"stdin"}');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((JSON.parse(result.stdout) as { event: unknown }).event, { from: 'stdin' });
  });

  it('answers a bad flag with one line in the [CODE] message format, not the whole help', async () => {
    const bad = await cli('deploy', 'x', '.', '--timeout', 'soon');
    assert.equal(bad.code, 1);
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    assert.match(bad.stderr, /^\[BAD_REQUEST\] .*not an integer: soon/);
    const unknown = await cli('ls', '--colour');
    assert.equal(unknown.stderr.trim().split('\n').length, 1, unknown.stderr);
    assert.match(unknown.stderr, /^\[BAD_REQUEST\] unknown option '--colour'/);
  });

  it('shows defaults and an example in the help of the commands', async () => {
    const deploy = await cli('deploy', '--help');
    for (const fact of [
      /default 30\)/,
      /default 256\)/,
      /default 10\)/,
      /default 300\)/,
      /Examples:\n {2}savassan deploy /,
    ])
      assert.match(deploy.stdout, fact);
    for (const command of ['invoke', 'logs', 'ls', 'rm', 'versions', 'nodes', 'start', 'agent', 'manager', 'gateway'])
      assert.match((await cli(command, '--help')).stdout, new RegExp(`Examples:\\n {2}.*savassan ${command}`));
    assert.match((await cli('invocation', 'show', '--help')).stdout, /Examples:\n {2}savassan invocation show/);
  });
});

describe('savassan start', () => {
  it('exits 1 at once on a busy port, with one line and nothing left running', async () => {
    const busy = createServer();
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const { port } = busy.address() as AddressInfo;
    const dataDir = await mkdtemp(join(tmpdir(), 'sv-busy-'));
    try {
      const child = spawn(
        process.execPath,
        [cliPath, 'start', '--port', String(port), '--data-dir', dataDir, '--sandbox', 'process'],
        { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      // A start that hangs is killed: the test then fails on the exit code.
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      clearTimeout(killer);
      assert.equal(code, 1, stderr);
      const lines = stderr.trim().split('\n');
      assert.equal(lines[0], `[UNAVAILABLE] port ${port} on 127.0.0.1 is already in use; pick another with --port`);
      assert.ok(!lines.some((l) => l.startsWith('{') && l.includes('"stack"')), stderr);
    } finally {
      busy.close();
    }
  });

  it('prints one JSON line with --json once serving', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'sv-json-'));
    const child = spawn(
      process.execPath,
      [cliPath, 'start', '--port', '0', '--data-dir', dataDir, '--sandbox', 'process', '--no-examples', '--json'],
      { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] },
    );
    try {
      const line = await new Promise<string>((resolve) => {
        let stdout = '';
        child.stdout.on('data', (d: Buffer) => {
          stdout += d.toString();
          if (stdout.includes('\n')) resolve(stdout.slice(0, stdout.indexOf('\n')));
        });
      });
      const banner = JSON.parse(line) as { url: string; sandbox: string; examples: string[] };
      assert.match(banner.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(banner.sandbox, 'process');
      assert.deepEqual(banner.examples, []);
      const health = await fetch(`${banner.url}/healthz`);
      assert.equal(health.status, 200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    }
  });
});

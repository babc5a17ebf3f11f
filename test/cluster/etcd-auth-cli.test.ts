// `savassan agent` against an etcd with authentication enabled: the user from --etcd-user, the password from the
// environment or a file (never argv); without them it exits with one line saying what to pass. Runs dist/.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliPath, runCli } from '../helpers/server-process.js';
import { etcdAvailable, startEtcdServer, type EtcdServer } from '../kit/etcd-server.js';

describe('savassan agent with etcd authentication', { skip: etcdAvailable() ? false : 'etcd is not installed' }, () => {
  let etcd: EtcdServer;
  let root: string;
  const password = `pw-${randomUUID()}`;
  const token = `token-${randomUUID()}`;
  const agentArgs = (dataDir: string): string[] => [
    ...['agent', '--node-id', 'node-auth', '--listen', '127.0.0.1:0', '--sandbox', 'process', '--no-stem-cells'],
    ...['--etcd', etcd.endpoints.join(','), '--etcd-prefix', '/auth-test', '--data-dir', dataDir],
  ];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-etcd-auth-'));
    etcd = await startEtcdServer();
    await etcd.ctl(['user', 'add', 'root', '--new-user-password', password]);
    await etcd.ctl(['auth', 'enable']);
  });

  after(async () => {
    await etcd?.stop();
    await rm(root, { recursive: true, force: true });
  });

  it('registers as the etcd user, with the password from a file', async () => {
    const passwordFile = join(root, 'etcd-password');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    const args = [...agentArgs(join(root, 'a')), '--etcd-user', 'root', '--etcd-password-file', passwordFile];
    const child = spawn(process.execPath, [cliPath, ...args], {
      env: { ...process.env, SAVASSAN_CLUSTER_TOKEN: token, SAVASSAN_ETCD_PASSWORD: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit');
    try {
      while (!output.includes('is serving on')) {
        assert.equal(child.exitCode, null, output);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const keys = await etcd.ctl(['--user', `root:${password}`, 'get', '--prefix', '--keys-only', '/auth-test/']);
      assert.match(keys, /\/auth-test\/nodes\/node-auth/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('exits with one line saying what to pass when the user or password is missing or wrong', async () => {
    const env = { SAVASSAN_CLUSTER_TOKEN: token, SAVASSAN_ETCD_PASSWORD: '' };
    const none = await runCli('', agentArgs(join(root, 'b')), env);
    assert.equal(none.code, 1, none.stderr);
    assert.match(none.stderr, /requires a user: pass --etcd-user and SAVASSAN_ETCD_PASSWORD/);
    const noPassword = await runCli('', [...agentArgs(join(root, 'c')), '--etcd-user', 'root'], env);
    assert.equal(noPassword.code, 1, noPassword.stderr);
    assert.match(
      noPassword.stderr,
      /etcd user root needs a password: set SAVASSAN_ETCD_PASSWORD or pass --etcd-password-file/,
    );
    const wrong = await runCli('', [...agentArgs(join(root, 'd')), '--etcd-user', 'root'], {
      ...env,
      SAVASSAN_ETCD_PASSWORD: 'wrong',
    });
    assert.equal(wrong.code, 1, wrong.stderr);
    assert.match(wrong.stderr, /refused the user root: wrong user name or password/);
    for (const result of [none, noPassword, wrong]) assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
  });
});

// What an Agent that died leaves behind is removed when the next one starts on the same work dir: sandbox
// directories, and for runc its containers, their bundles and their cgroups.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, describe, it } from 'node:test';
import { RuncRuntime } from '../../src/sandbox/runc-runtime.js';

const run = promisify(execFile);
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const runcRuntime = fileURLToPath(new URL('../../dist/sandbox/runc-runtime.js', import.meta.url));

/** Starts a runc sandbox from a separate process, then SIGKILLs that process: a crashed Agent. */
async function crashWithSandbox(workDir: string): Promise<string> {
  const script = `
    import { mkdirSync } from 'node:fs';
    const { RuncRuntime } = await import(${JSON.stringify(runcRuntime)});
    const workDir = ${JSON.stringify(workDir)};
    const runtime = await RuncRuntime.open({ workDir, cgroupName: 'savassan-test-' + process.pid });
    const taskDir = workDir + '/task';
    mkdirSync(taskDir, { recursive: true });
    const proc = await runtime.launch({
      instanceId: '00000000-0000-4000-8000-000000000001',
      taskDir,
      scratchDir: taskDir,
      runtime: 'nodejs20',
      network: false,
      limits: { memoryMB: 128, pids: 64, openFiles: 256, tmpMB: 16, cpus: 1 },
    });
    proc.channel.once('data', () => process.stdout.write('ready ' + process.pid + '\\n'));
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const pid = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const match = /ready (\d+)/.exec(d.toString());
      if (match?.[1] !== undefined) resolve(match[1]);
    });
    child.once('exit', (code) =>
      reject(new Error(`the agent exited (${code}) before its sandbox said hello: ${output}`)),
    );
  });
  child.kill('SIGKILL');
  await new Promise((resolve) => child.once('exit', resolve));
  return pid;
}

async function cgroupsNamed(name: string): Promise<string[]> {
  const found: string[] = [];
  for (const hierarchy of await readdir('/sys/fs/cgroup')) {
    if (existsSync(join('/sys/fs/cgroup', hierarchy, name))) found.push(hierarchy);
  }
  return found;
}

describe(
  'restart after a crash',
  { skip: (!existsSync('/usr/sbin/runc') && 'runc is not installed') || (!isRoot && 'runc needs root') },
  () => {
    const roots: string[] = [];
    after(async () => {
      for (const root of roots) await rm(root, { recursive: true, force: true });
    });

    it('runc: the next open deletes the dead Agent containers, bundles and cgroups', async () => {
      const workDir = await mkdtemp(join(tmpdir(), 'sv-runc-crash-'));
      roots.push(workDir);
      const stateDir = join(workDir, 'runc', 'state');
      const deadPid = await crashWithSandbox(workDir);
      const listed = (await run('/usr/sbin/runc', ['--root', stateDir, 'list', '--quiet'])).stdout.trim();
      assert.notEqual(listed, '', 'the crash left a container');
      assert.notDeepEqual(await readdir(join(workDir, 'runc', 'bundles')), [], 'and its bundle');
      assert.notDeepEqual(await cgroupsNamed(`savassan-test-${deadPid}`), [], 'and its cgroups');

      const runtime = await RuncRuntime.open({ workDir, cgroupName: `savassan-test-${process.pid}-restart` });
      try {
        assert.equal((await run('/usr/sbin/runc', ['--root', stateDir, 'list', '--quiet'])).stdout.trim(), '');
        assert.deepEqual(await readdir(join(workDir, 'runc', 'bundles')), []);
        assert.deepEqual(await cgroupsNamed(`savassan-test-${deadPid}`), []);
      } finally {
        await runtime.close();
      }
    });
  },
);

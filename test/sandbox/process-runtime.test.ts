import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchSpecIn } from '../helpers/launch-spec.js';
import { isPlatformError } from '../../src/core/errors.js';
import type { SandboxLaunchSpec } from '../../src/core/ports/sandbox-runtime.js';
import { ProcessRuntime } from '../../src/sandbox/process-runtime.js';

// Stand-in guests (the real shim is exercised by src/agent/agent.test.ts).
const reportEnv = `
process.stderr.write(JSON.stringify({ env: process.env, cwd: process.cwd(), execArgv: process.execArgv }));
process.exit(5);
`;
const spawnTree = `
const { spawn } = require('node:child_process');
const child = spawn('sleep', ['30'], { stdio: 'ignore' });
require('node:fs').writeFileSync(process.env.TMPDIR + '/child.pid', String(child.pid));
setInterval(() => {}, 1000);
`;

/** Alive and not a zombie (a reparented zombie may linger when nothing reaps it). */
async function isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z /.test(stat);
  } catch {
    return false;
  }
}

describe('ProcessRuntime', () => {
  let root: string;
  let spec: SandboxLaunchSpec;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-runtime-'));
    await writeFile(join(root, 'report-env.cjs'), reportEnv);
    await writeFile(join(root, 'spawn-tree.cjs'), spawnTree);
    await mkdir(join(root, 'code'));
    await mkdir(join(root, 'scratch'));
    spec = launchSpecIn(root);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('is the non-isolating process kind', () => {
    const runtime = new ProcessRuntime();
    assert.equal(runtime.kind, 'process');
    assert.equal(runtime.isolating, false);
  });

  it('starts the guest in codeDir with a minimal environment and the heap limit, and keeps its stderr tail', async () => {
    process.env['SAVASSAN_TEST_HOST_SECRET'] = 'x';
    try {
      const proc = await new ProcessRuntime({ shimPath: join(root, 'report-env.cjs') }).launch(spec);
      assert.ok(proc.pid !== null);
      const exit = await proc.exited;
      assert.equal(exit.code, 5);
      assert.equal(exit.signal, null);
      const report = JSON.parse(exit.stderrTail) as { env: Record<string, string>; cwd: string; execArgv: string[] };
      assert.deepEqual(report.env, {
        SAVASSAN_CHANNEL_FD: '3',
        PATH: '/usr/local/bin:/usr/bin:/bin',
        HOME: spec.scratchDir,
        TMPDIR: spec.scratchDir,
        LANG: 'C.UTF-8',
        TZ: 'UTC',
        NODE_ENV: 'production',
      });
      assert.equal(report.cwd, spec.taskDir);
      assert.equal(proc.guestTaskDir, spec.taskDir);
      assert.deepEqual(report.execArgv, ['--max-old-space-size=64']);
      assert.equal(await proc.memoryBytes(), null, 'no memory reading once exited');
      assert.deepEqual(await proc.kill(), exit, 'kill after exit is a no-op');
    } finally {
      delete process.env['SAVASSAN_TEST_HOST_SECRET'];
    }
  });

  it('kills the whole process group, idempotently', async () => {
    const proc = await new ProcessRuntime({ shimPath: join(root, 'spawn-tree.cjs') }).launch(spec);
    const pidFile = join(spec.scratchDir, 'child.pid');
    let childPid = 0;
    for (let i = 0; i < 250 && childPid === 0; i++) {
      childPid = Number(await readFile(pidFile, 'utf8').catch(() => '0'));
      if (childPid === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.ok(childPid > 0, 'the guest started a child');
    const rss = await proc.memoryBytes();
    assert.ok(rss !== null && rss > 1024 * 1024, `rss ${rss}`);
    const [first, second] = await Promise.all([proc.kill(), proc.kill()]);
    assert.equal(first.signal, 'SIGKILL');
    assert.deepEqual(second, first);
    assert.equal(await isRunning(proc.pid ?? 0), false);
    for (let i = 0; i < 50 && (await isRunning(childPid)); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(await isRunning(childPid), false, 'the grandchild died with the group');
  });

  it('says clearly when the shim is missing', async () => {
    await assert.rejects(
      new ProcessRuntime({ shimPath: join(root, 'nope.js') }).launch(spec),
      (err: unknown) => isPlatformError(err, 'INTERNAL') && /guest shim not found at .*nope\.js/.test(err.message),
    );
  });
});

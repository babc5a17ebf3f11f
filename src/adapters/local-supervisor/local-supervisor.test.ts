import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';

import { isPlatformError } from '../../core/errors.js';
import type { ControlProcess } from '../../core/ports/infrastructure.js';
import { LocalSupervisor, withOption } from './local-supervisor.js';

/**
 * A build as small as can be: `version --json` prints its identity; a role prints its arguments and runs until
 * SIGTERM (or ignores it, or exits at once, as `behaviour` says).
 */
async function makeBuild(
  dir: string,
  identity: string,
  behaviour: 'serve' | 'ignore-sigterm' | 'crash' = 'serve',
): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  const script = `
const [command, ...rest] = process.argv.slice(2);
if (command === 'version') { console.log(${JSON.stringify(identity)}); process.exit(0); }
console.log(JSON.stringify({ role: command, args: rest, secret: process.env.TEST_SECRET ?? null }));
${behaviour === 'crash' ? "console.error('cannot listen: port taken'); process.exit(3);" : ''}
${behaviour === 'ignore-sigterm' ? "process.on('SIGTERM', () => console.log('ignoring SIGTERM'));" : "process.on('SIGTERM', () => process.exit(0));"}
setInterval(() => {}, 1000);
`;
  await writeFile(join(dir, 'bin', 'savassan.js'), script);
}

function alive(pid: number): boolean {
  try {
    const cmdline = execFileSync('cat', [`/proc/${pid}/cmdline`], { encoding: 'utf8', stdio: 'pipe' });
    return cmdline !== '';
  } catch {
    return false;
  }
}

const oldManager: ControlProcess = {
  id: 'manager-a',
  role: 'manager',
  build: { version: '0.1.0', build: 'dev', protocol: 1 },
  args: ['--etcd', 'http://127.0.0.1:2379', '--id', 'manager-a', '--data-dir=/somewhere/else', '--log-level', 'debug'],
};

describe('LocalSupervisor', () => {
  let base: string;
  let builds: string;
  let root: string;
  let supervisor: LocalSupervisor;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'savassan-supervisor-'));
    builds = join(base, 'builds');
    root = join(base, 'procs');
    await makeBuild(join(builds, '0.2.0'), '{"version":"0.2.0","build":"b2","protocol":1}');
    await makeBuild(join(builds, 'stubborn'), '{"version":"0.2.0","build":"stubborn","protocol":1}', 'ignore-sigterm');
    await makeBuild(join(builds, 'crashing'), '{"version":"0.2.0","build":"crash","protocol":1}', 'crash');
    await makeBuild(join(builds, 'bogus'), 'this is not JSON');
    await makeBuild(join(builds, 'elsewhere'), '{"version":"0.3.0","build":"x","protocol":2}');
    await makeBuild(join(base, 'outside'), '{"version":"0.3.0","build":"x","protocol":2}');
    supervisor = new LocalSupervisor({
      buildsDir: builds,
      root,
      env: { ...process.env, TEST_SECRET: 'from-the-environment' },
      retireGraceMs: 300,
    });
  });

  after(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('resolves a version installed in the builds directory by asking it what it is', async () => {
    assert.deepEqual(await supervisor.resolve('0.2.0'), {
      version: '0.2.0',
      build: 'b2',
      protocol: 1,
      location: join(builds, '0.2.0'),
    });
  });

  it('resolves a path inside the builds directory, relative or absolute, and refuses one outside it', async () => {
    const build = await supervisor.resolve(join(builds, 'elsewhere'));
    assert.deepEqual(build, { version: '0.3.0', build: 'x', protocol: 2, location: join(builds, 'elsewhere') });
    const fromHere = relative(process.cwd(), join(builds, 'elsewhere'));
    assert.equal(
      (await supervisor.resolve(fromHere.startsWith('.') ? fromHere : `./${fromHere}`)).location,
      join(builds, 'elsewhere'),
    );
    await assert.rejects(
      supervisor.resolve(join(base, 'outside')),
      (err) => isPlatformError(err, 'BAD_REQUEST') && err.message.includes('only from the builds directory'),
    );
  });

  it('refuses a build others may write, and gives the build no secret when it asks what it is', async () => {
    await makeBuild(join(builds, 'open'), '{"version":"0.3.0","build":"x","protocol":2}');
    await chmod(join(builds, 'open', 'bin'), 0o777);
    await assert.rejects(
      supervisor.resolve('open'),
      (err) => isPlatformError(err, 'BAD_REQUEST') && err.message.includes('is not trusted'),
    );
    const leaky = join(builds, 'leaky');
    await mkdir(join(leaky, 'bin'), { recursive: true });
    await writeFile(
      join(leaky, 'bin', 'savassan.js'),
      'process.stderr.write(String(process.env.TEST_SECRET)); process.exit(1);\n',
    );
    await assert.rejects(
      supervisor.resolve('leaky'),
      (err) => isPlatformError(err, 'BAD_REQUEST') && !err.message.includes('from-the-environment'),
    );
  });

  it('answers NOT_FOUND for a version that is not installed and a path without a build', async () => {
    await assert.rejects(
      supervisor.resolve('9.9.9'),
      (err) => isPlatformError(err, 'NOT_FOUND') && /no build 9\.9\.9 in/.test(err.message),
    );
    await assert.rejects(
      supervisor.resolve(join(builds, 'empty')),
      (err) => isPlatformError(err, 'NOT_FOUND') && err.message.includes('no build empty in'),
    );
  });

  it('answers BAD_REQUEST for a target that is neither a version nor a path, and for a build that does not say what it is', async () => {
    await assert.rejects(supervisor.resolve('not a version'), (err) => isPlatformError(err, 'BAD_REQUEST'));
    await assert.rejects(
      supervisor.resolve('bogus'),
      (err) => isPlatformError(err, 'BAD_REQUEST') && err.message.includes('is not a Savassan build'),
    );
  });

  it('launches a detached process like the old one, with its own id, data directory, log and pid file, then retires it', async () => {
    const build = await supervisor.resolve('0.2.0');
    const launched = await supervisor.launch({ role: 'manager', id: 'manager-b', build, like: oldManager });
    assert.deepEqual(launched, { id: 'manager-b', where: join(root, 'manager-b.log') });
    const pid = Number((await readFile(join(root, 'manager-b.pid'), 'utf8')).trim());
    assert.ok(alive(pid));
    assert.equal((await stat(join(root, 'manager-b.log'))).mode & 0o777, 0o600);

    let line: { role: string; args: string[]; secret: string | null } | undefined;
    while (line === undefined) {
      const log = await readFile(join(root, 'manager-b.log'), 'utf8');
      if (log.includes('\n')) line = JSON.parse(log.split('\n')[0] ?? '') as typeof line;
      else await sleep(50);
    }
    assert.deepEqual(line, {
      role: 'manager',
      args: [
        '--etcd',
        'http://127.0.0.1:2379',
        '--id',
        'manager-b',
        '--data-dir',
        join(root, 'manager-b'),
        '--log-level',
        'debug',
      ],
      secret: 'from-the-environment',
    });

    await supervisor.retire({ ...oldManager, id: 'manager-b', build });
    assert.ok(!alive(pid));
    assert.ok(!existsSync(join(root, 'manager-b.pid')));
  });

  it('kills a process that ignores SIGTERM', async () => {
    const build = await supervisor.resolve('stubborn');
    await supervisor.launch({
      role: 'gateway',
      id: 'gateway-s',
      build,
      like: { ...oldManager, role: 'gateway', args: [] },
    });
    const pid = Number((await readFile(join(root, 'gateway-s.pid'), 'utf8')).trim());
    await supervisor.retire({ ...oldManager, role: 'gateway', id: 'gateway-s', build });
    assert.ok(!alive(pid));
    assert.match(await readFile(join(root, 'gateway-s.log'), 'utf8'), /ignoring SIGTERM/);
  });

  it('fails a launch whose process exits at once, naming its log', async () => {
    const build = await supervisor.resolve('crashing');
    await assert.rejects(
      supervisor.launch({ role: 'gateway', id: 'gateway-c', build, like: { ...oldManager, role: 'gateway' } }),
      (err) =>
        isPlatformError(err, 'UNAVAILABLE') && err.message.includes('gateway-c.log') && err.message.includes('code 3'),
    );
    assert.ok(!existsSync(join(root, 'gateway-c.pid')));
  });

  it('leaves alone processes it did not launch, and a pid that now belongs to something else', async () => {
    await supervisor.retire({ ...oldManager, id: 'manager-never-launched' });

    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      await writeFile(join(root, 'manager-stale.pid'), `${other.pid}\n`);
      await supervisor.retire({ ...oldManager, id: 'manager-stale' });
      assert.equal(other.exitCode, null);
      assert.equal(other.signalCode, null);
      assert.ok(!existsSync(join(root, 'manager-stale.pid')));
    } finally {
      other.kill();
    }
  });

  it('refuses ids that are not safe file names', async () => {
    const build = await supervisor.resolve('0.2.0');
    await assert.rejects(supervisor.launch({ role: 'manager', id: '../escape', build, like: oldManager }), (err) =>
      isPlatformError(err, 'BAD_REQUEST'),
    );
  });
});

describe('withOption', () => {
  it('replaces both forms of an option, once, and adds it when absent', () => {
    assert.deepEqual(withOption(['--a', '1', '--id', 'x', '--b'], '--id', 'y'), ['--a', '1', '--id', 'y', '--b']);
    assert.deepEqual(withOption(['--id=x', '--id', 'z'], '--id', 'y'), ['--id', 'y']);
    assert.deepEqual(withOption(['--identity', 'q'], '--id', 'y'), ['--identity', 'q', '--id', 'y']);
  });
});

// The sandbox boundary, tested from inside with a hostile function on every isolating runtime. Each assertion
// would fail with the boundary removed: the same function run by the process runtime reads, writes and connects.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { Agent } from '../../src/agent/agent.js';
import { compileFunctionConfig, type FunctionConfigInput } from '../../src/core/function-config.js';
import type { InvokeOutcome, SandboxSpec } from '../../src/core/ports/agent-api.js';
import type { Enforcement, SandboxRuntime } from '../../src/core/ports/sandbox-runtime.js';
import { blobKeys } from '../../src/core/types.js';
import { readBundle } from '../../src/client/bundle.js';
import { BwrapRuntime } from '../../src/sandbox/bwrap-runtime.js';
import { bundledNode24Path, nodeBinaryFor, sharedLibraries } from '../../src/sandbox/node-runtimes.js';
import { ProcessRuntime } from '../../src/sandbox/process-runtime.js';
import { RuncRuntime } from '../../src/sandbox/runc-runtime.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const hostile = join(repoRoot, 'test', 'fixtures', 'functions', 'hostile');
const limits = { pids: 64, openFiles: 256, tmpMB: 16, cpus: 1 };
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

interface Harness {
  agent: Agent;
  runtime: SandboxRuntime;
  root: string;
  /** A file outside the sandbox that no function may read. */
  secretPath: string;
  /** A listening TCP port on the host's loopback (as the gateway's would be). */
  port: number;
  deploy(config?: FunctionConfigInput): Promise<SandboxSpec>;
  run(spec: SandboxSpec, event: Record<string, unknown>, timeoutMs?: number): Promise<InvokeOutcome>;
  close(): Promise<void>;
}

async function harness(kind: 'process' | 'bwrap' | 'runc'): Promise<Harness> {
  const root = await mkdtemp(join(tmpdir(), `sv-iso-${kind}-`));
  // Sandbox users pass through (but cannot list) the test's directory, as with a data dir made by mkdir.
  await chmod(root, 0o711);
  const workDir = join(root, 'agent');
  const blobs = new FsBlobStore(join(root, 'blobs'));
  const cgroupName = `savassan-test-${process.pid}-${kind}`;
  const runtime =
    kind === 'process'
      ? new ProcessRuntime()
      : kind === 'bwrap'
        ? await BwrapRuntime.open({ workDir, cgroupName })
        : await RuncRuntime.open({ workDir, cgroupName });
  const agent = new Agent({ nodeId: kind, runtime, blobStore: blobs, workDir, limits });
  const secretPath = join(root, 'savassan.db');
  await writeFile(secretPath, 'the platform database');
  const server: Server = createServer((socket) => {
    socket.on('error', () => {});
    socket.end('gateway\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  const zip = await readBundle(hostile);
  const sha = createHash('sha256').update(zip).digest('hex');
  await blobs.put(blobKeys.code(sha), zip);
  let version = 0;
  return {
    agent,
    runtime,
    root,
    secretPath,
    port,
    deploy(config = {}) {
      version += 1;
      return Promise.resolve({
        functionName: 'hostile',
        incarnation: 'i1',
        version,
        codeSha256: sha,
        config: compileFunctionConfig({ memoryMB: 128, timeoutSeconds: 5, ...config }),
      });
    },
    async run(spec, event, timeoutMs = 5000) {
      const ref = await agent.createSandbox(spec);
      try {
        return await agent.invoke(ref.instanceId, {
          invocationId: randomUUID(),
          eventJson: Buffer.from(JSON.stringify(event)),
          timeoutMs,
        });
      } finally {
        await agent.destroySandbox(ref.instanceId);
      }
    },
    async close() {
      await agent.close();
      await runtime.close();
      await new Promise((resolve) => server.close(resolve));
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** This process's seccomp mode and filter count (a host in a container may have a filter of its own). */
function ownSeccomp(): { mode: number; filters: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s*(\\d+)`, 'm').exec(status)?.[1] ?? -1);
  return { mode: field('Seccomp'), filters: field('Seccomp_filters') };
}

function result(outcome: InvokeOutcome): Record<string, unknown> {
  assert.equal(outcome.status, 'success', JSON.stringify(outcome.error));
  return JSON.parse(new TextDecoder().decode(outcome.payloadJson)) as Record<string, unknown>;
}

function skipReason(kind: 'bwrap' | 'runc'): string | false {
  if (process.platform !== 'linux') return 'Linux only';
  if (kind === 'bwrap' && !existsSync('/usr/bin/bwrap')) return 'bubblewrap is not installed';
  if (kind === 'runc' && !existsSync('/usr/sbin/runc')) return 'runc is not installed';
  if (kind === 'runc' && !isRoot) return 'runc needs root';
  return false;
}

describe('the process runtime does not isolate (what the boundary tests would see without a boundary)', () => {
  let h: Harness;
  before(async () => {
    h = await harness('process');
  });
  after(() => h.close());

  it('runs the function under SCHED_BATCH: waking it does not preempt the platform', async () => {
    const spec = await h.deploy();
    assert.deepEqual(result(await h.run(spec, { action: 'schedulingPolicy' })), { policy: 3 });
    assert.equal(h.runtime.capabilities.scheduling.enforced, true);
  });

  it('installs no seccomp filter', async () => {
    const spec = await h.deploy();
    assert.deepEqual(result(await h.run(spec, { action: 'seccomp' })), ownSeccomp());
    assert.equal(h.runtime.capabilities.syscalls.enforced, false);
  });

  it('lets a function read host files and reach loopback', async () => {
    const spec = await h.deploy();
    assert.equal(result(await h.run(spec, { action: 'read', path: h.secretPath }))['ok'], true);
    assert.equal(result(await h.run(spec, { action: 'connect', host: '127.0.0.1', port: h.port }))['ok'], true);
  });
});

for (const kind of ['bwrap', 'runc'] as const) {
  describe(`the ${kind} sandbox`, { skip: skipReason(kind) }, () => {
    let h: Harness;
    let spec: SandboxSpec;
    before(async () => {
      h = await harness(kind);
      spec = await h.deploy();
    });
    after(() => h?.close());

    it('enforces every mechanism on this host, or says which it cannot', () => {
      for (const [limit, enforcement] of Object.entries(h.runtime.capabilities) as [string, Enforcement][]) {
        if (!isRoot && ['memory', 'pids', 'cpu', 'hostAddresses', 'freezing'].includes(limit)) continue;
        assert.equal(enforcement.enforced, true, `${limit}: ${enforcement.note}`);
      }
    });

    it('runs the function under SCHED_BATCH: waking it does not preempt the platform', async () => {
      assert.deepEqual(result(await h.run(spec, { action: 'schedulingPolicy' })), { policy: 3 });
    });

    it('runs the function under a seccomp filter (test/sandbox/seccomp.test.ts tries the calls it refuses)', async () => {
      const host = ownSeccomp();
      assert.deepEqual(result(await h.run(spec, { action: 'seccomp' })), { mode: 2, filters: host.filters + 1 });
      assert.equal(h.runtime.capabilities.syscalls.enforced, true);
    });

    it('runs the function as an unprivileged user in its code directory', async () => {
      const identity = result(await h.run(spec, { action: 'identity' }));
      assert.notEqual(identity['uid'], 0);
      assert.equal(identity['cwd'], '/var/task');
      assert.equal(result(await h.run(spec, { action: 'read', path: '/var/task/index.js' }))['ok'], true);
    });

    it('finds no host path of the platform in the environment or command line of its processes', async () => {
      const read = async (path: string): Promise<string> => {
        const answer = result(await h.run(spec, { action: 'read', path, limit: 65536 }));
        // Unreadable would pass every check below: the reads must succeed.
        assert.equal(answer['ok'], true, `cannot read ${path}: ${JSON.stringify(answer)}`);
        return answer['value'] as string;
      };
      const environ = await read('/proc/1/environ');
      assert.doesNotMatch(environ, /(^|\0)PWD=/, "the Agent's working directory");
      assert.ok(!environ.includes(repoRoot), environ);
      // Without root, bwrap binds the data dir's paths directly and its pid 1 shows them in its arguments.
      const places = isRoot ? ['/proc/1/environ', '/proc/1/cmdline', '/proc/self/environ'] : ['/proc/self/environ'];
      for (const place of places) {
        const text = await read(place);
        assert.ok(!text.includes(h.root), `${place} shows the data dir ${h.root}: ${JSON.stringify(text)}`);
      }
    });

    it('cannot read host files outside its code', async () => {
      for (const path of [h.secretPath, '/etc/shadow', '/etc/passwd', join(repoRoot, 'package.json'), h.root]) {
        const read = result(await h.run(spec, { action: path === h.root ? 'list' : 'read', path }));
        assert.equal(read['ok'], false, `read ${path}: ${JSON.stringify(read)}`);
      }
      const root = result(await h.run(spec, { action: 'list', path: '/' }));
      assert.equal(root['ok'], true);
      assert.ok(!(root['value'] as string[]).includes('home'), `visible at /: ${String(root['value'])}`);
    });

    it('cannot write outside /tmp', async () => {
      for (const path of ['/var/task/index.js', '/var/task/new.js', '/etc/x', '/x', '/usr/bin/node', '/dev/shm/x']) {
        const write = result(await h.run(spec, { action: 'write', path }));
        assert.equal(write['ok'], false, `write ${path}`);
      }
      assert.equal(result(await h.run(spec, { action: 'write', path: '/tmp/scratch' }))['ok'], true);
    });

    it('runs a file written to /tmp on bwrap only: the /tmp of runc is noexec, even through the ELF loader', async () => {
      const libraries = await sharedLibraries(await nodeBinaryFor('nodejs20'));
      const libc = libraries.find((path) => /\/libc\.so\.6$/.test(path));
      const loader = libraries.find((path) => /\/ld-linux[^/]*\.so\.\d$/.test(path));
      assert.ok(libc !== undefined && loader !== undefined, libraries.join(' '));
      // glibc's libc.so.6 is executable: it prints its version and exits 0.
      const ran = result(await h.run(spec, { action: 'execFromTmp', from: libc, loader }));
      const { direct, loader: viaLoader } = ran as Record<
        string,
        { status: number | null; error: string | null; stderr: string }
      >;
      if (kind === 'runc') {
        assert.equal(direct?.error, 'EACCES', JSON.stringify(ran));
        assert.notEqual(viaLoader?.status, 0, `the loader maps /tmp/exec-copy: ${JSON.stringify(ran)}`);
        assert.match(viaLoader?.stderr ?? '', /failed to map segment/);
      } else {
        assert.equal(direct?.status, 0, JSON.stringify(ran));
        assert.equal(viaLoader?.status, 0, JSON.stringify(ran));
      }
    });

    it('has no network without --network; with it, a network of its own that does not reach the host', async () => {
      const local = result(await h.run(spec, { action: 'connect', host: '127.0.0.1', port: h.port }));
      assert.equal(local['ok'], false, 'loopback of the host');
      const remote = result(await h.run(spec, { action: 'connect', host: '10.255.255.1', port: 80 }));
      assert.equal(remote['ok'], false, 'another address');
      assert.deepEqual(await h.run(spec, { action: 'interfaces' }).then(result), ['lo']);
      const networked = await h.deploy({ network: true });
      if (h.runtime.capabilities.hostAddresses.enforced) {
        assert.deepEqual(await h.run(networked, { action: 'interfaces' }).then(result), ['eth0', 'lo']);
        const gateway = result(await h.run(networked, { action: 'connect', host: '127.0.0.1', port: h.port }));
        assert.equal(
          gateway['ok'],
          false,
          `with --network, still not the host's own ports: ${JSON.stringify(gateway)}`,
        );
      } else {
        // Without a namespace of its own (not root), a networked function is refused rather than run on the host's.
        await assert.rejects(h.run(networked, { action: 'interfaces' }), /UNAVAILABLE.*--network/);
      }
    });

    it('sees only its own processes', async () => {
      const seen = result(await h.run(spec, { action: 'processes' }));
      const pids = seen['pids'] as string[];
      assert.ok(pids.length <= 3, `pids visible: ${pids.join(' ')}`);
      for (const cmdline of seen['cmdlines'] as (string | null)[]) {
        assert.ok(cmdline === null || !cmdline.includes('isolation.test'), `sees the test runner: ${cmdline}`);
      }
    });

    it('contains a fork bomb at the process limit and reports it', { skip: !isRoot }, async () => {
      const outcome = await h.run(spec, { action: 'forkBomb' }, 3000);
      assert.equal(outcome.status, 'timeout');
      assert.match(outcome.error?.message ?? '', /limit of 64 processes and threads/);
      const cgroups = await readdir(`/sys/fs/cgroup/pids/savassan-test-${process.pid}-${kind}`).catch(() => []);
      assert.deepEqual(
        cgroups.filter((entry) => /^[0-9a-f-]{36}$/.test(entry)),
        [],
        'the bomb left no cgroup (and so no process) behind',
      );
    });

    it('kills a heap bomb at its memory limit and says so', async () => {
      const outcome = await h.run(spec, { action: 'heapBomb' }, 20_000);
      assert.equal(outcome.status, 'oom', JSON.stringify(outcome.error));
      assert.match(outcome.error?.message ?? '', /out of memory.*128 MB/);
    });

    it('kills a memory bomb outside the JavaScript heap at the sandbox limit', { skip: !isRoot }, async () => {
      const outcome = await h.run(spec, { action: 'bufferBomb' }, 20_000);
      assert.equal(outcome.status, 'oom', JSON.stringify(outcome.error));
      assert.match(outcome.error?.message ?? '', /out of memory.*128 MB/);
    });

    it('kills an infinite loop at its timeout', async () => {
      const outcome = await h.run(spec, { action: 'spin' }, 1000);
      assert.equal(outcome.status, 'timeout');
      assert.equal(outcome.reusable, false);
    });

    it('caps /tmp and reports it full', async () => {
      const outcome = await h.run(spec, { action: 'fillTmp' });
      assert.equal(outcome.status, 'error');
      assert.match(outcome.error?.message ?? '', /ENOSPC.*\/tmp \(16 MB\) is full/s);
    });

    it('caps open files and reports it', async () => {
      const outcome = await h.run(spec, { action: 'openFiles' });
      assert.equal(outcome.status, 'error');
      assert.match(outcome.error?.message ?? '', /EMFILE.*limit of 256 open files/s);
    });

    it(
      'runs the nodejs24 runtime',
      { skip: !existsSync(bundledNode24Path()) && 'nodejs24 is not installed' },
      async () => {
        const identity = result(await h.run(await h.deploy({ runtime: 'nodejs24' }), { action: 'identity' }));
        assert.match(String(identity['version']), /^v24\./);
        const host = result(await h.run(spec, { action: 'identity' }));
        assert.equal(host['version'], process.version);
      },
    );
  });
}

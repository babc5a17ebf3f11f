// `savassan start` on the bwrap sandbox end to end: isolation reported, stem cells, the nodejs24 runtime, the
// control plane staying responsive while functions spin, and nothing left behind on stop.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { bundledNode24Path } from '../../src/sandbox/node-runtimes.js';
import { cgroupSandboxPids, eventually, startServer, type ServerProcess } from '../helpers/server-process.js';

const hostile = fileURLToPath(new URL('../fixtures/functions/hostile/', import.meta.url));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

interface NodeAnswer {
  sandboxRuntime: string;
  isolating: boolean;
  enforcement: Record<string, { mechanism: string; enforced: boolean; note: string }>;
  stemCells: { idle: number; starting: number; memoryBytes: number | null };
  warnings: string[];
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

describe(
  'savassan start --sandbox bwrap',
  { skip: !existsSync('/usr/bin/bwrap') && 'bubblewrap is not installed' },
  () => {
    let server: ServerProcess;
    let dataDir: string;

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'sv-bwrap-'));
      await chmod(dataDir, 0o711);
      server = await startServer(['--sandbox', 'bwrap', '--no-examples'], dataDir);
      await server.client.deploy('hostile', await readBundle(hostile), { memoryMB: 128, maxInstances: 2 });
    });
    after(async () => {
      await server?.cleanup();
      await rm(dataDir, { recursive: true, force: true });
    });

    async function node(): Promise<NodeAnswer> {
      const answer = (await (await fetch(`${server.url}/v1/nodes`)).json()) as { nodes: NodeAnswer[] };
      const [first] = answer.nodes;
      assert.ok(first !== undefined);
      return first;
    }

    it('reports an isolating runtime and what it enforces, without the unisolated warning', async () => {
      assert.doesNotMatch(server.output(), /NO isolation/);
      const info = await node();
      assert.equal(info.sandboxRuntime, 'bwrap');
      assert.equal(info.isolating, true);
      for (const [limit, enforcement] of Object.entries(info.enforcement)) {
        if (!isRoot && ['memory', 'pids', 'cpu', 'hostAddresses'].includes(limit)) continue;
        assert.equal(enforcement.enforced, true, `${limit}: ${enforcement.note}`);
      }
      assert.equal(info.enforcement['syscalls']?.mechanism, 'seccomp filter');
      if (isRoot) assert.deepEqual(info.warnings, []);
    });

    it('keeps stem cells ready and reports their memory', async () => {
      const info = await eventually(node, (n) => n.stemCells.idle >= 1);
      assert.ok(info.stemCells.idle >= 1);
      assert.ok(info.stemCells.memoryBytes !== null && info.stemCells.memoryBytes > 0);
    });

    it('runs functions cold then warm as an unprivileged user', async () => {
      const cold = await server.client.invoke('hostile', { action: 'identity' });
      const warm = await server.client.invoke('hostile', { action: 'identity' });
      assert.deepEqual([cold.start, warm.start], ['cold', 'warm']);
      const identity = JSON.parse(warm.payload) as { uid: number; cwd: string; version: string };
      assert.notEqual(identity.uid, 0);
      assert.equal(identity.cwd, '/var/task');
      assert.equal(identity.version, process.version);
    });

    it(
      'runs --runtime nodejs24',
      { skip: !existsSync(bundledNode24Path()) && 'nodejs24 is not installed' },
      async () => {
        await server.client.deploy('modern', await readBundle(hostile), { runtime: 'nodejs24' });
        const answer = await server.client.invoke('modern', { action: 'identity' });
        assert.match((JSON.parse(answer.payload) as { version: string }).version, /^v24\./);
      },
    );

    it('keeps /healthz under 50 ms at p99 while two CPU-bound functions spin', async () => {
      // Both instances warm first, so the spin starts at once.
      await Promise.all([1, 2].map(() => server.client.invoke('hostile', { action: 'spinFor', ms: 1 })));
      const spinning = Promise.all([1, 2].map(() => server.client.invoke('hostile', { action: 'spinFor', ms: 4000 })));
      await new Promise((resolve) => setTimeout(resolve, 200));
      const latencies: number[] = [];
      for (let i = 0; i < 100; i++) {
        const started = performance.now();
        const response = await fetch(`${server.url}/healthz`);
        await response.arrayBuffer();
        latencies.push(performance.now() - started);
        assert.equal(response.status, 200);
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      const results = await spinning;
      assert.ok(
        results.every((r) => Number(r.payload) > 0),
        'the functions really spun',
      );
      const p99 = percentile(latencies, 99);
      assert.ok(
        p99 < 50,
        `healthz p99 ${p99.toFixed(1)} ms while functions spin (p50 ${percentile(latencies, 50).toFixed(1)})`,
      );
    });

    it('leaves no sandbox process and no cgroup behind on SIGTERM', async () => {
      const pid = server.pid;
      assert.ok((await cgroupSandboxPids(pid)).length > 0 || !isRoot, 'sandboxes run in the server cgroups');
      assert.equal(await server.stop(), 0);
      assert.deepEqual(await cgroupSandboxPids(pid), []);
      for (const controller of ['memory', 'pids', 'cpu']) {
        assert.equal(existsSync(`/sys/fs/cgroup/${controller}/savassan-${pid}`), false, `${controller} cgroup removed`);
      }
    });
  },
);

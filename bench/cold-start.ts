// Cold starts on isolating sandboxes, side by side in one run: bwrap with stem cells, bwrap without, and a bare
// `node -e ''` spawn; plus the idle memory of a warm instance and of a stem cell.
import { spawnSync } from 'node:child_process';
import { chmod, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SavassanClient } from '../src/client/client.js';
import { startServer, type ServerProcess } from '../test/helpers/server-process.js';

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

interface Contender {
  name: string;
  server: ServerProcess;
  client: SavassanClient;
  firstInvokeMs: number[];
  initMs: number[];
}

async function startContender(name: string, args: string[]): Promise<Contender> {
  // Sandbox users must be able to pass through the data dir (mkdtemp makes it 0700).
  const dataDir = await mkdtemp(join(tmpdir(), 'sv-bench-'));
  await chmod(dataDir, 0o711);
  const server = await startServer(['--no-examples', '--log-level', 'error', ...args], dataDir);
  return { name, server, client: new SavassanClient({ url: server.url }), firstInvokeMs: [], initMs: [] };
}

async function stemCellsIdle(client: SavassanClient): Promise<number> {
  return (await client.listNodes()).nodes[0]?.stemCells?.idle ?? 0;
}

interface ProcessMemory {
  /** Proportional set size: its share of the pages it shares with others. */
  pss: number;
  /** Of which file-backed: mostly its share of the node binary, which every Node process on the host maps. */
  pssFile: number;
  /** Anonymous memory (heap, stacks): the process's own. */
  anonymous: number;
}

/** A process's memory in bytes, from smaps_rollup; zeros once it is gone. */
async function processMemory(pid: string): Promise<ProcessMemory> {
  try {
    const rollup = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kB = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(rollup)?.[1] ?? 0) * 1024;
    return { pss: kB('Pss'), pssFile: kB('Pss_File'), anonymous: kB('Anonymous') };
  } catch {
    return { pss: 0, pssFile: 0, anonymous: 0 };
  }
}

interface SandboxMemory {
  chargedMiB: number;
  pssMiB: number;
  pssFileMiB: number;
  anonymousMiB: number;
}

/** Memory of each sandbox cgroup of a server: charged to the cgroup (what the limit counts), summed PSS and parts. */
async function sandboxMemory(serverPid: number): Promise<Map<string, SandboxMemory>> {
  const root = `/sys/fs/cgroup/memory/savassan-${serverPid}`;
  const out = new Map<string, SandboxMemory>();
  for (const id of await readdir(root).catch(() => [] as string[])) {
    if (!/^[0-9a-f-]{36}$/.test(id)) continue;
    const charged = Number(await readFile(join(root, id, 'memory.usage_in_bytes'), 'utf8').catch(() => '0'));
    const pids = (await readFile(join(root, id, 'cgroup.procs'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
    const parts = await Promise.all(pids.map(processMemory));
    const sum = (field: keyof ProcessMemory) => parts.reduce((total, part) => total + part[field], 0) / 2 ** 20;
    out.set(id, {
      chargedMiB: charged / 2 ** 20,
      pssMiB: sum('pss'),
      pssFileMiB: sum('pssFile'),
      anonymousMiB: sum('anonymous'),
    });
  }
  return out;
}

const median = (xs: number[]) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

export async function measureSandboxColdStarts(
  noop: Uint8Array,
  runs: number,
  summarise: (samples: number[]) => Summary,
  timedPost: (url: string) => Promise<{ ms: number; start: string; invocationId: string }>,
): Promise<Record<string, unknown>> {
  const withStem = await startContender('bwrap, stem cells', ['--sandbox', 'bwrap']);
  const withoutStem = await startContender('bwrap, no stem cells', ['--sandbox', 'bwrap', '--no-stem-cells']);
  const contenders = [withStem, withoutStem];
  const spawnMs: number[] = [];
  try {
    // One cold start each first, not measured: the servers' own code paths are compiled on first use.
    for (const contender of contenders) {
      await contender.client.deploy('warm-up', noop, {});
      await timedPost(`${contender.server.url}/v1/functions/warm-up/invoke`);
      await contender.client.deleteFunction('warm-up');
    }
    for (let i = 0; i < runs; i++) {
      for (const contender of contenders) {
        // Steady state for a moderate arrival rate: the stem cells used by the last cold start are back.
        for (
          let wait = 0;
          contender === withStem && wait < 100 && (await stemCellsIdle(contender.client)) < 2;
          wait++
        ) {
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        const name = `cold-${i}`;
        await contender.client.deploy(name, noop, { idleSeconds: 1 });
        const hit = await timedPost(`${contender.server.url}/v1/functions/${name}/invoke`);
        if (hit.start !== 'cold') throw new Error(`${contender.name}: expected a cold start, got ${hit.start}`);
        contender.firstInvokeMs.push(hit.ms);
        contender.initMs.push((await contender.client.getInvocation(hit.invocationId)).initMs ?? Number.NaN);
        await contender.client.deleteFunction(name);
      }
      const started = performance.now();
      spawnSync(process.execPath, ['-e', '']);
      spawnMs.push(performance.now() - started);
    }

    // Idle memory: a warm instance (after a few invocations) against the stem cells around it.
    const client = withStem.client;
    await client.deploy('resident', noop, {});
    const ids = new Set<string>();
    for (let i = 0; i < 5; i++) {
      const answer = await client.invoke('resident', {});
      const record = await client.getInvocation(answer.invocationId);
      if (record.instanceId !== null) ids.add(record.instanceId);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const memory = await sandboxMemory(withStem.server.pid);
    const warm = [...memory].filter(([id]) => ids.has(id)).map(([, m]) => m);
    const stem = [...memory].filter(([id]) => !ids.has(id)).map(([, m]) => m);
    const spawnSummary = summarise(spawnMs);
    const stemSummary = summarise(withStem.firstInvokeMs);
    return {
      runs,
      bwrapStemCells: { firstInvokeMs: stemSummary, sandboxInitMs: summarise(withStem.initMs) },
      bwrapNoStemCells: {
        firstInvokeMs: summarise(withoutStem.firstInvokeMs),
        sandboxInitMs: summarise(withoutStem.initMs),
      },
      bareNodeSpawnMs: spawnSummary,
      stemP50VsNodeSpawn: Math.round((stemSummary.p50 / spawnSummary.p50) * 100) / 100,
      idleMemoryMiB: {
        warmInstance: warm.length === 0 ? null : round2(median(warm.map((m) => m.pssMiB))),
        warmInstanceCharged: warm.length === 0 ? null : round2(median(warm.map((m) => m.chargedMiB))),
        stemCell: stem.length === 0 ? null : round2(median(stem.map((m) => m.pssMiB))),
        stemCellCharged: stem.length === 0 ? null : round2(median(stem.map((m) => m.chargedMiB))),
        warmInstanceAnonymous: warm.length === 0 ? null : round2(median(warm.map((m) => m.anonymousMiB))),
        warmInstancePssFile: warm.length === 0 ? null : round2(median(warm.map((m) => m.pssFileMiB))),
        stemCellsIdle: stem.length,
        note:
          'PSS of the sandbox processes (bwrap + node); charged = what the cgroup memory limit counts; ' +
          'anonymous = their own memory; pssFile = their share of mapped files (mostly the node binary, shared by ' +
          'every Node process on the host, so it shrinks as more run)',
      },
      target: 'stem cells p50 <= 10 ms, p99 <= 40 ms; a warm instance <= 10 MiB PSS',
    };
  } finally {
    await Promise.all(contenders.map((c) => c.server.cleanup()));
    await Promise.all(contenders.map((c) => rm(c.server.dataDir, { recursive: true, force: true })));
  }
}

const round2 = (n: number) => Math.round(n * 100) / 100;

// Node-wide limits on real bwrap sandboxes with cgroups: the node's budgets (429 when full), the parent cgroup that
// carries them, and idle sandboxes frozen by the cgroup freezer. Needs root (cgroups) and bubblewrap.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zipSync } from 'fflate';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { Agent, type AgentOptions } from '../../src/agent/agent.js';
import { isPlatformError } from '../../src/core/errors.js';
import { compileFunctionConfig, type FunctionConfigInput } from '../../src/core/function-config.js';
import type { SandboxSpec } from '../../src/core/ports/agent-api.js';
import { blobKeys } from '../../src/core/types.js';
import { BwrapRuntime } from '../../src/sandbox/bwrap-runtime.js';
import { RuncRuntime } from '../../src/sandbox/runc-runtime.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const skip =
  process.platform !== 'linux'
    ? 'Linux only'
    : !existsSync('/usr/bin/bwrap')
      ? 'bubblewrap is not installed'
      : !isRoot
        ? 'cgroups need root'
        : !existsSync('/sys/fs/cgroup/freezer') && !existsSync('/sys/fs/cgroup/cgroup.freeze')
          ? 'no cgroup freezer'
          : false;
const v1 = !existsSync('/sys/fs/cgroup/cgroup.controllers');
const limits = { pids: 64, openFiles: 256, tmpMB: 16, cpus: 1 };

/**
 * A function that leaves a busy loop running after its handler returns (what a careless `setInterval` does), and
 * answers the number of invocations so far; `{ sleepMs }` makes it sleep first.
 */
const spinner = `
let calls = 0;
let spinning = false;
exports.handler = async (event) => {
  calls += 1;
  if (event.sleepMs) await new Promise((resolve) => setTimeout(resolve, event.sleepMs));
  if (!spinning) {
    spinning = true;
    setInterval(() => { const end = Date.now() + 20; while (Date.now() < end); }, 0);
  }
  return { calls };
};
`;

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('node limits and freezing on bwrap', { skip }, () => {
  let root: string;
  let blobs: FsBlobStore;
  const cleanups: (() => Promise<void>)[] = [];
  let sha = '';
  let counter = 0;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-node-limits-'));
    await chmod(root, 0o711);
    blobs = new FsBlobStore(join(root, 'blobs'));
    const zip = zipSync({ 'index.js': Buffer.from(spinner) });
    sha = createHash('sha256').update(zip).digest('hex');
    await blobs.put(blobKeys.code(sha), zip);
  });

  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await blobs.close();
    await rm(root, { recursive: true, force: true });
  });

  /** An Agent on its own bwrap runtime and parent cgroup `name`, closed after the suite. */
  async function node(
    options: Partial<AgentOptions>,
    nodeLimits?: { memoryBytes: number; pids: number },
    kind: 'bwrap' | 'runc' = 'bwrap',
  ): Promise<{ agent: Agent; cgroupName: string }> {
    counter += 1;
    const cgroupName = `savassan-test-${process.pid}-limits${counter}`;
    const workDir = join(root, `node${counter}`);
    const runtime =
      kind === 'bwrap'
        ? await BwrapRuntime.open({ workDir, cgroupName, nodeLimits })
        : await RuncRuntime.open({ workDir, cgroupName, nodeLimits });
    const agent = new Agent({ nodeId: `n${counter}`, runtime, blobStore: blobs, workDir, limits, ...options });
    cleanups.push(async () => {
      await agent.close();
      await runtime.close();
    });
    return { agent, cgroupName };
  }

  function spec(config: FunctionConfigInput = {}): SandboxSpec {
    return {
      functionName: 'spinner',
      incarnation: 'i1',
      version: 1,
      codeSha256: sha,
      config: compileFunctionConfig({ memoryMB: 128, timeoutSeconds: 5, ...config }),
    };
  }

  async function invoke(agent: Agent, instanceId: string, event: unknown, timeoutMs = 5000) {
    return agent.invoke(instanceId, {
      invocationId: randomUUID(),
      eventJson: Buffer.from(JSON.stringify(event)),
      timeoutMs,
    });
  }

  function cgroupFile(controller: string, cgroupName: string, file: string, instanceId?: string): string {
    if (!v1) return join('/sys/fs/cgroup', cgroupName, instanceId ?? '', file);
    return join('/sys/fs/cgroup', controller, cgroupName, instanceId ?? '', file);
  }

  async function cpuUsageNs(cgroupName: string, instanceId: string): Promise<number> {
    if (!v1) {
      const stat = await readFile(cgroupFile('cpu', cgroupName, 'cpu.stat', instanceId), 'utf8');
      return Number(/^usage_usec (\d+)$/m.exec(stat)?.[1]) * 1000;
    }
    return Number(await readFile(cgroupFile('cpuacct', cgroupName, 'cpuacct.usage', instanceId), 'utf8'));
  }

  async function frozen(cgroupName: string, instanceId: string): Promise<boolean> {
    if (!v1) return (await readFile(cgroupFile('', cgroupName, 'cgroup.freeze', instanceId), 'utf8')).trim() === '1';
    const state = await readFile(cgroupFile('freezer', cgroupName, 'freezer.state', instanceId), 'utf8');
    return state.trim() === 'FROZEN';
  }

  it('limits the parent cgroup of the node to its memory and pid budgets', async () => {
    const { cgroupName } = await node({}, { memoryBytes: 300 * 1024 * 1024, pids: 200 });
    const memoryFile = v1 ? 'memory.limit_in_bytes' : 'memory.max';
    assert.equal(
      (await readFile(cgroupFile('memory', cgroupName, memoryFile), 'utf8')).trim(),
      String(300 * 1024 * 1024),
    );
    assert.equal((await readFile(cgroupFile('pids', cgroupName, 'pids.max'), 'utf8')).trim(), '200');
  });

  it('refuses a sandbox past the memory budget with TOO_MANY_REQUESTS naming it, and takes one again when freed', async () => {
    const { agent } = await node({ budget: { memoryMB: 300, pids: 10_000 } });
    const [first] = await Promise.all([agent.createSandbox(spec()), agent.createSandbox(spec())]);
    await assert.rejects(agent.createSandbox(spec()), (err: unknown) => {
      assert.ok(isPlatformError(err, 'TOO_MANY_REQUESTS'), String(err));
      assert.match(
        err.message,
        /memory budget of 300 MB \(--node-memory\) has 44 MB left, and the sandbox needs 128 MB/,
      );
      assert.equal(err.details['retryAfterSeconds'], 1);
      return true;
    });
    assert.deepEqual(agent.budgetUsage(), { memoryMB: 300, pids: 10_000, usedMemoryMB: 256, usedPids: 128 });
    await agent.destroySandbox(first?.instanceId ?? '');
    await agent.createSandbox(spec());
  });

  it('refuses a sandbox past the pid budget (sandboxes x their pids limit)', async () => {
    const { agent } = await node({ budget: { memoryMB: 100_000, pids: 2 * limits.pids + 10 } });
    await Promise.all([agent.createSandbox(spec()), agent.createSandbox(spec())]);
    await assert.rejects(agent.createSandbox(spec()), (err: unknown) => {
      assert.ok(isPlatformError(err, 'TOO_MANY_REQUESTS'), String(err));
      assert.match(err.message, /pid budget of 138 \(--node-pids\) holds 2 sandboxes of 64 processes each/);
      return true;
    });
  });

  it('discards idle stem cells to make room for a function on a full node', async () => {
    const cells = { baseKinds: ['nodejs20/256MB/nonet'], maxPerKind: 2, maxTotal: 2 };
    const { agent } = await node({ budget: { memoryMB: 512, pids: 10_000 }, stemCells: cells });
    await eventually(() => Promise.resolve(agent.stemCellStats().idle === 2), 'two stem cells');
    // The two cells hold the whole budget; a function of another kind still gets its sandbox.
    const ref = await agent.createSandbox(spec());
    assert.equal((await invoke(agent, ref.instanceId, {})).status, 'success');
    assert.ok((agent.budgetUsage()?.usedMemoryMB ?? 0) <= 512);
  });

  for (const kind of ['bwrap', 'runc'] as const) {
    const why = kind === 'runc' && !existsSync('/usr/sbin/runc') ? 'runc is not installed' : false;
    it(
      `freezes an idle ${kind} sandbox whose code keeps running: no CPU used while idle, and the next invoke answers`,
      { skip: why },
      async () => {
        const { agent, cgroupName } = await node({ freezeIdleMs: 100 }, undefined, kind);
        assert.equal(agent.freezing().enforced, true, agent.freezing().note);
        const ref = await agent.createSandbox(spec());
        const first = await invoke(agent, ref.instanceId, {});
        assert.deepEqual(JSON.parse(new TextDecoder().decode(first.payloadJson)), { calls: 1 });
        await eventually(() => frozen(cgroupName, ref.instanceId), 'the idle sandbox to be frozen');
        const before = await cpuUsageNs(cgroupName, ref.instanceId);
        await new Promise((resolve) => setTimeout(resolve, 500));
        const used = (await cpuUsageNs(cgroupName, ref.instanceId)) - before;
        // Spinning, it would use most of the 500 ms (its quota is one CPU).
        assert.ok(used < 1_000_000, `a frozen sandbox used ${used} ns of CPU`);
        const second = await invoke(agent, ref.instanceId, {});
        assert.equal(second.status, 'success', JSON.stringify(second.error));
        assert.deepEqual(
          JSON.parse(new TextDecoder().decode(second.payloadJson)),
          { calls: 2 },
          'the same sandbox, thawed',
        );
      },
    );
  }

  it('destroys a frozen sandbox, and times out an invocation of a thawed one', async () => {
    const { agent, cgroupName } = await node({ freezeIdleMs: 0 });
    const doomed = await agent.createSandbox(spec());
    await invoke(agent, doomed.instanceId, {});
    await eventually(() => frozen(cgroupName, doomed.instanceId), 'the sandbox to be frozen');
    await agent.destroySandbox(doomed.instanceId);
    assert.deepEqual(await agent.listSandboxes(), []);
    assert.equal(existsSync(cgroupFile('freezer', cgroupName, '', doomed.instanceId)), false, 'its cgroup is gone');

    const slow = await agent.createSandbox(spec());
    await invoke(agent, slow.instanceId, {});
    await eventually(() => frozen(cgroupName, slow.instanceId), 'the sandbox to be frozen');
    const outcome = await invoke(agent, slow.instanceId, { sleepMs: 5000 }, 300);
    assert.equal(outcome.status, 'timeout');
    assert.match(outcome.error?.message ?? '', /Task timed out after 0\.30 seconds/);
    assert.deepEqual(await agent.listSandboxes(), [], 'a timed-out sandbox is destroyed');
  });

  it('freezes idle stem cells and thaws one when a function takes it', async () => {
    const kind = 'nodejs20/128MB/nonet';
    const { agent, cgroupName } = await node({
      freezeIdleMs: 0,
      stemCells: { baseKinds: [kind], maxPerKind: 1, maxTotal: 1 },
    });
    await eventually(() => Promise.resolve(agent.stemCellStats().idle === 1), 'the stem cell');
    const groups = await readdir(v1 ? cgroupFile('freezer', cgroupName, '') : join('/sys/fs/cgroup', cgroupName));
    const [cellId = ''] = groups.filter((name) => /^[0-9a-f-]{36}$/.test(name));
    await eventually(() => frozen(cgroupName, cellId), 'the stem cell to be frozen');
    const ref = await agent.createSandbox(spec());
    assert.equal(ref.instanceId, cellId, 'the frozen stem cell became the sandbox');
    const outcome = await invoke(agent, ref.instanceId, {});
    assert.equal(outcome.status, 'success', JSON.stringify(outcome.error));
    await eventually(() => frozen(cgroupName, ref.instanceId), 'a freeze right after the invocation');
  });
});

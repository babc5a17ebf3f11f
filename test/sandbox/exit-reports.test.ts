// How the end of a sandbox's process is reported, on every runtime: the guest's own exit code or signal, never a
// SIGKILL of the Agent's or a monitor's (bwrap, runc) 128 + N code in its place.
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { Agent, hangUpGraceMs } from '../../src/agent/agent.js';
import { readBundle } from '../../src/client/bundle.js';
import { compileFunctionConfig } from '../../src/core/function-config.js';
import type { InvokeOutcome, SandboxSpec } from '../../src/core/ports/agent-api.js';
import type { SandboxRuntime } from '../../src/core/ports/sandbox-runtime.js';
import { blobKeys } from '../../src/core/types.js';
import { BwrapRuntime } from '../../src/sandbox/bwrap-runtime.js';
import { ProcessRuntime } from '../../src/sandbox/process-runtime.js';
import { RuncRuntime } from '../../src/sandbox/runc-runtime.js';

const ending = fileURLToPath(new URL('../fixtures/functions/ending/', import.meta.url));
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
type Kind = 'process' | 'bwrap' | 'runc';
/** The descriptor each runtime hands the guest its channel on. */
const channelFds: Record<Kind, number> = { process: 3, bwrap: 4, runc: 3 };

function skipReason(kind: Kind): string | false {
  if (kind === 'process') return false;
  if (process.platform !== 'linux') return 'Linux only';
  if (kind === 'bwrap' && !existsSync('/usr/bin/bwrap')) return 'bubblewrap is not installed';
  if (kind === 'runc' && !existsSync('/usr/sbin/runc')) return 'runc is not installed';
  if (kind === 'runc' && !isRoot) return 'runc needs root';
  return false;
}

for (const kind of ['process', 'bwrap', 'runc'] as const) {
  describe(`how a ${kind} sandbox's end is reported`, { skip: skipReason(kind) }, () => {
    let root: string;
    let blobs: FsBlobStore;
    let runtime: SandboxRuntime;
    let agent: Agent;
    let spec: SandboxSpec;

    before(async () => {
      root = await mkdtemp(join(tmpdir(), `sv-exit-${kind}-`));
      await chmod(root, 0o711);
      const workDir = join(root, 'agent');
      const cgroupName = `savassan-test-${process.pid}-exit-${kind}`;
      runtime =
        kind === 'process'
          ? new ProcessRuntime()
          : kind === 'bwrap'
            ? await BwrapRuntime.open({ workDir, cgroupName })
            : await RuncRuntime.open({ workDir, cgroupName });
      blobs = new FsBlobStore(join(root, 'blobs'));
      agent = new Agent({ nodeId: kind, runtime, blobStore: blobs, workDir });
      const zip = await readBundle(ending);
      const sha = createHash('sha256').update(zip).digest('hex');
      await blobs.put(blobKeys.code(sha), zip);
      spec = {
        functionName: 'ending',
        incarnation: 'i1',
        version: 1,
        codeSha256: sha,
        config: compileFunctionConfig({ memoryMB: 128 }),
      };
    });
    after(async () => {
      await agent?.close();
      await runtime?.close();
      await blobs?.close();
      await rm(root, { recursive: true, force: true });
    });

    async function run(event: Record<string, unknown>): Promise<{ outcome: InvokeOutcome; log: string }> {
      const ref = await agent.createSandbox(spec);
      const outcome = await agent.invoke(ref.instanceId, {
        invocationId: randomUUID(),
        eventJson: Buffer.from(JSON.stringify(event)),
        timeoutMs: 10_000,
      });
      await agent.flushLogs();
      assert.ok(outcome.logKey !== null);
      const log = (await blobs.get(outcome.logKey))?.toString('utf8') ?? '';
      return { outcome, log };
    }

    // runc keeps its own copy of the channel's descriptor while its container runs: a guest cannot hang up there.
    const hangUps = { skip: kind === 'runc' && 'runc holds the channel open' };

    it('reports process.exit(3) as exit code 3, with nothing but the function in its log', async () => {
      const { outcome, log } = await run({ action: 'exit', code: 3 });
      assert.equal(outcome.status, 'crash');
      assert.equal(outcome.error?.message, 'process exited with code 3 during the invocation');
      assert.equal(log, 'ending: exit\n[savassan] process exited with code 3 during the invocation\n');
    });

    it('waits for the exit status of a guest whose channel closed before it exited', hangUps, async () => {
      const { outcome } = await run({ action: 'hang-up-then-exit', code: 3, channelFd: channelFds[kind] });
      assert.equal(outcome.status, 'crash');
      assert.equal(outcome.error?.message, 'process exited with code 3 during the invocation');
    });

    it('kills a guest that closed its channel and lives on, and says so', hangUps, async () => {
      const { outcome } = await run({ action: 'hang-up', channelFd: channelFds[kind] });
      assert.equal(outcome.status, 'crash');
      assert.equal(
        outcome.error?.message,
        `process closed its channel to the agent, did not exit within ${hangUpGraceMs} ms and was killed by the ` +
          'agent during the invocation',
      );
    });

    // The guest of runc is its container's pid 1, which a signal it sends itself does not end.
    it('reports a guest killed by a signal as that signal', { skip: kind === 'runc' && 'pid 1' }, async () => {
      const { outcome } = await run({ action: 'signal', signal: 'SIGTERM' });
      assert.equal(outcome.status, 'crash');
      assert.equal(outcome.error?.message, 'process was killed by signal SIGTERM during the invocation');
    });

    // An abort is not a sign of running out of memory: V8's heap exhaustion says so on stderr, a cgroup's in its
    // counters.
    it('reports process.abort() as SIGABRT, not as out of memory', { skip: kind === 'runc' && 'pid 1' }, async () => {
      const { outcome } = await run({ action: 'abort' });
      assert.equal(outcome.status, 'crash');
      assert.equal(outcome.error?.message, 'process was killed by signal SIGABRT during the invocation');
    });
  });
}

// A function held at its max instances under sustained load, in process (`startEmbedded`) so the provisioning
// queue can be made tiny: requests beyond max instances wait for a busy instance and are served, none gets 429.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient } from '../../src/client/client.js';
import { startEmbedded } from '../../src/embedded/embedded-platform.js';
import type { EmbeddedPlatform } from '../../src/embedded/embedded-platform.js';
import { repoRoot } from '../helpers/server-process.js';

/** `callers` clients POSTing `{}` to `target` back to back until `total` requests are answered: answers by status. */
async function hammer(target: string, callers: number, total: number): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let next = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (next++ < total) {
        const response = await fetch(target, { method: 'POST', body: '{}' });
        await response.text();
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      }
    }),
  );
  return statuses;
}

describe('a function at max instances under sustained load', () => {
  let dataDir: string;
  let platform: EmbeddedPlatform;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'savassan-saturation-'));
    platform = await startEmbedded({
      dataDir,
      port: 0,
      sandbox: 'process',
      stemCells: false,
      queueCapacity: 2,
      queueWaitMs: 30_000,
    });
  });

  after(async () => {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves every request from the busy instances: nothing fills the provisioning queue', async () => {
    const client = new SavassanClient({ url: platform.url });
    await client.deploy('noop', await readBundle(join(repoRoot, 'bench', 'functions', 'noop')), {
      maxInstances: 2,
    });
    const target = `${platform.url}/v1/functions/noop/invoke`;
    // Two cold starts first: a burst of 16 first requests would overflow a 2-request queue by design (429).
    const first = await Promise.all([1, 2].map(() => fetch(target, { method: 'POST', body: '{}' })));
    await Promise.all(first.map((response) => response.text()));
    assert.deepEqual(
      first.map((response) => response.status),
      [200, 200],
    );
    // Then 16 callers, 1500 requests, 2 instances: most requests find the pool empty and wait for one.
    const statuses = await hammer(target, 16, 1500);
    assert.deepEqual([...statuses], [[200, 1500]]);
    const { nodes } = await client.listNodes();
    assert.equal(nodes[0]?.sandboxes, 2, 'never more than max instances');
  });

  it('replaces a crashed instance for the requests waiting at max instances', async () => {
    const client = new SavassanClient({ url: platform.url });
    const code = join(dataDir, 'crasher');
    await mkdir(code);
    await writeFile(
      join(code, 'index.js'),
      'exports.handler = async (event) => {\n' +
        '  if (event.crash) { await new Promise((r) => setTimeout(r, 300)); process.exit(1); }\n' +
        '  return { ok: true };\n};\n',
    );
    await client.deploy('crasher', await readBundle(code), { maxInstances: 1 });
    const target = `${platform.url}/v1/functions/crasher/invoke`;
    const crash = fetch(target, { method: 'POST', body: '{"crash":true}' });
    // Let the crashing call take the only instance, then queue three behind it: they wait without asking for a
    // sandbox (max instances), and the crash must bring them one instead of leaving them to time out (429).
    await new Promise((resolve) => setTimeout(resolve, 150));
    const waiting = await Promise.all([1, 2, 3].map(() => fetch(target, { method: 'POST', body: '{}' })));
    assert.equal((await crash).status, 502);
    assert.deepEqual(
      waiting.map((response) => response.status),
      [200, 200, 200],
    );
    await Promise.all(waiting.map((response) => response.text()));
  });

  it('scales a function up under sustained load without overflowing the queue with stale requests', async () => {
    const client = new SavassanClient({ url: platform.url });
    await client.deploy('scaling', await readBundle(join(repoRoot, 'bench', 'functions', 'noop')), {
      maxInstances: 12,
    });
    const target = `${platform.url}/v1/functions/scaling/invoke`;
    // 24 callers from the first request on: every request that finds no idle instance while sandboxes are being
    // created (each a Node start, no stem cells here) asks for one; most such asks are stale by the time the
    // Manager sees them, and a 2-request queue only holds if the Manager drains them while it creates.
    const statuses = await hammer(target, 24, 3000);
    // The first wave of 24 cold requests overflows a 2-request queue by design (429); nothing after it may.
    const shown = JSON.stringify([...statuses]);
    assert.ok(
      [...statuses.keys()].every((status) => status === 200 || status === 429),
      shown,
    );
    assert.ok((statuses.get(429) ?? 0) <= 22, `only the first wave may be refused: ${shown}`);
  });
});

describe(
  'a node at its memory and pid budgets (bwrap, cgroups)',
  {
    skip: !existsSync('/usr/bin/bwrap') || process.getuid?.() !== 0 ? 'needs bubblewrap and root' : false,
  },
  () => {
    let dataDir: string;
    let platform: EmbeddedPlatform;

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), 'savassan-node-full-'));
      await chmod(dataDir, 0o711);
      // Room for 3 sandboxes by pids (128 each) and for 1100 MB of memory limits.
      platform = await startEmbedded({
        dataDir,
        port: 0,
        sandbox: 'bwrap',
        stemCells: false,
        nodeMemoryMB: 1100,
        nodePids: 3 * 128,
        queueWaitMs: 60_000,
      });
    });

    after(async () => {
      await platform?.close();
      await rm(dataDir, { recursive: true, force: true });
    });

    it('answers a cold start past either budget with 429 naming the limit, at once rather than after the queue wait', async () => {
      const client = new SavassanClient({ url: platform.url });
      const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
      for (const [name, memoryMB] of [
        ['small1', 128],
        ['big', 1024],
        ['small2', 128],
        ['small3', 128],
        ['small4', 128],
      ] as const) {
        await client.deploy(name, noop, { memoryMB });
      }
      const invoke = (name: string) =>
        fetch(`${platform.url}/v1/functions/${name}/invoke`, { method: 'POST', body: '{}' });

      assert.equal((await invoke('small1')).status, 200);
      // 128 MB held, 1024 MB more would pass 1100 MB.
      const big = await invoke('big');
      assert.equal(big.status, 429);
      assert.equal(big.headers.get('retry-after'), '1');
      const bigBody = (await big.json()) as { error: { message: string } };
      assert.match(
        bigBody.error.message,
        /node local is full: its memory budget of 1100 MB \(--node-memory\) has 972 MB left/,
      );

      assert.equal((await invoke('small2')).status, 200);
      assert.equal((await invoke('small3')).status, 200);
      // A fourth sandbox passes the pid budget (3 sandboxes of 128 processes); a warm instance needs none.
      assert.equal((await invoke('small1')).status, 200);
      const refused = await invoke('small4');
      assert.equal(refused.status, 429);
      const pidBody = (await refused.json()) as { error: { message: string } };
      assert.match(pidBody.error.message, /pid budget of 384 \(--node-pids\) holds 3 sandboxes of 128 processes each/);

      const { nodes } = await client.listNodes();
      assert.deepEqual(nodes[0]?.budget, { memoryMB: 1100, pids: 384, usedMemoryMB: 384, usedPids: 384 });
      assert.equal(nodes[0]?.enforcement?.['freezing']?.enforced, true);
    });
  },
);

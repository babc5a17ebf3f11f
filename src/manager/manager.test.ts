// The Manager against the real memory pool and queue and an in-memory SQLite store; the Agent is a fake that
// implements the port, since these tests are about what the Manager does with what an Agent reports.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MemoryPool } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import type { SqlMetadataStore } from '../adapters/sql/sql-metadata-store.js';
import type { Logger } from '../core/logger.js';
import type { SandboxSpec } from '../core/ports/agent-api.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { ProvisionRequest } from '../core/types.js';
import { poolKey } from '../core/types.js';
import { SingleAgentDirectory } from '../core/ports/agent-directory.js';
import type { FakeAgent } from '../../test/helpers/fakes.js';
import { FlakyQueue, recordingLogger } from '../../test/helpers/fakes.js';
import { openPlaneFixture } from '../../test/helpers/plane-fixture.js';
import type { PlaneFixture } from '../../test/helpers/plane-fixture.js';
import { Manager } from './manager.js';

describe('Manager', () => {
  let fixture: PlaneFixture;
  let metadata: SqlMetadataStore;
  let pool: MemoryPool;
  let agent: FakeAgent;
  let fn: string;
  let clock: number;

  const demand = (name: string, version = 1): ProvisionRequest => ({
    functionName: name,
    incarnation: fixture.incarnationOf(name),
    version,
    reason: 'demand',
    requestedAt: clock,
  });

  beforeEach(async () => {
    clock = Date.now();
    fixture = await openPlaneFixture();
    ({ metadata, pool, agent, fn } = fixture);
  });

  afterEach(() => fixture.close());

  const manager = (options: { queue?: ProvisionQueue; logger?: Logger } = {}) =>
    new Manager({
      queue: options.queue ?? new MemoryProvisionQueue({ capacity: 10 }),
      pool,
      metadata,
      agents: new SingleAgentDirectory(agent),
      logger: options.logger,
      concurrency: 1,
      now: () => clock,
    });

  describe('demand', () => {
    it('tells every waiter of a failing function, though their requests were coalesced while the slot was busy', async () => {
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      await fixture.deploy('slow');
      agent.slow.add('slow');
      agent.failing.add(fn);
      const lease = { holder: 'gw', leaseMs: 60_000 };
      m.start();
      try {
        const slowWait = pool.wait(fixture.keyOf('slow', 1), { ...lease, timeoutMs: 5_000 });
        await queue.push(demand('slow'));
        await sleep(100); // the only creation slot is busy with 'slow'
        const waits = [1, 2, 3].map(() => pool.wait(fixture.keyOf(fn, 1), { ...lease, timeoutMs: 3_000 }));
        for (let i = 0; i < 3; i++) {
          await queue.push(demand(fn));
        }
        await sleep(100); // all three taken off the queue and coalesced
        agent.release();
        const outcomes = await Promise.all(waits.map((wait) => wait.then((item) => item?.kind ?? 'timed out')));
        assert.deepEqual(outcomes, ['failure', 'failure', 'failure']);
        assert.equal((await slowWait)?.kind, 'instance');
      } finally {
        agent.release();
        await m.stop();
      }
    });
  });

  describe('secrets', () => {
    it("reads the secrets' values for each sandbox it creates, and fails the waiter of a version whose secret is gone", async () => {
      await metadata.putSecret('API_TOKEN', 'first');
      await fixture.deploy('keyed', { env: { PLAIN: 'p' }, secrets: { TOKEN: 'API_TOKEN' } });
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      const lease = { holder: 'gw', leaseMs: 60_000, timeoutMs: 3_000 };
      m.start();
      try {
        const created = async (): Promise<SandboxSpec | undefined> => {
          const waiting = pool.wait(fixture.keyOf('keyed', 1), lease);
          await queue.push(demand('keyed'));
          assert.equal((await waiting)?.kind, 'instance');
          return agent.specs.at(-1);
        };
        const first = await created();
        assert.deepEqual(first?.secretEnv, { TOKEN: 'first' });
        assert.deepEqual(first?.config.env, { PLAIN: 'p' }, 'the stored config holds no value');
        await metadata.putSecret('API_TOKEN', 'second');
        assert.deepEqual((await created())?.secretEnv, { TOKEN: 'second' });

        // Version 1 still names the secret, version 2 (current) does not: the secret may go, version 1 cannot start.
        await fixture.deploy('keyed', {});
        assert.equal(await metadata.deleteSecret('API_TOKEN'), true);
        const waiting = pool.wait(fixture.keyOf('keyed', 1), lease);
        await queue.push(demand('keyed', 1));
        const item = await waiting;
        assert.ok(item?.kind === 'failure', 'the waiter is told at once');
        assert.equal(item.error.code, 'INVALID_CONFIG');
        assert.match(item.error.message, /keyed uses a secret that does not exist: API_TOKEN/);
      } finally {
        await m.stop();
      }
    });
  });

  describe('deleted functions', () => {
    it("fails a request for a deleted incarnation's version, though the re-created function has that version", async () => {
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      const stale = demand(fn);
      assert.equal(await metadata.deleteFunction(fn), true);
      await fixture.deploy(fn);
      m.start();
      try {
        const waiting = pool.wait(poolKey(stale), { holder: 'gw', leaseMs: 60_000, timeoutMs: 5_000 });
        await queue.push(stale);
        const item = await waiting;
        assert.equal(item?.kind === 'failure' ? item.error.code : item?.kind, 'NOT_FOUND');
        assert.deepEqual([...agent.sandboxes.values()], [], 'no sandbox was created for the deleted incarnation');
      } finally {
        await m.stop();
      }
    });

    it('destroys a sandbox whose function was deleted while it was being created', async () => {
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      agent.slow.add(fn);
      m.start();
      try {
        const key = fixture.keyOf(fn, 1);
        void pool.wait(key, { holder: 'gw', leaseMs: 60_000, timeoutMs: 2_000 });
        await queue.push(demand(fn));
        while (m.inFlight(key) === 0) await sleep(10); // the creation is under way
        assert.equal(await metadata.deleteFunction(fn), true);
        await pool.retire(key); // what the deleting gateway does
        agent.release();
        while (agent.destroyed.length === 0) await sleep(10);
        assert.deepEqual([...agent.sandboxes.values()], []);
        assert.deepEqual(await pool.keys(), []);
      } finally {
        agent.release();
        await m.stop();
      }
    });
  });

  describe('outages', () => {
    it('keeps taking requests after the queue fails, logging the outage once', async () => {
      const logger = recordingLogger();
      const queue = new FlakyQueue();
      const m = manager({ queue, logger });
      queue.down = true;
      m.start();
      while (queue.pops < 3) await sleep(20);
      queue.down = false;

      const key = fixture.keyOf(fn, 1);
      const waiting = pool.wait(key, { holder: 'gw', leaseMs: 60_000, timeoutMs: 5_000 });
      await queue.push(demand(fn));
      const item = await waiting;
      assert.equal(item?.kind, 'instance');
      await m.stop();
      await queue.close();

      const outage = logger.lines.filter((l) => l.msg.startsWith('taking provisioning requests'));
      assert.deepEqual(
        outage.map((l) => l.level),
        ['warn', ...Array<string>(outage.length - 2).fill('debug'), 'info'],
        JSON.stringify(outage),
      );
    });

    it('fails a waiting request with UNAVAILABLE while metadata is down', async () => {
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      m.start();
      const key = fixture.keyOf(fn, 1);
      await metadata.close(); // every call now fails with UNAVAILABLE, as with the database down
      const waiting = pool.wait(key, { holder: 'gw', leaseMs: 60_000, timeoutMs: 5_000 });
      await queue.push(demand(fn));
      const item = await waiting;
      assert.equal(item?.kind, 'failure');
      assert.equal(item.kind === 'failure' ? item.error.code : '', 'UNAVAILABLE');
      await m.stop();
      await queue.close();
    });
  });
});

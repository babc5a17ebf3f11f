// The Manager against the real memory pool and queue and an in-memory SQLite store; the Agent is a fake that
// implements the port, since these tests are about what the Manager does with what an Agent reports.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryPool } from '../adapters/memory/memory-pool.js';
import { MemoryProvisionQueue } from '../adapters/memory/memory-provision-queue.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import type { SqlMetadataStore } from '../adapters/sql/sql-metadata-store.js';
import { PlatformError } from '../core/errors.js';
import { compileFunctionConfig } from '../core/function-config.js';
import type { Logger } from '../core/logger.js';
import type { AgentApi, InvokeOutcome, SandboxInfo, SandboxSpec } from '../core/ports/agent-api.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { InstanceRef, ProvisionRequest } from '../core/types.js';
import { poolKey } from '../core/types.js';
import { SingleAgentDirectory } from '../core/ports/agent-directory.js';
import { Manager } from './manager.js';

/** An Agent whose sandboxes are plain records the test sets the state of. */
class FakeAgent implements AgentApi {
  readonly nodeId = 'node-test';
  /** The current incarnation of a function name, for sandboxes the test adds. */
  incarnationOf: (functionName: string) => string = () => '';
  readonly sandboxes = new Map<string, SandboxInfo>();
  readonly destroyed: string[] = [];
  /** What each creation was asked for, in order. */
  readonly specs: SandboxSpec[] = [];

  /** Creations of these functions wait for `release()`. */
  readonly slow = new Set<string>();
  /** Creations of these functions fail. */
  readonly failing = new Set<string>();
  #release: () => void = () => {};
  readonly #gate = new Promise<void>((resolve) => (this.#release = resolve));

  release(): void {
    this.#release();
  }

  async createSandbox(spec: SandboxSpec): Promise<InstanceRef> {
    this.specs.push(spec);
    if (this.slow.has(spec.functionName)) await this.#gate;
    if (this.failing.has(spec.functionName)) {
      throw new PlatformError('FUNCTION_INIT_ERROR', `${spec.functionName} failed to start`);
    }
    const info = this.add(spec.functionName, spec.version, 'idle', 0, spec.incarnation);
    return {
      instanceId: info.instanceId,
      functionName: spec.functionName,
      incarnation: spec.incarnation,
      version: spec.version,
      nodeId: this.nodeId,
      createdAt: info.createdAt,
      initMs: 5,
      invocations: 0,
      idleSince: info.createdAt,
    };
  }

  invoke(): Promise<InvokeOutcome> {
    return Promise.reject(new Error('the Manager never invokes'));
  }

  destroySandbox(instanceId: string): Promise<void> {
    this.sandboxes.delete(instanceId);
    this.destroyed.push(instanceId);
    return Promise.resolve();
  }

  listSandboxes(): Promise<SandboxInfo[]> {
    return Promise.resolve([...this.sandboxes.values()].map((info) => ({ ...info })));
  }

  add(
    functionName: string,
    version: number,
    state: SandboxInfo['state'],
    invocations: number,
    incarnation = this.incarnationOf(functionName),
  ): SandboxInfo {
    const info: SandboxInfo = {
      instanceId: randomUUID(),
      functionName,
      incarnation,
      version,
      pid: null,
      state,
      createdAt: Date.now(),
      invocations,
    };
    this.sandboxes.set(info.instanceId, info);
    return info;
  }
}

/** A queue that fails while `down`, as a Redis queue does during an outage. */
class FlakyQueue implements ProvisionQueue {
  down = false;
  pops = 0;
  readonly #queue = new MemoryProvisionQueue({ capacity: 10 });
  readonly capacity = 10;

  push(request: ProvisionRequest): Promise<boolean> {
    return this.#queue.push(request);
  }

  async pop(timeoutMs: number, signal?: AbortSignal): Promise<ProvisionRequest | null> {
    this.pops++;
    if (this.down) throw new PlatformError('UNAVAILABLE', 'Redis at redis://test is unavailable (pop): down');
    return this.#queue.pop(Math.min(timeoutMs, 50), signal);
  }

  size(): Promise<number> {
    return this.#queue.size();
  }

  close(): Promise<void> {
    return this.#queue.close();
  }
}

/** Records what is logged, by level. */
function recordingLogger(): Logger & { lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at =
    (level: string) =>
    (_obj: object, msg = ''): void => {
      lines.push({ level, msg });
    };
  const logger = {
    lines,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => logger,
  };
  return logger;
}

const intervalMs = 1000;

describe('Manager', () => {
  let metadata: SqlMetadataStore;
  let pool: MemoryPool;
  let agent: FakeAgent;
  let clock: number;
  let fn: string;
  /** Incarnation of each deployed function name. */
  let incarnations: Map<string, string>;

  const deploy = async (name: string, config = {}) => {
    const deployed = await metadata.deployVersion({
      functionName: name,
      codeSha256: 'a'.repeat(64),
      codeSizeBytes: 1,
      contentHash: randomUUID(),
      config: compileFunctionConfig(config),
    });
    incarnations.set(name, deployed.function.incarnation);
    return deployed;
  };
  const incarnationOf = (name: string): string => incarnations.get(name) ?? '';
  const keyOf = (name: string, version: number): string =>
    poolKey({ functionName: name, incarnation: incarnationOf(name), version });
  const demand = (name: string, version = 1): ProvisionRequest => ({
    functionName: name,
    incarnation: incarnationOf(name),
    version,
    reason: 'demand',
    requestedAt: clock,
  });

  beforeEach(async () => {
    metadata = await openSqliteMetadataStore(':memory:');
    pool = new MemoryPool();
    agent = new FakeAgent();
    incarnations = new Map();
    agent.incarnationOf = incarnationOf;
    clock = Date.now();
    fn = `fn-${randomUUID().slice(0, 8)}`;
    await deploy(fn);
  });

  afterEach(async () => {
    await pool.close();
    await metadata.close();
  });

  const manager = (options: { queue?: ProvisionQueue; logger?: Logger } = {}) =>
    new Manager({
      queue: options.queue ?? new MemoryProvisionQueue({ capacity: 10 }),
      pool,
      metadata,
      agents: new SingleAgentDirectory(agent),
      logger: options.logger,
      concurrency: 1,
      reconcileIntervalMs: intervalMs,
      now: () => clock,
    });

  const toRef = (info: SandboxInfo): InstanceRef => ({
    instanceId: info.instanceId,
    functionName: info.functionName,
    incarnation: info.incarnation,
    version: info.version,
    nodeId: agent.nodeId,
    createdAt: info.createdAt,
    initMs: 1,
    invocations: info.invocations,
    idleSince: 0,
  });

  describe('demand', () => {
    it('tells every waiter of a failing function, though their requests were coalesced while the slot was busy', async () => {
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      await deploy('slow');
      agent.slow.add('slow');
      agent.failing.add(fn);
      const lease = { holder: 'gw', leaseMs: 60_000 };
      m.start();
      try {
        const slowWait = pool.wait(keyOf('slow', 1), { ...lease, timeoutMs: 5_000 });
        await queue.push(demand('slow'));
        await sleep(100); // the only creation slot is busy with 'slow'
        const waits = [1, 2, 3].map(() => pool.wait(keyOf(fn, 1), { ...lease, timeoutMs: 3_000 }));
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
      await deploy('keyed', { env: { PLAIN: 'p' }, secrets: { TOKEN: 'API_TOKEN' } });
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      const lease = { holder: 'gw', leaseMs: 60_000, timeoutMs: 3_000 };
      m.start();
      try {
        const created = async (): Promise<SandboxSpec | undefined> => {
          const waiting = pool.wait(keyOf('keyed', 1), lease);
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
        await deploy('keyed', {});
        assert.equal(await metadata.deleteSecret('API_TOKEN'), true);
        const waiting = pool.wait(keyOf('keyed', 1), lease);
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

  describe('replacements', () => {
    it('asks for a replacement when a lease expires while requests wait at max instances', async () => {
      await deploy('single', { maxInstances: 1 });
      const m = manager();
      m.start();
      const key = keyOf('single', 1);
      try {
        // The only instance is checked out by a gateway that then dies: its lease runs out.
        await pool.push(toRef(agent.add('single', 1, 'busy', 1)));
        assert.notEqual(await pool.checkout(key, { holder: 'dead-gw', leaseMs: 1_000 }), null);
        const waiting = pool.wait(key, { holder: 'gw', leaseMs: 60_000, timeoutMs: 3_000 });
        clock += 2_000;
        // Its sandbox is gone with the gateway's call: the reconcile destroys it, and must ask for another.
        await m.reconcile();
        const item = await waiting;
        assert.equal(item?.kind, 'instance', 'the waiter got a new sandbox instead of timing out');
      } finally {
        await m.stop();
      }
    });
  });

  describe('pool rebuild from the agent', () => {
    it('puts back idle sandboxes the pool lost, once they have been idle for a reconcile interval', async () => {
      const logger = recordingLogger();
      const m = manager({ logger });
      const key = keyOf(fn, 1);
      const held = agent.add(fn, 1, 'idle', 3);
      const lost = agent.add(fn, 1, 'idle', 2);
      const busy = agent.add(fn, 1, 'busy', 1);
      await pool.push(toRef(held));

      await m.reconcile();
      assert.deepEqual(await pool.stats(key), { idle: 1, checkedOut: 0, waiters: 0 }, 'not idle long enough yet');
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(await pool.stats(key), { idle: 2, checkedOut: 0, waiters: 0 });
      const warm = [await pool.checkout(key, { holder: 'gw', leaseMs: 60_000 })];
      warm.push(await pool.checkout(key, { holder: 'gw', leaseMs: 60_000 }));
      assert.deepEqual(warm.map((i) => i?.instanceId).sort(), [held.instanceId, lost.instanceId].sort());
      assert.equal(warm.find((i) => i?.instanceId === lost.instanceId)?.invocations, 2);
      assert.ok(!warm.some((i) => i?.instanceId === busy.instanceId), 'a busy sandbox is not put in the pool');
      assert.equal(logger.lines.filter((l) => l.msg.startsWith('pool rebuilt from the agent')).length, 1);

      // Checked out (leased): never added a second time, however long the agent reports it idle.
      clock += 10 * intervalMs;
      await m.reconcile();
      assert.deepEqual(await pool.stats(key), { idle: 0, checkedOut: 2, waiters: 0 });
      await m.stop();
    });

    it('puts back lost sandboxes while the metadata store is down', async () => {
      const m = manager();
      const key = keyOf(fn, 1);
      const lost = agent.add(fn, 1, 'idle', 2);
      await metadata.close(); // every call now fails with UNAVAILABLE, as with the database down
      await m.reconcile();
      clock += intervalMs;
      await m.reconcile();
      assert.equal((await pool.checkout(key, { holder: 'gw', leaseMs: 60_000 }))?.instanceId, lost.instanceId);
      await m.stop();
    });

    it('waits again when a sandbox served an invocation between two passes', async () => {
      const m = manager();
      const key = keyOf(fn, 1);
      const sandbox = agent.add(fn, 1, 'idle', 1);
      await m.reconcile();
      clock += intervalMs / 2;
      sandbox.invocations = 2; // it went out, served, and is on its way back: not a candidate yet
      await m.reconcile();
      clock += intervalMs / 2;
      await m.reconcile();
      assert.equal((await pool.stats(key)).idle, 0);
      clock += intervalMs / 2;
      await m.reconcile();
      assert.equal((await pool.stats(key)).idle, 1);
      await m.stop();
    });

    it('retires a restored sandbox of a version that is no longer current in the same pass', async () => {
      const m = manager();
      await deploy(fn); // version 2 is current now
      const old = agent.add(fn, 1, 'idle', 4);
      await m.reconcile();
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(agent.destroyed, [old.instanceId]);
      assert.deepEqual(await pool.keys(), []);
      await m.stop();
    });
  });

  describe('pool rebuild warnings', () => {
    it('reports only sandboxes that go back into the pool: not those of a deleted function or a retired version', async () => {
      const logger = recordingLogger();
      const m = manager({ logger });
      const rebuilt = () => logger.lines.filter((l) => l.msg.startsWith('pool rebuilt from the agent'));
      // A deleted function whose idle sandbox is still on the agent, its pool key retired as the deleting gateway
      // retires it; and a version no longer current, whose idle sandbox the pool does not hold.
      await deploy('doomed');
      const doomed = agent.add('doomed', 1, 'idle', 1);
      const old = agent.add(fn, 1, 'idle', 1);
      await deploy(fn); // version 2 is current now
      await m.reconcile();
      assert.equal(await metadata.deleteFunction('doomed'), true);
      await pool.retire(keyOf('doomed', 1));
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(agent.destroyed.sort(), [doomed.instanceId, old.instanceId].sort());
      assert.deepEqual(rebuilt(), [], 'nothing went back into the pool');

      // A real loss: an idle sandbox of the current version that the pool does not hold.
      const lost = agent.add(fn, 2, 'idle', 3);
      await m.reconcile();
      clock += intervalMs;
      await m.reconcile();
      assert.deepEqual(
        rebuilt().map((l) => [l.level, l.msg]),
        [['warn', 'pool rebuilt from the agent: 1 idle sandbox(es) the pool had lost are back in it']],
      );
      assert.equal((await pool.checkout(keyOf(fn, 2), { holder: 'gw', leaseMs: 60_000 }))?.instanceId, lost.instanceId);
      await m.stop();
    });
  });

  describe('deleted functions', () => {
    it('destroys idle sandboxes of a deleted function and never pools them for its re-created successor', async () => {
      const m = manager();
      const oldKey = keyOf(fn, 1);
      const pooled = agent.add(fn, 1, 'idle', 1);
      await pool.push(toRef(pooled));
      const lost = agent.add(fn, 1, 'idle', 2); // idle on the agent, not in the pool
      const busy = agent.add(fn, 1, 'busy', 1); // still running an invocation
      assert.equal(await metadata.deleteFunction(fn), true);
      await deploy(fn); // re-created: version 1 again, another incarnation
      assert.notEqual(keyOf(fn, 1), oldKey);

      await m.reconcile();
      assert.deepEqual(agent.destroyed.sort(), [pooled.instanceId, lost.instanceId].sort());
      clock += 10 * intervalMs;
      await m.reconcile();
      assert.deepEqual(await pool.stats(keyOf(fn, 1)), { idle: 0, checkedOut: 0, waiters: 0 });
      // The busy one comes back after its invocation: the old key is retired, so it is refused.
      busy.state = 'idle';
      assert.equal(await pool.push(toRef(busy)), false);
      await m.stop();
    });

    it("fails a request for a deleted incarnation's version, though the re-created function has that version", async () => {
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue });
      const stale = demand(fn);
      assert.equal(await metadata.deleteFunction(fn), true);
      await deploy(fn);
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
        const key = keyOf(fn, 1);
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

      const key = keyOf(fn, 1);
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

    it('survives reconcile failures and fails a waiting request with UNAVAILABLE while metadata is down', async () => {
      const logger = recordingLogger();
      const queue = new MemoryProvisionQueue({ capacity: 10 });
      const m = manager({ queue, logger });
      m.start();
      const key = keyOf(fn, 1);
      await metadata.close(); // every call now fails with UNAVAILABLE, as with the database down
      await m.reconcile();
      await m.reconcile();
      assert.equal(logger.lines.filter((l) => l.msg.startsWith('reconcile') && l.level === 'warn').length, 1);

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

// The workflow engine over a real SQLite workflow store and a file blob store. The function runs are played by the
// test's `submit` (what the dispatcher would do with the queued attempt), so a process that dies holding an attempt,
// a function that vanishes, or a wide fan-out can be set up exactly.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { SqlWorkflowStore } from '../adapters/sql/sql-workflow-store.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import {
  terminalExecutionPhases,
  type ExecutionKey,
  type ExecutionRecord,
  type NodeExecutionRecord,
  type WorkflowStore,
} from '../core/ports/workflow-store.js';
import { canonicalSpecText, compileWorkflow, specHash } from '../core/workflow-compile.js';
import type { SubmitOptions } from '../events/async-invocations.js';
import type { WorkflowNodeRef } from '../events/workflow-node-sink.js';
import { BuiltinExecutionBackend } from './builtin-backend.js';
import { childName, WorkflowEngine, type WorkflowEngineOptions } from './engine.js';
import { loadValue } from './values.js';
import { StoreNodeSink } from './node-sink.js';
import { WorkflowDeployer } from './workflow-deployer.js';

type Submit = (functionName: string, eventJson: string, options: SubmitOptions) => Promise<unknown>;

interface Rig {
  store: WorkflowStore;
  blobs: FsBlobStore;
  engine: WorkflowEngine;
  backend: BuiltinExecutionBackend;
  sink: StoreNodeSink;
  /** What the dispatcher does with an attempt: runs it, its output its input. */
  run: Submit;
}

describe('WorkflowEngine over a SQLite store', () => {
  let dir: string;
  let closeMetadata: () => Promise<void>;
  let store: WorkflowStore;
  const engines: WorkflowEngine[] = [];
  let seq = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'savassan-engine-unit-'));
    const metadata = await openSqliteMetadataStore(':memory:');
    closeMetadata = () => metadata.close();
    store = new SqlWorkflowStore(metadata.shared());
  });

  // Each test's engine steps every active execution in the store: it stops with its test.
  afterEach(async () => {
    for (const engine of engines.splice(0)) await engine.stop();
  });

  after(async () => {
    await closeMetadata();
    await rm(dir, { recursive: true, force: true });
  });

  /** An engine (boot id `me`) whose attempts go to `submit`; by default each runs and returns its input. */
  function rig(submit?: (rig: Rig) => Submit, options: Partial<WorkflowEngineOptions> = {}): Rig {
    const blobs = new FsBlobStore(join(dir, 'blobs'));
    const self = {} as Rig;
    const sink = new StoreNodeSink({
      store,
      blobStore: blobs,
      processId: 'me',
      onChange: (row) => engine.nodeChanged(row),
    });
    const run: Submit = async (_fn, eventJson, submitted) => {
      const ref = submitted.workflow!;
      if (!(await sink.claim(ref, 30))) return;
      await sink.report(ref, {
        status: 'succeeded',
        invocationId: `inv-${ref.node}-${ref.attempt}`,
        functionVersion: 1,
        outputJson: Buffer.from(eventJson),
      });
    };
    const engine = new WorkflowEngine({
      store,
      blobStore: blobs,
      submit: (fn, json, opts) => (submit === undefined ? run : submit(self))(fn, json, opts),
      pinFunction: () => Promise.resolve({ version: 1, timeoutSeconds: 30 }),
      isLeader: () => true,
      pollMs: 20,
      bootId: 'me',
      ...options,
    });
    const backend = new BuiltinExecutionBackend({ store, blobStore: blobs, wake: (key) => engine.wake(key) });
    Object.assign(self, { store, blobs, engine, backend, sink, run });
    engines.push(engine);
    engine.start();
    return self;
  }

  async function deploy(spec: unknown): Promise<string> {
    const name = `wf${(seq += 1)}`;
    const compiled = compileWorkflow(spec);
    await store.putWorkflow(name, canonicalSpecText(compiled.spec), specHash(compiled.spec));
    return name;
  }

  async function ended(key: ExecutionKey): Promise<ExecutionRecord> {
    for (;;) {
      const record = await store.getExecution(key);
      if (record !== null && terminalExecutionPhases.has(record.phase)) return record;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  async function row(key: ExecutionKey, node: string): Promise<NodeExecutionRecord> {
    const found = await store.getNode(key, node);
    assert.ok(found !== null, `node ${node}`);
    return found;
  }

  it("takes an existing execution with a child name as the child only when it is that node's child", async () => {
    const r = rig();
    const child = await deploy({
      inputs: { x: 'number' },
      nodes: { d: { function: 'fn', input: { n: '$.inputs.x' } } },
      output: '$.nodes.d.output.n',
    });
    const other = await deploy({
      nodes: { o: { function: 'fn', input: { stolen: true } } },
      output: '$.nodes.o.output',
    });
    const parent = await deploy({
      nodes: { sub: { workflow: child, input: { x: 7 }, retries: 1 } },
      output: '$.nodes.sub.output',
    });
    const key = { project: 'p', domain: 'd', name: 'parent-of-squatted' };
    // An execution that took the name the first attempt's child would get.
    const squatter = await r.backend.launch({ project: 'p', domain: 'd', workflow: other, inputs: {} });
    const taken = childName(key, 'sub', 1);
    const now = new Date();
    const source = (await store.getExecution(squatter))!;
    const { revision: _revision, ...copy } = source;
    await store.createExecution({ ...copy, name: taken, phase: 'QUEUED', createdAt: now, updatedAt: now });
    r.engine.wake({ ...key, name: taken });
    await r.backend.launch({ ...key, workflow: parent, inputs: {} });
    const record = await ended(key);
    assert.equal(record.phase, 'SUCCEEDED', JSON.stringify(record));
    assert.equal(await loadValue(r.blobs, record.outputs), 7);
    const sub = await row(key, 'sub');
    assert.equal(sub.attempts.length, 2);
    assert.equal(sub.attempts[0]?.error?.code, 'CONFLICT');
    assert.equal(sub.attempts[0]?.error?.kind, 'SYSTEM');
    assert.equal(sub.child?.name, childName(key, 'sub', 2));
    await assert.rejects(
      r.backend.launch({
        project: 'p',
        domain: 'd',
        name: childName(key, 'sub', 3),
        workflow: child,
        inputs: { x: 1 },
      }),
      (err: Error) => /kept for sub-workflow executions/.test(err.message),
    );
  });

  it('steps every active execution, page after page: old stuck ones do not starve a newer one', async () => {
    const r = rig((self) => (fn, json, opts) => (fn === 'stuck' ? Promise.resolve() : self.run(fn, json, opts)), {
      activePageSize: 2,
    });
    const stuck = await deploy({ nodes: { s: { function: 'stuck' } } });
    const quick = await deploy({ nodes: { q: { function: 'fn', input: { v: 1 } } }, output: '$.nodes.q.output.v' });
    // Launched where no engine hears of it (a cluster's API node): only the leader's pass finds it.
    const unheard = new BuiltinExecutionBackend({ store, blobStore: r.blobs });
    const stuckKeys: ExecutionKey[] = [];
    for (let i = 0; i < 5; i += 1) {
      stuckKeys.push(await unheard.launch({ project: 'p', domain: 'd', workflow: stuck, inputs: {} }));
    }
    const key = await unheard.launch({ project: 'p', domain: 'd', workflow: quick, inputs: {} });
    const record = await ended(key);
    assert.equal(record.phase, 'SUCCEEDED');
    for (const stuckKey of stuckKeys) await r.backend.terminate(stuckKey, 'test over');
    for (const stuckKey of stuckKeys) assert.equal((await ended(stuckKey)).phase, 'ABORTED');
  });

  it('recovers into a new execution together with its rows: a launch of that name meanwhile never gets them', async () => {
    const r = rig((self) => (fn, json, opts) => (fn === 'fails' ? Promise.resolve() : self.run(fn, json, opts)));
    const name = await deploy({
      nodes: { a: { function: 'fn', input: { v: 1 } }, b: { function: 'fn', input: '$.nodes.a.output' } },
      output: '$.nodes.b.output.v',
    });
    const source = await r.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: {} });
    assert.equal((await ended(source)).phase, 'SUCCEEDED');
    const target = { project: 'p', domain: 'd', name: 'recovered-raced' };
    // A launch of the same name lands between recover's check of the name and its create.
    const racing = new BuiltinExecutionBackend({
      store: new Proxy(store, {
        get(target_, prop, receiver) {
          if (prop !== 'createExecution') {
            const value = Reflect.get(target_, prop, receiver) as unknown;
            return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target_) : value;
          }
          return async (...args: Parameters<WorkflowStore['createExecution']>) => {
            await r.backend.launch({ ...target, workflow: name, inputs: {} });
            return store.createExecution(...args);
          };
        },
      }),
      blobStore: r.blobs,
    });
    await assert.rejects(racing.recover(source, target.name), (err: Error) => /exists already/.test(err.message));
    assert.equal((await ended(target)).phase, 'SUCCEEDED');
    const rows = await store.listNodes(target);
    assert.deepEqual(
      rows.map((n) => [n.key, n.phase]),
      [
        ['a', 'SUCCEEDED'],
        ['b', 'SUCCEEDED'],
      ],
    );
    await store.deleteWorkflow(name);
    await assert.rejects(r.backend.recover(source, 'recovered-gone'), (err: Error) => /not found/.test(err.message));
    await assert.rejects(r.backend.relaunch(source, 'relaunched-gone'), (err: Error) => /not found/.test(err.message));
  });

  it('ends an execution whose workflow version is gone: FAILED (NOT_FOUND, SYSTEM), or ABORTED when aborting', async () => {
    const stuckOnly =
      (self: Rig): Submit =>
      (fn, json, opts) =>
        fn === 'stuck' ? Promise.resolve() : self.run(fn, json, opts);
    const first = rig(stuckOnly);
    const name = await deploy({ nodes: { s: { function: 'stuck' } } });
    const deployer = new WorkflowDeployer({
      store,
      backend: first.backend,
      functionExists: () => Promise.resolve(true),
    });
    const failing = await first.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: {} });
    const aborting = await first.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: {} });
    for (const key of [failing, aborting]) {
      while ((await store.getNode(key, 's'))?.phase !== 'RUNNING') await new Promise((r) => setTimeout(r, 10));
    }
    await assert.rejects(deployer.delete(name), (err: Error) => /in use by the unfinished execution/.test(err.message));
    // The leader changes while the workflow goes (deleted in the store, as an older deploy could).
    await first.engine.stop();
    await store.deleteWorkflow(name);
    await first.backend.terminate(aborting, 'stop it');
    const second = rig(stuckOnly);
    const failed = await ended(failing);
    assert.equal(failed.phase, 'FAILED');
    assert.deepEqual(failed.error, {
      code: 'NOT_FOUND',
      message: `workflow ${name} version 1 not found`,
      kind: 'SYSTEM',
    });
    assert.equal((await row(failing, 's')).phase, 'ABORTED');
    assert.equal((await ended(aborting)).phase, 'ABORTED');
    assert.equal((await row(aborting, 's')).phase, 'ABORTED');
    await second.engine.idle();
  });

  it('gives up a queued attempt nobody claims in time: NOT_FOUND (USER) when its function version is gone', async () => {
    let gone = false;
    const pinFunction = (_fn: string, qualifier: string) =>
      Promise.resolve(gone && qualifier === '1' ? null : { version: 1, timeoutSeconds: 0 });
    // The queue never delivers: the function was deleted while its attempts waited.
    const r = rig(() => () => Promise.resolve(), { pinFunction, queueGraceMs: 30 });
    const name = await deploy({ nodes: { a: { function: 'fn', retries: 3 } } });
    const lostKey = await r.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: {} });
    const lostRecord = await ended(lostKey);
    assert.equal(lostRecord.phase, 'FAILED');
    assert.equal((await row(lostKey, 'a')).error?.code, 'LOST');
    gone = true;
    const goneKey = await r.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: {} });
    assert.equal((await ended(goneKey)).phase, 'FAILED');
    const a = await row(goneKey, 'a');
    assert.equal(a.attempts.length, 1);
    assert.deepEqual(a.error, { code: 'NOT_FOUND', message: 'function fn version 1 is gone', kind: 'USER' });
  });

  it('bounds fan-out: a map list over 10,000 elements, a combined map output over the limit', async () => {
    const r = rig(undefined, { maxMapOutputBytes: 1000 });
    const name = await deploy({
      inputs: { xs: 'array' },
      nodes: { m: { map: '$.inputs.xs', function: 'fn', input: { v: '$.item' }, concurrency: 50 } },
      output: '$.nodes.m.output',
    });
    const wide = await r.backend.launch({
      project: 'p',
      domain: 'd',
      workflow: name,
      inputs: { xs: Array.from({ length: 10_001 }, (_, i) => i) },
    });
    assert.equal((await ended(wide)).phase, 'FAILED');
    assert.deepEqual((await row(wide, 'm')).error, {
      code: 'BAD_REQUEST',
      message: 'map: $.inputs.xs has 10001 elements, over the limit of 10000',
      kind: 'USER',
    });
    assert.equal((await store.listNodes(wide)).length, 1);
    const big = await r.backend.launch({
      project: 'p',
      domain: 'd',
      workflow: name,
      inputs: { xs: Array.from({ length: 10 }, () => 'x'.repeat(200)) },
    });
    assert.equal((await ended(big)).phase, 'FAILED');
    const m = await row(big, 'm');
    assert.equal(m.error?.code, 'PAYLOAD_TOO_LARGE');
    assert.equal(m.error?.kind, 'USER');
    assert.match(m.error?.message ?? '', /over the limit of 1000/);
    const small = await r.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: { xs: [1, 2] } });
    assert.equal((await ended(small)).phase, 'SUCCEEDED');
  });

  it('fails a sub-workflow node nested deeper than 8, naming the chain (a workflow that runs itself)', async () => {
    const r = rig();
    const name = `wf${(seq += 1)}`;
    // Deployed past the deploy-time checks, as racing deploys (A -> B, then B -> A) can leave it.
    const compiled = compileWorkflow({ nodes: { s: { workflow: name } } });
    await store.putWorkflow(name, canonicalSpecText(compiled.spec), specHash(compiled.spec));
    const key = await r.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: {} });
    const record = await ended(key);
    assert.equal(record.phase, 'FAILED');
    assert.equal(record.error?.code, 'BAD_REQUEST');
    assert.equal(record.error?.kind, 'USER');
    assert.ok(
      record.error?.message.includes(`sub-workflows nest at most 8 deep: ${Array(9).fill(name).join(' -> ')}`),
      record.error?.message,
    );
  });

  it('fails a node whose attempts were lost three times, instead of starting it again for ever', async () => {
    // Every attempt is claimed by a process that then dies (its boot id is not this engine's).
    const r = rig((self) => async (_fn, _json, submitted) => {
      const ref = submitted.workflow as WorkflowNodeRef;
      const key = { project: ref.project, domain: ref.domain, name: ref.name };
      const current = await self.store.getNode(key, ref.node);
      if (current === null) return;
      const { revision, ...record } = current;
      await self.store.putNode({ ...record, claimedBy: 'a-process-that-died' }, revision);
    });
    const name = await deploy({ nodes: { a: { function: 'fn', retries: 5 } } });
    const key = await r.backend.launch({ project: 'p', domain: 'd', workflow: name, inputs: {} });
    const record = await ended(key);
    assert.equal(record.phase, 'FAILED');
    const a = await row(key, 'a');
    assert.equal(a.phase, 'FAILED');
    assert.equal(a.attempts.length, 3);
    assert.ok(a.attempts.every((attempt) => attempt.error?.code === 'LOST'));
    assert.deepEqual(a.error, {
      code: 'LOST',
      message: 'lost 3 times (the last: lost: the process running it stopped)',
      kind: 'SYSTEM',
    });
  });
});

describe('StoreNodeSink: each attempt runs at most once', () => {
  let dir: string;
  let closeMetadata: () => Promise<void>;
  let store: WorkflowStore;
  let blobs: FsBlobStore;
  let seq = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'savassan-sink-unit-'));
    const metadata = await openSqliteMetadataStore(':memory:');
    closeMetadata = () => metadata.close();
    store = new SqlWorkflowStore(metadata.shared());
    blobs = new FsBlobStore(join(dir, 'blobs'));
  });

  after(async () => {
    await closeMetadata();
    await rm(dir, { recursive: true, force: true });
  });

  /** A node row with attempt 1 RUNNING, claimed by `claimedBy` without a deadline (as the engine preclaims). */
  async function running(claimedBy: string | null): Promise<WorkflowNodeRef> {
    const key = { project: 'p', domain: 'd', name: `x${(seq += 1)}` };
    const now = new Date();
    await store.createExecution({
      ...key,
      workflowName: 'w',
      workflowVersion: 1,
      inputs: { inline: '{}' },
      outputs: null,
      phase: 'RUNNING',
      error: null,
      origin: { kind: 'launch' },
      abortCause: null,
      createdAt: now,
      startedAt: now,
      endedAt: null,
      updatedAt: now,
    });
    await store.putNode(
      {
        execution: key,
        key: 'a',
        nodeId: 'a',
        item: null,
        phase: 'RUNNING',
        input: { inline: '{}' },
        output: null,
        error: null,
        attempts: [{ attempt: 1, startedAt: now, endedAt: null, phase: 'RUNNING', invocationId: null, error: null }],
        functionVersion: 1,
        cacheHit: false,
        child: null,
        notBefore: null,
        deadline: null,
        claimedBy,
        createdAt: now,
        startedAt: now,
        endedAt: null,
        updatedAt: now,
      },
      null,
    );
    return { ...key, node: 'a', attempt: 1 };
  }

  const succeeded = {
    status: 'succeeded' as const,
    invocationId: 'inv',
    functionVersion: 1,
    outputJson: Buffer.from('{"ok":true}'),
  };

  it('in a cluster, never takes a row already claimed by its own process', async () => {
    const sink = new StoreNodeSink({ store, blobStore: blobs, processId: 'me' });
    assert.equal(await sink.claim(await running('me'), 30), false);
    const ref = await running(null);
    assert.equal(await sink.claim(ref, 30), true);
    const claimed = await store.getNode(ref, 'a');
    assert.equal(claimed?.claimedBy, 'me');
    assert.ok(claimed?.deadline !== null);
    assert.equal(await sink.claim(ref, 30), false);
  });

  it('refuses another delivery while the report of the attempt is being written', async () => {
    const sink = new StoreNodeSink({ store, blobStore: blobs, processId: 'me' });
    const ref = await running(null);
    assert.equal(await sink.claim(ref, 30), true);
    const reported = sink.report(ref, succeeded);
    const again = sink.claim(ref, 30);
    await reported;
    assert.equal(await again, false);
    assert.equal((await store.getNode(ref, 'a'))?.phase, 'SUCCEEDED');
    assert.equal(await sink.claim(ref, 30), false);
  });

  it("in embedded mode, takes the engine's preclaim once, and a claim it took itself never again", async () => {
    const sink = new StoreNodeSink({ store, blobStore: blobs, processId: 'me', preclaimed: true });
    const ref = await running('me');
    assert.equal(await sink.claim(ref, 30), true);
    assert.equal(await sink.claim(ref, 30), false);
    await sink.report(ref, succeeded);
    assert.equal(await sink.claim(ref, 30), false);
    const timed = await running(null);
    assert.equal(await sink.claim({ ...timed, timeoutSeconds: 5 }, 30), true);
    const other = new StoreNodeSink({ store, blobStore: blobs, processId: 'me', preclaimed: true });
    assert.equal(await other.claim({ ...timed, timeoutSeconds: 5 }, 30), false);
  });
});

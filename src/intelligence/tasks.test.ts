// Built-in tasks on the real engine (SQLite workflow store, file blob store, the store node sink as embedded mode
// wires it): they pin and run in-process, time out with their node, fail with their error, and wait for their
// implementation when the engine starts before it.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { SqlWorkflowStore } from '../adapters/sql/sql-workflow-store.js';
import { openSqliteMetadataStore } from '../adapters/sqlite/sqlite-metadata-store.js';
import { PlatformError } from '../core/errors.js';
import { terminalExecutionPhases, type ExecutionKey, type WorkflowStore } from '../core/ports/workflow-store.js';
import { BuiltinExecutionBackend } from '../workflows/builtin-backend.js';
import { WorkflowEngine } from '../workflows/engine.js';
import { StoreNodeSink } from '../workflows/node-sink.js';
import { loadValue } from '../workflows/values.js';
import { WorkflowDeployer } from '../workflows/workflow-deployer.js';
import { BuiltinTaskRunner, type BuiltinTask } from './tasks.js';

const names = new Set(['test.echo', 'test.wait', 'test.fail']);

describe('BuiltinTaskRunner on the engine', () => {
  let dir: string;
  let closeMetadata: () => Promise<void>;
  let store: WorkflowStore;
  const stops: (() => Promise<void>)[] = [];
  let seq = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'savassan-tasks-'));
    const metadata = await openSqliteMetadataStore(':memory:');
    closeMetadata = () => metadata.close();
    store = new SqlWorkflowStore(metadata.shared());
  });

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  after(async () => {
    await closeMetadata();
    await rm(dir, { recursive: true, force: true });
  });

  /** Waits seen by `test.wait`, and whether each was aborted. */
  const waits: { aborted: Promise<unknown> }[] = [];
  const tasks: BuiltinTask[] = [
    {
      kind: 'run',
      name: 'test.echo',
      timeoutSeconds: 30,
      run: (input, context) => Promise.resolve({ input, node: context.ref.node }),
    },
    {
      kind: 'run',
      name: 'test.wait',
      timeoutSeconds: 3600,
      run: (_input, context) =>
        new Promise((_resolve, reject) => {
          waits.push({
            aborted: new Promise((resolve) =>
              context.signal.addEventListener('abort', () => resolve(context.signal.reason)),
            ),
          });
          context.signal.addEventListener('abort', () => reject(context.signal.reason as Error));
        }),
    },
    {
      kind: 'run',
      name: 'test.fail',
      timeoutSeconds: 30,
      run: () => Promise.reject(new PlatformError('BAD_REQUEST', 'no such thing')),
    },
  ];

  function rig(provide = true) {
    const blobs = new FsBlobStore(join(dir, `blobs-${(seq += 1)}`));
    let sink: StoreNodeSink | null = null;
    const runner = new BuiltinTaskRunner({ names, sink: () => sink! });
    if (provide) runner.provide(tasks);
    const engine = new WorkflowEngine({
      store,
      blobStore: blobs,
      ...runner.wrap({
        pinFunction: () => Promise.resolve(null),
        submit: () => Promise.reject(new PlatformError('NOT_FOUND', 'no functions here')),
      }),
      isLeader: () => true,
      pollMs: 20,
      bootId: 'me',
      preclaim: true,
    });
    sink = new StoreNodeSink({
      store,
      blobStore: blobs,
      processId: 'me',
      preclaimed: true,
      peek: (key, nodeKey) => engine.peek(key, nodeKey),
      onChange: (row) => engine.nodeChanged(row),
    });
    const backend = new BuiltinExecutionBackend({ store, blobStore: blobs, wake: (key) => engine.wake(key) });
    const deployer = new WorkflowDeployer({
      store,
      backend,
      functionExists: () => Promise.resolve(false),
      builtinTasks: names,
    });
    engine.start();
    stops.push(async () => {
      await runner.stop();
      await engine.stop();
    });
    const run = async (spec: unknown): Promise<ExecutionKey> => {
      const workflow = `tasks${(seq += 1)}`;
      await deployer.deploy(workflow, spec);
      return backend.launch({ project: 'p', domain: 'd', workflow, inputs: {} });
    };
    return { runner, run, blobs };
  }

  async function ended(key: ExecutionKey) {
    for (;;) {
      const record = await store.getExecution(key);
      if (record !== null && terminalExecutionPhases.has(record.phase)) return record;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }

  it('runs a task in-process as version 1, its output the node output', async () => {
    const { run, blobs } = rig();
    const key = await run({
      nodes: {
        a: { function: 'test.echo', input: { n: 1 } },
        b: { function: 'test.echo', input: '$.nodes.a.output' },
      },
      output: '$.nodes.b.output',
    });
    const record = await ended(key);
    assert.equal(record.phase, 'SUCCEEDED');
    assert.deepEqual(await loadValue(blobs, record.outputs), { input: { input: { n: 1 }, node: 'a' }, node: 'b' });
    const row = await store.getNode(key, 'b');
    assert.equal(row?.functionVersion, 1);
    assert.equal(row?.attempts[0]?.invocationId, 'task-b-1');
  });

  it("fails the node with the task's error", async () => {
    const { run } = rig();
    const record = await ended(await run({ nodes: { a: { function: 'test.fail' } } }));
    assert.equal(record.phase, 'FAILED');
    assert.deepEqual(record.error, { code: 'BAD_REQUEST', message: 'node a failed: no such thing', kind: 'USER' });
  });

  it("times a waiting task out with its node's timeout and aborts its wait", async () => {
    const { run } = rig();
    const before = waits.length;
    const key = await run({ nodes: { a: { function: 'test.wait', timeoutSeconds: 1 } } });
    const record = await ended(key);
    assert.equal(record.phase, 'FAILED');
    const row = await store.getNode(key, 'a');
    assert.equal(row?.phase, 'TIMED_OUT');
    assert.equal(waits.length, before + 1);
    const reason = await waits[before]!.aborted;
    assert.match(String(reason), /test.wait ran longer than its timeout \(1 s\)/);
  });

  it('runs a task submitted before its implementation was provided, once it is', async () => {
    const { run, runner } = rig(false);
    const key = await run({ nodes: { a: { function: 'test.echo', input: 7 } }, output: '$.nodes.a.output.input' });
    // Let the engine try (and be refused for now) before the implementation comes.
    for (;;) {
      const row = await store.getNode(key, 'a');
      if (row !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    runner.provide(tasks);
    const record = await ended(key);
    assert.equal(record.phase, 'SUCCEEDED');
  });

  it('aborts running tasks on stop without ending their attempts (they run again at the next start)', async () => {
    const { run, runner } = rig();
    const before = waits.length;
    const key = await run({ nodes: { a: { function: 'test.wait' } } });
    while (waits.length === before) await new Promise((resolve) => setTimeout(resolve, 10));
    await runner.stop();
    await waits[before]!.aborted;
    const row = await store.getNode(key, 'a');
    assert.equal(row?.phase, 'RUNNING');
    assert.equal(row?.attempts.at(-1)?.phase, 'RUNNING');
  });
});

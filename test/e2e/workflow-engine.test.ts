// The durable workflow engine on a real embedded platform: the SQLite store, the queue and dispatcher, real
// sandboxes. Executions are driven through the platform's execution backend in-process.
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { SavassanClient } from '../../src/client/client.js';
import type { ExecutionKey } from '../../src/core/ports/workflow-store.js';
import { terminalExecutionPhases } from '../../src/core/ports/workflow-store.js';
import type { ExecutionView, NodeExecutionView } from '../../src/core/ports/execution-backend.js';
import { startEmbedded, type EmbeddedPlatform } from '../../src/embedded/embedded-platform.js';
import { workflowFunctionBundle } from '../helpers/workflow-functions.js';

const project = 'savassan';
const domain = 'development';

describe('the workflow engine (embedded)', () => {
  let dataDir: string;
  let platform: EmbeddedPlatform;
  let client: SavassanClient;
  let seq = 0;

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'savassan-wf-engine-'));
    platform = await startEmbedded({ dataDir, port: 0, sandbox: 'process', stemCells: false, eventLoops: 1 });
    client = new SavassanClient({ url: platform.url });
    const bundle = await workflowFunctionBundle(dataDir);
    await client.deploy('fn', bundle, { asyncConcurrency: 50, timeoutSeconds: 30 });
  });

  after(async () => {
    await platform?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  const file = (what: string): string => join(dataDir, `${what}-${(seq += 1)}`);

  async function deploy(name: string, spec: unknown): Promise<void> {
    await platform.workflows.deployer.deploy(name, spec);
  }

  async function run(workflow: string, inputs: Record<string, unknown> = {}): Promise<ExecutionKey> {
    return platform.workflows.backend.launch({ project, domain, workflow, inputs });
  }

  /** Waits for the execution to end (the engine drives it; no time is asserted). */
  async function ended(key: ExecutionKey): Promise<ExecutionView> {
    for (;;) {
      const view = await platform.workflows.backend.get(key);
      if (terminalExecutionPhases.has(view.closure.phase)) return view;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async function nodes(key: ExecutionKey): Promise<Map<string, NodeExecutionView>> {
    const views = await platform.workflows.backend.nodeExecutions(key);
    return new Map(views.map((v) => [v.id.node_id, v]));
  }

  async function outputs(key: ExecutionKey): Promise<unknown> {
    return (await platform.workflows.backend.data(key)).outputs;
  }

  it('runs a chain, node after node, each output feeding the next', async () => {
    await deploy('chain', {
      inputs: { x: 'number' },
      nodes: {
        a: { function: 'fn', input: { n: '$.inputs.x', mul: 2 } },
        b: { function: 'fn', input: { n: '$.nodes.a.output.n', add: 1 } },
        c: { function: 'fn', input: { n: '$.nodes.b.output.n', mul: 10 } },
      },
      output: { result: '$.nodes.c.output.n' },
    });
    const key = await run('chain', { x: 4 });
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    assert.deepEqual(await outputs(key), { result: 90 });
    const rows = await nodes(key);
    assert.deepEqual([...rows.keys()], ['a', 'b', 'c']);
    for (const row of rows.values()) {
      assert.equal(row.closure.phase, 'SUCCEEDED');
      assert.equal(row.attempts.length, 1);
      assert.equal(row.invocation_ids.length, 1);
      assert.equal(row.function?.name, 'fn');
      assert.equal(row.function?.version, 1);
    }
  });

  it('fans out and back in: independent nodes run at the same time, the join waits for all', async () => {
    const log = file('fan');
    const barrier = { file: file('barrier'), count: 4 };
    const spec = {
      nodes: Object.fromEntries<unknown>([
        ...['p1', 'p2', 'p3', 'p4'].map((id, i): [string, unknown] => [
          id,
          { function: 'fn', input: { n: i + 1, barrier, log, tag: id } },
        ]),
        [
          'join',
          {
            function: 'fn',
            input: {
              n: '$.nodes.p1.output.n',
              add: '$.nodes.p4.output.n',
              tag: ['$.nodes.p2.output.tag', '$.nodes.p3.output.tag'],
              log,
            },
          },
        ],
      ]),
      output: { sum: '$.nodes.join.output.n', tags: '$.nodes.join.output.tag' },
    };
    await deploy('fan', spec);
    const key = await run('fan');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    assert.deepEqual(await outputs(key), { sum: 5, tags: ['p2', 'p3'] });
    const runs = (await readFile(log, 'utf8'))
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { tag: unknown; start: number; end: number });
    const parallel = runs.filter((r) => typeof r.tag === 'string' && r.tag.startsWith('p'));
    const join_ = runs.find((r) => Array.isArray(r.tag))!;
    assert.equal(parallel.length, 4);
    // All four were under way at once (the barrier let none end before all arrived); the join came after.
    assert.ok(join_.start >= Math.max(...parallel.map((r) => r.end)));
  });
  /** The JSON lines a function appended to `path`. */
  async function lines(path: string): Promise<{ tag: unknown; start: number; end: number }[]> {
    const text = await readFile(path, 'utf8').catch(() => '');
    return text
      .trim()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as { tag: unknown; start: number; end: number });
  }

  /** Waits until a node's row is RUNNING with an attempt under way. */
  async function running(key: ExecutionKey, node: string): Promise<void> {
    for (;;) {
      const row = (await nodes(key)).get(node);
      if (row?.closure.phase === 'RUNNING' && row.attempts.at(-1)?.phase === 'RUNNING') return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  it('maps a function over a list, at most `concurrency` at once, outputs in order', async () => {
    const log = file('map');
    await deploy('mapper', {
      inputs: { xs: 'array' },
      nodes: {
        m: {
          map: '$.inputs.xs',
          function: 'fn',
          concurrency: 2,
          input: { n: '$.item', mul: 3, item: '$.index', sleepMs: 100, log, tag: '$.index' },
        },
      },
      output: '$.nodes.m.output',
    });
    const key = await run('mapper', { xs: [5, 4, 3, 2, 1, 0, 7] });
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    const out = (await outputs(key)) as { n: number; item: number }[];
    assert.deepEqual(
      out.map((o) => [o.n, o.item]),
      [
        [15, 0],
        [12, 1],
        [9, 2],
        [6, 3],
        [3, 4],
        [0, 5],
        [21, 6],
      ],
    );
    // Never more than two runs under way at once: at each run's start, at most one other had started and not ended.
    const runs = await lines(log);
    assert.equal(runs.length, 7);
    for (const r of runs) {
      const overlapping = runs.filter((o) => o !== r && o.start <= r.start && o.end > r.start);
      assert.ok(overlapping.length <= 1, `run ${String(r.tag)} overlapped ${overlapping.length} others`);
    }
    const rows = await nodes(key);
    assert.equal(rows.get('m')?.metadata.is_parent_node, true);
    assert.equal(rows.get('m[6]')?.metadata.parent_node_id, 'm');
    assert.equal(rows.get('m[6]')?.metadata.item, 6);
  });

  it('skips a node whose condition is false, and every node depending on it; the output reads null', async () => {
    await deploy('conditional', {
      inputs: { x: 'number' },
      nodes: {
        a: { function: 'fn', input: { n: '$.inputs.x' } },
        big: { function: 'fn', input: { n: 1 }, when: { ref: '$.nodes.a.output.n', greaterThan: 10 } },
        after: { function: 'fn', input: { n: '$.nodes.big.output.n' } },
        small: { function: 'fn', input: { n: 2 }, when: { ref: '$.nodes.a.output.n', lessThanOrEquals: 10 } },
      },
      output: { big: '$.nodes.after.output.n', small: '$.nodes.small.output.n' },
    });
    const key = await run('conditional', { x: 3 });
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    assert.deepEqual(await outputs(key), { big: null, small: 2 });
    const rows = await nodes(key);
    assert.equal(rows.get('big')?.closure.phase, 'SKIPPED');
    assert.equal(rows.get('after')?.closure.phase, 'SKIPPED');
    assert.equal(rows.get('small')?.closure.phase, 'SUCCEEDED');
    assert.equal(rows.get('big')?.invocation_ids.length, 0);
  });

  it('retries a failing node with new attempts until it succeeds', async () => {
    const counter = file('retry');
    await deploy('retrying', {
      nodes: { a: { function: 'fn', input: { n: 1, counter, failTimes: 2 }, retries: 2, retryDelaySeconds: 0 } },
      output: '$.nodes.a.output.n',
    });
    const key = await run('retrying');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    const a = (await nodes(key)).get('a')!;
    assert.deepEqual(
      a.attempts.map((x) => x.phase),
      ['FAILED', 'FAILED', 'SUCCEEDED'],
    );
    assert.equal(a.attempts[0]?.error?.code, 'FUNCTION_ERROR');
    assert.equal(new Set(a.invocation_ids).size, 3);
    assert.equal(await readFile(counter, 'utf8'), '3');
  });

  it('fails a node whose retries are spent, and the execution with it', async () => {
    const counter = file('spent');
    await deploy('spent', {
      nodes: {
        a: { function: 'fn', input: { counter, fail: 'always broken' }, retries: 1, retryDelaySeconds: 0 },
        b: { function: 'fn', input: '$.nodes.a.output' },
      },
    });
    const key = await run('spent');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'FAILED');
    assert.equal(view.closure.error?.kind, 'USER');
    assert.equal(view.closure.error?.code, 'FUNCTION_ERROR');
    assert.match(view.closure.error?.message ?? '', /node a failed: .*always broken/);
    const rows = await nodes(key);
    assert.equal(rows.get('a')?.closure.phase, 'FAILED');
    assert.equal(rows.get('a')?.attempts.length, 2);
    assert.equal(rows.has('b'), false);
    assert.equal(await readFile(counter, 'utf8'), '2');
  });

  it('times an attempt out after the node timeout and retries it; the node ends TIMED_OUT', async () => {
    const log = file('slow');
    await deploy('slow', {
      nodes: {
        a: { function: 'fn', input: { sleepMs: 3000, log }, timeoutSeconds: 1, retries: 1, retryDelaySeconds: 0 },
      },
    });
    const key = await run('slow');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'FAILED');
    const a = (await nodes(key)).get('a')!;
    assert.equal(a.closure.phase, 'TIMED_OUT');
    assert.deepEqual(
      a.attempts.map((x) => x.phase),
      ['TIMED_OUT', 'TIMED_OUT'],
    );
    // Both runs went on to their end and were reported late: the reports changed nothing.
    while ((await lines(log)).length < 2) await new Promise((resolve) => setTimeout(resolve, 50));
    await platform.workflows.engine.idle();
    const after = (await nodes(key)).get('a')!;
    assert.equal(after.closure.phase, 'TIMED_OUT');
    assert.deepEqual(after.attempts, a.attempts);
    assert.equal((await platform.workflows.backend.get(key)).closure.phase, 'FAILED');
  });

  it('fails a map node when an element fails after its retries; the elements under way are aborted', async () => {
    await deploy('badmap', {
      inputs: { xs: 'array' },
      nodes: {
        m: {
          map: '$.inputs.xs',
          function: 'fn',
          concurrency: 3,
          retries: 1,
          retryDelaySeconds: 0,
          input: '$.item',
        },
      },
    });
    const key = await run('badmap', {
      xs: [{ n: 1 }, { fail: 'element 1 broke', sleepMs: 300 }, { sleepMs: 5000 }, { n: 4 }],
    });
    const view = await ended(key);
    assert.equal(view.closure.phase, 'FAILED');
    assert.match(view.closure.error?.message ?? '', /node m failed: element 1: .*element 1 broke/);
    const rows = await nodes(key);
    assert.equal(rows.get('m')?.closure.phase, 'FAILED');
    assert.equal(rows.get('m[0]')?.closure.phase, 'SUCCEEDED');
    assert.equal(rows.get('m[1]')?.closure.phase, 'FAILED');
    assert.equal(rows.get('m[1]')?.attempts.length, 2);
    assert.equal(rows.get('m[2]')?.closure.phase, 'ABORTED');
  });

  it('reuses a cached output for the same function version and input, without an invocation', async () => {
    const counter = file('cache');
    await deploy('cached', {
      inputs: { x: 'number' },
      nodes: { a: { function: 'fn', input: { n: '$.inputs.x', counter }, cache: true } },
      output: '$.nodes.a.output.n',
    });
    const first = await run('cached', { x: 7 });
    assert.equal((await ended(first)).closure.phase, 'SUCCEEDED');
    const second = await run('cached', { x: 7 });
    assert.equal((await ended(second)).closure.phase, 'SUCCEEDED');
    assert.equal(await outputs(second), 7);
    const a = (await nodes(second)).get('a')!;
    assert.equal(a.cache_hit, true);
    assert.equal(a.invocation_ids.length, 0);
    assert.equal(await readFile(counter, 'utf8'), '1');
    // Another input is another key.
    const third = await run('cached', { x: 8 });
    assert.equal((await ended(third)).closure.phase, 'SUCCEEDED');
    assert.equal((await nodes(third)).get('a')?.cache_hit, false);
    assert.equal(await readFile(counter, 'utf8'), '2');
  });

  it('terminates an execution: running nodes are aborted, nothing more starts', async () => {
    const log = file('terminate');
    await deploy('long', {
      nodes: {
        a: { function: 'fn', input: { sleepMs: 3000 } },
        b: { function: 'fn', input: { n: '$.nodes.a.output.n', log } },
      },
    });
    const key = await run('long');
    await running(key, 'a');
    await platform.workflows.backend.terminate(key, 'stop it');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'ABORTED');
    assert.equal(view.closure.abort_metadata?.cause, 'stop it');
    const rows = await nodes(key);
    assert.equal(rows.get('a')?.closure.phase, 'ABORTED');
    assert.equal(rows.get('a')?.attempts[0]?.phase, 'ABORTED');
    assert.equal(rows.has('b'), false);
    await assert.rejects(platform.workflows.backend.terminate(key, 'again'), /CONFLICT/);
  });

  it('recovers a failed execution: succeeded nodes are not run again, the rest run', async () => {
    const countA = file('recover-a');
    const countB = file('recover-b');
    await deploy('recoverable', {
      nodes: {
        a: { function: 'fn', input: { n: 2, counter: countA } },
        b: { function: 'fn', input: { n: '$.nodes.a.output.n', mul: 5, counter: countB, failTimes: 1 } },
      },
      output: '$.nodes.b.output.n',
    });
    const failed = await run('recoverable');
    assert.equal((await ended(failed)).closure.phase, 'FAILED');
    const recovered = await platform.workflows.backend.recover(failed);
    const view = await ended(recovered);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    assert.equal(view.spec.metadata.mode, 'RECOVERED');
    assert.deepEqual(view.spec.metadata.reference_execution, failed);
    assert.equal(await outputs(recovered), 10);
    const rows = await nodes(recovered);
    assert.equal(rows.get('a')?.closure.phase, 'RECOVERED');
    assert.equal(rows.get('b')?.closure.phase, 'SUCCEEDED');
    assert.equal(await readFile(countA, 'utf8'), '1');
    assert.equal(await readFile(countB, 'utf8'), '2');
    // A relaunch runs everything again.
    const again = await platform.workflows.backend.relaunch(recovered);
    assert.equal((await ended(again)).closure.phase, 'SUCCEEDED');
    assert.equal(await readFile(countA, 'utf8'), '2');
  });

  it('fails fast by default: a failure aborts the nodes still running', async () => {
    await deploy('fastfail', {
      nodes: {
        bad: { function: 'fn', input: { fail: 'no' } },
        slow: { function: 'fn', input: { sleepMs: 3000 } },
        after: { function: 'fn', input: '$.nodes.slow.output' },
      },
    });
    const key = await run('fastfail');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'FAILED');
    const rows = await nodes(key);
    assert.equal(rows.get('bad')?.closure.phase, 'FAILED');
    assert.equal(rows.get('slow')?.closure.phase, 'ABORTED');
    assert.equal(rows.has('after'), false);
  });

  it('with finishRunnable, runs everything not depending on the failure, then fails', async () => {
    await deploy('finishing', {
      failurePolicy: 'finishRunnable',
      nodes: {
        bad: { function: 'fn', input: { fail: 'no' } },
        needsbad: { function: 'fn', input: '$.nodes.bad.output' },
        slow: { function: 'fn', input: { n: 1, sleepMs: 500 } },
        after: { function: 'fn', input: { n: '$.nodes.slow.output.n', add: 1 } },
      },
    });
    const key = await run('finishing');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'FAILED');
    assert.match(view.closure.error?.message ?? '', /node bad failed/);
    const rows = await nodes(key);
    assert.equal(rows.get('slow')?.closure.phase, 'SUCCEEDED');
    assert.equal(rows.get('after')?.closure.phase, 'SUCCEEDED');
    assert.equal(rows.has('needsbad'), false);
  });

  it('runs a sub-workflow as a child execution; its output is the node output', async () => {
    await deploy('child', {
      inputs: { x: 'number' },
      nodes: { d: { function: 'fn', input: { n: '$.inputs.x', mul: 2 } } },
      output: { doubled: '$.nodes.d.output.n' },
    });
    await deploy('parent', {
      inputs: { x: 'number' },
      nodes: {
        sub: { workflow: 'child', input: { x: '$.inputs.x' } },
        inc: { function: 'fn', input: { n: '$.nodes.sub.output.doubled', add: 1 } },
      },
      output: '$.nodes.inc.output.n',
    });
    const key = await run('parent', { x: 20 });
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    assert.equal(await outputs(key), 41);
    const sub = (await nodes(key)).get('sub')!;
    const child = sub.closure.workflow_node_metadata!.execution_id;
    const childView = await platform.workflows.backend.get(child);
    assert.equal(childView.closure.phase, 'SUCCEEDED');
    assert.equal(childView.spec.metadata.mode, 'CHILD_WORKFLOW');
    assert.deepEqual(childView.spec.metadata.parent_node_execution, { node_id: 'sub', execution_id: key });
  });

  it('aborts a child execution when its parent is terminated', async () => {
    await deploy('slowchild', { nodes: { s: { function: 'fn', input: { sleepMs: 3000 } } } });
    await deploy('slowparent', { nodes: { sub: { workflow: 'slowchild' } } });
    const key = await run('slowparent');
    await running(key, 'sub');
    const child = (await nodes(key)).get('sub')!.closure.workflow_node_metadata!.execution_id;
    await running(child, 's');
    await platform.workflows.backend.terminate(key, 'enough');
    assert.equal((await ended(key)).closure.phase, 'ABORTED');
    assert.equal((await ended(child)).closure.phase, 'ABORTED');
  });

  it('keeps outputs over 256 KB in the blob store', async () => {
    await deploy('large', {
      nodes: {
        big: { function: 'fn', input: { bigBytes: 300_000 } },
        size: { function: 'fn', input: { tag: '$.nodes.big.output.data' } },
      },
      output: { data: '$.nodes.size.output.tag' },
    });
    const key = await run('large');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    const out = (await outputs(key)) as { data: string };
    assert.equal(out.data.length, 300_000);
    const row = await platform.workflows.store.getNode(key, 'big');
    assert.ok(row?.output !== null && row?.output !== undefined && 'blobKey' in row.output);
    assert.equal(row.output.blobKey, `workflows/${project}/${domain}/${key.name}/big/1.json`);
    const execution = await platform.workflows.store.getExecution(key);
    assert.ok(execution?.outputs !== null && execution?.outputs !== undefined && 'blobKey' in execution.outputs);
  });
  it('deploys versions, validates, lists and deletes workflows', async () => {
    const spec = { nodes: { a: { function: 'fn', input: { n: 1 } } } };
    const first = await platform.workflows.deployer.deploy('versioned', spec);
    assert.equal(first.created, true);
    assert.equal(first.record.version, 1);
    const same = await platform.workflows.deployer.deploy('versioned', {
      nodes: { a: { input: { n: 1 }, function: 'fn' } },
    });
    assert.equal(same.created, false);
    assert.equal(same.record.version, 1);
    const second = await platform.workflows.deployer.deploy('versioned', { nodes: { b: { function: 'fn' } } });
    assert.equal(second.record.version, 2);
    assert.deepEqual(
      (await platform.workflows.deployer.versions('versioned')).map((v) => v.version),
      [2, 1],
    );
    assert.equal((await platform.workflows.deployer.get('versioned', 1)).version, 1);
    assert.deepEqual(await platform.workflows.deployer.validate('versioned', spec), {
      valid: true,
      nodeCount: 1,
      order: ['a'],
    });
    await assert.rejects(
      platform.workflows.deployer.deploy('broken', { nodes: { a: { function: 'nosuchfn' } } }),
      /BAD_REQUEST.*node a.*nosuchfn/,
    );
    await assert.rejects(platform.workflows.deployer.deploy('Bad Name', spec), /BAD_REQUEST/);
    assert.ok((await platform.workflows.deployer.list()).some((w) => w.name === 'versioned' && w.latestVersion === 2));
    // An execution of version 1, launched by number.
    const key = await platform.workflows.backend.launch({
      project,
      domain,
      workflow: 'versioned',
      version: 1,
      inputs: {},
    });
    assert.equal((await ended(key)).spec.launch_plan.version, '1');
    await platform.workflows.deployer.delete('versioned');
    await assert.rejects(platform.workflows.deployer.get('versioned'), /NOT_FOUND/);
    await assert.rejects(platform.workflows.deployer.delete('versioned'), /NOT_FOUND/);
    await assert.rejects(
      platform.workflows.backend.launch({ project, domain, workflow: 'versioned', inputs: {} }),
      /NOT_FOUND/,
    );
  });

  it('fails a node whose function was deleted NOT_FOUND (USER), without retrying it', async () => {
    await client.deploy('vanishing', await workflowFunctionBundle(join(dataDir, 'vanishing')), { timeoutSeconds: 30 });
    await deploy('vanish', { nodes: { a: { function: 'vanishing', input: { n: 1 }, retries: 3 } } });
    await client.deleteFunction('vanishing');
    const key = await run('vanish');
    const view = await ended(key);
    assert.equal(view.closure.phase, 'FAILED', JSON.stringify(view));
    assert.equal(view.closure.error?.code, 'NOT_FOUND');
    assert.equal(view.closure.error?.kind, 'USER');
    const a = (await nodes(key)).get('a')!;
    assert.ok(a.attempts.length <= 1, JSON.stringify(a));
  });

  it('launches under a given name once, checks inputs, lists executions page by page', async () => {
    await deploy('named', { inputs: { x: 'number' }, nodes: { a: { function: 'fn', input: { n: '$.inputs.x' } } } });
    const backend = platform.workflows.backend;
    await assert.rejects(
      backend.launch({ project, domain: 'other', workflow: 'named', inputs: { x: 'no' } }),
      /BAD_REQUEST.*x/,
    );
    await assert.rejects(backend.launch({ project, domain: 'other', workflow: 'named', inputs: {} }), /BAD_REQUEST.*x/);
    const named = await backend.launch({
      project,
      domain: 'other',
      name: 'first-run',
      workflow: 'named',
      inputs: { x: 1 },
    });
    assert.deepEqual(named, { project, domain: 'other', name: 'first-run' });
    await assert.rejects(
      backend.launch({ project, domain: 'other', name: 'first-run', workflow: 'named', inputs: { x: 1 } }),
      /CONFLICT/,
    );
    const generated = await backend.launch({ project, domain: 'other', workflow: 'named', inputs: { x: 2 } });
    assert.match(generated.name, /^[a-z][a-z0-9]{19}$/);
    const third = await backend.launch({ project, domain: 'other', workflow: 'named', inputs: { x: 3 } });
    for (const key of [named, generated, third]) await ended(key);
    assert.deepEqual((await backend.data(third)).inputs, { x: 3 });
    const seen: string[] = [];
    let token: string | undefined;
    do {
      const page = await backend.list(project, 'other', { limit: 2, token, workflow: 'named' });
      assert.ok(page.executions.length <= 2);
      seen.push(...page.executions.map((e) => e.id.name));
      token = page.token || undefined;
    } while (token !== undefined);
    assert.deepEqual(seen.sort(), [named.name, generated.name, third.name].sort());
    await assert.rejects(backend.get({ project, domain: 'other', name: 'nope' }), /NOT_FOUND/);
  });
});

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
});

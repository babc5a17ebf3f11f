import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { PlatformError, type ErrorCode } from '../../core/errors.js';
import type { ExecutionView } from '../../core/ports/execution-backend.js';
import type { ExecutionKey } from '../../core/ports/workflow-store.js';
import { startFakeFlyteAdmin, type FakeFlyteAdmin } from '../../../test/helpers/fake-flyteadmin.js';
import { createFlyteBackend, type FlyteBackend } from './flyte-backend.js';

const project = 'savassan';
const domain = 'development';

const calc = {
  inputs: { x: 'number' },
  nodes: {
    a: { function: 'double', input: { n: '$.inputs.x' } },
    b: { function: 'inc', input: { n: '$.nodes.a.output.n' }, retries: 1 },
  },
  output: { result: '$.nodes.b.output.n' },
};

let flakyCalls = 0;
let brokenFails = true;
const functions = {
  double: (input: unknown) => ({ n: (input as { n: number }).n * 2 }),
  inc: (input: unknown) => ({ n: (input as { n: number }).n + 1 }),
  flaky: (input: unknown) => {
    flakyCalls += 1;
    if (flakyCalls === 1) throw new Error('first call fails');
    return input;
  },
  broken: (input: unknown) => {
    if (brokenFails) throw new Error('broken for now');
    return input;
  },
  echo: (input: unknown) => input,
};

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, message?: RegExp): Promise<PlatformError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof PlatformError, `expected a PlatformError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

/** Reads the execution until it ends (the server moves it one phase per read). */
async function untilEnded(backend: FlyteBackend, key: ExecutionKey): Promise<ExecutionView[]> {
  const seen: ExecutionView[] = [];
  for (let i = 0; i < 10; i += 1) {
    const view = await backend.get(key);
    seen.push(view);
    if (['SUCCEEDED', 'FAILED', 'ABORTED', 'TIMED_OUT'].includes(view.closure.phase)) return seen;
  }
  assert.fail(`execution ${key.name} did not end: ${seen.map((v) => v.closure.phase).join(', ')}`);
}

describe('FlyteBackend against a FlyteAdmin-shaped server', () => {
  let flyte: FakeFlyteAdmin;
  let backend: FlyteBackend;

  before(async () => {
    flyte = await startFakeFlyteAdmin({ functions });
    backend = createFlyteBackend({ url: flyte.url });
    await backend.register('calc', 1, JSON.stringify(calc));
  });
  after(() => flyte.close());

  it('registers a task per function node, the workflow with its bindings, and an active launch plan', () => {
    const task = flyte.tasks.get(`${project}/${domain}/calc.a/1`);
    assert.ok(task);
    assert.equal(task.spec.template.type, 'savassan-function');
    assert.deepEqual(task.spec.template.custom, { function: 'double', qualifier: 'live', retryDelaySeconds: 1 });
    const workflow = flyte.workflows.get(`${project}/${domain}/calc/1`);
    assert.ok(workflow);
    const template = workflow.spec.template;
    assert.deepEqual(template.interface.inputs.variables, { x: { type: { simple: 'FLOAT' } } });
    const b = template.nodes.find((node) => node.id === 'b');
    assert.deepEqual(b?.upstream_node_ids, ['a']);
    assert.deepEqual(b?.metadata?.retries, { retries: 1 });
    assert.deepEqual(b?.inputs, [
      {
        var: 'input',
        binding: {
          map: { bindings: { n: { promise: { node_id: 'a', var: 'output', attr_path: [{ string_value: 'n' }] } } } },
        },
      },
    ]);
    assert.equal(flyte.launchPlans.get(`${project}/${domain}/calc/1`)?.closure?.state, 'ACTIVE');
  });

  it('registers the same version again without error, and a new version becomes the active one', async () => {
    await backend.register('calc', 1, JSON.stringify(calc));
    await backend.register('calc', 2, JSON.stringify({ ...calc, description: 'two' }));
    assert.equal(flyte.launchPlans.get(`${project}/${domain}/calc/1`)?.closure?.state, 'INACTIVE');
    assert.equal(flyte.launchPlans.get(`${project}/${domain}/calc/2`)?.closure?.state, 'ACTIVE');
    const key = await backend.launch({ project, domain, workflow: 'calc', inputs: { x: 1 } });
    assert.equal((await backend.get(key)).spec.launch_plan.version, '2');
    const pinned = await backend.launch({ project, domain, workflow: 'calc', version: 1, inputs: { x: 1 } });
    assert.equal((await backend.get(pinned)).spec.launch_plan.version, '1');
  });

  it('launches with typed literals, follows the phases, and reads inputs and outputs back as JSON', async () => {
    const key = await backend.launch({
      project,
      domain,
      name: 'first-run',
      workflow: 'calc',
      version: 1,
      inputs: { x: 3 },
    });
    assert.deepEqual(key, { project, domain, name: 'first-run' });
    const sent = flyte.requests.filter((r) => r.method === 'POST' && r.path === '/api/v1/executions').at(-1);
    assert.deepEqual((sent?.body as { inputs: unknown }).inputs, {
      literals: { x: { scalar: { primitive: { float_value: 3 } } } },
    });
    assert.deepEqual(await backend.data(key), { inputs: { x: 3 }, outputs: null });
    const phases = await untilEnded(backend, key);
    assert.deepEqual(
      phases.map((v) => v.closure.phase),
      ['RUNNING', 'SUCCEEDED'],
    );
    const view = phases.at(-1)!;
    assert.deepEqual(view.spec.launch_plan, {
      resource_type: 'LAUNCH_PLAN',
      project,
      domain,
      name: 'calc',
      version: '1',
    });
    assert.equal(view.spec.metadata.mode, 'MANUAL');
    assert.match(view.closure.duration, /^\d+(\.\d+)?s$/);
    assert.ok(view.closure.started_at);
    assert.deepEqual(await backend.data(key), { inputs: { x: 3 }, outputs: { result: 7 } });
  });

  it('leaves out what FlyteAdmin sends as null: an unset start, no reference or parent execution', async () => {
    flyte.hold(true);
    try {
      const key = await backend.launch({ project, domain, workflow: 'calc', inputs: { x: 2 } });
      const view = await backend.get(key);
      assert.equal(view.closure.phase, 'QUEUED');
      assert.equal('started_at' in view.closure, false);
      assert.deepEqual(view.spec.metadata, { mode: 'MANUAL' });
      assert.deepEqual(await backend.data(key), { inputs: { x: 2 }, outputs: null });
    } finally {
      flyte.hold(false);
    }
  });

  it('names an execution when asked to launch without a name', async () => {
    const key = await backend.launch({ project, domain, workflow: 'calc', inputs: { x: 0 } });
    assert.match(key.name, /^[a-z][a-z0-9]{19}$/);
  });

  it('lists executions newest first, page by page, and by workflow', async () => {
    const other = await startFakeFlyteAdmin({ functions });
    try {
      const b = createFlyteBackend({ url: other.url, domains: ['development', 'staging'] });
      await b.register('calc', 1, JSON.stringify(calc));
      await b.register('echo-wf', 1, JSON.stringify({ nodes: { e: { function: 'echo', input: 1 } } }));
      for (const name of ['one', 'two', 'three']) {
        await b.launch({ project, domain: 'staging', name, workflow: 'calc', inputs: { x: 1 } });
      }
      await b.launch({ project, domain: 'staging', name: 'echoed', workflow: 'echo-wf', inputs: {} });
      const first = await b.list(project, 'staging', { limit: 2, workflow: 'calc' });
      assert.deepEqual(
        first.executions.map((e) => e.id.name),
        ['three', 'two'],
      );
      assert.notEqual(first.token, '');
      const second = await b.list(project, 'staging', { limit: 2, workflow: 'calc', token: first.token });
      assert.deepEqual(
        second.executions.map((e) => e.id.name),
        ['one'],
      );
      assert.equal(second.token, '');
      const all = await b.list(project, 'staging', { limit: 10 });
      assert.equal(all.executions.length, 4);
      assert.equal((await b.list(project, 'development', { limit: 10 })).executions.length, 0);
    } finally {
      await other.close();
    }
  });

  it('reports node executions with their attempts, retries included', async () => {
    await backend.register(
      'retrying',
      1,
      JSON.stringify({ nodes: { f: { function: 'flaky', input: { v: 1 }, retries: 2 } }, output: '$.nodes.f.output' }),
    );
    const key = await backend.launch({ project, domain, workflow: 'retrying', inputs: {} });
    await untilEnded(backend, key);
    const nodes = await backend.nodeExecutions(key);
    assert.equal(nodes.length, 1);
    const [f] = nodes;
    assert.equal(f?.id.node_id, 'f');
    assert.equal(f?.closure.phase, 'SUCCEEDED');
    assert.deepEqual(
      f?.attempts.map((a) => [a.attempt, a.phase]),
      [
        [1, 'FAILED'],
        [2, 'SUCCEEDED'],
      ],
    );
    assert.equal(f?.attempts[0]?.error?.message, 'first call fails');
    assert.equal(f?.cache_hit, false);
    assert.deepEqual((await backend.data(key)).outputs, { v: 1 });
  });

  it('runs map nodes as array nodes and sub-workflows as workflow nodes on the child launch plan', async () => {
    await backend.register(
      'fanout',
      1,
      JSON.stringify({
        inputs: { list: 'array', k: 'integer' },
        nodes: {
          m: { map: '$.inputs.list', function: 'echo', input: { v: '$.item.v', i: '$.index', k: '$.inputs.k' } },
          c: { workflow: 'calc', input: { x: '$.nodes.m.output[1].v' } },
        },
        output: { mapped: '$.nodes.m.output', child: '$.nodes.c.output.result', fixed: { $literal: '$.not-a-ref' } },
      }),
    );
    const m = flyte.workflows.get(`${project}/${domain}/fanout/1`)?.spec.template.nodes.find((n) => n.id === 'm');
    assert.equal(m?.array_node?.parallelism, 10);
    const c = flyte.workflows.get(`${project}/${domain}/fanout/1`)?.spec.template.nodes.find((n) => n.id === 'c');
    assert.equal(c?.workflow_node?.launchplan_ref.version, '2', 'the latest calc when registered');
    const key = await backend.launch({
      project,
      domain,
      workflow: 'fanout',
      inputs: { list: [{ v: 10 }, { v: 20 }], k: 5 },
    });
    assert.equal((await untilEnded(backend, key)).at(-1)?.closure.phase, 'SUCCEEDED');
    const sent = flyte.requests.filter((r) => r.method === 'POST' && r.path === '/api/v1/executions').at(-1);
    assert.deepEqual((sent?.body as { inputs: { literals: Record<string, unknown> } }).inputs.literals['k'], {
      scalar: { primitive: { integer: '5' } },
    });
    assert.deepEqual((await backend.data(key)).outputs, {
      mapped: [
        { v: 10, i: 0, k: 5 },
        { v: 20, i: 1, k: 5 },
      ],
      child: 41,
      fixed: '$.not-a-ref',
    });
    const nodes = await backend.nodeExecutions(key);
    const child = nodes.find((n) => n.id.node_id === 'c')?.closure.workflow_node_metadata?.execution_id;
    assert.ok(child);
    const childView = await backend.get(child);
    assert.equal(childView.spec.metadata.mode, 'CHILD_WORKFLOW');
    assert.equal(childView.spec.metadata.parent_node_execution?.node_id, 'c');
    assert.equal(nodes.find((n) => n.id.node_id === 'm')?.attempts.length, 2);
  });

  it('terminates a running execution (ABORTING, then ABORTED) and refuses to terminate it again', async () => {
    flyte.hold(true);
    const key = await backend.launch({ project, domain, workflow: 'calc', inputs: { x: 1 } });
    await backend.terminate(key, 'not needed');
    assert.equal((await backend.get(key)).closure.phase, 'ABORTING');
    flyte.hold(false);
    const view = await backend.get(key);
    assert.equal(view.closure.phase, 'ABORTED');
    assert.equal(view.closure.abort_metadata?.cause, 'not needed');
    const terminate = flyte.requests.filter((r) => r.method === 'DELETE').at(-1);
    assert.deepEqual(terminate?.body, { id: key, cause: 'not needed' });
    await rejectsWith(backend.terminate(key, 'again'), 'CONFLICT', /already terminate/);
  });

  it('relaunches with the same inputs, named or not', async () => {
    const key = await backend.launch({ project, domain, workflow: 'calc', inputs: { x: 4 } });
    await untilEnded(backend, key);
    const again = await backend.relaunch(key, 'again-run');
    assert.equal(again.name, 'again-run');
    const view = (await untilEnded(backend, again)).at(-1)!;
    assert.equal(view.spec.metadata.mode, 'RELAUNCH');
    assert.deepEqual(view.spec.metadata.reference_execution, key);
    assert.deepEqual(await backend.data(again), { inputs: { x: 4 }, outputs: { result: 9 } });
    const unnamed = await backend.relaunch(key);
    assert.notEqual(unnamed.name, key.name);
  });

  it('recovers a failed execution: succeeded nodes are RECOVERED, the rest run again', async () => {
    await backend.register(
      'fragile',
      1,
      JSON.stringify({
        nodes: { a: { function: 'double', input: { n: 2 } }, b: { function: 'broken', input: '$.nodes.a.output' } },
        output: '$.nodes.b.output.n',
      }),
    );
    const key = await backend.launch({ project, domain, workflow: 'fragile', inputs: {} });
    const failed = (await untilEnded(backend, key)).at(-1)!;
    assert.equal(failed.closure.phase, 'FAILED');
    assert.deepEqual(failed.closure.error, { code: 'USER:Error', message: 'node b: broken for now', kind: 'USER' });
    brokenFails = false;
    const recovered = await backend.recover(key);
    const view = (await untilEnded(backend, recovered)).at(-1)!;
    assert.equal(view.closure.phase, 'SUCCEEDED');
    assert.equal(view.spec.metadata.mode, 'RECOVERED');
    const phases = (await backend.nodeExecutions(recovered)).map((n) => [n.id.node_id, n.closure.phase]);
    assert.deepEqual(phases, [
      ['a', 'RECOVERED'],
      ['b', 'SUCCEEDED'],
    ]);
    assert.equal((await backend.data(recovered)).outputs, 4);
  });

  it('checks launch inputs against the launch plan, naming the input', async () => {
    await rejectsWith(
      backend.launch({ project, domain, workflow: 'calc', inputs: { x: 'three' } }),
      'BAD_REQUEST',
      /input x: expected number/,
    );
    await rejectsWith(
      backend.launch({ project, domain, workflow: 'calc', inputs: {} }),
      'BAD_REQUEST',
      /input x: required/,
    );
    await rejectsWith(
      backend.launch({ project, domain, workflow: 'calc', inputs: { x: 1, y: 2 } }),
      'BAD_REQUEST',
      /input y: .*no such input/,
    );
  });

  it('maps FlyteAdmin errors: 404, 409, 400, 5xx, bad JSON, an answer too large', async () => {
    await rejectsWith(backend.get({ project, domain, name: 'nope' }), 'NOT_FOUND', /missing entity/);
    await rejectsWith(backend.launch({ project, domain, workflow: 'ghost', inputs: {} }), 'NOT_FOUND', /ghost/);
    await rejectsWith(backend.launch({ project, domain, workflow: 'calc', version: 9, inputs: { x: 1 } }), 'NOT_FOUND');
    await rejectsWith(backend.relaunch({ project, domain, name: 'nope' }), 'NOT_FOUND');
    await backend.launch({ project, domain, name: 'taken', workflow: 'calc', inputs: { x: 1 } });
    await rejectsWith(
      backend.launch({ project, domain, name: 'taken', workflow: 'calc', inputs: { x: 1 } }),
      'CONFLICT',
      /already exists/,
    );
    flyte.failNext(409, '{}');
    await rejectsWith(backend.get({ project, domain, name: 'taken' }), 'CONFLICT', /HTTP 409/);
    await rejectsWith(backend.list(project, domain, { limit: 0 }), 'BAD_REQUEST', /invalid limit/);
    flyte.failNext(503, JSON.stringify({ error: 'upstream down', code: 14, message: 'upstream down' }));
    await rejectsWith(backend.get({ project, domain, name: 'taken' }), 'UNAVAILABLE', /upstream down/);
    flyte.failNext(200, '<html>proxy</html>', 'text/html');
    await rejectsWith(backend.get({ project, domain, name: 'taken' }), 'UNAVAILABLE', /not JSON/);
    flyte.failNext(502, '<html>bad gateway</html>', 'text/html');
    await rejectsWith(
      backend.get({ project, domain, name: 'taken' }),
      'UNAVAILABLE',
      /502 with a body that is not JSON/,
    );
    const small = createFlyteBackend({ url: flyte.url, maxResponseBytes: 64 });
    await rejectsWith(small.get({ project, domain, name: 'taken' }), 'UNAVAILABLE', /over 64 bytes/);
  });

  it('refuses what Flyte cannot run here: conditional nodes, a reserved node id, an unregistered child', async () => {
    const when = {
      inputs: { x: 'number' },
      nodes: { a: { function: 'double', input: { n: '$.inputs.x' }, when: { ref: '$.inputs.x', greaterThan: 1 } } },
    };
    await rejectsWith(
      backend.register('conditional', 1, JSON.stringify(when)),
      'BAD_REQUEST',
      /node a: when: the Flyte backend/,
    );
    await rejectsWith(
      backend.register('reserved', 1, JSON.stringify({ nodes: { 'end-node': { function: 'echo' } } })),
      'BAD_REQUEST',
      /reserves the node id end-node/,
    );
    await rejectsWith(
      backend.register('orphan', 1, JSON.stringify({ nodes: { c: { workflow: 'nowhere' } } })),
      'NOT_FOUND',
      /nowhere has no active launch plan/,
    );
    await rejectsWith(
      backend.register(
        'pinned',
        1,
        JSON.stringify({ nodes: { c: { workflow: 'calc', version: 7, input: { x: 1 } } } }),
      ),
      'BAD_REQUEST',
      /launch plan .*calc\/7 is not registered/,
    );
    await rejectsWith(backend.register('bad', 1, '{'), 'BAD_REQUEST', /not JSON/);
  });
});

describe('FlyteBackend connection', () => {
  it('sends the bearer token, and says to check it when FlyteAdmin refuses', async () => {
    const flyte = await startFakeFlyteAdmin({ functions, token: 's3cret' });
    try {
      await rejectsWith(
        createFlyteBackend({ url: flyte.url }).register('calc', 1, JSON.stringify(calc)),
        'UNAVAILABLE',
        /check the Flyte token/,
      );
      const backend = createFlyteBackend({ url: flyte.url, token: 's3cret' });
      await backend.register('calc', 1, JSON.stringify(calc));
      assert.equal(flyte.requests.at(-1)?.headers.authorization, 'Bearer s3cret');
    } finally {
      await flyte.close();
    }
  });

  it('reports an unreachable FlyteAdmin and one that does not answer in time as UNAVAILABLE', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await rejectsWith(
      createFlyteBackend({ url: `http://127.0.0.1:${port}` }).get({ project, domain, name: 'x' }),
      'UNAVAILABLE',
      /cannot reach .*ECONNREFUSED/,
    );
    const silent = createServer(() => {
      // Never answers.
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      await rejectsWith(
        createFlyteBackend({ url, timeoutMs: 200 }).get({ project, domain, name: 'x' }),
        'UNAVAILABLE',
        /no answer within 200 ms/,
      );
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('does not follow redirects: the token never goes to another address', async () => {
    const elsewhere = await startFakeFlyteAdmin({ functions, token: 's3cret' });
    const redirecting = createServer((req, res) => {
      res.writeHead(307, { location: `${elsewhere.url}${req.url ?? '/'}` });
      res.end();
    });
    await new Promise<void>((resolve) => redirecting.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(redirecting.address() as AddressInfo).port}`;
      await rejectsWith(
        createFlyteBackend({ url, token: 's3cret' }).register('calc', 1, JSON.stringify(calc)),
        'UNAVAILABLE',
        /cannot reach/,
      );
      assert.equal(elsewhere.requests.length, 0);
    } finally {
      await new Promise<void>((resolve) => redirecting.close(() => resolve()));
      await elsewhere.close();
    }
  });

  it('keeps credentials in the URL out of every message, and sends them as basic authentication', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const backend = createFlyteBackend({ url: `http://admin:hunter2@127.0.0.1:${port}` });
    const err = await backend.get({ project, domain, name: 'x' }).then(
      () => assert.fail('expected a rejection'),
      (e: unknown) => e as PlatformError,
    );
    assert.equal(err.code, 'UNAVAILABLE');
    assert.doesNotMatch(`${err.message} ${String(err.stack)}`, /hunter2|admin:/);
    assert.match(err.message, /cannot reach http:\/\/127\.0\.0\.1:/);
    assert.throws(
      () => createFlyteBackend({ url: 'ftp://admin:hunter2@flyte' }),
      (e: Error) => /must be http or https/.test(e.message) && !e.message.includes('hunter2'),
    );
    const flyte = await startFakeFlyteAdmin({ functions });
    try {
      const withCredentials = flyte.url.replace('http://', 'http://admin:hunter2@');
      await createFlyteBackend({ url: withCredentials }).register('calc', 1, JSON.stringify(calc));
      const expected = `Basic ${Buffer.from('admin:hunter2').toString('base64')}`;
      assert.equal(flyte.requests.at(-1)?.headers.authorization, expected);
    } finally {
      await flyte.close();
    }
  });

  it('refuses a Flyte URL that is not http or https, and bounds out of range', () => {
    assert.throws(() => createFlyteBackend({ url: 'ftp://flyte' }), /must be http or https/);
    assert.throws(() => createFlyteBackend({ url: 'not a url' }), /is not a URL/);
    assert.throws(() => createFlyteBackend({ url: 'http://flyte', timeoutMs: 0 }), /timeout must be 1-600000 ms/);
    assert.throws(() => createFlyteBackend({ url: 'http://flyte', maxResponseBytes: -1 }), /response bound/);
  });
});

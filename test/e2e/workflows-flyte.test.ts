// The Flyte execution backend selected by configuration: a real `savassan start --workflow-backend flyte --flyte-url`
// process in front of the FlyteAdmin-shaped test server. A deploy is stored in Savassan and registered on FlyteAdmin;
// a launch through `/api/v1/executions` becomes a FlyteAdmin execution whose phase, nodes and outputs Savassan's API
// reads back from there; the token goes from SAVASSAN_FLYTE_TOKEN to FlyteAdmin and nowhere else. Without
// --flyte-url `savassan start` and `savassan gateway` are refused.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import { SavassanClient } from '../../src/client/client.js';
import { startFakeFlyteAdmin, type FakeFlyteAdmin } from '../helpers/fake-flyteadmin.js';
import { runCli, startServer, type ServerProcess } from '../helpers/server-process.js';

const token = 'flyte-secret-token-4d1c';
const code = (source: string) => zipSync({ 'index.js': strToU8(source) });

const calc = {
  inputs: { x: 'number' },
  nodes: {
    a: { function: 'double', input: { n: '$.inputs.x' } },
    b: { function: 'inc', input: { n: '$.nodes.a.output.n' } },
  },
  output: { result: '$.nodes.b.output.n' },
};

describe('workflows on the flyte backend, end to end', () => {
  let flyte: FakeFlyteAdmin;
  let server: ServerProcess;
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as Record<string, unknown> };
  };

  before(async () => {
    flyte = await startFakeFlyteAdmin({
      token,
      functions: {
        double: (input) => ({ n: (input as { n: number }).n * 2 }),
        inc: (input) => ({ n: (input as { n: number }).n + 1 }),
      },
    });
    server = await startServer(
      ['--no-examples', '--workflow-backend', 'flyte', '--flyte-url', flyte.url, '--log-level', 'info'],
      undefined,
      { SAVASSAN_FLYTE_TOKEN: token },
    );
    // Deploys check that the nodes' functions exist in Savassan. These fail if anything here runs them: on this
    // backend FlyteAdmin runs the executions.
    const client = new SavassanClient({ url: server.url });
    await client.deploy('double', code('exports.handler = async () => { throw new Error("ran in Savassan"); };'));
    await client.deploy('inc', code('exports.handler = async () => { throw new Error("ran in Savassan"); };'));
  });

  after(async () => {
    await server?.cleanup();
    await flyte?.close();
  });

  it('says where executions run when it starts', () => {
    assert.match(server.output(), new RegExp(`Workflow executions run on flyte \\(${flyte.url}\\)`));
  });

  it('stores a deploy in Savassan and registers it on FlyteAdmin', async () => {
    const deployed = await call('PUT', '/v1/workflows/calc', calc);
    assert.equal(deployed.status, 201, JSON.stringify(deployed.body));
    assert.equal(deployed.body.version, 1);
    const stored = await call('GET', '/v1/workflows/calc');
    assert.equal(stored.status, 200);
    assert.deepEqual((stored.body.spec as { nodes: object }).nodes, calc.nodes);
    const launchPlan = flyte.launchPlans.get('savassan/development/calc/1');
    assert.ok(launchPlan !== undefined, [...flyte.launchPlans.keys()].join(', '));
    assert.equal(launchPlan.closure?.state, 'ACTIVE');
    assert.ok(flyte.workflows.has('savassan/development/calc/1'));
    assert.equal(flyte.tasks.size, 2);
  });

  it('launches through /api/v1/executions on FlyteAdmin and reads its phase, nodes and outputs back', async () => {
    const launched = await call('POST', '/api/v1/executions', {
      project: 'savassan',
      domain: 'development',
      name: 'calc-run-1',
      spec: { launch_plan: { name: 'calc' } },
      inputs: { x: 20 },
    });
    assert.equal(launched.status, 200, JSON.stringify(launched.body));
    assert.deepEqual(launched.body.id, { project: 'savassan', domain: 'development', name: 'calc-run-1' });
    const created = flyte.requests.filter((r) => r.method === 'POST' && r.path === '/api/v1/executions');
    assert.equal(created.length, 1);
    const request = created[0]!.body as { name: string; spec: { launch_plan: { name: string; version: string } } };
    assert.equal(request.name, 'calc-run-1');
    assert.deepEqual(
      { name: request.spec.launch_plan.name, version: request.spec.launch_plan.version },
      { name: 'calc', version: '1' },
    );
    // The test server moves an execution one phase each time it is read (QUEUED, RUNNING, then its end); the launch
    // itself may have read it once.
    const phases: string[] = [];
    for (let read = 0; read < 10 && !phases.includes('SUCCEEDED'); read += 1) {
      const view = await call('GET', '/api/v1/executions/savassan/development/calc-run-1');
      assert.equal(view.status, 200, JSON.stringify(view.body));
      phases.push((view.body.closure as { phase: string }).phase);
    }
    assert.deepEqual(phases.slice(-2), ['RUNNING', 'SUCCEEDED']);
    const data = await call('GET', '/api/v1/data/executions/savassan/development/calc-run-1');
    assert.deepEqual(data.body, { inputs: { x: 20 }, outputs: { result: 41 } });
    const nodes = await call('GET', '/api/v1/node_executions/savassan/development/calc-run-1');
    const nodeIds = (nodes.body.node_executions as { id: { node_id: string } }[]).map((node) => node.id.node_id);
    assert.deepEqual(nodeIds.filter((id) => id === 'a' || id === 'b').sort(), ['a', 'b']);
    const listed = await call('GET', '/api/v1/executions/savassan/development');
    const names = (listed.body.executions as { id: { name: string } }[]).map((execution) => execution.id.name);
    assert.deepEqual(names, ['calc-run-1']);
  });

  it('sends SAVASSAN_FLYTE_TOKEN to FlyteAdmin and never prints it', () => {
    assert.ok(flyte.requests.length > 0);
    for (const request of flyte.requests) assert.equal(request.headers.authorization, `Bearer ${token}`);
    assert.ok(!server.output().includes(token), server.output());
  });
});

describe('the flyte backend without --flyte-url', () => {
  it('refuses to start, saying what is missing', async () => {
    const result = await runCli('', [
      'start',
      '--port',
      '0',
      '--data-dir',
      '/nonexistent/savassan-flyte-refusal',
      '--sandbox',
      'process',
      '--workflow-backend',
      'flyte',
    ]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /\[INVALID_CONFIG\] --workflow-backend flyte needs --flyte-url URL/);
  });

  it('refuses to start a cluster gateway too', async () => {
    const result = await runCli(
      '',
      ['gateway', '--port', '0', '--data-dir', '/nonexistent/savassan-flyte-refusal', '--workflow-backend', 'flyte'],
      { SAVASSAN_CLUSTER_TOKEN: 'cluster-token-for-the-refusal' },
    );
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /\[INVALID_CONFIG\] --workflow-backend flyte needs --flyte-url URL/);
  });

  it('refuses Flyte options with the builtin backend', async () => {
    const result = await runCli('', [
      'start',
      '--port',
      '0',
      '--data-dir',
      '/nonexistent/savassan-flyte-refusal',
      '--sandbox',
      'process',
      '--flyte-url',
      'http://127.0.0.1:1',
    ]);
    assert.equal(result.code, 1, result.stdout + result.stderr);
    assert.match(result.stderr, /\[INVALID_CONFIG\] --flyte-url applies only to the flyte workflow backend/);
  });
});

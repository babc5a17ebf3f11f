// Workflows end to end against a real `savassan start` process with an API key: deploys and their validation
// (`/v1/workflows`), executions through the Flyte-shaped `/api/v1` (plain and literal inputs, node executions, data,
// pagination, terminate, relaunch, recover, errors as {code, message, kind}), the real CLI, and the gRPC
// ExecutionService through a real @grpc/grpc-js client.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { credentials } from '@grpc/grpc-js';
import { strToU8, zipSync } from 'fflate';
import { SavassanClient } from '../../src/client/client.js';
import type { ExecutionKey, ExecutionView } from '../../src/client/client.js';
import { terminalExecutionPhases } from '../../src/core/ports/workflow-store.js';
import {
  ExecutionServiceClient,
  ExecutionStatus,
  type ExecuteWorkflowRequest,
  type ExecuteWorkflowResponse,
  type GetExecutionResponse,
} from '../../src/gen/savassan/v1/execution.js';
import { bearerMetadata, callUnary } from '../../src/grpc/grpc-transport.js';
import { apiError, eventually, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const key = 'wf-key-1';
const code = (source: string) => zipSync({ 'index.js': strToU8(source) });

const pipeline = {
  description: 'doubles x, then adds one',
  inputs: { x: 'number' },
  nodes: {
    a: { function: 'double', input: { n: '$.inputs.x' } },
    b: { function: 'inc', input: { n: '$.nodes.a.output.n' } },
  },
  output: { result: '$.nodes.b.output.n' },
};

describe('workflows end to end', () => {
  let server: ServerProcess;
  let client: SavassanClient;
  let grpcAddress = '';
  let dir = '';
  const cli = (...args: string[]) => runCli(server.url, args, { SAVASSAN_API_KEY: key });
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...headers,
      },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as Record<string, unknown> };
  };
  const errorOf = (answer: { body: Record<string, unknown> }) => answer.body.error as { code: string; message: string };
  const ended = (id: ExecutionKey): Promise<ExecutionView> =>
    eventually(
      () => client.getExecution(id),
      (view) => terminalExecutionPhases.has(view.closure.phase),
      60_000,
    );
  const launch = (workflow: string, inputs: object, extra: Record<string, unknown> = {}) =>
    call('POST', '/api/v1/executions', {
      project: 'savassan',
      domain: 'development',
      spec: { launch_plan: { name: workflow } },
      inputs,
      ...extra,
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sv-wf-'));
    server = await startServer(['--no-examples', '--grpc-port', '0'], undefined, { SAVASSAN_API_KEY: key });
    const match = /gRPC ExecutionService on (\S+)/.exec(server.output());
    assert.ok(match?.[1] !== undefined, server.output());
    grpcAddress = match[1];
    client = new SavassanClient({ url: server.url, apiKey: key });
    await client.deploy(
      'double',
      code('exports.handler = async (e) => { console.log("doubling", e.n); return { n: e.n * 2 }; };'),
    );
    await client.deploy('inc', code('exports.handler = async (e) => ({ n: e.n + 1 });'));
    await client.deploy('fail', code('exports.handler = async () => { throw new Error("always fails"); };'));
    await client.deploy(
      'slow',
      code('exports.handler = async () => { await new Promise((r) => setTimeout(r, 120000)); return 1; };'),
      { timeoutSeconds: 300 },
    );
  });
  after(async () => {
    await server.cleanup();
    await rm(dir, { recursive: true, force: true });
  });

  it('deploys a workflow: 201 for a new version, 200 for the same spec, versions listed and read', async () => {
    const first = await call('PUT', '/v1/workflows/pipeline', pipeline);
    assert.equal(first.status, 201, JSON.stringify(first.body));
    assert.equal(first.body.version, 1);
    assert.equal(first.body.created, true);
    assert.deepEqual(first.body.spec, pipeline);
    const again = await call('PUT', '/v1/workflows/pipeline', pipeline);
    assert.equal(again.status, 200);
    assert.deepEqual({ version: again.body.version, created: again.body.created }, { version: 1, created: false });
    const changed = { ...pipeline, description: 'the second version' };
    const second = await call('PUT', '/v1/workflows/pipeline', changed);
    assert.equal(second.status, 201);
    assert.equal(second.body.version, 2);

    const latest = await client.getWorkflow('pipeline');
    assert.equal(latest.version, 2);
    assert.deepEqual(
      latest.versions.map((v) => v.version),
      [2, 1],
    );
    assert.deepEqual((await client.getWorkflow('pipeline', 1)).spec, pipeline);
    const listed = (await client.listWorkflows()).workflows.find((w) => w.name === 'pipeline');
    assert.deepEqual(
      { ...listed, createdAt: undefined, updatedAt: undefined },
      {
        name: 'pipeline',
        latestVersion: 2,
        description: 'the second version',
        nodeCount: 2,
        createdAt: undefined,
        updatedAt: undefined,
      },
    );
    const missingVersion = await call('GET', '/v1/workflows/pipeline?version=9');
    assert.equal(missingVersion.status, 404);
    assert.equal(errorOf(missingVersion).code, 'NOT_FOUND');

    const validated = await call('POST', '/v1/workflows/pipeline/validate', pipeline);
    assert.deepEqual(validated.body, { valid: true, nodeCount: 2, order: ['a', 'b'] });

    await client.deployWorkflow('doomed', pipeline);
    assert.equal((await call('DELETE', '/v1/workflows/doomed')).status, 204);
    assert.equal((await call('GET', '/v1/workflows/doomed')).status, 404);
    assert.equal((await call('DELETE', '/v1/workflows/doomed')).status, 404);
  });

  it('refuses bad specs with a 400 naming the node and the path', async () => {
    const cases: [unknown, RegExp][] = [
      [
        {
          nodes: {
            a: { function: 'double', input: '$.nodes.b.output' },
            b: { function: 'inc', input: '$.nodes.a.output' },
          },
        },
        /nodes a -> b -> a form a cycle/,
      ],
      [
        { nodes: { a: { function: 'no-such-function' } } },
        /node a: function: function no-such-function does not exist/,
      ],
      [
        { nodes: { b: { function: 'inc', input: { n: '$.nodes.zz.output.n' } } } },
        /node b: input\.n: \$\.nodes\.zz\.output\.n refers to an unknown node zz/,
      ],
      [
        { nodes: { b: { function: 'inc', input: { n: '$.inputs.nope' } } } },
        /node b: input\.n: \$\.inputs\.nope refers to an unknown input nope/,
      ],
      [
        { inputs: { x: 'number' }, nodes: { m: { map: '$.inputs.x', function: 'inc' } } },
        /node m: map: \$\.inputs\.x maps over input x, declared number, not array/,
      ],
      [{ nodes: { a: { function: 'inc', colour: 'red' } } }, /node a: unknown field colour/],
    ];
    for (const [spec, message] of cases) {
      for (const path of ['/v1/workflows/bad', '/v1/workflows/bad/validate']) {
        const answer = await call(path.endsWith('validate') ? 'POST' : 'PUT', path, spec);
        assert.equal(answer.status, 400, `${path} ${JSON.stringify(spec)}: ${JSON.stringify(answer.body)}`);
        assert.equal(errorOf(answer).code, 'BAD_REQUEST');
        assert.match(errorOf(answer).message, message, JSON.stringify(spec));
      }
    }
    const notJson = await call('PUT', '/v1/workflows/bad', '{"nodes": {');
    assert.equal(notJson.status, 400);
    assert.equal(errorOf(notJson).code, 'BAD_REQUEST');
    assert.equal((await call('GET', '/v1/workflows/bad')).status, 404, 'nothing was stored');
  });

  it('launches with plain and with Flyte literal inputs, and shows the execution, its nodes and its data', async () => {
    const plain = await launch('pipeline', { x: 3 }, { name: 'plain-one' });
    assert.equal(plain.status, 200, JSON.stringify(plain.body));
    assert.deepEqual(plain.body, { id: { project: 'savassan', domain: 'development', name: 'plain-one' } });
    const view = await ended({ project: 'savassan', domain: 'development', name: 'plain-one' });
    assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
    assert.equal(view.spec.launch_plan.name, 'pipeline');
    assert.equal(view.spec.launch_plan.version, '2');
    assert.equal(view.spec.metadata.mode, 'MANUAL');
    const data = await call('GET', '/api/v1/data/executions/savassan/development/plain-one');
    assert.deepEqual(data.body, { inputs: { x: 3 }, outputs: { result: 7 } });

    const nodes = await call('GET', '/api/v1/node_executions/savassan/development/plain-one');
    const list = nodes.body.node_executions as {
      id: { node_id: string };
      closure: { phase: string };
      invocation_ids: string[];
      function?: { name: string };
    }[];
    assert.deepEqual(
      list.map((n) => [n.id.node_id, n.closure.phase, n.function?.name, n.invocation_ids.length]),
      [
        ['a', 'SUCCEEDED', 'double', 1],
        ['b', 'SUCCEEDED', 'inc', 1],
      ],
    );
    const log = await client.invocationLog(list[0]?.invocation_ids[0] ?? '');
    assert.match(log, /doubling 3/);

    const literal = await launch(
      'pipeline',
      { literals: { x: { scalar: { primitive: { integer: '10' } } } } },
      {
        spec: { launch_plan: { name: 'pipeline', version: '1', project: 'savassan', resource_type: 'LAUNCH_PLAN' } },
      },
    );
    assert.equal(literal.status, 200, JSON.stringify(literal.body));
    const literalId = (literal.body as { id: ExecutionKey }).id;
    assert.match(literalId.name, /^[a-z][a-z0-9]{19}$/);
    const literalView = await ended(literalId);
    assert.equal(literalView.closure.phase, 'SUCCEEDED');
    assert.equal(literalView.spec.launch_plan.version, '1');
    assert.deepEqual((await client.executionData(literalId)).outputs, { result: 21 });
  });

  it('pages node executions with ?limit= and token; refuses a limit over 10000 and a token no page gave', async () => {
    const path = '/api/v1/node_executions/savassan/development/plain-one';
    const first = await call('GET', `${path}?limit=1`);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const firstNodes = first.body.node_executions as { id: { node_id: string } }[];
    assert.deepEqual(
      firstNodes.map((n) => n.id.node_id),
      ['a'],
    );
    assert.ok(typeof first.body.token === 'string' && first.body.token !== '');
    const second = await call('GET', `${path}?limit=1&token=${encodeURIComponent(first.body.token)}`);
    assert.deepEqual(
      (second.body.node_executions as { id: { node_id: string } }[]).map((n) => n.id.node_id),
      ['b'],
    );
    assert.equal(second.body.token, '');
    assert.equal((await call('GET', path)).body.token, '');
    assert.equal((await call('GET', `${path}?limit=10001`)).status, 400);
    assert.equal((await call('GET', `${path}?token=not-a-token`)).status, 400);
    assert.equal(
      (await client.nodeExecutions({ project: 'savassan', domain: 'development', name: 'plain-one' })).length,
      2,
    );
  });

  it('refuses a spec nested thousands deep with 400, and a workflow delete while an execution runs it with 409', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 3000; i += 1) deep = [deep];
    const nested = await call('PUT', '/v1/workflows/deep', {
      nodes: { a: { function: 'double', input: { n: deep } } },
    });
    assert.equal(nested.status, 400, JSON.stringify(nested.body));
    assert.match(errorOf(nested).message, /nest more than 64 levels deep/);

    assert.equal((await call('PUT', '/v1/workflows/held', { nodes: { s: { function: 'slow' } } })).status, 201);
    const launched = await launch('held', {}, { name: 'holds-held' });
    assert.equal(launched.status, 200, JSON.stringify(launched.body));
    const refused = await call('DELETE', '/v1/workflows/held');
    assert.equal(refused.status, 409, JSON.stringify(refused.body));
    assert.match(errorOf(refused).message, /in use by the unfinished execution savassan\/development\/holds-held/);
    const id = { project: 'savassan', domain: 'development', name: 'holds-held' };
    assert.equal((await call('DELETE', '/api/v1/executions/savassan/development/holds-held')).status, 200);
    assert.equal((await ended(id)).closure.phase, 'ABORTED');
    assert.equal((await call('DELETE', '/v1/workflows/held')).status, 204);
  });

  it('refuses bad launches with {code, message, kind} errors', async () => {
    const wrongType = await launch('pipeline', { x: 'three' });
    assert.equal(wrongType.status, 400);
    assert.equal(wrongType.body.code, 'BAD_REQUEST');
    assert.equal(wrongType.body.kind, 'USER');
    assert.match(String(wrongType.body.message), /x/);
    const missing = await launch('pipeline', {});
    assert.equal(missing.status, 400);
    assert.match(String(missing.body.message), /x/);
    const badLiteral = await launch('pipeline', { literals: { x: { scalar: { primitive: { integer: 'x' } } } } });
    assert.equal(badLiteral.status, 400);
    assert.match(String(badLiteral.body.message), /inputs\.x\.scalar\.primitive/);
    const unknown = await launch('no-such-workflow', {});
    assert.deepEqual(
      { status: unknown.status, code: unknown.body.code, kind: unknown.body.kind },
      {
        status: 404,
        code: 'NOT_FOUND',
        kind: 'USER',
      },
    );
    const taken = await launch('pipeline', { x: 1 }, { name: 'plain-one' });
    assert.equal(taken.status, 409);
    assert.equal(taken.body.code, 'CONFLICT');
    const badBody = await call('POST', '/api/v1/executions', { project: 'savassan' });
    assert.equal(badBody.status, 400);
    assert.equal(badBody.body.kind, 'USER');
    const noExecution = await call('GET', '/api/v1/executions/savassan/development/nope');
    assert.deepEqual(Object.keys(noExecution.body).sort(), ['code', 'kind', 'message']);
    assert.equal(noExecution.status, 404);
    for (const path of [
      '/api/v1/node_executions/savassan/development/nope',
      '/api/v1/data/executions/savassan/development/nope',
    ]) {
      assert.equal((await call('GET', path)).status, 404, path);
    }
    const unknownQuery = await call('GET', '/api/v1/executions/savassan/development?colour=red');
    assert.equal(unknownQuery.status, 400);
    assert.match(String(unknownQuery.body.message), /colour/);
    const noKey = await call('GET', '/api/v1/executions/savassan/development', undefined, { authorization: '' });
    assert.equal(noKey.status, 401);
    assert.deepEqual({ code: noKey.body.code, kind: noKey.body.kind }, { code: 'UNAUTHORIZED', kind: 'USER' });
  });

  it('lists executions newest first, a page at a time, by workflow', async () => {
    await client.deployWorkflow('listed', {
      inputs: { x: 'number' },
      nodes: { a: { function: 'inc', input: { n: '$.inputs.x' } } },
    });
    const names: string[] = [];
    for (let i = 0; i < 3; i++) {
      names.push((await client.launchExecution({ workflow: 'listed', inputs: { x: i }, name: `listed-${i}` })).id.name);
    }
    const seen: string[] = [];
    let token: string | undefined;
    for (;;) {
      const page = await client.listExecutions({
        workflow: 'listed',
        limit: 2,
        ...(token === undefined ? {} : { token }),
      });
      assert.ok(page.executions.length <= 2);
      seen.push(...page.executions.map((e) => e.id.name));
      if (page.token === '') break;
      token = page.token;
    }
    assert.deepEqual(seen, [...names].reverse());
    const all = await client.listExecutions({ limit: 1000 });
    assert.ok(all.executions.some((e) => e.id.name === 'plain-one'));
    const badLimit = await call('GET', '/api/v1/executions/savassan/development?limit=0');
    assert.equal(badLimit.status, 400);
    const overLimit = await call('GET', '/api/v1/executions/savassan/development?limit=1001');
    assert.equal(overLimit.status, 400);
  });

  it('terminates a running execution (ABORTED), refuses a second terminate, and relaunches it', async () => {
    await client.deployWorkflow('sleepy', { nodes: { s: { function: 'slow' } } });
    const { id } = await client.launchExecution({ workflow: 'sleepy', name: 'sleepy-1' });
    await eventually(
      () => client.nodeExecutions(id),
      (nodes) => nodes.some((n) => n.closure.phase === 'RUNNING'),
      30_000,
    );
    const terminated = await call('DELETE', '/api/v1/executions/savassan/development/sleepy-1', { cause: 'enough' });
    assert.deepEqual(terminated, { status: 200, body: {} });
    const view = await ended(id);
    assert.equal(view.closure.phase, 'ABORTED');
    assert.equal(view.closure.abort_metadata?.cause, 'enough');
    const again = await call('DELETE', '/api/v1/executions/savassan/development/sleepy-1', {});
    assert.equal(again.status, 409);
    assert.deepEqual({ code: again.body.code, kind: again.body.kind }, { code: 'CONFLICT', kind: 'USER' });
    assert.equal((await call('DELETE', '/api/v1/executions/savassan/development/nope', {})).status, 404);

    const relaunched = await call('POST', '/api/v1/executions/relaunch', { id, name: 'sleepy-2' });
    assert.equal(relaunched.status, 200, JSON.stringify(relaunched.body));
    const second = (relaunched.body as { id: ExecutionKey }).id;
    assert.equal(second.name, 'sleepy-2');
    const secondView = await client.getExecution(second);
    assert.equal(secondView.spec.metadata.mode, 'RELAUNCH');
    assert.deepEqual(secondView.spec.metadata.reference_execution, id);
    // Without a body (as curl -X DELETE sends it).
    assert.equal((await call('DELETE', '/api/v1/executions/savassan/development/sleepy-2')).status, 200);
    assert.equal((await ended(second)).closure.phase, 'ABORTED');
    const missing = await call('POST', '/api/v1/executions/relaunch', { id: { ...id, name: 'nope' } });
    assert.equal(missing.status, 404);
  });

  it('recovers a failed execution: succeeded nodes are RECOVERED, not run again', async () => {
    await client.deployWorkflow('fragile', {
      inputs: { x: 'number' },
      nodes: {
        a: { function: 'double', input: { n: '$.inputs.x' } },
        b: { function: 'fail', input: '$.nodes.a.output' },
      },
      output: '$.nodes.b.output',
    });
    const { id } = await client.launchExecution({ workflow: 'fragile', inputs: { x: 2 }, name: 'fragile-1' });
    const failed = await ended(id);
    assert.equal(failed.closure.phase, 'FAILED');
    assert.equal(failed.closure.error?.kind, 'USER');
    const firstNodes = await client.nodeExecutions(id);
    const firstA = firstNodes.find((n) => n.id.node_id === 'a');
    assert.equal(firstA?.closure.phase, 'SUCCEEDED');

    await client.deploy('fail', code('exports.handler = async (e) => ({ fixed: e.n });'));
    const { id: recovered } = await client.recoverExecution(id, 'fragile-2');
    const view = await ended(recovered);
    assert.equal(view.spec.metadata.mode, 'RECOVERED');
    assert.deepEqual(view.spec.metadata.reference_execution, id);
    const nodes = await client.nodeExecutions(recovered);
    const a = nodes.find((n) => n.id.node_id === 'a');
    assert.equal(a?.closure.phase, 'RECOVERED');
    assert.deepEqual(
      a?.invocation_ids,
      firstA?.invocation_ids,
      'a did not run again: it shows the run of the first execution',
    );
    const b = nodes.find((n) => n.id.node_id === 'b');
    assert.equal(b?.attempts.length, 1, 'b ran again');
    assert.equal((await apiError(client.recoverExecution({ ...id, name: 'nope' }))).status, 404);
  });

  it('drives workflows through the CLI', async () => {
    const file = join(dir, 'cli-flow.json');
    await writeFile(file, JSON.stringify(pipeline));
    const deployed = await cli('workflow', 'deploy', file);
    assert.equal(deployed.code, 0, deployed.stderr);
    assert.equal(deployed.stdout.trim(), 'deployed workflow cli-flow version 1');
    const unchanged = await cli('workflow', 'deploy', file, '--name', 'cli-flow');
    assert.equal(unchanged.stdout.trim(), 'workflow cli-flow is unchanged: version 1');
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ nodes: { b: { function: 'inc', input: '$.nodes.zz.output' } } }));
    const refused = await cli('workflow', 'deploy', bad);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^\[BAD_REQUEST\] node b: input.*zz/m);

    const ls = await cli('workflow', 'ls');
    assert.match(ls.stdout, /^NAME\s+VERSION\s+NODES/m);
    assert.match(ls.stdout, /^cli-flow\s+1\s+2\s/m);

    const run = await cli('workflow', 'run', 'cli-flow', '--input', 'x=4', '--exec-name', 'cli-run-1', '--wait');
    assert.equal(run.code, 0, run.stderr + run.stdout);
    assert.match(run.stdout, /^phase\s+SUCCEEDED$/m);
    assert.match(run.stdout, /^a\s+SUCCEEDED\s+1\s/m);
    assert.match(run.stdout, /outputs\s+\{"result":9\}/);

    const started = await cli(
      'workflow',
      'run',
      'cli-flow',
      '--inputs',
      '{"x": 1}',
      '--project',
      'other',
      '--domain',
      'prod',
    );
    assert.equal(started.code, 0, started.stderr);
    const startedId = started.stdout.trim();
    assert.match(startedId, /^other\/prod\/[a-z][a-z0-9]{19}$/);
    await ended({ project: 'other', domain: 'prod', name: startedId.split('/')[2] ?? '' });

    const status = await cli('workflow', 'status', startedId);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^phase\s+SUCCEEDED$/m);
    assert.match(status.stdout, /^NODE\s+PHASE\s+ATTEMPTS\s+DURATION/m);
    assert.match(status.stdout, /^b\s+SUCCEEDED\s+1\s/m);

    const logs = await cli('workflow', 'logs', 'cli-run-1', '--node', 'a');
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /^== a attempt 1 SUCCEEDED \(invocation [0-9a-f-]+\)$/m);
    assert.match(logs.stdout, /doubling 4/);
    assert.doesNotMatch(logs.stdout, /== b /);

    const badInput = await cli('workflow', 'run', 'cli-flow', '--input', 'x=four');
    assert.equal(badInput.code, 1);
    assert.match(badInput.stderr, /^\[BAD_REQUEST\] .*x/m);

    const relaunched = await cli('workflow', 'relaunch', 'savassan/development/cli-run-1', '--exec-name', 'cli-run-2');
    assert.equal(relaunched.stdout.trim(), 'savassan/development/cli-run-2');
    await ended({ project: 'savassan', domain: 'development', name: 'cli-run-2' });
    const recovered = await cli('workflow', 'recover', 'cli-run-1', '--json');
    assert.equal(recovered.code, 0, recovered.stderr);
    const recoveredId = (JSON.parse(recovered.stdout) as { id: ExecutionKey }).id;
    assert.equal((await ended(recoveredId)).closure.phase, 'SUCCEEDED');

    await client.deployWorkflow('cli-sleepy', { nodes: { s: { function: 'slow' } } });
    const sleepy = await cli('workflow', 'run', 'cli-sleepy', '--exec-name', 'cli-sleepy-1');
    assert.equal(sleepy.code, 0, sleepy.stderr);
    const terminated = await cli('workflow', 'terminate', 'cli-sleepy-1', '--cause', 'cli test');
    assert.equal(terminated.stdout.trim(), 'terminated savassan/development/cli-sleepy-1');
    const view = await ended({ project: 'savassan', domain: 'development', name: 'cli-sleepy-1' });
    assert.equal(view.closure.phase, 'ABORTED');
    const twice = await cli('workflow', 'terminate', 'cli-sleepy-1');
    assert.equal(twice.code, 1);
    assert.match(twice.stderr, /^\[CONFLICT\]/m);
    const notFound = await cli('workflow', 'status', 'nope');
    assert.equal(notFound.code, 1);
    assert.match(notFound.stderr, /^\[NOT_FOUND\]/m);
  });

  it('serves ExecuteWorkflow, GetExecution and TerminateExecution over gRPC with the API key', async () => {
    const grpc = new ExecutionServiceClient(grpcAddress, credentials.createInsecure());
    const peer = { peer: `gateway at ${grpcAddress}`, deadlineMs: 10_000 };
    try {
      const execute = (request: Partial<ExecuteWorkflowRequest>, token = key) =>
        callUnary<ExecuteWorkflowRequest, ExecuteWorkflowResponse>(
          grpc.executeWorkflow.bind(grpc),
          {
            workflowId: '',
            flyteWorkflowDefinitionJson: '',
            project: '',
            domain: '',
            inputsJson: '',
            executionName: '',
            ...request,
          },
          bearerMetadata(token),
          { ...peer, method: 'ExecuteWorkflow' },
        );
      const get = (executionId: string) =>
        callUnary<{ project: string; domain: string; executionId: string }, GetExecutionResponse>(
          grpc.getExecution.bind(grpc),
          { project: '', domain: '', executionId },
          bearerMetadata(key),
          { ...peer, method: 'GetExecution' },
        );

      // A deployed workflow.
      const deployed = await execute({ workflowId: 'pipeline', inputsJson: '{"x": 5}', executionName: 'grpc-one' });
      assert.deepEqual(
        { id: deployed.executionId, status: deployed.status, project: deployed.project, domain: deployed.domain },
        {
          id: 'grpc-one',
          status: ExecutionStatus.EXECUTION_STATUS_SUBMITTED,
          project: 'savassan',
          domain: 'development',
        },
      );
      await ended({ project: 'savassan', domain: 'development', name: 'grpc-one' });
      const got = await get('grpc-one');
      assert.equal(got.phase, 'SUCCEEDED');
      assert.equal(got.workflow, 'pipeline');
      assert.deepEqual(JSON.parse(got.outputsJson), { result: 11 });
      assert.deepEqual(
        got.nodes.map((n) => [n.nodeId, n.phase, n.attempts]),
        [
          ['a', 'SUCCEEDED', 1],
          ['b', 'SUCCEEDED', 1],
        ],
      );

      // A definition deployed first, with literal inputs.
      const spec = {
        inputs: { x: 'integer' },
        nodes: { only: { function: 'inc', input: { n: '$.inputs.x' } } },
        output: '$.nodes.only.output.n',
      };
      const defined = await execute({
        workflowId: 'grpc-defined',
        flyteWorkflowDefinitionJson: JSON.stringify(spec),
        inputsJson: JSON.stringify({ literals: { x: { scalar: { primitive: { integer: '41' } } } } }),
      });
      assert.equal(defined.status, ExecutionStatus.EXECUTION_STATUS_SUBMITTED, defined.message);
      assert.equal(defined.workflowVersion, 1);
      assert.deepEqual((await client.getWorkflow('grpc-defined')).spec, spec);
      await ended({ project: 'savassan', domain: 'development', name: defined.executionId });
      assert.equal(
        (await client.executionData({ project: 'savassan', domain: 'development', name: defined.executionId })).outputs,
        42,
      );

      // Faults of the request come back as FAILED.
      const badSpec = await execute({
        workflowId: 'grpc-bad',
        flyteWorkflowDefinitionJson: JSON.stringify({ nodes: { b: { function: 'inc', input: '$.nodes.zz.output' } } }),
      });
      assert.equal(badSpec.status, ExecutionStatus.EXECUTION_STATUS_FAILED);
      assert.equal(badSpec.errorCode, 'BAD_REQUEST');
      assert.match(badSpec.message, /node b: input.*zz/);
      const notJson = await execute({ workflowId: 'grpc-bad', flyteWorkflowDefinitionJson: '{' });
      assert.equal(notJson.status, ExecutionStatus.EXECUTION_STATUS_FAILED);
      assert.match(notJson.message, /flyte_workflow_definition_json is not JSON/);
      const unknown = await execute({ workflowId: 'no-such-workflow' });
      assert.deepEqual([unknown.status, unknown.errorCode], [ExecutionStatus.EXECUTION_STATUS_FAILED, 'NOT_FOUND']);
      const badInputs = await execute({ workflowId: 'pipeline', inputsJson: '{"x": "five"}' });
      assert.deepEqual(
        [badInputs.status, badInputs.errorCode],
        [ExecutionStatus.EXECUTION_STATUS_FAILED, 'BAD_REQUEST'],
      );

      // Terminate.
      const sleepy = await execute({ workflowId: 'sleepy', executionName: 'grpc-sleepy' });
      assert.equal(sleepy.status, ExecutionStatus.EXECUTION_STATUS_SUBMITTED, sleepy.message);
      await callUnary(
        grpc.terminateExecution.bind(grpc),
        { project: '', domain: '', executionId: 'grpc-sleepy', cause: 'grpc' },
        bearerMetadata(key),
        { ...peer, method: 'TerminateExecution' },
      );
      assert.equal(
        (await ended({ project: 'savassan', domain: 'development', name: 'grpc-sleepy' })).closure.phase,
        'ABORTED',
      );
      await assert.rejects(get('nope'), (err: { code?: string }) => err.code === 'NOT_FOUND');

      // Without the key.
      await assert.rejects(
        execute({ workflowId: 'pipeline' }, 'wrong-key'),
        (err: { code?: string }) => err.code === 'UNAUTHORIZED',
      );
    } finally {
      grpc.close();
    }
  });

  it('describes the workflow and execution routes in the OpenAPI document', async () => {
    const doc = (await call('GET', '/v1/openapi.json')).body as {
      paths: Record<string, Record<string, { responses: Record<string, unknown> }>>;
    };
    for (const path of [
      '/v1/workflows',
      '/v1/workflows/{name}',
      '/v1/workflows/{name}/validate',
      '/api/v1/executions',
      '/api/v1/executions/{project}/{domain}/{name}',
      '/api/v1/executions/{project}/{domain}',
      '/api/v1/node_executions/{project}/{domain}/{name}',
      '/api/v1/data/executions/{project}/{domain}/{name}',
      '/api/v1/executions/relaunch',
      '/api/v1/executions/recover',
    ]) {
      assert.ok(doc.paths[path] !== undefined, path);
    }
    const launchErrors = JSON.stringify(doc.paths['/api/v1/executions']?.post?.responses['400']);
    assert.match(launchErrors, /FlyteError/);
  });
});

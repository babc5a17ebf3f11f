// The HTTP API is strict and fully described, against a real `savassan start`: `GET /` says where things are, every
// route refuses a query parameter it does not take (naming it), and the OpenAPI description gives every operation
// its answers, errors included, each with a schema.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { join } from 'node:path';
import { readBundle } from '../../src/client/bundle.js';
import { repoRoot, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

interface Operation {
  summary?: string;
  responses: Record<string, { description: string; content?: Record<string, { schema?: unknown }> }>;
  parameters?: { in: string; name: string }[];
}

interface OpenApi {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { properties?: Record<string, unknown> }> };
}

interface ErrorBody {
  error: { code: string; message: string; parameters?: string[] };
}

describe('a strict, fully described HTTP API', () => {
  let server: ServerProcess;
  let openapi: OpenApi;
  let invocationId: string;
  let zip: string;
  const call = async (method: string, path: string, body?: string) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body }),
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  const error = (text: string) => (JSON.parse(text) as ErrorBody).error;

  before(async () => {
    server = await startServer(['--no-examples']);
    const bundle = await readBundle(join(repoRoot, 'test', 'fixtures', 'e2e', 'probe'));
    zip = Buffer.from(bundle).toString('base64');
    await server.client.deploy('probe', bundle, {});
    invocationId = (await server.client.invoke('probe', {})).invocationId;
    openapi = await server.client.json<OpenApi>('GET', '/v1/openapi.json');
  });
  after(async () => {
    await server.cleanup();
  });

  it('answers GET / with where the description and the probes are', async () => {
    const root = await call('GET', '/');
    assert.equal(root.status, 200);
    assert.match(root.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(JSON.parse(root.text), {
      name: 'savassan',
      api: '/v1/openapi.json',
      health: '/healthz',
      ready: '/readyz',
    });
    assert.ok('/' in openapi.paths, 'GET / is described');
  });

  it('describes every operation with a 2xx and a 4xx answer, each with a schema, errors in the shared schema', () => {
    const operations = Object.entries(openapi.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ name: `${method.toUpperCase()} ${path}`, operation })),
    );
    const names = operations.map(({ name }) => name);
    for (const expected of [
      'GET /',
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
      'GET /v1/openapi.json',
      'POST /v1/functions/{name}/invoke',
      'DELETE /v1/functions/{name}',
    ]) {
      assert.ok(names.includes(expected), `${expected} is described`);
    }
    assert.deepEqual(Object.keys(openapi.components.schemas.Error?.properties ?? {}), ['error']);
    assert.deepEqual(Object.keys(openapi.components.schemas.FlyteError?.properties ?? {}), ['code', 'message', 'kind']);
    for (const { name, operation } of operations) {
      const statuses = Object.keys(operation.responses);
      // A WebSocket route succeeds with 101 Switching Protocols.
      const success = statuses.filter((status) => status.startsWith('2') || status === '101');
      const clientErrors = statuses.filter((status) => status.startsWith('4'));
      assert.ok(success.length > 0, `${name} has a 2xx answer`);
      assert.ok(clientErrors.length > 0, `${name} has a 4xx answer`);
      for (const status of statuses) {
        const response = operation.responses[status]!;
        assert.ok(response.description.length > 0, `${name} ${status} is described`);
        if (status === '204' || status === '101') continue;
        const schemas = Object.values(response.content ?? {}).map((media) => media.schema);
        assert.ok(schemas.length > 0 && schemas.every((schema) => schema !== undefined), `${name} ${status}`);
        if (status.startsWith('4') || status === '500') {
          // The Flyte-shaped API under /api/v1 answers errors as FlyteAdmin's clients read them.
          const shared = name.includes(' /api/v1/') ? 'FlyteError' : 'Error';
          assert.deepEqual(schemas, [{ $ref: `#/components/schemas/${shared}` }], `${name} ${status} is an ${shared}`);
        }
      }
    }
  });

  it('refuses a query parameter a route does not take, naming each, on every route', async () => {
    const pathOf = (template: string) =>
      template
        .replace('{name}', 'probe')
        // A run's id has its own shape (the live route checks it).
        .replace('/v1/intelligence/runs/{id}', `/v1/intelligence/runs/run-${'a'.repeat(26)}`)
        .replace('{id}', invocationId)
        .replace('{alias}', 'beta')
        .replace('{queue}', 'probe-queue')
        .replace('{project}', 'savassan')
        .replace('{domain}', 'development');
    const bodies: Record<string, string> = {
      'PUT /v1/functions/{name}': JSON.stringify({ code: zip }),
      'PUT /v1/functions/{name}/current': JSON.stringify({ version: 1 }),
      'POST /v1/functions/{name}/invoke': '{}',
      'PUT /v1/secrets/{name}': JSON.stringify({ value: 'not-stored' }),
      'PUT /v1/functions/{name}/aliases/{alias}': JSON.stringify({ weights: { '1': 1 } }),
      'POST /v1/functions/{name}/rollouts': JSON.stringify({ version: 1 }),
      'POST /v1/schedules': JSON.stringify({ name: 'probe-schedule', functionName: 'probe', rate: 'rate(1 hour)' }),
      'POST /v1/queues/{queue}/messages': JSON.stringify({ body: 'not-sent' }),
      'POST /v1/triggers': JSON.stringify({ functionName: 'probe', queue: 'probe-queue' }),
      'PUT /v1/functions/{name}/url': JSON.stringify({ auth: 'none' }),
      'PUT /v1/workflows/{name}': JSON.stringify({ nodes: { a: { function: 'probe' } } }),
      'POST /v1/workflows/{name}/validate': JSON.stringify({ nodes: { a: { function: 'probe' } } }),
      'POST /api/v1/executions': JSON.stringify({
        project: 'savassan',
        domain: 'development',
        spec: { launch_plan: { name: 'probe' } },
      }),
      'POST /api/v1/executions/relaunch': JSON.stringify({
        id: { project: 'savassan', domain: 'development', name: 'probe' },
      }),
      'POST /api/v1/executions/recover': JSON.stringify({
        id: { project: 'savassan', domain: 'development', name: 'probe' },
      }),
      'POST /v1/plans': JSON.stringify({ prompt: 'not planned' }),
      'POST /v1/curations': JSON.stringify({ projectId: 'probe', datasetId: 'probe' }),
      'POST /v1/curations/{id}/feedback': JSON.stringify({ feedback: [] }),
      'POST /v1/intelligence/runs': JSON.stringify({ prompt: 'not run', datasetId: 'probe' }),
      'POST /v1/control-plane/upgrade': JSON.stringify({ to: 'not-upgraded' }),
    };
    for (const [template, methods] of Object.entries(openapi.paths)) {
      for (const [method, operation] of Object.entries(methods)) {
        const route = `${method.toUpperCase()} ${template}`;
        const answer = await call(method.toUpperCase(), `${pathOf(template)}?bogus=1&other=`, bodies[route]);
        assert.equal(answer.status, 400, `${route}: ${answer.text}`);
        const flyte = template.startsWith('/api/v1/');
        const { code, message, parameters } = flyte
          ? (JSON.parse(answer.text) as ErrorBody['error'])
          : error(answer.text);
        assert.equal(code, 'BAD_REQUEST', route);
        assert.match(message, /^unknown query parameters bogus, other \(/, route);
        if (!flyte) assert.deepEqual(parameters, ['bogus', 'other'], route);
        const declared = (operation.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
        if (declared.length > 0) assert.match(message, new RegExp(`takes only ${declared.join(', ')}\\)`), route);
        else assert.match(message, /takes no query parameters\)/, route);
      }
    }
    // Refused before anything ran: the function is still there and was invoked once, by `before`.
    const { invocations } = await server.client.json<{ invocations: unknown[] }>(
      'GET',
      '/v1/functions/probe/invocations',
    );
    assert.equal(invocations.length, 1);
    assert.equal((await server.client.getFunction('probe')).currentVersion, 1);
  });

  it('validates async=, and says how to name a version or an alias', async () => {
    const async = await call('POST', '/v1/functions/probe/invoke?async=maybe', '{}');
    assert.equal(async.status, 400);
    assert.match(error(async.text).message, /querystring\/async/);
    assert.equal(async.headers.get('x-savassan-invocation-id'), null, 'nothing ran');
    for (const [method, path, parameter, hint] of [
      ['POST', '/v1/functions/probe/invoke', 'version', /to invoke version N, use \?qualifier=N/],
      ['POST', '/v1/functions/probe/invoke', 'alias', /to invoke through an alias, use \?qualifier=ALIAS/],
      ['GET', '/v1/functions/probe', 'version', /GET \/v1\/functions\/probe\/versions lists the versions/],
      ['GET', '/v1/functions/probe', 'qualifier', /GET \/v1\/functions\/probe\/aliases lists the aliases/],
    ] as const) {
      const answer = await call(method, `${path}?${parameter}=1`, method === 'POST' ? '{}' : undefined);
      assert.equal(answer.status, 400);
      const { message, parameters } = error(answer.text);
      assert.deepEqual(parameters, [parameter]);
      assert.match(message, hint);
    }
  });

  it('keeps the query parameters a route takes, validated', async () => {
    const limited = await server.client.json<{ invocations: unknown[] }>(
      'GET',
      '/v1/functions/probe/invocations?limit=1',
    );
    assert.equal(limited.invocations.length, 1);
    const logs = await call('GET', '/v1/functions/probe/logs?limit=1&follow=0');
    assert.equal(logs.status, 200);
    assert.match(logs.text, new RegExp(`^--- \\S+ ${invocationId} success`));
    for (const query of ['limit=ten', 'follow=maybe', 'limit=1&limit=2']) {
      const answer = await call('GET', `/v1/functions/probe/logs?${query}`);
      assert.equal(answer.status, 400, query);
      assert.match(error(answer.text).message, /querystring\/(limit|follow)/, query);
    }
  });
});

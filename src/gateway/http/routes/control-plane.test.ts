// The control-plane routes on a Fastify instance set up as the gateway's (error answers, route defaults, API keys),
// over a control plane of the cluster's shape and over the standalone one: the view as it is, the handover and upgrade
// answers, the 400s of bad bodies before the control plane is asked, 401 without a key, and 409 for a single process.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import type { ControlPlaneApi } from '../../../core/control-plane-view.js';
import { ClusterControlPlane, buildA, buildB, upgradeSteps } from '../../../../test/helpers/control-plane-fixture.js';
import { apiKeyHook } from '../api-keys.js';
import { errorAnswer } from '../invoke-route.js';
import { routeDefaults, toPlatformError } from '../route-defaults.js';
import { ErrorBody } from '../schemas.js';
import { controlPlaneRoutes, standaloneControlPlane } from './control-plane.js';

const key = 'control-plane-test-key';

async function appFor(api: ControlPlaneApi, apiKeys: string[] = []): Promise<FastifyInstance> {
  const app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
  app.setErrorHandler((err, _request, reply) => {
    const answer = errorAnswer(toPlatformError(err));
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  });
  if (apiKeys.length > 0) app.addHook('onRequest', apiKeyHook(apiKeys));
  app.addSchema(ErrorBody);
  app.addHook('onRoute', routeDefaults({ apiKeysRequired: apiKeys.length > 0 }));
  await app.register(controlPlaneRoutes(api));
  await app.ready();
  return app;
}

const errorOf = (response: { json(): unknown }) =>
  (response.json() as { error: { code: string; message: string } }).error;

describe('the control-plane routes', () => {
  let cluster: ClusterControlPlane;
  let app: FastifyInstance;
  let standalone: FastifyInstance;
  const auth = { authorization: `Bearer ${key}` };
  before(async () => {
    cluster = new ClusterControlPlane();
    app = await appFor(cluster, [key]);
    standalone = await appFor(
      standaloneControlPlane({ startedAt: new Date('2026-12-01T09:00:00Z'), build: buildA, pool: 'redis' }),
    );
  });
  after(async () => {
    await app.close();
    await standalone.close();
  });

  it('GET /v1/control-plane answers the view as the control plane gives it, every field kept', async () => {
    const response = await app.inject({ method: 'GET', url: '/v1/control-plane', headers: auth });
    assert.equal(response.statusCode, 200);
    assert.deepEqual(response.json(), await new ClusterControlPlane().view());
  });

  it('needs an API key on all three routes', async () => {
    for (const [method, url, payload] of [
      ['GET', '/v1/control-plane', undefined],
      ['POST', '/v1/control-plane/handover', {}],
      ['POST', '/v1/control-plane/upgrade', { to: '0.2.0' }],
    ] as const) {
      const response = await app.inject({ method, url, ...(payload === undefined ? {} : { payload }) });
      assert.equal(response.statusCode, 401, `${method} ${url}`);
      assert.equal(errorOf(response).code, 'UNAUTHORIZED');
    }
    assert.deepEqual(cluster.calls, []);
  });

  it('refuses a malformed handover target or body with 400 before asking the control plane', async () => {
    for (const payload of [
      { to: 'a/b' },
      { to: 'a b' },
      { to: 'a\u0007b' },
      { to: '' },
      { to: 'm'.repeat(201) },
      { to: 42 },
      { to: 'manager-b', force: true },
      [],
    ]) {
      const response = await app.inject({ method: 'POST', url: '/v1/control-plane/handover', headers: auth, payload });
      assert.equal(response.statusCode, 400, JSON.stringify(payload));
      assert.equal(errorOf(response).code, 'BAD_REQUEST');
    }
    const slash = await app.inject({
      method: 'POST',
      url: '/v1/control-plane/handover',
      headers: auth,
      payload: { to: 'a/b' },
    });
    assert.match(errorOf(slash).message, /invalid manager id "a\/b": 1 to 200 characters, no "\/", spaces or control/);
    assert.deepEqual(cluster.calls, []);
  });

  it('refuses an upgrade without a target, or one of the wrong length or type, with 400', async () => {
    for (const payload of [{}, { to: '' }, { to: 'x'.repeat(4097) }, { to: 2 }, { to: '0.2.0', now: true }]) {
      const response = await app.inject({ method: 'POST', url: '/v1/control-plane/upgrade', headers: auth, payload });
      assert.equal(response.statusCode, 400, JSON.stringify(payload));
      assert.equal(errorOf(response).code, 'BAD_REQUEST');
    }
    const bare = await app.inject({ method: 'POST', url: '/v1/control-plane/upgrade', headers: auth });
    assert.equal(bare.statusCode, 400);
    assert.deepEqual(cluster.calls, []);
  });

  it('hands over to the most up-to-date follower, or to the one named, and answers 200 {from, to, term, pausedMs}', async () => {
    const bare = await app.inject({ method: 'POST', url: '/v1/control-plane/handover', headers: auth });
    assert.equal(bare.statusCode, 200, bare.body);
    assert.deepEqual(bare.json(), { from: 'manager-a', to: 'manager-c', term: 8, pausedMs: 12 });
    const named = await app.inject({
      method: 'POST',
      url: '/v1/control-plane/handover',
      headers: auth,
      payload: { to: 'manager-a' },
    });
    assert.equal(named.statusCode, 200, named.body);
    assert.deepEqual(named.json(), { from: 'manager-c', to: 'manager-a', term: 9, pausedMs: 12 });
    const view = (await app.inject({ method: 'GET', url: '/v1/control-plane', headers: auth })).json<{
      leader: { id: string; term: number };
      handover: unknown;
    }>();
    assert.equal(view.leader.id, 'manager-a');
    assert.equal(view.leader.term, 9);
    assert.deepEqual(view.handover, {
      state: 'done',
      from: 'manager-c',
      to: 'manager-a',
      at: '2026-12-01T11:00:00.000Z',
      pausedMs: 12,
    });
    const unknown = await app.inject({
      method: 'POST',
      url: '/v1/control-plane/handover',
      headers: auth,
      payload: { to: 'manager-z' },
    });
    assert.equal(unknown.statusCode, 409);
    assert.equal(errorOf(unknown).code, 'CONFLICT');
    assert.deepEqual(cluster.calls, ['handover:', 'handover:manager-a', 'handover:manager-z']);
  });

  it('starts an upgrade with 202 and its status; a second one while it runs is a 409', async () => {
    const started = await app.inject({
      method: 'POST',
      url: '/v1/control-plane/upgrade',
      headers: auth,
      payload: { to: '/opt/savassan/0.2.0' },
    });
    assert.equal(started.statusCode, 202, started.body);
    const status = started.json<Record<string, unknown>>();
    assert.equal(status.target, '/opt/savassan/0.2.0');
    assert.deepEqual(status.to, buildB);
    assert.deepEqual(status.from, [buildA]);
    assert.equal(status.state, 'running');
    assert.equal(status.step, upgradeSteps[0]);
    assert.deepEqual(status.toRetire, [
      { id: 'manager-a', role: 'manager' },
      { id: 'gateway-1', role: 'gateway' },
    ]);
    assert.equal('error' in status, false);
    const again = await app.inject({
      method: 'POST',
      url: '/v1/control-plane/upgrade',
      headers: auth,
      payload: { to: '0.3.0' },
    });
    assert.equal(again.statusCode, 409);
    const view = (await app.inject({ method: 'GET', url: '/v1/control-plane', headers: auth })).json<{
      upgrade: { step: string; started: string[] };
    }>();
    assert.equal(view.upgrade.step, upgradeSteps[1]);
    assert.deepEqual(view.upgrade.started, ['manager-new']);
  });

  it('a single process shows itself leading, and refuses a handover and an upgrade with 409 saying why', async () => {
    const view = await standalone.inject({ method: 'GET', url: '/v1/control-plane' });
    assert.equal(view.statusCode, 200);
    assert.deepEqual(view.json(), {
      mode: 'embedded',
      pool: 'redis',
      leader: {
        id: 'embedded',
        since: '2026-12-01T09:00:00.000Z',
        term: 1,
        build: buildA,
        seq: 0,
        loopDelayMs: null,
      },
      followersWanted: 0,
      followers: [],
      members: [],
      handover: null,
      upgrade: null,
    });
    const handover = await standalone.inject({ method: 'POST', url: '/v1/control-plane/handover', payload: {} });
    assert.equal(handover.statusCode, 409);
    assert.deepEqual(errorOf(handover), {
      code: 'CONFLICT',
      message: 'embedded mode has one process: there is no other manager to hand over to',
    });
    const upgrade = await standalone.inject({
      method: 'POST',
      url: '/v1/control-plane/upgrade',
      payload: { to: '0.2.0' },
    });
    assert.equal(upgrade.statusCode, 409);
    assert.deepEqual(errorOf(upgrade), {
      code: 'CONFLICT',
      message: 'embedded mode upgrades by restarting with the new build',
    });
    // Malformed bodies are refused before the control plane is asked, in embedded mode too.
    const bad = await standalone.inject({ method: 'POST', url: '/v1/control-plane/upgrade', payload: {} });
    assert.equal(bad.statusCode, 400);
  });
});

// `/v1/control-plane` and the `savassan leader` / `savassan upgrade` commands end to end: a real embedded platform
// (its gateway, API keys and OpenAPI description) and the real CLI as a process, against it and against the routes
// served over a control plane of the cluster's shape.
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Fastify from 'fastify';
import type { FastifyInstance } from 'fastify';
import { ApiError, SavassanClient } from '../../src/client/client.js';
import type { ControlPlaneView, UpgradeStatus } from '../../src/client/client.js';
import { controlProtocolVersion } from '../../src/core/build-info.js';
import { startEmbedded } from '../../src/embedded/embedded-platform.js';
import type { EmbeddedPlatform } from '../../src/embedded/embedded-platform.js';
import { apiKeyHook } from '../../src/gateway/http/api-keys.js';
import { errorAnswer } from '../../src/gateway/http/invoke-route.js';
import { routeDefaults, toPlatformError } from '../../src/gateway/http/route-defaults.js';
import { controlPlaneRoutes } from '../../src/gateway/http/routes/control-plane.js';
import { ErrorBody } from '../../src/gateway/http/schemas.js';
import { ClusterControlPlane, failingTarget, flakyTarget, upgradeSteps } from '../helpers/control-plane-fixture.js';
import { repoRoot, runCli } from '../helpers/server-process.js';

const key = 'e2e-control-plane-key';

describe('the control plane in embedded mode', () => {
  let dataDir: string;
  let platform: EmbeddedPlatform;
  let client: SavassanClient;
  const cli = (...args: string[]) => runCli(platform.url, args, { SAVASSAN_API_KEY: key });

  before(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'savassan-control-plane-'));
    platform = await startEmbedded({ dataDir, port: 0, sandbox: 'process', stemCells: false, apiKeys: [key] });
    client = new SavassanClient({ url: platform.url, apiKey: key });
  });
  after(async () => {
    await platform.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('shows the process leading itself, with its build and its event loop delay, behind the API key', async () => {
    await assert.rejects(new SavassanClient({ url: platform.url, apiKey: '' }).controlPlane(), (err: unknown) => {
      assert.ok(err instanceof ApiError);
      assert.equal(err.status, 401);
      return true;
    });
    const { version } = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
    let view: ControlPlaneView = await client.controlPlane();
    // The loop is sampled every 20 ms from the start: ask until a sample is in.
    while (view.leader?.loopDelayMs === null) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      view = await client.controlPlane();
    }
    const { leader, ...rest } = view;
    assert.deepEqual(rest, {
      mode: 'embedded',
      pool: 'memory',
      followersWanted: 0,
      followers: [],
      members: [],
      handover: null,
      upgrade: null,
    });
    assert.ok(leader !== null);
    assert.equal(leader.id, 'embedded');
    assert.equal(leader.term, 1);
    assert.equal(leader.seq, 0);
    assert.deepEqual(leader.build, { version, build: 'dev', protocol: controlProtocolVersion });
    assert.ok(leader.since !== null && !Number.isNaN(Date.parse(leader.since)));
    const delay = leader.loopDelayMs;
    assert.ok(delay !== null);
    assert.ok(delay.p50 >= 0 && delay.p50 <= delay.p99 && delay.p99 <= delay.max, JSON.stringify(delay));
  });

  it('refuses a handover and an upgrade with 409, and a malformed body with 400', async () => {
    await assert.rejects(client.handover(), {
      status: 409,
      code: 'CONFLICT',
      rawMessage: 'embedded mode has one process: there is no other manager to hand over to',
    });
    await assert.rejects(client.upgrade('0.2.0'), {
      status: 409,
      rawMessage: 'embedded mode upgrades by restarting with the new build',
    });
    await assert.rejects(client.handover('manager/b'), { status: 400, code: 'BAD_REQUEST' });
    await assert.rejects(client.upgrade(''), { status: 400, code: 'BAD_REQUEST' });
  });

  it('describes the three routes in the OpenAPI document', async () => {
    const document = await client.json<{ paths: Record<string, Record<string, unknown>> }>('GET', '/v1/openapi.json');
    assert.ok(document.paths['/v1/control-plane']?.get);
    assert.ok(document.paths['/v1/control-plane/handover']?.post);
    const upgrade = document.paths['/v1/control-plane/upgrade']?.post as { responses: Record<string, unknown> };
    assert.ok(upgrade.responses['202']);
    assert.ok(upgrade.responses['401'], 'the API key is required');
  });

  it('savassan leader status prints the leader; handover and upgrade exit 1 with the 409', async () => {
    const status = await cli('leader', 'status');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^mode\s+embedded, pool memory$/m);
    assert.match(status.stdout, /^leader\s+embedded, term 1, since \S+$/m);
    assert.match(status.stdout, /^build\s+\S+ \(build dev, control protocol 1\)$/m);
    assert.match(status.stdout, /^loop delay\s+p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms \(last minute\)$/m);
    assert.match(status.stdout, /^followers \(0 of 0 wanted\)$/m);
    const json = await cli('leader', 'status', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as ControlPlaneView).mode, 'embedded');
    const handover = await cli('leader', 'handover');
    assert.equal(handover.code, 1);
    assert.match(handover.stderr, /\[CONFLICT\] embedded mode has one process/);
    const upgrade = await cli('upgrade', '--to', '0.2.0');
    assert.equal(upgrade.code, 1);
    assert.match(upgrade.stderr, /\[CONFLICT\] embedded mode upgrades by restarting with the new build/);
  });
});

describe('savassan leader and upgrade against a cluster-shaped control plane', () => {
  let app: FastifyInstance;
  let url: string;
  let controlPlane: ClusterControlPlane;
  const cli = (...args: string[]) => runCli(url, args, { SAVASSAN_API_KEY: key });

  before(async () => {
    controlPlane = new ClusterControlPlane();
    app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
    app.setErrorHandler((err, _request, reply) => {
      const answer = errorAnswer(toPlatformError(err));
      return reply.code(answer.status).headers(answer.headers).send(answer.body);
    });
    app.addHook('onRequest', apiKeyHook([key]));
    app.addSchema(ErrorBody);
    app.addHook('onRoute', routeDefaults({ apiKeysRequired: true }));
    await app.register(controlPlaneRoutes(controlPlane));
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await app.close();
  });

  it('leader status shows the leader, the followers with their lag, and the members with their builds', async () => {
    const status = await cli('leader', 'status');
    assert.equal(status.code, 0, status.stderr);
    const lines = status.stdout;
    assert.match(lines, /^mode\s+cluster, pool leader$/m);
    assert.match(lines, /^leader\s+manager-a, term 7, since 2026-12-01T10:00:00.000Z$/m);
    assert.match(lines, /^build\s+0\.1\.0 \(build A, control protocol 1\)$/m);
    assert.match(lines, /^seq\s+120$/m);
    assert.match(lines, /^loop delay\s+p50 0.2 ms, p99 3.5 ms, max 12.25 ms \(last minute\)$/m);
    assert.match(lines, /^handover\s+none$/m);
    assert.match(lines, /^upgrade\s+none$/m);
    assert.match(lines, /^followers \(2 of 2 wanted\)$/m);
    assert.match(lines, /^ID\s+APPLIED\s+LAG\s+REPORTED\s+BUILD\s+SINCE$/m);
    assert.match(lines, /^manager-b\s+118\s+2\s+250 ms ago\s+0\.1\.0 \(A, protocol 1\)\s+2026-12-01T10:00:01.000Z$/m);
    assert.match(lines, /^manager-c\s+120\s+0\s+250 ms ago/m);
    assert.match(lines, /^members \(5\)$/m);
    assert.match(lines, /^manager-a \(leader\)\s+manager\s+0\.1\.0 \(A, protocol 1\)\s+yes\s+10\.0\.0\.1:7100$/m);
    assert.match(lines, /^gateway-1\s+gateway\s+0\.1\.0 \(A, protocol 1\)\s+yes\s+http:\/\/10\.0\.0\.9:8080$/m);
    assert.match(lines, /^agent-old\s+agent\s+-\s+NO\s+10\.0\.0\.20:7000$/m);
    const json = await cli('leader', 'status', '--json');
    assert.deepEqual(JSON.parse(json.stdout), await new ClusterControlPlane().view());
  });

  it('leader handover passes the lead and says so; an unknown target exits 1 with the 409', async () => {
    const handover = await cli('leader', 'handover', '--to', 'manager-b');
    assert.equal(handover.code, 0, handover.stderr);
    assert.equal(handover.stdout, 'leadership passed from manager-a to manager-b (term 8, writes paused 12 ms)\n');
    const json = await cli('leader', 'handover', '--json');
    assert.deepEqual(JSON.parse(json.stdout), { from: 'manager-b', to: 'manager-c', term: 9, pausedMs: 12 });
    const unknown = await cli('leader', 'handover', '--to', 'manager-z');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /\[CONFLICT\] manager-z is not a follower of the leader/);
    const status = await cli('leader', 'status');
    assert.match(status.stdout, /^handover\s+done: manager-b to manager-c at \S+, writes paused 12 ms$/m);
    assert.deepEqual(controlPlane.calls, ['handover:manager-b', 'handover:', 'handover:manager-z']);
  });

  it('upgrade prints each step and exits 0 once it succeeded', async () => {
    const upgrade = await cli('upgrade', '--to', '0.2.0');
    assert.equal(upgrade.code, 0, upgrade.stderr);
    const lines = upgrade.stdout.trimEnd().split('\n');
    assert.deepEqual(lines, [
      `upgrade to 0.2.0 (build B, control protocol 1): running, ${upgradeSteps[0]}`,
      ...upgradeSteps.slice(1),
      'upgrade to 0.2.0 (build B, control protocol 1): succeeded, done',
    ]);
  });

  it('upgrade exits 1 with the failed step and its error', async () => {
    const upgrade = await cli('upgrade', '--to', failingTarget, '--json');
    assert.equal(upgrade.code, 1, upgrade.stderr);
    const end = JSON.parse(upgrade.stdout) as UpgradeStatus;
    assert.equal(end.state, 'failed');
    assert.equal(end.step, upgradeSteps[1]);
    assert.equal(end.error, 'gateway-new did not become ready in 30 s');
    // With --json the steps go to stderr, the result alone to stdout.
    assert.match(upgrade.stderr, /running, start manager 1 of 1/);
    const human = await cli('upgrade', '--to', failingTarget);
    assert.equal(human.code, 1);
    assert.equal(
      human.stdout.trimEnd().split('\n').at(-1),
      `upgrade to ${failingTarget}, 0.2.0 (build B, control protocol 1): failed, at ${upgradeSteps[1]}: ` +
        'gateway-new did not become ready in 30 s',
    );
  });

  it('upgrade keeps asking through a server that answers 503 for a while', async () => {
    const upgrade = await cli('upgrade', '--to', flakyTarget);
    assert.equal(upgrade.code, 0, upgrade.stderr);
    assert.match(upgrade.stderr, /does not answer \(it may be a gateway the upgrade replaces\); asking again/);
    assert.match(upgrade.stdout, /: succeeded, done\n$/);
  });

  it('upgrade --no-wait returns once started', async () => {
    const upgrade = await cli('upgrade', '--to', '/opt/savassan/0.2.0', '--no-wait');
    assert.equal(upgrade.code, 0, upgrade.stderr);
    assert.equal(
      upgrade.stdout,
      `upgrade to /opt/savassan/0.2.0, 0.2.0 (build B, control protocol 1): running, ${upgradeSteps[0]}\n`,
    );
    const again = await cli('upgrade', '--to', '0.3.0', '--no-wait', '--json');
    assert.equal(again.code, 1);
    assert.equal((JSON.parse(again.stdout) as { error: { code: string } }).error.code, 'CONFLICT');
  });
});

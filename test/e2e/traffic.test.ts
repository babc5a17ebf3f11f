// Aliases, qualifiers, weighted and sticky routing, and rollouts promoted or aborted by hand, end to end through the
// HTTP API and the CLI against a real `savassan start` process with real sandbox processes.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { strToU8, zipSync } from 'fflate';
import type { RolloutAnswer } from '../../src/client/client.js';
import { apiError, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { assertNearShare, countBy, pool } from '../helpers/traffic.js';

/** A bundle whose handler answers its tag: each tag deploys as a new version. */
function bundle(tag: string): Uint8Array {
  return zipSync({ 'index.js': strToU8(`exports.handler = async () => ({ tag: ${JSON.stringify(tag)} });`) });
}

interface Hit {
  status: number;
  version: number;
  alias: string | null;
  tag: string | undefined;
  text: string;
}

describe('traffic end to end', () => {
  let server: ServerProcess;
  const api = () => server.client;

  /** One invocation over HTTP (no client-side checks): its status, version, alias and tag. */
  const invoke = async (name: string, query = '', headers: Record<string, string> = {}): Promise<Hit> => {
    const response = await fetch(`${server.url}/v1/functions/${name}/invoke${query}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: '{}',
    });
    const text = await response.text();
    const body = response.status === 200 ? (JSON.parse(text) as { tag: string }) : undefined;
    return {
      status: response.status,
      version: Number(response.headers.get('x-savassan-version')),
      alias: response.headers.get('x-savassan-alias'),
      tag: body?.tag,
      text,
    };
  };
  const call = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${server.url}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    const text = await response.text();
    return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as Record<string, unknown> };
  };
  const errorOf = (answer: { body: Record<string, unknown> }) => answer.body.error as { code: string; message: string };
  /** Deploys versions tagged `${name}-1`, `${name}-2`...: the first one live, the others without traffic. */
  const deployVersions = async (name: string, count: number) => {
    for (let v = 1; v <= count; v++) {
      const answer = await api().deploy(name, bundle(`${name}-${v}`), {}, { promote: v === 1 });
      assert.equal(answer.version.version, v);
    }
  };
  const cli = (...args: string[]) => runCli(server.url, args);

  before(async () => {
    server = await startServer(['--no-examples']);
  });
  after(async () => {
    await server.cleanup();
  });

  it('splits 2,000 invocations of a weighted alias within statistical tolerance', async () => {
    await deployVersions('split', 3);
    const put = await api().putAlias('split', 'live', { '1': 0.7, '2': 0.3 });
    assert.equal(put.created, false);
    assert.deepEqual(put.alias.weights, { '1': 0.7, '2': 0.3 });
    // Without a query string: the gateway's fast path.
    const n = 2000;
    const hits = await pool(n, 8, () => invoke('split'));
    assert.deepEqual(
      hits.filter((hit) => hit.status !== 200),
      [],
    );
    for (const hit of hits) {
      assert.equal(hit.tag, `split-${hit.version}`, 'the header names the version that ran');
      assert.equal(hit.alias, 'live');
    }
    const byVersion = countBy(hits, (hit) => hit.version);
    assert.deepEqual([...byVersion.keys()].sort(), [1, 2]);
    assertNearShare(byVersion.get(1) ?? 0, n, 0.7, 'version 1');
    assertNearShare(byVersion.get(2) ?? 0, n, 0.3, 'version 2');

    // Any number of versions, through a qualifier (the Fastify route).
    const created = await api().putAlias('split', 'three', { '1': 0.5, '2': 0.3, '3': 0.2 });
    assert.equal(created.created, true);
    const three = await pool(1000, 8, () => invoke('split', '?qualifier=three'));
    assert.ok(three.every((hit) => hit.status === 200 && hit.alias === 'three' && hit.tag === `split-${hit.version}`));
    const byThree = countBy(three, (hit) => hit.version);
    for (const [version, share] of [
      [1, 0.5],
      [2, 0.3],
      [3, 0.2],
    ] as const) {
      assertNearShare(byThree.get(version) ?? 0, 1000, share, `version ${version} of three`);
    }
    // Each version's invocations show in /metrics.
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(
      metrics,
      /^savassan_invocations_total\{function="split",version="3",status="success",start="\w+"\} \d+/m,
    );
  });

  it('keeps each sticky key on one version, with the share of keys matching the weights as the canary grows', async () => {
    await deployVersions('sticky', 2);
    await api().putAlias('sticky', 'live', { '1': 0.7, '2': 0.3 }, 'x-user-id');
    const keys = Array.from({ length: 300 }, (_, i) => `user-${i}`);
    /** The version each key runs, invoked three times each (fast path, and through `?qualifier=live`). */
    const versionsOf = async () => {
      const hits = await pool(keys.length * 3, 8, (i) =>
        invoke('sticky', i % 3 === 2 ? '?qualifier=live' : '', { 'x-user-id': keys[i % keys.length]! }),
      );
      const byKey = new Map<string, number>();
      hits.forEach((hit, i) => {
        assert.equal(hit.status, 200, hit.text);
        const key = keys[i % keys.length]!;
        const seen = byKey.get(key);
        assert.ok(seen === undefined || seen === hit.version, `${key} ran versions ${seen} and ${hit.version}`);
        byKey.set(key, hit.version);
      });
      return byKey;
    };
    const at30 = await versionsOf();
    const onCanary = (byKey: Map<string, number>) => keys.filter((key) => byKey.get(key) === 2);
    assertNearShare(onCanary(at30).length, keys.length, 0.3, 'keys on version 2 at 30%');
    assert.deepEqual(await versionsOf(), at30, 'same weights, same versions');

    await api().putAlias('sticky', 'live', { '1': 0.4, '2': 0.6 }, 'x-user-id');
    const at60 = await versionsOf();
    assertNearShare(onCanary(at60).length, keys.length, 0.6, 'keys on version 2 at 60%');
    for (const key of onCanary(at30)) assert.equal(at60.get(key), 2, `${key} stays on the canary as it grows`);

    // Without the header, each invocation picks at random.
    const anonymous = await pool(200, 8, () => invoke('sticky'));
    assert.deepEqual([...countBy(anonymous, (hit) => hit.version).keys()].sort(), [1, 2]);
  });

  it('invokes a version or an alias by qualifier', async () => {
    await deployVersions('qual', 2);
    await api().putAlias('qual', 'beta', { '2': 1 });
    const one = await invoke('qual', '?qualifier=1');
    assert.deepEqual([one.status, one.version, one.tag, one.alias], [200, 1, 'qual-1', null]);
    const two = await invoke('qual', '?qualifier=2');
    assert.deepEqual([two.status, two.version, two.tag, two.alias], [200, 2, 'qual-2', null]);
    const beta = await invoke('qual', '?qualifier=beta');
    assert.deepEqual([beta.status, beta.version, beta.tag, beta.alias], [200, 2, 'qual-2', 'beta']);
    const live = await invoke('qual', '?qualifier=live');
    assert.deepEqual([live.version, live.alias], [1, 'live']);
    const byClient = await api().invoke('qual', {}, { qualifier: 'beta' });
    assert.deepEqual([byClient.version, byClient.alias], [2, 'beta']);
    // Leading zeros are ignored: 02 is version 2.
    const padded = await invoke('qual', '?qualifier=0002');
    assert.deepEqual([padded.status, padded.version, padded.tag, padded.alias], [200, 2, 'qual-2', null]);

    for (const [query, status, message] of [
      ['?qualifier=9', 404, /^function qual has no version 9$/],
      ['?qualifier=nope', 404, /^function qual has no alias nope$/],
      ['?qualifier=Beta!', 400, /qualifier "Beta!" is neither a version number nor an alias name/],
      ['?qualifier=', 400, /qualifier/],
    ] as const) {
      const hit = await invoke('qual', query);
      assert.equal(hit.status, status, query);
      assert.match((JSON.parse(hit.text) as { error: { message: string } }).error.message, message, query);
    }
    const missing = await invoke('nosuch', '?qualifier=live');
    assert.equal(missing.status, 404);
    assert.match(missing.text, /function nosuch not found/);
    // The alias is gone for invokes the moment it is deleted.
    await api().deleteAlias('qual', 'beta');
    assert.equal((await invoke('qual', '?qualifier=beta')).status, 404);
  });

  it("removes a deleted function's per-version series from /metrics", async () => {
    await deployVersions('counted', 2);
    await invoke('counted', '?qualifier=1');
    await invoke('counted', '?qualifier=2');
    await invoke('qual');
    const metrics = async () => (await fetch(`${server.url}/metrics`)).text();
    assert.match(await metrics(), /savassan_invocations_total\{function="counted",version="2"/);
    assert.equal((await call('DELETE', '/v1/functions/counted')).status, 204);
    const after = await metrics();
    assert.doesNotMatch(after, /function="counted"/);
    assert.match(after, /savassan_invocations_total\{function="qual"/, 'other functions keep theirs');
  });

  it('creates a version without traffic with ?promote=false', async () => {
    const first = await api().deploy('quiet', bundle('quiet-1'), {}, { promote: false });
    assert.equal(first.function.currentVersion, 1, "a new function's first version gets the traffic all the same");
    const second = await call('PUT', '/v1/functions/quiet?promote=false', {
      code: Buffer.from(bundle('quiet-2')).toString('base64'),
    });
    assert.equal(second.status, 201);
    assert.equal((second.body.function as { currentVersion: number }).currentVersion, 1);
    assert.deepEqual(
      [(second.body.version as { version: number }).version, (second.body.version as { current: boolean }).current],
      [2, false],
    );
    const hits = await pool(20, 4, () => invoke('quiet'));
    assert.ok(hits.every((hit) => hit.version === 1 && hit.tag === 'quiet-1'));
    assert.equal((await invoke('quiet', '?qualifier=2')).tag, 'quiet-2');
    const { versions } = await api().listVersions('quiet');
    assert.deepEqual(
      versions.map((v) => [v.version, v.current, v.traffic]),
      [
        [1, true, 1],
        [2, false, 0],
      ],
    );
    const stats = versions.find((v) => v.version === 1)!.stats;
    assert.equal(stats.invocations, 20);
    assert.equal(stats.errors, 0);
    assert.ok(typeof stats.p99Ms === 'number');
    assert.equal(versions.find((v) => v.version === 2)!.stats.invocations, 1);
    const bad = await call('PUT', '/v1/functions/quiet?promote=maybe', { code: 'eA==' });
    assert.equal(bad.status, 400);
    assert.match(errorOf(bad).message, /promote/);
  });

  it('promotes and aborts a rollout by hand', async () => {
    await deployVersions('roll', 3);
    const path = '/v1/functions/roll/rollouts';
    const started = await call('POST', path, { version: 2, steps: [10, 50, 100], intervalSeconds: 86_400 });
    assert.equal(started.status, 201);
    const rollout = started.body as unknown as RolloutAnswer;
    assert.equal(rollout.state, 'running');
    assert.deepEqual([rollout.version, rollout.baseline, rollout.alias, rollout.step], [2, 1, 'live', 10]);
    assert.deepEqual(rollout.weights, { '1': 0.9, '2': 0.1 });
    assert.deepEqual(rollout.settings, {
      steps: [10, 50, 100],
      intervalSeconds: 86_400,
      maxErrorRate: 0.01,
      maxP99Ratio: 1.5,
      minRequests: 100,
      rollbackWindowSeconds: 600,
    });
    assert.equal(rollout.endedAt, null);
    const hits = await pool(200, 8, () => invoke('roll'));
    assert.ok(hits.every((hit) => hit.status === 200));
    assert.deepEqual([...countBy(hits, (hit) => hit.version).keys()].sort(), [1, 2], 'both versions serve');

    // While it runs, live moves only through it.
    const second = await call('POST', path, { version: 3 });
    assert.equal(second.status, 409);
    const use = await call('PUT', '/v1/functions/roll/current', { version: 3 });
    assert.equal(use.status, 409);
    const setLive = await call('PUT', '/v1/functions/roll/aliases/live', { weights: { '3': 1 } });
    assert.equal(setLive.status, 409);
    const refused = bundle('roll-4');
    const deploy = await call('PUT', '/v1/functions/roll', { code: Buffer.from(refused).toString('base64') });
    assert.equal(deploy.status, 409);
    assert.match(errorOf(deploy).message, /rollout/);
    const refusedCode = join(
      server.dataDir,
      'blobs',
      'code',
      `${createHash('sha256').update(refused).digest('hex')}.zip`,
    );
    assert.equal(existsSync(refusedCode), false, 'a refused deploy leaves no code behind');

    const promoted = await call('POST', `${path}/${rollout.id}/promote`);
    assert.equal(promoted.status, 200);
    const after = promoted.body as unknown as RolloutAnswer;
    assert.equal(after.state, 'promoted');
    assert.deepEqual(after.weights, { '2': 1 });
    assert.notEqual(after.endedAt, null);
    const last = after.history.at(-1)!;
    assert.equal(last.decision, 'promoted');
    assert.match(last.reason, /by hand/);
    assert.equal((await api().getFunction('roll')).currentVersion, 2);
    assert.ok((await pool(20, 4, () => invoke('roll'))).every((hit) => hit.version === 2));
    for (const verb of ['promote', 'abort']) {
      const again = await call('POST', `${path}/${rollout.id}/${verb}`);
      assert.equal(again.status, 409, verb);
      assert.match(errorOf(again).message, /not running/);
    }

    const third = await call('POST', path, { version: 3, intervalSeconds: 86_400, rollbackWindowSeconds: 5 });
    assert.equal(third.status, 201);
    const canary = third.body as unknown as RolloutAnswer;
    assert.deepEqual([canary.baseline, canary.version], [2, 3]);
    const aborted = await call('POST', `${path}/${canary.id}/abort`);
    assert.equal(aborted.status, 200);
    const afterAbort = aborted.body as unknown as RolloutAnswer;
    assert.equal(afterAbort.state, 'aborted');
    assert.deepEqual(afterAbort.weights, { '2': 1 });
    assert.equal(afterAbort.history.at(-1)!.decision, 'aborted');
    assert.ok((await pool(20, 4, () => invoke('roll'))).every((hit) => hit.version === 2));

    const list = await call('GET', path);
    const rollouts = list.body.rollouts as RolloutAnswer[];
    assert.deepEqual(
      rollouts.map((r) => [r.version, r.state]),
      [
        [3, 'aborted'],
        [2, 'promoted'],
      ],
      'newest first',
    );
    const one = await call('GET', `${path}/${canary.id}`);
    assert.equal((one.body as unknown as RolloutAnswer).state, 'aborted');
    assert.equal((await call('GET', `${path}/nope`)).status, 404);
  });

  it('refuses bad input with a 400, 404 or 409 naming the problem, and changes nothing', async () => {
    await deployVersions('strict', 2);
    await api().putAlias('strict', 'beta', { '1': 0.5, '2': 0.5 });
    const state = async () => ({
      fn: (await api().getFunction('strict')).currentVersion,
      aliases: (await api().listAliases('strict')).aliases.map((a) => [a.name, a.weights, a.stickyHeader]),
      rollouts: (await api().listRollouts('strict')).rollouts.map((r) => [r.id, r.state, r.weights]),
    });
    const before = await state();
    const alias = (name: string) => `/v1/functions/strict/aliases/${name}`;
    const rollouts = '/v1/functions/strict/rollouts';
    const cases: [string, string, unknown, number, string, RegExp][] = [
      [
        'PUT',
        alias('beta'),
        { weights: { '1': 0.9, '2': 0.2 } },
        400,
        'BAD_REQUEST',
        /must sum to 1 \(±0\.001\), got 1\.1/,
      ],
      [
        'PUT',
        alias('beta'),
        { weights: { '1': 1.1, '2': -0.1 } },
        400,
        'BAD_REQUEST',
        /the weight of version 1 must be a number > 0 and <= 1, got 1\.1/,
      ],
      [
        'PUT',
        alias('beta'),
        { weights: { '1': 1, '2': -0.1 } },
        400,
        'BAD_REQUEST',
        /the weight of version 2 must be a number > 0 and <= 1, got -0\.1/,
      ],
      [
        'PUT',
        alias('beta'),
        { weights: { '1': 1, '2': 0 } },
        400,
        'BAD_REQUEST',
        /the weight of version 2 must be a number > 0 and <= 1, got 0/,
      ],
      ['PUT', alias('beta'), { weights: {} }, 400, 'BAD_REQUEST', /at least one version/],
      ['PUT', alias('beta'), { weights: { one: 1 } }, 400, 'BAD_REQUEST', /weights/],
      ['PUT', alias('beta'), { weights: { '12345678901': 1 } }, 400, 'BAD_REQUEST', /weights/],
      [
        'PUT',
        alias('beta'),
        { weights: Object.fromEntries(Array.from({ length: 1001 }, (_, i) => [String(i + 1), 1 / 1001])) },
        400,
        'BAD_REQUEST',
        /weights must NOT have more than 1000 properties/,
      ],
      ['GET', `${rollouts}?limit=101`, undefined, 400, 'BAD_REQUEST', /limit must be from 1 to 100/],
      ['GET', `${rollouts}?limit=0`, undefined, 400, 'BAD_REQUEST', /limit/],
      ['PUT', alias('beta'), { weights: { '1': '1' } }, 400, 'BAD_REQUEST', /weights/],
      ['PUT', alias('beta'), { weights: { '1': 0.5, '7': 0.5 } }, 404, 'NOT_FOUND', /version 7/],
      ['PUT', alias('beta'), { weights: { '1': 1 }, stickyHeader: 'X User' }, 400, 'BAD_REQUEST', /stickyHeader/],
      ['PUT', alias('beta'), { weights: { '1': 1 }, extra: 1 }, 400, 'BAD_REQUEST', /extra|additional/],
      ['PUT', alias('Beta'), { weights: { '1': 1 } }, 400, 'BAD_REQUEST', /invalid alias name "Beta"/],
      ['PUT', alias('12'), { weights: { '1': 1 } }, 400, 'BAD_REQUEST', /invalid alias name "12"/],
      ['PUT', '/v1/functions/none/aliases/beta', { weights: { '1': 1 } }, 404, 'NOT_FOUND', /none/],
      ['GET', alias('nope'), undefined, 404, 'NOT_FOUND', /has no alias nope/],
      ['DELETE', alias('nope'), undefined, 404, 'NOT_FOUND', /has no alias nope/],
      ['DELETE', alias('live'), undefined, 409, 'CONFLICT', /live/],
      ['GET', '/v1/functions/none/aliases', undefined, 404, 'NOT_FOUND', /function none not found/],
      ['POST', rollouts, { version: 1 }, 409, 'CONFLICT', /./],
      ['POST', rollouts, { version: 9 }, 404, 'NOT_FOUND', /version 9/],
      ['POST', rollouts, { version: 2, alias: 'nope' }, 404, 'NOT_FOUND', /nope/],
      ['POST', '/v1/functions/none/rollouts', { version: 2 }, 404, 'NOT_FOUND', /none/],
      ['POST', rollouts, { version: 2, steps: [50, 10, 100] }, 400, 'BAD_REQUEST', /steps must increase strictly/],
      ['POST', rollouts, { version: 2, steps: [10, 50] }, 400, 'BAD_REQUEST', /steps must end at 100/],
      ['POST', rollouts, { version: 2, steps: [] }, 400, 'BAD_REQUEST', /steps/],
      ['POST', rollouts, { version: 2, steps: [0, 100] }, 400, 'BAD_REQUEST', /steps/],
      ['POST', rollouts, { version: 2, intervalSeconds: 0 }, 400, 'BAD_REQUEST', /intervalSeconds/],
      ['POST', rollouts, { version: 2, maxErrorRate: 2 }, 400, 'BAD_REQUEST', /maxErrorRate/],
      ['POST', rollouts, { version: 2, maxErrorRate: -1 }, 400, 'BAD_REQUEST', /maxErrorRate/],
      ['POST', rollouts, { version: 2, maxP99Ratio: 0.5 }, 400, 'BAD_REQUEST', /maxP99Ratio/],
      ['POST', rollouts, { version: 2, minRequests: 0 }, 400, 'BAD_REQUEST', /minRequests/],
      ['POST', rollouts, { version: 2, rollbackWindowSeconds: -1 }, 400, 'BAD_REQUEST', /rollbackWindowSeconds/],
      ['POST', rollouts, { version: 2, alias: 'Bad' }, 400, 'BAD_REQUEST', /invalid alias name/],
      ['POST', rollouts, { version: 2, surprise: true }, 400, 'BAD_REQUEST', /surprise|additional/],
      ['POST', rollouts, {}, 400, 'BAD_REQUEST', /version/],
      ['POST', `${rollouts}/nope/promote`, undefined, 404, 'NOT_FOUND', /rollout nope/],
      ['POST', `${rollouts}/nope/abort`, undefined, 404, 'NOT_FOUND', /rollout nope/],
    ];
    for (const [method, path, body, status, code, message] of cases) {
      const what = `${method} ${path} ${JSON.stringify(body)}`;
      const answer = await call(method, path, body);
      assert.equal(answer.status, status, `${what}: ${JSON.stringify(answer.body)}`);
      assert.equal(errorOf(answer).code, code, what);
      assert.match(errorOf(answer).message, message, what);
    }
    assert.deepEqual(await state(), before);

    // One rollout at a time: a second one is refused while the first runs, and changes nothing either.
    const first = await api().startRollout('strict', { version: 2, intervalSeconds: 86_400 });
    const during = await state();
    const secondOnBeta = await apiError(api().startRollout('strict', { version: 1, alias: 'beta' }));
    assert.equal(secondOnBeta.status, 409);
    assert.match(secondOnBeta.rawMessage, /running/);
    assert.deepEqual(await state(), during);
    await api().abortRollout('strict', first.id);
    const second = await api().startRollout('strict', { version: 2, intervalSeconds: 86_400 });
    await api().abortRollout('strict', second.id);
    const newest = await call('GET', `${rollouts}?limit=1`);
    assert.equal(newest.status, 200);
    assert.deepEqual(
      (newest.body.rollouts as RolloutAnswer[]).map((r) => r.id),
      [second.id],
    );
    assert.deepEqual(
      (await api().listRollouts('strict', { limit: 2 })).rollouts.map((r) => r.id),
      [second.id, first.id],
    );
  });

  it('drives aliases, qualifiers, deploys and rollouts from the CLI', async () => {
    const dir = join(server.dataDir, 'cli-fn');
    const { mkdir } = await import('node:fs/promises');
    const write = async (tag: string) => {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'index.js'), `exports.handler = async () => ({ tag: ${JSON.stringify(tag)} });`);
    };
    await write('cli-1');
    assert.equal((await cli('deploy', 'clif', dir)).code, 0);
    await write('cli-2');
    const quiet = await cli('deploy', 'clif', dir, '--no-promote');
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(quiet.stdout, /deployed clif version 2 \(code \w+, without traffic\)/);
    assert.deepEqual(JSON.parse((await cli('invoke', 'clif')).stdout), { tag: 'cli-1' });
    const byVersion = await cli('invoke', 'clif', '--qualifier', '2', '-v');
    assert.deepEqual(JSON.parse(byVersion.stdout), { tag: 'cli-2' });
    assert.match(byVersion.stderr, /version 2\)/);

    const set = await cli('alias', 'set', 'clif', 'beta', '1=0.9', '2=0.1', '--sticky-header', 'x-user-id');
    assert.equal(set.code, 0, set.stderr);
    assert.match(set.stdout, /created alias beta of clif: 1=0\.9 2=0\.1, sticky on x-user-id/);
    const viaAlias = await cli('invoke', 'clif', '--qualifier', 'beta', '--json');
    const facts = JSON.parse(viaAlias.stdout) as { alias: string; version: number };
    assert.equal(facts.alias, 'beta');
    const verbose = await cli('invoke', 'clif', '--qualifier', 'beta', '-v');
    assert.match(verbose.stderr, /\((cold|warm), version [12] of alias beta\)/);
    const ls = await cli('alias', 'ls', 'clif');
    assert.match(ls.stdout, /^ALIAS\s+WEIGHTS\s+STICKY HEADER/m);
    assert.match(ls.stdout, /^beta\s+1=0\.9 2=0\.1\s+x-user-id/m);
    assert.match(ls.stdout, /^live\s+1=1\s+-/m);
    const lsJson = JSON.parse((await cli('alias', 'ls', 'clif', '--json')).stdout) as { aliases: { name: string }[] };
    assert.deepEqual(
      lsJson.aliases.map((a) => a.name),
      ['beta', 'live'],
    );
    const badPair = await cli('alias', 'set', 'clif', 'beta', '1:0.5');
    assert.equal(badPair.code, 1);
    assert.match(badPair.stderr, /^\[BAD_REQUEST\] expected VERSION=WEIGHT \(like 2=0\.1\), got 1:0\.5$/m);
    const badSum = await cli('alias', 'set', 'clif', 'beta', '1=0.5', '2=0.6');
    assert.equal(badSum.code, 1);
    assert.match(badSum.stderr, /^\[BAD_REQUEST\] weights must sum to 1 \(±0\.001\), got 1\.1/m);
    const rm = await cli('alias', 'rm', 'clif', 'beta');
    assert.equal(rm.code, 0, rm.stderr);
    assert.match(rm.stdout, /deleted alias beta of clif/);
    const rmLive = await cli('alias', 'rm', 'clif', 'live');
    assert.equal(rmLive.code, 1);
    assert.match(rmLive.stderr, /^\[CONFLICT\]/m);

    const start = await cli(
      'rollout',
      'start',
      'clif',
      '2',
      '--steps',
      '20,100',
      '--interval',
      '86400',
      '--max-error-rate',
      '0.05',
      '--max-p99-ratio',
      '2',
      '--min-requests',
      '50',
      '--rollback-window',
      '60',
    );
    assert.equal(start.code, 0, start.stderr);
    assert.match(start.stdout, /rollout \S+ of clif \(live\): running at 20%, version 2 over 1; weights 1=0\.8 2=0\.2/);
    const status = await cli('rollout', 'status', 'clif');
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /steps \[20\] 100/);
    assert.match(
      status.stdout,
      /every 86400 s once the canary has 50 requests; fails past \+0\.05 error rate or 2x p99/,
    );
    assert.match(status.stdout, /^AT\s+STEP\s+DECISION\s+CANARY\s+BASELINE\s+REASON/m);
    const json = JSON.parse((await cli('rollout', 'status', 'clif', '--json')).stdout) as RolloutAnswer;
    assert.deepEqual(
      [json.state, json.settings.rollbackWindowSeconds, json.settings.maxP99Ratio, json.steps],
      ['running', 60, 2, [20, 100]],
    );
    const promote = await cli('rollout', 'promote', 'clif');
    assert.equal(promote.code, 0, promote.stderr);
    assert.match(promote.stdout, /promoted at 100%, version 2 over 1; weights 2=1/);
    const none = await cli('rollout', 'abort', 'clif');
    assert.equal(none.code, 1);
    assert.match(
      none.stderr,
      /^\[CONFLICT\] no rollout of clif is running \(the last one, of version 2, was promoted\)$/m,
    );
    const promotedStatus = await cli('rollout', 'status', 'clif');
    assert.match(promotedStatus.stdout, /promoted\s+.*promoted by hand/);

    await write('cli-3');
    const canary = await cli('deploy', 'clif', dir, '--canary', '5', '--rollback-window', '30');
    assert.equal(canary.code, 0, canary.stderr);
    assert.match(canary.stdout, /deployed clif version 3 \(code \w+, without traffic\)/);
    assert.match(canary.stdout, /running at 5%, version 3 over 2; weights 2=0\.95 3=0\.05/);
    const canaryJson = JSON.parse((await cli('rollout', 'status', 'clif', '--json')).stdout) as RolloutAnswer;
    assert.deepEqual([canaryJson.steps, canaryJson.settings.rollbackWindowSeconds], [[5, 10, 50, 100], 30]);
    const abort = await cli('rollout', 'abort', 'clif', '--json');
    assert.equal(abort.code, 0, abort.stderr);
    assert.equal((JSON.parse(abort.stdout) as RolloutAnswer).state, 'aborted');
    assert.deepEqual(JSON.parse((await cli('invoke', 'clif')).stdout), { tag: 'cli-2' });

    const versions = await cli('versions', 'clif');
    assert.equal(versions.code, 0, versions.stderr);
    assert.match(versions.stdout, /^VERSION\s+CURRENT\s+TRAFFIC\s+INVOCATIONS\s+ERRORS\s+P99/m);
    // Its p99 is of warm calls: '-' where both of its calls were its sandboxes' first.
    assert.match(versions.stdout, /^2\s+\*\s+100%\s+\d+\s+0\s+(?:[\d.]+ms|-)\s/m);
    assert.match(versions.stdout, /^3\s+0%\s+0\s+0\s+-/m);
    const rollbackWindowAlone = await cli('deploy', 'clif', dir, '--rollback-window', '30');
    assert.equal(rollbackWindowAlone.code, 1);
    assert.match(rollbackWindowAlone.stderr, /--rollback-window goes with --canary/);
    const badCanary = await cli('deploy', 'clif', dir, '--canary', '0');
    assert.equal(badCanary.code, 1);
    assert.match(badCanary.stderr, /whole percent from 1 to 100/);
  });
});

// A real cluster on one machine: 3 agent hosts in network namespaces (ip netns + veth), etcd, Redis, PostgreSQL
// and S3 (s3rver), 2 managers and 2 gateways, each its own `savassan` process. Invocations spread across the
// nodes; a rollout goes on where it stood after SIGKILL of the leading manager, both gateways following its weights,
// and a rolled-back canary runs through neither gateway; SIGKILL of an agent under load loses no acknowledged
// record, the node leaves within its lease TTL and errors stop; an etcd restart is survived; asynchronous events
// queued on Redis through a gateway SIGKILLed while they run are finished by another gateway's dispatcher; a
// schedule fires on, each tick once, after SIGKILL of the leading manager.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { strToU8, zipSync } from 'fflate';
import { Metadata, credentials } from '@grpc/grpc-js';
import { readBundle } from '../../src/client/bundle.js';
import { SavassanClient, type AsyncInvocationAnswer } from '../../src/client/client.js';
import type { EtcdServer } from '../kit/etcd-server.js';
import type { RedisServer } from '../kit/redis-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import {
  ExecutionServiceClient,
  ExecutionStatus,
  type ExecuteWorkflowRequest,
  type ExecuteWorkflowResponse,
} from '../../src/gen/savassan/v1/execution.js';
import { callUnary } from '../../src/grpc/grpc-transport.js';
import { clusterSkipReason, track, type Proc } from '../helpers/cluster-processes.js';
import {
  electionLeader,
  startClusterServices,
  startNetnsAgents,
  type ClusterServices,
} from '../helpers/cluster-rig.js';
import { eventually, runCli } from '../helpers/server-process.js';
import { assertNearShare, countBy, pool } from '../helpers/traffic.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(repoRoot, 'bin', 'savassan.js');
const echo = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
const leaseTtlSeconds = 2;

describe('a 3-node cluster with 2 gateways and 2 managers', { skip: clusterSkipReason({ netns: true }) }, () => {
  let services: ClusterServices;
  let etcd: EtcdServer;
  let redis: RedisServer;
  let postgres: SqlTestServer;
  let root: string;
  const agents: Proc[] = [];
  const others: Proc[] = [];
  const gateways: SavassanClient[] = [];
  const gatewayUrls: string[] = [];
  /** Where gateway 0 serves the gRPC ExecutionService. */
  let grpcAddress = '';
  /** How managers and gateways are started: environment, common flags, and the metadata database's name. */
  let roleEnv: NodeJS.ProcessEnv;
  let commonArgs: string[];
  let database: string;

  /** Starts manager `i` (`manager-i`); manager 1 announces itself in JSON. */
  const startManager = (i: number): Proc => {
    const args = [cli, 'manager', '--id', `manager-${i}`, '--data-dir', join(root, `manager-${i}`)];
    if (i === 1) args.push('--json');
    return track(`manager ${i}`, spawn(process.execPath, [...args, ...commonArgs], { env: roleEnv }));
  };
  /** The id of the manager that leads the control plane: the oldest key of etcd's election under `leader/`. */
  const leaderId = (): Promise<string> => electionLeader(etcd);

  /**
   * Deploys once a node has room to try the function: the instances of a function deleted by the test before leave
   * their nodes a moment after.
   */
  const deployWhenRoom = (gateway: SavassanClient, ...args: Parameters<SavassanClient['deploy']>) =>
    eventually(
      () => gateway.deploy(...args),
      () => true,
      20_000,
    );

  before(async () => {
    services = await startClusterServices({ prefix: 'sv-cluster', hosts: 3, redis: true, bucket: 'cluster' });
    ({ etcd, postgres, root, database, env: roleEnv, common: commonArgs } = services);
    redis = services.redis!;
    const env = roleEnv;
    const common = commonArgs;
    await startNetnsAgents(services, agents, { cli, capacity: 8, leaseTtlSeconds });
    for (const i of [0, 1]) others.push(startManager(i));
    for (const i of [0, 1]) {
      const args = [cli, 'gateway', '--port', '0', '--data-dir', join(root, `gateway-${i}`), ...common];
      if (i === 1) args.push('--json');
      else args.push('--grpc-port', '0');
      const gateway = track(`gateway ${i}`, spawn(process.execPath, args, { env }));
      others.push(gateway);
      if (i === 0) {
        const [, url = '', grpc = ''] = await gateway.waitFor(
          /listening on (http:\/\/[^\s;]+); gRPC ExecutionService on (\S+)/,
        );
        gatewayUrls.push(url);
        grpcAddress = grpc;
      } else {
        const [, url = ''] = await gateway.waitFor(/^\{"role":"gateway","id":"[^"]+","address":"(http:\/\/[^"]+)"\}$/m);
        gatewayUrls.push(url);
      }
      gateways.push(new SavassanClient({ url: gatewayUrls[i] ?? '' }));
    }
    await others[0]!.waitFor(/is running/);
    await others[1]!.waitFor(/^\{"role":"manager","id":"manager-1","address":null\}$/m);
  });

  after(async () => {
    await Promise.all([...others, ...agents].map((proc) => proc.stop()));
    await services?.stop();
  });

  it('lists the three nodes with their capacity, through the API and the CLI', async () => {
    const nodes = await eventually(
      async () => (await gateways[0]!.listNodes()).nodes,
      (list) => list.length === 3,
      10_000,
    );
    assert.deepEqual(nodes.map((n) => n.nodeId).sort(), ['node-0', 'node-1', 'node-2']);
    // Each node reports what its sandbox runtime enforces (here `process`: memory by V8's heap limit, no filesystem).
    for (const node of nodes) {
      assert.equal(node.enforcement?.['filesystem']?.enforced, false, node.nodeId);
      assert.equal(typeof node.enforcement?.['memory']?.mechanism, 'string', node.nodeId);
      assert.equal(typeof node.enforcement?.['freezing']?.enforced, 'boolean', node.nodeId);
    }
    // The leader pushed its routing table to both gateways (they registered under gateways/ in etcd).
    for (const gateway of gateways) {
      const routed = await eventually(
        async () => (await gateway.listNodes()).nodes.map((n) => n.routed === true),
        (flags) => flags.length === 3 && flags.every(Boolean),
        10_000,
      );
      assert.deepEqual(routed, [true, true, true], 'every node is in the routing table pushed to this gateway');
    }
    const cliOut = await runCli(gatewayUrls[1]!, ['nodes']);
    assert.equal(cliOut.code, 0, cliOut.stderr);
    for (const id of ['node-0', 'node-1', 'node-2']) assert.match(cliOut.stdout, new RegExp(id));
  });

  it('GET /v1/cluster names the leader, since when, and the routing table each gateway holds', async () => {
    const leader = await leaderId();
    for (const gateway of gateways) {
      const view = await eventually(
        () =>
          gateway.json<{
            mode: string;
            leader: { id: string; since: string | null } | null;
            routing: { version: number; nodes: string[]; entries: unknown[] } | null;
          }>('GET', '/v1/cluster'),
        (answer) => answer.routing !== null && answer.routing.nodes.length === 3,
        10_000,
      );
      assert.equal(view.mode, 'cluster');
      assert.equal(view.leader?.id, leader);
      assert.ok(view.leader.since !== null && Date.parse(view.leader.since) <= Date.now(), 'elected before now');
      assert.deepEqual(view.routing?.nodes, ['node-0', 'node-1', 'node-2']);
      assert.ok((view.routing?.version ?? 0) > 0);
    }
  });

  it('deploys through one gateway, invokes through both, and spreads sandboxes across the nodes', async () => {
    // Nine instances kept warm on nodes that take 8 each: however the load below meets them, two nodes hold them.
    await gateways[0]!.deploy('echo', await readBundle(echo), { maxInstances: 9, minInstances: 9 });
    await eventually(
      async () => (await gateways[0]!.listNodes()).nodes.reduce((sum, node) => sum + node.sandboxes, 0),
      (sandboxes) => sandboxes >= 9,
      20_000,
    );
    const results = await Promise.all(
      Array.from({ length: 36 }, (_, i) => gateways[i % 2]!.invoke('echo', { i, sleepMs: 100 })),
    );
    // Each gateway reads its own records at once; the other sees them once committed (journalled, then batched).
    const records = await Promise.all(results.map((r, i) => gateways[i % 2]!.getInvocation(r.invocationId)));
    const nodes = new Set(records.map((record) => record.nodeId));
    assert.ok(nodes.size >= 2, `sandboxes ran on ${[...nodes].join(', ')}`);
  });

  it("runs a workflow launched over one gateway's gRPC ExecutionService on the leading manager", async () => {
    await deployWhenRoom(
      gateways[1]!,
      'wf-inc',
      zipSync({ 'index.js': strToU8('exports.handler = async (e) => ({ n: e.n + 1 });') }),
    );
    const grpc = new ExecutionServiceClient(grpcAddress, credentials.createInsecure());
    try {
      const spec = { inputs: { x: 'number' }, nodes: { a: { function: 'wf-inc', input: { n: '$.inputs.x' } } } };
      const answer = await callUnary<ExecuteWorkflowRequest, ExecuteWorkflowResponse>(
        grpc.executeWorkflow.bind(grpc),
        {
          workflowId: 'cluster-flow',
          flyteWorkflowDefinitionJson: JSON.stringify({ ...spec, output: '$.nodes.a.output.n' }),
          project: '',
          domain: '',
          inputsJson: '{"x": 1}',
          executionName: 'cluster-run',
        },
        new Metadata(),
        { peer: `gateway 0 at ${grpcAddress}`, method: 'ExecuteWorkflow', deadlineMs: 10_000 },
      );
      assert.equal(answer.status, ExecutionStatus.EXECUTION_STATUS_SUBMITTED, answer.message);
      const id = { project: 'savassan', domain: 'development', name: 'cluster-run' };
      const view = await eventually(
        () => gateways[1]!.getExecution(id),
        (v) => v.closure.phase === 'SUCCEEDED' || v.closure.phase === 'FAILED',
        60_000,
      );
      assert.equal(view.closure.phase, 'SUCCEEDED', JSON.stringify(view));
      assert.equal((await gateways[0]!.executionData(id)).outputs, 2);
    } finally {
      grpc.close();
      // Its sandbox would take a place the rollouts below need on these 8-sandbox nodes.
      await gateways[1]!.deleteFunction('wf-inc');
    }
  });

  it('never serves a function deleted during an invocation to its re-created successor', async () => {
    const bundle = (marker: string): Uint8Array =>
      zipSync({
        'index.js': strToU8(`exports.handler = async (event) => {
  await new Promise((resolve) => setTimeout(resolve, event.sleepMs ?? 0));
  return { code: ${JSON.stringify(marker)}, secret: process.env.SECRET };
};`),
      });
    const answer = async (gateway: SavassanClient, event = {}) =>
      JSON.parse((await gateway.invoke('recreated', event)).payload) as { code: string; secret: string };
    await gateways[0]!.deploy('recreated', bundle('old-code'), { env: { SECRET: 'old-secret' }, maxInstances: 1 });
    assert.deepEqual(await answer(gateways[1]!), { code: 'old-code', secret: 'old-secret' });
    // Running on the one warm instance through gateway 1 while gateway 0 deletes and re-creates the function.
    const busy = answer(gateways[1]!, { sleepMs: 1500 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    await gateways[0]!.deleteFunction('recreated');
    await gateways[0]!.deploy('recreated', bundle('new-code'), { env: { SECRET: 'new-secret' }, maxInstances: 1 });
    assert.deepEqual(await busy, { code: 'old-code', secret: 'old-secret' });
    // Gateway 1 resolved the old function at least 1.5 s ago, past its 1 s cache.
    for (let i = 0; i < 4; i++) {
      assert.deepEqual(await answer(gateways[i % 2]!), { code: 'new-code', secret: 'new-secret' }, `invocation ${i}`);
    }
  });

  describe('a rollout', () => {
    const name = 'canary';
    /**
     * The code of version `version` (each its own, or a deploy changes nothing): it answers after 20 ms, so that the
     * host's jitter stays far under the p99 ratio's limit, or fails.
     */
    const versionCode = (version: number, fails = false): Uint8Array =>
      zipSync({
        'index.js': strToU8(`exports.handler = async () => {
  await new Promise((resolve) => setTimeout(resolve, 20));
  ${fails ? "throw new Error('broken canary');" : `return { version: ${version} };`}
};`),
      });
    /** One invocation through gateway `gateway` (0 or 1): its status and the version that ran. */
    const hit = async (gateway: number, qualifier?: string) => {
      const query = qualifier === undefined ? '' : `?qualifier=${qualifier}`;
      const response = await fetch(`${gatewayUrls[gateway]}/v1/functions/${name}/invoke${query}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      const text = await response.text();
      return { gateway, status: response.status, version: Number(response.headers.get('x-savassan-version')), text };
    };
    type Hit = Awaited<ReturnType<typeof hit>>;
    /** `n` invocations, half through each gateway, 8 at a time. */
    const spread = (n: number, qualifier?: string): Promise<Hit[]> => pool(n, 8, (i) => hit(i % 2, qualifier));
    const succeeded = (hits: Hit[], what: string): void =>
      assert.deepEqual(
        hits.filter((h) => h.status !== 200).map((h) => `${h.status} ${h.text}`),
        [],
        `${what}: every invocation succeeds`,
      );
    /** Through each gateway, the canary (version 2) ran its share of the invocations, the baseline the rest. */
    const assertFollows = (hits: Hit[], share: number, what: string): void => {
      succeeded(hits, what);
      assert.deepEqual([...countBy(hits, (h) => h.version).keys()].sort(), [1, 2], what);
      for (const gateway of [0, 1]) {
        const through = hits.filter((h) => h.gateway === gateway);
        const canary = through.filter((h) => h.version === 2).length;
        assertNearShare(canary, through.length, share, `${what}, canary through gateway ${gateway}`);
      }
    };
    /** Longer than a gateway's resolution cache (1 s): what a gateway cached before the last change has expired. */
    const settle = () => new Promise((resolve) => setTimeout(resolve, 1100));

    // Its instances would take the room that the tests below need on two nodes.
    after(() => gateways[0]!.deleteFunction(name).catch(() => undefined));

    it('goes on after SIGKILL of the leading manager: the other one resumes it, both gateways follow', async () => {
      // The driver leaves a step only with minRequests canary invocations since the step began: the samples below
      // (at most 107 and 127 on the canary, at 5 standard deviations) hold their step, invocations of version 2 by
      // number move it on.
      const minRequests = 150;
      await gateways[0]!.deploy(name, versionCode(1), { minInstances: 2, maxInstances: 4 });
      await gateways[0]!.deploy(name, versionCode(2), {}, { promote: false });
      const started = await gateways[0]!.startRollout(name, {
        version: 2,
        steps: [30, 60, 100],
        intervalSeconds: 2,
        minRequests,
        maxP99Ratio: 100,
        rollbackWindowSeconds: 0,
      });
      assert.deepEqual([started.state, started.baseline, started.weights], ['running', 1, { '1': 0.7, '2': 0.3 }]);
      const rollout = () => gateways[1]!.getRollout(name, started.id);
      /** Waits until the rollout leaves step `stepIndex` (or ends). */
      const past = (stepIndex: number) =>
        eventually(rollout, (r) => r.stepIndex > stepIndex || r.state !== 'running', 30_000);

      assertFollows(await spread(240), 0.3, 'at the 30% step');
      succeeded(await spread(minRequests, '2'), 'version 2 by number');
      const second = await past(0);
      assert.deepEqual([second.state, second.stepIndex, second.weights], ['running', 1, { '1': 0.4, '2': 0.6 }]);

      // The leader dies without a word: its election key outlives it by the leader TTL, then the other one leads.
      const leader = await leaderId();
      const [, leading = ''] = /^manager-([01])$/.exec(leader) ?? [];
      assert.notEqual(leading, '', `the leader is ${leader}`);
      const survivor = `manager-${1 - Number(leading)}`;
      await others[Number(leading)]!.stop('SIGKILL');

      await settle();
      assertFollows(await spread(160), 0.6, 'at the 60% step, the leader dead');
      succeeded(await spread(minRequests, '2'), 'version 2 by number');
      const last = await past(1);
      assert.deepEqual([last.state, last.stepIndex, last.weights], ['running', 2, { '2': 1 }]);
      assert.equal(await leaderId(), survivor, 'the other manager leads');

      await settle();
      const at100 = await spread(minRequests);
      succeeded(at100, 'at the 100% step');
      assert.deepEqual([...countBy(at100, (h) => h.version).keys()], [2], 'at the 100% step');
      const promoted = await past(2);
      assert.deepEqual([promoted.state, promoted.weights], ['promoted', { '2': 1 }]);
      // Where the dead leader left it: no step judged twice, none skipped.
      assert.deepEqual(
        promoted.history.map((event) => `${event.decision} ${event.step}`),
        ['started 30', 'advanced 30', 'advanced 60', 'promoted 100'],
      );
      await settle();
      const later = await spread(60);
      succeeded(later, 'after the promotion');
      assert.deepEqual([...countBy(later, (h) => h.version).keys()], [2], 'after the promotion');

      // Back to two managers for the tests below; the restarted one campaigns behind the leader.
      const restarted = startManager(Number(leading));
      others.push(restarted);
      await restarted.waitFor(/is running|^\{"role":"manager"/m);
    });

    it('rolled back by the leader, its canary runs through neither gateway', async () => {
      await gateways[1]!.deploy(name, versionCode(3, true), {}, { promote: false });
      const started = await gateways[1]!.startRollout(name, {
        version: 3,
        steps: [30, 100],
        intervalSeconds: 3600,
        minRequests: 20,
        maxP99Ratio: 100,
      });
      assert.equal(started.baseline, 2);
      // Started through gateway 1: gateway 0 sees the change once what it cached of the function expires.
      await settle();
      // Load through both gateways until the canary's failures get it rolled back.
      const during: Hit[] = [];
      let rollout = started;
      for (let round = 0; round < 50 && rollout.state === 'running'; round++) {
        during.push(...(await spread(60)));
        rollout = await gateways[0]!.getRollout(name, started.id);
      }
      assert.equal(rollout.state, 'rolled_back', JSON.stringify(rollout.history));
      assert.deepEqual(rollout.weights, { '2': 1 });
      assert.match(rollout.history.at(-1)?.reason ?? '', /^canary error rate/);
      for (const gateway of [0, 1]) {
        const canary = during.filter((h) => h.gateway === gateway && h.version === 3);
        assert.ok(canary.length > 0, `gateway ${gateway} ran the canary during the rollout`);
        assert.ok(canary.every((h) => h.status !== 200));
      }

      await settle();
      const later = await spread(100);
      succeeded(later, 'after the rollback');
      assert.deepEqual([...countBy(later, (h) => h.version).keys()], [2], 'after the rollback');
    });
  });

  it('survives SIGKILL of an agent under load: no acknowledged record lost, the node leaves, errors stop', async () => {
    const acknowledged: { id: string; by: SavassanClient }[] = [];
    const failures: { at: number; message: string }[] = [];
    let killedAt = 0;
    let running = true;
    const worker = async (client: SavassanClient): Promise<void> => {
      while (running) {
        try {
          acknowledged.push({ id: (await client.invoke('echo', { sleepMs: 20 })).invocationId, by: client });
        } catch (err) {
          failures.push({ at: Date.now(), message: String(err) });
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    };
    const load = Promise.all([0, 1, 0, 1].map((i) => worker(gateways[i]!)));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    killedAt = Date.now();
    await agents[0]!.stop('SIGKILL');
    const left = await eventually(
      async () => (await gateways[1]!.listNodes()).nodes.map((n) => n.nodeId),
      (ids) => !ids.includes('node-0'),
      (leaseTtlSeconds + 3) * 1000,
    );
    assert.ok(!left.includes('node-0'), `node-0 still listed ${Date.now() - killedAt} ms after the kill`);
    const leftAfterMs = Date.now() - killedAt;
    // Errors must stop: after the node left (plus a moment for the pool purge), every request succeeds.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const quietFrom = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    running = false;
    await load;
    const late = failures.filter((f) => f.at >= quietFrom);
    assert.deepEqual(late, [], `errors after the node left (${leftAfterMs} ms after the kill)`);
    assert.ok(acknowledged.length > 20, `only ${acknowledged.length} invocations acknowledged`);
    for (const { id, by } of acknowledged) {
      const record = await by.getInvocation(id);
      assert.equal(record.id, id);
    }
  });

  it('survives an etcd restart', async () => {
    await etcd.kill();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await etcd.restart();
    const nodes = await eventually(
      async () => (await gateways[0]!.listNodes()).nodes.map((n) => n.nodeId).sort(),
      (ids) => ids.length === 2,
      15_000,
    );
    assert.deepEqual(nodes, ['node-1', 'node-2']);
    const answer = await gateways[1]!.invoke('echo', { after: 'etcd restart' });
    assert.ok(answer.invocationId !== '');
    await gateways[0]!.deploy('echo2', await readBundle(echo), {});
    assert.ok((await gateways[0]!.invoke('echo2', {})).invocationId !== '');
  });

  it('a gateway killed with SIGKILL while its records wait in its journal commits them when it starts again', async () => {
    const session = await postgres.session(database);
    const ids: string[] = [];
    try {
      // Inserts into invocations wait behind this lock, reads of functions do not: invocations are answered, their
      // records acknowledged from the gateway's journal, and none can be committed.
      await session.query('begin');
      await session.query('lock table invocations in exclusive mode');
      for (let i = 0; i < 3; i++) ids.push((await gateways[0]!.invoke('echo', { i })).invocationId);
      await others[2]!.stop('SIGKILL');
    } finally {
      await session.query('rollback');
      await session.close();
    }
    const args = [cli, 'gateway', '--port', '0', '--data-dir', join(root, 'gateway-0'), ...commonArgs];
    const restarted = track('gateway 0, restarted', spawn(process.execPath, args, { env: roleEnv }));
    others.push(restarted);
    const [, url = ''] = await restarted.waitFor(/listening on (http:\/\/\S+)/);
    // Committed before the gateway listens: both gateways read them.
    for (const client of [new SavassanClient({ url }), gateways[1]!]) {
      for (const id of ids) assert.equal((await client.getInvocation(id)).id, id);
    }
  });

  it('finishes the events of a gateway killed with SIGKILL while they run: another gateway dispatches them', async (t) => {
    // A third gateway, `--queue-wait 1`: what its dispatcher receives is hidden for the function's timeout plus 6 s.
    const dataDir = join(root, 'gateway-2');
    const args = [cli, 'gateway', '--port', '0', '--queue-wait', '1', '--data-dir', dataDir, ...commonArgs];
    const doomed = track('gateway 2', spawn(process.execPath, args, { env: roleEnv }));
    others.push(doomed);
    const [, url = ''] = await doomed.waitFor(/listening on (http:\/\/\S+)/);
    const through = new SavassanClient({ url });
    const steady = zipSync({
      'index.js': strToU8('exports.handler = async () => { await new Promise((r) => setTimeout(r, 300)); return 1; };'),
    });
    await deployWhenRoom(through, 'steady', steady, { timeoutSeconds: 1, asyncConcurrency: 2, maxInstances: 4 });
    const answersOf = (client: SavassanClient) =>
      Promise.all(ids.map((id) => client.getAsyncInvocation(id) as Promise<AsyncInvocationAnswer>));
    const ids: string[] = [];
    // Queued on Redis (the cluster's invocation queue); each submit wakes this gateway's dispatcher first.
    for (let i = 0; i < 24; i++) ids.push((await through.invokeAsync('steady', { i })).invocationId);
    await eventually(
      () => answersOf(through),
      (answers) => answers.some((a) => a.state === 'running'),
      10_000,
    );
    await doomed.stop('SIGKILL');

    const settled = await eventually(
      () => answersOf(gateways[1]!),
      (answers) => answers.every((a) => a.state !== 'queued' && a.state !== 'running'),
      60_000,
    );
    const unfinished = settled.filter((a) => a.state !== 'succeeded').map((a) => `${a.invocationId} ${a.state}`);
    assert.deepEqual(unfinished, [], 'every accepted event succeeds');
    // A delivery that left no attempt died with the gateway; the event was delivered again.
    const redelivered = settled.filter((a) => a.deliveryCount > a.attempts.length).length;
    assert.ok(redelivered >= 1, 'an event running on the killed gateway was delivered again');

    // Started again, the killed gateway commits the records its journal holds: every success names one.
    const restarted = track('gateway 2, restarted', spawn(process.execPath, args, { env: roleEnv }));
    others.push(restarted);
    await restarted.waitFor(/listening on/);
    for (const answer of settled) {
      const id = answer.attempts.at(-1)?.invocationId ?? '';
      assert.equal((await gateways[1]!.getInvocation(id)).status, 'success', answer.invocationId);
    }
    const records = (await gateways[1]!.listInvocations('steady', 1000)).invocations.length;
    const earlier = settled.flatMap((a) => a.attempts.slice(0, -1).map((attempt) => attempt.status));
    const extraAttempts = settled.reduce((sum, a) => sum + a.attempts.length - 1, 0);
    t.diagnostic(
      `${ids.length} events; ${redelivered} delivered again, ${extraAttempts} attempts beyond one (${earlier.join(', ') || 'none'}), ` +
        `${records - ids.length} invocation records beyond one per event`,
    );
    await restarted.stop();
    await gateways[1]!.deleteFunction('steady');
  });

  it('fires a rate(1 second) schedule on after SIGKILL of the leading manager, each tick once', async (t) => {
    const ticker = zipSync({ 'index.js': strToU8('exports.handler = async () => 1;') });
    await deployWhenRoom(gateways[1]!, 'ticker', ticker, {});
    const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 });
    // Each tick's submit leaves its idempotency key `schedule:NAME:TICK` on Redis, naming the event it queued.
    const prefix = 'savassan:iq:key:6:ticker:schedule:every-second:';
    const ticks = async (): Promise<Map<number, string>> => {
      const keys = await redis.keys(prefix);
      const events = keys.length === 0 ? [] : await admin.mget(...keys);
      return new Map(keys.map((key, i) => [Date.parse(key.slice(prefix.length)), events[i] ?? '']));
    };
    const tickerEvents = async (): Promise<number> => {
      const keys = await redis.keys('savassan:iq:event:');
      return (await Promise.all(keys.map((key) => admin.hget(key, 'fn')))).filter((fn) => fn === 'ticker').length;
    };
    try {
      await gateways[1]!.createSchedule({ name: 'every-second', functionName: 'ticker', rate: 'rate(1 second)' });
      await eventually(ticks, (fired) => fired.size >= 3, 15_000);
      const leader = await leaderId();
      const running = (proc: Proc) => proc.child.exitCode === null && proc.child.signalCode === null;
      const leading = others.find((proc) => proc.name === leader.replace('-', ' ') && running(proc));
      assert.ok(leading !== undefined, `the leader ${leader} runs`);
      await leading.stop('SIGKILL');
      const killedAt = Date.now();
      const successor = await eventually(leaderId, (id) => id !== '' && id !== leader, 30_000);
      assert.notEqual(successor, leader, 'the other manager leads');
      const ledAt = Date.now();
      const fired = await eventually(ticks, (all) => [...all.keys()].filter((at) => at > ledAt).length >= 3, 30_000);
      assert.ok([...fired.keys()].filter((at) => at > ledAt).length >= 3, 'ticks go on under the new leader');

      await gateways[1]!.deleteSchedule('every-second');
      // No tick queued twice: as many events of the function as ticks, each tick its own.
      const [last, events] = await eventually(
        async () => [await ticks(), await tickerEvents()] as const,
        ([all, count]) => all.size === count,
        10_000,
      );
      assert.equal(events, last.size, 'one event per tick');
      assert.equal(new Set(last.values()).size, last.size, 'each tick names its own event');
      const settled = await eventually(
        () =>
          Promise.all(
            [...last.values()].map((id) => gateways[1]!.getAsyncInvocation(id) as Promise<AsyncInvocationAnswer>),
          ),
        (answers) => answers.every((a) => a.state === 'succeeded'),
        30_000,
      );
      assert.deepEqual(
        new Set(settled.map((a) => `${a.state} ${a.source}`)),
        new Set(['succeeded schedule:every-second']),
      );
      const times = [...last.keys()].sort((a, b) => a - b);
      // Missed while no manager led: only the latest missed tick fires (and perhaps one the new leader fired on time
      // before it was seen leading), not one per missed second.
      const gap = times.filter((at) => at > killedAt && at <= ledAt).length;
      assert.ok(gap <= 2, `${gap} ticks fired for the time between the kill and the new leader`);
      t.diagnostic(
        `${times.length} ticks; ${gap} fired for the ${Math.round((ledAt - killedAt) / 1000)} s between the kill and the new leader`,
      );
    } finally {
      admin.disconnect();
    }
  });
});

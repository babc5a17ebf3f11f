// How fast a rollback reaches every gateway of a cluster: a canary that fails every call is rolled out on the
// `live` alias while clients keep calling through each gateway; the leader judges it failed as soon as it has its
// minimum of calls, and every gateway must stop sending it traffic. Measured per gateway and trial: the time from
// the decision (the `rolled_back` entry of the rollout's history, stamped by the leader on the same host clock) to
// the last request that gateway still sent to the canary (0 when none was sent after the decision).
import { Agent } from 'node:http';
import type { SavassanClient } from '../src/client/client.js';
import { post } from './http-post.mjs';
import { round, summarise } from './load.js';

export interface RollbackOptions {
  /** Deploys and rollouts go through this one. */
  client: SavassanClient;
  /** Every gateway of the cluster, by base URL. */
  gatewayUrls: readonly string[];
  healthy: Uint8Array;
  failing: Uint8Array;
  trials: number;
}

/** Callers per gateway during a trial. */
const callersPerGateway = 4;
/** Calls go on this long after the rollback is seen, to catch a gateway that still sends canary traffic. */
const tailMs = 1500;
const functionName = 'rollback-probe';

const now = (): number => performance.timeOrigin + performance.now();

export async function measureRollbackPropagation(options: RollbackOptions) {
  const { client, gatewayUrls } = options;
  await client.deploy(functionName, options.healthy, { maxInstances: 16 });
  const lagsMs: number[] = [];
  const canaryCallsAfter: number[] = [];
  let failedCalls = 0;
  try {
    for (let trial = 0; trial < options.trials; trial++) {
      // A new failing version per trial (its setting differs), without traffic until the rollout gives it some.
      const canary = (
        await client.deploy(functionName, options.failing, { env: { TRIAL: String(trial) } }, { promote: false })
      ).version.version;
      let stop = false;
      const sent: { gateway: number; at: number; version: number }[] = [];
      const agents = gatewayUrls.map(() => new Agent({ keepAlive: true, maxSockets: callersPerGateway }));
      const callers = gatewayUrls.flatMap((url, gateway) => {
        const target = new URL(`${url}/v1/functions/${functionName}/invoke`);
        return Array.from({ length: callersPerGateway }, async () => {
          while (!stop) {
            const at = now();
            const hit = await post(agents[gateway]!, target, '{}').catch(() => null);
            if (hit === null) failedCalls += 1;
            else sent.push({ gateway, at, version: Number(hit.headers['x-savassan-version']) });
          }
        });
      });
      const rollout = await client.startRollout(functionName, {
        version: canary,
        steps: [50, 100],
        intervalSeconds: 3600,
        minRequests: 20,
        rollbackWindowSeconds: 0,
      });
      let decidedAt: number | null = null;
      for (const deadline = Date.now() + 60_000; decidedAt === null && Date.now() < deadline;) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        const seen = await client.getRollout(functionName, rollout.id);
        const decision = seen.history.find((event) => event.decision === 'rolled_back');
        if (decision !== undefined) decidedAt = Date.parse(decision.at);
        else if (seen.state !== 'running') throw new Error(`the failing canary ended ${seen.state}, not rolled back`);
      }
      await new Promise((resolve) => setTimeout(resolve, tailMs));
      stop = true;
      await Promise.all(callers);
      for (const agent of agents) agent.destroy();
      if (decidedAt === null) throw new Error('the failing canary was not rolled back within 60 s');
      for (let gateway = 0; gateway < gatewayUrls.length; gateway++) {
        const late = sent.filter((call) => call.gateway === gateway && call.version === canary && call.at > decidedAt);
        canaryCallsAfter.push(late.length);
        lagsMs.push(late.length === 0 ? 0 : Math.max(...late.map((call) => call.at)) - decidedAt);
      }
    }
  } finally {
    await client.deleteFunction(functionName);
  }
  return {
    note: 'a canary failing every call, steps [50, 100], minRequests 20; per gateway and trial: ms from the leader’s rollback decision to the last request that gateway still sent to the canary (0: none after the decision)',
    gateways: gatewayUrls.length,
    trials: options.trials,
    lagMs: summarise(lagsMs.map((lag) => round(lag, 1))),
    canaryCallsAfterDecision: canaryCallsAfter,
    connectionErrors: failedCalls,
    target: 'p99 ≤ 1 s in cluster mode',
  };
}

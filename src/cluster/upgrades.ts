// `savassan upgrade` in a cluster: which Infrastructure adapter starts the new build's processes, and the Fleet
// the upgrade driver moves (the managers and gateways etcd lists, asked to leave over gRPC).
import { join, resolve } from 'node:path';
import { KubernetesInfrastructure } from '../adapters/kubernetes/kubernetes-infrastructure.js';
import { LocalSupervisor } from '../adapters/local-supervisor/local-supervisor.js';
import { buildInfoClaim, compatibleBuilds, describeBuild, type BuildInfo } from '../core/build-info.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Cluster } from '../core/ports/cluster.js';
import type { ControlProcess } from '../core/ports/infrastructure.js';
import type { ControlNode } from '../control-plane/control-node.js';
import { UpgradeDriver, type Fleet } from '../control-plane/upgrade-driver.js';
import { shutdownGateway } from '../gateway/grpc-routing.js';
import type { EtcdControlDirectory } from './control-directory.js';

/**
 * A process of another control protocol cannot join: refuse at start, naming both builds, rather than fail on its
 * first call to the leader.
 */
export async function refuseIncompatibleLeader(
  nodes: Cluster,
  managers: Cluster,
  build: BuildInfo,
  role: 'manager' | 'gateway',
): Promise<void> {
  const leader = await nodes.leader();
  if (leader === null) return;
  const entry = (await managers.registry.list()).find((info) => info.nodeId === leader.id);
  const leaderBuild = buildInfoClaim(entry?.build);
  if (leaderBuild === undefined || compatibleBuilds(leaderBuild, build)) return;
  throw new PlatformError(
    'INVALID_CONFIG',
    `this ${role} runs ${describeBuild(build)}, but the cluster's leader ${leader.id} runs ` +
      `${describeBuild(leaderBuild)}: processes of different control protocols cannot work together; ` +
      'upgrade the cluster with `savassan upgrade --to …` between builds of one protocol',
  );
}

/** How `savassan upgrade` starts processes: on this host, or through Kubernetes. */
export type UpgradeSettings =
  | { infrastructure: 'local'; buildsDir: string }
  | { infrastructure: 'kubernetes'; imageRepository: string; namespace?: string | undefined };

/** The leader's upgrade driver: the Infrastructure adapter the settings name, moving the fleet etcd lists. */
export function createUpgrades(options: {
  settings: UpgradeSettings | undefined;
  node: ControlNode;
  directory: EtcdControlDirectory;
  dataDir: string;
  token: string;
  build: BuildInfo;
  logger: Logger;
}): UpgradeDriver {
  const { node, directory, token, logger } = options;
  const settings = options.settings ?? { infrastructure: 'local', buildsDir: defaultBuildsDir };
  const infrastructure =
    settings.infrastructure === 'local'
      ? new LocalSupervisor({
          buildsDir: settings.buildsDir,
          root: join(resolve(options.dataDir), 'upgrade'),
          env: process.env,
          logger,
        })
      : new KubernetesInfrastructure({
          imageRepository: settings.imageRepository,
          namespace: settings.namespace,
          logger,
        });
  const controlProcesses = async (): Promise<(ControlProcess & { endpoint: string })[]> =>
    (await directory.members()).flatMap((member) =>
      member.role === 'agent' || member.build === null
        ? []
        : [{ id: member.id, role: member.role, build: member.build, args: member.args, endpoint: member.endpoint }],
    );
  const fleet: Fleet = {
    processes: controlProcesses,
    async waitJoined(id, build, timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const joined = (await controlProcesses()).find((p) => p.id === id && p.build.build === build.build);
        // A manager has joined once it follows this leader and is close behind it.
        const lag = joined?.role === 'manager' ? node.followerLag(id) : 0;
        if (joined !== undefined && lag !== null && lag <= caughtUpLag) return;
        if (Date.now() >= deadline) {
          throw new PlatformError(
            'UNAVAILABLE',
            joined === undefined
              ? `${id} did not register within ${Math.round(timeoutMs / 1000)} s`
              : `${id} registered but did not catch up with the leader within ${Math.round(timeoutMs / 1000)} s`,
          );
        }
        await sleep(pollMs);
      }
    },
    async handoverTo(id) {
      await node.handover(id);
    },
    async shutdown(process, reason) {
      const found = (await controlProcesses()).find((p) => p.id === process.id);
      if (found === undefined) return;
      if (found.role === 'manager') await directory.client(found.id, found.endpoint).shutdown(reason);
      else await shutdownGateway({ gatewayId: found.id, address: found.endpoint }, token, reason);
      const deadline = Date.now() + leaveTimeoutMs;
      while ((await controlProcesses()).some((p) => p.id === process.id)) {
        if (Date.now() >= deadline) {
          throw new PlatformError('UNAVAILABLE', `${process.id} was asked to leave but is still registered`);
        }
        await sleep(pollMs);
      }
    },
  };
  return new UpgradeDriver({
    infrastructure,
    fleet,
    status: {
      get: () => node.held?.upgrade ?? null,
      set: (status) => node.held?.setUpgrade(status),
    },
    self: { id: node.id, build: options.build },
    logger,
  });
}

/** Where versions are installed when `--builds-dir` is not given. */
export const defaultBuildsDir = '/opt/savassan/builds';
/** A manager of the new build is caught up once it is at most this many changes behind. */
const caughtUpLag = 100;
const pollMs = 200;
/** How long a process asked to leave may take to deregister (it drains first). */
const leaveTimeoutMs = 60_000;

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

// `savassan upgrade` in a cluster: which Infrastructure adapter starts the new build's processes, and the Fleet
// the upgrade driver moves (the managers and gateways etcd lists, asked to leave over gRPC).
import { buildInfoClaim, compatibleBuilds, describeBuild, type BuildInfo } from '../core/build-info.js';
import { PlatformError } from '../core/errors.js';
import type { Cluster } from '../core/ports/cluster.js';

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

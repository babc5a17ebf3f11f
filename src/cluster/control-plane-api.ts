import type { BuildInfo } from '../core/build-info.js';
import type { ControlPlaneApi, ControlPlaneView } from '../core/control-plane-view.js';
import { PlatformError } from '../core/errors.js';
import { viewsOfMembers } from '../control-plane/control-node.js';
import type { EtcdControlDirectory } from './control-directory.js';
import type { EtcdLeaderResolver } from './leader-resolver.js';

/**
 * The control plane as a gateway's HTTP API serves it: with `--pool leader`, asked of the leading manager over its
 * Leader service (the view it answers names its followers and their lag); with the Redis pool, the members and the
 * leader as etcd lists them, and no handover or upgrade (they move the leader-held state).
 */
export function clusterControlPlaneApi(options: {
  pool: 'leader' | 'redis';
  directory: EtcdControlDirectory;
  resolver: EtcdLeaderResolver;
  build: BuildInfo;
}): ControlPlaneApi {
  const { directory, resolver } = options;
  const leaderClient = async () => {
    const leader = await resolver.current();
    return directory.client(leader.id, leader.address);
  };
  /** The view etcd alone gives: who leads (its term unknown here) and what every member runs. */
  const fromEtcd = async (): Promise<ControlPlaneView> => {
    const [members, leader] = await Promise.all([directory.members(), directory.leader()]);
    const leaderBuild = members.find((m) => m.role === 'manager' && m.id === leader?.id)?.build ?? null;
    const reference = leaderBuild ?? options.build;
    return {
      mode: 'cluster',
      pool: options.pool,
      leader:
        leader === null
          ? null
          : {
              id: leader.id,
              since: leader.since?.toISOString() ?? null,
              term: 0,
              build: leaderBuild,
              seq: 0,
              loopDelayMs: null,
            },
      followersWanted: 0,
      followers: [],
      members: viewsOfMembers(members, leader?.id, () => false, reference),
      handover: null,
      upgrade: null,
    };
  };
  const needsLeaderPool = (what: string): never => {
    throw new PlatformError(
      'CONFLICT',
      `${what} needs the leader-held pool: start managers and gateways with --pool leader`,
    );
  };
  return {
    async view() {
      if (options.pool === 'redis') return fromEtcd();
      try {
        return await (await leaderClient()).status();
      } catch (err) {
        // No leader now (a failover under way), or it cannot be reached: say what etcd shows.
        resolver.invalidate();
        if (PlatformError.from(err).code !== 'UNAVAILABLE') throw err;
        return fromEtcd();
      }
    },
    async handover(to) {
      if (options.pool === 'redis') return needsLeaderPool('a handover');
      const answer = await (await leaderClient()).handover(to);
      resolver.invalidate();
      return { from: answer.fromId, to: answer.toId, term: answer.term, pausedMs: answer.pausedMs };
    },
    async upgrade(to) {
      if (options.pool === 'redis') return needsLeaderPool('an upgrade');
      return (await leaderClient()).upgrade(to);
    },
  };
}

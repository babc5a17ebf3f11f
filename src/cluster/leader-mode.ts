// The leader-held pool in a cluster (`--pool leader`): the clients every gateway and manager uses, and the control
// node and Leader service every manager runs.
import type { BuildInfo } from '../core/build-info.js';
import type { Logger } from '../core/logger.js';
import type { Cluster } from '../core/ports/cluster.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import type { ScheduleStore } from '../core/ports/schedule-store.js';
import { ControlNode, type ControlLead, type HeldReplica, type HeldState } from '../control-plane/control-node.js';
import type { ControlSnapshot } from '../control-plane/control-state.js';
import { LoopDelayMonitor } from '../control-plane/loop-delay.js';
import { LeaderPool, LeaderProvisionQueue } from '../leader/leader-pool.js';
import { serveLeader } from '../leader/leader-server.js';
import type { GrpcServerHandle } from '../grpc/grpc-transport.js';
import { EtcdControlDirectory } from './control-directory.js';
import { EtcdLeaderResolver } from './leader-resolver.js';
import { openHeldReplica, openHeldState } from './held-state.js';

/** The pool and queue over the leader's Leader service, as `openBackends` takes them. */
export function leaderPoolClients(options: {
  nodes: Cluster;
  managers: Cluster;
  token: string;
  queueCapacity: number;
  logger: Logger;
  /** A manager's own id: the pool never forwards its calls in a loop. */
  selfId?: string | undefined;
}): { pool: LeaderPool; queue: LeaderProvisionQueue; summary: string; resolver: EtcdLeaderResolver } {
  const resolver = new EtcdLeaderResolver(options.nodes, options.managers);
  const common = { resolver, token: options.token, logger: options.logger };
  return {
    resolver,
    pool: new LeaderPool(common),
    queue: new LeaderProvisionQueue({ ...common, capacity: options.queueCapacity }),
    summary: 'held by the control-plane leader (gRPC)',
  };
}

export interface ControlServiceOptions {
  managerId: string;
  build: BuildInfo;
  token: string;
  listen: string;
  advertise?: string | undefined;
  followers: number | 'auto';
  queueCapacity: number;
  lead: ControlLead;
  nodes: Cluster;
  gateways: Cluster;
  managers: Cluster;
  traffic: TrafficStore;
  schedules: ScheduleStore;
  /** The routing table version last written (the successor writes above it). */
  routingVersion: () => Promise<number>;
  onShutdown: (reason: string) => void;
  logger: Logger;
}

/** A manager's control node, its Leader service, and the loop-delay monitor the view reports. */
export interface ControlService {
  readonly node: ControlNode;
  readonly directory: EtcdControlDirectory;
  readonly server: GrpcServerHandle;
  readonly loopDelay: LoopDelayMonitor;
  close(): Promise<void>;
}

/** Starts the control node and serves it; the caller registers the manager under `managers/` with `server.address`. */
export async function startControlService(options: ControlServiceOptions): Promise<ControlService> {
  const { logger } = options;
  const directory = new EtcdControlDirectory({
    nodes: options.nodes,
    gateways: options.gateways,
    managers: options.managers,
    token: options.token,
    selfId: options.managerId,
  });
  const loopDelay = new LoopDelayMonitor();
  loopDelay.start();
  const node = new ControlNode({
    id: options.managerId,
    build: options.build,
    lead: options.lead,
    directory,
    openState: (snapshot: ControlSnapshot | null): HeldState =>
      openHeldState(snapshot, { queueCapacity: options.queueCapacity }),
    openReplica: (): HeldReplica => openHeldReplica(),
    facts: {
      routingVersion: options.routingVersion,
      rollouts: async () => (await options.traffic.runningRollouts()).map((rollout) => rollout.functionName),
      schedules: async () => (await options.schedules.list()).length,
    },
    followers: options.followers,
    loopDelay,
    onShutdown: options.onShutdown,
    logger,
  });
  let server: GrpcServerHandle;
  try {
    server = await serveLeader({
      address: options.listen,
      advertise: options.advertise,
      managerId: options.managerId,
      token: options.token,
      host: node,
      logger,
    });
  } catch (err) {
    loopDelay.stop();
    directory.close();
    throw err;
  }
  return {
    node,
    directory,
    server,
    loopDelay,
    async close() {
      await node.stop();
      await server.close();
      directory.close();
      loopDelay.stop();
    },
  };
}

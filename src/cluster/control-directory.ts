import { buildInfoClaim } from '../core/build-info.js';
import type { Cluster, NodeInfo } from '../core/ports/cluster.js';
import type { ControlDirectory, ManagerPeer, Member } from '../control-plane/control-node.js';
import { LeaderClient } from '../leader/leader-client.js';

export interface ControlDirectoryOptions {
  /** Agents (`nodes/`) and the election. */
  nodes: Cluster;
  gateways: Cluster;
  managers: Cluster;
  token: string;
  /** This manager's id: calls it forwards say so, so that the leader never forwards them again. */
  selfId?: string | undefined;
}

/**
 * The cluster's processes as etcd lists them (agents, gateways, managers, each with the build it announced) and the
 * other managers over their Leader service (one verified client per manager and address).
 */
export class EtcdControlDirectory implements ControlDirectory {
  readonly #options: ControlDirectoryOptions;
  readonly #clients = new Map<string, LeaderClient>();

  constructor(options: ControlDirectoryOptions) {
    this.#options = options;
  }

  async members(): Promise<Member[]> {
    const { nodes, gateways, managers } = this.#options;
    const [agentList, gatewayList, managerList] = await Promise.all([
      nodes.registry.list(),
      gateways.registry.list(),
      managers.registry.list(),
    ]);
    return [
      ...managerList.map((info) => member(info, 'manager', info.agentAddress)),
      ...gatewayList.map((info) => member(info, 'gateway', info.url ?? info.agentAddress)),
      ...agentList.map((info) => member(info, 'agent', info.agentAddress)),
    ];
  }

  leader(): Promise<{ id: string; since: Date | null } | null> {
    return this.#options.nodes.leader();
  }

  peer(manager: Member): ManagerPeer {
    return leaderPeer(this.client(manager.id, manager.endpoint));
  }

  /** The client of one manager at one address (a new one when it moved). */
  client(managerId: string, address: string): LeaderClient {
    const cached = this.#clients.get(managerId);
    if (cached !== undefined && cached.address === address && !cached.isClosed) return cached;
    cached?.close();
    const client = new LeaderClient({
      managerId,
      address,
      token: this.#options.token,
      forwardedBy: this.#options.selfId,
    });
    this.#clients.set(managerId, client);
    return client;
  }

  close(): void {
    for (const client of this.#clients.values()) client.close();
    this.#clients.clear();
  }
}

/** A manager's Leader service as the control node talks to it. */
export function leaderPeer(client: LeaderClient): ManagerPeer {
  return {
    async follow(followerId, build, onEvent, signal) {
      const subscription = await client.follow(followerId, build, onEvent);
      const onAbort = (): void => subscription.close();
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) subscription.close();
      try {
        const failure = await subscription.ended;
        if (failure !== null) throw failure;
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
    reportApplied: (followerId, appliedSeq) => client.reportApplied(followerId, appliedSeq),
    becomeLeader: (fromId, fromTerm, snapshot) => client.becomeLeader(fromId, fromTerm, snapshot),
    status: () => client.status(),
    handover: (toId) => client.handover(toId),
    upgrade: (target) => client.upgrade(target),
  };
}

function member(info: NodeInfo, role: Member['role'], address: string): Member {
  return {
    id: info.nodeId,
    role,
    address,
    endpoint: info.agentAddress,
    build: buildInfoClaim(info.build) ?? null,
    args: info.args ?? [],
  };
}

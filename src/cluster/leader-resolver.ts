import { PlatformError } from '../core/errors.js';
import type { Cluster } from '../core/ports/cluster.js';

/** The manager that leads and where its Leader service listens. */
export interface LeaderAddress {
  id: string;
  address: string;
}

/**
 * Finds the leading manager for the leader-held pool's clients: its id from the etcd election, its address from its
 * entry under `managers/`. The answer is kept until `invalidate` (a call failed, or an answer named another leader).
 */
export class EtcdLeaderResolver {
  readonly #nodes: Cluster;
  readonly #managers: Cluster;
  #current: Promise<LeaderAddress> | null = null;

  constructor(nodes: Cluster, managers: Cluster) {
    this.#nodes = nodes;
    this.#managers = managers;
  }

  /** The leader now; UNAVAILABLE while none leads or its entry is not there yet. */
  current(): Promise<LeaderAddress> {
    this.#current ??= this.#resolve().catch((err: unknown) => {
      this.#current = null;
      throw err;
    });
    return this.#current;
  }

  /** Forget the answer (of `id` only, when given): the next `current` reads etcd again. */
  invalidate(id?: string): void {
    if (id === undefined) {
      this.#current = null;
      return;
    }
    const current = this.#current;
    if (current === null) return;
    void current.then(
      (leader) => {
        if (leader.id === id && this.#current === current) this.#current = null;
      },
      () => undefined,
    );
  }

  async #resolve(): Promise<LeaderAddress> {
    const leader = await this.#nodes.leader();
    if (leader === null) throw new PlatformError('UNAVAILABLE', 'no manager leads the control plane now');
    const entry = (await this.#managers.registry.list()).find((info) => info.nodeId === leader.id);
    if (entry === undefined) {
      throw new PlatformError('UNAVAILABLE', `the leading manager ${leader.id} has not announced its address yet`);
    }
    return { id: entry.nodeId, address: entry.agentAddress };
  }
}

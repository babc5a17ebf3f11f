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
  /** What `#current` resolved to, once it did. */
  #resolved: LeaderAddress | null = null;

  constructor(nodes: Cluster, managers: Cluster) {
    this.#nodes = nodes;
    this.#managers = managers;
  }

  /** The leader now; UNAVAILABLE while none leads or its entry is not there yet. */
  current(): Promise<LeaderAddress> {
    if (this.#current === null) {
      const current = this.#resolve().then(
        (leader) => {
          if (this.#current === current) this.#resolved = leader;
          return leader;
        },
        (err: unknown) => {
          if (this.#current === current) this.#current = null;
          throw err;
        },
      );
      this.#current = current;
    }
    return this.#current;
  }

  /**
   * Forget the answer: the next `current` reads etcd again. With `staleId` (the manager that turned out not to lead,
   * or not to answer), only when the answer named it; a read under way is dropped too.
   */
  invalidate(staleId?: string): void {
    if (staleId !== undefined && this.#resolved !== null && this.#resolved.id !== staleId) return;
    this.#current = null;
    this.#resolved = null;
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

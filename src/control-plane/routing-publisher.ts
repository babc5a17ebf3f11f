import type { Logger } from '../core/logger.js';
import type { RoutingTable, RoutingTableStore } from '../core/ports/cluster.js';
import { withTrafficChange } from '../core/routing-table.js';

/** An Agent as the routing table names it. */
export interface RoutedNode {
  nodeId: string;
  agentAddress: string;
}

/** A gateway as it registered: where the leader pushes the table. */
export interface GatewayAddress {
  gatewayId: string;
  address: string;
}

export interface RoutingPublisherOptions {
  routing: RoutingTableStore;
  /** Whether this process leads: only the leader writes and pushes. */
  isLeader: () => boolean;
  /** The verified Agents now. */
  nodes: () => RoutedNode[];
  /** Push a table to one gateway; rejects when the gateway cannot be reached or did not prove itself. */
  push: (gateway: GatewayAddress, table: RoutingTable) => Promise<unknown>;
  logger: Logger;
}

/** Writes tried per publication when another writer (a former leader) wins the compare-and-set. */
const writeAttempts = 3;

/**
 * The leader's routing table: written to the cluster store (versions only go up) when the Agents change or a
 * function's traffic changes, and pushed at once to every gateway (one watch at the leader, fan-out over gRPC).
 * Publications are written one at a time; those asked for meanwhile are folded into the next write.
 */
export class RoutingPublisher {
  readonly #options: RoutingPublisherOptions;
  readonly #gateways = new Map<string, string>();
  /** Gateways whose last push failed: a gateway that never proves itself (a rogue entry) is logged once. */
  readonly #failing = new Set<string>();
  /** The highest version this process pushed to every gateway. */
  #pushed = 0;
  #pending = false;
  readonly #pendingTraffic = new Set<string>();
  #writing: Promise<void> | undefined;

  constructor(options: RoutingPublisherOptions) {
    this.#options = options;
  }

  /** Write the table (Agents now) if this process leads; a new leader pushes the table it leads with. */
  publishNodes(): void {
    this.#pending = true;
    this.#flush();
  }

  /** Record that the traffic of these functions changed, so that every gateway drops what it cached about them. */
  publishTraffic(functionNames: Iterable<string>): void {
    for (const name of functionNames) this.#pendingTraffic.add(name);
    this.#pending = true;
    this.#flush();
  }

  /** A gateway registered: it gets the current table at once if this process leads. */
  gatewayJoined(gateway: GatewayAddress): void {
    this.#gateways.set(gateway.gatewayId, gateway.address);
    if (!this.#options.isLeader()) return;
    void this.#options.routing.get().then(
      (table) => {
        if (table !== null) this.#pushTo([[gateway.gatewayId, gateway.address]], table);
      },
      (err: unknown) => this.#options.logger.warn({ err }, 'could not read the routing table'),
    );
  }

  gatewayLeft(gatewayId: string): void {
    this.#gateways.delete(gatewayId);
    this.#failing.delete(gatewayId);
  }

  /** Resolves once the writes asked for so far are done (or given up). */
  async settled(): Promise<void> {
    while (this.#writing !== undefined) await this.#writing;
  }

  #flush(): void {
    if (this.#writing !== undefined || !this.#pending) return;
    this.#writing = (async () => {
      while (this.#pending && this.#options.isLeader()) {
        this.#pending = false;
        const traffic = [...this.#pendingTraffic];
        this.#pendingTraffic.clear();
        await this.#write(traffic).catch((err: unknown) =>
          this.#options.logger.warn({ err }, 'could not write the routing table'),
        );
      }
    })().finally(() => {
      this.#writing = undefined;
      if (!this.#options.isLeader()) {
        this.#pending = false;
        this.#pendingTraffic.clear();
      }
      this.#flush();
    });
  }

  async #write(traffic: string[]): Promise<void> {
    const { routing, nodes, logger } = this.#options;
    const entries: [string, string][] = nodes().map((node) => [node.nodeId, node.agentAddress]);
    const agents: Record<string, string> = Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1)));
    for (let attempt = 0; attempt < writeAttempts; attempt++) {
      const current = await routing.get();
      if (traffic.length === 0 && current !== null && JSON.stringify(current.agents) === JSON.stringify(agents)) {
        // Unchanged, but a new leader pushes what it leads with.
        if (this.#pushed < current.version) this.#pushAll(current);
        return;
      }
      const version = (current?.version ?? 0) + 1;
      const table: RoutingTable = { version, agents, updatedAt: Date.now() };
      const trafficNow = withTrafficChange(current?.traffic, traffic, version);
      if (Object.keys(trafficNow).length > 0) table.traffic = trafficNow;
      if (await routing.put(table, current?.version ?? 0)) {
        this.#pushAll(table);
        return;
      }
    }
    logger.warn({ traffic }, `the routing table changed under each of ${writeAttempts} writes; not written`);
  }

  #pushAll(table: RoutingTable): void {
    this.#pushed = table.version;
    this.#pushTo([...this.#gateways], table);
  }

  #pushTo(gateways: [string, string][], table: RoutingTable): void {
    for (const [gatewayId, address] of gateways) {
      void this.#options.push({ gatewayId, address }, table).then(
        () => this.#failing.delete(gatewayId),
        (err: unknown) => {
          if (this.#failing.has(gatewayId)) return;
          this.#failing.add(gatewayId);
          this.#options.logger.warn({ err, gatewayId, address }, 'could not push the routing table to a gateway');
        },
      );
    }
  }
}

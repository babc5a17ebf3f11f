import type { LeaderInfo, RoutingTable } from '../core/ports/cluster.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';

/** What `GET /v1/cluster` answers. */
export interface ClusterView {
  mode: 'embedded' | 'cluster';
  leader: { id: string; since: string | null } | null;
  routing: {
    version: number;
    updatedAt: string;
    /** The routed nodes, sorted. */
    nodes: string[];
    entries: { functionName: string; version: number; nodes: string[] }[];
  } | null;
}

export interface ClusterViewSources {
  /** The control plane's election; absent where there is none (embedded mode). */
  leader?: (() => Promise<LeaderInfo | null>) | undefined;
  /** The routing table this gateway last received; absent or null where there is none. */
  routing?: (() => RoutingTable | null) | undefined;
  metadata: Pick<MetadataStore, 'listFunctions'>;
}

/**
 * Builds `GET /v1/cluster`'s answer. Every routed node can run every function (pools span the nodes), so each
 * function's entry names its current version and the routed nodes.
 */
export function createClusterView(mode: ClusterView['mode'], sources: ClusterViewSources): () => Promise<ClusterView> {
  return async () => {
    const leader = sources.leader === undefined ? null : await sources.leader();
    const table = sources.routing?.() ?? null;
    let routing: ClusterView['routing'] = null;
    if (table !== null) {
      const nodes = Object.keys(table.agents).sort();
      const functions = await sources.metadata.listFunctions();
      routing = {
        version: table.version,
        updatedAt: new Date(table.updatedAt).toISOString(),
        nodes,
        entries: functions.map((fn) => ({ functionName: fn.name, version: fn.currentVersion, nodes: [...nodes] })),
      };
    }
    return {
      mode,
      leader: leader === null ? null : { id: leader.id, since: leader.since?.toISOString() ?? null },
      routing,
    };
  };
}

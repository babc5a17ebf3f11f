import type { NodeInfo } from '../core/ports/cluster.js';

export interface PlacementInput {
  nodes: NodeInfo[];
  /** The code bundle the new sandbox runs. */
  codeSha256: string;
  /** Sandboxes this Manager has asked a node for and not yet seen in its NodeInfo. */
  pending: ReadonlyMap<string, number>;
}

/** Free slots of a node: capacity less what runs and what is on its way. */
export function freeSlots(node: NodeInfo, pending: ReadonlyMap<string, number>): number {
  return node.capacity - node.sandboxes - (pending.get(node.nodeId) ?? 0);
}

/**
 * Where a new sandbox goes: among nodes with a free slot, those with at least half as many free slots as the
 * emptiest node are the candidates (so locality never piles everything onto one node); among them a node that
 * already holds the code (no download, no extraction) comes first, then the most free slots; ties go to the node
 * id, so the choice is stable. Null when every node is full.
 */
export function choosePlacement(input: PlacementInput): NodeInfo | null {
  const open = input.nodes
    .map((node) => ({ node, free: freeSlots(node, input.pending), cached: node.codeCached.includes(input.codeSha256) }))
    .filter((entry) => entry.free > 0);
  const mostFree = Math.max(0, ...open.map((entry) => entry.free));
  let best: (typeof open)[number] | null = null;
  for (const entry of open) {
    if (entry.free * 2 < mostFree) continue;
    const better =
      best === null ||
      (entry.cached && !best.cached) ||
      (entry.cached === best.cached &&
        (entry.free > best.free || (entry.free === best.free && entry.node.nodeId < best.node.nodeId)));
    if (better) best = entry;
  }
  return best?.node ?? null;
}

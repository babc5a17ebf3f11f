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
 * Where a new sandbox goes: among nodes with a free slot, those that already hold the code (no download, no
 * extraction) come first; then the most free slots; ties go to the node id, so the choice is stable.
 * Null when every node is full.
 */
export function choosePlacement(input: PlacementInput): NodeInfo | null {
  let best: { node: NodeInfo; cached: boolean; free: number } | null = null;
  for (const node of input.nodes) {
    const free = freeSlots(node, input.pending);
    if (free <= 0) continue;
    const cached = node.codeCached.includes(input.codeSha256);
    const better =
      best === null ||
      (cached && !best.cached) ||
      (cached === best.cached && (free > best.free || (free === best.free && node.nodeId < best.node.nodeId)));
    if (better) best = { node, cached, free };
  }
  return best?.node ?? null;
}

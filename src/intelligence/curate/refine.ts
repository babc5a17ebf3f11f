import { distance, type SampleItem } from './sampling.js';

export type RefinedLabel = 'accepted' | 'rejected' | 'neighbour-accepted' | 'neighbour-rejected' | 'kept';

export interface RefineOptions {
  /** Neighbours each verdict reaches (default 5). */
  neighbours?: number;
  /** Only neighbours nearer than this cosine distance (default 0.15). */
  radius?: number;
}

export const defaultRefine = { neighbours: 5, radius: 0.15 } as const;

/**
 * Spread the user's verdicts to look-alikes: an accepted image pulls its `neighbours` nearest images within `radius`
 * in (`neighbour-accepted`), a rejected one pushes its own out (`neighbour-rejected`). An image reached by both goes
 * with the nearer verdict (an exact tie keeps it); an image with a verdict of its own keeps that verdict; an image
 * no verdict reaches is `kept`. Exact nearest neighbours over `items` (the images left after duplicate removal).
 */
export function refine(
  items: readonly SampleItem[],
  verdicts: ReadonlyMap<string, boolean>,
  options: RefineOptions = {},
): Map<string, RefinedLabel> {
  const k = options.neighbours ?? defaultRefine.neighbours;
  const radius = options.radius ?? defaultRefine.radius;
  const labels = new Map<string, RefinedLabel>();
  /** For each reached image, the nearest accepting and rejecting verdict's distance. */
  const reach = new Map<string, { accepted: number; rejected: number }>();
  for (const item of items) {
    const verdict = verdicts.get(item.id);
    if (verdict === undefined) continue;
    labels.set(item.id, verdict ? 'accepted' : 'rejected');
    const near = items
      .filter((other) => other.id !== item.id)
      .map((other) => ({ id: other.id, d: distance(item.vector, other.vector) }))
      .sort((a, b) => a.d - b.d || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .slice(0, k)
      .filter((match) => match.d < radius);
    for (const match of near) {
      const entry = reach.get(match.id) ?? { accepted: Infinity, rejected: Infinity };
      if (verdict) entry.accepted = Math.min(entry.accepted, match.d);
      else entry.rejected = Math.min(entry.rejected, match.d);
      reach.set(match.id, entry);
    }
  }
  for (const item of items) {
    if (labels.has(item.id)) continue;
    const entry = reach.get(item.id);
    if (entry === undefined || entry.accepted === entry.rejected) labels.set(item.id, 'kept');
    else labels.set(item.id, entry.accepted < entry.rejected ? 'neighbour-accepted' : 'neighbour-rejected');
  }
  return labels;
}

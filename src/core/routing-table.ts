import type { RoutingTable } from './ports/cluster.js';

/** The most functions a routing table keeps a traffic revision for: those changed last. */
export const maxTrafficEntries = 1000;

/**
 * The `traffic` of a routing table written at `version` after the traffic of `functionNames` changed: each of them
 * gets `version` as its revision, and only the `maxTrafficEntries` highest revisions are kept (a gateway that missed
 * an entry pruned since still sees its cache expire).
 */
export function withTrafficChange(
  traffic: Readonly<Record<string, number>> | undefined,
  functionNames: Iterable<string>,
  version: number,
): Record<string, number> {
  const next = new Map(Object.entries(traffic ?? {}));
  for (const name of functionNames) next.set(name, version);
  const kept = [...next].sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0)).slice(0, maxTrafficEntries);
  return Object.fromEntries(kept.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/**
 * The functions whose traffic changed between two tables a gateway applied one after the other: those whose revision
 * is new or different in `next`. With no previous table, every function `next` names.
 */
export function trafficChanges(previous: RoutingTable | null, next: RoutingTable): string[] {
  const before = new Map(Object.entries(previous?.traffic ?? {}));
  return Object.entries(next.traffic ?? {})
    .filter(([name, revision]) => before.get(name) !== revision)
    .map(([name]) => name);
}

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

/** The most traffic entries a stored routing table may hold when read: more than that are never written. */
export const maxStoredTrafficEntries = 100_000;

/** A routing table read from storage, with what was left out of it. */
export interface StoredRoutingTable {
  table: RoutingTable;
  /** What was dropped, one line each (`traffic.NAME`, `agents.ID`, `updatedAt`...), for a warning. */
  dropped: string[];
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Whether `value` can be a version or a time in a table: a whole number that int64 encodes and JSON keeps exact. */
const isCount = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;

/**
 * A routing table as read from storage (parsed JSON that anyone with access to the store may have written), checked
 * so that every later write and push of it encodes: null when it is not a table at all (no object, or a version that
 * is not a non-negative safe integer, or no `agents` object); otherwise the table without the entries that are bad
 * (a traffic revision or `updatedAt` that is not a non-negative safe integer, an agent address that is not a
 * string), and without its traffic altogether when it names more than `maxStoredTrafficEntries` functions.
 */
export function routingTableFromStored(value: unknown): StoredRoutingTable | null {
  if (!isRecord(value) || !isCount(value['version']) || !isRecord(value['agents'])) return null;
  const dropped: string[] = [];
  const agents: Record<string, string> = {};
  for (const [nodeId, address] of Object.entries(value['agents'])) {
    if (typeof address === 'string') agents[nodeId] = address;
    else dropped.push(`agents.${nodeId}`);
  }
  let updatedAt = 0;
  if (isCount(value['updatedAt'])) updatedAt = value['updatedAt'];
  else dropped.push('updatedAt');
  const table: RoutingTable = { version: value['version'], agents, updatedAt };
  const traffic = value['traffic'];
  if (traffic === undefined) return { table, dropped };
  if (!isRecord(traffic)) return { table, dropped: [...dropped, 'traffic'] };
  const entries = Object.entries(traffic);
  if (entries.length > maxStoredTrafficEntries) {
    return { table, dropped: [...dropped, `traffic (${entries.length} entries, over ${maxStoredTrafficEntries})`] };
  }
  const kept: [string, number][] = [];
  for (const [name, revision] of entries) {
    if (isCount(revision)) kept.push([name, revision]);
    else dropped.push(`traffic.${name}`);
  }
  if (kept.length > 0) table.traffic = Object.fromEntries(kept);
  return { table, dropped };
}

import { PlatformError } from './errors.js';
import type { NodeInfo, RoutingTable } from './ports/cluster.js';
import type { Enforcement } from './ports/sandbox-runtime.js';

/** The longest node or candidate id, in characters. */
export const maxClusterIdLength = 200;

/** No `/` (ids are key segments: `nodes/{nodeId}`), no white space or control characters. */
const idPattern = /^[^\s/\p{Cc}]+$/u;

/**
 * The rules every Cluster adapter applies to what it is given, so that the etcd and memory adapters refuse the same
 * input with the same BAD_REQUEST.
 */
export function checkNodeInfo(info: NodeInfo): void {
  checkClusterId(info.nodeId, 'node id');
  if (typeof info.agentAddress !== 'string') throw new PlatformError('BAD_REQUEST', 'agentAddress must be a string');
}

/** Bounds of a node's enforcement report, as read from its (untrusted) registry entry. */
const enforcementBounds = { limits: 32, nameChars: 32, textChars: 300 } as const;

/**
 * The well-formed part of the enforcement report a registry entry claims: at most 32 limits named by identifiers, each
 * with a mechanism and a note of at most 300 characters and a boolean; anything else in it is left out. It is what the
 * node says, shown as such: nothing decides on it.
 */
export function enforcementClaims(claimed: unknown): Record<string, Enforcement> | undefined {
  if (typeof claimed !== 'object' || claimed === null || Array.isArray(claimed)) return undefined;
  const kept: Record<string, Enforcement> = {};
  let count = 0;
  for (const [limit, value] of Object.entries(claimed as Record<string, unknown>)) {
    if (count === enforcementBounds.limits) break;
    if (!/^[A-Za-z][A-Za-z0-9]*$/.test(limit) || limit.length > enforcementBounds.nameChars) continue;
    if (typeof value !== 'object' || value === null) continue;
    const { mechanism, enforced, note } = value as Record<string, unknown>;
    if (typeof mechanism !== 'string' || typeof note !== 'string' || typeof enforced !== 'boolean') continue;
    if (mechanism.length > enforcementBounds.textChars || note.length > enforcementBounds.textChars) continue;
    kept[limit] = { mechanism, enforced, note };
    count += 1;
  }
  return count === 0 ? undefined : kept;
}

/** Bounds of the launch arguments a registry entry claims. */
const launchArgsBounds = { count: 100, chars: 1000 } as const;

/**
 * The launch arguments a registry entry claims (what a manager or gateway was started with after its role): at most
 * 100 strings of at most 1000 characters without control characters; anything else is no claim (undefined).
 */
export function launchArgsClaim(claimed: unknown): string[] | undefined {
  if (!Array.isArray(claimed) || claimed.length > launchArgsBounds.count) return undefined;
  const args: string[] = [];
  for (const arg of claimed as unknown[]) {
    if (typeof arg !== 'string' || arg.length > launchArgsBounds.chars || /\p{Cc}/u.test(arg)) return undefined;
    args.push(arg);
  }
  return args;
}

/** The longest URL a registry entry may claim, in characters. */
const maxUrlChars = 2048;

/** The HTTP(S) URL a registry entry claims (a gateway's API), or undefined when it is not one. */
export function nodeUrlClaim(claimed: unknown): string | undefined {
  if (typeof claimed !== 'string' || claimed.length > maxUrlChars || /[\s\p{Cc}]/u.test(claimed)) return undefined;
  let url: URL;
  try {
    url = new URL(claimed);
  } catch {
    return undefined;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? claimed : undefined;
}

/** A lease TTL: a whole number of seconds, at least 1 (etcd's own minimum). */
export function checkTtlSeconds(ttlSeconds: number, what: string): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new PlatformError('BAD_REQUEST', `${what} must be a whole number of seconds, at least 1, got ${ttlSeconds}`);
  }
}

export function checkCandidateId(candidateId: string): void {
  checkClusterId(candidateId, 'candidate id');
}

/**
 * `put(table, expectedVersion)`: every write moves the version forward, so a compare on the version alone can never
 * let two writers that read the same table both succeed.
 */
export function checkRoutingPut(table: RoutingTable, expectedVersion: number): void {
  if (!Number.isInteger(expectedVersion) || expectedVersion < 0) {
    throw new PlatformError(
      'BAD_REQUEST',
      `expected routing version must be a whole number >= 0, got ${expectedVersion}`,
    );
  }
  if (!Number.isInteger(table.version) || table.version <= expectedVersion) {
    throw new PlatformError(
      'BAD_REQUEST',
      `routing table version must be a whole number above the expected version ${expectedVersion}, got ${table.version}`,
    );
  }
}

function checkClusterId(id: string, what: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > maxClusterIdLength || !idPattern.test(id)) {
    throw new PlatformError(
      'BAD_REQUEST',
      `invalid ${what} ${JSON.stringify(id)}: 1 to ${maxClusterIdLength} characters, no "/", spaces or control characters`,
    );
  }
}

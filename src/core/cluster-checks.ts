import { PlatformError } from './errors.js';
import type { NodeInfo, RoutingTable } from './ports/cluster.js';

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

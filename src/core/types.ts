import type { FunctionConfig } from './function-config.js';

/** A deployed function: a name pointing at its current immutable version. */
export interface FunctionRecord {
  name: string;
  /**
   * Random id drawn when the function is created, and drawn again when it is deleted and created anew (whose
   * versions restart at 1): pool keys and sandboxes carry it, so an instance of a deleted function can never serve
   * its successor.
   */
  incarnation: string;
  currentVersion: number;
  createdAt: Date;
  updatedAt: Date;
}

/** One immutable version of a function. `codeSha256` addresses the zip in the blob store (`code/{sha}.zip`). */
export interface FunctionVersion {
  functionName: string;
  /** The function's incarnation when this version was made (see `FunctionRecord.incarnation`). */
  incarnation: string;
  version: number;
  codeSha256: string;
  codeSizeBytes: number;
  /** sha256 over code hash + config: two deploys with equal hashes are the same version. */
  contentHash: string;
  config: FunctionConfig;
  createdAt: Date;
}

/** A stored secret, without its value: values leave the metadata store only for a sandbox's environment. */
export interface SecretRecord {
  name: string;
  createdAt: Date;
  updatedAt: Date;
}

/** A secret as listed: with the functions (sorted by name) that have a version naming it which an alias points at. */
export interface SecretListing extends SecretRecord {
  usedBy: string[];
}

/** What a warm pool holds: the address of one idle sandbox. JSON-safe so a Redis adapter can store it. */
export interface InstanceRef {
  instanceId: string;
  functionName: string;
  incarnation: string;
  version: number;
  nodeId: string;
  /** When the sandbox finished init (ms since epoch). */
  createdAt: number;
  /** Init duration of this sandbox, reported on its first (cold) invocation. */
  initMs: number;
  /** Completed invocations so far; 0 means the next one is the instance's first. */
  invocations: number;
  /** When the instance was last pushed to the pool (ms since epoch); idle reaping uses it. */
  idleSince: number;
}

/**
 * A copy of an instance reference, with new counters where given. Written out field by field: V8 copies an object
 * spread whose source holds fractional or large numbers (these timestamps) through its slow path, which on the
 * invoke path cost several µs per copy.
 */
export function copyInstance(
  instance: InstanceRef,
  counters: { invocations?: number; idleSince?: number } = {},
): InstanceRef {
  return {
    instanceId: instance.instanceId,
    functionName: instance.functionName,
    incarnation: instance.incarnation,
    version: instance.version,
    nodeId: instance.nodeId,
    createdAt: instance.createdAt,
    initMs: instance.initMs,
    invocations: counters.invocations ?? instance.invocations,
    idleSince: counters.idleSince ?? instance.idleSince,
  };
}

/** What names one version of one incarnation of a function: a pool key's parts. */
export interface VersionId {
  functionName: string;
  incarnation: string;
  version: number;
}

/**
 * The pool key of a function version: `name:incarnation@version`. The incarnation keeps a re-created function's
 * versions (numbered from 1 again) apart from its predecessor's.
 */
export function poolKey(of: VersionId): string {
  return `${of.functionName}:${of.incarnation}@${of.version}`;
}

/** The parts of a pool key, or null for a string `poolKey` does not make. */
export function parsePoolKey(key: string): VersionId | null {
  const match = /^([^:@]+):([^:@]*)@(\d+)$/.exec(key);
  if (match === null) return null;
  return { functionName: match[1]!, incarnation: match[2]!, version: Number(match[3]) };
}

export type StartKind = 'cold' | 'warm';

export type InvocationStatus = 'success' | 'error' | 'timeout' | 'crash' | 'oom' | 'init-error' | 'throttled';

/** An error as it crosses a process boundary and is stored: plain data. */
export interface SerializedError {
  name: string;
  code?: string | undefined;
  message: string;
  stack?: string | undefined;
}

export interface InvocationRecord {
  id: string;
  functionName: string;
  version: number;
  start: StartKind;
  status: InvocationStatus;
  initMs: number | null;
  durationMs: number;
  peakMemoryBytes: number | null;
  error: SerializedError | null;
  logKey: string | null;
  nodeId: string | null;
  instanceId: string | null;
  createdAt: Date;
}

/** A request for the Manager to create a sandbox for a function version. */
export interface ProvisionRequest {
  functionName: string;
  incarnation: string;
  version: number;
  reason: 'demand' | 'min-instances';
  requestedAt: number;
  /** The W3C `traceparent` of the request that waits for the sandbox, when tracing is on: the Manager's span joins it. */
  traceparent?: string | undefined;
}

/** Blob keys, in one place. */
export const blobKeys = {
  code: (sha256: string): string => `code/${sha256}.zip`,
  log: (functionName: string, at: Date, invocationId: string): string =>
    `logs/${functionName}/${at.toISOString().slice(0, 10)}/${invocationId}.log`,
};

/** One version's share of an alias's traffic. */
export interface VersionWeight {
  version: number;
  /** In (0, 1]; an alias's weights sum to 1. */
  weight: number;
}

/** The alias every function has, created with its first version: what an invoke without a qualifier runs. */
export const liveAlias = 'live';

/**
 * A named pointer to one or more versions of a function, each with its share of the traffic. Versions stay
 * immutable; traffic moves between them by changing aliases. `live` always exists; `FunctionRecord.currentVersion`
 * is its primary version (the largest weight; the newest version on a tie).
 */
export interface Alias {
  functionName: string;
  name: string;
  /** Sorted by version, each weight > 0, summing to 1. */
  weights: VersionWeight[];
  /**
   * A request header whose value picks the version by hash: the same value always lands on the same version, and the
   * share of values on each version is its weight. Null: each invocation picks at random by weight.
   */
  stickyHeader: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export type RolloutState = 'running' | 'promoted' | 'rolled_back' | 'aborted';

/** How a rollout moves traffic and judges the canary. */
export interface RolloutSettings {
  /** The canary's share at each step, in percent: increasing, the last one 100. */
  steps: number[];
  /** How long each step lasts before it is judged and the next one starts. */
  intervalSeconds: number;
  /** The error rate the canary may exceed the baseline's by before it fails (0.01: one point). */
  maxErrorRate: number;
  /** The canary's p99 latency may be at most this multiple of the baseline's. */
  maxP99Ratio: number;
  /** Invocations of the canary in a step before its figures are judged. */
  minRequests: number;
  /** How long the baseline's warm instances are kept after promotion, so that going back costs no cold start. */
  rollbackWindowSeconds: number;
}

/** What a version did over a window: invocations, those that failed (error, timeout, crash, OOM), warm p99 duration. */
export interface VersionFigures {
  requests: number;
  errors: number;
  /** Null without invocations. */
  p99Ms: number | null;
}

/** One entry of a rollout's history: a step started, judged, or the rollout ended, and why. */
export interface RolloutEvent {
  at: Date;
  /** The canary's share (percent) at the time. */
  step: number;
  canary: VersionFigures;
  baseline: VersionFigures;
  decision: 'started' | 'advanced' | 'promoted' | 'rolled_back' | 'aborted';
  reason: string;
}

/** A progressive move of an alias's traffic from its baseline version to a canary version, driven by the leader. */
export interface Rollout {
  id: string;
  functionName: string;
  /** The function's incarnation when the rollout started: a re-created function's rollouts are not its own. */
  incarnation: string;
  /** The alias whose traffic moves (`live` unless asked otherwise). */
  alias: string;
  /** The canary. */
  version: number;
  /** The version that had the traffic when the rollout started. */
  baseline: number;
  state: RolloutState;
  /** Index into `settings.steps` of the step under way (or the last one reached). */
  stepIndex: number;
  settings: RolloutSettings;
  /** When the step under way began: its figures count from here. */
  stepStartedAt: Date;
  /** Bumped by every change: updates are compare-and-set on it (the leader and a hand promote or abort race). */
  revision: number;
  history: RolloutEvent[];
  createdAt: Date;
  updatedAt: Date;
  /** When it was promoted, rolled back or aborted; null while running. */
  endedAt: Date | null;
}

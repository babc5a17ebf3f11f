import type { Alias, Rollout, RolloutEvent, RolloutSettings, VersionFigures, VersionWeight } from '../types.js';

/** An alias as written: its weights (validated by the store) and its optional sticky header. */
export interface AliasInput {
  weights: VersionWeight[];
  stickyHeader: string | null;
}

/** What starts a rollout; the store fills in its id, baseline, state and times. */
export interface NewRollout {
  functionName: string;
  alias: string;
  version: number;
  settings: RolloutSettings;
}

/** A rollout's change, applied only if its revision is still `expectedRevision`. */
export interface RolloutChange {
  state: Rollout['state'];
  stepIndex: number;
  stepStartedAt: Date;
  /** Appended to the history. */
  events: RolloutEvent[];
  /** The alias's weights from now on, written in the same transaction. */
  weights: VersionWeight[];
}

/** The versions of one function incarnation that the control plane must keep. */
export interface ServedVersions {
  incarnation: string;
  /** Versions with a share of traffic in some alias: kept warm, min instances provisioned. */
  serving: number[];
  /**
   * Versions with no traffic whose warm instances are kept anyway: a running rollout's, and the baseline of one
   * promoted less than its rollback window ago. Not provisioned; not drained, but reaped after their `idleSeconds`.
   */
  retained: number[];
}

/**
 * Aliases and rollouts: how each function's traffic is split between its immutable versions. Writes are durable
 * when the promise resolves. Invariants, held atomically with `MetadataStore`'s writes:
 * - every function has a `live` alias; each alias names existing versions, with weights > 0 summing to 1 (±0.001);
 * - no version an alias names, nor a running rollout's baseline or canary, uses a secret that does not exist
 *   (`MetadataStore.deleteSecret` refuses such a secret);
 * - at most one rollout per function is `running`; while one runs, its alias changes only through it.
 */
export interface TrafficStore {
  getAlias(functionName: string, alias: string): Promise<Alias | null>;
  /** Sorted by name. */
  listAliases(functionName: string): Promise<Alias[]>;
  /**
   * Create or replace an alias. Throws NOT_FOUND for an unknown function or version, BAD_REQUEST for weights that
   * are negative, zero or do not sum to 1 or a bad alias name or header, INVALID_CONFIG when a version names a
   * missing secret, CONFLICT while a rollout of the function runs on that alias or when creating one more alias than
   * `maxAliasesPerFunction` (100). Setting `live` moves
   * `FunctionRecord.currentVersion` to its primary version in the same transaction.
   */
  putAlias(functionName: string, alias: string, input: AliasInput): Promise<{ alias: Alias; created: boolean }>;
  /** Returns false if it did not exist. Throws CONFLICT for `live` and for the alias of a running rollout. */
  deleteAlias(functionName: string, alias: string): Promise<boolean>;

  /**
   * Start a rollout: its baseline is the alias's primary version; the alias becomes baseline and canary weighted by
   * the first step, in the same transaction. Throws NOT_FOUND (function, alias, version), CONFLICT when one is
   * running already or the version has all of the alias's traffic.
   */
  startRollout(input: NewRollout): Promise<Rollout>;
  getRollout(functionName: string, id: string): Promise<Rollout | null>;
  /** The newest `limit` (default and at most `maxRolloutsListed`, 100), newest first. */
  listRollouts(functionName: string, limit?: number): Promise<Rollout[]>;
  /** Every running rollout, of every function (the leader drives them). */
  runningRollouts(): Promise<Rollout[]>;
  /** Apply `change` if the rollout's revision is still `expectedRevision`; returns the rollout as it is after. */
  updateRollout(
    functionName: string,
    id: string,
    expectedRevision: number,
    change: RolloutChange,
  ): Promise<{ applied: boolean; rollout: Rollout | null }>;

  /**
   * Per version of the function (of `versions` only, when given): its invocations recorded at or after `since`,
   * throttled calls left out. `requests` and `errors` count every invocation of the window; `p99Ms` is the p99 of the
   * most recent `p99SampleSize` (10,000) warm ones (a sandbox's first call runs cold code, and a canary has more of
   * them than the baseline it is compared with), so that a call reads a bounded number of rows per version however
   * busy the function is; null without warm invocations.
   */
  versionFigures(functionName: string, since: Date, versions?: readonly number[]): Promise<Map<number, VersionFigures>>;
  /** Per function name: the versions to keep warm (see `ServedVersions`), as of `now`. */
  servedVersions(now: Date): Promise<Map<string, ServedVersions>>;
}

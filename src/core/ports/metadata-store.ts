import type { FunctionConfig } from '../function-config.js';
import type { InvocationStatsBucket, InvocationStatsQuery } from '../invocation-stats.js';
import type { FunctionRecord, FunctionVersion, InvocationRecord, SecretListing, SecretRecord } from '../types.js';

export interface NewVersion {
  functionName: string;
  codeSha256: string;
  codeSizeBytes: number;
  contentHash: string;
  config: FunctionConfig;
  /**
   * Move all of the `live` alias's traffic to the new version (default). False: the version is created without
   * traffic (a new function's first version gets it all the same).
   */
  promote?: boolean;
}

export interface InvocationQuery {
  functionName?: string;
  limit?: number;
  /** Only records created after this id's record (for follow). */
  afterCreatedAt?: Date;
}

/**
 * Functions, versions, invocation records and secrets. Writes are durable when the promise resolves:
 * the API acknowledges only after that. Aliases and rollouts are `TrafficStore`'s, on the same database.
 *
 * No version an alias points at names a secret that does not exist: `deployVersion`, `setCurrentVersion` and
 * `TrafficStore.putAlias` refuse a version naming a missing one, and `deleteSecret` refuses a secret such a version
 * names, atomically with each other.
 */
export interface MetadataStore {
  /** Apply pending migrations; safe to call on every start. */
  migrate(): Promise<void>;
  /**
   * Create the next version of a function (creating the function and its `live` alias if new) and, with `promote`,
   * make it current (`live` at 100%), in one transaction. If the current version has the same `contentHash`, returns
   * it with `created: false`. Throws INVALID_CONFIG naming them when `config.secrets` names secrets that do not
   * exist, CONFLICT when promoting while a rollout of the function runs.
   */
  deployVersion(input: NewVersion): Promise<{ function: FunctionRecord; version: FunctionVersion; created: boolean }>;
  getFunction(name: string): Promise<FunctionRecord | null>;
  listFunctions(): Promise<FunctionRecord[]>;
  /** Delete a function, its versions and its invocation records. Returns false if it did not exist. */
  deleteFunction(name: string): Promise<boolean>;
  getVersion(name: string, version: number): Promise<FunctionVersion | null>;
  listVersions(name: string): Promise<FunctionVersion[]>;
  /** Whether any version of any function uses this code bundle (a rejected deploy's blob is deleted only if not). */
  isCodeInUse(codeSha256: string): Promise<boolean>;
  /**
   * Point the function at an existing version (`live` at 100% on it). Throws NOT_FOUND for an unknown function or
   * version, INVALID_CONFIG when the version names secrets that no longer exist, CONFLICT while a rollout runs.
   */
  setCurrentVersion(name: string, version: number): Promise<FunctionRecord>;
  recordInvocation(record: InvocationRecord): Promise<void>;
  getInvocation(id: string): Promise<InvocationRecord | null>;
  /** Newest first. */
  listInvocations(query: InvocationQuery): Promise<InvocationRecord[]>;
  /**
   * The invocation records with `since <= createdAt < until` (of one function, or all), counted per function, version
   * and time bucket (`createdAt - createdAt % stepMs`), with errors and the `statsDurationBoundsMs` histogram; only
   * buckets that had invocations, in no particular order.
   */
  invocationStats(query: InvocationStatsQuery): Promise<InvocationStatsBucket[]>;
  /**
   * Create a secret or replace its value (validated: `validateSecretName`, `validateSecretValue`); `created` says
   * which. The value is stored as given: a store that must not hold it in clear is wrapped (`SealedMetadataStore`).
   */
  putSecret(name: string, value: string): Promise<{ secret: SecretRecord; created: boolean }>;
  /**
   * Every secret, by name, without values, each with the functions (sorted) that have a version naming it which an
   * alias points at (the current version among them).
   */
  listSecrets(): Promise<SecretListing[]>;
  /** The values of the named secrets that exist, by name (for a sandbox's environment: never log them). */
  secretValues(names: readonly string[]): Promise<Map<string, string>>;
  /**
   * Delete a secret. Returns false if it did not exist; throws CONFLICT naming the functions (`details.usedBy`) while
   * a version an alias points at names it (other versions may: no alias can point at them again until it exists).
   */
  deleteSecret(name: string): Promise<boolean>;
  close(): Promise<void>;
}

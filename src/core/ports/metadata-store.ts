import type { FunctionConfig } from '../function-config.js';
import type { FunctionRecord, FunctionVersion, InvocationRecord } from '../types.js';

export interface NewVersion {
  functionName: string;
  codeSha256: string;
  codeSizeBytes: number;
  contentHash: string;
  config: FunctionConfig;
}

export interface InvocationQuery {
  functionName?: string;
  limit?: number;
  /** Only records created after this id's record (for follow). */
  afterCreatedAt?: Date;
}

/**
 * Functions, versions and invocation records. Writes are durable when the promise resolves:
 * the API acknowledges only after that.
 */
export interface MetadataStore {
  /** Apply pending migrations; safe to call on every start. */
  migrate(): Promise<void>;
  /**
   * Create the next version of a function (creating the function if new) and make it current,
   * in one transaction. If the current version has the same `contentHash`, returns it with `created: false`.
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
  /** Point the function at an existing version. Throws NOT_FOUND for an unknown function or version. */
  setCurrentVersion(name: string, version: number): Promise<FunctionRecord>;
  recordInvocation(record: InvocationRecord): Promise<void>;
  getInvocation(id: string): Promise<InvocationRecord | null>;
  /** Newest first. */
  listInvocations(query: InvocationQuery): Promise<InvocationRecord[]>;
  close(): Promise<void>;
}

/** Flyte's workflow-execution phases (FlyteAdmin `WorkflowExecution.Phase`), as the API spells them. */
export const executionPhaseNames = [
  'UNDEFINED',
  'QUEUED',
  'RUNNING',
  'SUCCEEDING',
  'SUCCEEDED',
  'FAILING',
  'FAILED',
  'ABORTED',
  'TIMED_OUT',
  'ABORTING',
] as const;

export type ExecutionPhase = (typeof executionPhaseNames)[number];

/** Flyte's node-execution phases (FlyteAdmin `NodeExecution.Phase`) that the engine uses. */
export const nodePhaseNames = [
  'UNDEFINED',
  'QUEUED',
  'RUNNING',
  'SUCCEEDED',
  'FAILING',
  'FAILED',
  'ABORTED',
  'SKIPPED',
  'TIMED_OUT',
  'RECOVERED',
] as const;

export type NodePhase = (typeof nodePhaseNames)[number];

/** Phases an execution never leaves. */
export const terminalExecutionPhases: ReadonlySet<ExecutionPhase> = new Set([
  'SUCCEEDED',
  'FAILED',
  'ABORTED',
  'TIMED_OUT',
]);

/** Phases a node never leaves (RECOVERED: its output was taken from the execution a recovery started from). */
export const terminalNodePhases: ReadonlySet<NodePhase> = new Set([
  'SUCCEEDED',
  'FAILED',
  'ABORTED',
  'SKIPPED',
  'TIMED_OUT',
  'RECOVERED',
]);

/** A workflow execution's id, as Flyte names it. `project` and `domain` are DNS labels; `name` too (at most 63). */
export interface ExecutionKey {
  project: string;
  domain: string;
  name: string;
}

/** An error as Flyte reports it: USER for the functions' own failures and bad input, SYSTEM for the platform's. */
export interface ExecutionError {
  code: string;
  message: string;
  kind: 'USER' | 'SYSTEM';
}

/** One deployed version of a workflow. Versions are immutable and numbered from 1. */
export interface WorkflowVersionRecord {
  name: string;
  version: number;
  /** The spec as deployed, JSON text (canonical: keys in the order given). */
  spec: string;
  /** sha256 hex of `spec`: deploying the same spec again gives back the same version. */
  specHash: string;
  createdAt: Date;
}

/** A workflow as listed: its latest version. */
export interface WorkflowSummary {
  name: string;
  latestVersion: number;
  description: string | null;
  nodeCount: number;
  createdAt: Date;
  updatedAt: Date;
}

/** A value kept inline (JSON text), or in the blob store (over `inlineOutputBytes`): its key and size. */
export type StoredValue = { inline: string } | { blobKey: string; bytes: number };

/** How an execution came to be. */
export type ExecutionOrigin =
  | { kind: 'launch' }
  | { kind: 'relaunch'; from: ExecutionKey }
  /** Succeeded nodes of `from` are not run again: their outputs are copied (phase RECOVERED). */
  | { kind: 'recover'; from: ExecutionKey }
  /** A sub-workflow node's child. */
  | { kind: 'child'; parent: ExecutionKey; node: string };

export interface ExecutionRecord extends ExecutionKey {
  workflowName: string;
  workflowVersion: number;
  /** The execution's inputs (a JSON object), defaults applied. */
  inputs: StoredValue;
  /** Set once SUCCEEDED. */
  outputs: StoredValue | null;
  phase: ExecutionPhase;
  error: ExecutionError | null;
  origin: ExecutionOrigin;
  /** Why it was aborted, when asked to. */
  abortCause: string | null;
  createdAt: Date;
  /** When it left QUEUED, or null. */
  startedAt: Date | null;
  /** When it reached a terminal phase, or null. */
  endedAt: Date | null;
  updatedAt: Date;
  /** Bumped by every update: `updateExecution` is a compare-and-set on it. */
  revision: number;
}

/** One attempt of a node (or of one element of a map node). */
export interface NodeAttempt {
  attempt: number;
  startedAt: Date;
  endedAt: Date | null;
  /** RUNNING while under way; then SUCCEEDED, FAILED or TIMED_OUT (ABORTED when the execution was). */
  phase: NodePhase;
  /** The invocation the attempt made (its logs), once known. */
  invocationId: string | null;
  error: ExecutionError | null;
}

/**
 * A node's state in an execution. A map node has one row for itself (`item` null) and one per element
 * (`key` `NODE[INDEX]`, `item` the index); every other node has one row, `key` = `nodeId`.
 */
export interface NodeExecutionRecord {
  /** Of the execution. */
  execution: ExecutionKey;
  /** `nodeId`, or `nodeId[index]` for a map element. */
  key: string;
  nodeId: string;
  item: number | null;
  phase: NodePhase;
  /** The resolved input, once the node started. */
  input: StoredValue | null;
  output: StoredValue | null;
  error: ExecutionError | null;
  /** Every attempt so far, oldest first. */
  attempts: NodeAttempt[];
  /** The function version it runs, pinned when it started (function and map nodes), or null. */
  functionVersion: number | null;
  /** Whether the output came from the cache. */
  cacheHit: boolean;
  /** A sub-workflow node's child execution, once started. */
  child: ExecutionKey | null;
  /** Not started again before this time (a retry's backoff), or null. */
  notBefore: Date | null;
  /** The running attempt is given up (TIMED_OUT, or lost with the process running it) after this time, or null. */
  deadline: Date | null;
  /** Who runs the current attempt: the dispatcher that claimed it (a process id), or null. */
  claimedBy: string | null;
  createdAt: Date;
  startedAt: Date | null;
  endedAt: Date | null;
  updatedAt: Date;
  /** Bumped by every write: `putNode` is a compare-and-set on it. */
  revision: number;
}

/** Which executions `listExecutions` returns, newest first. */
export interface ExecutionFilter {
  project: string;
  domain: string;
  workflowName?: string | undefined;
  phase?: ExecutionPhase | undefined;
  /** Only executions created before this (the page token of the previous page). */
  createdBefore?: { createdAt: Date; name: string } | undefined;
  /** 1-1001: a page of at most 1000, and one more row to know whether another page follows. */
  limit: number;
}

/**
 * Workflows, their executions and their node executions, on the metadata database. Every write is durable when
 * its promise resolves, so the engine writes each transition before it takes effect and resumes from the store
 * after a crash. Updates are compare-and-sets on `revision`: of two writers (a leader and a dispatcher, or two
 * leaders overlapping at a handover) only one moves a record on.
 */
/** Where a page of `activeExecutions` ended: its last execution. */
export type ActiveExecutionsCursor = ExecutionKey & { createdAt: Date };

export interface WorkflowStore {
  /**
   * Store `spec` as the next version of `name`, unless the latest version has the same `specHash`: then that version
   * comes back with `created` false.
   */
  putWorkflow(
    name: string,
    spec: string,
    specHash: string,
  ): Promise<{ record: WorkflowVersionRecord; created: boolean }>;
  /** A version, or the latest (`version` absent); null when there is none. */
  getWorkflow(name: string, version?: number): Promise<WorkflowVersionRecord | null>;
  /** Every workflow, by name. */
  listWorkflows(): Promise<WorkflowSummary[]>;
  /** A workflow's versions, newest first. */
  listWorkflowVersions(name: string): Promise<WorkflowVersionRecord[]>;
  /** Delete every version (executions stay). False when there was none. */
  deleteWorkflow(name: string): Promise<boolean>;

  /**
   * CONFLICT when an execution with that key exists. `revision` is set to 1. `nodes` (the execution's first node
   * rows, e.g. those a recovery takes over) are inserted in the same transaction: no reader sees the execution
   * without them.
   */
  createExecution(
    record: Omit<ExecutionRecord, 'revision'>,
    nodes?: Omit<NodeExecutionRecord, 'revision'>[],
  ): Promise<ExecutionRecord>;
  getExecution(key: ExecutionKey): Promise<ExecutionRecord | null>;
  listExecutions(filter: ExecutionFilter): Promise<ExecutionRecord[]>;
  /**
   * Executions not in a terminal phase, oldest first (by creation time, then key), at most `limit`; with `after`
   * (the last one of the page before), those after it.
   */
  activeExecutions(limit: number, after?: ActiveExecutionsCursor): Promise<ExecutionRecord[]>;
  /**
   * Apply `change` if the execution's revision is still `expectedRevision`: the record after (revision bumped), or
   * null when it moved on (or does not exist).
   */
  updateExecution(
    key: ExecutionKey,
    expectedRevision: number,
    change: Partial<Omit<ExecutionRecord, keyof ExecutionKey | 'revision' | 'createdAt'>>,
  ): Promise<ExecutionRecord | null>;

  /** The execution's node rows, by key. */
  listNodes(key: ExecutionKey): Promise<NodeExecutionRecord[]>;
  getNode(key: ExecutionKey, nodeKey: string): Promise<NodeExecutionRecord | null>;
  /**
   * Insert (`expectedRevision` null: false when the row exists) or compare-and-set (false when the revision moved
   * on) a node row. The record after comes back (revision bumped), or null when nothing was written.
   */
  putNode(
    record: Omit<NodeExecutionRecord, 'revision'>,
    expectedRevision: number | null,
  ): Promise<NodeExecutionRecord | null>;
  /** Insert many node rows at once (a map's elements); those that exist are left as they are. */
  insertNodes(records: Omit<NodeExecutionRecord, 'revision'>[]): Promise<void>;

  /** A cached output: `key` is the function name, version and sha256 of the input. */
  getCached(key: string): Promise<StoredValue | null>;
  putCached(key: string, output: StoredValue): Promise<void>;
}

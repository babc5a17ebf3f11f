/**
 * A workflow's spec: the JSON a user deploys with `PUT /v1/workflows/{name}`, and the graph it compiles to.
 *
 * A node's `input` is any JSON value in which a string starting with `$.` is a reference, resolved when the node
 * runs: `$.inputs.x` (the execution's input `x`), `$.nodes.a.output` (node `a`'s whole output), `$.nodes.a.output.n`,
 * `$.nodes.a.output.list[2].id`; inside a `map` node also `$.item` (the current element) and `$.index`. A string that
 * is the whole `input` makes the referenced value the whole input. `{"$literal": V}` is V as it is (for a literal
 * string starting with `$.`). Edges come from the references: a node runs once every node it refers to (in `input`,
 * `when` or `map`) has ended.
 */

/** The declared type of a workflow input. */
export type WorkflowValueType = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array' | 'any';

/** A declared input: its type, or its type and a default (an input with a default may be left out at launch). */
export type WorkflowInputSpec =
  WorkflowValueType | { type: WorkflowValueType; default?: unknown; description?: string };

/**
 * A condition on references; a node whose `when` is false is SKIPPED, and so is every node that depends on a
 * skipped node. Exactly one operator per leaf: `{"ref": "$.nodes.a.output.n", "greaterThan": 10}`.
 */
export type WorkflowCondition =
  | { all: WorkflowCondition[] }
  | { any: WorkflowCondition[] }
  | { not: WorkflowCondition }
  | ({ ref: string } & (
      | { equals: unknown }
      | { notEquals: unknown }
      | { greaterThan: number }
      | { greaterThanOrEquals: number }
      | { lessThan: number }
      | { lessThanOrEquals: number }
      | { exists: boolean }
      | { truthy: boolean }
    ));

/** What every kind of node takes besides what it runs. */
export interface WorkflowNodeCommon {
  /** The node's input (see the module comment). Default: null. */
  input?: unknown;
  when?: WorkflowCondition;
  /** Attempts after the first when the node fails (0-10, default 0). */
  retries?: number;
  /** First wait before a retry in seconds, doubled each time (0-3600, default 1). */
  retryDelaySeconds?: number;
  /** The node fails TIMED_OUT when an attempt runs longer (1-86400). Default: the function's own timeout. */
  timeoutSeconds?: number;
  /**
   * Reuse the output of an earlier successful run of the same function version with the same input (any
   * execution). Not for sub-workflow nodes.
   */
  cache?: boolean;
  description?: string;
}

/** Runs a deployed function. */
export interface WorkflowFunctionNode extends WorkflowNodeCommon {
  function: string;
  /** A version number or alias (default `live`), pinned when the execution starts the node. */
  qualifier?: string;
}

/** Runs a function once per element of a list, at most `concurrency` at once; its output is the list of outputs. */
export interface WorkflowMapNode extends WorkflowNodeCommon {
  /** A reference to a list. */
  map: string;
  function: string;
  qualifier?: string;
  /** 1-1000, default 10. */
  concurrency?: number;
}

/** Runs another deployed workflow as a child execution; its output is the child's output. */
export interface WorkflowSubNode extends WorkflowNodeCommon {
  workflow: string;
  /** Default: the child's latest version when the node starts. */
  version?: number;
}

export type WorkflowNodeSpec = WorkflowFunctionNode | WorkflowMapNode | WorkflowSubNode;

/**
 * When a node fails for good: `failFast` aborts the nodes still running and starts no more (the execution FAILS at
 * once); `finishRunnable` lets every node that does not depend on the failure run to its end, then fails.
 */
export type WorkflowFailurePolicy = 'failFast' | 'finishRunnable';

/** The JSON a user deploys. Node ids are DNS-label-like: `[a-z0-9]([a-z0-9_-]{0,62})`. */
export interface WorkflowSpec {
  description?: string;
  inputs?: Record<string, WorkflowInputSpec>;
  nodes: Record<string, WorkflowNodeSpec>;
  /** The execution's output: like a node input (references to inputs and nodes). Default: null. */
  output?: unknown;
  /** Default `failFast`. */
  failurePolicy?: WorkflowFailurePolicy;
}

/** Most nodes in one workflow. */
export const maxWorkflowNodes = 2000;
/** Largest spec accepted, as JSON bytes. */
export const maxWorkflowSpecBytes = 1024 * 1024;
/** How deeply arrays and objects may nest in a spec or in launch inputs. */
export const maxJsonDepth = 64;
/** Outputs larger than this (JSON bytes) are kept in the blob store, with a reference in the metadata store. */
export const inlineOutputBytes = 256 * 1024;

/** One node of a compiled workflow: its spec, with defaults applied and its edges found. */
export interface CompiledNode {
  id: string;
  kind: 'function' | 'map' | 'workflow';
  /** The function's or the child workflow's name. */
  target: string;
  /** For function and map nodes: the qualifier (default `live`). */
  qualifier: string;
  /** For workflow nodes: the child's version, or null for its latest. */
  version: number | null;
  /** The input template (references unresolved). */
  input: unknown;
  when: WorkflowCondition | null;
  /** For map nodes: the list reference and the concurrency. */
  map: { ref: string; concurrency: number } | null;
  retries: number;
  retryDelaySeconds: number;
  /** Null: the function's own timeout. */
  timeoutSeconds: number | null;
  cache: boolean;
  /** The node ids it refers to, sorted: it runs once all of them have ended. */
  dependsOn: string[];
}

/** A spec checked and compiled: what the engine runs. */
export interface CompiledWorkflow {
  spec: WorkflowSpec;
  inputs: Record<string, { type: WorkflowValueType; default?: unknown; required: boolean }>;
  nodes: Record<string, CompiledNode>;
  /** Node ids in a topological order (a node after every node it depends on; ties by id). */
  order: string[];
  output: unknown;
  failurePolicy: WorkflowFailurePolicy;
}

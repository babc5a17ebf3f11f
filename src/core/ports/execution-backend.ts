import type { ExecutionError, ExecutionKey, ExecutionPhase, NodePhase } from './workflow-store.js';

/** What `POST /api/v1/executions` asks for, read and checked (plain JSON inputs; Flyte literal maps converted). */
export interface LaunchRequest {
  project: string;
  domain: string;
  /** Absent: the backend names it (20 lowercase letters and digits, starting with a letter, like Flyte). */
  name?: string | undefined;
  workflow: string;
  /** Absent: the latest. */
  version?: number | undefined;
  inputs: Record<string, unknown>;
}

/** An execution as FlyteAdmin's `Execution` message spells it in JSON (snake_case). */
export interface ExecutionView {
  id: ExecutionKey;
  spec: {
    launch_plan: { resource_type: 'LAUNCH_PLAN'; project: string; domain: string; name: string; version: string };
    metadata: {
      /** MANUAL (0), RELAUNCH (3), CHILD_WORKFLOW (5) or RECOVERED (7), by name. */
      mode: 'MANUAL' | 'RELAUNCH' | 'CHILD_WORKFLOW' | 'RECOVERED';
      reference_execution?: ExecutionKey;
      parent_node_execution?: { node_id: string; execution_id: ExecutionKey };
    };
  };
  closure: {
    phase: ExecutionPhase;
    /** RFC 3339; absent until it started. */
    started_at?: string;
    /** Protobuf JSON duration (`"1.250s"`): so far while running, in all once ended. */
    duration: string;
    created_at: string;
    updated_at: string;
    error?: ExecutionError;
    /** Why it was aborted. */
    abort_metadata?: { cause: string; principal: string };
  };
}

/** One node (or map element) of an execution, as FlyteAdmin's `NodeExecution` in JSON, plus Savassan's details. */
export interface NodeExecutionView {
  id: { node_id: string; execution_id: ExecutionKey };
  metadata: {
    /** The map node, for a map element. */
    parent_node_id?: string;
    /** The element's index, for a map element. */
    item?: number;
    is_parent_node: boolean;
    spec_node_id: string;
  };
  closure: {
    phase: NodePhase;
    started_at?: string;
    duration: string;
    created_at: string;
    updated_at: string;
    error?: ExecutionError;
    /** A sub-workflow node's child execution. */
    workflow_node_metadata?: { execution_id: ExecutionKey };
  };
  /** The function and version it ran (function and map nodes). */
  function?: { name: string; version: number | null };
  attempts: {
    attempt: number;
    phase: NodePhase;
    started_at: string;
    duration: string;
    invocation_id: string | null;
    error?: ExecutionError;
  }[];
  /** Every attempt's invocation, in order (the logs: `GET /v1/invocations/{id}/logs`). */
  invocation_ids: string[];
  cache_hit: boolean;
}

/** A page of executions, newest first; `token` fetches the next (empty: no more). */
/** A page of node executions; `token` is empty on the last page. */
export interface NodeExecutionPage {
  node_executions: NodeExecutionView[];
  token: string;
}

/** The page size `GET /api/v1/node_executions/...` gives by default, and the most it gives. */
export const nodeExecutionPageDefault = 1000;
export const nodeExecutionPageMax = 10_000;

export interface ExecutionPage {
  executions: ExecutionView[];
  token: string;
}

/**
 * Where workflow executions run: the built-in durable engine, or a real FlyteAdmin. The Flyte-shaped API, the gRPC
 * `ExecutionService` and the CLI speak to this port only. Errors are `PlatformError`s: NOT_FOUND for an unknown
 * workflow or execution, BAD_REQUEST for inputs that do not match the workflow, CONFLICT for an execution name in use
 * or a terminate of an execution that already ended.
 */
export interface ExecutionBackend {
  /** `builtin` or `flyte`. */
  readonly kind: string;
  /** A workflow version was deployed: register it where executions run (the Flyte adapter registers it there). */
  register(name: string, version: number, spec: string): Promise<void>;
  launch(request: LaunchRequest): Promise<ExecutionKey>;
  get(key: ExecutionKey): Promise<ExecutionView>;
  list(
    project: string,
    domain: string,
    options: { limit: number; token?: string | undefined; workflow?: string | undefined },
  ): Promise<ExecutionPage>;
  /** Every node of the execution, in run order. */
  nodeExecutions(key: ExecutionKey): Promise<NodeExecutionView[]>;
  /** A page of them: at most `limit`, from `token` (the previous page's; empty or absent: the first). */
  nodeExecutionPage(key: ExecutionKey, page: { limit: number; token?: string | undefined }): Promise<NodeExecutionPage>;
  /** The execution's inputs, and its outputs once it succeeded (null before). */
  data(key: ExecutionKey): Promise<{ inputs: Record<string, unknown>; outputs: unknown }>;
  /** Abort a running execution (its running nodes are aborted): phase ABORTING, then ABORTED. */
  terminate(key: ExecutionKey, cause: string): Promise<void>;
  /** A new execution of the same workflow version with the same inputs. */
  relaunch(key: ExecutionKey, name?: string): Promise<ExecutionKey>;
  /** A new execution that reuses the succeeded nodes' outputs of `key` and runs the rest. */
  recover(key: ExecutionKey, name?: string): Promise<ExecutionKey>;
}

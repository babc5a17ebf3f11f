/**
 * FlyteAdmin's REST messages as its gateway writes them for `application/json`: protobuf's JSON mapping with the proto
 * field names (snake_case), enums by name, int64 as strings, Durations as `"1.5s"`, Timestamps in RFC 3339, and every
 * unset field emitted (`null` for a message or timestamp that is not set; an unset oneof member is left out). Only the
 * fields this adapter reads or writes are spelt out; the `Checks` at the end make the build fail if one of them is not
 * a field of the `@flyteorg/flyteidl` message it stands for.
 */
import type { flyteidl } from '@flyteorg/flyteidl/gen/pb-js/flyteidl.js';

type Snake<S extends string> = S extends `${infer H}${infer T}`
  ? `${H extends Lowercase<H> ? H : `_${Lowercase<H>}`}${Snake<T>}`
  : S;
/** The snake_case JSON field names of a protobufjs message interface. */
type ProtoFields<P> = { [K in keyof P & string as Snake<K>]: unknown };
/** The fields of a JSON shape that its protobuf message lacks: `never` when it is faithful. */
type Extra<J, P> = Exclude<keyof J, keyof ProtoFields<P>>;
type Check<T extends never> = T;

export type ResourceTypeName = keyof typeof flyteidl.core.ResourceType;
export type SimpleTypeName = keyof typeof flyteidl.core.SimpleType;
export type WorkflowPhaseName = keyof typeof flyteidl.core.WorkflowExecution.Phase;
export type NodePhaseName = keyof typeof flyteidl.core.NodeExecution.Phase;
export type TaskPhaseName = keyof typeof flyteidl.core.TaskExecution.Phase;
export type ExecutionModeName = keyof typeof flyteidl.admin.ExecutionMetadata.ExecutionMode;
export type ErrorKindName = keyof typeof flyteidl.core.ExecutionError.ErrorKind;
export type OnFailureName = keyof typeof flyteidl.core.WorkflowMetadata.OnFailurePolicy;
export type LaunchPlanStateName = keyof typeof flyteidl.admin.LaunchPlanState;
export type CacheStatusName = keyof typeof flyteidl.core.CatalogCacheStatus;

export interface IdentifierJson {
  resource_type: ResourceTypeName;
  project: string;
  domain: string;
  name: string;
  version: string;
}

export interface ExecutionIdJson {
  project: string;
  domain: string;
  name: string;
}

export interface NodeExecutionIdJson {
  node_id: string;
  execution_id: ExecutionIdJson;
}

export interface PrimitiveJson {
  integer?: string;
  float_value?: number;
  string_value?: string;
  boolean?: boolean;
  datetime?: string;
  duration?: string;
}

export interface ScalarJson {
  primitive?: PrimitiveJson;
  none_type?: Record<string, never>;
  /** A google.protobuf.Struct: in JSON, the object itself. */
  generic?: Record<string, unknown>;
  union?: { value: LiteralJson; type?: LiteralTypeJson };
}

export interface LiteralJson {
  scalar?: ScalarJson;
  collection?: { literals: LiteralJson[] };
  map?: LiteralMapJson;
}

export interface LiteralMapJson {
  literals?: Record<string, LiteralJson> | null;
}

export interface LiteralTypeJson {
  simple?: SimpleTypeName;
  collection_type?: LiteralTypeJson;
  map_value_type?: LiteralTypeJson;
}

export interface VariableJson {
  type: LiteralTypeJson;
  description?: string;
}

export interface TypedInterfaceJson {
  inputs: { variables: Record<string, VariableJson> };
  outputs: { variables: Record<string, VariableJson> };
}

export interface ParameterJson {
  var: VariableJson;
  default?: LiteralJson;
  required?: boolean;
}

export interface PromiseAttributeJson {
  string_value?: string;
  int_value?: number;
}

export interface OutputReferenceJson {
  node_id: string;
  var: string;
  attr_path?: PromiseAttributeJson[];
}

export interface BindingDataJson {
  scalar?: ScalarJson;
  collection?: { bindings: BindingDataJson[] };
  promise?: OutputReferenceJson;
  map?: { bindings: Record<string, BindingDataJson> };
}

export interface BindingJson {
  var: string;
  binding: BindingDataJson;
}

export interface NodeMetadataJson {
  name: string;
  timeout?: string;
  retries?: { retries: number };
  cacheable?: boolean;
  cache_version?: string;
}

export interface NodeJson {
  id: string;
  metadata?: NodeMetadataJson;
  inputs?: BindingJson[];
  upstream_node_ids?: string[];
  task_node?: { reference_id: IdentifierJson };
  workflow_node?: { launchplan_ref: IdentifierJson };
  array_node?: ArrayNodeJson;
}

export interface ArrayNodeJson {
  node: NodeJson;
  parallelism?: number;
  min_successes?: number;
  bound_inputs?: string[];
}

export interface WorkflowTemplateJson {
  id: IdentifierJson;
  metadata: { on_failure: OnFailureName };
  interface: TypedInterfaceJson;
  nodes: NodeJson[];
  outputs: BindingJson[];
}

export interface TaskTemplateJson {
  id: IdentifierJson;
  /** The plugin that runs it. */
  type: string;
  metadata: { discoverable?: boolean; discovery_version?: string; runtime_flavor?: string };
  interface: TypedInterfaceJson;
  custom: Record<string, unknown>;
}

export interface TaskCreateRequestJson {
  id: IdentifierJson;
  spec: { template: TaskTemplateJson };
}

export interface WorkflowCreateRequestJson {
  id: IdentifierJson;
  spec: { template: WorkflowTemplateJson; sub_workflows?: WorkflowTemplateJson[] };
}

export interface LaunchPlanSpecJson {
  workflow_id: IdentifierJson;
  default_inputs: { parameters: Record<string, ParameterJson> };
  fixed_inputs: LiteralMapJson;
}

export interface LaunchPlanCreateRequestJson {
  id: IdentifierJson;
  spec: LaunchPlanSpecJson;
}

export interface LaunchPlanJson {
  id: IdentifierJson;
  spec?: LaunchPlanSpecJson | null;
  closure?: {
    state?: LaunchPlanStateName;
    expected_inputs?: { parameters?: Record<string, ParameterJson> | null } | null;
  } | null;
}

export interface ExecutionMetadataJson {
  mode?: ExecutionModeName;
  principal?: string;
  reference_execution?: ExecutionIdJson | null;
  parent_node_execution?: NodeExecutionIdJson | null;
}

export interface ExecutionCreateRequestJson {
  project: string;
  domain: string;
  name?: string;
  spec: { launch_plan: IdentifierJson; metadata: ExecutionMetadataJson };
  inputs: LiteralMapJson;
}

export interface ExecutionErrorJson {
  code?: string;
  message?: string;
  kind?: ErrorKindName;
}

export interface ExecutionJson {
  id: ExecutionIdJson;
  spec?: { launch_plan?: IdentifierJson | null; metadata?: ExecutionMetadataJson | null } | null;
  closure?: {
    phase?: WorkflowPhaseName;
    started_at?: string | null;
    duration?: string | null;
    created_at?: string | null;
    updated_at?: string | null;
    error?: ExecutionErrorJson;
    abort_metadata?: { cause?: string; principal?: string };
  };
}

export interface ExecutionListJson {
  executions?: ExecutionJson[];
  token?: string;
}

export interface NodeExecutionJson {
  id: NodeExecutionIdJson;
  metadata?: { retry_group?: string; is_parent_node?: boolean; spec_node_id?: string; is_array?: boolean } | null;
  closure?: {
    phase?: NodePhaseName;
    started_at?: string | null;
    duration?: string | null;
    created_at?: string | null;
    updated_at?: string | null;
    error?: ExecutionErrorJson;
    workflow_node_metadata?: { execution_id?: ExecutionIdJson | null };
    task_node_metadata?: { cache_status?: CacheStatusName };
  };
}

export interface NodeExecutionListJson {
  node_executions?: NodeExecutionJson[];
  token?: string;
}

export interface TaskExecutionJson {
  id: { node_execution_id: NodeExecutionIdJson; retry_attempt?: number };
  closure?: {
    phase?: TaskPhaseName;
    started_at?: string | null;
    duration?: string | null;
    error?: ExecutionErrorJson;
  } | null;
}

export interface TaskExecutionListJson {
  task_executions?: TaskExecutionJson[];
  token?: string;
}

export interface ExecutionDataJson {
  full_inputs?: LiteralMapJson | null;
  full_outputs?: LiteralMapJson | null;
}

export interface ExecutionCreateResponseJson {
  id?: ExecutionIdJson | null;
}

/** The error body FlyteAdmin's gateway sends: `code` is the gRPC status code. */
export interface GatewayErrorJson {
  error?: string;
  code?: number;
  message?: string;
}

/** Every shape above against its flyteidl message: a misspelt field fails the build here. */
export type Checks = [
  Check<Extra<IdentifierJson, flyteidl.core.IIdentifier>>,
  Check<Extra<ExecutionIdJson, flyteidl.core.IWorkflowExecutionIdentifier>>,
  Check<Extra<NodeExecutionIdJson, flyteidl.core.INodeExecutionIdentifier>>,
  Check<Extra<PrimitiveJson, flyteidl.core.IPrimitive>>,
  Check<Extra<ScalarJson, flyteidl.core.IScalar>>,
  Check<Extra<LiteralJson, flyteidl.core.ILiteral>>,
  Check<Extra<LiteralMapJson, flyteidl.core.ILiteralMap>>,
  Check<Extra<LiteralTypeJson, flyteidl.core.ILiteralType>>,
  Check<Extra<VariableJson, flyteidl.core.IVariable>>,
  Check<Extra<TypedInterfaceJson, flyteidl.core.ITypedInterface>>,
  Check<Extra<ParameterJson, flyteidl.core.IParameter>>,
  Check<Extra<PromiseAttributeJson, flyteidl.core.IPromiseAttribute>>,
  Check<Extra<OutputReferenceJson, flyteidl.core.IOutputReference>>,
  Check<Extra<BindingDataJson, flyteidl.core.IBindingData>>,
  Check<Extra<BindingJson, flyteidl.core.IBinding>>,
  Check<Extra<NodeMetadataJson, flyteidl.core.INodeMetadata>>,
  Check<Extra<NodeJson, flyteidl.core.INode>>,
  Check<Extra<ArrayNodeJson, flyteidl.core.IArrayNode>>,
  Check<Extra<WorkflowTemplateJson, flyteidl.core.IWorkflowTemplate>>,
  Check<Extra<TaskTemplateJson, flyteidl.core.ITaskTemplate>>,
  Check<Extra<TaskCreateRequestJson, flyteidl.admin.ITaskCreateRequest>>,
  Check<Extra<WorkflowCreateRequestJson, flyteidl.admin.IWorkflowCreateRequest>>,
  Check<Extra<LaunchPlanSpecJson, flyteidl.admin.ILaunchPlanSpec>>,
  Check<Extra<LaunchPlanCreateRequestJson, flyteidl.admin.ILaunchPlanCreateRequest>>,
  Check<Extra<LaunchPlanJson, flyteidl.admin.ILaunchPlan>>,
  Check<Extra<NonNullable<LaunchPlanJson['closure']>, flyteidl.admin.ILaunchPlanClosure>>,
  Check<Extra<ExecutionMetadataJson, flyteidl.admin.IExecutionMetadata>>,
  Check<Extra<ExecutionCreateRequestJson, flyteidl.admin.IExecutionCreateRequest>>,
  Check<Extra<ExecutionErrorJson, flyteidl.core.IExecutionError>>,
  Check<Extra<ExecutionJson, flyteidl.admin.IExecution>>,
  Check<Extra<NonNullable<ExecutionJson['closure']>, flyteidl.admin.IExecutionClosure>>,
  Check<Extra<ExecutionListJson, flyteidl.admin.IExecutionList>>,
  Check<Extra<NodeExecutionJson, flyteidl.admin.INodeExecution>>,
  Check<Extra<NonNullable<NodeExecutionJson['metadata']>, flyteidl.admin.INodeExecutionMetaData>>,
  Check<Extra<NonNullable<NodeExecutionJson['closure']>, flyteidl.admin.INodeExecutionClosure>>,
  Check<Extra<NodeExecutionListJson, flyteidl.admin.INodeExecutionList>>,
  Check<Extra<TaskExecutionJson, flyteidl.admin.ITaskExecution>>,
  Check<Extra<TaskExecutionJson['id'], flyteidl.core.ITaskExecutionIdentifier>>,
  Check<Extra<NonNullable<TaskExecutionJson['closure']>, flyteidl.admin.ITaskExecutionClosure>>,
  Check<Extra<TaskExecutionListJson, flyteidl.admin.ITaskExecutionList>>,
  Check<Extra<ExecutionDataJson, flyteidl.admin.IWorkflowExecutionGetDataResponse>>,
  Check<Extra<ExecutionCreateResponseJson, flyteidl.admin.IExecutionCreateResponse>>,
];

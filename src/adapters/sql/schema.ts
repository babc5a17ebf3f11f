import type { ColumnType, Kysely, Selectable, Transaction } from 'kysely';

/**
 * The metadata tables as Kysely sees them, shared by the SQLite, PostgreSQL and MySQL adapters.
 *
 * Representation rules, chosen so that one set of queries behaves the same on all three engines:
 * - Timestamps are epoch milliseconds in BIGINT columns: no time zones, no driver date parsing, and
 *   numeric ordering that every engine indexes the same way.
 * - BIGINT values come back as whatever the driver returns (pg: string; mysql2 and better-sqlite3:
 *   number, or bigint when configured), so their select type says so and rows are converted in one place
 *   (`sql-metadata-store.ts`).
 * - Function configuration and serialized errors are JSON in TEXT columns, not native JSON types, so
 *   no driver parses or reorders them.
 */

/** A BIGINT as drivers return it. */
export type BigIntValue = number | string | bigint;

/** A BIGINT column: written as a number, read as whatever the driver returns. */
export type BigIntColumn = ColumnType<BigIntValue, number, number>;

/** Milliseconds since the Unix epoch, UTC. */
export type EpochMillisColumn = BigIntColumn;

export interface FunctionsTable {
  /** Function name (validated: at most 63 characters). Primary key. */
  name: string;
  /** `FunctionRecord.incarnation`: random, drawn again when the function is deleted and created anew. */
  incarnation: string;
  current_version: number;
  created_at: EpochMillisColumn;
  updated_at: EpochMillisColumn;
}

export interface FunctionVersionsTable {
  /** References `functions.name`. Primary key with `version`. */
  function_name: string;
  /** The function's incarnation, as in `functions.incarnation`. */
  incarnation: string;
  version: number;
  code_sha256: string;
  code_size_bytes: BigIntColumn;
  content_hash: string;
  /** `FunctionConfig` as JSON. */
  config: string;
  created_at: EpochMillisColumn;
}

export interface InvocationsTable {
  id: string;
  /** Not a foreign key: records may arrive after their function was deleted. */
  function_name: string;
  version: number;
  /** `StartKind`; `start` is a keyword in MySQL. */
  start_kind: string;
  /** `InvocationStatus`. */
  status: string;
  init_ms: number | null;
  duration_ms: number;
  peak_memory_bytes: ColumnType<BigIntValue | null, number | null, number | null>;
  /** `SerializedError` as JSON, or null. */
  error: string | null;
  log_key: string | null;
  node_id: string | null;
  instance_id: string | null;
  created_at: EpochMillisColumn;
  /** Added later: optional on insert. */
  trace_id: ColumnType<string | null, string | null | undefined, string | null>;
}

export interface SecretsTable {
  /** Secret name (validated: at most 128 characters). Primary key. */
  name: string;
  /** The value as the store was given it: sealed (`SealedMetadataStore`) wherever the platform runs. */
  value: string;
  created_at: EpochMillisColumn;
  updated_at: EpochMillisColumn;
}

export interface AliasesTable {
  /** References `functions.name`. Primary key with `name`. */
  function_name: string;
  /** The alias name (`isAliasName`). */
  name: string;
  /** `VersionWeight[]` as JSON, sorted by version: `[{"version":1,"weight":0.9},{"version":2,"weight":0.1}]`. */
  weights: string;
  /** A lowercase HTTP header name, or null. */
  sticky_header: string | null;
  created_at: EpochMillisColumn;
  updated_at: EpochMillisColumn;
}

export interface RolloutsTable {
  /** Random; primary key. */
  id: string;
  /** References `functions.name`. */
  function_name: string;
  /** The function's incarnation when the rollout started. */
  incarnation: string;
  alias: string;
  /** The canary. */
  version: number;
  baseline: number;
  /** `RolloutState`. */
  state: string;
  step_index: number;
  /** `RolloutSettings` as JSON. */
  settings: string;
  step_started_at: EpochMillisColumn;
  revision: number;
  /** `RolloutEvent[]` as JSON, times as ISO strings. */
  history: string;
  created_at: EpochMillisColumn;
  updated_at: EpochMillisColumn;
  ended_at: ColumnType<BigIntValue | null, number | null, number | null>;
  /**
   * `function_name` while the rollout runs, null once it has ended: a unique column (NULLs never collide), so two
   * running rollouts of one function cannot both commit on any engine.
   */
  running_function: string | null;
}

export interface QueuedInvocationsTable {
  /** `timeOrderedUuid`; primary key. */
  id: string;
  /** Not a foreign key: the queue holds events of functions whatever the metadata store says of them. */
  function_name: string;
  payload: string;
  /** `queued`, `running`, `succeeded`, `failed` or `dead_lettered`; `running` past `due_at` is waiting again. */
  state: string;
  enqueued_at: EpochMillisColumn;
  /**
   * When a queued event is due; when a running one's visibility timeout ends; null once the event has ended, so
   * receiving scans the index on it in order and stops after the batch.
   */
  due_at: ColumnType<BigIntValue | null, number | null, number | null>;
  delivery_count: number;
  /** The current delivery's receipt while running, else null (unique: NULLs never collide). */
  receipt: string | null;
  /** `InvocationAttempt[]` as JSON, times as epoch ms. */
  attempts: string;
  /** When it was last redriven from the dead letters (migration 0008); null if never. */
  redriven_at: ColumnType<BigIntValue | null, number | null, number | null>;
  idempotency_key: string | null;
  dead_letter_reason: string | null;
  dead_lettered_at: ColumnType<BigIntValue | null, number | null, number | null>;
  /**
   * When it succeeded or failed (migration 0009); null otherwise, dead letters included. Retention deletes the rows
   * ended longer than `endedRetentionMs` ago by the index on it.
   */
  ended_at: ColumnType<BigIntValue | null, number | null, number | null>;
}

export interface InvocationIdempotencyKeysTable {
  /** Primary key with `idempotency_key`. */
  function_name: string;
  idempotency_key: string;
  /** The event the key first queued. */
  invocation_id: string;
  /** When the key was first used; indexed (migration 0009) to delete keys past the idempotency window. */
  created_at: EpochMillisColumn;
}

export interface SchedulesTable {
  /** Primary key. */
  name: string;
  /** Not a foreign key: a schedule outlives its function. */
  function_name: string;
  expression: string;
  timezone: string;
  /** The event as JSON text. */
  event: string;
  /** `ScheduleState`. */
  state: string;
  /** `MissedTicks`. */
  missed: string;
  retries: number | null;
  max_event_age_seconds: number | null;
  /** Null while paused and once a one-time schedule has fired. */
  next_fire_at: ColumnType<BigIntValue | null, number | null, number | null>;
  last_fired_at: ColumnType<BigIntValue | null, number | null, number | null>;
  created_at: EpochMillisColumn;
  updated_at: EpochMillisColumn;
}

export interface MessageQueuesTable {
  /** Primary key; letters, digits, dashes and underscores. */
  name: string;
  created_at: EpochMillisColumn;
}

export interface QueueMessagesTable {
  /** `timeOrderedUuid`; primary key. */
  id: string;
  /** References `message_queues.name`: a queue's messages go with it. */
  queue_name: string;
  body: string;
  sent_at: EpochMillisColumn;
  /** Visible (receivable) from this time on: its send time, or the end of its visibility timeout once received. */
  visible_at: EpochMillisColumn;
  receive_count: number;
  first_received_at: ColumnType<BigIntValue | null, number | null, number | null>;
  /** The current receive's receipt, or null. */
  receipt: string | null;
}

export interface QueueTriggersTable {
  /** 16 hex digits; primary key. */
  id: string;
  /** References `functions.name`: a trigger goes with its function. */
  function_name: string;
  queue_name: string;
  batch_size: number;
  window_seconds: number;
  max_concurrency: number;
  max_receives: number;
  dead_letter_queue: string | null;
  created_at: EpochMillisColumn;
}

export interface FunctionUrlsTable {
  /** References `functions.name`: a function's URL goes with it; primary key. */
  function_name: string;
  /** `none` or `key`. */
  auth: string;
  /** The CORS rules as JSON (`FunctionUrlCors`), or null. */
  cors: string | null;
  created_at: EpochMillisColumn;
}

export interface WorkflowVersionsTable {
  /** The workflow's name; primary key with `version`. */
  name: string;
  version: number;
  /** The spec as deployed, JSON text. */
  spec: string;
  /** sha256 hex of `spec`. */
  spec_hash: string;
  /** The spec's `description`, kept apart so listing reads no spec. */
  description: string | null;
  node_count: number;
  created_at: EpochMillisColumn;
}

/** A nullable epoch-milliseconds column. */
type NullableMillisColumn = ColumnType<BigIntValue | null, number | null, number | null>;

export interface WorkflowExecutionsTable {
  /** Primary key: project, domain, name. */
  project: string;
  domain: string;
  name: string;
  /** Not a foreign key: executions outlive their workflow's versions. */
  workflow_name: string;
  workflow_version: number;
  /** `StoredValue` as JSON. */
  inputs: string;
  /** `StoredValue` as JSON, or null. */
  outputs: string | null;
  /** `ExecutionPhase`. */
  phase: string;
  /** `ExecutionError` as JSON, or null. */
  error: string | null;
  /** `ExecutionOrigin` as JSON. */
  origin: string;
  abort_cause: string | null;
  created_at: EpochMillisColumn;
  started_at: NullableMillisColumn;
  ended_at: NullableMillisColumn;
  updated_at: EpochMillisColumn;
  revision: number;
}

export interface WorkflowNodesTable {
  /** Of the execution; primary key with `node_key`. */
  project: string;
  domain: string;
  name: string;
  /** `nodeId`, or `nodeId[index]` for a map element. */
  node_key: string;
  node_id: string;
  item: number | null;
  /** `NodePhase`. */
  phase: string;
  /** `StoredValue` as JSON, or null. */
  input: string | null;
  output: string | null;
  /** `ExecutionError` as JSON, or null. */
  error: string | null;
  /** `NodeAttempt[]` as JSON, dates as epoch milliseconds. */
  attempts: string;
  function_version: number | null;
  /** 1 when the output came from the cache, else 0. */
  cache_hit: number;
  /** The child execution's `ExecutionKey` as JSON, or null. */
  child: string | null;
  not_before: NullableMillisColumn;
  deadline: NullableMillisColumn;
  claimed_by: string | null;
  created_at: EpochMillisColumn;
  started_at: NullableMillisColumn;
  ended_at: NullableMillisColumn;
  updated_at: EpochMillisColumn;
  revision: number;
}

export interface WorkflowCacheTable {
  /** `FUNCTION:VERSION:sha256(input)`; primary key. */
  cache_key: string;
  /** `StoredValue` as JSON. */
  output: string;
  created_at: EpochMillisColumn;
}

/** A prompt-to-plan request and how it ended (the seed's table, plus what the chain tried). */
export interface KhaydarinLogsTable {
  /** `plan-…`; primary key. */
  id: string;
  /** Unique: the idempotency key. */
  request_id: string;
  user_id: string;
  received_at: EpochMillisColumn;
  user_prompt: string;
  llm_prompt: string | null;
  llm_raw_response: string | null;
  /** `FineTunePlan` as JSON, or null. */
  structured_plan: string | null;
  /** `PlanStatus`. */
  status: string;
  processing_time_ms: number;
  planner: string;
  attempts: number;
  /** `PlanProblem[]` as JSON. */
  problems: string;
  /** `string[]` as JSON. */
  warnings: string;
}

export interface DatasetImagesTable {
  /** Primary key with `name`. */
  dataset_id: string;
  name: string;
  /** Unique within the dataset. */
  image_id: string;
  /** `key` is a keyword in MySQL. */
  blob_key: string;
  bytes: BigIntColumn;
  sha256: string;
  content_type: string;
  created_at: EpochMillisColumn;
}

export interface CurationsTable {
  /** `cur-…`; primary key. */
  id: string;
  project_id: string;
  /** `CurationSource` as JSON. */
  source: string;
  /** `CurationStatus`. */
  status: string;
  /** `CurationProgress` as JSON. */
  progress: string;
  /** `ImageForFeedback[]` as JSON. */
  images_for_feedback: string;
  /** Verdicts by image id as JSON. */
  feedback: string;
  curated_dataset_id: string | null;
  curated_dataset_uri: string | null;
  /** `CurationFileError[]` as JSON. */
  errors: string;
  failure: string | null;
  embedder: string;
  created_at: EpochMillisColumn;
  updated_at: EpochMillisColumn;
  revision: number;
}

export interface IntelligenceRunsTable {
  /** `run-…`; primary key. */
  id: string;
  prompt: string;
  user_id: string;
  /** `CurationSource` as JSON. */
  source: string;
  /** The `fine-tune` execution's key. */
  project: string;
  domain: string;
  execution_name: string;
  created_at: EpochMillisColumn;
}

export interface Database {
  functions: FunctionsTable;
  function_versions: FunctionVersionsTable;
  invocations: InvocationsTable;
  secrets: SecretsTable;
  aliases: AliasesTable;
  rollouts: RolloutsTable;
  queued_invocations: QueuedInvocationsTable;
  invocation_idempotency_keys: InvocationIdempotencyKeysTable;
  schedules: SchedulesTable;
  message_queues: MessageQueuesTable;
  queue_messages: QueueMessagesTable;
  queue_triggers: QueueTriggersTable;
  function_urls: FunctionUrlsTable;
  workflow_versions: WorkflowVersionsTable;
  workflow_executions: WorkflowExecutionsTable;
  workflow_nodes: WorkflowNodesTable;
  workflow_cache: WorkflowCacheTable;
  khaydarin_logs: KhaydarinLogsTable;
  dataset_images: DatasetImagesTable;
  curations: CurationsTable;
  intelligence_runs: IntelligenceRunsTable;
}

/** Where a query runs: the database, or a transaction on it. */
export type DbExecutor = Kysely<Database> | Transaction<Database>;

export type FunctionRow = Selectable<FunctionsTable>;
export type FunctionVersionRow = Selectable<FunctionVersionsTable>;
export type InvocationRow = Selectable<InvocationsTable>;
export type SecretRow = Selectable<SecretsTable>;
export type AliasRow = Selectable<AliasesTable>;
export type RolloutRow = Selectable<RolloutsTable>;
export type QueuedInvocationRow = Selectable<QueuedInvocationsTable>;
export type ScheduleRow = Selectable<SchedulesTable>;
export type QueueMessageRow = Selectable<QueueMessagesTable>;
export type QueueTriggerRow = Selectable<QueueTriggersTable>;
export type FunctionUrlRow = Selectable<FunctionUrlsTable>;
export type WorkflowVersionRow = Selectable<WorkflowVersionsTable>;
export type WorkflowExecutionRow = Selectable<WorkflowExecutionsTable>;
export type WorkflowNodeRow = Selectable<WorkflowNodesTable>;
export type KhaydarinLogRow = Selectable<KhaydarinLogsTable>;
export type DatasetImageRow = Selectable<DatasetImagesTable>;
export type CurationRow = Selectable<CurationsTable>;
export type IntelligenceRunRow = Selectable<IntelligenceRunsTable>;

/** Column sizes shared by the migrations and the adapter's checks. */
export const columnLengths = {
  functionName: 64,
  incarnation: 32,
  sha256: 64,
  contentHash: 128,
  invocationId: 128,
  traceId: 32,
  kind: 16,
  logKey: 1024,
  nodeId: 255,
  instanceId: 255,
  secretName: 128,
  /** Characters of a stored secret value: a sealed 4 KiB value takes about 5.5 KiB. */
  secretValue: 16_384,
  aliasName: 64,
  stickyHeader: 100,
  rolloutId: 64,
  receipt: 64,
  idempotencyKey: 255,
  scheduleName: 64,
  scheduleExpression: 256,
  timezone: 64,
  queueName: 80,
  messageId: 64,
  triggerId: 32,
  urlAuth: 8,
  workflowName: 64,
  /** An execution's project, domain and name (DNS labels). */
  executionKeyPart: 64,
  /** A node id (at most 63 characters), or `nodeId[index]`. */
  workflowNodeKey: 96,
  workflowNodeId: 64,
  /** `FUNCTION:VERSION:sha256`: at most 64 + 1 + 10 + 1 + 64 characters. */
  workflowCacheKey: 192,
  /** A long text of the workflow tables (a spec, a stored value, attempts): MySQL's mediumtext holds 16 MiB. */
  workflowText: 4_194_304,
} as const;

import { randomBytes } from 'node:crypto';
import { Migrator, MysqlAdapter, PostgresAdapter, sql } from 'kysely';
import type { ColumnDataType, CreateTableBuilder, Expression, Kysely, Migration, MigrationProvider } from 'kysely';
import { intelligenceLimits } from '../../core/intelligence-store-rules.js';
import { columnLengths } from './schema.js';
import type { Database } from './schema.js';

/**
 * Schema migrations, in code so the built package needs no migration files on disk.
 *
 * One set for every engine: only `varchar(n)`, `text`, `integer`, `bigint` and `double precision`, which SQLite,
 * PostgreSQL and MySQL all understand. Indexed text columns are `varchar(n)` because MySQL cannot index unbounded
 * `text`. Where an engine's defaults would change what the queries mean, the column types pin the same meaning
 * everywhere (see `textTypes`). Never edit a migration that has shipped; add a new one.
 */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001_initial': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      await db.schema
        .createTable('functions')
        .$call(table)
        .addColumn('name', varchar(columnLengths.functionName), (col) => col.primaryKey())
        .addColumn('current_version', 'integer', (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .execute();

      await db.schema
        .createTable('function_versions')
        .$call(table)
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('code_sha256', varchar(columnLengths.sha256), (col) => col.notNull())
        .addColumn('code_size_bytes', 'bigint', (col) => col.notNull())
        .addColumn('content_hash', varchar(columnLengths.contentHash), (col) => col.notNull())
        .addColumn('config', text, (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('function_versions_pk', ['function_name', 'version'])
        .addForeignKeyConstraint('function_versions_function_fk', ['function_name'], 'functions', ['name'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();

      await db.schema
        .createTable('invocations')
        .$call(table)
        .addColumn('id', varchar(columnLengths.invocationId), (col) => col.primaryKey())
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('start_kind', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('status', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('init_ms', 'double precision')
        .addColumn('duration_ms', 'double precision', (col) => col.notNull())
        .addColumn('peak_memory_bytes', 'bigint')
        .addColumn('error', text)
        .addColumn('log_key', varchar(columnLengths.logKey))
        .addColumn('node_id', varchar(columnLengths.nodeId))
        .addColumn('instance_id', varchar(columnLengths.instanceId))
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .execute();

      await db.schema
        .createIndex('invocations_function_created_idx')
        .on('invocations')
        .columns(['function_name', 'created_at'])
        .execute();
      // Listing across all functions (newest first) would otherwise scan and sort the whole table.
      await db.schema.createIndex('invocations_created_idx').on('invocations').column('created_at').execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('invocations').execute();
      await db.schema.dropTable('function_versions').execute();
      await db.schema.dropTable('functions').execute();
    },
  },

  /**
   * Function incarnations (`FunctionRecord.incarnation`), which keep a re-created function's pool keys apart from
   * its predecessor's. Existing functions get one each; their versions take their function's.
   */
  '0002_function_incarnation': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar } = textTypes(db);
      for (const table of ['functions', 'function_versions']) {
        await db.schema
          .alterTable(table)
          .addColumn('incarnation', varchar(columnLengths.incarnation), (col) => col.notNull().defaultTo(''))
          .execute();
      }
      const typed = db as unknown as Kysely<Database>;
      const names = await typed.selectFrom('functions').select('name').execute();
      for (const { name } of names) {
        const incarnation = newIncarnation();
        await typed.updateTable('functions').set({ incarnation }).where('name', '=', name).execute();
        await typed.updateTable('function_versions').set({ incarnation }).where('function_name', '=', name).execute();
      }
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('function_versions').dropColumn('incarnation').execute();
      await db.schema.alterTable('functions').dropColumn('incarnation').execute();
    },
  },

  /** Secrets: named values that functions' environments refer to (`FunctionConfig.secrets`). */
  '0003_secrets': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      await db.schema
        .createTable('secrets')
        .$call(table)
        .addColumn('name', varchar(columnLengths.secretName), (col) => col.primaryKey())
        .addColumn('value', text, (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('secrets').execute();
    },
  },

  /**
   * Traffic: aliases (named, weighted pointers to versions) and rollouts. Every existing function gets its `live`
   * alias, all of its traffic on its current version.
   */
  '0004_traffic': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      await db.schema
        .createTable('aliases')
        .$call(table)
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('name', varchar(columnLengths.aliasName), (col) => col.notNull())
        .addColumn('weights', text, (col) => col.notNull())
        .addColumn('sticky_header', varchar(columnLengths.stickyHeader))
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('aliases_pk', ['function_name', 'name'])
        .addForeignKeyConstraint('aliases_function_fk', ['function_name'], 'functions', ['name'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();

      await db.schema
        .createTable('rollouts')
        .$call(table)
        .addColumn('id', varchar(columnLengths.rolloutId), (col) => col.primaryKey())
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('incarnation', varchar(columnLengths.incarnation), (col) => col.notNull())
        .addColumn('alias', varchar(columnLengths.aliasName), (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('baseline', 'integer', (col) => col.notNull())
        .addColumn('state', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('step_index', 'integer', (col) => col.notNull())
        .addColumn('settings', text, (col) => col.notNull())
        .addColumn('step_started_at', 'bigint', (col) => col.notNull())
        .addColumn('revision', 'integer', (col) => col.notNull())
        .addColumn('history', text, (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .addColumn('ended_at', 'bigint')
        .addColumn('running_function', varchar(columnLengths.functionName))
        .addForeignKeyConstraint('rollouts_function_fk', ['function_name'], 'functions', ['name'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();
      await db.schema
        .createIndex('rollouts_function_created_idx')
        .on('rollouts')
        .columns(['function_name', 'created_at'])
        .execute();
      // At most one running rollout per function, whatever races: NULLs (ended rollouts) never collide.
      await db.schema.createIndex('rollouts_running_idx').on('rollouts').column('running_function').unique().execute();
      // A version's figures (rollouts, `versions`): its most recent invocations in a window, read newest first.
      await db.schema
        .createIndex('invocations_function_version_created_idx')
        .on('invocations')
        .columns(['function_name', 'version', 'created_at'])
        .execute();

      const typed = db as unknown as Kysely<Database>;
      const functions = await typed
        .selectFrom('functions')
        .select(['name', 'current_version', 'created_at', 'updated_at'])
        .execute();
      for (const fn of functions) {
        await typed
          .insertInto('aliases')
          .values({
            function_name: fn.name,
            name: 'live',
            weights: JSON.stringify([{ version: Number(fn.current_version), weight: 1 }]),
            sticky_header: null,
            created_at: Number(fn.created_at),
            updated_at: Number(fn.updated_at),
          })
          .execute();
      }
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('invocations_function_version_created_idx').on('invocations').execute();
      await db.schema.dropTable('rollouts').execute();
      await db.schema.dropTable('aliases').execute();
    },
  },

  /** The queue of asynchronous invocations (`SqlInvocationQueue`) and its idempotency keys. */
  '0005_invocation_queue': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      await db.schema
        .createTable('queued_invocations')
        .$call(table)
        .addColumn('id', varchar(columnLengths.invocationId), (col) => col.primaryKey())
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('payload', text, (col) => col.notNull())
        .addColumn('state', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('enqueued_at', 'bigint', (col) => col.notNull())
        .addColumn('due_at', 'bigint')
        .addColumn('delivery_count', 'integer', (col) => col.notNull())
        .addColumn('receipt', varchar(columnLengths.receipt))
        .addColumn('attempts', text, (col) => col.notNull())
        .addColumn('idempotency_key', varchar(columnLengths.idempotencyKey))
        .addColumn('dead_letter_reason', text)
        .addColumn('dead_lettered_at', 'bigint')
        .execute();
      // Receiving: what is due, in order, across functions or for one (ended events have no `due_at`); the capacity
      // and depth counts of a function.
      await db.schema
        .createIndex('queued_invocations_due_idx')
        .on('queued_invocations')
        .columns(['due_at', 'id'])
        .execute();
      await db.schema
        .createIndex('queued_invocations_function_idx')
        .on('queued_invocations')
        .columns(['function_name', 'due_at', 'id'])
        .execute();
      await db.schema
        .createIndex('queued_invocations_dead_letters_idx')
        .on('queued_invocations')
        .columns(['function_name', 'dead_lettered_at'])
        .execute();
      await db.schema
        .createIndex('queued_invocations_receipt_idx')
        .on('queued_invocations')
        .column('receipt')
        .unique()
        .execute();

      await db.schema
        .createTable('invocation_idempotency_keys')
        .$call(table)
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('idempotency_key', varchar(columnLengths.idempotencyKey), (col) => col.notNull())
        .addColumn('invocation_id', varchar(columnLengths.invocationId), (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('invocation_idempotency_keys_pk', ['function_name', 'idempotency_key'])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('invocation_idempotency_keys').execute();
      await db.schema.dropTable('queued_invocations').execute();
    },
  },

  /** Schedules (`SqlScheduleStore`): functions invoked asynchronously by cron, rate or one-time expressions. */
  '0006_schedules': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      await db.schema
        .createTable('schedules')
        .$call(table)
        .addColumn('name', varchar(columnLengths.scheduleName), (col) => col.primaryKey())
        // Not a foreign key: a schedule outlives its function, whose ticks the leader then skips.
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('expression', varchar(columnLengths.scheduleExpression), (col) => col.notNull())
        .addColumn('timezone', varchar(columnLengths.timezone), (col) => col.notNull())
        .addColumn('event', text, (col) => col.notNull())
        .addColumn('state', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('missed', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('retries', 'integer')
        .addColumn('max_event_age_seconds', 'integer')
        .addColumn('next_fire_at', 'bigint')
        .addColumn('last_fired_at', 'bigint')
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .execute();
      // The leader's pass: what is due, most overdue first (paused schedules have no `next_fire_at`).
      await db.schema
        .createIndex('schedules_next_fire_idx')
        .on('schedules')
        .columns(['next_fire_at', 'name'])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('schedules').execute();
    },
  },

  /** Named message queues, their messages (`SqlMessageQueues`) and the triggers that run functions on them. */
  '0007_message_queues': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      await db.schema
        .createTable('message_queues')
        .$call(table)
        .addColumn('name', varchar(columnLengths.queueName), (col) => col.primaryKey())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .execute();
      await db.schema
        .createTable('queue_messages')
        .$call(table)
        .addColumn('id', varchar(columnLengths.messageId), (col) => col.primaryKey())
        .addColumn('queue_name', varchar(columnLengths.queueName), (col) => col.notNull())
        .addColumn('body', text, (col) => col.notNull())
        .addColumn('sent_at', 'bigint', (col) => col.notNull())
        .addColumn('visible_at', 'bigint', (col) => col.notNull())
        .addColumn('receive_count', 'integer', (col) => col.notNull())
        .addColumn('first_received_at', 'bigint')
        .addColumn('receipt', varchar(columnLengths.receipt))
        .addForeignKeyConstraint('queue_messages_queue_fk', ['queue_name'], 'message_queues', ['name'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();
      // Receiving reads a queue's visible messages in order up to the batch size, whatever the backlog.
      await db.schema
        .createIndex('queue_messages_visible_idx')
        .on('queue_messages')
        .columns(['queue_name', 'visible_at', 'id'])
        .execute();
      await db.schema
        .createIndex('queue_messages_receipt_idx')
        .on('queue_messages')
        .column('receipt')
        .unique()
        .execute();

      await db.schema
        .createTable('queue_triggers')
        .$call(table)
        .addColumn('id', varchar(columnLengths.triggerId), (col) => col.primaryKey())
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.notNull())
        .addColumn('queue_name', varchar(columnLengths.queueName), (col) => col.notNull())
        .addColumn('batch_size', 'integer', (col) => col.notNull())
        .addColumn('window_seconds', 'integer', (col) => col.notNull())
        .addColumn('max_concurrency', 'integer', (col) => col.notNull())
        .addColumn('max_receives', 'integer', (col) => col.notNull())
        .addColumn('dead_letter_queue', varchar(columnLengths.queueName))
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addForeignKeyConstraint('queue_triggers_function_fk', ['function_name'], 'functions', ['name'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();
      // One trigger per function and queue; a queue's triggers are found when it is deleted.
      await db.schema
        .createIndex('queue_triggers_function_queue_idx')
        .on('queue_triggers')
        .columns(['function_name', 'queue_name'])
        .unique()
        .execute();
      await db.schema.createIndex('queue_triggers_queue_idx').on('queue_triggers').column('queue_name').execute();
      await db.schema
        .createIndex('queue_triggers_dead_letter_idx')
        .on('queue_triggers')
        .column('dead_letter_queue')
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('queue_triggers').execute();
      await db.schema.dropTable('queue_messages').execute();
      await db.schema.dropTable('message_queues').execute();
    },
  },

  /** When a queued invocation was last redriven from the dead letters: its retries and age count from then. */
  '0008_redriven_at': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('queued_invocations').addColumn('redriven_at', 'bigint').execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('queued_invocations').dropColumn('redriven_at').execute();
    },
  },

  /**
   * When a queued invocation succeeded or failed, so retention can delete it later; and an index on when each
   * idempotency key was made, to delete those past their window. Events that ended before this migration count as
   * ending now: each is kept its full retention.
   */
  '0009_ended_at': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('queued_invocations').addColumn('ended_at', 'bigint').execute();
      await sql`update queued_invocations set ended_at = ${Date.now()}
        where state in ('succeeded', 'failed')`.execute(db);
      await db.schema.createIndex('queued_invocations_ended_idx').on('queued_invocations').column('ended_at').execute();
      await db.schema
        .createIndex('invocation_idempotency_keys_created_idx')
        .on('invocation_idempotency_keys')
        .column('created_at')
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropIndex('invocation_idempotency_keys_created_idx').on('invocation_idempotency_keys').execute();
      await db.schema.dropIndex('queued_invocations_ended_idx').on('queued_invocations').execute();
      await db.schema.alterTable('queued_invocations').dropColumn('ended_at').execute();
    },
  },

  /** Function URLs (`SqlFunctionUrlStore`): a config per function, which goes with it. */
  '0010_function_urls': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      await db.schema
        .createTable('function_urls')
        .$call(table)
        .addColumn('function_name', varchar(columnLengths.functionName), (col) => col.primaryKey())
        .addColumn('auth', varchar(columnLengths.urlAuth), (col) => col.notNull())
        .addColumn('cors', text)
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addForeignKeyConstraint('function_urls_function_fk', ['function_name'], 'functions', ['name'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('function_urls').execute();
    },
  },

  /** The trace id of an invocation that tracing sampled, so a record leads to its trace. */
  '0011_invocation_trace_id': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar } = textTypes(db);
      await db.schema.alterTable('invocations').addColumn('trace_id', varchar(columnLengths.traceId)).execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.alterTable('invocations').dropColumn('trace_id').execute();
    },
  },
  /**
   * Workflows (`SqlWorkflowStore`): their versions, executions, node executions and the node output cache. Values,
   * errors, attempts and origins are JSON in text columns.
   */
  '0012_workflows': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      const keyPart = varchar(columnLengths.executionKeyPart);
      await db.schema
        .createTable('workflow_versions')
        .$call(table)
        .addColumn('name', varchar(columnLengths.workflowName), (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('spec', text, (col) => col.notNull())
        .addColumn('spec_hash', varchar(columnLengths.sha256), (col) => col.notNull())
        .addColumn('description', text)
        .addColumn('node_count', 'integer', (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('workflow_versions_pk', ['name', 'version'])
        .execute();

      await db.schema
        .createTable('workflow_executions')
        .$call(table)
        .addColumn('project', keyPart, (col) => col.notNull())
        .addColumn('domain', keyPart, (col) => col.notNull())
        .addColumn('name', keyPart, (col) => col.notNull())
        // Not a foreign key: executions stay when their workflow is deleted.
        .addColumn('workflow_name', varchar(columnLengths.workflowName), (col) => col.notNull())
        .addColumn('workflow_version', 'integer', (col) => col.notNull())
        .addColumn('inputs', text, (col) => col.notNull())
        .addColumn('outputs', text)
        .addColumn('phase', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('error', text)
        .addColumn('origin', text, (col) => col.notNull())
        .addColumn('abort_cause', text)
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .addColumn('revision', 'integer', (col) => col.notNull())
        .addPrimaryKeyConstraint('workflow_executions_pk', ['project', 'domain', 'name'])
        .execute();
      // The engine's pass over what is not over yet, oldest first; listing a project's and domain's, newest first.
      await db.schema
        .createIndex('workflow_executions_phase_idx')
        .on('workflow_executions')
        .columns(['phase', 'created_at'])
        .execute();
      await db.schema
        .createIndex('workflow_executions_created_idx')
        .on('workflow_executions')
        .columns(['project', 'domain', 'created_at', 'name'])
        .execute();

      await db.schema
        .createTable('workflow_nodes')
        .$call(table)
        .addColumn('project', keyPart, (col) => col.notNull())
        .addColumn('domain', keyPart, (col) => col.notNull())
        .addColumn('name', keyPart, (col) => col.notNull())
        .addColumn('node_key', varchar(columnLengths.workflowNodeKey), (col) => col.notNull())
        .addColumn('node_id', varchar(columnLengths.workflowNodeId), (col) => col.notNull())
        .addColumn('item', 'integer')
        .addColumn('phase', varchar(columnLengths.kind), (col) => col.notNull())
        .addColumn('input', text)
        .addColumn('output', text)
        .addColumn('error', text)
        .addColumn('attempts', text, (col) => col.notNull())
        .addColumn('function_version', 'integer')
        .addColumn('cache_hit', 'integer', (col) => col.notNull())
        .addColumn('child', text)
        .addColumn('not_before', 'bigint')
        .addColumn('deadline', 'bigint')
        .addColumn('claimed_by', varchar(columnLengths.instanceId))
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('ended_at', 'bigint')
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .addColumn('revision', 'integer', (col) => col.notNull())
        .addPrimaryKeyConstraint('workflow_nodes_pk', ['project', 'domain', 'name', 'node_key'])
        .execute();

      await db.schema
        .createTable('workflow_cache')
        .$call(table)
        .addColumn('cache_key', varchar(columnLengths.workflowCacheKey), (col) => col.primaryKey())
        .addColumn('output', text, (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('workflow_cache').execute();
      await db.schema.dropTable('workflow_nodes').execute();
      await db.schema.dropTable('workflow_executions').execute();
      await db.schema.dropTable('workflow_versions').execute();
    },
  },

  /**
   * The intelligence layer: the prompt-to-plan log (the seed's `khaydarin_logs`, plus planner, attempts, problems and
   * warnings), uploaded dataset images, curation jobs and fine-tuning runs. JSON documents are text, as elsewhere.
   */
  '0013_intelligence': {
    async up(db: Kysely<unknown>): Promise<void> {
      const { varchar, text, table } = textTypes(db);
      const id = varchar(intelligenceLimits.id);
      await db.schema
        .createTable('khaydarin_logs')
        .$call(table)
        .addColumn('id', id, (col) => col.primaryKey())
        .addColumn('request_id', varchar(intelligenceLimits.requestId), (col) => col.notNull())
        .addColumn('user_id', varchar(intelligenceLimits.userId), (col) => col.notNull())
        .addColumn('received_at', 'bigint', (col) => col.notNull())
        .addColumn('user_prompt', text, (col) => col.notNull())
        .addColumn('llm_prompt', text)
        .addColumn('llm_raw_response', text)
        .addColumn('structured_plan', text)
        .addColumn('status', varchar(intelligenceLimits.status), (col) => col.notNull())
        .addColumn('processing_time_ms', 'integer', (col) => col.notNull())
        .addColumn('planner', text, (col) => col.notNull())
        .addColumn('attempts', 'integer', (col) => col.notNull())
        .addColumn('problems', text, (col) => col.notNull())
        .addColumn('warnings', text, (col) => col.notNull())
        .addUniqueConstraint('khaydarin_logs_request_id_key', ['request_id'])
        .execute();
      // A user's requests and everyone's, newest first (id breaks ties), read in index order.
      await db.schema
        .createIndex('idx_khaydarin_logs_user_id')
        .on('khaydarin_logs')
        .columns(['user_id', 'received_at', 'id'])
        .execute();
      await db.schema
        .createIndex('idx_khaydarin_logs_received_at')
        .on('khaydarin_logs')
        .columns(['received_at', 'id'])
        .execute();

      await db.schema
        .createTable('dataset_images')
        .$call(table)
        .addColumn('dataset_id', id, (col) => col.notNull())
        .addColumn('name', varchar(intelligenceLimits.imageName), (col) => col.notNull())
        .addColumn('image_id', id, (col) => col.notNull())
        .addColumn('blob_key', text, (col) => col.notNull())
        .addColumn('bytes', 'bigint', (col) => col.notNull())
        .addColumn('sha256', varchar(intelligenceLimits.sha256), (col) => col.notNull())
        .addColumn('content_type', text, (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('dataset_images_pk', ['dataset_id', 'name'])
        .addUniqueConstraint('dataset_images_image_key', ['dataset_id', 'image_id'])
        .execute();

      await db.schema
        .createTable('curations')
        .$call(table)
        .addColumn('id', id, (col) => col.primaryKey())
        .addColumn('project_id', varchar(intelligenceLimits.projectId), (col) => col.notNull())
        .addColumn('source', text, (col) => col.notNull())
        .addColumn('status', varchar(intelligenceLimits.status), (col) => col.notNull())
        .addColumn('progress', text, (col) => col.notNull())
        .addColumn('images_for_feedback', text, (col) => col.notNull())
        .addColumn('feedback', text, (col) => col.notNull())
        .addColumn('curated_dataset_id', id)
        .addColumn('curated_dataset_uri', text)
        .addColumn('errors', text, (col) => col.notNull())
        .addColumn('failure', text)
        .addColumn('embedder', text, (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .addColumn('revision', 'integer', (col) => col.notNull())
        .execute();
      // The jobs to resume at start: those not over, oldest first.
      await db.schema.createIndex('curations_status_idx').on('curations').columns(['status', 'created_at']).execute();

      await db.schema
        .createTable('intelligence_runs')
        .$call(table)
        .addColumn('id', id, (col) => col.primaryKey())
        .addColumn('prompt', text, (col) => col.notNull())
        .addColumn('user_id', varchar(intelligenceLimits.userId), (col) => col.notNull())
        .addColumn('source', text, (col) => col.notNull())
        .addColumn('project', varchar(intelligenceLimits.executionKeyPart), (col) => col.notNull())
        .addColumn('domain', varchar(intelligenceLimits.executionKeyPart), (col) => col.notNull())
        .addColumn('execution_name', varchar(intelligenceLimits.executionKeyPart), (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .execute();
      await db.schema
        .createIndex('intelligence_runs_created_idx')
        .on('intelligence_runs')
        .columns(['created_at', 'id'])
        .execute();
    },

    async down(db: Kysely<unknown>): Promise<void> {
      await db.schema.dropTable('intelligence_runs').execute();
      await db.schema.dropTable('curations').execute();
      await db.schema.dropTable('dataset_images').execute();
      await db.schema.dropTable('khaydarin_logs').execute();
    },
  },
};

/** A fresh function incarnation: 16 random hex digits. */
export function newIncarnation(): string {
  return randomBytes(8).toString('hex');
}

/** A column type as Kysely's `addColumn` takes it. */
type DataTypeExpression = ColumnDataType | Expression<unknown>;

/** Column types and table options for text, per engine. */
interface TextTypes {
  /** An indexable string of at most `length` characters. */
  varchar: (length: number) => DataTypeExpression;
  /** A long string: JSON documents. */
  text: DataTypeExpression;
  /** Applied to every table: its default character set, where the engine has one. */
  table: <TB extends string, C extends string>(builder: CreateTableBuilder<TB, C>) => CreateTableBuilder<TB, C>;
}

/**
 * Text that stores all of Unicode and compares byte by byte on every engine, as SQLite's default BINARY collation
 * does: equality and `order by` then mean the same on all three, whatever the server's defaults.
 * - PostgreSQL: columns collate "C" (a database's default collation can be a locale's, which ignores dashes when
 *   sorting).
 * - MySQL/MariaDB: tables are utf8mb4 with the binary collation (MariaDB before 11.6 defaults to latin1, which
 *   cannot hold an emoji, and MySQL's default collations are case-insensitive), and long text is `mediumtext`:
 *   `text` holds only 64 KiB there, less than the longest serialized error.
 * The `utf8mb4_bin` collation exists on MySQL 5.5+ and every MariaDB; it ignores trailing spaces in comparisons.
 */
function textTypes(db: Kysely<unknown>): TextTypes {
  const adapter = db.getExecutor().adapter;
  if (adapter instanceof PostgresAdapter) {
    return { varchar: (length) => sql`varchar(${sql.raw(String(length))}) collate "C"`, text: 'text', table: same };
  }
  if (adapter instanceof MysqlAdapter) {
    return {
      varchar: (length) => `varchar(${length})` as const,
      text: sql`mediumtext`,
      table: (builder) => builder.modifyEnd(sql`engine = InnoDB default character set utf8mb4 collate utf8mb4_bin`),
    };
  }
  return { varchar: (length) => `varchar(${length})` as const, text: 'text', table: same };
}

function same<T>(value: T): T {
  return value;
}

/** The migrations above as a Kysely `MigrationProvider`. */
export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve({ ...migrations }),
};

export const migrationTableName = 'savassan_migration';
export const migrationLockTableName = 'savassan_migration_lock';

/** A Kysely `Migrator` over Savassan's migrations and bookkeeping tables. */
export function createMigrator<DB>(db: Kysely<DB>): Migrator {
  return new Migrator({ db, provider: migrationProvider, migrationTableName, migrationLockTableName });
}

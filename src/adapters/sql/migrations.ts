import { Migrator } from 'kysely';
import type { Kysely, Migration, MigrationProvider } from 'kysely';
import { columnLengths } from './schema.js';

/**
 * Schema migrations, in code so the built package needs no migration files on disk.
 *
 * Dialect-neutral on purpose: only `varchar(n)`, `text`, `integer`, `bigint` and `double precision`,
 * which SQLite, PostgreSQL and MySQL all understand. Indexed text columns are `varchar(n)` because MySQL
 * cannot index unbounded `text`. Never edit a migration that has shipped; add a new one.
 */
export const migrations: Readonly<Record<string, Migration>> = {
  '0001_initial': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('functions')
        .addColumn('name', `varchar(${columnLengths.functionName})`, (col) => col.primaryKey())
        .addColumn('current_version', 'integer', (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addColumn('updated_at', 'bigint', (col) => col.notNull())
        .execute();

      await db.schema
        .createTable('function_versions')
        .addColumn('function_name', `varchar(${columnLengths.functionName})`, (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('code_sha256', `varchar(${columnLengths.sha256})`, (col) => col.notNull())
        .addColumn('code_size_bytes', 'bigint', (col) => col.notNull())
        .addColumn('content_hash', `varchar(${columnLengths.contentHash})`, (col) => col.notNull())
        .addColumn('config', 'text', (col) => col.notNull())
        .addColumn('created_at', 'bigint', (col) => col.notNull())
        .addPrimaryKeyConstraint('function_versions_pk', ['function_name', 'version'])
        .addForeignKeyConstraint('function_versions_function_fk', ['function_name'], 'functions', ['name'], (fk) =>
          fk.onDelete('cascade'),
        )
        .execute();

      await db.schema
        .createTable('invocations')
        .addColumn('id', `varchar(${columnLengths.invocationId})`, (col) => col.primaryKey())
        .addColumn('function_name', `varchar(${columnLengths.functionName})`, (col) => col.notNull())
        .addColumn('version', 'integer', (col) => col.notNull())
        .addColumn('start_kind', `varchar(${columnLengths.kind})`, (col) => col.notNull())
        .addColumn('status', `varchar(${columnLengths.kind})`, (col) => col.notNull())
        .addColumn('init_ms', 'double precision')
        .addColumn('duration_ms', 'double precision', (col) => col.notNull())
        .addColumn('peak_memory_bytes', 'bigint')
        .addColumn('error', 'text')
        .addColumn('log_key', `varchar(${columnLengths.logKey})`)
        .addColumn('node_id', `varchar(${columnLengths.nodeId})`)
        .addColumn('instance_id', `varchar(${columnLengths.instanceId})`)
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
};

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

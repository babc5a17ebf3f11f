// Upgrading a database made by an earlier release: each migration applied to data the release before it wrote.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Kysely, sql } from 'kysely';
import { openSqliteMetadataStore } from '../sqlite/sqlite-metadata-store.js';
import { WorkerSqliteDialect } from '../sqlite/worker-sqlite-dialect.js';
import { defaultRolloutSettings } from '../../core/traffic-rules.js';
import { createMigrator } from './migrations.js';
import type { Database } from './schema.js';
import { SqlTrafficStore } from './sql-traffic-store.js';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

/** A SQLite database at `0001_initial` holding two functions (one with two versions), as that release wrote them. */
async function initialDatabase(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'savassan-migrations-'));
  dirs.push(dir);
  const path = join(dir, 'savassan.db');
  const db = new Kysely<Database>({ dialect: new WorkerSqliteDialect({ path }) });
  try {
    const { error } = await createMigrator(db).migrateTo('0001_initial');
    assert.equal(error, undefined);
    const config = JSON.stringify({ timeoutSeconds: 3 });
    await sql`insert into functions (name, current_version, created_at, updated_at)
      values ('alpha', 2, 1, 2), ('bravo', 1, 1, 1)`.execute(db);
    await sql`insert into function_versions
      (function_name, version, code_sha256, code_size_bytes, content_hash, config, created_at)
      values ('alpha', 1, 'a', 1, 'h1', ${config}, 1), ('alpha', 2, 'a', 1, 'h2', ${config}, 2),
             ('bravo', 1, 'b', 1, 'h1', ${config}, 1)`.execute(db);
  } finally {
    await db.destroy();
  }
  return path;
}

describe('migrations', () => {
  it('0002 gives each existing function its own incarnation, shared by its versions', async () => {
    const store = await openSqliteMetadataStore(await initialDatabase(), { durability: 'full' });
    try {
      const [alpha, bravo] = await store.listFunctions();
      assert.ok(alpha && bravo);
      assert.match(alpha.incarnation, /^[0-9a-f]{16}$/);
      assert.match(bravo.incarnation, /^[0-9a-f]{16}$/);
      assert.notEqual(alpha.incarnation, bravo.incarnation);
      assert.deepEqual(
        (await store.listVersions('alpha')).map((v) => [v.version, v.incarnation]),
        [
          [1, alpha.incarnation],
          [2, alpha.incarnation],
        ],
      );
      assert.equal((await store.getVersion('bravo', 1))?.incarnation, bravo.incarnation);

      // Deleted and created again after the upgrade: a new incarnation, as for any function.
      await store.deleteFunction('alpha');
      const again = await store.deployVersion({
        functionName: 'alpha',
        codeSha256: 'c',
        codeSizeBytes: 1,
        contentHash: 'h3',
        config: (await store.getVersion('bravo', 1))!.config,
      });
      assert.notEqual(again.function.incarnation, alpha.incarnation);
    } finally {
      await store.close();
    }
  });

  it('0003 adds secrets: versions stored before name none, and rolling back to them needs none', async () => {
    const store = await openSqliteMetadataStore(await initialDatabase(), { durability: 'full' });
    try {
      assert.deepEqual((await store.getVersion('alpha', 1))?.config.secrets, {});
      assert.deepEqual(await store.listSecrets(), []);
      await store.putSecret('TOKEN', 'v');
      assert.deepEqual(
        (await store.listSecrets()).map((s) => [s.name, s.usedBy]),
        [['TOKEN', []]],
      );
      assert.equal((await store.setCurrentVersion('alpha', 1)).currentVersion, 1);
      assert.equal(await store.deleteSecret('TOKEN'), true);
    } finally {
      await store.close();
    }
  });

  it("0004 indexes invocations by function, version and time: a version's recent calls are read through it", async () => {
    const path = await initialDatabase();
    const db = new Kysely<Database>({ dialect: new WorkerSqliteDialect({ path }) });
    try {
      const { error } = await createMigrator(db).migrateToLatest();
      assert.equal(error, undefined);
      const plan = await sql<{ detail: string }>`explain query plan
        select duration_ms from invocations
        where function_name = ${'alpha'} and version = ${1} and created_at >= ${0} and status <> ${'throttled'}
        order by created_at desc limit 10000`.execute(db);
      assert.deepEqual(
        plan.rows.map((row) => row.detail),
        [
          'SEARCH invocations USING INDEX invocations_function_version_created_idx (function_name=? AND version=? AND created_at>?)',
        ],
      );
    } finally {
      await db.destroy();
    }
  });

  it('0004 gives each existing function its live alias, all traffic on its current version', async () => {
    const store = await openSqliteMetadataStore(await initialDatabase(), { durability: 'full' });
    const traffic = new SqlTrafficStore(store.shared());
    try {
      assert.deepEqual(
        (await traffic.listAliases('alpha')).map((alias) => [alias.name, alias.weights, alias.stickyHeader]),
        [['live', [{ version: 2, weight: 1 }], null]],
      );
      const bravo = await traffic.getAlias('bravo', 'live');
      assert.deepEqual(bravo?.weights, [{ version: 1, weight: 1 }]);
      assert.deepEqual([bravo?.createdAt.getTime(), bravo?.updatedAt.getTime()], [1, 1], "the function's times");
      assert.deepEqual(await traffic.listRollouts('alpha'), []);

      // Traffic moves as on any function: a rollout back to version 1, then live at 100% on it.
      const rollout = await traffic.startRollout({
        functionName: 'alpha',
        alias: 'live',
        version: 1,
        settings: { ...defaultRolloutSettings },
      });
      assert.equal(rollout.baseline, 2);
      await traffic.updateRollout('alpha', rollout.id, rollout.revision, {
        state: 'aborted',
        stepIndex: 0,
        stepStartedAt: rollout.stepStartedAt,
        events: [],
        weights: [{ version: 2, weight: 1 }],
      });
      assert.equal((await store.setCurrentVersion('alpha', 1)).currentVersion, 1);
      assert.deepEqual((await traffic.getAlias('alpha', 'live'))?.weights, [{ version: 1, weight: 1 }]);
    } finally {
      await store.close();
    }
  });

  it('0005 indexes queued invocations by due time: receiving reads a batch in order, without sorting the backlog', async () => {
    const db = new Kysely<Database>({ dialect: new WorkerSqliteDialect({ path: ':memory:' }) });
    try {
      const { error } = await createMigrator(db).migrateToLatest();
      assert.equal(error, undefined);
      const plan = async (query: ReturnType<typeof sql>) =>
        (await sql<{ detail: string }>`explain query plan ${query}`.execute(db)).rows.map((row) => row.detail);
      assert.deepEqual(
        await plan(sql`select * from queued_invocations where due_at <= ${5} order by due_at, id limit 10`),
        ['SEARCH queued_invocations USING INDEX queued_invocations_due_idx (due_at<?)'],
      );
      assert.deepEqual(
        await plan(
          sql`select * from queued_invocations where due_at <= ${5} and function_name = ${'a'}
            order by due_at, id limit 10`,
        ),
        ['SEARCH queued_invocations USING INDEX queued_invocations_function_idx (function_name=? AND due_at<?)'],
      );
    } finally {
      await db.destroy();
    }
  });
  it("0007 indexes a queue's messages by visibility: receiving reads a batch in order, without sorting the backlog", async () => {
    const db = new Kysely<Database>({ dialect: new WorkerSqliteDialect({ path: ':memory:' }) });
    try {
      const { error } = await createMigrator(db).migrateToLatest();
      assert.equal(error, undefined);
      const plan = async (query: ReturnType<typeof sql>) =>
        (await sql<{ detail: string }>`explain query plan ${query}`.execute(db)).rows.map((row) => row.detail);
      assert.deepEqual(
        await plan(
          sql`select * from queue_messages where queue_name = ${'q'} and visible_at <= ${5}
            order by visible_at, id limit 10`,
        ),
        ['SEARCH queue_messages USING INDEX queue_messages_visible_idx (queue_name=? AND visible_at<?)'],
      );
    } finally {
      await db.destroy();
    }
  });

  it('0009 gives events ended before it an end time of the upgrade, and indexes what retention deletes by', async () => {
    const db = new Kysely<Database>({ dialect: new WorkerSqliteDialect({ path: ':memory:' }) });
    try {
      assert.equal((await createMigrator(db).migrateTo('0008_redriven_at')).error, undefined);
      for (const state of ['queued', 'running', 'succeeded', 'failed', 'dead_lettered']) {
        await sql`insert into queued_invocations
          (id, function_name, payload, state, enqueued_at, due_at, delivery_count, attempts)
          values (${state}, 'alpha', 'x', ${state}, 1, null, 1, '[]')`.execute(db);
      }
      const before = Date.now();
      assert.equal((await createMigrator(db).migrateToLatest()).error, undefined);
      const rows = await db.selectFrom('queued_invocations').select(['id', 'ended_at']).orderBy('id').execute();
      const endedAt = new Map(rows.map((row) => [row.id, row.ended_at === null ? null : Number(row.ended_at)]));
      assert.equal(endedAt.get('queued'), null);
      assert.equal(endedAt.get('running'), null);
      assert.equal(endedAt.get('dead_lettered'), null, 'a dead letter is never swept');
      assert.ok(endedAt.get('succeeded')! >= before, 'kept a full retention from the upgrade');
      assert.ok(endedAt.get('failed')! >= before);

      const plan = async (query: ReturnType<typeof sql>) =>
        (await sql<{ detail: string }>`explain query plan ${query}`.execute(db)).rows.map((row) => row.detail);
      assert.deepEqual(
        await plan(sql`select id from queued_invocations where ended_at < ${5} order by ended_at limit 500`),
        ['SEARCH queued_invocations USING INDEX queued_invocations_ended_idx (ended_at<?)'],
      );
      assert.deepEqual(
        await plan(
          sql`select function_name, idempotency_key from invocation_idempotency_keys where created_at <= ${5}
            order by created_at limit 500`,
        ),
        ['SEARCH invocation_idempotency_keys USING INDEX invocation_idempotency_keys_created_idx (created_at<?)'],
      );
    } finally {
      await db.destroy();
    }
  });
  it('0012 indexes executions by phase and by project, domain and time: the engine and listing read no terminal or other rows', async () => {
    const db = new Kysely<Database>({ dialect: new WorkerSqliteDialect({ path: ':memory:' }) });
    try {
      const { error } = await createMigrator(db).migrateToLatest();
      assert.equal(error, undefined);
      const plan = async (query: ReturnType<typeof sql>) =>
        (await sql<{ detail: string }>`explain query plan ${query}`.execute(db)).rows.map((row) => row.detail);
      assert.deepEqual(
        await plan(
          sql`select * from workflow_executions where phase in (${'QUEUED'}, ${'RUNNING'})
            order by created_at, project, domain, name limit 10`,
        ),
        [
          'SEARCH workflow_executions USING INDEX workflow_executions_phase_idx (phase=?)',
          'USE TEMP B-TREE FOR ORDER BY',
        ],
      );
      // A page after a token, newest first: read in index order, no sort.
      assert.deepEqual(
        await plan(
          sql`select * from workflow_executions where project = ${'p'} and domain = ${'d'}
            and (created_at < ${5} or (created_at = ${5} and name < ${'n'}))
            order by created_at desc, name desc limit 10`,
        ),
        ['SEARCH workflow_executions USING INDEX workflow_executions_created_idx (project=? AND domain=?)'],
      );
    } finally {
      await db.destroy();
    }
  });

  it('0013 reads plans and runs newest first in index order, and active curations by status', async () => {
    const db = new Kysely<Database>({ dialect: new WorkerSqliteDialect({ path: ':memory:' }) });
    try {
      const { error } = await createMigrator(db).migrateToLatest();
      assert.equal(error, undefined);
      const plan = async (query: ReturnType<typeof sql>) =>
        (await sql<{ detail: string }>`explain query plan ${query}`.execute(db)).rows.map((row) => row.detail);
      assert.deepEqual(
        await plan(
          sql`select * from khaydarin_logs where user_id = ${'u'} and received_at < ${5}
            order by received_at desc, id desc limit 10`,
        ),
        ['SEARCH khaydarin_logs USING INDEX idx_khaydarin_logs_user_id (user_id=? AND received_at<?)'],
      );
      assert.deepEqual(await plan(sql`select * from khaydarin_logs order by received_at desc, id desc limit 10`), [
        'SCAN khaydarin_logs USING INDEX idx_khaydarin_logs_received_at',
      ]);
      assert.deepEqual(
        await plan(
          sql`select * from intelligence_runs where created_at < ${5} order by created_at desc, id desc limit 10`,
        ),
        ['SEARCH intelligence_runs USING INDEX intelligence_runs_created_idx (created_at<?)'],
      );
      assert.deepEqual(
        (
          await plan(
            sql`select * from curations where status in (${'PENDING'}, ${'EMBEDDING'}) order by created_at, id`,
          )
        )[0],
        'SEARCH curations USING INDEX curations_status_idx (status=?)',
      );
    } finally {
      await db.destroy();
    }
  });
});

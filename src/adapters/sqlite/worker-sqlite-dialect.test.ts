import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Worker } from 'node:worker_threads';
import { CompiledQuery, Kysely, sql } from 'kysely';
import type { Generated } from 'kysely';
import { isPlatformError } from '../../core/errors.js';
import { classifySqlError } from '../sql/sql-metadata-store.js';
import { openSqliteMetadataStore } from './sqlite-metadata-store.js';
import { SqliteWorkerError, WorkerSqliteDialect } from './worker-sqlite-dialect.js';

interface TestDatabase {
  items: { id: Generated<number>; name: string; data: Buffer | null };
}

interface Opened {
  db: Kysely<TestDatabase>;
  /** The worker thread, once the first query has started it. */
  worker: () => Worker;
  /** Resolves with the worker's exit code when its thread has ended. */
  exited: () => Promise<number>;
}

const tempDirs: string[] = [];

after(async () => {
  await Promise.all(tempDirs.map((dir) => rm(dir, { recursive: true, force: true })));
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'savassan-sqlite-worker-'));
  tempDirs.push(dir);
  return dir;
}

async function open(path = ':memory:'): Promise<Opened> {
  let started: { worker: Worker; exited: Promise<number> } | undefined;
  const db = new Kysely<TestDatabase>({
    dialect: new WorkerSqliteDialect({
      path,
      onWorkerStart: (worker) => {
        started = { worker, exited: new Promise((resolve) => worker.once('exit', resolve)) };
      },
    }),
  });
  await db.schema
    .createTable('items')
    .ifNotExists()
    .addColumn('id', 'integer', (col) => col.primaryKey())
    .addColumn('name', 'text', (col) => col.notNull().unique())
    .addColumn('data', 'blob')
    .execute();
  const get = (): { worker: Worker; exited: Promise<number> } => {
    assert.ok(started, 'the worker has started');
    return started;
  };
  return { db, worker: () => get().worker, exited: () => get().exited };
}

async function names(db: Kysely<TestDatabase>): Promise<string[]> {
  const rows = await db.selectFrom('items').select('name').orderBy('id').execute();
  return rows.map((row) => row.name);
}

/** A statement that keeps the worker busy for most of a second. */
const slowRows = 5_000_000;
const slowQuery = sql<{ n: number }>`
  with recursive c(x) as (select 1 union all select x + 1 from c where x < ${slowRows}) select count(*) as n from c`;

describe('WorkerSqliteDialect', () => {
  it('runs statements in the worker: rows, affected rows, insert ids and blobs', async () => {
    const { db } = await open();
    try {
      const inserted = await db
        .insertInto('items')
        .values([
          { name: 'a', data: Buffer.from([1, 2, 3]) },
          { name: 'b', data: null },
        ])
        .executeTakeFirstOrThrow();
      assert.equal(inserted.numInsertedOrUpdatedRows, 2n);
      assert.equal(inserted.insertId, 2n);

      const rows = await db.selectFrom('items').selectAll().orderBy('id').execute();
      assert.deepEqual(rows, [
        { id: 1, name: 'a', data: Buffer.from([1, 2, 3]) },
        { id: 2, name: 'b', data: null },
      ]);
      assert.ok(Buffer.isBuffer(rows[0]?.data), 'blobs come back as Buffers, as from better-sqlite3');

      // Reader statements that write (RETURNING) return their rows.
      const returned = await db.insertInto('items').values({ name: 'c' }).returning(['id', 'name']).execute();
      assert.deepEqual(returned, [{ id: 3, name: 'c' }]);

      const updated = await db.updateTable('items').set({ data: null }).executeTakeFirstOrThrow();
      assert.equal(updated.numUpdatedRows, 3n);

      // Same number handling as before (no safeIntegers): integers come back as JavaScript numbers.
      const big = await sql<{ v: unknown }>`select ${2 ** 40} * 4 as v`.execute(db);
      assert.deepEqual(big.rows, [{ v: 2 ** 42 }]);
    } finally {
      await db.destroy();
    }
  });

  it('rolls a failed transaction back and commits a successful one', async () => {
    const { db } = await open();
    try {
      await assert.rejects(
        db.transaction().execute(async (trx) => {
          await trx.insertInto('items').values({ name: 'rolled-back' }).execute();
          assert.deepEqual(await names(trx), ['rolled-back'], 'visible inside the transaction');
          throw new Error('abort');
        }),
        /abort/,
      );
      assert.deepEqual(await names(db), []);

      await db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ name: 'committed' }).execute();
      });
      assert.deepEqual(await names(db), ['committed']);

      // A failing statement inside a transaction rolls back the statements before it.
      await assert.rejects(
        db.transaction().execute(async (trx) => {
          await trx.insertInto('items').values({ name: 'first' }).execute();
          await trx.insertInto('items').values({ name: 'committed' }).execute();
        }),
        /UNIQUE constraint failed/,
      );
      assert.deepEqual(await names(db), ['committed']);

      // Savepoints (controlled transactions) go through the same connection.
      const trx = await db.startTransaction().execute();
      await trx.insertInto('items').values({ name: 'kept' }).execute();
      const savepoint = await trx.savepoint('sp').execute();
      await savepoint.insertInto('items').values({ name: 'undone' }).execute();
      await savepoint.rollbackToSavepoint('sp').execute();
      await trx.commit().execute();
      assert.deepEqual(await names(db), ['committed', 'kept']);
    } finally {
      await db.destroy();
    }
  });

  it('lends its one connection to a transaction until it commits', async () => {
    const { db } = await open();
    try {
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let inserted!: () => void;
      const insertedOnce = new Promise<void>((resolve) => (inserted = resolve));
      const transaction = db.transaction().execute(async (trx) => {
        await trx.insertInto('items').values({ name: 'in-transaction' }).execute();
        inserted();
        await gate;
      });
      await insertedOnce;
      let outsideDone = false;
      const outside = names(db).then((result) => {
        outsideDone = true;
        return result;
      });
      await delay(50);
      assert.equal(outsideDone, false, 'a query outside the transaction waits for the connection');
      release();
      await transaction;
      assert.deepEqual(await outside, ['in-transaction']);
    } finally {
      await db.destroy();
    }
  });

  it("keeps better-sqlite3's error name and code", async () => {
    const { db } = await open();
    try {
      await db.insertInto('items').values({ id: 1, name: 'a' }).execute();
      const duplicateKey = await db
        .insertInto('items')
        .values({ id: 1, name: 'b' })
        .execute()
        .then(
          () => assert.fail('duplicate key inserted'),
          (err: unknown) => err,
        );
      assert.ok(duplicateKey instanceof SqliteWorkerError);
      assert.equal(duplicateKey.name, 'SqliteError');
      assert.equal(duplicateKey.code, 'SQLITE_CONSTRAINT_PRIMARYKEY');
      assert.equal(classifySqlError(duplicateKey), 'unique-violation');

      await assert.rejects(db.insertInto('items').values({ id: 2, name: 'a' }).execute(), {
        code: 'SQLITE_CONSTRAINT_UNIQUE',
      });
      await assert.rejects(sql`select * from missing`.execute(db), { name: 'SqliteError', code: 'SQLITE_ERROR' });
      // Values better-sqlite3 cannot bind fail the statement, not the worker.
      await assert.rejects(sql`select ${true} as v`.execute(db), { name: 'TypeError' });
      await assert.rejects(db.executeQuery(CompiledQuery.raw('select ? as v', [() => 1])), { name: 'DataCloneError' });
      assert.deepEqual(await names(db), ['a'], 'the worker still answers');
    } finally {
      await db.destroy();
    }
  });

  it('refuses streaming queries', async () => {
    const { db } = await open();
    try {
      await assert.rejects(
        (async () => {
          for await (const _row of db.selectFrom('items').selectAll().stream()) assert.fail('streamed a row');
        })(),
        /does not support streaming/,
      );
    } finally {
      await db.destroy();
    }
  });

  it('fails waiting and later queries with UNAVAILABLE when the worker dies', async () => {
    const { db, worker, exited } = await open();
    const slow = slowQuery.execute(db);
    const queued = names(db);
    await delay(50);
    await worker().terminate();
    assert.equal(await exited(), 1);

    for (const pending of [slow, queued, names(db)]) {
      await assert.rejects(pending, (err: unknown) => {
        assert.ok(isPlatformError(err, 'UNAVAILABLE'), String(err));
        assert.match(err.message, /SQLite worker for :memory: exited unexpectedly/);
        return true;
      });
    }
    await assert.rejects(
      db.transaction().execute((trx) => names(trx)),
      /exited unexpectedly/,
    );
    await db.destroy();
  });

  it('fails with UNAVAILABLE when the worker crashes', async () => {
    const { db, worker, exited } = await open();
    // A message outside the protocol without an id cannot be answered: the worker throws and dies.
    worker().postMessage({ type: 'nonsense' });
    await assert.rejects(names(db), (err: unknown) => {
      assert.ok(isPlatformError(err, 'UNAVAILABLE'), String(err));
      assert.match(err.message, /SQLite worker for :memory: crashed: request has no valid id/);
      return true;
    });
    worker().ref(); // The dialect lets go of a failed worker; keep the test alive until the thread has ended.
    assert.equal(await exited(), 1);
    await assert.rejects(names(db), /crashed/);
    await db.destroy();
  });

  it('answers a malformed request that has an id with an error', async () => {
    const { db, worker } = await open();
    try {
      worker().ref(); // The dialect only holds the process open for its own requests.
      const reply = new Promise((resolve) => worker().once('message', resolve));
      worker().postMessage({ type: 'query', id: 999_999, begin: false, sql: 'select 1', parameters: 'not an array' });
      assert.deepEqual(await reply, {
        type: 'error',
        id: 999_999,
        error: { name: 'SqliteWorkerProtocolError', message: 'query: parameters must be an array' },
      });
      assert.deepEqual(await names(db), [], 'the worker still answers');
    } finally {
      await db.destroy();
    }
  });

  it('closes the database and ends the worker thread on destroy', async () => {
    const dir = await tempDir();
    const path = join(dir, 'close.db');
    const { db, exited } = await open(path);
    await db.insertInto('items').values({ name: 'durable' }).execute();
    const slow = slowQuery.execute(db);
    await delay(50);
    await db.destroy();
    // Statements sent before destroy finish first.
    assert.deepEqual((await slow).rows, [{ n: slowRows }]);
    assert.equal(await Promise.race([exited(), delay(1000, 'still running')]), 0);
    await assert.rejects(names(db), /destroyed/);
    await db.destroy();

    const reopened = await open(path);
    try {
      assert.deepEqual(await names(reopened.db), ['durable']);
    } finally {
      await reopened.db.destroy();
    }
  });

  it('fails to open an unusable path with UNAVAILABLE and ends the worker', async () => {
    const dir = await tempDir();
    let exited: Promise<number> | undefined;
    const db = new Kysely<TestDatabase>({
      dialect: new WorkerSqliteDialect({
        path: dir,
        onWorkerStart: (worker) => {
          exited = new Promise((resolve) => worker.once('exit', resolve));
        },
      }),
    });
    await assert.rejects(names(db), (err: unknown) => {
      assert.ok(isPlatformError(err, 'UNAVAILABLE'), String(err));
      assert.match(err.message, /cannot open SQLite database .*: unable to open database file/);
      return true;
    });
    assert.ok(exited);
    await exited;
    await db.destroy();
  });
});

describe('SQLite metadata store process lifetime', () => {
  const execFileAsync = promisify(execFile);
  const storeModule = new URL('./sqlite-metadata-store.ts', import.meta.url).href;

  async function runChild(path: string, close: boolean): Promise<string> {
    const script = `
      import { openSqliteMetadataStore } from ${JSON.stringify(storeModule)};
      const store = await openSqliteMetadataStore(${JSON.stringify(path)});
      await store.recordInvocation({
        id: 'inv-' + Date.now(), functionName: 'f', version: 1, start: 'cold', status: 'success', initMs: null,
        durationMs: 1, peakMemoryBytes: null, error: null, logKey: null, nodeId: null, instanceId: null,
        createdAt: new Date(),
      });
      console.log('recorded');
      ${close ? 'await store.close(); console.log("closed");' : ''}
    `;
    const { stdout } = await execFileAsync(
      process.execPath,
      ['--import', import.meta.resolve('tsx'), '--input-type=module', '-e', script],
      { timeout: 30_000 },
    );
    return stdout;
  }

  it('exits after close, and a write in flight keeps the process alive until it is durable', async () => {
    const dir = await tempDir();
    const path = join(dir, 'lifetime.db');
    assert.equal(await runChild(path, true), 'recorded\nclosed\n');
    // Without close(): the pending write holds the process open, the idle worker does not.
    assert.equal(await runChild(path, false), 'recorded\n');
    const store = await openSqliteMetadataStore(path);
    try {
      assert.equal((await store.listInvocations({ functionName: 'f' })).length, 2);
    } finally {
      await store.close();
    }
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { migrations } from '../../src/adapters/sql/migrations.js';
import { classifySqlError } from '../../src/adapters/sql/sql-metadata-store.js';
import type { SqlMetadataStore } from '../../src/adapters/sql/sql-metadata-store.js';
import { SqlTrafficStore } from '../../src/adapters/sql/sql-traffic-store.js';
import { SqlInvocationQueue } from '../../src/adapters/sql/sql-invocation-queue.js';
import { SqlScheduleStore } from '../../src/adapters/sql/sql-schedule-store.js';
import type { ScheduleStoreFixture } from './schedule-store.contract.js';
import { SqlWorkflowStore } from '../../src/adapters/sql/sql-workflow-store.js';
import { SqlIntelligenceStore } from '../../src/adapters/sql/sql-intelligence-store.js';
import type { IntelligenceStoreFixture } from './intelligence-store.contract.js';
import type { WorkflowStoreFixture } from './workflow-store.contract.js';
import type { InvocationQueueFixture, InvocationQueueSettings } from './invocation-queue.contract.js';
import { SqlMessageQueues } from '../../src/adapters/sql/sql-message-queues.js';
import { SqlTriggerStore } from '../../src/adapters/sql/sql-trigger-store.js';
import type { MessageQueuesFixture } from './message-queues.contract.js';
import type { TriggerStores } from './trigger-store.contract.js';
import { SqlFunctionUrlStore } from '../../src/adapters/sql/sql-function-url-store.js';
import type { FunctionUrlStores } from './function-url-store.contract.js';
import type { ServerMetadataStoreOptions } from '../../src/adapters/sql/server-metadata-store.js';
import { isPlatformError } from '../../src/core/errors.js';
import { compileFunctionConfig } from '../../src/core/function-config.js';
import type { ErrorCode } from '../../src/core/errors.js';
import type { MetadataStore, NewVersion } from '../../src/core/ports/metadata-store.js';
import type { InvocationRecord } from '../../src/core/types.js';
import { repoRoot } from '../helpers/server-process.js';
import { freeLoopbackPort } from '../kit/free-port.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import type { MetadataStoreFixture } from './metadata-store.contract.js';
import type { TrafficStoreFixture } from './traffic-store.contract.js';
import { invocationRecord } from '../helpers/records.js';

/** `openPostgresMetadataStore` or `openMysqlMetadataStore`. */
export type OpenServerStore = (url: string, options?: ServerMetadataStoreOptions) => Promise<MetadataStore>;

/**
 * The metadata store contract's fixture on a server: a fresh database per test, dropped by `cleanup`; with
 * `journal`, records are acknowledged from a journal in a fresh directory, removed by `cleanup`.
 */
export function serverStoreFixture(
  server: () => Promise<SqlTestServer>,
  open: OpenServerStore,
  options: { journal?: boolean } = {},
): () => Promise<MetadataStoreFixture> {
  return async () => {
    const { url, journalDir, cleanup } = await freshDatabase(server, options.journal === true);
    const opened = () => open(url, { journalDir });
    return { store: await opened(), reopen: opened, cleanup, acknowledgesFromJournal: options.journal === true };
  };
}

/**
 * The traffic store contract's fixture on a server: a fresh database per test, dropped by `cleanup`; with `journal`,
 * invocation records are acknowledged from a journal in a fresh directory, removed by `cleanup`.
 */
export function serverTrafficFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
  options: { journal?: boolean } = {},
): () => Promise<TrafficStoreFixture> {
  return async () => {
    const { url, journalDir, cleanup } = await freshDatabase(server, options.journal === true);
    const opened = async () => {
      const metadata = await open(url, { journalDir });
      return { metadata, traffic: new SqlTrafficStore(metadata.shared()) };
    };
    return { ...(await opened()), reopen: opened, cleanup };
  };
}

/** The invocation queue contract's fixture on a server: a fresh database per test, dropped by `cleanup`. */
export function serverQueueFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
): (settings: InvocationQueueSettings) => Promise<InvocationQueueFixture> {
  return async (settings) => {
    const { url, cleanup } = await freshDatabase(server, false);
    const opened = async () => {
      const metadata = await open(url);
      return { queue: new SqlInvocationQueue(metadata.shared(), settings), close: () => metadata.close() };
    };
    return { ...(await opened()), reopen: opened, cleanup };
  };
}

/** The schedule store contract's fixture on a server: a fresh database per test, dropped by `cleanup`. */
export function serverScheduleFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
): () => Promise<ScheduleStoreFixture> {
  return async () => {
    const { url, cleanup } = await freshDatabase(server, false);
    const opened = async () => {
      const metadata = await open(url);
      return { schedules: new SqlScheduleStore(metadata.shared()), close: () => metadata.close() };
    };
    return { ...(await opened()), reopen: opened, cleanup };
  };
}

/** The workflow store contract's fixture on a server: a fresh database per test, dropped by `cleanup`. */
export function serverWorkflowFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
): () => Promise<WorkflowStoreFixture> {
  return async () => {
    const { url, cleanup } = await freshDatabase(server, false);
    const opened = async () => {
      const metadata = await open(url);
      return { workflows: new SqlWorkflowStore(metadata.shared()), close: () => metadata.close() };
    };
    return { ...(await opened()), reopen: opened, cleanup };
  };
}

/** The intelligence store contract's fixture on a server: a fresh database per test, dropped by `cleanup`. */
export function serverIntelligenceFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
): () => Promise<IntelligenceStoreFixture> {
  return async () => {
    const { url, cleanup } = await freshDatabase(server, false);
    const opened = async () => {
      const metadata = await open(url);
      return { intelligence: new SqlIntelligenceStore(metadata.shared()), close: () => metadata.close() };
    };
    return { ...(await opened()), reopen: opened, cleanup };
  };
}

/** The message queues contract's fixture on a server: a fresh database per test, dropped by `cleanup`. */
export function serverMessageQueuesFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
): (settings: { now: () => number }) => Promise<MessageQueuesFixture> {
  return async ({ now }) => {
    const { url, cleanup } = await freshDatabase(server, false);
    const opened = async () => {
      const metadata = await open(url);
      return { queues: new SqlMessageQueues(metadata.shared(), { now }), close: () => metadata.close() };
    };
    return { ...(await opened()), reopen: opened, cleanup };
  };
}

/** The trigger store contract's stores on a server: a fresh database per test, dropped by `cleanup`. */
export function serverTriggerFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
): () => Promise<TriggerStores> {
  return async () => {
    const { url, cleanup } = await freshDatabase(server, false);
    const metadata = await open(url);
    return {
      metadata,
      queues: new SqlMessageQueues(metadata.shared()),
      triggers: new SqlTriggerStore(metadata.shared()),
      cleanup,
    };
  };
}

export function serverFunctionUrlFixture(
  server: () => Promise<SqlTestServer>,
  open: (url: string, options?: ServerMetadataStoreOptions) => Promise<SqlMetadataStore>,
): () => Promise<FunctionUrlStores> {
  return async () => {
    const { url, cleanup } = await freshDatabase(server, false);
    const metadata = await open(url);
    return { metadata, urls: new SqlFunctionUrlStore(metadata.shared()), cleanup };
  };
}

/** A fresh database on the server and, with `journal`, a fresh journal directory; `cleanup` removes both. */
async function freshDatabase(
  server: () => Promise<SqlTestServer>,
  journal: boolean,
): Promise<{ url: string; journalDir: string | undefined; cleanup: () => Promise<void> }> {
  const sqlServer = await server();
  const database = await sqlServer.createDatabase();
  const journalDir = journal ? await mkdtemp(join(tmpdir(), 'savassan-journal-')) : undefined;
  return {
    url: sqlServer.url(database),
    journalDir,
    cleanup: async () => {
      await sqlServer.dropDatabase(database);
      if (journalDir !== undefined) await rm(journalDir, { recursive: true, force: true });
    },
  };
}

/**
 * What a metadata store on a database server must do beyond the contract: open under a migration lock, fail fast
 * and recover across an outage, and read the engine's errors. `backend` is the name its messages use.
 */
export function sqlServerStoreCases(
  backend: string,
  server: () => Promise<SqlTestServer>,
  open: OpenServerStore,
): void {
  describe(`${backend} metadata store on a real server`, () => {
    it('stores opening one fresh database together all succeed, and the schema is migrated once', async () => {
      await withDatabase(server, async (sqlServer, database) => {
        const url = sqlServer.url(database);
        const opened = await Promise.allSettled([open(url), open(url), open(url)]);
        const stores = opened.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
        try {
          assert.deepEqual(
            opened.map((result) => (result.status === 'rejected' ? String(result.reason) : 'opened')),
            ['opened', 'opened', 'opened'],
          );
          const [first, second] = stores;
          await first?.deployVersion(newVersion('alpha'));
          assert.equal((await second?.getFunction('alpha'))?.currentVersion, 1);
          const rows = await queryOnce(sqlServer, database, 'select name from savassan_migration');
          assert.deepEqual(
            rows.map((row) => row.name),
            Object.keys(migrations),
          );
        } finally {
          await Promise.all(stores.map((store) => store.close()));
        }
      });
    });

    it('compares names and ids exactly, as SQLite does: case and accents matter', async () => {
      await withDatabase(server, async (sqlServer, database) => {
        const store = await open(sqlServer.url(database));
        try {
          await store.deployVersion(newVersion('alpha'));
          await store.recordInvocation(invocation('inv-a'));
          await store.recordInvocation(invocation('inv-é'));
          await store.recordInvocation(invocation('INV-A'));
          assert.equal((await store.getInvocation('inv-a'))?.id, 'inv-a');
          assert.equal((await store.getInvocation('INV-A'))?.id, 'INV-A');
          assert.equal(await store.getInvocation('inv-e'), null);
          assert.equal(await store.getFunction('ALPHA'), null);
          assert.deepEqual(await store.listInvocations({ functionName: 'ALPHA' }), []);
        } finally {
          await store.close();
        }
      });
    });

    it('fails to open an unreachable server with UNAVAILABLE naming it, without the password', async () => {
      const port = await freeLoopbackPort();
      const started = Date.now();
      const err = await rejection(open(urlWith(await server(), port, 'hunter2-secret')));
      assertPlatformError(err, 'UNAVAILABLE', new RegExp(`${backend} at 127\\.0\\.0\\.1:${port}`));
      assert.doesNotMatch(err.message, /hunter2-secret/);
      assert.ok(Date.now() - started < 5000, 'fails at once');
    });

    it('fails to open a server that never answers with UNAVAILABLE after the connect timeout', async () => {
      await withSilentServer(async (port) => {
        const started = Date.now();
        const err = await rejection(open(urlWith(await server(), port, 'pw'), { connectTimeoutMs: 300 }));
        assertPlatformError(err, 'UNAVAILABLE', new RegExp(`${backend} at 127\\.0\\.0\\.1:${port}`));
        assert.ok(Date.now() - started < 5000, `gave up after ${Date.now() - started} ms`);
      });
    });

    it('rejects a URL of another scheme with BAD_REQUEST, without the password', async () => {
      const err = await rejection(open('http://user:hunter2-secret@127.0.0.1:1/db'));
      assertPlatformError(err, 'BAD_REQUEST', new RegExp(backend));
      assert.doesNotMatch(err.message, /hunter2-secret/);
    });

    it("classifies the server's unique violations and deadlocks", async () => {
      await withDatabase(server, async (sqlServer, database) => {
        const [a, b] = await Promise.all([sqlServer.session(database), sqlServer.session(database)]);
        try {
          await a.query('create table t (id integer primary key, v integer not null)');
          await a.query('insert into t (id, v) values (1, 0), (2, 0)');
          const duplicate = await rejection(a.query('insert into t (id, v) values (1, 0)'));
          assert.equal(classifySqlError(duplicate), 'unique-violation', String(duplicate));
          const deadlock = await provokeDeadlock(a, b);
          assert.equal(classifySqlError(deadlock), 'contention', String(deadlock));
        } finally {
          await Promise.all([a.close(), b.close()]);
        }
      });
    });

    it('fails fast with UNAVAILABLE while the server is down, recovers when it returns, loses no acknowledged record', async () => {
      await withDatabase(server, async (sqlServer, database) => {
        const store = await open(sqlServer.url(database));
        await store.deployVersion(newVersion('alpha'));
        const writer = recordContinuously(store);
        let down = false;
        try {
          await writer.acknowledgedAtLeast(50);
          await sqlServer.halt();
          down = true;

          const started = Date.now();
          await assertRejectsWith(store.getFunction('alpha'), 'UNAVAILABLE');
          await assertRejectsWith(store.recordInvocation(invocation('during-outage')), 'UNAVAILABLE');
          await assertRejectsWith(store.deployVersion(newVersion('bravo')), 'UNAVAILABLE');
          assert.ok(Date.now() - started < 5000, `failing took ${Date.now() - started} ms`);
          const acknowledged = await writer.stop();

          await sqlServer.restart();
          down = false;
          assert.equal((await store.getFunction('alpha'))?.currentVersion, 1, 'works again at once');
          await store.recordInvocation(invocation('after-outage'));
          await store.deployVersion(newVersion('bravo'));

          const stored = await storedInvocationIds(sqlServer, database);
          const lost = acknowledged.filter((id) => !stored.has(id));
          assert.deepEqual(lost, [], `${lost.length} of ${acknowledged.length} acknowledged records lost`);
          assert.ok(stored.has('after-outage'));
        } finally {
          await writer.stop();
          // Later tests share the server.
          if (down) await sqlServer.restart();
          await store.close();
        }
      });
    });

    it('acknowledges records from a journal (0600 files in a 0700 directory) and reads them back at once', async () => {
      await withDatabase(server, async (sqlServer, database) => {
        const journalDir = join(await mkdtemp(join(tmpdir(), 'savassan-journal-')), 'journal');
        const store = await open(sqlServer.url(database), { journalDir });
        try {
          await store.deployVersion(newVersion('alpha'));
          await Promise.all(['a', 'b', 'c'].map((id) => store.recordInvocation(invocation(id))));
          assert.equal((await stat(journalDir)).mode & 0o777, 0o700);
          const files = await readdir(journalDir);
          const segments = files.filter((name) => /\.\d+$/.test(name));
          assert.equal(segments.length, 1, files.join(', '));
          assert.equal((await stat(join(journalDir, segments[0]!))).mode & 0o777, 0o600);
          assert.equal((await store.getInvocation('b'))?.id, 'b', 'a read commits what was journalled before it');
          assert.deepEqual(
            new Set((await store.listInvocations({})).map((record) => record.id)),
            new Set(['a', 'b', 'c']),
          );
          assert.deepEqual(await storedInvocationIds(sqlServer, database), new Set(['a', 'b', 'c']));
        } finally {
          await store.close();
          await rm(join(journalDir, '..'), { recursive: true, force: true });
        }
      });
    });

    it('commits on the next open what a process killed with SIGKILL journalled, less a function deleted meanwhile', async () => {
      await withDatabase(server, async (sqlServer, database) => {
        const url = sqlServer.url(database);
        const journalDir = await mkdtemp(join(tmpdir(), 'savassan-journal-'));
        // Another process of the cluster, without a journal: it deploys, and deletes alpha while the first is dead.
        const other = await open(url);
        const fixture = join(repoRoot, 'test', 'fixtures', 'stores', 'journalling-store.ts');
        const child = spawn(process.execPath, ['--import', 'tsx', fixture, url, journalDir, 'alpha', 'bravo'], {
          cwd: repoRoot,
          stdio: ['pipe', 'pipe', 'inherit'],
        });
        const exited = once(child, 'exit');
        const lines = createInterface({ input: child.stdout });
        const nextLine = () => new Promise<string>((resolve) => lines.once('line', resolve));
        let down = false;
        try {
          await other.deployVersion(newVersion('alpha'));
          await other.deployVersion(newVersion('bravo'));
          assert.equal(await nextLine(), 'open');
          // The server goes down: nothing the child records can be committed, all of it is acknowledged from its
          // journal.
          await sqlServer.halt();
          down = true;
          const acknowledged = nextLine();
          child.stdin.write('go\n');
          const ids = JSON.parse(await acknowledged) as Record<string, string[]>;
          child.kill('SIGKILL');
          await exited;
          await sqlServer.restart();
          down = false;
          assert.deepEqual(await storedInvocationIds(sqlServer, database), new Set(), 'nothing was committed');
          assert.equal(await other.deleteFunction('alpha'), true);

          const reopened = await open(url, { journalDir });
          try {
            assert.deepEqual(await storedInvocationIds(sqlServer, database), new Set(ids['bravo']));
            assert.equal((await reopened.getInvocation(ids['bravo']![0]!))?.functionName, 'bravo');
            assert.equal(await reopened.getInvocation(ids['alpha']![0]!), null);
          } finally {
            await reopened.close();
          }
          assert.deepEqual(
            (await readdir(journalDir)).filter((name) => /\.\d+$/.test(name)),
            [],
            'the recovered journal is gone',
          );
        } finally {
          child.kill('SIGKILL');
          if (down) await sqlServer.restart();
          await other.close();
          await rm(journalDir, { recursive: true, force: true });
        }
      });
    });

    it("a delete drops the function's records still waiting in the journal of another process", async () => {
      await withDatabase(server, async (sqlServer, database) => {
        const url = sqlServer.url(database);
        const journalDir = await mkdtemp(join(tmpdir(), 'savassan-journal-'));
        const journalling = await open(url, { journalDir });
        const other = await open(url);
        try {
          await other.deployVersion(newVersion('alpha'));
          await other.deployVersion(newVersion('bravo'));
          await journalling.recordInvocation(invocation('alpha-1'));
          await journalling.recordInvocation({ ...invocation('bravo-1'), functionName: 'bravo' });
          // Acknowledged, and waiting in the journal for their batch when the delete commits (or committed by then:
          // the delete then takes them along).
          const deleting = other.deleteFunction('alpha');
          assert.equal(await deleting, true);
          assert.equal(await journalling.getInvocation('alpha-1'), null);
          assert.equal((await journalling.getInvocation('bravo-1'))?.functionName, 'bravo');
          assert.deepEqual(await storedInvocationIds(sqlServer, database), new Set(['bravo-1']));
        } finally {
          await Promise.all([journalling.close(), other.close()]);
          await rm(journalDir, { recursive: true, force: true });
        }
      });
    });
  });
}

/** Run `body` on a fresh database of the shared server, dropped afterwards. */
async function withDatabase(
  server: () => Promise<SqlTestServer>,
  body: (server: SqlTestServer, database: string) => Promise<void>,
): Promise<void> {
  const sqlServer = await server();
  const database = await sqlServer.createDatabase();
  try {
    await body(sqlServer, database);
  } finally {
    await sqlServer.dropDatabase(database);
  }
}

/** The server's URL scheme and user with another port and password. */
function urlWith(sqlServer: SqlTestServer, port: number, password: string): string {
  const url = new URL(sqlServer.url('savassan'));
  url.port = String(port);
  url.password = password;
  return url.href;
}

/** A loopback TCP server that accepts connections and never says a word, as a hung database would. */
async function withSilentServer(body: (port: number) => Promise<void>): Promise<void> {
  const sockets = new Set<Socket>();
  const silent = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const address = silent.address();
  try {
    await body(typeof address === 'object' && address !== null ? address.port : 0);
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
  }
}

/** Two transactions each lock a row, then want the other's: the server aborts one; return its error. */
async function provokeDeadlock(
  a: Awaited<ReturnType<SqlTestServer['session']>>,
  b: Awaited<ReturnType<SqlTestServer['session']>>,
): Promise<unknown> {
  await a.query('begin');
  await b.query('begin');
  await a.query('update t set v = v + 1 where id = 1');
  await b.query('update t set v = v + 1 where id = 2');
  const crossed = [
    [a, 2],
    [b, 1],
  ] as const;
  const results = await Promise.allSettled(
    crossed.map(async ([session, id]) => {
      try {
        await session.query(`update t set v = v + 1 where id = ${id}`);
      } finally {
        // The victim's transaction is over either way; ending both lets the survivor's update finish.
        await session.query('rollback');
      }
    }),
  );
  const failures = results.filter((result) => result.status === 'rejected');
  assert.equal(failures.length, 1, 'exactly one transaction is chosen as the victim');
  return failures[0]?.reason;
}

interface ContinuousWriter {
  acknowledgedAtLeast(count: number): Promise<void>;
  /** Stop writing; the ids whose `recordInvocation` resolved. */
  stop(): Promise<string[]>;
}

/** Record invocations ten at a time until stopped, remembering which were acknowledged. */
function recordContinuously(store: MetadataStore): ContinuousWriter {
  const acknowledged: string[] = [];
  let writing = true;
  const loop = (async () => {
    for (let round = 0; writing && round < 5000; round++) {
      const ids = Array.from({ length: 10 }, (_, i) => `inv-${round}-${i}`);
      await Promise.all(
        ids.map((id) =>
          store.recordInvocation(invocation(id)).then(
            () => acknowledged.push(id),
            () => undefined,
          ),
        ),
      );
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();
  return {
    acknowledgedAtLeast: async (count) => {
      for (let waited = 0; acknowledged.length < count; waited += 10) {
        assert.ok(waited < 10_000, `only ${acknowledged.length} records acknowledged in 10 s`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    },
    stop: async () => {
      writing = false;
      await loop;
      return acknowledged;
    },
  };
}

async function storedInvocationIds(sqlServer: SqlTestServer, database: string): Promise<Set<string>> {
  const rows = await queryOnce(sqlServer, database, 'select id from invocations');
  return new Set(rows.map((row) => String(row.id)));
}

/** Open a store on a fresh database (migrating it), close it, and return what `statement` reads there. */
export async function queryAfterMigration(
  server: () => Promise<SqlTestServer>,
  open: OpenServerStore,
  statement: string,
): Promise<Record<string, unknown>[]> {
  let rows: Record<string, unknown>[] = [];
  await withDatabase(server, async (sqlServer, database) => {
    await (await open(sqlServer.url(database))).close();
    rows = await queryOnce(sqlServer, database, statement);
  });
  return rows;
}

/** Run one statement on its own connection to `database`. */
async function queryOnce(
  sqlServer: SqlTestServer,
  database: string,
  statement: string,
): Promise<Record<string, unknown>[]> {
  const session = await sqlServer.session(database);
  try {
    return await session.query(statement);
  } finally {
    await session.close();
  }
}

function newVersion(functionName: string): NewVersion {
  return {
    functionName,
    codeSha256: 'a'.repeat(64),
    codeSizeBytes: 1234,
    contentHash: `${functionName}-h1`,
    config: compileFunctionConfig({}),
  };
}

function invocation(id: string): InvocationRecord {
  return invocationRecord({ id, durationMs: 3, createdAt: new Date() });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected a rejection');
}

function assertPlatformError(err: unknown, code: ErrorCode, message: RegExp): asserts err is Error {
  assert.ok(isPlatformError(err), `expected a PlatformError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
  assert.match(err.message, message);
}

async function assertRejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const err = await rejection(promise);
  assert.ok(isPlatformError(err), `expected a PlatformError, got ${String(err)}`);
  assert.equal(err.code, code, err.message);
}

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { repoRoot } from '../helpers/server-process.js';
import { FsBlobStore } from '../../src/adapters/fs/fs-blob-store.js';
import { EnvSealer } from '../../src/adapters/sealed/env-sealer.js';
import { SealedMetadataStore } from '../../src/adapters/sealed/sealed-metadata-store.js';
import { openSqliteMetadataStore } from '../../src/adapters/sqlite/sqlite-metadata-store.js';
import { isPlatformError } from '../../src/core/errors.js';
import type { MetadataStore } from '../../src/core/ports/metadata-store.js';
import type { InvocationRecord } from '../../src/core/types.js';
import { blobStoreContract } from './blob-store.contract.js';
import { metadataStoreContract } from './metadata-store.contract.js';
import { trafficStoreContract } from './traffic-store.contract.js';
import { SqlTrafficStore } from '../../src/adapters/sql/sql-traffic-store.js';
import { SqlInvocationQueue } from '../../src/adapters/sql/sql-invocation-queue.js';
import { invocationQueueContract } from './invocation-queue.contract.js';
import { SqlScheduleStore } from '../../src/adapters/sql/sql-schedule-store.js';
import { scheduleStoreContract } from './schedule-store.contract.js';
import { SqlMessageQueues } from '../../src/adapters/sql/sql-message-queues.js';
import { SqlTriggerStore } from '../../src/adapters/sql/sql-trigger-store.js';
import { messageQueuesContract } from './message-queues.contract.js';
import { triggerStoreContract } from './trigger-store.contract.js';
import { SqlFunctionUrlStore } from '../../src/adapters/sql/sql-function-url-store.js';
import { functionUrlStoreContract } from './function-url-store.contract.js';
import { invocationRecord } from '../helpers/records.js';
import { newVersion } from '../helpers/versions.js';
import { testTempDirs } from '../helpers/temp-dirs.js';

const { tempDir, removeTempDir } = testTempDirs();

metadataStoreContract('SQLite file', async () => {
  const dir = await tempDir('sqlite');
  const path = join(dir, 'nested', 'metadata.db');
  return {
    store: await openSqliteMetadataStore(path),
    reopen: () => openSqliteMetadataStore(path),
    cleanup: () => removeTempDir(dir),
    acknowledgesFromJournal: true,
  };
});

metadataStoreContract('SQLite file, durability full', async () => {
  const dir = await tempDir('sqlite-full');
  const path = join(dir, 'metadata.db');
  return {
    store: await openSqliteMetadataStore(path, { durability: 'full' }),
    reopen: () => openSqliteMetadataStore(path, { durability: 'full' }),
    cleanup: () => removeTempDir(dir),
  };
});

metadataStoreContract('SQLite file, environments sealed', async () => {
  const dir = await tempDir('sqlite-sealed');
  const path = join(dir, 'metadata.db');
  const sealer = EnvSealer.fromSecret('contract-suite-token');
  return {
    store: new SealedMetadataStore(await openSqliteMetadataStore(path), sealer),
    reopen: async () => new SealedMetadataStore(await openSqliteMetadataStore(path), sealer),
    cleanup: () => removeTempDir(dir),
    acknowledgesFromJournal: true,
  };
});

metadataStoreContract('SQLite :memory:', async () => ({
  store: await openSqliteMetadataStore(':memory:'),
  cleanup: () => Promise.resolve(),
}));

trafficStoreContract('SQLite file', async () => {
  const dir = await tempDir('sqlite-traffic');
  const path = join(dir, 'metadata.db');
  const opened = async () => {
    const metadata = await openSqliteMetadataStore(path);
    return { metadata, traffic: new SqlTrafficStore(metadata.shared()) };
  };
  return { ...(await opened()), reopen: opened, cleanup: () => removeTempDir(dir) };
});

trafficStoreContract('SQLite file, environments sealed', async () => {
  const dir = await tempDir('sqlite-traffic-sealed');
  const path = join(dir, 'metadata.db');
  const sealer = EnvSealer.fromSecret('contract-suite-token');
  const opened = async () => {
    const store = await openSqliteMetadataStore(path);
    return { metadata: new SealedMetadataStore(store, sealer), traffic: new SqlTrafficStore(store.shared()) };
  };
  return { ...(await opened()), reopen: opened, cleanup: () => removeTempDir(dir) };
});

trafficStoreContract('SQLite :memory:', async () => {
  const metadata = await openSqliteMetadataStore(':memory:');
  return { metadata, traffic: new SqlTrafficStore(metadata.shared()), cleanup: () => Promise.resolve() };
});

messageQueuesContract('SQLite file', async ({ now }) => {
  const dir = await tempDir('sqlite-messages');
  const path = join(dir, 'metadata.db');
  const opened = async () => {
    const metadata = await openSqliteMetadataStore(path);
    return { queues: new SqlMessageQueues(metadata.shared(), { now }), close: () => metadata.close() };
  };
  return { ...(await opened()), reopen: opened, cleanup: () => removeTempDir(dir) };
});

messageQueuesContract('SQLite :memory:', async ({ now }) => {
  const metadata = await openSqliteMetadataStore(':memory:');
  return {
    queues: new SqlMessageQueues(metadata.shared(), { now }),
    close: () => metadata.close(),
    cleanup: () => Promise.resolve(),
  };
});

triggerStoreContract('SQLite file', async () => {
  const dir = await tempDir('sqlite-triggers');
  const metadata = await openSqliteMetadataStore(join(dir, 'metadata.db'));
  return {
    metadata,
    queues: new SqlMessageQueues(metadata.shared()),
    triggers: new SqlTriggerStore(metadata.shared()),
    cleanup: () => removeTempDir(dir),
  };
});

functionUrlStoreContract('SQLite file', async () => {
  const dir = await tempDir('sqlite-urls');
  const metadata = await openSqliteMetadataStore(join(dir, 'metadata.db'));
  return { metadata, urls: new SqlFunctionUrlStore(metadata.shared()), cleanup: () => removeTempDir(dir) };
});

invocationQueueContract('SQLite file', async (settings) => {
  const dir = await tempDir('sqlite-queue');
  const path = join(dir, 'metadata.db');
  const opened = async () => {
    const metadata = await openSqliteMetadataStore(path);
    return { queue: new SqlInvocationQueue(metadata.shared(), settings), close: () => metadata.close() };
  };
  return { ...(await opened()), reopen: opened, cleanup: () => removeTempDir(dir) };
});

invocationQueueContract('SQLite :memory:', async (settings) => {
  const metadata = await openSqliteMetadataStore(':memory:');
  return {
    queue: new SqlInvocationQueue(metadata.shared(), settings),
    close: () => metadata.close(),
    cleanup: () => Promise.resolve(),
  };
});

scheduleStoreContract('SQLite file', async () => {
  const dir = await tempDir('sqlite-schedules');
  const path = join(dir, 'metadata.db');
  const opened = async () => {
    const metadata = await openSqliteMetadataStore(path);
    return { schedules: new SqlScheduleStore(metadata.shared()), close: () => metadata.close() };
  };
  return { ...(await opened()), reopen: opened, cleanup: () => removeTempDir(dir) };
});

scheduleStoreContract('SQLite :memory:', async () => {
  const metadata = await openSqliteMetadataStore(':memory:');
  return {
    schedules: new SqlScheduleStore(metadata.shared()),
    close: () => metadata.close(),
    cleanup: () => Promise.resolve(),
  };
});

blobStoreContract('FsBlobStore', async () => {
  const dir = await tempDir('blobs');
  return { store: new FsBlobStore(join(dir, 'root')), cleanup: () => removeTempDir(dir) };
});

const storeModule = new URL('../../src/adapters/sqlite/sqlite-metadata-store.ts', import.meta.url).href;

/**
 * A script that opens the store at `path`, records 300 invocations of `alpha` (then deletes `alpha` when
 * RECORD_THEN=delete) and SIGKILLs itself the moment the last step is acknowledged.
 */
function recorderScript(path: string): string {
  return `import { openSqliteMetadataStore } from ${JSON.stringify(storeModule)};
const store = await openSqliteMetadataStore(${JSON.stringify(path)});
const records = Array.from({ length: 300 }, (_, i) => ({
  id: 'inv-' + i, functionName: 'alpha', version: 1, start: 'warm', status: 'success', initMs: null,
  durationMs: 1, peakMemoryBytes: null, error: null, logKey: null, nodeId: 'n', instanceId: 'i',
  createdAt: new Date(1_700_000_000_000 + i),
}));
for (let i = 0; i < records.length; i += 30) {
  await Promise.all(records.slice(i, i + 30).map((record) => store.recordInvocation(record)));
}
if (process.env.RECORD_THEN === 'delete') await store.deleteFunction('alpha');
process.kill(process.pid, 'SIGKILL');
`;
}

/** An invocation of `alpha` with id `inv-{i}`. */
function recordOf(i: number): InvocationRecord {
  return invocationRecord({
    id: `inv-${i}`,
    durationMs: 1,
    peakMemoryBytes: null,
    nodeId: 'n',
    instanceId: 'i',
    createdAt: new Date(1_700_000_000_000 + i),
  });
}

/** `alpha`'s invocations, polled until there are `count` of them (a store retrying its commits) or 10 s pass. */
async function alphaInvocationsOnceThereAre(store: MetadataStore, count: number): Promise<InvocationRecord[]> {
  const deadline = Date.now() + 10_000;
  let listed = await store.listInvocations({ functionName: 'alpha', limit: 100 });
  while (listed.length < count && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    listed = await store.listInvocations({ functionName: 'alpha', limit: 100 });
  }
  return listed;
}

/** Alpha's invocation records as a fresh open of the store at `path` finds them (the open recovers journals). */
async function alphaInvocationsAfterReopen(path: string): Promise<InvocationRecord[]> {
  const reopened = await openSqliteMetadataStore(path);
  try {
    return await reopened.listInvocations({ functionName: 'alpha', limit: 1000 });
  } finally {
    await reopened.close();
  }
}

/** Runs `body` while another connection holds the database's write lock (every commit of a store fails busy). */
async function whileLocked(path: string, body: () => Promise<void>): Promise<void> {
  const blocker = new BetterSqlite3(path);
  blocker.exec('begin immediate');
  try {
    await body();
  } finally {
    blocker.exec('commit');
    blocker.close();
  }
}

describe('SQLite metadata store specifics', () => {
  it('uses WAL and keeps data across reopen', async () => {
    const dir = await tempDir('sqlite');
    const path = join(dir, 'metadata.db');
    try {
      const store = await openSqliteMetadataStore(path);
      await store.deployVersion(newVersion('alpha', 'h1'));
      await store.close();

      const raw = new BetterSqlite3(path, { readonly: true });
      try {
        assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
        const tables = raw
          .prepare<[], { name: string }>("select name from sqlite_master where type = 'table' order by name")
          .all()
          .map((row) => row.name);
        for (const table of ['functions', 'function_versions', 'invocations', 'secrets']) {
          assert.ok(tables.includes(table));
        }
      } finally {
        raw.close();
      }

      const reopened = await openSqliteMetadataStore(path);
      try {
        assert.equal((await reopened.getFunction('alpha'))?.currentVersion, 1);
      } finally {
        await reopened.close();
      }
    } finally {
      await removeTempDir(dir);
    }
  });

  it('keeps every acknowledged record when the process is killed before committing them', async () => {
    const dir = await tempDir('sqlite-crash');
    const path = join(dir, 'metadata.db');
    // A separate process records 300 invocations and is SIGKILLed the moment the last one is acknowledged.
    const script = join(dir, 'record-and-die.mts');
    await writeFile(script, recorderScript(path));
    const child = spawnSync(process.execPath, ['--import', 'tsx', script], { cwd: repoRoot, encoding: 'utf8' });
    assert.equal(child.signal, 'SIGKILL', `the recorder should have been killed:\n${child.stderr}`);
    const deadJournal = (await readdir(dir)).filter((name) => name.startsWith('metadata.db-records.'));
    assert.ok(deadJournal.length > 0, 'the dead process left its journal behind');
    const raw = new BetterSqlite3(path, { readonly: true });
    const committedBefore = raw.prepare<[], { n: number }>('select count(*) as n from invocations').get()?.n ?? 0;
    raw.close();
    assert.ok(committedBefore < 300, `some records were only in the journal (${committedBefore} of 300 committed)`);

    const listed = await alphaInvocationsAfterReopen(path);
    assert.equal(listed.length, 300, 'every acknowledged record is there');
    const left = (await readdir(dir)).filter((name) => deadJournal.includes(name));
    assert.deepEqual(left, [], "the dead process's journal was cleared");
    await removeTempDir(dir);
  });

  it('while commits fail, acknowledges at most maxJournalBacklog records, refuses the rest, and commits them after', async () => {
    const dir = await tempDir('sqlite-backlog');
    const path = join(dir, 'metadata.db');
    const store = await openSqliteMetadataStore(path, { busyTimeoutMs: 50, maxJournalBacklog: 5 });
    const record = recordOf;
    // Another connection holds the write lock: every commit of the store's fails (busy) until it lets go.
    await whileLocked(path, async () => {
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.recordInvocation(record(i))));
      assert.deepEqual(
        results.map((result) => result.status),
        ['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected', 'rejected'],
      );
      const refused = results[5];
      assert.ok(refused?.status === 'rejected' && isPlatformError(refused.reason, 'UNAVAILABLE'));
    });
    try {
      // The five acknowledged records are committed by the store's retries once the lock is gone.
      const listed = await alphaInvocationsOnceThereAre(store, 5);
      assert.deepEqual(listed.map((r) => r.id).sort(), ['inv-0', 'inv-1', 'inv-2', 'inv-3', 'inv-4']);
      // After the failed commits, reads wait for their records again: each is found right after it is recorded.
      for (let i = 100; i < 120; i++) {
        await store.recordInvocation(record(i));
        assert.equal((await store.getInvocation(`inv-${i}`))?.id, `inv-${i}`);
      }
    } finally {
      await store.close();
      await removeTempDir(dir);
    }
  });

  it('closes while commits fail, and the next open commits what was journalled', async () => {
    const dir = await tempDir('sqlite-close-locked');
    const path = join(dir, 'metadata.db');
    const store = await openSqliteMetadataStore(path, { busyTimeoutMs: 50 });
    await whileLocked(path, async () => {
      for (let i = 0; i < 3; i++) await store.recordInvocation(recordOf(i));
      // The store tries a few times, then gives up and closes: a shutdown must not wait for the lock.
      await store.close();
    });
    const listed = await alphaInvocationsAfterReopen(path);
    assert.deepEqual(listed.map((r) => r.id).sort(), ['inv-0', 'inv-1', 'inv-2']);
    await removeTempDir(dir);
  });

  it('keeps the acknowledged records of a function whose delete failed', async () => {
    const dir = await tempDir('sqlite-delete-fails');
    const path = join(dir, 'metadata.db');
    const store = await openSqliteMetadataStore(path, { busyTimeoutMs: 50 });
    await whileLocked(path, async () => {
      // Acknowledged from the journal, not committed: the database is locked.
      for (let i = 0; i < 5; i++) await store.recordInvocation(recordOf(i));
      await assert.rejects(store.deleteFunction('alpha'), (err: unknown) => isPlatformError(err, 'UNAVAILABLE'));
    });
    try {
      const listed = await alphaInvocationsOnceThereAre(store, 5);
      assert.equal(listed.length, 5, 'the delete did not happen, so its records stay');
    } finally {
      await store.close();
    }
    assert.equal((await alphaInvocationsAfterReopen(path)).length, 5);
    await removeTempDir(dir);
  });

  it("does not bring back a deleted function's records after a crash", async () => {
    const dir = await tempDir('sqlite-crash-delete');
    const path = join(dir, 'metadata.db');
    const script = join(dir, 'record-and-die.mts');
    await writeFile(script, recorderScript(path));
    const child = spawnSync(process.execPath, ['--import', 'tsx', script], {
      cwd: repoRoot,
      encoding: 'utf8',
      env: { ...process.env, RECORD_THEN: 'delete' },
    });
    assert.equal(child.signal, 'SIGKILL', `the recorder should have been killed:\n${child.stderr}`);
    assert.deepEqual(await alphaInvocationsAfterReopen(path), []);
    await removeTempDir(dir);
  });

  it('fails to open an unusable path with UNAVAILABLE', async () => {
    const dir = await tempDir('sqlite');
    try {
      await assert.rejects(openSqliteMetadataStore(dir), /UNAVAILABLE/);
    } finally {
      await removeTempDir(dir);
    }
  });
});

describe('FsBlobStore specifics', () => {
  it('never writes outside its root and leaves no temporary files', async () => {
    const dir = await tempDir('blobs');
    const root = join(dir, 'root');
    const store = new FsBlobStore(root);
    try {
      await assert.rejects(store.put('../escaped', 'x'), /BAD_REQUEST/);
      await assert.rejects(store.put('a/../../escaped', 'x'), /BAD_REQUEST/);
      assert.deepEqual(await readdir(dir), [], 'nothing written, not even the root');
      await Promise.all(Array.from({ length: 20 }, (_, i) => store.put('k/v', `value ${i}`)));
      assert.deepEqual(await readdir(join(root, 'k')), ['v']);
    } finally {
      await store.close();
      await removeTempDir(dir);
    }
  });

  it('rejects a key that collides with a directory of other keys', async () => {
    const dir = await tempDir('blobs');
    const store = new FsBlobStore(dir);
    try {
      await store.put('a/b', 'x');
      await assert.rejects(store.put('a', 'y'), /BAD_REQUEST/);
      await assert.rejects(store.put('a/b/c', 'y'), /BAD_REQUEST/);
      assert.deepEqual(await store.list(''), ['a/b']);
    } finally {
      await store.close();
      await removeTempDir(dir);
    }
  });
});

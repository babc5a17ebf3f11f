// `savassan start` on real backends (redis-server, PostgreSQL, MariaDB from the system packages, s3rver in this
// process), driven through the HTTP API and the CLI, with Redis and PostgreSQL stopped and restarted under it.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openS3BlobStore } from '../../src/adapters/s3/s3-blob-store.js';
import { ApiError } from '../../src/client/client.js';
import { readBundle } from '../../src/client/bundle.js';
import type { SavassanClient } from '../../src/client/client.js';
import { freeLoopbackPort } from '../kit/free-port.js';
import { mariadbBinaries, startMariadbServer } from '../kit/mariadb-server.js';
import { postgresBinDir, startPostgresServer } from '../kit/postgres-server.js';
import { redisServerBinary, startRedisServer } from '../kit/redis-server.js';
import type { RedisServer } from '../kit/redis-server.js';
import { startS3Server } from '../kit/s3-server.js';
import type { S3Server } from '../kit/s3-server.js';
import type { SqlTestServer } from '../kit/sql-server-common.js';
import { apiError, eventually, repoRoot, runCli, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';

const probe = join(repoRoot, 'test', 'fixtures', 'e2e', 'probe');
const bucket = 'savassan-e2e';
const missing = [redisServerBinary, join(postgresBinDir, 'postgres'), mariadbBinaries.server].filter(
  (binary) => !existsSync(binary),
);

interface Invoked {
  invocationId: string;
  start: string;
  pid: number;
}

async function invoke(client: SavassanClient, event: unknown = {}): Promise<Invoked> {
  const answer = await client.invoke('probe', event);
  return { ...answer, pid: (JSON.parse(answer.payload) as { pid: number }).pid };
}

/** Asserts a 503 UNAVAILABLE whose message names the backend. */
function assertUnavailable(err: ApiError, backend: RegExp): void {
  assert.equal(err.status, 503, err.message);
  assert.equal(err.code, 'UNAVAILABLE');
  assert.match(err.message, backend);
}

describe(
  'savassan start on real backends',
  { skip: missing.length > 0 && `not installed: ${missing.join(', ')}` },
  () => {
    let redis: RedisServer;
    let postgres: SqlTestServer;
    let database: string;
    let s3: S3Server;
    let mariadb: SqlTestServer;

    before(async () => {
      [redis, postgres, s3, mariadb] = await Promise.all([
        startRedisServer(),
        startPostgresServer(),
        startS3Server(),
        startMariadbServer(),
      ]);
      database = await postgres.createDatabase();
    });

    after(async () => {
      await Promise.all([redis?.close(), postgres?.stop(), s3?.stop(), mariadb?.stop()]);
    });

    describe('on Redis, PostgreSQL and S3', () => {
      let server: ServerProcess;
      /** Every invocation answered 200, to be found recorded at the end. */
      const answered: string[] = [];
      let warmPid = 0;

      const readiness = async (): Promise<{ status: number; body: unknown }> => {
        const response = await fetch(`${server.url}/readyz`);
        return { status: response.status, body: await response.json() };
      };

      const invokeOk = async (): Promise<Invoked> => {
        const result = await invoke(server.client);
        answered.push(result.invocationId);
        return result;
      };

      before(async () => {
        server = await startServer(
          ['--no-examples', '--queue-wait', '5', '--redis', redis.url],
          undefined,
          // URLs with a password from the environment; a Redis URL there loses to the flag.
          {
            SAVASSAN_S3_URL: `${s3.url}/${bucket}?createBucket=true`,
            SAVASSAN_DB_URL: postgres.url(database),
            SAVASSAN_REDIS_URL: 'redis://127.0.0.1:1/0',
          },
        );
      });

      after(async () => {
        await server?.cleanup();
      });

      it('says which backends it runs on, without passwords', () => {
        const banner = server.output();
        assert.ok(
          banner.includes(
            `Backends: pool and queue in Redis at ${redis.url}; ` +
              `metadata in PostgreSQL at postgres://127.0.0.1:${postgres.port}/${database}; ` +
              `blobs in S3 at ${s3.endpoint} (bucket ${bucket})`,
          ),
          banner,
        );
        assert.ok(!banner.includes(postgres.password), 'the database password is never printed');
        assert.ok(!banner.includes('S3RVER@'), 'the S3 secret is never printed');
      });

      it('deploys and invokes cold then warm, with records in PostgreSQL and code and logs in S3', async () => {
        const deployed = await server.client.deploy('probe', await readBundle(probe), {});
        assert.equal(deployed.created, true);
        const cold = await invokeOk();
        const warm = await invokeOk();
        assert.equal(cold.start, 'cold');
        assert.equal(warm.start, 'warm');
        assert.equal(warm.pid, cold.pid, 'the warm invocation reuses the sandbox');
        warmPid = warm.pid;

        const record = await server.client.getInvocation(cold.invocationId);
        assert.equal(record.start, 'cold');
        assert.equal(record.status, 'success');
        assert.match(await server.client.invocationLog(cold.invocationId), new RegExp(`probe ${cold.invocationId}`));

        // Read back behind the API: the rows in PostgreSQL, the objects in the bucket, the pool in Redis.
        const session = await postgres.session(database);
        try {
          const rows = await session.query(
            `select id, start_kind from invocations where id in ('${cold.invocationId}', '${warm.invocationId}') order by start_kind`,
          );
          assert.deepEqual(
            rows.map((row) => [row.id, row.start_kind]),
            [
              [cold.invocationId, 'cold'],
              [warm.invocationId, 'warm'],
            ],
          );
        } finally {
          await session.close();
        }
        const blobs = await openS3BlobStore(`${s3.url}/${bucket}`);
        try {
          assert.deepEqual(await blobs.list('code/'), [`code/${deployed.version.codeSha256}.zip`]);
          const logKey = record.logKey;
          assert.ok(logKey !== null);
          assert.match((await blobs.get(logKey))?.toString() ?? '', new RegExp(`probe ${cold.invocationId}`));
        } finally {
          await blobs.close();
        }
        assert.ok((await redis.keys('savassan:pool:idle:probe:')).length === 1, 'the idle instance is in Redis');
      });

      it('answers 503 naming Redis while it is down, and rebuilds the warm pool when it comes back empty', async () => {
        assert.deepEqual(await readiness(), { status: 200, body: { status: 'ready' } });
        await redis.stop();
        const down = await apiError(invoke(server.client));
        assertUnavailable(down, /Redis at redis:\/\/127\.0\.0\.1:\d+\/0 is unavailable/);
        assert.deepEqual(await server.client.json('GET', '/healthz'), { status: 'ok' });
        // Readiness follows the backends (checked at most once a second): a balancer stops sending requests.
        assert.deepEqual(await eventually(readiness, (ready) => ready.status === 503), {
          status: 503,
          body: { status: 'not ready', down: ['pool'] },
        });
        assert.equal((await server.client.listFunctions()).functions.length, 1, 'what needs no Redis still works');

        await redis.restart(); // on the same port, without the data: the pool is gone
        const rebuilt = await eventually(
          () => Promise.resolve(server.output()),
          (output) => output.includes('pool rebuilt from the agent'),
        );
        assert.ok(rebuilt.includes('pool rebuilt from the agent'), 'the manager rebuilt the pool');
        const again = await invokeOk();
        assert.equal(again.start, 'warm', 'the idle sandbox went back into the pool');
        assert.equal((await eventually(readiness, (ready) => ready.status === 200)).status, 200);
        assert.equal(again.pid, warmPid);

        // The same after FLUSHALL, with no reconnect to notice it by.
        await redis.flushAll();
        await eventually(
          () => Promise.resolve(server.output()),
          (output) => output.split('pool rebuilt from the agent').length === 3,
        );
        const flushed = await invokeOk();
        assert.deepEqual([flushed.start, flushed.pid], ['warm', warmPid]);
        assert.equal(server.child.exitCode, null, 'the server kept running');
      });

      it('answers 503 naming PostgreSQL while it is down, and records every invocation it answered 200', async () => {
        await invokeOk();
        await postgres.halt();
        assert.deepEqual((await eventually(readiness, (ready) => ready.status === 503)).body, {
          status: 'not ready',
          down: ['metadata'],
        });
        // A warm invocation of a function resolved within the last second needs no database: it is answered, and its
        // record waits in the journal. Once the resolution is stale, invocations fail naming PostgreSQL.
        const failed = await eventually(
          async () => {
            const result = await invoke(server.client).catch((err: unknown) => (err instanceof Error ? err : null));
            if (result !== null && !(result instanceof Error)) answered.push(result.invocationId);
            return result;
          },
          (result) => result instanceof ApiError,
        );
        assertUnavailable(failed as ApiError, /PostgreSQL at 127\.0\.0\.1:\d+/);
        for (let n = 0; n < 3; n++) {
          assertUnavailable(await apiError(invoke(server.client)), /PostgreSQL at 127\.0\.0\.1:\d+/);
        }
        const deploy = await apiError(server.client.deploy('other', await readBundle(probe), {}));
        assertUnavailable(deploy, /PostgreSQL at 127\.0\.0\.1:\d+/);

        await postgres.restart();
        const back = await eventually(
          () => invoke(server.client).catch((err: unknown) => err),
          (result) => !(result instanceof ApiError && result.status === 503),
        );
        assert.ok(!(back instanceof Error), String(back));
        answered.push((back as Invoked).invocationId);
        for (let n = 0; n < 3; n++) await invokeOk();

        for (const id of answered) assert.equal((await server.client.getInvocation(id)).id, id);
        const session = await postgres.session(database);
        try {
          const list = answered.map((id) => `'${id}'`).join(', ');
          const [row] = await session.query(`select count(*) as n from invocations where id in (${list})`);
          assert.equal(Number(row?.n), answered.length);
        } finally {
          await session.close();
        }
        assert.equal(server.child.exitCode, null, 'the server kept running');
      });

      it('keeps invoking while S3 is down, answers 503 naming S3 to a deploy, and deploys once it is back', async () => {
        const other = async () => server.client.deploy('other', await readBundle(probe), { memoryMB: 200 });
        await s3.halt();
        try {
          assert.equal((await invokeOk()).start, 'warm', 'a warm invocation needs no S3');
          const deploy = await apiError(other());
          assertUnavailable(deploy, new RegExp(`S3 at ${s3.endpoint} \\(bucket ${bucket}\\) is unreachable`));
        } finally {
          await s3.restart();
        }
        const deployed = await eventually(
          () => other().catch((err: unknown) => err),
          (result) => !(result instanceof ApiError && result.status === 503),
        );
        assert.ok(!(deployed instanceof Error), String(deployed));
        assert.equal((await invoke(server.client)).start, 'warm');
      });
    });

    it('runs on MySQL (MariaDB): deploys, invokes cold then warm and records both', async () => {
      const name = await mariadb.createDatabase();
      const server = await startServer(['--no-examples'], undefined, { SAVASSAN_DB_URL: mariadb.url(name) });
      try {
        assert.match(
          server.output(),
          new RegExp(`metadata in MySQL at mysql://127\\.0\\.0\\.1:${mariadb.port}/${name};`),
        );
        await server.client.deploy('probe', await readBundle(probe), {});
        const cold = await invoke(server.client);
        const warm = await invoke(server.client);
        assert.deepEqual([cold.start, warm.start], ['cold', 'warm']);
        assert.equal((await server.client.getInvocation(warm.invocationId)).start, 'warm');
        const session = await mariadb.session(name);
        try {
          assert.equal((await session.query('select id from invocations')).length, 2);
        } finally {
          await session.close();
        }
      } finally {
        await server.cleanup();
      }
    });

    it('refuses to start when a backend cannot be reached: exit 1, one line naming it, no password', async () => {
      const port = await freeLoopbackPort(); // nothing listens there
      const dataDirs: string[] = [];
      const start = async (args: string[], env: Record<string, string> = {}) => {
        const dataDir = await mkdtemp(join(tmpdir(), 'sv-'));
        dataDirs.push(dataDir);
        const common = ['start', '--port', '0', '--data-dir', dataDir, '--sandbox', 'process', '--no-examples'];
        return runCli('', [...common, ...args], env);
      };
      try {
        const [noRedis, noDb, noS3] = await Promise.all([
          start([], { SAVASSAN_REDIS_URL: `redis://:hunter2@127.0.0.1:${port}/0` }),
          start([], { SAVASSAN_DB_URL: `postgres://savassan:hunter2@127.0.0.1:${port}/savassan` }),
          start([], { SAVASSAN_S3_URL: `http://key:hunter2@127.0.0.1:${port}/${bucket}` }),
        ]);
        const expected: [typeof noRedis, RegExp][] = [
          [
            noRedis,
            new RegExp(`cannot start: Redis at redis://127\\.0\\.0\\.1:${port}/0 is unreachable: .*ECONNREFUSED`),
          ],
          [noDb, new RegExp(`cannot start: cannot connect to PostgreSQL at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`)],
          [
            noS3,
            new RegExp(`cannot start: .*S3 at http://127\\.0\\.0\\.1:${port} \\(bucket ${bucket}\\) is unreachable`),
          ],
        ];
        for (const [result, message] of expected) {
          assert.equal(result.code, 1, result.stderr);
          assert.match(result.stderr, message);
          assert.doesNotMatch(result.stderr, /hunter2/, 'the password is never printed');
          assert.doesNotMatch(result.stderr, /^\s+at /m, 'no stack trace');
          assert.doesNotMatch(result.stdout, /listening/);
        }
      } finally {
        await Promise.all(dataDirs.map((dir) => rm(dir, { recursive: true, force: true })));
      }
    });
  },
);

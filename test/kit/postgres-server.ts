import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { startSqlTestServer } from './sql-server-common.js';
import type { EngineSpec, InitContext, SqlSession, SqlTestServer } from './sql-server-common.js';

/**
 * The server binaries: `SAVASSAN_TEST_PG_BIN`, else the newest Debian `postgresql-N` package's
 * (`/usr/lib/postgresql/15/bin` on Debian 12).
 */
export const postgresBinDir = process.env.SAVASSAN_TEST_PG_BIN ?? newestDebianPostgres('/usr/lib/postgresql');
const user = 'savassan';

const postgres: EngineSpec = {
  engine: 'PostgreSQL',
  accounts: ['postgres', 'nobody'],
  initialise,
  daemon: (dir, port) => ({
    command: join(postgresBinDir, 'postgres'),
    args: [
      ...['-D', join(dir, 'data'), '-p', String(port)],
      ...['-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${dir}`],
      ...['-c', 'logging_collector=off', '-c', 'max_connections=200', '-c', 'shared_buffers=32MB'],
    ],
  }),
  ready: /database system is ready to accept connections/,
  // Immediate shutdown: the postmaster ends every backend at once and exits, with no checkpoint, so the next start
  // runs crash recovery, as after a real crash; and unlike SIGKILL it leaves no orphaned backend behind.
  haltSignal: 'SIGQUIT',
  url: (port, password, database) => `postgres://${user}:${password}@127.0.0.1:${port}/${database}`,
  connect,
  createDatabase: (name) => `create database "${name}"`,
  dropDatabase: (name) => `drop database if exists "${name}" with (force)`,
};

/**
 * Start PostgreSQL 15 from the system binaries: `initdb` into a temporary directory (as the `postgres` account when
 * root), then `postgres` on a free loopback port, its unix socket in that directory. The user `savassan` logs in
 * with a random password over TCP (scram-sha-256). Durability settings are the defaults (fsync on).
 *
 * @example
 * const server = await startPostgresServer();
 * const store = await openPostgresMetadataStore(server.url(await server.createDatabase()));
 * // ...
 * await store.close();
 * await server.stop();
 */
export function startPostgresServer(): Promise<SqlTestServer> {
  return startSqlTestServer(postgres);
}

async function initialise({ dir, password, run, writeOwnedFile }: InitContext): Promise<void> {
  const passwordFile = await writeOwnedFile('password', `${password}\n`);
  await run(join(postgresBinDir, 'initdb'), [
    ...['-D', join(dir, 'data'), '-U', user, `--pwfile=${passwordFile}`],
    ...['--auth-local=trust', '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C'],
    // The directory dies with the test run: no need to wait for initdb's files to reach the disk.
    ...['--no-sync', '--no-instructions'],
  ]);
}

async function connect(port: number, password: string, database: string | undefined): Promise<SqlSession> {
  const client = new Client({ host: '127.0.0.1', port, user, password, database: database ?? 'postgres' });
  // A server halted under an open session must not crash the test process; the next query fails instead.
  client.on('error', () => undefined);
  await client.connect();
  return {
    query: async (statement) => (await client.query<Record<string, unknown>>(statement)).rows,
    close: () => client.end(),
  };
}

function newestDebianPostgres(root: string): string {
  const versions = existsSync(root) ? readdirSync(root).filter((name) => /^\d+$/.test(name)) : [];
  const newest = versions
    .sort((a, b) => Number(b) - Number(a))
    .find((v) => existsSync(join(root, v, 'bin', 'postgres')));
  return join(root, newest ?? '15', 'bin');
}

import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { startSqlTestServer } from './sql-server-common.js';
import type { EngineSpec, InitContext, SqlSession, SqlTestServer } from './sql-server-common.js';

/** Where Debian's mariadb-server package puts the server and its setup tool. */
export const mariadbBinaries = {
  server: process.env.SAVASSAN_TEST_MARIADBD ?? '/usr/sbin/mariadbd',
  installDb: process.env.SAVASSAN_TEST_MARIADB_INSTALL_DB ?? '/usr/bin/mariadb-install-db',
};
const user = 'savassan';

const mariadb: EngineSpec = {
  engine: 'MariaDB',
  accounts: ['mysql', 'nobody'],
  initialise,
  daemon: (dir, port) => ({
    command: mariadbBinaries.server,
    args: [
      '--no-defaults',
      `--datadir=${join(dir, 'data')}`,
      `--port=${port}`,
      '--bind-address=127.0.0.1',
      `--socket=${join(dir, 'mariadbd.sock')}`,
      `--pid-file=${join(dir, 'mariadbd.pid')}`,
      `--init-file=${join(dir, 'init.sql')}`,
      '--skip-name-resolve',
      '--innodb-buffer-pool-size=64M',
      '--max-connections=300',
    ],
  }),
  ready: /ready for connections/,
  // mariadbd is one process: SIGKILL is a crash, and InnoDB recovers on the next start.
  haltSignal: 'SIGKILL',
  url: (port, password, database) => `mysql://${user}:${password}@127.0.0.1:${port}/${database}`,
  connect,
  createDatabase: (name) => `create database \`${name}\``,
  dropDatabase: (name) => `drop database if exists \`${name}\``,
};

/**
 * Start MariaDB from the system binaries: `mariadb-install-db` into a temporary directory (as the `mysql` account
 * when root), then `mariadbd` on a free loopback port with `--no-defaults`, so the server's own defaults apply
 * (latin1, REPEATABLE READ). An init file creates the user `savassan` with a random password and all privileges.
 *
 * @example
 * const server = await startMariadbServer();
 * const store = await openMysqlMetadataStore(server.url(await server.createDatabase()));
 * // ...
 * await store.close();
 * await server.stop();
 */
export function startMariadbServer(): Promise<SqlTestServer> {
  return startSqlTestServer(mariadb);
}

async function initialise({ dir, password, run, writeOwnedFile }: InitContext): Promise<void> {
  await run(mariadbBinaries.installDb, [
    '--no-defaults',
    `--datadir=${join(dir, 'data')}`,
    '--auth-root-authentication-method=normal',
    '--skip-test-db',
  ]);
  // Runs at every start; `if not exists` makes that harmless.
  await writeOwnedFile(
    'init.sql',
    [
      `create user if not exists '${user}'@'%' identified by '${password}';`,
      `grant all privileges on *.* to '${user}'@'%';`,
      '',
    ].join('\n'),
  );
}

async function connect(port: number, password: string, database: string | undefined): Promise<SqlSession> {
  const connection = await createConnection({ host: '127.0.0.1', port, user, password, database });
  // A server halted under an open session must not crash the test process; the next query fails instead.
  connection.on('error', () => undefined);
  return {
    query: async (statement) => {
      const [rows] = await connection.query(statement);
      return Array.isArray(rows) ? (rows as Record<string, unknown>[]) : [];
    },
    close: () => connection.end(),
  };
}

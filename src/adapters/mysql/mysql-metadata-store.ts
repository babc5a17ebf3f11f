import { CompiledQuery, Kysely, MysqlDialect } from 'kysely';
import type { DatabaseConnection } from 'kysely';
import { createPool } from 'mysql2';
import { PlatformError } from '../../core/errors.js';
import type { Database } from '../sql/schema.js';
import {
  compileServerOptions,
  openServerMetadataStore,
  parseServerUrl,
  redactUrl,
} from '../sql/server-metadata-store.js';
import type { ServerMetadataStoreOptions, UrlScheme } from '../sql/server-metadata-store.js';
import type { SqlMetadataStore } from '../sql/sql-metadata-store.js';

/** Options of `openMysqlMetadataStore`. */
export type MysqlMetadataStoreOptions = ServerMetadataStoreOptions;

const mysqlUrls: UrlScheme = { backend: 'MySQL', protocols: ['mysql:', 'mariadb:'], defaultPort: 3306 };

/**
 * Open the metadata store on a MySQL or MariaDB database and apply pending migrations. The tables are InnoDB,
 * utf8mb4 with binary collation, whatever the server's defaults.
 *
 * `url` is `mysql://user:password@host:3306/database` (or `mariadb://`); it must name an existing database.
 * Further query parameters are `mysql2` connection options (`?ssl={"rejectUnauthorized":true}`). A server that
 * cannot be reached fails with UNAVAILABLE ("MySQL at host:port"), and so do calls while it is down; the pool
 * reconnects by itself when the server is back.
 *
 * Sessions run at READ COMMITTED, as PostgreSQL does by default: concurrent deploys of a new function then wait on
 * each other's row instead of deadlocking on REPEATABLE READ's gap locks.
 *
 * @example
 * const store = await openMysqlMetadataStore('mysql://savassan:secret@db.internal:3306/savassan');
 */
export async function openMysqlMetadataStore(
  url: string,
  options: MysqlMetadataStoreOptions = {},
): Promise<SqlMetadataStore> {
  const address = parseServerUrl(url, mysqlUrls);
  if (address.database === '') {
    throw new PlatformError('BAD_REQUEST', `MySQL URL ${redactUrl(url)} must name a database: mysql://host:3306/NAME`);
  }
  const compiled = compileServerOptions(options);
  const pool = createPool({
    uri: url,
    connectionLimit: compiled.maxConnections,
    connectTimeout: compiled.connectTimeoutMs,
    charset: 'utf8mb4',
    // BIGINT beyond 2^53 comes back as a string instead of a rounded number; the store rejects it as unsafe.
    supportBigNumbers: true,
    enableKeepAlive: true,
  });
  const db = new Kysely<Database>({
    dialect: new MysqlDialect({ pool, onCreateConnection: readCommitted }),
  });
  return openServerMetadataStore(db, address, compiled, 'MySQL');
}

async function readCommitted(connection: DatabaseConnection): Promise<void> {
  await connection.executeQuery(CompiledQuery.raw('set session transaction isolation level read committed'));
}

import { Kysely, PostgresDialect } from 'kysely';
import { Pool } from 'pg';
import type { Database } from '../sql/schema.js';
import { compileServerOptions, openServerMetadataStore, parseServerUrl } from '../sql/server-metadata-store.js';
import type { ServerMetadataStoreOptions, UrlScheme } from '../sql/server-metadata-store.js';
import type { SqlMetadataStore } from '../sql/sql-metadata-store.js';

/** Options of `openPostgresMetadataStore`. */
export type PostgresMetadataStoreOptions = ServerMetadataStoreOptions;

const postgresUrls: UrlScheme = { backend: 'PostgreSQL', protocols: ['postgres:', 'postgresql:'], defaultPort: 5432 };

/**
 * Open the metadata store on a PostgreSQL database and apply pending migrations.
 *
 * `url` is a libpq-style connection URL, given to `pg` as is, so its parameters (`sslmode`, `host=` for a
 * socket directory, `options`, ...) work; the database must exist. A server that cannot be reached fails with
 * UNAVAILABLE ("PostgreSQL at host:port"), and so do calls while it is down; the pool reconnects by itself when
 * the server is back.
 *
 * @example
 * const store = await openPostgresMetadataStore('postgres://savassan:secret@db.internal:5432/savassan');
 */
export async function openPostgresMetadataStore(
  url: string,
  options: PostgresMetadataStoreOptions = {},
): Promise<SqlMetadataStore> {
  const address = parseServerUrl(url, postgresUrls);
  const compiled = compileServerOptions(options);
  const pool = new Pool({
    connectionString: url,
    max: compiled.maxConnections,
    connectionTimeoutMillis: compiled.connectTimeoutMs,
    keepAlive: true,
    application_name: 'savassan',
  });
  // A connection that dies while idle, or while checked out between two statements, emits 'error' on its client
  // and on the pool; unhandled, that would end the process. The pool drops such clients, and the call that was
  // using one fails with its own error.
  pool.on('error', ignore);
  pool.on('connect', (client) => client.on('error', ignore));
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return openServerMetadataStore(db, address, compiled, 'PostgreSQL');
}

function ignore(): void {}

import { Pool } from 'pg';
import type { PoolClient } from 'pg';
import { PlatformError } from '../../core/errors.js';
import { describeServer, parseServerUrl, redactUrl } from '../sql/server-metadata-store.js';
import type { ServerAddress, UrlScheme } from '../sql/server-metadata-store.js';
import { PgvectorVectorStore, compilePgvectorOptions, pgvectorSessionSettings } from '../sql/pgvector-vector-store.js';
import type { PgvectorSession, PgvectorStoreOptions } from '../sql/pgvector-vector-store.js';

/** Options of `openPostgresVectorStore`. */
export interface PostgresVectorStoreOptions extends PgvectorStoreOptions {
  /** Connections in the pool. Default 4. */
  maxConnections?: number;
  /** How long opening a connection may take, in milliseconds. Default 5000. */
  connectTimeoutMs?: number;
}

const postgresUrls: UrlScheme = { backend: 'PostgreSQL', protocols: ['postgres:', 'postgresql:'], defaultPort: 5432 };

/**
 * Open the vector store on a PostgreSQL server with the pgvector extension: `create extension if not exists
 * vector`, then the `image_embeddings_{dimensions}` table and its HNSW index. A server without the extension fails
 * with UNAVAILABLE naming it and how to install it; an unreachable one with UNAVAILABLE naming the server.
 *
 * `url` is a libpq-style URL given to `pg` as is (credentials in it); the database must exist.
 *
 * @example
 * const store = await openPostgresVectorStore('postgres://savassan:secret@db.internal/savassan', { dimensions: 512 });
 */
export async function openPostgresVectorStore(
  url: string,
  options: PostgresVectorStoreOptions,
): Promise<PgvectorVectorStore> {
  const store = createPostgresVectorStore(url, options);
  try {
    await store.open();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}

/** The same store, connecting on first use instead of now. */
export function createPostgresVectorStore(url: string, options: PostgresVectorStoreOptions): PgvectorVectorStore {
  const address = parseServerUrl(url, postgresUrls);
  const compiled = compilePgvectorOptions(options);
  const pool = new Pool({
    connectionString: url,
    max: options.maxConnections ?? 4,
    connectionTimeoutMillis: options.connectTimeoutMs ?? 5000,
    keepAlive: true,
    application_name: 'savassan-vectors',
  });
  pool.on('error', ignore);
  pool.on('connect', (client) => {
    client.on('error', ignore);
    // Queued before any statement of the connection's first user.
    for (const setting of pgvectorSessionSettings(compiled.efSearch)) client.query(setting).catch(ignore);
  });
  let poolEnded = false;
  const endPool = async (): Promise<void> => {
    if (poolEnded) return;
    poolEnded = true;
    await pool.end();
  };
  return new PgvectorVectorStore(
    compiled,
    async () => {
      await withClient(pool, address, (client) => ensureExtension(client, address, url));
      return poolSession(pool, address, endPool);
    },
    endPool,
  );
}

async function ensureExtension(client: PoolClient, address: ServerAddress, url: string): Promise<void> {
  try {
    await client.query('create extension if not exists vector');
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const where = `${describeServer(address)} (${redactUrl(url)})`;
    if (code === '0A000' || code === '58P01') {
      throw new PlatformError(
        'UNAVAILABLE',
        `${where} has no "vector" extension (pgvector), which the vector store needs: install it on the server ` +
          '(Debian/Ubuntu: postgresql-<version>-pgvector; see github.com/pgvector/pgvector), or use the embedded ' +
          'store (--vector-store pglite)',
        { cause: err },
      );
    }
    if (code === '42501') {
      throw new PlatformError(
        'UNAVAILABLE',
        `${where}: the user may not create the "vector" extension (pgvector); ask an administrator to run ` +
          '"create extension vector" in the database once',
        { cause: err },
      );
    }
    throw err;
  }
}

function poolSession(pool: Pool, address: ServerAddress, end: () => Promise<void>): PgvectorSession {
  return {
    query: (text, params) => withClient(pool, address, (client) => rows(client, text, params)),
    exec: (text) =>
      withClient(pool, address, async (client) => {
        await client.query(text);
      }),
    transaction: (work) =>
      withClient(pool, address, async (client) => {
        await client.query('begin');
        try {
          const result = await work(clientSession(client));
          await client.query('commit');
          return result;
        } catch (err) {
          await client.query('rollback').catch(ignore);
          throw err;
        }
      }),
    close: end,
  };
}

function clientSession(client: PoolClient): PgvectorSession {
  const session: PgvectorSession = {
    query: (text, params) => rows(client, text, params),
    exec: async (text) => {
      await client.query(text);
    },
    transaction: (work) => work(session),
    close: () => Promise.resolve(),
  };
  return session;
}

async function rows<R extends Record<string, unknown>>(
  client: PoolClient,
  text: string,
  params: readonly unknown[] | undefined,
): Promise<R[]> {
  return (await client.query<R>(text, params === undefined ? undefined : [...params])).rows;
}

async function withClient<T>(pool: Pool, address: ServerAddress, work: (client: PoolClient) => Promise<T>): Promise<T> {
  let client: PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw new PlatformError('UNAVAILABLE', `cannot connect to ${describeServer(address)}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
  let broken: unknown;
  try {
    return await work(client);
  } catch (err) {
    // A connection-level failure (no SQLSTATE) takes the client out of the pool.
    if ((err as { code?: unknown }).code === undefined) broken = err;
    throw err;
  } finally {
    client.release(broken instanceof Error ? broken : undefined);
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function ignore(): void {}

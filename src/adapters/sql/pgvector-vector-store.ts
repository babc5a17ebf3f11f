import { PlatformError } from '../../core/errors.js';
import type { StoredVector, VectorMatch, VectorStore } from '../../core/ports/vector-store.js';

/**
 * The subset of a PostgreSQL connection the pgvector store needs: PGlite and `pg` both provide it. Parameters are
 * text (numbers, strings and arrays of strings); rows come back as plain objects.
 */
export interface PgvectorSession {
  query<R extends Record<string, unknown>>(text: string, params?: readonly unknown[]): Promise<R[]>;
  /** Run statements separated by `;`, without parameters. */
  exec(text: string): Promise<void>;
  /** Run `work` in one transaction on one connection, committed when it resolves and rolled back when it throws. */
  transaction<T>(work: (session: PgvectorSession) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

/** Options of `PgvectorVectorStore`. */
export interface PgvectorStoreOptions {
  /** Length of every vector (a table per length: `image_embeddings_{dimensions}`), 1 to 16000. */
  dimensions: number;
  /**
   * HNSW candidate list size at query time (`hnsw.ef_search`), 10 to 1000. Default 100: on 512-d embeddings that
   * keeps recall@10 above 0.95 where the default of 40 does not.
   */
  efSearch?: number;
  /** Vectors per INSERT statement. Default 256. */
  batchSize?: number;
}

/** Bounds of `PgvectorStoreOptions`, checked once by `compilePgvectorOptions`. */
export const pgvectorLimits = {
  dimensions: { min: 1, max: 16_000 },
  efSearch: { min: 10, max: 1000, default: 100 },
  batchSize: { min: 1, max: 10_000, default: 256 },
} as const;

export interface CompiledPgvectorOptions {
  dimensions: number;
  efSearch: number;
  batchSize: number;
  table: string;
}

export function compilePgvectorOptions(options: PgvectorStoreOptions): CompiledPgvectorOptions {
  const bounded = (name: keyof typeof pgvectorLimits, value: number | undefined): number => {
    const limits = pgvectorLimits[name];
    const chosen = value ?? ('default' in limits ? limits.default : undefined);
    if (chosen === undefined || !Number.isInteger(chosen) || chosen < limits.min || chosen > limits.max) {
      throw new PlatformError(
        'BAD_REQUEST',
        `vector store option ${name} must be an integer from ${limits.min} to ${limits.max}, not ${String(value)}`,
      );
    }
    return chosen;
  };
  const dimensions = bounded('dimensions', options.dimensions);
  return {
    dimensions,
    efSearch: bounded('efSearch', options.efSearch),
    batchSize: bounded('batchSize', options.batchSize),
    table: `image_embeddings_${dimensions}`,
  };
}

/**
 * The schema: the seed's `image_embeddings` table, one per vector length. The seed's `project_id` is the
 * collection; ids and project ids are text (the platform's ids are not UUIDs). The primary key serves the seed's
 * per-project index. The HNSW index uses cosine distance (`<=>`) with pgvector's defaults (m 16, ef_construction 64).
 */
export function pgvectorSchema(table: string, dimensions: number): string {
  return `
    create table if not exists ${table} (
      id text not null,
      project_id text not null,
      image_uri text not null,
      embedding vector(${dimensions}) not null,
      created_at timestamptz not null default now(),
      primary key (project_id, id)
    );
    create index if not exists ${table}_hnsw on ${table} using hnsw (embedding vector_cosine_ops);`;
}

/**
 * Session settings for searches: the HNSW candidate list size, and iterative scans so that a search filtered to one
 * collection keeps walking the graph until it has `k` rows of that collection (pgvector 0.8).
 */
export function pgvectorSessionSettings(efSearch: number): string[] {
  return [`set hnsw.ef_search = ${efSearch}`, 'set hnsw.iterative_scan = relaxed_order'];
}

/** A vector as pgvector's text input: `[0.1,0.2,...]`, each entry with the 9 significant digits a float32 needs. */
export function vectorLiteral(vector: Float32Array): string {
  const parts = new Array<string>(vector.length);
  for (let i = 0; i < vector.length; i++) {
    const value = vector[i] as number;
    parts[i] = Number.isInteger(value) ? String(value) : value.toPrecision(9);
  }
  return `[${parts.join(',')}]`;
}

/**
 * A PostgreSQL array's text input, every element quoted: drivers differ in how they send JavaScript arrays (PGlite
 * does not quote elements), so arrays are sent as text.
 */
export function arrayLiteral(values: readonly string[]): string {
  return `{${values.map((value) => `"${value.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}

/** pgvector's text output (`[0.1,0.2,1e-05]`, valid JSON) as a Float32Array. */
export function parseVectorLiteral(text: string): Float32Array {
  return Float32Array.from(JSON.parse(text) as number[]);
}

/** Statistics are gathered again after this many rows were written. */
const analyzeAfterRows = 1000;

interface VectorRow extends Record<string, unknown> {
  id: string;
  image_uri: string;
  embedding: string;
}

interface MatchRow extends Record<string, unknown> {
  id: string;
  image_uri: string;
  distance: number | string;
}

/**
 * A `VectorStore` on PostgreSQL with pgvector, over any `PgvectorSession`: the embedded PGlite and a PostgreSQL
 * server run the same SQL. The session is opened on first use (or by `open()`), the schema created then.
 *
 * Search walks the HNSW index; when the index returns fewer rows than the collection could give (a collection much
 * smaller than the table, past the iterative scan's limit), the search is repeated exactly, so a search never
 * returns fewer than min(k, count) matches.
 */
export class PgvectorVectorStore implements VectorStore {
  readonly dimensions: number;
  private readonly options: CompiledPgvectorOptions;
  private readonly connect: () => Promise<PgvectorSession>;
  private readonly dispose: () => Promise<void>;
  private opening: Promise<PgvectorSession> | undefined;
  private closed = false;
  /** Rows written since the table's statistics were last gathered. */
  private changedSinceAnalyze = 0;

  /**
   * `connect` opens the session and runs `pgvectorSessionSettings` on every connection it will use; it may be called
   * again after it failed. `dispose`, called once at close whether a session was opened or not, frees what
   * `connect` shares between tries (a pool).
   */
  constructor(
    options: CompiledPgvectorOptions,
    connect: () => Promise<PgvectorSession>,
    dispose: () => Promise<void> = () => Promise.resolve(),
  ) {
    this.options = options;
    this.dimensions = options.dimensions;
    this.connect = connect;
    this.dispose = dispose;
  }

  /** Open the session and create the schema now rather than on first use. Idempotent. */
  async open(): Promise<void> {
    await this.session();
  }

  async upsert(collection: string, vectors: readonly StoredVector[]): Promise<void> {
    for (const stored of vectors) this.check(stored.vector, `vector ${stored.id}`);
    if (vectors.length === 0) return;
    // The last of the same id wins, as sequential upserts would; one INSERT cannot update a row twice.
    const unique = [...new Map(vectors.map((stored) => [stored.id, stored])).values()];
    const session = await this.session();
    const { table, batchSize } = this.options;
    await session.transaction(async (tx) => {
      for (let start = 0; start < unique.length; start += batchSize) {
        const batch = unique.slice(start, start + batchSize);
        await tx.query(
          `insert into ${table} (project_id, id, image_uri, embedding)
           select $1, id, uri, embedding from unnest($2::text[], $3::text[], $4::vector[]) as v(id, uri, embedding)
           on conflict (project_id, id) do update
             set image_uri = excluded.image_uri, embedding = excluded.embedding, created_at = now()`,
          [
            collection,
            arrayLiteral(batch.map((stored) => stored.id)),
            arrayLiteral(batch.map((stored) => stored.uri)),
            arrayLiteral(batch.map((stored) => vectorLiteral(stored.vector))),
          ],
        );
      }
    });
    this.changedSinceAnalyze += unique.length;
    if (this.changedSinceAnalyze >= analyzeAfterRows) await this.analyze(session);
  }

  async search(collection: string, query: Float32Array, k: number): Promise<VectorMatch[]> {
    this.check(query, 'query vector');
    if (!Number.isInteger(k) || k < 1) {
      throw new PlatformError('BAD_REQUEST', `k must be a positive integer, not ${String(k)}`);
    }
    const session = await this.session();
    const { table } = this.options;
    const literal = vectorLiteral(query);
    const indexed = await session.query<MatchRow>(
      `select id, image_uri, embedding <=> $2::vector as distance from ${table}
       where project_id = $1 order by embedding <=> $2::vector limit $3`,
      [collection, literal, k],
    );
    let rows = indexed;
    if (indexed.length < k && indexed.length < (await this.count(collection))) {
      // `+ 0` keeps the planner off the index: an exact scan of the collection by its primary key.
      rows = await session.query<MatchRow>(
        `select id, image_uri, embedding <=> $2::vector as distance from ${table}
         where project_id = $1 order by (embedding <=> $2::vector) + 0 limit $3`,
        [collection, literal, k],
      );
    }
    return rows
      .map((row) => ({ id: row.id, uri: row.image_uri, distance: Number(row.distance) }))
      .sort((a, b) => a.distance - b.distance || compareIds(a.id, b.id));
  }

  async list(collection: string): Promise<StoredVector[]> {
    const session = await this.session();
    const rows = await session.query<VectorRow>(
      `select id, image_uri, embedding::text as embedding from ${this.options.table} where project_id = $1`,
      [collection],
    );
    return rows
      .map((row) => ({ id: row.id, uri: row.image_uri, vector: parseVectorLiteral(row.embedding) }))
      .sort((a, b) => compareIds(a.id, b.id));
  }

  async count(collection: string): Promise<number> {
    const session = await this.session();
    const rows = await session.query<{ count: number | string }>(
      `select count(*)::int as count from ${this.options.table} where project_id = $1`,
      [collection],
    );
    return Number(rows[0]?.count ?? 0);
  }

  async deleteCollection(collection: string): Promise<void> {
    const session = await this.session();
    await session.query(`delete from ${this.options.table} where project_id = $1`, [collection]);
    await this.analyze(session);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const opening = this.opening;
    const session = await opening?.catch(() => undefined);
    try {
      await session?.close();
    } finally {
      await this.dispose();
    }
  }

  /**
   * Gather the table's statistics. The planner takes the HNSW index for a collection it knows to be large and an
   * exact scan of a small one; with no statistics (PGlite runs no autovacuum) it would scan a large collection
   * exactly.
   */
  private async analyze(session: PgvectorSession): Promise<void> {
    this.changedSinceAnalyze = 0;
    await session.exec(`analyze ${this.options.table}`);
  }

  private session(): Promise<PgvectorSession> {
    if (this.closed) return Promise.reject(new PlatformError('UNAVAILABLE', 'the vector store is closed'));
    if (this.opening === undefined) {
      let opening = this.connect().then(async (session) => {
        try {
          await session.transaction(async (tx) => {
            await tx.exec(pgvectorSchema(this.options.table, this.options.dimensions));
          });
          return guarded(session);
        } catch (err) {
          await session.close().catch(() => undefined);
          throw err;
        }
      });
      opening = opening.catch((err: unknown) => {
        // A failed open is not kept: the next call tries again (a server that was down may be back).
        if (this.opening === opening) this.opening = undefined;
        if (err instanceof PlatformError) throw err;
        throw new PlatformError('UNAVAILABLE', `cannot open the vector store: ${errorMessage(err)}`, { cause: err });
      });
      this.opening = opening;
    }
    return this.opening;
  }

  private check(vector: Float32Array, what: string): void {
    if (!(vector instanceof Float32Array) || vector.length !== this.dimensions) {
      const length = vector instanceof Float32Array ? `${vector.length} entries` : 'not a Float32Array';
      throw new PlatformError('BAD_REQUEST', `${what} must have ${this.dimensions} dimensions, it has ${length}`);
    }
    let zero = true;
    for (const value of vector) {
      if (!Number.isFinite(value)) throw new PlatformError('BAD_REQUEST', `${what} has a non-finite entry`);
      if (value !== 0) zero = false;
    }
    // pgvector's cosine distance to a zero vector is NaN, which would sort anywhere.
    if (zero) throw new PlatformError('BAD_REQUEST', `${what} is all zeros: it has no direction to compare`);
  }
}

/** The session with its driver's errors as PlatformErrors (INTERNAL: a statement the store wrote failed). */
function guarded(session: PgvectorSession): PgvectorSession {
  const rethrow = (err: unknown): never => {
    if (err instanceof PlatformError) throw err;
    throw new PlatformError('INTERNAL', `vector store statement failed: ${errorMessage(err)}`, { cause: err });
  };
  return {
    query: <R extends Record<string, unknown>>(text: string, params?: readonly unknown[]) =>
      session.query<R>(text, params).catch(rethrow),
    exec: (text) => session.exec(text).catch(rethrow),
    transaction: (work) => session.transaction((tx) => work(guarded(tx))).catch(rethrow),
    close: () => session.close(),
  };
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

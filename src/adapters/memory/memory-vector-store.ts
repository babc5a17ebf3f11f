import { PlatformError } from '../../core/errors.js';
import type { StoredVector, VectorMatch, VectorStore } from '../../core/ports/vector-store.js';

interface Row {
  uri: string;
  vector: Float32Array;
  norm: number;
}

/**
 * A `VectorStore` in memory with exact (brute force) cosine search: the oracle the indexed adapters are measured
 * against, and the store for tests and small jobs. Vectors are copied in and out, so callers may reuse their arrays.
 */
export class MemoryVectorStore implements VectorStore {
  readonly dimensions: number;
  readonly #collections = new Map<string, Map<string, Row>>();
  #closed = false;

  constructor(dimensions: number) {
    if (!Number.isInteger(dimensions) || dimensions < 1) {
      throw new PlatformError('BAD_REQUEST', `vector dimensions must be a positive integer, got ${dimensions}`);
    }
    this.dimensions = dimensions;
  }

  upsert(collection: string, vectors: readonly StoredVector[]): Promise<void> {
    return settle(() => this.#upsert(collection, vectors));
  }

  #upsert(collection: string, vectors: readonly StoredVector[]): void {
    this.#assertOpen('write vectors');
    for (const item of vectors) this.#assertLength(item.vector, `vector ${item.id}`);
    let rows = this.#collections.get(collection);
    if (rows === undefined) {
      rows = new Map();
      this.#collections.set(collection, rows);
    }
    for (const item of vectors) {
      const vector = Float32Array.from(item.vector);
      rows.set(item.id, { uri: item.uri, vector, norm: norm(vector) });
    }
  }

  search(collection: string, query: Float32Array, k: number): Promise<VectorMatch[]> {
    return settle(() => this.#search(collection, query, k));
  }

  #search(collection: string, query: Float32Array, k: number): VectorMatch[] {
    this.#assertOpen('search vectors');
    this.#assertLength(query, 'the query');
    if (!Number.isInteger(k) || k < 1) throw new PlatformError('BAD_REQUEST', `k must be a positive integer, got ${k}`);
    const rows = this.#collections.get(collection);
    if (rows === undefined) return [];
    const queryNorm = norm(query);
    const matches: VectorMatch[] = [];
    for (const [id, row] of rows) {
      matches.push({ id, uri: row.uri, distance: cosineDistance(query, queryNorm, row.vector, row.norm) });
    }
    matches.sort(byDistanceThenId);
    return matches.slice(0, k);
  }

  list(collection: string): Promise<StoredVector[]> {
    return settle(() => {
      this.#assertOpen('list vectors');
      const rows = this.#collections.get(collection) ?? new Map<string, Row>();
      const out = [...rows].map(([id, row]) => ({ id, uri: row.uri, vector: Float32Array.from(row.vector) }));
      return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    });
  }

  count(collection: string): Promise<number> {
    return settle(() => {
      this.#assertOpen('count vectors');
      return this.#collections.get(collection)?.size ?? 0;
    });
  }

  deleteCollection(collection: string): Promise<void> {
    return settle(() => {
      this.#assertOpen('delete vectors');
      this.#collections.delete(collection);
    });
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#collections.clear();
    return Promise.resolve();
  }

  #assertLength(vector: Float32Array, what: string): void {
    if (vector.length !== this.dimensions) {
      throw new PlatformError(
        'BAD_REQUEST',
        `${what} has ${vector.length} dimensions; this vector store holds ${this.dimensions}`,
      );
    }
  }

  #assertOpen(action: string): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', `cannot ${action}: the vector store is closed`);
  }
}

/** The result of `fn` as a promise, its throw as a rejection (callers of a port expect async failures). */
function settle<T>(fn: () => T): Promise<T> {
  try {
    return Promise.resolve(fn());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

function norm(vector: Float32Array): number {
  let sum = 0;
  for (const value of vector) sum += value * value;
  return Math.sqrt(sum);
}

/** 1 - cosine similarity; a zero vector is at distance 1 from everything (no direction). */
function cosineDistance(a: Float32Array, aNorm: number, b: Float32Array, bNorm: number): number {
  if (aNorm === 0 || bNorm === 0) return 1;
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return 1 - dot / (aNorm * bNorm);
}

function byDistanceThenId(a: VectorMatch, b: VectorMatch): number {
  if (a.distance !== b.distance) return a.distance - b.distance;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** One stored embedding: the seed's `image_embeddings` row. */
export interface StoredVector {
  /** Unique within its collection. */
  id: string;
  /** Where the image is (`s3://bucket/key`). */
  uri: string;
  vector: Float32Array;
}

export interface VectorMatch {
  id: string;
  uri: string;
  /** Cosine distance (1 - cosine similarity): 0 for the same direction, up to 2. */
  distance: number;
}

/**
 * Embeddings of images, in collections (a curation job's images form one; the seed's `project_id`). All vectors of
 * one store have `dimensions` entries. Search is approximate where the adapter indexes (HNSW with cosine distance)
 * and exact where it does not.
 */
export interface VectorStore {
  readonly dimensions: number;
  /** Insert or replace by (collection, id). A vector of the wrong length is a BAD_REQUEST and stores nothing. */
  upsert(collection: string, vectors: readonly StoredVector[]): Promise<void>;
  /** The `k` nearest to `query` in the collection, nearest first (ties by id). */
  search(collection: string, query: Float32Array, k: number): Promise<VectorMatch[]>;
  /** Every vector of the collection, by id. */
  list(collection: string): Promise<StoredVector[]>;
  count(collection: string): Promise<number>;
  deleteCollection(collection: string): Promise<void>;
  close(): Promise<void>;
}

import type { Readable } from 'node:stream';

/** Object storage for code zips and invocation logs. Keys are `/`-separated, never absolute, never `..`. */
export interface BlobStore {
  put(key: string, data: Uint8Array | string): Promise<void>;
  /**
   * Store a stream of exactly `length` bytes without holding it in memory. A stream that is longer or shorter
   * than declared fails with BAD_REQUEST and stores nothing (the previous blob under `key`, if any, stays).
   */
  putStream(key: string, body: Readable, length: number): Promise<void>;
  /** Null when the key does not exist. */
  get(key: string): Promise<Buffer | null>;
  /**
   * The blob as a stream, read as the consumer takes it (memory bounded whatever its size); null when the key does
   * not exist. The caller must consume or destroy it.
   */
  getStream(key: string): Promise<Readable | null>;
  exists(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

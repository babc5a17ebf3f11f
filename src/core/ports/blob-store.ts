/** Object storage for code zips and invocation logs. Keys are `/`-separated, never absolute, never `..`. */
export interface BlobStore {
  put(key: string, data: Uint8Array | string): Promise<void>;
  /** Null when the key does not exist. */
  get(key: string): Promise<Buffer | null>;
  exists(key: string): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

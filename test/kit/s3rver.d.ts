// The subset of s3rver 3.7 (no bundled types) that test/kit/s3-server.ts uses.
declare module 's3rver' {
  import type { Server } from 'node:http';
  import type { AddressInfo } from 'node:net';

  interface S3rverOptions {
    /** Host or IP to bind; default `localhost`. */
    address?: string;
    /** Default 4568; 0 picks a free port. */
    port?: number;
    /** No request log on stdout. */
    silent?: boolean;
    /** Where buckets and objects are kept, as plain files. */
    directory: string;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    configureBuckets?: { name: string }[];
  }

  /** An object on its way in: `content` is the request stream (or a buffer for a POST form upload). */
  interface S3rverObject {
    bucket: string;
    key: string;
    content: AsyncIterable<Buffer> | Buffer;
    metadata: Record<string, string>;
  }

  /** s3rver's on-disk store: one file per object, `<dir>/<bucket>/<key>._S3rver_object`, beside its metadata. */
  interface FilesystemStore {
    getResourcePath(bucket: string, key: string | undefined, resource: string): string;
    putMetadata(bucket: string, key: string, metadata: Record<string, string>, md5?: string): Promise<void>;
    putObject(object: S3rverObject): Promise<{ size: number; md5: string }>;
  }

  class S3rver {
    constructor(options: S3rverOptions);
    /** Listens; resolves with the bound address. */
    run(): Promise<AddressInfo>;
    /** `httpServer.close()`: stops listening and waits for open connections to end. */
    close(): Promise<void>;
    readonly store: FilesystemStore;
    /** Set by `run()`. */
    httpServer?: Server;
  }

  export = S3rver;
}

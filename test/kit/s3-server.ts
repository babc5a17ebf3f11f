import { createHash, randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import S3rver from 's3rver';

/** s3rver's one built-in account. */
export const s3rverAccessKeyId = 'S3RVER';
export const s3rverSecretAccessKey = 'S3RVER';

/** An in-process s3rver on a loopback port, its data in a temporary directory. */
export interface S3Server {
  /** `http://S3RVER:S3RVER@127.0.0.1:<port>`: append `/<bucket>` for `openS3BlobStore`. */
  url: string;
  /** `http://127.0.0.1:<port>`, no credentials. */
  endpoint: string;
  port: number;
  /** Where s3rver keeps buckets (one folder each) and objects. */
  directory: string;
  /** Client connections the server holds open now (0 when halted): for checking that clients closed theirs. */
  openConnections(): Promise<number>;
  /** Stop listening and drop open connections, keeping the data, so `restart()` can bring it back. */
  halt(): Promise<void>;
  /** Listen again on the same port over the same data (halting first if running). */
  restart(): Promise<void>;
  /** Halt and remove the data directory. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Start s3rver 3.7 in-process on `127.0.0.1`, port 0, over a fresh temporary directory. Its PUTs are made atomic,
 * as S3's are (see `makePutsAtomic`); everything else is s3rver as published.
 *
 * @example
 * const s3 = await startS3Server();
 * const store = await openS3BlobStore(`${s3.url}/my-bucket`, { createBucket: true });
 * // …
 * await store.close();
 * await s3.stop();
 */
export async function startS3Server(options: { host?: string } = {}): Promise<S3Server> {
  const host = options.host ?? '127.0.0.1';
  const directory = await mkdtemp(join(tmpdir(), 'sv-kit-s3rver-'));
  let running: S3rver | undefined;
  let port = 0;
  try {
    [running, port] = await listen(directory, 0, host);
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const halt = async (): Promise<void> => {
    const server = running;
    running = undefined;
    if (server !== undefined) await close(server);
  };
  const endpoint = `http://${host}:${port}`;
  return {
    url: `http://${s3rverAccessKeyId}:${s3rverSecretAccessKey}@${host}:${port}`,
    endpoint,
    port,
    directory,
    openConnections: () => countConnections(running),
    halt,
    restart: async () => {
      await halt();
      [running] = await listen(directory, port, host);
    },
    stop: async () => {
      await halt();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

async function listen(directory: string, port: number, host: string): Promise<[S3rver, number]> {
  // A fresh instance each time: close() shuts the instance's logger for good.
  const server = new S3rver({ address: host, port, directory, silent: true, vhostBuckets: false });
  makePutsAtomic(server);
  const address = await server.run();
  return [server, address.port];
}

function countConnections(server: S3rver | undefined): Promise<number> {
  const http = server?.httpServer;
  if (http === undefined) return Promise.resolve(0);
  return new Promise((resolve, reject) => http.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}

/** Close the listener and every connection, idle or not, so clients see the server gone at once. */
async function close(server: S3rver): Promise<void> {
  const closed = server.close();
  server.httpServer?.closeAllConnections();
  await closed;
}

/**
 * s3rver streams a PUT's body straight into the object's file, so concurrent PUTs of one key interleave their
 * chunks (the blob-store contract saw a torn value in about one round in ten) and a reader can see half an object.
 * S3 replaces an object whole: write the body to a temporary file beside it, then rename it over the object.
 * The temporary name does not end in `._S3rver_object`, so listings never show it.
 */
function makePutsAtomic(server: S3rver): void {
  const store = server.store;
  store.putObject = async (object) => {
    const body = await readAll(object.content);
    const path = store.getResourcePath(object.bucket, object.key, 'object');
    // Short, whatever the key: a 204-character key segment plus s3rver's suffix is near the 255-byte name limit.
    const temp = join(dirname(path), `.~${randomUUID()}`);
    await mkdir(dirname(path), { recursive: true });
    try {
      await writeFile(temp, body);
      await rename(temp, path);
    } finally {
      await rm(temp, { force: true });
    }
    const md5 = createHash('md5').update(body).digest('hex');
    await store.putMetadata(object.bucket, object.key, object.metadata, md5);
    return { size: body.length, md5 };
  };
}

async function readAll(content: AsyncIterable<Buffer> | Buffer): Promise<Buffer> {
  if (Buffer.isBuffer(content)) return content;
  const chunks: Buffer[] = [];
  for await (const chunk of content) chunks.push(chunk);
  return Buffer.concat(chunks);
}

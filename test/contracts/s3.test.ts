import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore, openS3BlobStore, s3BlobStoreConfigFromUrl } from '../../src/adapters/s3/s3-blob-store.js';
import type { S3BlobStoreOptions } from '../../src/adapters/s3/s3-blob-store.js';
import { isPlatformError } from '../../src/core/errors.js';
import type { ErrorCode, PlatformError } from '../../src/core/errors.js';
import { s3rverAccessKeyId, s3rverSecretAccessKey, startS3Server } from '../kit/s3-server.js';
import type { S3Server } from '../kit/s3-server.js';
import { blobStoreContract } from './blob-store.contract.js';

let s3: S3Server;

before(async () => {
  s3 = await startS3Server();
});

after(async () => {
  await s3.stop();
});

/** A fresh bucket name: each test gets its own. */
function newBucket(): string {
  return `t-${randomUUID()}`;
}

/** Open a store on a new bucket (or under `path` in the shared one), with the bucket created. */
async function openStore(path = newBucket(), options: S3BlobStoreOptions = {}): Promise<S3BlobStore> {
  return openS3BlobStore(`${s3.url}/${path}`, { createBucket: true, ...options });
}

/** Remove a bucket (or a key prefix in one) behind s3rver's back: faster than deleting object by object. */
async function removeBucket(path: string): Promise<void> {
  await rm(join(s3.directory, path), { recursive: true, force: true });
}

/** Where s3rver keeps an object's bytes. */
function objectFile(bucket: string, key: string): string {
  return join(s3.directory, bucket, `${key}._S3rver_object`);
}

async function withStore(
  body: (store: S3BlobStore, bucket: string) => Promise<void>,
  options?: S3BlobStoreOptions,
): Promise<void> {
  const bucket = newBucket();
  const store = await openStore(bucket, options);
  try {
    await body(store, bucket);
  } finally {
    await store.close();
    await removeBucket(bucket);
  }
}

/** Assert a PlatformError with this code and a matching message; returns it. */
async function rejectsWith(promise: Promise<unknown>, code: ErrorCode, pattern: RegExp): Promise<PlatformError> {
  let caught: PlatformError | undefined;
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isPlatformError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match(err.message, pattern);
    caught = err;
    return true;
  });
  assert.ok(caught !== undefined);
  return caught;
}

blobStoreContract('S3BlobStore on s3rver, a bucket per test', async () => {
  const bucket = newBucket();
  return { store: await openStore(bucket), cleanup: () => removeBucket(bucket) };
});

// One shared bucket, each test under its own key prefix.
blobStoreContract('S3BlobStore on s3rver, a key prefix per test', async () => {
  const prefix = randomUUID();
  return { store: await openStore(`shared/${prefix}`), cleanup: () => removeBucket(`shared/${prefix}`) };
});

describe('S3BlobStore specifics', () => {
  it('stores objects byte-exact: no checksum chunk framing, binary and multi-MiB data intact', async () => {
    await withStore(async (store, bucket) => {
      const allBytes = Buffer.from(Array.from({ length: 4096 }, (_, i) => i % 256));
      const big = randomBytes(5 * 1024 * 1024 + 3);
      await store.put('code/all-bytes.zip', allBytes);
      await store.put('code/big.zip', big);
      await store.put('logs/text.log', 'line 1\r\n0\r\n\r\nx-amz-checksum-crc32:AAAAAA==\r\n');
      for (const [key, data] of [
        ['code/all-bytes.zip', allBytes],
        ['code/big.zip', big],
      ] as const) {
        assert.ok((await store.get(key))?.equals(data), `${key} reads back identical`);
        // What s3rver wrote to disk is the object itself, not aws-chunked framing around it.
        assert.ok((await readFile(objectFile(bucket, key))).equals(data), `${key} is stored identical`);
      }
      assert.equal(
        (await store.get('logs/text.log'))?.toString('utf8'),
        'line 1\r\n0\r\n\r\nx-amz-checksum-crc32:AAAAAA==\r\n',
      );
    });
  });

  it('lists through many pages, skipping objects whose names are not valid keys', async () => {
    await withStore(
      async (store, bucket) => {
        // s3rver lists in directory-walk order, which is key order only for names like these (fn-a/ vs fn-a-2/ is
        // not): so paging is shown here, and the contract's mixed names run in single pages.
        const keys = Array.from({ length: 23 }, (_, i) => `pages/d${i % 3}/k-${String(i).padStart(2, '0')}`);
        await Promise.all(keys.map((key) => store.put(key, key)));
        const raw = rawClient();
        try {
          for (const foreign of ['pages/has space', 'pages/d1/k-05~tmp', 'pages/ü']) {
            await raw.send(new PutObjectCommand({ Bucket: bucket, Key: foreign, Body: 'not ours' }));
          }
        } finally {
          raw.destroy();
        }
        assert.deepEqual(await store.list('pages/'), [...keys].sort());
        assert.deepEqual(await store.list('pages/d1/'), keys.filter((key) => key.startsWith('pages/d1/')).sort());
        assert.deepEqual(await store.list('pages/d2/k-1'), ['pages/d2/k-11', 'pages/d2/k-14', 'pages/d2/k-17']);
      },
      { listPageSize: 4 },
    );
  });

  it('keeps stores with different key prefixes in one bucket apart', async () => {
    const bucket = newBucket();
    const a = await openStore(`${bucket}/tenant-a`);
    const b = await openStore(`${bucket}/tenant-b/nested/`);
    try {
      await a.put('code/x.zip', 'from a');
      await b.put('code/x.zip', 'from b');
      assert.equal((await a.get('code/x.zip'))?.toString(), 'from a');
      assert.equal((await b.get('code/x.zip'))?.toString(), 'from b');
      assert.deepEqual(await a.list(''), ['code/x.zip']);
      assert.deepEqual(await b.list('code/'), ['code/x.zip']);
      await a.delete('code/x.zip');
      assert.equal(await b.exists('code/x.zip'), true);
      assert.equal(await readFile(objectFile(bucket, 'tenant-b/nested/code/x.zip'), 'utf8'), 'from b');
    } finally {
      await a.close();
      await b.close();
      await removeBucket(bucket);
    }
  });

  it('fails the open on a missing bucket unless asked to create it, then finds it', async () => {
    const bucket = newBucket();
    try {
      const err = await rejectsWith(openS3BlobStore(`${s3.url}/${bucket}`), 'UNAVAILABLE', /does not exist/);
      assert.ok(err.message.includes(`S3 at ${s3.endpoint}`), err.message);
      const created = await openS3BlobStore(`${s3.url}/${bucket}?createBucket=true`);
      await created.put('k', 'v');
      await created.close();
      const reopened = await openS3BlobStore(`${s3.url}/${bucket}`);
      assert.equal((await reopened.get('k'))?.toString(), 'v');
      await reopened.close();
      const again = await openStore(bucket); // createBucket on an existing bucket is fine
      await again.close();
    } finally {
      await removeBucket(bucket);
    }
  });

  it('rejects unknown credentials with UNAVAILABLE, naming the endpoint and not the secret', async () => {
    // s3rver checks the access key but not V4 signatures, so only an unknown key is refused here.
    const secret = 'not-the-secret-1234';
    const url = `http://NOBODY:${secret}@127.0.0.1:${s3.port}/${newBucket()}`;
    const err = await rejectsWith(openS3BlobStore(url, { createBucket: true }), 'UNAVAILABLE', /answered 403/);
    assert.ok(err.message.includes(`S3 at ${s3.endpoint}`), err.message);
    assert.ok(!err.message.includes(secret), err.message);
  });

  it('is UNAVAILABLE while S3 is down, fast, and works again with the data intact after a restart', async () => {
    await withStore(async (store) => {
      const zip = randomBytes(64 * 1024);
      await store.put('code/abc.zip', zip);
      await s3.halt();
      try {
        const started = Date.now();
        const down = /S3 at http:\/\/127\.0\.0\.1:\d+ \(bucket t-[0-9a-f-]+\) is unreachable \(ECONNREFUSED/;
        await rejectsWith(store.put('code/new.zip', 'x'), 'UNAVAILABLE', down);
        await rejectsWith(store.get('code/abc.zip'), 'UNAVAILABLE', down);
        await rejectsWith(store.exists('code/abc.zip'), 'UNAVAILABLE', down);
        await rejectsWith(store.list('code/'), 'UNAVAILABLE', down);
        const err = await rejectsWith(store.delete('code/abc.zip'), 'UNAVAILABLE', down);
        assert.ok(!err.message.includes(s3rverSecretAccessKey), err.message);
        assert.ok(Date.now() - started < 5000, `five failed calls took ${Date.now() - started} ms`);
      } finally {
        await s3.restart();
      }
      assert.ok((await store.get('code/abc.zip'))?.equals(zip));
      assert.deepEqual(await store.list('code/'), ['code/abc.zip']);
      await store.put('code/new.zip', 'x');
      assert.equal(await store.exists('code/new.zip'), true);
    });
  });

  it('fails fast when nothing listens, or the server accepts and never answers', async () => {
    const silent = await startSilentServer();
    try {
      const options = { timeoutMs: 400, maxAttempts: 2 };
      const started = Date.now();
      await rejectsWith(
        openS3BlobStore(`http://k:s@127.0.0.1:${silent.port}/bucket`, options),
        'UNAVAILABLE',
        new RegExp(`S3 at http://127\\.0\\.0\\.1:${silent.port} \\(bucket bucket\\) is unreachable`),
      );
      assert.ok(Date.now() - started < 4000, `a hung server took ${Date.now() - started} ms to give up on`);
      const port = silent.port;
      await silent.close();
      await rejectsWith(
        openS3BlobStore(`http://k:s@127.0.0.1:${port}/bucket`, options),
        'UNAVAILABLE',
        /is unreachable \(ECONNREFUSED/,
      );
    } finally {
      await silent.close();
    }
  });

  it('close destroys the client: its connections end, and later calls are UNAVAILABLE', async () => {
    const bucket = newBucket();
    const store = await openStore(bucket);
    try {
      await Promise.all(Array.from({ length: 4 }, (_, i) => store.put(`k/${i}`, 'v')));
      assert.ok((await s3.openConnections()) > 0, 'the client keeps connections alive');
    } finally {
      await store.close();
    }
    await store.close();
    await waitFor(async () => (await s3.openConnections()) === 0, 'connections closed after close()');
    await rejectsWith(store.get('k/0'), 'UNAVAILABLE', /closed/);
    await rejectsWith(store.list(''), 'UNAVAILABLE', /closed/);
    await removeBucket(bucket);
  });

  it('constructs without I/O and reports where it points', () => {
    const store = new S3BlobStore(s3BlobStoreConfigFromUrl(`${s3.url}/some-bucket/pre`));
    assert.deepEqual([store.endpoint, store.bucket, store.keyPrefix], [s3.endpoint, 'some-bucket', 'pre/']);
    return store.close();
  });
});

function rawClient(): S3Client {
  return new S3Client({
    endpoint: s3.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: s3rverAccessKeyId, secretAccessKey: s3rverSecretAccessKey },
    forcePathStyle: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** A TCP server that accepts connections and never answers: a hung S3. */
async function startSilentServer(): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  let closed: Promise<void> | undefined;
  return {
    port: address.port,
    close: () => {
      closed ??= new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}

async function waitFor(condition: () => Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

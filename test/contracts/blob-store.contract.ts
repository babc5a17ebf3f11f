import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../src/core/errors.js';
import type { ErrorCode } from '../../src/core/errors.js';
import type { BlobStore } from '../../src/core/ports/blob-store.js';

/** What an adapter's test gives the contract: a fresh, empty store. */
export interface BlobStoreFixture {
  store: BlobStore;
  /** Remove the data. Called after the contract has closed the store. */
  cleanup: () => Promise<void>;
}

/**
 * The behaviour every `BlobStore` adapter must have. Each test opens its own fixture.
 *
 * @example
 * blobStoreContract('fs', async () => ({ store: new FsBlobStore(dir), cleanup: () => rm(dir, { recursive: true }) }));
 */
export function blobStoreContract(name: string, open: () => Promise<BlobStoreFixture>): void {
  async function withStore(body: (store: BlobStore) => Promise<void>): Promise<void> {
    const fixture = await open();
    try {
      await body(fixture.store);
    } finally {
      await fixture.store.close();
      await fixture.cleanup();
    }
  }

  describe(`BlobStore contract: ${name}`, () => {
    it('puts and gets binary and string data', async () => {
      await withStore(async (store) => {
        const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        await store.put('code/all-bytes.zip', bytes);
        await store.put('logs/alpha/2024-01-01/inv-1.log', 'héllo 世界 🎉\nline 2\n');
        const got = await store.get('code/all-bytes.zip');
        assert.ok(Buffer.isBuffer(got), 'get returns a Buffer');
        assert.deepEqual(got, Buffer.from(bytes));
        assert.equal((await store.get('logs/alpha/2024-01-01/inv-1.log'))?.toString('utf8'), 'héllo 世界 🎉\nline 2\n');
        await store.put('empty', '');
        assert.deepEqual(await store.get('empty'), Buffer.alloc(0));
      });
    });

    it('overwrites a key', async () => {
      await withStore(async (store) => {
        await store.put('a/key', 'first, and longer than the second');
        await store.put('a/key', 'second');
        assert.equal((await store.get('a/key'))?.toString(), 'second');
        assert.deepEqual(await store.list(''), ['a/key']);
      });
    });

    it('get of a missing key is null; exists says whether a key is there', async () => {
      await withStore(async (store) => {
        assert.equal(await store.get('missing'), null);
        assert.equal(await store.get('missing/deeper/key'), null);
        assert.equal(await store.exists('x/y'), false);
        await store.put('x/y', 'data');
        assert.equal(await store.exists('x/y'), true);
        assert.equal(await store.exists('x'), false, 'a prefix is not a key');
        assert.equal(await store.get('x'), null, 'a prefix is not a key');
        assert.equal(await store.exists('x/y/z'), false);
      });
    });

    it('streams a blob as it is read, and answers null for a missing key or a prefix', async () => {
      await withStore(async (store) => {
        const data = randomBytes(3 * 1024 * 1024 + 17);
        await store.put('s/big', data);
        const stream = await store.getStream('s/big');
        assert.ok(stream !== null);
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        assert.ok(chunks.length > 1, 'read in chunks, not as one buffer');
        assert.ok(Buffer.concat(chunks).equals(data));
        assert.equal(await store.getStream('s/missing'), null);
        assert.equal(await store.getStream('s'), null, 'a prefix is not a key');
        await store.put('s/empty', '');
        const empty = await store.getStream('s/empty');
        assert.ok(empty !== null);
        assert.equal((await empty.toArray()).length, 0);
      });
    });

    it('delete removes a key and is idempotent', async () => {
      await withStore(async (store) => {
        await store.put('d/one', '1');
        await store.put('d/two', '2');
        await store.delete('d/one');
        assert.equal(await store.get('d/one'), null);
        assert.equal(await store.exists('d/one'), false);
        await store.delete('d/one');
        await store.delete('never/there');
        await store.delete('d');
        assert.deepEqual(await store.list(''), ['d/two']);
      });
    });

    it('lists keys under a prefix, recursively and sorted', async () => {
      await withStore(async (store) => {
        const keys = [
          'logs/fn-b/2024-01-01/c.log',
          'logs/fn-a/2024-01-02/b.log',
          'code/abc.zip',
          'logs/fn-a/2024-01-01/a.log',
          'logs/fn-a/2024-01-01/Z.log',
          'logs/fn-a-2/x.log',
          'top',
        ];
        for (const key of keys) await store.put(key, key);
        assert.deepEqual(await store.list(''), [...keys].sort());
        assert.deepEqual(await store.list('logs/fn-a/'), [
          'logs/fn-a/2024-01-01/Z.log',
          'logs/fn-a/2024-01-01/a.log',
          'logs/fn-a/2024-01-02/b.log',
        ]);
        assert.deepEqual(await store.list('logs/fn-a'), [
          'logs/fn-a-2/x.log',
          'logs/fn-a/2024-01-01/Z.log',
          'logs/fn-a/2024-01-01/a.log',
          'logs/fn-a/2024-01-02/b.log',
        ]);
        assert.deepEqual(await store.list('logs/fn-a/2024-01-01/a'), ['logs/fn-a/2024-01-01/a.log']);
        assert.deepEqual(await store.list('code/'), ['code/abc.zip']);
        assert.deepEqual(await store.list('t'), ['top']);
        assert.deepEqual(await store.list('nothing/'), []);
        assert.deepEqual(await store.list('code/abc.zip/'), []);
      });
    });

    it('rejects bad keys with BAD_REQUEST and writes nothing', async () => {
      await withStore(async (store) => {
        await store.put('ok/key', 'ok');
        const badKeys = [
          '../x',
          'a/../../x',
          '..',
          '.',
          './a',
          '/abs',
          'a//b',
          'a/',
          '',
          'a b',
          'a\\b',
          'a?b',
          'ü',
          'x'.repeat(1025),
        ];
        for (const key of badKeys) {
          const shown = JSON.stringify(key.slice(0, 20));
          await assertRejectsWith(store.put(key, 'data'), 'BAD_REQUEST', `put ${shown}`);
          await assertRejectsWith(store.get(key), 'BAD_REQUEST', `get ${shown}`);
          await assertRejectsWith(store.exists(key), 'BAD_REQUEST', `exists ${shown}`);
          await assertRejectsWith(store.delete(key), 'BAD_REQUEST', `delete ${shown}`);
        }
        await assertRejectsWith(store.list('../'), 'BAD_REQUEST', 'list "../"');
        await assertRejectsWith(store.list('/abs'), 'BAD_REQUEST', 'list "/abs"');
        assert.deepEqual(await store.list(''), ['ok/key']);
      });
    });

    it('accepts a key of exactly 1024 characters', async () => {
      await withStore(async (store) => {
        // Segments stay under common file-name limits (255 bytes).
        const key = Array.from({ length: 5 }, (_, i) => String(i).repeat(204)).join('/');
        assert.equal(key.length, 1024);
        await store.put(key, 'long');
        assert.equal((await store.get(key))?.toString(), 'long');
        assert.deepEqual(await store.list(''), [key]);
      });
    });

    it('stores a stream of the declared length without buffering it, byte-exact', async () => {
      await withStore(async (store) => {
        const chunks = Array.from({ length: 48 }, () => randomBytes(64 * 1024));
        const whole = Buffer.concat(chunks);
        await store.putStream('code/streamed.zip', Readable.from(chunks), whole.length);
        assert.deepEqual(await store.get('code/streamed.zip'), whole);
        await store.putStream('code/empty.zip', Readable.from([]), 0);
        assert.deepEqual(await store.get('code/empty.zip'), Buffer.alloc(0));
      });
    });

    it('refuses a stream longer or shorter than declared with BAD_REQUEST and keeps the previous blob', async () => {
      await withStore(async (store) => {
        await store.put('code/kept.zip', 'previous');
        const data = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2)];
        for (const declared of [1500, 2500, -1]) {
          await assert.rejects(store.putStream('code/kept.zip', Readable.from(data), declared), (err: unknown) =>
            isPlatformError(err, 'BAD_REQUEST'),
          );
          assert.equal((await store.get('code/kept.zip'))?.toString(), 'previous', `declared ${declared}`);
        }
        await assert.rejects(store.putStream('code/new.zip', Readable.from(data), 1500), (err: unknown) =>
          isPlatformError(err, 'BAD_REQUEST'),
        );
        assert.equal(await store.exists('code/new.zip'), false);
      });
    });

    it('round-trips 1 MiB and more of random binary data', async () => {
      await withStore(async (store) => {
        const data = randomBytes(1024 * 1024 + 17);
        await store.put('big/blob.bin', data);
        const got = await store.get('big/blob.bin');
        assert.ok(got !== null);
        assert.equal(got.length, data.length);
        assert.ok(got.equals(data), 'bytes are identical');
      });
    });

    it('handles concurrent puts of different keys, and of one key without tearing it', async () => {
      await withStore(async (store) => {
        const keys = Array.from({ length: 50 }, (_, i) => `many/${i % 5}/key-${i}`);
        await Promise.all(keys.map((key) => store.put(key, `value of ${key}`)));
        assert.deepEqual(await store.list('many/'), [...keys].sort());
        for (const key of keys) assert.equal((await store.get(key))?.toString(), `value of ${key}`);

        const values = Array.from({ length: 10 }, (_, i) => Buffer.alloc(64 * 1024, i + 1));
        await Promise.all(values.map((value) => store.put('same/key', value)));
        const final = await store.get('same/key');
        assert.ok(final !== null);
        assert.ok(
          values.some((value) => value.equals(final)),
          'the key holds one whole value',
        );
        assert.deepEqual(await store.list('same/'), ['same/key']);
      });
    });

    it('close is idempotent', async () => {
      await withStore(async (store) => {
        await store.put('k', 'v');
        await store.close();
        await store.close();
      });
    });
  });
}

async function assertRejectsWith(promise: Promise<unknown>, code: ErrorCode, what: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isPlatformError(err), `${what}: expected a PlatformError, got ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return true;
  });
}

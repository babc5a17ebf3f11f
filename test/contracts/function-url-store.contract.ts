import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FunctionUrlStore } from '../../src/core/ports/function-url-store.js';
import type { MetadataStore } from '../../src/core/ports/metadata-store.js';
import { assertRejectsWith } from '../helpers/assertions.js';
import { newVersion } from '../helpers/versions.js';

/** The stores over one fresh, migrated, empty database. */
export interface FunctionUrlStores {
  metadata: MetadataStore;
  urls: FunctionUrlStore;
  /** Remove the data, once `metadata` is closed. */
  cleanup: () => Promise<void>;
}

/**
 * The behaviour every `FunctionUrlStore` adapter must have, with the `MetadataStore` on the same database: a config
 * per existing function, replaced in place, gone with its function.
 *
 * @example
 * functionUrlStoreContract('SQLite', async () => {
 *   const metadata = await openSqliteMetadataStore(':memory:');
 *   return { metadata, urls: new SqlFunctionUrlStore(metadata.shared()), cleanup: async () => {} };
 * });
 */
export function functionUrlStoreContract(name: string, open: () => Promise<FunctionUrlStores>): void {
  async function withStores(body: (stores: FunctionUrlStores) => Promise<void>): Promise<void> {
    const stores = await open();
    try {
      await body(stores);
    } finally {
      await stores.metadata.close();
      await stores.cleanup();
    }
  }

  describe(`FunctionUrlStore contract: ${name}`, () => {
    it('creates a config with its defaults, gets, lists and deletes it', async () => {
      await withStores(async ({ metadata, urls }) => {
        await metadata.deployVersion(newVersion('web', 'h1'));
        await metadata.deployVersion(newVersion('api', 'h1'));
        const before = Date.now();
        const { config, created } = await urls.put({ functionName: 'web' });
        assert.equal(created, true);
        assert.deepEqual(
          { ...config, createdAt: null },
          { functionName: 'web', auth: 'key', cors: null, createdAt: null },
        );
        assert.ok(config.createdAt.getTime() >= before - 1000);
        assert.deepEqual(await urls.get('web'), config);
        assert.equal(await urls.get('api'), null);
        await urls.put({
          functionName: 'api',
          auth: 'none',
          cors: {
            allowOrigins: ['https://a.example', 'https://a.example'],
            allowMethods: ['get', 'POST'],
            allowHeaders: ['X-Token'],
          },
        });
        assert.deepEqual(
          (await urls.list()).map((url) => [url.functionName, url.auth, url.cors]),
          [
            [
              'api',
              'none',
              { allowOrigins: ['https://a.example'], allowMethods: ['GET', 'POST'], allowHeaders: ['x-token'] },
            ],
            ['web', 'key', null],
          ],
        );
        assert.equal(await urls.delete('web'), true);
        assert.equal(await urls.delete('web'), false);
        assert.equal(await urls.get('web'), null);
        assert.deepEqual(
          (await urls.list()).map((url) => url.functionName),
          ['api'],
        );
      });
    });

    it('replaces a config in place, keeping when it was created', async () => {
      await withStores(async ({ metadata, urls }) => {
        await metadata.deployVersion(newVersion('web', 'h1'));
        const first = await urls.put({ functionName: 'web', auth: 'key' });
        const second = await urls.put({
          functionName: 'web',
          auth: 'none',
          cors: { allowOrigins: ['*'], allowMethods: [], allowHeaders: [] },
        });
        assert.equal(second.created, false);
        assert.deepEqual(second.config, {
          functionName: 'web',
          auth: 'none',
          cors: { allowOrigins: ['*'], allowMethods: [], allowHeaders: [] },
          createdAt: first.config.createdAt,
        });
        assert.deepEqual(await urls.get('web'), second.config);
      });
    });

    it('refuses a function that does not exist and invalid settings', async () => {
      await withStores(async ({ metadata, urls }) => {
        await assertRejectsWith(urls.put({ functionName: 'ghost' }), 'NOT_FOUND', /ghost/);
        await metadata.deployVersion(newVersion('web', 'h1'));
        await assertRejectsWith(
          urls.put({ functionName: 'web', auth: 'open' as 'none' }),
          'BAD_REQUEST',
          /auth must be none or key/,
        );
        await assertRejectsWith(
          urls.put({ functionName: 'web', cors: { allowOrigins: ['a b'], allowMethods: [], allowHeaders: [] } }),
          'BAD_REQUEST',
          /cors.allowOrigins/,
        );
        assert.deepEqual(await urls.list(), []);
      });
    });

    it('goes with its function', async () => {
      await withStores(async ({ metadata, urls }) => {
        await metadata.deployVersion(newVersion('web', 'h1'));
        await urls.put({ functionName: 'web', auth: 'none' });
        assert.equal(await metadata.deleteFunction('web'), true);
        assert.equal(await urls.get('web'), null);
        assert.deepEqual(await urls.list(), []);
        await metadata.deployVersion(newVersion('web', 'h2'));
        assert.equal(await urls.get('web'), null);
      });
    });
  });
}

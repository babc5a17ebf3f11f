import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../src/core/errors.js';
import type { FunctionConfig } from '../../src/core/function-config.js';
import type { MetadataStore, NewVersion } from '../../src/core/ports/metadata-store.js';
import type { InvocationRecord } from '../../src/core/types.js';
import { statsDurationBoundsMs } from '../../src/core/invocation-stats.js';
import type { InvocationStatsBucket } from '../../src/core/invocation-stats.js';
import { assertRejectsWith } from '../helpers/assertions.js';
import { invocationRecord } from '../helpers/records.js';
import { functionConfig, newVersion } from '../helpers/versions.js';
import { withReopenable } from './reopenable.js';

/** What an adapter's test gives the contract: a fresh, migrated, empty store. */
export interface MetadataStoreFixture {
  store: MetadataStore;
  /**
   * Open another store over the same data once `store` is closed, to prove writes are durable. Leave it out
   * where the data dies with the store (SQLite `:memory:`); the contract then reads back before closing.
   */
  reopen?: () => Promise<MetadataStore>;
  /** Remove the data. Called after the contract has closed every store it opened. */
  cleanup: () => Promise<void>;
  /**
   * The store acknowledges an invocation record once it is journalled, before the database has seen its id (the
   * SQLite file store): a duplicate id is then dropped rather than rejected. Either way the first record stays.
   */
  acknowledgesFromJournal?: boolean;
}

/**
 * The behaviour every `MetadataStore` adapter must have. Each test opens its own fixture.
 *
 * @example
 * metadataStoreContract('SQLite', async () => ({ store: await openSqliteMetadataStore(':memory:'), cleanup: async () => {} }));
 */
export function metadataStoreContract(name: string, open: () => Promise<MetadataStoreFixture>): void {
  /** Run a test against a fresh fixture; every store it opens, reopened ones included, is closed afterwards. */
  async function withStore(
    body: (
      store: MetadataStore,
      reopen: (() => Promise<MetadataStore>) | undefined,
      fixture: MetadataStoreFixture,
    ) => Promise<void>,
  ): Promise<void> {
    const fixture = await open();
    await withReopenable(
      fixture,
      fixture.store,
      (store) => store.close(),
      (reopen) => body(fixture.store, reopen, fixture),
    );
  }

  describe(`MetadataStore contract: ${name}`, () => {
    it('migrate is safe to run again', async () => {
      await withStore(async (store) => {
        await store.migrate();
        await store.deployVersion(newVersion('alpha', 'h1'));
        await store.migrate();
        await store.migrate();
        assert.equal((await store.getFunction('alpha'))?.currentVersion, 1);
        assert.equal((await store.listVersions('alpha')).length, 1);
      });
    });

    it('deploy creates version 1, then version 2, and makes each current', async () => {
      await withStore(async (store) => {
        const before = Date.now();
        const first = await store.deployVersion(newVersion('alpha', 'h1'));
        assert.equal(first.created, true);
        assert.equal(first.version.version, 1);
        assert.equal(first.function.name, 'alpha');
        assert.equal(first.function.currentVersion, 1);
        assertRecent(first.function.createdAt, before);
        assertRecent(first.version.createdAt, before);

        const input = newVersion('alpha', 'h2', { codeSizeBytes: 5_000_000_123 });
        const second = await store.deployVersion(input);
        assert.equal(second.created, true);
        assert.equal(second.version.version, 2);
        assert.equal(second.function.currentVersion, 2);
        assert.equal(second.function.createdAt.getTime(), first.function.createdAt.getTime());
        assert.ok(second.function.updatedAt.getTime() >= first.function.updatedAt.getTime());
        assert.deepEqual(
          { ...second.version, createdAt: undefined },
          { ...input, incarnation: first.function.incarnation, version: 2, createdAt: undefined },
          'the version holds exactly what was deployed',
        );

        const stored = await store.getFunction('alpha');
        assert.deepEqual(stored, second.function);
        assert.deepEqual(await store.getVersion('alpha', 2), second.version);
      });
    });

    it('tells whether any version uses a code bundle, until its function is deleted', async () => {
      await withStore(async (store) => {
        const shared = newVersion('alpha', 'h1').codeSha256;
        assert.equal(await store.isCodeInUse(shared), false);
        await store.deployVersion(newVersion('alpha', 'h1'));
        await store.deployVersion(newVersion('beta', 'b1', { codeSha256: shared }));
        await store.deployVersion(newVersion('alpha', 'h2'));
        assert.equal(await store.isCodeInUse(shared), true, 'an old version still uses it');
        assert.equal(await store.isCodeInUse(newVersion('gamma', 'g1').codeSha256), false);
        await store.deleteFunction('alpha');
        assert.equal(await store.isCodeInUse(shared), true, 'beta uses it');
        await store.deleteFunction('beta');
        assert.equal(await store.isCodeInUse(shared), false);
      });
    });

    it('deploying the current content hash again returns the current version and writes nothing', async () => {
      await withStore(async (store) => {
        await store.deployVersion(newVersion('alpha', 'h1'));
        const second = await store.deployVersion(newVersion('alpha', 'h2'));
        const again = await store.deployVersion(newVersion('alpha', 'h2'));
        assert.equal(again.created, false);
        assert.deepEqual(again.version, second.version);
        assert.deepEqual(again.function, second.function);
        assert.deepEqual(await store.getFunction('alpha'), second.function, 'updatedAt unchanged');
        assert.equal((await store.listVersions('alpha')).length, 2);
      });
    });

    it('compares with the current version only, not with older ones', async () => {
      await withStore(async (store) => {
        await store.deployVersion(newVersion('alpha', 'h1'));
        await store.deployVersion(newVersion('alpha', 'h2'));
        await store.setCurrentVersion('alpha', 1);
        const third = await store.deployVersion(newVersion('alpha', 'h2'));
        assert.equal(third.created, true);
        assert.equal(third.version.version, 3);
        assert.equal((await store.getFunction('alpha'))?.currentVersion, 3);
        await store.setCurrentVersion('alpha', 1);
        const same = await store.deployVersion(newVersion('alpha', 'h1'));
        assert.equal(same.created, false);
        assert.equal(same.version.version, 1);
      });
    });

    it('lists versions in ascending order with their config exactly as deployed', async () => {
      await withStore(async (store) => {
        const configs: FunctionConfig[] = [
          functionConfig(),
          functionConfig({
            handler: 'src/app.main',
            env: {
              GREETING: 'héllo wörld 世界 🎉',
              EMPTY: '',
              QUOTED: 'say "hi"\\n\n\ttab',
              JSON_LIKE: '{"a":[1,2,{"b":null}]}',
              NUL_AND_SEP: 'a\u0000b\u2028c',
            },
            timeoutSeconds: 900,
            memoryMB: 10240,
            maxInstances: 1000,
            minInstances: 3,
            idleSeconds: 86400,
          }),
          functionConfig({ env: {} }),
        ];
        const deployed: NewVersion[] = [];
        for (const [i, cfg] of configs.entries()) {
          const input = newVersion('alpha', `h${i}`, { config: cfg });
          deployed.push(input);
          await store.deployVersion(input);
        }
        const versions = await store.listVersions('alpha');
        assert.deepEqual(
          versions.map((v) => v.version),
          [1, 2, 3],
        );
        for (const [i, version] of versions.entries()) {
          assert.deepEqual(version.config, configs[i]);
          assert.equal(version.codeSha256, deployed[i]?.codeSha256);
          assert.equal(version.contentHash, deployed[i]?.contentHash);
          assert.deepEqual(await store.getVersion('alpha', version.version), version);
        }
        assert.deepEqual(await store.listVersions('nope'), []);
        assert.equal(await store.getVersion('alpha', 4), null);
        assert.equal(await store.getVersion('nope', 1), null);
      });
    });

    it('setCurrentVersion points the function at an existing version, NOT_FOUND otherwise', async () => {
      await withStore(async (store) => {
        const first = await store.deployVersion(newVersion('alpha', 'h1'));
        await store.deployVersion(newVersion('alpha', 'h2'));
        const rolledBack = await store.setCurrentVersion('alpha', 1);
        assert.equal(rolledBack.currentVersion, 1);
        assert.equal(rolledBack.name, 'alpha');
        assert.equal(rolledBack.createdAt.getTime(), first.function.createdAt.getTime());
        assert.deepEqual(await store.getFunction('alpha'), rolledBack);

        await assertRejectsWith(store.setCurrentVersion('alpha', 99), 'NOT_FOUND', /alpha/);
        await assertRejectsWith(store.setCurrentVersion('alpha', 99), 'NOT_FOUND', /99/);
        await assertRejectsWith(store.setCurrentVersion('alpha', 0), 'NOT_FOUND');
        await assertRejectsWith(store.setCurrentVersion('nope', 1), 'NOT_FOUND', /nope/);
        assert.equal((await store.getFunction('alpha'))?.currentVersion, 1, 'failed calls change nothing');
      });
    });

    it('lists, gets and deletes functions; delete removes versions and invocation records', async () => {
      await withStore(async (store) => {
        await store.deployVersion(newVersion('charlie', 'h1'));
        await store.deployVersion(newVersion('alpha', 'h1'));
        await store.deployVersion(newVersion('alpha', 'h2'));
        await store.deployVersion(newVersion('bravo', 'h1'));
        assert.deepEqual(
          (await store.listFunctions()).map((f) => [f.name, f.currentVersion]),
          [
            ['alpha', 2],
            ['bravo', 1],
            ['charlie', 1],
          ],
        );
        assert.equal(await store.getFunction('nope'), null);

        await store.recordInvocation(invocation({ id: 'inv-alpha', functionName: 'alpha' }));
        await store.recordInvocation(invocation({ id: 'inv-bravo', functionName: 'bravo' }));

        assert.equal(await store.deleteFunction('alpha'), true);
        assert.equal(await store.getFunction('alpha'), null);
        assert.deepEqual(await store.listVersions('alpha'), []);
        assert.equal(await store.getVersion('alpha', 1), null);
        assert.equal(await store.getInvocation('inv-alpha'), null);
        assert.deepEqual(await store.listInvocations({ functionName: 'alpha' }), []);
        assert.notEqual(await store.getInvocation('inv-bravo'), null, 'other functions keep their records');
        assert.deepEqual(
          (await store.listFunctions()).map((f) => f.name),
          ['bravo', 'charlie'],
        );

        assert.equal(await store.deleteFunction('alpha'), false);
        assert.equal(await store.deleteFunction('nope'), false);

        const redeployed = await store.deployVersion(newVersion('alpha', 'h2'));
        assert.equal(redeployed.created, true);
        assert.equal(redeployed.version.version, 1, 'a deleted function starts again at version 1');
      });
    });

    it('a function keeps its incarnation across versions; deleted and created again, it gets a new one', async () => {
      await withStore(async (store, reopen) => {
        const first = await store.deployVersion(newVersion('alpha', 'h1'));
        const { incarnation } = first.function;
        assert.match(incarnation, /^[0-9a-f]{16}$/);
        assert.equal(first.version.incarnation, incarnation);
        const second = await store.deployVersion(newVersion('alpha', 'h2'));
        assert.equal(second.function.incarnation, incarnation);
        assert.equal(second.version.incarnation, incarnation);
        assert.equal((await store.setCurrentVersion('alpha', 1)).incarnation, incarnation);
        assert.deepEqual(
          (await store.listVersions('alpha')).map((v) => v.incarnation),
          [incarnation, incarnation],
        );
        const other = await store.deployVersion(newVersion('bravo', 'h1'));
        assert.notEqual(other.function.incarnation, incarnation, 'each function draws its own');

        assert.equal(await store.deleteFunction('alpha'), true);
        const again = await store.deployVersion(newVersion('alpha', 'h1'));
        assert.equal(again.version.version, 1);
        assert.match(again.function.incarnation, /^[0-9a-f]{16}$/);
        assert.notEqual(again.function.incarnation, incarnation, 're-created: a new incarnation');
        assert.equal(again.version.incarnation, again.function.incarnation);
        assert.equal((await store.getVersion('alpha', 1))?.incarnation, again.function.incarnation);

        const current = reopen === undefined ? store : (await store.close(), await reopen());
        assert.equal((await current.getFunction('alpha'))?.incarnation, again.function.incarnation);
        assert.equal(
          (await current.listFunctions()).find((f) => f.name === 'alpha')?.incarnation,
          again.function.incarnation,
        );
      });
    });

    it('concurrent deploys of one function get distinct consecutive versions', async () => {
      await withStore(async (store) => {
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) => store.deployVersion(newVersion('alpha', `h${i}`))),
        );
        assert.ok(results.every((r) => r.created));
        assert.deepEqual(
          results.map((r) => r.version.version).sort((a, b) => a - b),
          [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
        );
        const fn = await store.getFunction('alpha');
        assert.equal(fn?.currentVersion, 10);

        const same = await Promise.all(
          Array.from({ length: 5 }, () => store.deployVersion(newVersion('bravo', 'same'))),
        );
        assert.equal(same.filter((r) => r.created).length, 1, 'one identical deploy creates, the rest find it');
        assert.ok(same.every((r) => r.version.version === 1));
        assert.equal((await store.listVersions('bravo')).length, 1);
      });
    });

    it('recordInvocation and getInvocation round-trip every field', async () => {
      await withStore(async (store) => {
        await deployFunctions(store, 'alpha');
        const full = invocation({
          id: 'inv-full',
          functionName: 'alpha',
          version: 7,
          start: 'cold',
          status: 'error',
          initMs: 123.456,
          durationMs: 78.9,
          peakMemoryBytes: 6_442_450_944,
          error: {
            name: 'TypeError',
            code: 'ERR_THING',
            message: 'cannot read "x" of undefined — ünïcödé 🎉',
            stack: 'TypeError: cannot read\n    at handler (index.js:1:2)',
          },
          logKey: 'logs/alpha/2023-11-14/inv-full.log',
          nodeId: 'node-1',
          instanceId: 'inst-1',
          createdAt: new Date(1_700_000_000_123),
        });
        const sparse = invocation({
          id: 'inv-sparse',
          functionName: 'alpha',
          start: 'warm',
          status: 'success',
          initMs: null,
          durationMs: 0,
          peakMemoryBytes: null,
          error: null,
          logKey: null,
          nodeId: null,
          instanceId: null,
          createdAt: new Date(1_700_000_000_999),
        });
        const minimalError = invocation({
          id: 'inv-min-error',
          status: 'timeout',
          error: { name: 'TimeoutError', message: '' },
        });
        await Promise.all([store.recordInvocation(full), store.recordInvocation(sparse)]);
        await store.recordInvocation(minimalError);
        assert.deepEqual(await store.getInvocation('inv-full'), full);
        assert.deepEqual(await store.getInvocation('inv-sparse'), sparse);
        assert.deepEqual(await store.getInvocation('inv-min-error'), minimalError);
        assert.equal(await store.getInvocation('nope'), null);
      });
    });

    it('500 concurrent recordInvocation calls are all durable when they resolve', async () => {
      await withStore(async (store, reopen) => {
        await deployFunctions(store, 'alpha');
        const records = Array.from({ length: 500 }, (_, i) =>
          invocation({ id: `inv-${String(i).padStart(4, '0')}`, createdAt: new Date(1_700_000_000_000 + i) }),
        );
        await Promise.all(records.map((record) => store.recordInvocation(record)));
        let reader = store;
        if (reopen !== undefined) {
          await store.close();
          reader = await reopen();
        }
        const listed = await reader.listInvocations({ functionName: 'alpha', limit: 1000 });
        assert.equal(listed.length, 500);
        assert.deepEqual(listed, [...records].reverse());
      });
    });

    it('close writes invocation records still queued before it returns', async () => {
      await withStore(async (store, reopen) => {
        await deployFunctions(store, 'alpha');
        const record = invocation({ id: 'inv-late' });
        const recorded = store.recordInvocation(record);
        await store.close();
        await recorded;
        if (reopen !== undefined) {
          const reader = await reopen();
          assert.deepEqual(await reader.getInvocation('inv-late'), record);
        }
      });
    });

    it('a duplicate invocation id is refused without failing the records written with it', async () => {
      await withStore(async (store, _reopen, fixture) => {
        await deployFunctions(store, 'alpha');
        await store.recordInvocation(invocation({ id: 'inv-dup' }));
        const results = await Promise.allSettled([
          store.recordInvocation(invocation({ id: 'inv-a' })),
          store.recordInvocation(invocation({ id: 'inv-dup', status: 'crash' })),
          store.recordInvocation(invocation({ id: 'inv-b' })),
        ]);
        assert.equal(results[0]?.status, 'fulfilled');
        assert.equal(results[2]?.status, 'fulfilled');
        const duplicate = results[1];
        if (fixture.acknowledgesFromJournal === true) {
          assert.equal(duplicate?.status, 'fulfilled', 'a journalled duplicate is acknowledged, then dropped');
        } else {
          assert.ok(duplicate?.status === 'rejected', 'the duplicate is rejected');
          assert.ok(isPlatformError(duplicate.reason), `expected a PlatformError, got ${String(duplicate.reason)}`);
        }
        assert.equal((await store.getInvocation('inv-dup'))?.status, 'success', 'the first record is kept');
        assert.notEqual(await store.getInvocation('inv-a'), null);
        assert.notEqual(await store.getInvocation('inv-b'), null);
      });
    });

    it('refuses an invalid record with BAD_REQUEST and keeps the valid ones written with it', async () => {
      await withStore(async (store) => {
        await deployFunctions(store, 'alpha');
        const bad = [
          invocation({ id: 'bad-duration', durationMs: Number.NaN }),
          invocation({ id: 'bad-version', version: 0 }),
          invocation({ id: 'bad-init', initMs: Number.POSITIVE_INFINITY }),
          // Finite but absurd (a guest's lie): stored as such it could not be read back, and broke listings.
          invocation({ id: 'bad-peak', peakMemoryBytes: 1e300 }),
          invocation({ id: 'bad-peak-negative', peakMemoryBytes: -1 }),
          invocation({ id: 'bad-duration-huge', durationMs: 1e300 }),
          invocation({ id: 'bad-function', functionName: '' }),
          invocation({ id: '' }),
        ];
        const results = await Promise.allSettled([
          ...bad.map((record) => store.recordInvocation(record)),
          store.recordInvocation(invocation({ id: 'good' })),
        ]);
        for (const [i, result] of results.slice(0, bad.length).entries()) {
          assert.ok(
            result.status === 'rejected' && isPlatformError(result.reason, 'BAD_REQUEST'),
            `${bad[i]?.id || '(empty id)'} is refused with BAD_REQUEST`,
          );
        }
        assert.equal(results.at(-1)?.status, 'fulfilled');
        assert.equal((await store.getInvocation('good'))?.id, 'good');
        assert.equal(await store.getInvocation('bad-duration'), null);
        assert.equal(await store.getInvocation('bad-peak'), null);
        assert.ok((await store.listInvocations({})).length > 0, 'listing still works');
      });
    });

    it('invocation stats count per function, version and time bucket, with errors and a duration histogram', async () => {
      await withStore(async (store) => {
        await deployFunctions(store, 'alpha', 'beta');
        const t = 1_700_000_040_000; // a whole minute
        const records: [string, number, number, number, InvocationRecord['status']][] = [
          // function, version, offset ms, duration ms, status
          ['alpha', 1, 1_000, 3, 'success'],
          ['alpha', 1, 2_000, 40, 'error'],
          ['alpha', 1, 61_000, 700, 'timeout'],
          ['alpha', 2, 5_000, 0.5, 'success'],
          ['beta', 1, 10_000, 20_000, 'success'],
          ['alpha', 1, -1, 1, 'success'], // before the window
          ['alpha', 1, 120_000, 1, 'success'], // at its end: outside
        ];
        await Promise.all(
          records.map(([functionName, version, offset, durationMs, status], i) =>
            store.recordInvocation(
              invocationRecord({
                id: `stats-${i}`,
                functionName,
                version,
                durationMs,
                status,
                createdAt: new Date(t + offset),
              }),
            ),
          ),
        );
        const query = { since: new Date(t), until: new Date(t + 120_000), stepMs: 60_000 };
        const key = (b: InvocationStatsBucket): string => `${b.functionName}@${b.version}@${b.start - t}`;
        const sorted = (buckets: InvocationStatsBucket[]): InvocationStatsBucket[] =>
          [...buckets].sort((a, b) => key(a).localeCompare(key(b)));
        /** Cumulative counts that reach `count` at bound index `from`. */
        const le = (parts: [number, number][]): number[] =>
          statsDurationBoundsMs.map((_b, i) => parts.reduce((sum, [from, count]) => sum + (i >= from ? count : 0), 0));
        assert.deepEqual(sorted(await store.invocationStats(query)), [
          {
            functionName: 'alpha',
            version: 1,
            start: t,
            invocations: 2,
            errors: 1,
            le: le([
              [2, 1],
              [5, 1],
            ]),
            maxDurationMs: 40,
          },
          {
            functionName: 'alpha',
            version: 1,
            start: t + 60_000,
            invocations: 1,
            errors: 1,
            le: le([[9, 1]]),
            maxDurationMs: 700,
          },
          {
            functionName: 'alpha',
            version: 2,
            start: t,
            invocations: 1,
            errors: 0,
            le: le([[0, 1]]),
            maxDurationMs: 0.5,
          },
          {
            functionName: 'beta',
            version: 1,
            start: t,
            invocations: 1,
            errors: 0,
            le: le([[13, 1]]),
            maxDurationMs: 20_000,
          },
        ]);
        assert.deepEqual((await store.invocationStats({ ...query, functionName: 'beta' })).map(key), ['beta@1@0']);
        const wide = await store.invocationStats({ ...query, stepMs: 3_600_000 });
        assert.equal(
          wide.reduce((sum, b) => sum + b.invocations, 0),
          5,
          'hour buckets hold the same invocations',
        );
        assert.deepEqual(await store.invocationStats({ ...query, functionName: 'nobody' }), []);
        await assertRejectsWith(store.invocationStats({ ...query, maxBuckets: 3 }), 'BAD_REQUEST');
        assert.equal((await store.invocationStats({ ...query, maxBuckets: 4 })).length, 4, 'four rows: not refused');
      });
    });

    it('listInvocations is newest first, filtered by function and time, limited', async () => {
      await withStore(async (store) => {
        await deployFunctions(store, 'alpha', 'bravo');
        const t0 = 1_700_000_000_000;
        const records = [
          invocation({ id: 'a1', functionName: 'alpha', createdAt: new Date(t0 + 1) }),
          invocation({ id: 'b1', functionName: 'bravo', createdAt: new Date(t0 + 2) }),
          invocation({ id: 'a2', functionName: 'alpha', createdAt: new Date(t0 + 3) }),
          invocation({ id: 'a3', functionName: 'alpha', createdAt: new Date(t0 + 5) }),
          invocation({ id: 'b2', functionName: 'bravo', createdAt: new Date(t0 + 4) }),
        ];
        for (const record of records) await store.recordInvocation(record);
        const ids = async (query: Parameters<MetadataStore['listInvocations']>[0]): Promise<string[]> =>
          (await store.listInvocations(query)).map((r) => r.id);

        assert.deepEqual(await ids({}), ['a3', 'b2', 'a2', 'b1', 'a1']);
        assert.deepEqual(await ids({ functionName: 'alpha' }), ['a3', 'a2', 'a1']);
        assert.deepEqual(await ids({ functionName: 'alpha', limit: 2 }), ['a3', 'a2']);
        assert.deepEqual(await ids({ afterCreatedAt: new Date(t0 + 2) }), ['a3', 'b2', 'a2']);
        assert.deepEqual(await ids({ functionName: 'bravo', afterCreatedAt: new Date(t0 + 2) }), ['b2']);
        assert.deepEqual(await ids({ afterCreatedAt: new Date(t0 + 5) }), []);
        assert.deepEqual(await ids({ functionName: 'nope' }), []);
      });
    });

    it('listInvocations returns 50 by default and at most 1000', async () => {
      await withStore(async (store) => {
        await deployFunctions(store, 'alpha');
        await Promise.all(
          Array.from({ length: 1005 }, (_, i) =>
            store.recordInvocation(invocation({ id: `inv-${i}`, createdAt: new Date(1_700_000_000_000 + i) })),
          ),
        );
        const page = await store.listInvocations({ functionName: 'alpha' });
        assert.equal(page.length, 50);
        assert.equal(page[0]?.id, 'inv-1004');
        assert.equal((await store.listInvocations({ limit: 5000 })).length, 1000);
      });
    });

    it('puts, replaces, lists and reads secrets; values only through secretValues', async () => {
      await withStore(async (store, reopen) => {
        const before = Date.now();
        const first = await store.putSecret('DB_PASSWORD', 'pw-1 ünïcödé 🎉');
        assert.equal(first.created, true);
        assert.deepEqual(Object.keys(first.secret).sort(), ['createdAt', 'name', 'updatedAt']);
        assert.equal(first.secret.name, 'DB_PASSWORD');
        assertRecent(first.secret.createdAt, before);
        assert.equal(first.secret.updatedAt.getTime(), first.secret.createdAt.getTime());
        const second = await store.putSecret('DB_PASSWORD', 'pw-2');
        assert.equal(second.created, false);
        assert.equal(second.secret.createdAt.getTime(), first.secret.createdAt.getTime());
        assert.ok(second.secret.updatedAt.getTime() >= first.secret.updatedAt.getTime());
        await store.putSecret('API_KEY', 'k'.repeat(4096));

        const current = reopen === undefined ? store : (await store.close(), await reopen());
        const listed = await current.listSecrets();
        assert.deepEqual(
          listed.map((s) => [s.name, s.usedBy]),
          [
            ['API_KEY', []],
            ['DB_PASSWORD', []],
          ],
        );
        assert.deepEqual(Object.keys(listed[0]!).sort(), ['createdAt', 'name', 'updatedAt', 'usedBy']);
        assert.equal(listed[1]?.createdAt.getTime(), first.secret.createdAt.getTime());
        assert.equal(listed[1]?.updatedAt.getTime(), second.secret.updatedAt.getTime());
        const values = await current.secretValues(['DB_PASSWORD', 'API_KEY', 'NOPE', 'DB_PASSWORD']);
        assert.deepEqual([...values].sort(), [
          ['API_KEY', 'k'.repeat(4096)],
          ['DB_PASSWORD', 'pw-2'],
        ]);
        assert.equal((await current.secretValues([])).size, 0);
      });
    });

    it('refuses an invalid secret name with INVALID_NAME and an empty value with BAD_REQUEST', async () => {
      await withStore(async (store) => {
        for (const name of ['', '1ABC', 'has-dash', 'has space', 'x'.repeat(129), 'ÄB']) {
          await assertRejectsWith(store.putSecret(name, 'v'), 'INVALID_NAME', undefined, JSON.stringify(name));
        }
        await assertRejectsWith(store.putSecret('EMPTY', ''), 'BAD_REQUEST');
        assert.deepEqual(await store.listSecrets(), []);
      });
    });

    it('a version naming a missing secret is refused; setCurrentVersion to one whose secret is gone too', async () => {
      await withStore(async (store) => {
        const uses = (contentHash: string, secrets: Record<string, string>) =>
          newVersion('alpha', contentHash, { config: functionConfig({ secrets }) });
        await assertRejectsWith(
          store.deployVersion(uses('h1', { TOKEN: 'MISSING', OTHER: 'ALSO_MISSING' })),
          'INVALID_CONFIG',
          /ALSO_MISSING, MISSING/,
        );
        assert.equal(await store.getFunction('alpha'), null, 'nothing was written');

        await store.putSecret('TOKEN', 't');
        const first = await store.deployVersion(uses('h1', { TOKEN: 'TOKEN' }));
        assert.deepEqual(first.version.config.secrets, { TOKEN: 'TOKEN' });
        assert.deepEqual((await store.getVersion('alpha', 1))?.config.secrets, { TOKEN: 'TOKEN' });
        await store.deployVersion(uses('h2', {}));
        assert.equal(await store.deleteSecret('TOKEN'), true, 'only an older version names it');
        await assertRejectsWith(store.setCurrentVersion('alpha', 1), 'INVALID_CONFIG', /TOKEN/);
        assert.equal((await store.getFunction('alpha'))?.currentVersion, 2);
        await store.putSecret('TOKEN', 't2');
        assert.equal((await store.setCurrentVersion('alpha', 1)).currentVersion, 1);
      });
    });

    it('lists the functions whose current version uses a secret, and refuses to delete it with CONFLICT', async () => {
      await withStore(async (store) => {
        await store.putSecret('SHARED', 's');
        await store.putSecret('SPARE', 's');
        const uses = (name: string, contentHash: string, secrets: Record<string, string>) =>
          newVersion(name, contentHash, { config: functionConfig({ secrets }) });
        await store.deployVersion(uses('bravo', 'b1', { A: 'SHARED', B: 'SHARED' }));
        await store.deployVersion(uses('alpha', 'a1', { X: 'SHARED' }));
        await store.deployVersion(uses('charlie', 'c1', {}));
        assert.deepEqual(
          (await store.listSecrets()).map((s) => [s.name, s.usedBy]),
          [
            ['SHARED', ['alpha', 'bravo']],
            ['SPARE', []],
          ],
        );
        await assert.rejects(store.deleteSecret('SHARED'), (err: unknown) => {
          assert.ok(isPlatformError(err, 'CONFLICT'), String(err));
          assert.match(err.message, /alpha, bravo/);
          assert.deepEqual(err.details['usedBy'], ['alpha', 'bravo']);
          return true;
        });
        assert.equal((await store.secretValues(['SHARED'])).get('SHARED'), 's', 'still there');

        await store.deployVersion(uses('alpha', 'a2', {}));
        await store.deleteFunction('bravo');
        assert.deepEqual((await store.listSecrets()).find((s) => s.name === 'SHARED')?.usedBy, []);
        assert.equal(await store.deleteSecret('SHARED'), true);
        assert.equal(await store.deleteSecret('SHARED'), false);
        assert.equal(await store.deleteSecret('NEVER'), false);
        assert.deepEqual(
          (await store.listSecrets()).map((s) => s.name),
          ['SPARE'],
        );
      });
    });

    it('a deploy naming a secret and a delete of that secret never both succeed', async () => {
      await withStore(async (store) => {
        for (let round = 0; round < 8; round++) {
          const secret = `RACE_${round}`;
          await store.putSecret(secret, 'v');
          const [deployed, deleted] = await Promise.allSettled([
            store.deployVersion(
              newVersion('alpha', `h${round}`, { config: functionConfig({ secrets: { V: secret } }) }),
            ),
            store.deleteSecret(secret),
          ]);
          if (deployed.status === 'fulfilled') {
            assert.ok(deleted.status === 'rejected' && isPlatformError(deleted.reason, 'CONFLICT'), `round ${round}`);
            assert.equal((await store.secretValues([secret])).size, 1);
          } else {
            assert.ok(isPlatformError(deployed.reason, 'INVALID_CONFIG'), `round ${round}: ${String(deployed.reason)}`);
            assert.ok(deleted.status === 'fulfilled' && deleted.value, `round ${round}`);
          }
          // Whatever happened, the current version names only secrets that exist.
          const fn = await store.getFunction('alpha');
          if (fn !== null) {
            const names = Object.values((await store.getVersion('alpha', fn.currentVersion))!.config.secrets);
            assert.equal((await store.secretValues(names)).size, new Set(names).size);
          }
        }
      });
    });

    it('rejects use after close with UNAVAILABLE; close is idempotent', async () => {
      await withStore(async (store) => {
        await store.deployVersion(newVersion('alpha', 'h1'));
        await Promise.all([store.close(), store.close()]);
        await store.close();
        const calls: [string, () => Promise<unknown>][] = [
          ['migrate', () => store.migrate()],
          ['deployVersion', () => store.deployVersion(newVersion('alpha', 'h2'))],
          ['getFunction', () => store.getFunction('alpha')],
          ['listFunctions', () => store.listFunctions()],
          ['deleteFunction', () => store.deleteFunction('alpha')],
          ['getVersion', () => store.getVersion('alpha', 1)],
          ['listVersions', () => store.listVersions('alpha')],
          ['setCurrentVersion', () => store.setCurrentVersion('alpha', 1)],
          ['recordInvocation', () => store.recordInvocation(invocation({ id: 'after-close' }))],
          ['getInvocation', () => store.getInvocation('x')],
          ['listInvocations', () => store.listInvocations({})],
          ['putSecret', () => store.putSecret('KEY', 'value')],
          ['listSecrets', () => store.listSecrets()],
          ['secretValues', () => store.secretValues(['KEY'])],
          ['deleteSecret', () => store.deleteSecret('KEY')],
        ];
        for (const [method, call] of calls) await assertRejectsWith(call(), 'UNAVAILABLE', undefined, method);
      });
    });
  });
}

/**
 * Deploys the functions that records name: a store that shares its database with other processes commits the
 * journalled records of existing functions only (a record always names one that was invoked).
 */
async function deployFunctions(store: MetadataStore, ...names: string[]): Promise<void> {
  for (const name of names) await store.deployVersion(newVersion(name, 'records'));
}

function invocation(overrides: Partial<InvocationRecord> = {}): InvocationRecord {
  return invocationRecord(overrides);
}

function assertRecent(date: Date, since: number): void {
  assert.ok(date instanceof Date, 'a Date');
  assert.ok(date.getTime() >= since - 1000 && date.getTime() <= Date.now() + 1000, `${date.toISOString()} is now`);
}

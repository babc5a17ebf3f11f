import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../../src/core/errors.js';
import type { ErrorCode } from '../../src/core/errors.js';
import type { MetadataStore } from '../../src/core/ports/metadata-store.js';
import type { AliasInput, NewRollout, TrafficStore } from '../../src/core/ports/traffic-store.js';
import { defaultRolloutSettings } from '../../src/core/traffic-rules.js';
import type { InvocationStatus, RolloutEvent, RolloutSettings, VersionWeight } from '../../src/core/types.js';
import { assertRejectsWith } from '../helpers/assertions.js';
import { invocationRecord } from '../helpers/records.js';
import { functionConfig, newVersion } from '../helpers/versions.js';
import { withReopenable } from './reopenable.js';

/** The two stores over one fresh, migrated, empty database. */
export interface TrafficStores {
  metadata: MetadataStore;
  traffic: TrafficStore;
}

/** What an adapter's test gives the contract. */
export interface TrafficStoreFixture extends TrafficStores {
  /** Open both stores again over the same data once `metadata` is closed; left out where the data dies with it. */
  reopen?: () => Promise<TrafficStores>;
  /** Remove the data. Called after the contract has closed every store it opened. */
  cleanup: () => Promise<void>;
}

/**
 * The behaviour every `TrafficStore` adapter must have, together with the `MetadataStore` on the same database (the
 * two keep `live`, versions and secrets consistent). Each test opens its own fixture.
 *
 * @example
 * trafficStoreContract('SQLite', async () => {
 *   const metadata = await openSqliteMetadataStore(':memory:');
 *   return { metadata, traffic: new SqlTrafficStore(metadata.shared()), cleanup: async () => {} };
 * });
 */
export function trafficStoreContract(name: string, open: () => Promise<TrafficStoreFixture>): void {
  /** Run a test against a fresh fixture; every store it opens, reopened ones included, is closed afterwards. */
  async function withStores(
    body: (stores: TrafficStores, reopen: (() => Promise<TrafficStores>) | undefined) => Promise<void>,
  ): Promise<void> {
    const fixture = await open();
    await withReopenable<TrafficStores>(
      fixture,
      fixture,
      (stores) => stores.metadata.close(),
      (reopen) => body(fixture, reopen),
    );
  }

  describe(`TrafficStore contract: ${name}`, () => {
    it('every function gets a live alias with its first version; each deploy moves it to the new version', async () => {
      await withStores(async ({ metadata, traffic }) => {
        const before = Date.now();
        assert.deepEqual(await traffic.listAliases('alpha'), []);
        await metadata.deployVersion(newVersion('alpha', 'h1'));
        const live = await traffic.getAlias('alpha', 'live');
        assert.ok(live !== null);
        assert.deepEqual(
          { ...live, createdAt: undefined, updatedAt: undefined },
          {
            functionName: 'alpha',
            name: 'live',
            weights: [{ version: 1, weight: 1 }],
            stickyHeader: null,
            createdAt: undefined,
            updatedAt: undefined,
          },
        );
        assert.ok(live.createdAt.getTime() >= before - 1000 && live.createdAt.getTime() <= Date.now() + 1000);

        await metadata.deployVersion(newVersion('alpha', 'h2'));
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 2, weight: 1 }]);
        assert.deepEqual(
          (await traffic.listAliases('alpha')).map((alias) => alias.name),
          ['live'],
        );
        assert.equal(await traffic.getAlias('alpha', 'nope'), null);
        assert.equal(await traffic.getAlias('alpha', 'NOT A NAME'), null);
        assert.equal(await traffic.getAlias('nobody', 'live'), null);
      });
    });

    it('a deploy with promote false creates the version and leaves traffic alone, except a first version', async () => {
      await withStores(async ({ metadata, traffic }) => {
        const first = await metadata.deployVersion({ ...newVersion('alpha', 'h1'), promote: false });
        assert.equal(first.function.currentVersion, 1, 'a new function goes live with its first version');
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 1, weight: 1 }]);

        const second = await metadata.deployVersion({ ...newVersion('alpha', 'h2'), promote: false });
        assert.equal(second.created, true);
        assert.equal(second.version.version, 2);
        assert.equal(second.function.currentVersion, 1);
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 1);
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 1, weight: 1 }]);
        assert.equal((await metadata.listVersions('alpha')).length, 2);

        const third = await metadata.deployVersion(newVersion('alpha', 'h3'));
        assert.equal(third.function.currentVersion, 3);
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 3, weight: 1 }]);

        const back = await metadata.setCurrentVersion('alpha', 2);
        assert.equal(back.currentVersion, 2);
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 2, weight: 1 }]);
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 2);
      });
    });

    it('putAlias creates and replaces aliases; live moves the current version to its primary', async () => {
      await withStores(async ({ metadata, traffic }, reopen) => {
        await deployVersions(metadata, 'alpha', 3);
        const created = await traffic.putAlias('alpha', 'beta', {
          weights: [
            { version: 2, weight: 0.75 },
            { version: 1, weight: 0.25 },
          ],
          stickyHeader: 'X-User-Id',
        });
        assert.equal(created.created, true);
        assert.deepEqual(created.alias.weights, [
          { version: 1, weight: 0.25 },
          { version: 2, weight: 0.75 },
        ]);
        assert.equal(created.alias.stickyHeader, 'x-user-id', 'header names are stored lowercase');
        assert.equal(created.alias.name, 'beta');
        assert.equal(created.alias.functionName, 'alpha');

        const replaced = await traffic.putAlias('alpha', 'beta', {
          weights: [{ version: 3, weight: 1 }],
          stickyHeader: null,
        });
        assert.equal(replaced.created, false);
        assert.equal(replaced.alias.createdAt.getTime(), created.alias.createdAt.getTime());
        assert.ok(replaced.alias.updatedAt.getTime() >= created.alias.updatedAt.getTime());
        assert.deepEqual(replaced.alias.weights, [{ version: 3, weight: 1 }]);
        assert.equal(replaced.alias.stickyHeader, null);

        // Three versions, weights that sum to 1 only within the tolerance.
        await traffic.putAlias('alpha', 'live', {
          weights: [
            { version: 1, weight: 0.7 },
            { version: 2, weight: 0.2 },
            { version: 3, weight: 0.1005 },
          ],
          stickyHeader: null,
        });
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 1, 'the largest weight');
        await traffic.putAlias('alpha', 'live', {
          weights: [
            { version: 1, weight: 0.5 },
            { version: 2, weight: 0.5 },
          ],
          stickyHeader: 'x-tenant',
        });
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 2, 'the newest on a tie');

        const current = reopen === undefined ? traffic : (await metadata.close(), (await reopen()).traffic);
        assert.deepEqual(
          (await current.listAliases('alpha')).map((alias) => [alias.name, alias.weights, alias.stickyHeader]),
          [
            ['beta', [{ version: 3, weight: 1 }], null],
            [
              'live',
              [
                { version: 1, weight: 0.5 },
                { version: 2, weight: 0.5 },
              ],
              'x-tenant',
            ],
          ],
        );
      });
    });

    it('refuses bad weights, names and headers, unknown functions and versions, and changes nothing', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 2);
        await traffic.putAlias('alpha', 'beta', { weights: [{ version: 1, weight: 1 }], stickyHeader: null });
        const aliasesBefore = await traffic.listAliases('alpha');
        const functionBefore = await metadata.getFunction('alpha');
        const w = (...pairs: [number, number][]): VersionWeight[] =>
          pairs.map(([version, weight]) => ({ version, weight }));
        const cases: [string, string, string, AliasInput, ErrorCode, RegExp][] = [
          ['sum under 1', 'alpha', 'beta', input(w([1, 0.5], [2, 0.4])), 'BAD_REQUEST', /sum to 1.*0\.9/],
          ['sum over 1', 'alpha', 'live', input(w([1, 0.7], [2, 0.4])), 'BAD_REQUEST', /sum to 1/],
          ['negative', 'alpha', 'beta', input(w([2, -0.1], [1, 1])), 'BAD_REQUEST', /version 2.*> 0/],
          ['zero', 'alpha', 'beta', input(w([1, 1], [2, 0])), 'BAD_REQUEST', /version 2.*> 0/],
          ['no versions', 'alpha', 'beta', input([]), 'BAD_REQUEST', /at least one version/],
          ['a version twice', 'alpha', 'beta', input(w([1, 0.5], [1, 0.5])), 'BAD_REQUEST', /version 1 twice/],
          ['not a version', 'alpha', 'beta', input(w([1.5, 1])), 'BAD_REQUEST', /1\.5 is not a version/],
          ['NaN weight', 'alpha', 'beta', input(w([1, Number.NaN])), 'BAD_REQUEST', /version 1/],
          ['unknown version', 'alpha', 'beta', input(w([1, 0.5], [7, 0.5])), 'NOT_FOUND', /no version 7/],
          ['unknown function', 'nobody', 'beta', input(w([1, 1])), 'NOT_FOUND', /function nobody does not exist/],
          ['upper case name', 'alpha', 'Beta', input(w([1, 1])), 'BAD_REQUEST', /alias name "Beta"/],
          ['all digits', 'alpha', '123', input(w([1, 1])), 'BAD_REQUEST', /alias name "123"/],
          ['leading dash', 'alpha', '-x', input(w([1, 1])), 'BAD_REQUEST', /alias name/],
          ['empty name', 'alpha', '', input(w([1, 1])), 'BAD_REQUEST', /alias name/],
          ['long name', 'alpha', 'a'.repeat(64), input(w([1, 1])), 'BAD_REQUEST', /alias name/],
          ['header with a space', 'alpha', 'beta', input(w([1, 1]), 'x user'), 'BAD_REQUEST', /stickyHeader/],
          ['empty header', 'alpha', 'beta', input(w([1, 1]), ''), 'BAD_REQUEST', /stickyHeader/],
          ['long header', 'alpha', 'beta', input(w([1, 1]), 'x'.repeat(101)), 'BAD_REQUEST', /stickyHeader/],
        ];
        for (const [what, fn, alias, body, code, message] of cases) {
          await assertRejectsWith(traffic.putAlias(fn, alias, body), code, message, what);
        }
        assert.deepEqual(await traffic.listAliases('alpha'), aliasesBefore, 'no alias changed');
        assert.deepEqual(await metadata.getFunction('alpha'), functionBefore, 'the function did not change');
        assert.deepEqual(await traffic.listAliases('nobody'), []);
        assert.equal(await metadata.getFunction('nobody'), null);
      });
    });

    it('a function has at most 100 aliases, live among them: the 101st is refused naming the limit', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 1);
        const one = input([{ version: 1, weight: 1 }]);
        for (let i = 1; i < 100; i++) await traffic.putAlias('alpha', `a${i}`, one);
        assert.equal((await traffic.listAliases('alpha')).length, 100);
        await assertRejectsWith(traffic.putAlias('alpha', 'one-more', one), 'CONFLICT', /100 aliases, the most/);
        assert.equal(await traffic.getAlias('alpha', 'one-more'), null, 'nothing changed');
        // Existing ones still change; after a delete there is room again.
        assert.equal((await traffic.putAlias('alpha', 'a1', input([{ version: 1, weight: 1 }], 'x-k'))).created, false);
        assert.equal(await traffic.deleteAlias('alpha', 'a2'), true);
        assert.equal((await traffic.putAlias('alpha', 'one-more', one)).created, true);
      });
    });

    it('deletes aliases, but never live', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 1);
        await traffic.putAlias('alpha', 'beta', { weights: [{ version: 1, weight: 1 }], stickyHeader: null });
        await assertRejectsWith(traffic.deleteAlias('alpha', 'live'), 'CONFLICT', /live/);
        assert.equal(await traffic.deleteAlias('alpha', 'beta'), true);
        assert.equal(await traffic.deleteAlias('alpha', 'beta'), false);
        assert.equal(await traffic.deleteAlias('alpha', 'Not A Name'), false);
        assert.equal(await traffic.deleteAlias('nobody', 'beta'), false);
        assert.deepEqual(
          (await traffic.listAliases('alpha')).map((alias) => alias.name),
          ['live'],
        );
      });
    });

    it('starts a rollout: baseline and canary weighted by the first step, in one write', async () => {
      await withStores(async ({ metadata, traffic }, reopen) => {
        const fn = await deployVersions(metadata, 'alpha', 1);
        await metadata.deployVersion({ ...newVersion('alpha', 'h2'), promote: false });
        const before = Date.now();
        const settings = { ...defaultRolloutSettings, steps: [10, 50, 100] };
        const rollout = await traffic.startRollout(newRollout('alpha', 2, settings));
        assert.match(rollout.id, /^\S+$/);
        assert.equal(rollout.functionName, 'alpha');
        assert.equal(rollout.incarnation, fn.incarnation);
        assert.equal(rollout.alias, 'live');
        assert.equal(rollout.version, 2);
        assert.equal(rollout.baseline, 1);
        assert.equal(rollout.state, 'running');
        assert.equal(rollout.stepIndex, 0);
        assert.deepEqual(rollout.settings, settings);
        assert.equal(rollout.endedAt, null);
        assert.ok(rollout.stepStartedAt.getTime() >= before - 1000);
        assert.equal(rollout.history.length, 1);
        assert.equal(rollout.history[0]?.decision, 'started');
        assert.equal(rollout.history[0]?.step, 10);
        assert.deepEqual(rollout.history[0]?.canary, { requests: 0, errors: 0, p99Ms: null });
        assert.ok(rollout.history[0]?.at instanceof Date);

        const weights = await weightsOf(traffic, 'alpha', 'live');
        assert.deepEqual(
          weights.map((entry) => entry.version),
          [1, 2],
        );
        assert.ok(Math.abs(weights[0]!.weight - 0.9) < 1e-9 && Math.abs(weights[1]!.weight - 0.1) < 1e-9);
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 1, 'the baseline is still primary');

        const current = reopen === undefined ? traffic : (await metadata.close(), (await reopen()).traffic);
        assert.deepEqual(await current.getRollout('alpha', rollout.id), rollout);
        assert.deepEqual(await current.runningRollouts(), [rollout]);
        assert.equal(await current.getRollout('beta', rollout.id), null, 'ids are looked up within the function');
        assert.equal(await current.getRollout('alpha', 'nope'), null);
      });
    });

    it('a first step of 100 gives the canary the alias alone; a canary may be an older version', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 2);
        const rollout = await traffic.startRollout(newRollout('alpha', 1, { ...defaultRolloutSettings, steps: [100] }));
        assert.equal(rollout.baseline, 2);
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 1, weight: 1 }]);
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 1);
        assert.equal(rollout.state, 'running');
      });
    });

    it('the baseline of a split alias is its primary version other than the canary', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 3);
        await traffic.putAlias('alpha', 'beta', {
          weights: [
            { version: 1, weight: 0.3 },
            { version: 2, weight: 0.3 },
            { version: 3, weight: 0.4 },
          ],
          stickyHeader: 'x-user',
        });
        const rollout = await traffic.startRollout({ ...newRollout('alpha', 3), alias: 'beta' });
        assert.equal(rollout.baseline, 2, 'the newest of the largest other weights');
        const beta = await traffic.getAlias('alpha', 'beta');
        assert.deepEqual(
          beta?.weights.map((entry) => entry.version),
          [2, 3],
        );
        assert.equal(beta?.stickyHeader, 'x-user', 'the sticky header stays');
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 3, weight: 1 }], 'live untouched');
      });
    });

    it('refuses a bad rollout with BAD_REQUEST, NOT_FOUND or CONFLICT, and changes nothing', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 2);
        const settings = (overrides: Partial<RolloutSettings>): RolloutSettings => ({
          ...defaultRolloutSettings,
          ...overrides,
        });
        const cases: [string, NewRollout, ErrorCode, RegExp][] = [
          ['unknown function', newRollout('nobody', 1), 'NOT_FOUND', /function nobody/],
          ['unknown alias', { ...newRollout('alpha', 1), alias: 'beta' }, 'NOT_FOUND', /no alias beta/],
          ['bad alias', { ...newRollout('alpha', 1), alias: 'Beta' }, 'BAD_REQUEST', /alias name/],
          ['unknown version', newRollout('alpha', 9), 'NOT_FOUND', /no version 9/],
          ['not a version', newRollout('alpha', 0), 'BAD_REQUEST', /version/],
          ['already at 100%', newRollout('alpha', 2), 'CONFLICT', /already has all/],
          ['no steps', newRollout('alpha', 1, settings({ steps: [] })), 'BAD_REQUEST', /steps/],
          ['steps down', newRollout('alpha', 1, settings({ steps: [50, 10, 100] })), 'BAD_REQUEST', /increase/],
          ['steps repeat', newRollout('alpha', 1, settings({ steps: [10, 10, 100] })), 'BAD_REQUEST', /increase/],
          ['not ending at 100', newRollout('alpha', 1, settings({ steps: [10, 50] })), 'BAD_REQUEST', /end at 100/],
          ['step over 100', newRollout('alpha', 1, settings({ steps: [10, 150] })), 'BAD_REQUEST', /150/],
          ['fractional step', newRollout('alpha', 1, settings({ steps: [2.5, 100] })), 'BAD_REQUEST', /2\.5/],
          ['interval 0', newRollout('alpha', 1, settings({ intervalSeconds: 0 })), 'BAD_REQUEST', /intervalSeconds/],
          ['error rate 2', newRollout('alpha', 1, settings({ maxErrorRate: 2 })), 'BAD_REQUEST', /maxErrorRate/],
          ['p99 ratio 0.5', newRollout('alpha', 1, settings({ maxP99Ratio: 0.5 })), 'BAD_REQUEST', /maxP99Ratio/],
          ['min requests 0', newRollout('alpha', 1, settings({ minRequests: 0 })), 'BAD_REQUEST', /minRequests/],
          [
            'window a year',
            newRollout('alpha', 1, settings({ rollbackWindowSeconds: 365 * 86_400 })),
            'BAD_REQUEST',
            /rollbackWindowSeconds/,
          ],
        ];
        for (const [what, rollout, code, message] of cases) {
          await assertRejectsWith(traffic.startRollout(rollout), code, message, what);
        }
        assert.deepEqual(await traffic.listRollouts('alpha'), []);
        assert.deepEqual(await traffic.runningRollouts(), []);
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 2, weight: 1 }]);
      });
    });

    it('one running rollout per function: a second start, live changes and promoting deploys get CONFLICT', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 1);
        await metadata.deployVersion({ ...newVersion('alpha', 'h2'), promote: false });
        await metadata.deployVersion({ ...newVersion('alpha', 'h3'), promote: false });
        await traffic.putAlias('alpha', 'beta', { weights: [{ version: 1, weight: 1 }], stickyHeader: null });
        const rollout = await traffic.startRollout(newRollout('alpha', 2));
        const liveBefore = await traffic.getAlias('alpha', 'live');

        await assertRejectsWith(traffic.startRollout(newRollout('alpha', 3)), 'CONFLICT', new RegExp(rollout.id));
        await assertRejectsWith(
          traffic.startRollout({ ...newRollout('alpha', 3), alias: 'beta' }),
          'CONFLICT',
          /running already/,
        );
        await assertRejectsWith(traffic.putAlias('alpha', 'live', input([{ version: 3, weight: 1 }])), 'CONFLICT');
        await assertRejectsWith(metadata.setCurrentVersion('alpha', 3), 'CONFLICT', /rollout/);
        await assertRejectsWith(metadata.deployVersion(newVersion('alpha', 'h4')), 'CONFLICT', /rollout/);
        assert.equal((await metadata.listVersions('alpha')).length, 3, 'the refused deploy made no version');
        assert.deepEqual(await traffic.getAlias('alpha', 'live'), liveBefore);

        // What the rollout does not move stays free.
        const unpromoted = await metadata.deployVersion({ ...newVersion('alpha', 'h4'), promote: false });
        assert.equal(unpromoted.version.version, 4);
        await traffic.putAlias('alpha', 'beta', input([{ version: 4, weight: 1 }]));
        assert.equal(await traffic.deleteAlias('alpha', 'beta'), true);
        assert.deepEqual(await traffic.runningRollouts(), [rollout]);
      });
    });

    it('concurrent starts of rollouts of one function: exactly one runs', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 1);
        for (const hash of ['h2', 'h3', 'h4', 'h5']) {
          await metadata.deployVersion({ ...newVersion('alpha', hash), promote: false });
        }
        const results = await Promise.allSettled([2, 3, 4, 5].map((v) => traffic.startRollout(newRollout('alpha', v))));
        const started = results.filter((result) => result.status === 'fulfilled');
        assert.equal(
          started.length,
          1,
          results.map((r) => (r.status === 'rejected' ? String(r.reason) : 'ok')).join('\n'),
        );
        for (const result of results) {
          if (result.status === 'rejected')
            assert.ok(isPlatformError(result.reason, 'CONFLICT'), String(result.reason));
        }
        const running = await traffic.runningRollouts();
        assert.equal(running.length, 1);
        assert.equal((await traffic.listRollouts('alpha')).length, 1);
        const live = await weightsOf(traffic, 'alpha', 'live');
        assert.deepEqual(
          live.map((entry) => entry.version),
          [1, running[0]!.version],
        );
      });
    });

    it('updateRollout is compare-and-set on the revision and moves the alias with it', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 1);
        await metadata.deployVersion({ ...newVersion('alpha', 'h2'), promote: false });
        const started = await traffic.startRollout(newRollout('alpha', 2));
        const stepAt = new Date(Date.now() + 5);
        const advanced = await traffic.updateRollout('alpha', started.id, started.revision, {
          state: 'running',
          stepIndex: 1,
          stepStartedAt: stepAt,
          events: [event('advanced', 10, 'healthy at 10%')],
          weights: [
            { version: 1, weight: 0.5 },
            { version: 2, weight: 0.5 },
          ],
        });
        assert.equal(advanced.applied, true);
        const rollout = advanced.rollout!;
        assert.equal(rollout.revision, started.revision + 1);
        assert.equal(rollout.stepIndex, 1);
        assert.equal(rollout.stepStartedAt.getTime(), stepAt.getTime());
        assert.deepEqual(
          rollout.history.map((entry) => entry.decision),
          ['started', 'advanced'],
        );
        assert.deepEqual(rollout.history[1], event('advanced', 10, 'healthy at 10%'));
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 2, 'newest on a tie');
        assert.deepEqual(await traffic.getRollout('alpha', started.id), rollout);

        // A writer that read the rollout before that change loses, and changes nothing.
        const stale = await traffic.updateRollout('alpha', started.id, started.revision, {
          state: 'rolled_back',
          stepIndex: 1,
          stepStartedAt: stepAt,
          events: [event('rolled_back', 50, 'errors')],
          weights: [{ version: 1, weight: 1 }],
        });
        assert.equal(stale.applied, false);
        assert.deepEqual(stale.rollout, rollout);
        assert.deepEqual(await traffic.getRollout('alpha', started.id), rollout);
        assert.equal((await weightsOf(traffic, 'alpha', 'live')).length, 2);

        const unknown = await traffic.updateRollout('alpha', 'nope', 1, {
          state: 'aborted',
          stepIndex: 0,
          stepStartedAt: stepAt,
          events: [],
          weights: [{ version: 1, weight: 1 }],
        });
        assert.deepEqual(unknown, { applied: false, rollout: null });

        await assertRejectsWith(
          traffic.updateRollout('alpha', started.id, rollout.revision, {
            state: 'running',
            stepIndex: 1,
            stepStartedAt: stepAt,
            events: [],
            weights: [{ version: 7, weight: 1 }],
          }),
          'NOT_FOUND',
          /no version 7/,
        );

        const promoted = await traffic.updateRollout('alpha', started.id, rollout.revision, {
          state: 'promoted',
          stepIndex: 2,
          stepStartedAt: stepAt,
          events: [event('promoted', 100, 'promoted by hand')],
          weights: [{ version: 2, weight: 1 }],
        });
        assert.equal(promoted.applied, true);
        assert.equal(promoted.rollout?.state, 'promoted');
        assert.ok(promoted.rollout?.endedAt instanceof Date);
        assert.deepEqual(await traffic.runningRollouts(), []);
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 2, weight: 1 }]);
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 2);

        await assertRejectsWith(
          traffic.updateRollout('alpha', started.id, promoted.rollout.revision, {
            state: 'aborted',
            stepIndex: 2,
            stepStartedAt: stepAt,
            events: [],
            weights: [{ version: 1, weight: 1 }],
          }),
          'CONFLICT',
          /ended/,
        );
        // Ended, the alias is free again.
        await traffic.putAlias('alpha', 'live', input([{ version: 1, weight: 1 }]));
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 1);
      });
    });

    it('lists rollouts newest first, and the running ones of every function', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 2);
        await deployVersions(metadata, 'bravo', 2);
        const ids: string[] = [];
        for (let round = 0; round < 3; round++) {
          const rollout = await traffic.startRollout(newRollout('alpha', 1));
          ids.push(rollout.id);
          await traffic.updateRollout('alpha', rollout.id, rollout.revision, {
            state: 'aborted',
            stepIndex: 0,
            stepStartedAt: rollout.stepStartedAt,
            events: [event('aborted', 10, 'by hand')],
            weights: [{ version: 2, weight: 1 }],
          });
        }
        const running = await traffic.startRollout(newRollout('alpha', 1));
        const bravo = await traffic.startRollout(newRollout('bravo', 1));
        assert.deepEqual(
          (await traffic.listRollouts('alpha')).map((rollout) => rollout.id),
          [running.id, ...ids.reverse()],
        );
        assert.deepEqual(
          (await traffic.listRollouts('alpha')).map((rollout) => rollout.state),
          ['running', 'aborted', 'aborted', 'aborted'],
        );
        assert.deepEqual(
          (await traffic.runningRollouts()).map((rollout) => [rollout.functionName, rollout.id]),
          [
            ['alpha', running.id],
            ['bravo', bravo.id],
          ],
        );
        assert.deepEqual(await traffic.listRollouts('charlie'), []);
      });
    });

    it('lists at most the newest 100 rollouts, or the newest `limit`', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 2);
        const ids: string[] = [];
        for (let round = 0; round < 101; round++) {
          const rollout = await traffic.startRollout(newRollout('alpha', 1));
          ids.unshift(rollout.id);
          await traffic.updateRollout('alpha', rollout.id, rollout.revision, {
            state: 'aborted',
            stepIndex: 0,
            stepStartedAt: rollout.stepStartedAt,
            events: [],
            weights: [{ version: 2, weight: 1 }],
          });
        }
        assert.deepEqual(
          (await traffic.listRollouts('alpha')).map((rollout) => rollout.id),
          ids.slice(0, 100),
        );
        assert.deepEqual(
          (await traffic.listRollouts('alpha', 3)).map((rollout) => rollout.id),
          ids.slice(0, 3),
        );
        for (const limit of [0, 101, 1.5]) {
          await assertRejectsWith(traffic.listRollouts('alpha', limit), 'BAD_REQUEST', /limit/, `limit ${limit}`);
        }
      });
    });

    it('versionFigures counts requests, errors and p99 per version since a time', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 3);
        await deployVersions(metadata, 'other', 1);
        const t0 = 1_700_000_000_000;
        const records = [];
        // Version 1: 200 calls at 1..200 ms (shuffled), every tenth an error of some kind; 5 throttled (never ran).
        const statuses: InvocationStatus[] = ['error', 'timeout', 'crash', 'oom', 'init-error'];
        for (let i = 0; i < 200; i++) {
          const duration = ((i * 37) % 200) + 1;
          records.push(
            invocationRecord({
              id: `v1-${i}`,
              version: 1,
              durationMs: duration,
              status: i % 10 === 0 ? statuses[(i / 10) % statuses.length]! : 'success',
              createdAt: new Date(t0 + 1000 + i),
            }),
          );
        }
        for (let i = 0; i < 5; i++) {
          records.push(
            invocationRecord({
              id: `v1-throttled-${i}`,
              version: 1,
              durationMs: 5000,
              status: 'throttled',
              createdAt: new Date(t0 + 1000),
            }),
          );
        }
        // Version 2: one warm call of 7.25 ms in the window, one before it; and a slow cold one in the window, which
        // counts as a call but not in the p99 (a sandbox's first call runs cold code).
        records.push(invocationRecord({ id: 'v2-in', version: 2, durationMs: 7.25, createdAt: new Date(t0 + 1000) }));
        records.push(
          invocationRecord({
            id: 'v2-cold',
            version: 2,
            start: 'cold',
            durationMs: 800,
            createdAt: new Date(t0 + 1001),
          }),
        );
        records.push(invocationRecord({ id: 'v2-old', version: 2, durationMs: 900, createdAt: new Date(t0 + 999) }));
        // Version 3: 100 calls of 1..100 ms: rank ceil(99) = 99.
        for (let i = 1; i <= 100; i++) {
          records.push(
            invocationRecord({ id: `v3-${i}`, version: 3, durationMs: i, createdAt: new Date(t0 + 2000 + i) }),
          );
        }
        records.push(invocationRecord({ id: 'other-1', functionName: 'other', createdAt: new Date(t0 + 5000) }));
        await Promise.all(records.map((record) => metadata.recordInvocation(record)));

        const figures = await traffic.versionFigures('alpha', new Date(t0 + 1000));
        assert.deepEqual(
          [...figures].sort(([a], [b]) => a - b),
          [
            // Throttled calls left out: n = 200, rank ceil(198) = 198.
            [1, { requests: 200, errors: 20, p99Ms: 198 }],
            [2, { requests: 2, errors: 0, p99Ms: 7.25 }],
            [3, { requests: 100, errors: 0, p99Ms: 99 }],
          ],
        );
        const later = await traffic.versionFigures('alpha', new Date(t0 + 2051));
        assert.deepEqual([...later], [[3, { requests: 50, errors: 0, p99Ms: 100 }]]);
        assert.equal((await traffic.versionFigures('alpha', new Date(t0 + 10_000))).size, 0);
        assert.equal((await traffic.versionFigures('nobody', new Date(0))).size, 0);

        // Only the versions asked for (one without calls has no figures).
        const asked = await traffic.versionFigures('alpha', new Date(t0 + 1000), [3, 1, 4]);
        assert.deepEqual(
          [...asked].sort(([a], [b]) => a - b),
          [
            [1, { requests: 200, errors: 20, p99Ms: 198 }],
            [3, { requests: 100, errors: 0, p99Ms: 99 }],
          ],
        );
        assert.equal((await traffic.versionFigures('alpha', new Date(t0), [])).size, 0);
      });
    });

    it('versionFigures counts every call of the window but takes the p99 from the most recent 10,000', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 2);
        const t0 = 1_700_000_000_000;
        const records = [];
        // 200 slow calls (5 s), then 10,000 fast ones (1 ms): over all 10,200 the p99 would be 5000 ms.
        for (let i = 0; i < 200; i++) {
          records.push(
            invocationRecord({ id: `slow-${i}`, version: 1, durationMs: 5000, createdAt: new Date(t0 + i) }),
          );
        }
        for (let i = 0; i < 10_000; i++) {
          records.push(
            invocationRecord({
              id: `fast-${i}`,
              version: 1,
              durationMs: 1,
              status: i < 100 ? 'error' : 'success',
              createdAt: new Date(t0 + 1000 + i),
            }),
          );
        }
        records.push(invocationRecord({ id: 'v2', version: 2, durationMs: 3, createdAt: new Date(t0) }));
        await Promise.all(records.map((record) => metadata.recordInvocation(record)));
        const figures = await traffic.versionFigures('alpha', new Date(t0));
        assert.deepEqual(
          [...figures].sort(([a], [b]) => a - b),
          [
            [1, { requests: 10_200, errors: 100, p99Ms: 1 }],
            [2, { requests: 1, errors: 0, p99Ms: 3 }],
          ],
        );
        // A window holding fewer than 10,000 calls takes them all.
        const recent = await traffic.versionFigures('alpha', new Date(t0 + 1000 + 9_899), [1]);
        assert.deepEqual([...recent], [[1, { requests: 101, errors: 0, p99Ms: 1 }]]);
      });
    });

    it('servedVersions: versions in aliases serve; rollouts retain theirs, a promoted baseline for its window', async () => {
      await withStores(async ({ metadata, traffic }) => {
        const alpha = await deployVersions(metadata, 'alpha', 4);
        const bravo = await deployVersions(metadata, 'bravo', 2);
        await traffic.putAlias('alpha', 'beta', input([{ version: 1, weight: 1 }]));
        const now = new Date();
        assert.deepEqual(
          [...(await traffic.servedVersions(now))],
          [
            ['alpha', { incarnation: alpha.incarnation, serving: [1, 4], retained: [] }],
            ['bravo', { incarnation: bravo.incarnation, serving: [2], retained: [] }],
          ],
        );

        // Running at 100% on the canary: the baseline has no traffic but is retained.
        const running = await traffic.startRollout(newRollout('bravo', 1, { ...defaultRolloutSettings, steps: [100] }));
        assert.deepEqual((await traffic.servedVersions(new Date())).get('bravo'), {
          incarnation: bravo.incarnation,
          serving: [1],
          retained: [2],
        });

        // Promoted: the baseline stays retained for the rollback window, then not.
        const promoted = await traffic.updateRollout('bravo', running.id, running.revision, {
          state: 'promoted',
          stepIndex: 0,
          stepStartedAt: running.stepStartedAt,
          events: [event('promoted', 100, 'healthy')],
          weights: [{ version: 1, weight: 1 }],
        });
        const endedAt = promoted.rollout!.endedAt!.getTime();
        const windowMs = defaultRolloutSettings.rollbackWindowSeconds * 1000;
        assert.deepEqual((await traffic.servedVersions(new Date(endedAt + windowMs - 1))).get('bravo')?.retained, [2]);
        assert.deepEqual((await traffic.servedVersions(new Date(endedAt + windowMs))).get('bravo')?.retained, []);

        // Rolled back: the canary is not retained; a running one on alpha retains both, minus those serving.
        const alphaRollout = await traffic.startRollout({ ...newRollout('alpha', 3), alias: 'beta' });
        assert.deepEqual((await traffic.servedVersions(new Date())).get('alpha'), {
          incarnation: alpha.incarnation,
          serving: [1, 3, 4],
          retained: [],
        });
        await traffic.updateRollout('alpha', alphaRollout.id, alphaRollout.revision, {
          state: 'rolled_back',
          stepIndex: 0,
          stepStartedAt: alphaRollout.stepStartedAt,
          events: [event('rolled_back', 10, 'errors')],
          weights: [{ version: 1, weight: 1 }],
        });
        assert.deepEqual((await traffic.servedVersions(new Date())).get('alpha'), {
          incarnation: alpha.incarnation,
          serving: [1, 4],
          retained: [],
        });
      });
    });

    it('deleting a function deletes its aliases and rollouts; created again, it has only live', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 2);
        await deployVersions(metadata, 'bravo', 2);
        await traffic.putAlias('alpha', 'beta', input([{ version: 1, weight: 1 }]));
        const rollout = await traffic.startRollout(newRollout('alpha', 1));
        await traffic.startRollout(newRollout('bravo', 1));
        assert.equal(await metadata.deleteFunction('alpha'), true);
        assert.deepEqual(await traffic.listAliases('alpha'), []);
        assert.deepEqual(await traffic.listRollouts('alpha'), []);
        assert.equal(await traffic.getRollout('alpha', rollout.id), null);
        assert.deepEqual(
          (await traffic.runningRollouts()).map((r) => r.functionName),
          ['bravo'],
        );
        assert.deepEqual([...(await traffic.servedVersions(new Date())).keys()], ['bravo']);

        const again = await metadata.deployVersion(newVersion('alpha', 'fresh'));
        assert.equal(again.version.version, 1);
        assert.deepEqual(
          (await traffic.listAliases('alpha')).map((alias) => [alias.name, alias.weights]),
          [['live', [{ version: 1, weight: 1 }]]],
        );
        // A rollout of the new incarnation may start: the old one's is gone.
        await metadata.deployVersion({ ...newVersion('alpha', 'fresh2'), promote: false });
        const fresh = await traffic.startRollout(newRollout('alpha', 2));
        assert.equal(fresh.incarnation, again.function.incarnation);
      });
    });

    it('a secret used by a version an alias names cannot be deleted; aliases need the secrets to exist', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await metadata.putSecret('TOKEN', 't');
        await metadata.deployVersion(newVersion('alpha', 'h1'));
        await metadata.deployVersion({
          ...newVersion('alpha', 'h2', { config: functionConfig({ secrets: { T: 'TOKEN' } }) }),
          promote: false,
        });
        assert.deepEqual(await usersOf(metadata, 'TOKEN'), [], 'no alias names version 2');
        assert.equal(await metadata.deleteSecret('TOKEN'), true);

        await assertRejectsWith(
          traffic.putAlias('alpha', 'beta', input([{ version: 2, weight: 1 }])),
          'INVALID_CONFIG',
          /version 2 of function alpha.*TOKEN/,
        );
        await assertRejectsWith(traffic.startRollout(newRollout('alpha', 2)), 'INVALID_CONFIG', /TOKEN/);
        assert.equal(await traffic.getAlias('alpha', 'beta'), null);
        assert.deepEqual(await traffic.listRollouts('alpha'), []);

        await metadata.putSecret('TOKEN', 't2');
        await traffic.putAlias('alpha', 'beta', input([{ version: 2, weight: 1 }]));
        assert.deepEqual(await usersOf(metadata, 'TOKEN'), ['alpha']);
        await assertRejectsWith(metadata.deleteSecret('TOKEN'), 'CONFLICT', /alpha/);

        // A rollout's canary counts too, while it has traffic.
        await traffic.putAlias('alpha', 'beta', input([{ version: 1, weight: 1 }]));
        assert.deepEqual(await usersOf(metadata, 'TOKEN'), []);
        const rollout = await traffic.startRollout(newRollout('alpha', 2));
        assert.deepEqual(await usersOf(metadata, 'TOKEN'), ['alpha']);
        await assertRejectsWith(metadata.deleteSecret('TOKEN'), 'CONFLICT', /alpha/);
        await traffic.updateRollout('alpha', rollout.id, rollout.revision, {
          state: 'aborted',
          stepIndex: 0,
          stepStartedAt: rollout.stepStartedAt,
          events: [event('aborted', 10, 'by hand')],
          weights: [{ version: 1, weight: 1 }],
        });
        assert.deepEqual(await usersOf(metadata, 'TOKEN'), []);
        assert.equal(await metadata.deleteSecret('TOKEN'), true);
      });
    });

    it("a running rollout holds its baseline's secrets while a 100% step leaves it out: abort always works", async () => {
      await withStores(async ({ metadata, traffic }) => {
        await metadata.putSecret('OLD_TOKEN', 't');
        await metadata.deployVersion(
          newVersion('alpha', 'h1', { config: functionConfig({ secrets: { T: 'OLD_TOKEN' } }) }),
        );
        await metadata.deployVersion({ ...newVersion('alpha', 'h2'), promote: false });
        const rollout = await traffic.startRollout(newRollout('alpha', 2, { ...defaultRolloutSettings, steps: [100] }));
        assert.deepEqual(await weightsOf(traffic, 'alpha', 'live'), [{ version: 2, weight: 1 }]);
        assert.deepEqual(await usersOf(metadata, 'OLD_TOKEN'), ['alpha']);
        await assertRejectsWith(metadata.deleteSecret('OLD_TOKEN'), 'CONFLICT', /alpha/);

        const aborted = await traffic.updateRollout('alpha', rollout.id, rollout.revision, {
          state: 'aborted',
          stepIndex: 0,
          stepStartedAt: rollout.stepStartedAt,
          events: [event('aborted', 100, 'by hand')],
          weights: [{ version: 1, weight: 1 }],
        });
        assert.equal(aborted.applied, true);
        assert.equal((await metadata.getFunction('alpha'))?.currentVersion, 1);
      });
    });

    it('an alias naming a version with a secret and a delete of that secret never both succeed', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await metadata.deployVersion(newVersion('alpha', 'h0'));
        for (let round = 0; round < 8; round++) {
          const secret = `RACE_${round}`;
          await metadata.putSecret(secret, 'v');
          const { version } = await metadata.deployVersion({
            ...newVersion('alpha', `h${round + 1}`, { config: functionConfig({ secrets: { V: secret } }) }),
            promote: false,
          });
          const [aliased, deleted] = await Promise.allSettled([
            traffic.putAlias('alpha', 'beta', input([{ version: version.version, weight: 1 }])),
            metadata.deleteSecret(secret),
          ]);
          if (aliased.status === 'fulfilled') {
            assert.ok(deleted.status === 'rejected' && isPlatformError(deleted.reason, 'CONFLICT'), `round ${round}`);
            assert.equal((await metadata.secretValues([secret])).size, 1);
          } else {
            assert.ok(isPlatformError(aliased.reason, 'INVALID_CONFIG'), `round ${round}: ${String(aliased.reason)}`);
            assert.ok(deleted.status === 'fulfilled' && deleted.value, `round ${round}`);
          }
          // Whatever happened, every version an alias names has its secrets.
          for (const alias of await traffic.listAliases('alpha')) {
            for (const { version: v } of alias.weights) {
              const names = Object.values((await metadata.getVersion('alpha', v))!.config.secrets);
              assert.equal((await metadata.secretValues(names)).size, new Set(names).size, `round ${round}`);
            }
          }
          await traffic.putAlias('alpha', 'beta', input([{ version: 1, weight: 1 }]));
        }
      });
    });

    it('rejects use after the metadata store is closed with UNAVAILABLE', async () => {
      await withStores(async ({ metadata, traffic }) => {
        await deployVersions(metadata, 'alpha', 1);
        await metadata.close();
        const calls: [string, () => Promise<unknown>][] = [
          ['getAlias', () => traffic.getAlias('alpha', 'live')],
          ['listAliases', () => traffic.listAliases('alpha')],
          ['putAlias', () => traffic.putAlias('alpha', 'beta', input([{ version: 1, weight: 1 }]))],
          ['deleteAlias', () => traffic.deleteAlias('alpha', 'beta')],
          ['startRollout', () => traffic.startRollout(newRollout('alpha', 1))],
          ['getRollout', () => traffic.getRollout('alpha', 'x')],
          ['listRollouts', () => traffic.listRollouts('alpha')],
          ['runningRollouts', () => traffic.runningRollouts()],
          ['versionFigures', () => traffic.versionFigures('alpha', new Date())],
          ['servedVersions', () => traffic.servedVersions(new Date())],
        ];
        for (const [method, call] of calls) await assertRejectsWith(call(), 'UNAVAILABLE', undefined, method);
      });
    });
  });
}

function input(weights: VersionWeight[], stickyHeader: string | null = null): AliasInput {
  return { weights, stickyHeader };
}

function newRollout(
  functionName: string,
  version: number,
  settings: RolloutSettings = defaultRolloutSettings,
): NewRollout {
  return { functionName, alias: 'live', version, settings: { ...settings, steps: [...settings.steps] } };
}

function event(decision: RolloutEvent['decision'], step: number, reason: string): RolloutEvent {
  return {
    at: new Date(1_700_000_000_123),
    step,
    canary: { requests: 120, errors: 1, p99Ms: 12.5 },
    baseline: { requests: 1080, errors: 3, p99Ms: null },
    decision,
    reason,
  };
}

async function weightsOf(traffic: TrafficStore, functionName: string, alias: string): Promise<VersionWeight[]> {
  const found = await traffic.getAlias(functionName, alias);
  assert.ok(found !== null, `alias ${alias} of ${functionName} exists`);
  return found.weights;
}

async function usersOf(metadata: MetadataStore, secret: string): Promise<string[] | undefined> {
  return (await metadata.listSecrets()).find((listed) => listed.name === secret)?.usedBy;
}

/** Deploys `count` versions of a function (the last one live); returns the function. */
async function deployVersions(metadata: MetadataStore, name: string, count: number) {
  let deployed = await metadata.deployVersion(newVersion(name, 'h1'));
  for (let i = 2; i <= count; i++) deployed = await metadata.deployVersion(newVersion(name, `h${i}`));
  return deployed.function;
}

// The gateway's FunctionResolver over a real SQLite metadata and traffic store: qualifiers, weights, sticky headers,
// its cache, and what invalidates it.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { SqlTrafficStore } from '../../src/adapters/sql/sql-traffic-store.js';
import type { SqlMetadataStore } from '../../src/adapters/sql/sql-metadata-store.js';
import { openSqliteMetadataStore } from '../../src/adapters/sqlite/sqlite-metadata-store.js';
import { isPlatformError } from '../../src/core/errors.js';
import { compileFunctionConfig } from '../../src/core/function-config.js';
import type { TrafficStore } from '../../src/core/ports/traffic-store.js';
import { FunctionResolver } from '../../src/gateway/function-resolver.js';

describe('FunctionResolver', () => {
  let metadata: SqlMetadataStore;
  let traffic: TrafficStore;

  before(async () => {
    metadata = await openSqliteMetadataStore(':memory:');
    traffic = new SqlTrafficStore(metadata.shared());
    for (const [name, count] of [
      ['shop', 3],
      ['cached', 2],
      ['racing', 2],
    ] as const) {
      for (let v = 1; v <= count; v++) {
        await metadata.deployVersion({
          functionName: name,
          codeSha256: `${name}${v}`.padEnd(64, '0'),
          codeSizeBytes: 1,
          contentHash: `${name}-${v}`,
          config: compileFunctionConfig({}),
          promote: v === 1,
        });
      }
    }
  });
  after(async () => {
    await metadata.close();
  });

  it('resolves live by default, a version by number and an alias by name', async () => {
    const resolver = new FunctionResolver(metadata, traffic);
    const live = await resolver.resolve('shop');
    assert.deepEqual([live.version.version, live.alias], [1, 'live']);
    const two = await resolver.resolve('shop', '2');
    assert.deepEqual([two.version.version, two.alias], [2, null]);
    await traffic.putAlias('shop', 'beta', { weights: [{ version: 3, weight: 1 }], stickyHeader: null });
    const beta = await resolver.resolve('shop', 'beta');
    assert.deepEqual([beta.version.version, beta.alias, beta.version.functionName], [3, 'beta', 'shop']);
  });

  it('refuses unknown functions, versions and aliases, and qualifiers that name neither', async () => {
    const resolver = new FunctionResolver(metadata, traffic);
    const fails = (code: 'NOT_FOUND' | 'BAD_REQUEST', message: RegExp) => (err: unknown) =>
      isPlatformError(err, code) && message.test(err.rawMessage);
    await assert.rejects(resolver.resolve('nope'), fails('NOT_FOUND', /^function nope not found$/));
    await assert.rejects(resolver.resolve('nope', '1'), fails('NOT_FOUND', /^function nope not found$/));
    await assert.rejects(resolver.resolve('shop', '9'), fails('NOT_FOUND', /^function shop has no version 9$/));
    await assert.rejects(
      resolver.resolve('shop', '99999999999999999999'),
      fails('NOT_FOUND', /has no version 99999999999999999999/),
    );
    await assert.rejects(resolver.resolve('shop', 'gamma'), fails('NOT_FOUND', /^function shop has no alias gamma$/));
    await assert.rejects(
      resolver.resolve('shop', 'Gamma'),
      fails('BAD_REQUEST', /neither a version number nor an alias/),
    );
  });

  it('splits by weight, and by the sticky header where the request has it', async () => {
    const resolver = new FunctionResolver(metadata, traffic);
    await traffic.putAlias('shop', 'split', {
      weights: [
        { version: 1, weight: 0.5 },
        { version: 2, weight: 0.5 },
      ],
      stickyHeader: 'x-user-id',
    });
    const asked: string[] = [];
    const header = (key: string | undefined) => (name: string) => {
      asked.push(name);
      return key;
    };
    const versions = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const key = `user-${i}`;
      const first = await resolver.resolve('shop', 'split', header(key));
      // Asked of another thread (a lane), the same answer.
      const again = await resolver.resolve('shop', 'split', (name) => Promise.resolve(header(key)(name)));
      assert.equal(again.version.version, first.version.version, key);
      versions.add(first.version.version);
    }
    assert.deepEqual([...versions].sort(), [1, 2]);
    assert.ok(asked.every((name) => name === 'x-user-id'));
    // Without the header (or with an empty one), at random: both versions over many invocations.
    const random = new Set<number>();
    for (let i = 0; i < 100; i++) random.add((await resolver.resolve('shop', 'split', header(''))).version.version);
    assert.deepEqual([...random].sort(), [1, 2]);
    // An alias of one version, or without a sticky header, never reads the request's headers.
    asked.length = 0;
    await resolver.resolve('shop', 'beta', header('u'));
    await resolver.resolve('shop', 'live', header('u'));
    assert.deepEqual(asked, []);
  });

  it('serves from its cache until it expires or is invalidated', async () => {
    const resolver = new FunctionResolver(metadata, traffic, 60_000);
    assert.equal((await resolver.resolve('cached')).version.version, 1);
    await traffic.putAlias('cached', 'live', { weights: [{ version: 2, weight: 1 }], stickyHeader: null });
    assert.equal((await resolver.resolve('cached')).version.version, 1, 'cached');
    resolver.invalidate('cached');
    assert.equal((await resolver.resolve('cached')).version.version, 2, 'read again');
    const short = new FunctionResolver(metadata, traffic, 0);
    assert.equal((await short.resolve('cached')).version.version, 2);
    await traffic.putAlias('cached', 'live', { weights: [{ version: 1, weight: 1 }], stickyHeader: null });
    assert.equal((await short.resolve('cached')).version.version, 1, 'expired at once');
  });

  it('does not cache what it read before an invalidation that came while it read', async () => {
    let release: (() => void) | undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    let hold = true;
    // The real store, with one read held until the test lets it go.
    const slow: TrafficStore = Object.create(traffic) as TrafficStore;
    slow.getAlias = async (name, alias) => {
      const read = await traffic.getAlias(name, alias);
      if (hold) {
        hold = false;
        await held;
      }
      return read;
    };
    const resolver = new FunctionResolver(metadata, slow, 60_000);
    const reading = resolver.resolve('racing');
    // Moved and invalidated while the first read (of version 1) is held.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await traffic.putAlias('racing', 'live', { weights: [{ version: 2, weight: 1 }], stickyHeader: null });
    resolver.invalidate('racing');
    release?.();
    assert.equal((await reading).version.version, 1, 'the read under way answers what it read');
    assert.equal((await resolver.resolve('racing')).version.version, 2, 'but did not stay in the cache');
    assert.equal(resolver.cacheSize().invalidations, 0, 'with no read under way, no invalidation is remembered');
  });

  it('remembers no invalidation when no read is under way: deleted functions leave nothing behind', async () => {
    const resolver = new FunctionResolver(metadata, traffic, 60_000);
    await resolver.resolve('shop');
    for (let i = 0; i < 1000; i++) resolver.invalidate(`deleted-${i}`);
    resolver.invalidate('shop');
    assert.deepEqual(resolver.cacheSize(), { targets: 0, invalidations: 0 });
  });

  it('caches a version once however its number is spelled: leading zeros are ignored', async () => {
    const resolver = new FunctionResolver(metadata, traffic, 60_000);
    for (const spelling of ['2', '02', '002', '0000000002']) {
      const two = await resolver.resolve('shop', spelling);
      assert.deepEqual([two.version.version, two.alias], [2, null], spelling);
    }
    assert.deepEqual(resolver.cacheSize(), { targets: 1, invalidations: 0 });
    await assert.rejects(
      resolver.resolve('shop', '000'),
      (err: unknown) => isPlatformError(err, 'NOT_FOUND') && /has no version 0$/.test(err.rawMessage),
    );
  });

  it('keeps no expired entry: each read sweeps what is older than its time to live', async () => {
    const resolver = new FunctionResolver(metadata, traffic, 0);
    for (const qualifier of ['1', '2', '3', 'live']) await resolver.resolve('shop', qualifier);
    await resolver.resolve('cached');
    assert.deepEqual(resolver.cacheSize(), { targets: 1, invalidations: 0 }, 'only the last read, expired already');
  });
});

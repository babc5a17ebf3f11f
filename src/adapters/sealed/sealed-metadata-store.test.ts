import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import BetterSqlite3 from 'better-sqlite3';
import { compileFunctionConfig } from '../../core/function-config.js';
import { isPlatformError } from '../../core/errors.js';
import { openSqliteMetadataStore } from '../sqlite/sqlite-metadata-store.js';
import { EnvSealer } from './env-sealer.js';
import { SealedMetadataStore } from './sealed-metadata-store.js';

const secret = 'hunter2-do-not-store-in-clear';

function newVersion(env: Record<string, string>, contentHash = 'b'.repeat(64)) {
  return {
    functionName: 'billing',
    codeSha256: 'a'.repeat(64),
    codeSizeBytes: 10,
    contentHash,
    config: compileFunctionConfig({ env }),
  };
}

/** Every byte SQLite holds for a database: the file, its WAL and the record journal beside it. */
async function storedBytes(dir: string): Promise<string> {
  const files = await readdir(dir);
  const contents = await Promise.all(files.map((file) => readFile(join(dir, file))));
  return Buffer.concat(contents).toString('latin1');
}

describe('SealedMetadataStore', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'savassan-sealed-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps environments out of the database in clear and gives them back whole', async () => {
    const path = join(dir, 'clear.db');
    const sealer = await EnvSealer.fromKeyFile(join(dir, 'secret.key'));
    const store = new SealedMetadataStore(await openSqliteMetadataStore(path), sealer);
    const deployed = await store.deployVersion(newVersion({ API_TOKEN: secret, REGION: 'eu' }));
    assert.deepEqual(deployed.version.config.env, { API_TOKEN: secret, REGION: 'eu' });
    assert.deepEqual((await store.getVersion('billing', 1))?.config.env, { API_TOKEN: secret, REGION: 'eu' });
    assert.deepEqual((await store.listVersions('billing'))[0]?.config.env, { API_TOKEN: secret, REGION: 'eu' });
    // Same content again: the keyed hash still recognises it.
    const again = await store.deployVersion(newVersion({ REGION: 'eu', API_TOKEN: secret }));
    assert.equal(again.created, false);
    await store.close();
    const bytes = await storedBytes(dir);
    assert.ok(!bytes.includes(secret), 'the secret is not in the database files');
    assert.equal((await stat(join(dir, 'secret.key'))).mode & 0o777, 0o600);
  });

  it('reads environments stored before sealing, and refuses another key with a clear error', async () => {
    const path = join(dir, 'legacy.db');
    const plain = await openSqliteMetadataStore(path);
    await plain.deployVersion(newVersion({ OLD: 'value' }));
    await plain.close();
    const sealed = new SealedMetadataStore(await openSqliteMetadataStore(path), EnvSealer.fromSecret('token-a'));
    assert.deepEqual((await sealed.getVersion('billing', 1))?.config.env, { OLD: 'value' });
    await sealed.deployVersion(newVersion({ NEW: secret }, 'c'.repeat(64)));
    await sealed.close();

    const db = new BetterSqlite3(path, { readonly: true });
    const rows = db.prepare('SELECT config FROM function_versions ORDER BY version').all() as { config: string }[];
    db.close();
    assert.equal(rows.length, 2);
    assert.ok(!rows[1]!.config.includes(secret));

    const wrongKey = new SealedMetadataStore(await openSqliteMetadataStore(path), EnvSealer.fromSecret('token-b'));
    await assert.rejects(wrongKey.getVersion('billing', 2), (err: unknown) => {
      assert.ok(isPlatformError(err));
      assert.equal(err.code, 'UNAVAILABLE');
      assert.match(err.message, /cannot be decrypted/);
      assert.ok(!err.message.includes(secret));
      return true;
    });
    await wrongKey.close();
  });

  it('hashes with its key: equal texts alike, other keys differently', () => {
    const a = EnvSealer.fromSecret('token-a');
    assert.equal(a.keyedHash('{"K":"v"}'), a.keyedHash('{"K":"v"}'));
    assert.notEqual(a.keyedHash('{"K":"v"}'), EnvSealer.fromSecret('token-b').keyedHash('{"K":"v"}'));
  });

  it('makes one whole key when several starts race for it, and leaves no temporary file', async () => {
    const keyDir = join(dir, 'race');
    const sealers = await Promise.all(Array.from({ length: 8 }, () => EnvSealer.fromKeyFile(join(keyDir, 'k'))));
    const sealed = sealers[0]!.seal('alpha', 'x');
    for (const sealer of sealers) assert.equal(sealer.open('alpha', sealed), 'x');
    assert.deepEqual(await readdir(keyDir), ['k']);
  });

  it('keeps secret values out of the database in clear, each bound to its name', async () => {
    const path = join(dir, 'secrets', 'secrets.db');
    const sealer = EnvSealer.fromSecret('token');
    const store = new SealedMetadataStore(await openSqliteMetadataStore(path), sealer);
    await store.putSecret('STRIPE_KEY', secret);
    await store.putSecret('OTHER', 'other-value');
    assert.deepEqual([...(await store.secretValues(['STRIPE_KEY']))], [['STRIPE_KEY', secret]]);
    await assert.rejects(store.putSecret('TOO_BIG', 'x'.repeat(4097)), /BAD_REQUEST.*4096-byte limit/);
    await store.close();
    const db = new BetterSqlite3(path);
    const rows = db.prepare('SELECT name, value FROM secrets ORDER BY name').all() as { name: string; value: string }[];
    assert.ok(rows.every((row) => EnvSealer.isSealed(row.value) && !row.value.includes(secret)));
    // Another secret's sealed value copied into this row does not open.
    db.prepare(
      "UPDATE secrets SET value = (SELECT value FROM secrets WHERE name = 'OTHER') WHERE name = 'STRIPE_KEY'",
    ).run();
    db.close();
    assert.ok(!(await storedBytes(join(dir, 'secrets'))).includes(secret), 'the value is in no database file');
    const reopened = new SealedMetadataStore(await openSqliteMetadataStore(path), sealer);
    try {
      await assert.rejects(reopened.secretValues(['STRIPE_KEY']), /UNAVAILABLE.*secret STRIPE_KEY cannot be decrypted/);
      assert.equal((await reopened.secretValues(['OTHER'])).get('OTHER'), 'other-value');
    } finally {
      await reopened.close();
    }
  });

  it('takes a key as 64 hex digits or base64, and refuses anything else without quoting it', () => {
    const key = Buffer.alloc(32, 7);
    const sealed = EnvSealer.fromKey(key).sealSecret('S', 'v');
    assert.equal(EnvSealer.fromKeyText(key.toString('hex')).openSecret('S', sealed), 'v');
    assert.equal(EnvSealer.fromKeyText(`${key.toString('base64')}\n`).openSecret('S', sealed), 'v');
    assert.equal(EnvSealer.fromKeyText(key.toString('base64url')).openSecret('S', sealed), 'v');
    for (const bad of ['', 'short-key-material', 'ab'.repeat(31), Buffer.alloc(31).toString('base64')]) {
      assert.throws(
        () => EnvSealer.fromKeyText(bad),
        (err: unknown) => isPlatformError(err, 'INVALID_CONFIG') && (bad === '' || !err.message.includes(bad)),
      );
    }
  });

  it('binds a sealed value to its function', () => {
    const sealer = EnvSealer.fromSecret('token');
    const sealed = sealer.seal('alpha', '{"K":"v"}');
    assert.equal(sealer.open('alpha', sealed), '{"K":"v"}');
    assert.throws(() => sealer.open('beta', sealed), /cannot be decrypted/);
  });
});

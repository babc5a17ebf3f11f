import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { zipSync } from 'fflate';
import { isPlatformError } from '../core/errors.js';
import { extractBundle } from './code-bundle.js';

const text = (value: string): Uint8Array => Buffer.from(value);

function invalidBundle(message: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(isPlatformError(err, 'INVALID_BUNDLE'), String(err));
    assert.match(err.message, message);
    return true;
  };
}

describe('extractBundle', () => {
  let root: string;
  let n = 0;
  const dest = (): string => join(root, 'code', `bundle-${++n}`);

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'sv-bundle-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('extracts files and directories, and treats an existing destination as a cache hit', async () => {
    const zip = zipSync({
      'index.js': text('exports.handler = 1;'),
      'lib/': new Uint8Array(0),
      'node_modules/dep/index.js': text('module.exports = 2;'),
      'empty-dir/': new Uint8Array(0),
    });
    const target = dest();
    assert.equal(await extractBundle(zip, target), true);
    assert.equal(await readFile(join(target, 'index.js'), 'utf8'), 'exports.handler = 1;');
    assert.equal(await readFile(join(target, 'node_modules/dep/index.js'), 'utf8'), 'module.exports = 2;');
    assert.ok((await stat(join(target, 'empty-dir'))).isDirectory());
    assert.equal(await extractBundle(zipSync({ 'other.js': text('') }), target), false);
    assert.deepEqual((await readdir(target)).sort(), ['empty-dir', 'index.js', 'lib', 'node_modules', 'package.json']);
  });

  it("marks a bundle without package.json as CommonJS, and leaves the bundle's own package.json alone", async () => {
    const plain = dest();
    await extractBundle(zipSync({ 'index.js': text('exports.handler = 1;') }), plain);
    assert.deepEqual(JSON.parse(await readFile(join(plain, 'package.json'), 'utf8')), { type: 'commonjs' });
    const own = dest();
    await extractBundle(
      zipSync({ 'index.js': text('export const handler = 1;'), 'package.json': text('{"type":"module"}') }),
      own,
    );
    assert.equal(await readFile(join(own, 'package.json'), 'utf8'), '{"type":"module"}');
  });

  it('lets concurrent extractions of one bundle race safely', async () => {
    const zip = zipSync({ 'index.js': text('x') });
    const target = dest();
    const results = await Promise.all([1, 2, 3, 4].map(() => extractBundle(zip, target)));
    assert.ok(results.filter(Boolean).length >= 1);
    assert.equal(await readFile(join(target, 'index.js'), 'utf8'), 'x');
    assert.deepEqual(
      (await readdir(join(root, 'code'))).filter((name) => name.startsWith('.')),
      [],
      'temporary directories are cleaned up',
    );
  });

  it('rejects data that is not a zip, and an empty zip', async () => {
    await assert.rejects(extractBundle(text('definitely not a zip'), dest()), invalidBundle(/not a valid zip archive/));
    await assert.rejects(extractBundle(new Uint8Array(0), dest()), invalidBundle(/not a valid zip archive/));
    await assert.rejects(extractBundle(zipSync({}), dest()), invalidBundle(/contains no files/));
    await assert.rejects(extractBundle(zipSync({ 'only-dir/': new Uint8Array(0) }), dest()), invalidBundle(/no files/));
  });

  it('rejects zip-slip paths', async () => {
    const cases: [string, RegExp][] = [
      ['../evil.js', /escapes the bundle/],
      ['a/../../evil.js', /escapes the bundle/],
      ['/etc/evil.js', /absolute path/],
      ['C:/evil.js', /absolute path/],
      ['a\\..\\evil.js', /backslashes/],
    ];
    for (const [name, message] of cases) {
      const target = dest();
      await assert.rejects(
        extractBundle(zipSync({ [name]: text('x'), 'ok.js': text('y') }), target),
        invalidBundle(message),
      );
      await assert.rejects(stat(target), 'nothing is extracted');
    }
    await assert.rejects(readFile(join(root, 'evil.js')));
  });

  it('caps the entry count and the total uncompressed size before inflating', async () => {
    const many: Record<string, Uint8Array> = {};
    for (let i = 0; i < 11; i++) many[`f${i}.js`] = text('x');
    await assert.rejects(
      extractBundle(zipSync(many), dest(), { maxEntries: 10 }),
      invalidBundle(/more than 10 entries/),
    );

    // A small zip of a large, very compressible file: refused from its declared size.
    const bomb = zipSync({ 'big.bin': new Uint8Array(2 * 1024 * 1024) }, { level: 9 });
    assert.ok(bomb.length < 10_000);
    await assert.rejects(
      extractBundle(bomb, dest(), { maxUncompressedBytes: 1024 * 1024 }),
      invalidBundle(/uncompresses to more than 1048576 bytes/),
    );
  });

  it('rejects a path that is both a file and a directory', async () => {
    const zip = zipSync({ a: text('file'), 'a/b.js': text('nested') });
    const target = dest();
    await assert.rejects(extractBundle(zip, target), invalidBundle(/both a file and a directory/));
    await assert.rejects(stat(target));
  });

  it('refuses a name over 255 bytes with INVALID_BUNDLE naming the entry (truncated), never a host path', async () => {
    const long = `${'x'.repeat(300)}.js`;
    const target = dest();
    for (const name of [long, `lib/${long}`, `${'d'.repeat(256)}/index.js`]) {
      const zip = zipSync({ 'index.js': text('exports.handler = 1;'), [name]: text('1') });
      await assert.rejects(extractBundle(zip, target), (err: unknown) => {
        assert.ok(isPlatformError(err, 'INVALID_BUNDLE'), String(err));
        assert.match(err.message, /zip entry ".{100}…" has a file or directory name over 255 bytes/);
        assert.ok(!err.message.includes(root), err.message);
        return true;
      });
    }
    await assert.rejects(stat(target));
  });

  it('leaves nothing behind when a bundle is refused', async () => {
    const parent = join(root, 'refused');
    const zip = zipSync({ a: text('file'), 'a/b.js': text('nested') });
    await assert.rejects(extractBundle(zip, join(parent, 'bundle')), invalidBundle(/both a file and a directory/));
    assert.deepEqual(await readdir(parent), []);
  });

  it('inflates off the event loop: the loop keeps turning while a large bundle is unzipped', async () => {
    // 96 MiB of zeros, then an entry refused by name: the bundle is rejected after inflating the first entry and
    // before writing anything, so every turn counted happened during the stat and the unzip. Inflated on the
    // event loop, the loop turned only while the destination was stat'ed (a handful of turns).
    const zip = zipSync({ 'big.bin': new Uint8Array(96 * 1024 * 1024), '../escape.js': text('1') }, { level: 1 });
    let turns = 0;
    let done = false;
    const spin = (): void => {
      turns += 1;
      if (!done) setImmediate(spin);
    };
    setImmediate(spin);
    await assert.rejects(extractBundle(zip, dest()), invalidBundle(/escapes the bundle/));
    done = true;
    assert.ok(turns > 1000, `the event loop turned ${turns} times during the unzip`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compileIgnorePatterns } from './ignore-matcher.js';

/** Asserts which of `paths` (a trailing `/` marks a directory) the patterns leave out. */
function check(patterns: string, ignored: string[], kept: string[]): void {
  const matcher = compileIgnorePatterns(patterns);
  const ignores = (path: string) => matcher.ignores(path.replace(/\/$/, ''), path.endsWith('/'));
  for (const path of ignored) assert.equal(ignores(path), true, `${JSON.stringify(patterns)} should leave out ${path}`);
  for (const path of kept) assert.equal(ignores(path), false, `${JSON.stringify(patterns)} should keep ${path}`);
}

describe('compileIgnorePatterns', () => {
  it('skips blank lines and comments, and keeps everything without patterns', () => {
    check('\n# a comment\n   \n', [], ['index.js', '# a comment', 'a/b.js']);
    check('\\#hash\n', ['#hash'], ['hash']);
  });

  it('matches a name without a slash at any depth, * and ? within one segment', () => {
    check('*.log\n', ['debug.log', 'a/b/debug.log', 'logs.log/'], ['debug.log.txt', 'a.logx']);
    check('file?.txt\n', ['file1.txt', 'd/fileA.txt'], ['file10.txt', 'file/.txt']);
    check('src/*.js\n', ['src/a.js'], ['src/sub/a.js', 'x/src/a.js']);
  });

  it('anchors a pattern with a leading or middle slash at the function directory', () => {
    check('/build\n', ['build', 'build/', 'build/out.js'], ['src/build', 'src/build/out.js']);
    check('docs/api\n', ['docs/api', 'docs/api/x.md'], ['x/docs/api']);
  });

  it('matches directories only with a trailing slash, and everything inside them', () => {
    check('cache/\n', ['cache/', 'a/cache/', 'cache/x.bin', 'a/cache/b/c'], ['cache', 'a/cache']);
  });

  it('understands ** before, after and between directories', () => {
    check('**/fixtures\n', ['fixtures', 'a/fixtures', 'a/b/fixtures/x.json'], ['fixtures2']);
    check('test/**\n', ['test/a.js', 'test/b/c.js'], ['test/', 'test', 'src/test/a.js']);
    check('a/**/b.txt\n', ['a/b.txt', 'a/x/b.txt', 'a/x/y/b.txt'], ['b.txt', 'x/a/b.txt']);
  });

  it('brings back with ! what an earlier pattern left out, the last match deciding', () => {
    check('*.log\n!keep.log\n', ['a.log', 'x/a.log'], ['keep.log', 'x/keep.log']);
    check('*.log\n!keep.log\nkeep.log\n', ['keep.log'], []);
    check('test/**\n!test/fixture.json\n', ['test/a.js'], ['test/fixture.json']);
    check('\\!important\n', ['!important'], ['important']);
  });

  it('cannot bring back a file inside a directory that is left out', () => {
    check('secret/\n!secret/public.txt\n', ['secret/public.txt', 'secret/'], []);
  });

  it('reads character classes and escapes', () => {
    check('[ab].txt\n', ['a.txt', 'b.txt'], ['c.txt', 'ab.txt']);
    check('[!ab].txt\n', ['c.txt'], ['a.txt']);
    check('v[0-9].js\n', ['v1.js'], ['va.js']);
    check('a\\*b\n', ['a*b'], ['axb']);
    check('trailing\\ \n', ['trailing '], ['trailing']);
    check('spaces   \n', ['spaces'], []);
  });

  it('escapes regex characters in names', () => {
    check('a+b.(c)\n', ['a+b.(c)'], ['aab.(c)', 'a+bx(c)']);
  });
});

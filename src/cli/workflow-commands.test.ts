import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPlatformError } from '../core/errors.js';
import { executionKey, runInputs } from './workflow-commands.js';

describe('executionKey', () => {
  it('reads NAME in the default project and domain, or PROJECT/DOMAIN/NAME', () => {
    assert.deepEqual(executionKey('abc'), { project: 'savassan', domain: 'development', name: 'abc' });
    assert.deepEqual(executionKey('abc', { project: 'p', domain: 'd' }), { project: 'p', domain: 'd', name: 'abc' });
    assert.deepEqual(executionKey('p/d/abc', { project: 'x' }), { project: 'p', domain: 'd', name: 'abc' });
    for (const bad of ['', 'a/b', 'a//c', 'a/b/c/d']) {
      assert.throws(
        () => executionKey(bad),
        (err) => isPlatformError(err, 'BAD_REQUEST'),
        bad,
      );
    }
  });
});

describe('runInputs', () => {
  it('reads --input values as JSON where they are JSON, else as strings, over --inputs', () => {
    assert.deepEqual(runInputs(undefined, ['n=3', 'flag=true', 'xs=[1,2]', 'name=Ada', 's="3"', 'eq=a=b', 'empty=']), {
      n: 3,
      flag: true,
      xs: [1, 2],
      name: 'Ada',
      s: '3',
      eq: 'a=b',
      empty: '',
    });
    assert.deepEqual(runInputs('{"n": 1, "m": 2}', ['n=5']), { n: 5, m: 2 });
  });

  it('refuses what is not an input', () => {
    const cases: [string | undefined, string[], RegExp][] = [
      ['{', [], /--inputs is not JSON/],
      ['[1]', [], /JSON object/],
      [undefined, ['=3'], /NAME=VALUE/],
      [undefined, ['novalue'], /NAME=VALUE/],
      ['{"literals": {}}', ['n=1'], /literal map/],
    ];
    for (const [inputs, pairs, message] of cases) {
      assert.throws(
        () => runInputs(inputs, pairs),
        (err) => isPlatformError(err, 'BAD_REQUEST') && message.test(err.message),
      );
    }
  });
});

import assert from 'node:assert/strict';
import { it } from 'node:test';
import { isValidBlobKey, maxBlobKeyLength, parseBlobPrefix, validateBlobKey } from './blob-keys.js';

it('isValidBlobKey agrees with validateBlobKey', () => {
  const keys = [
    'code/abc.zip',
    'logs/fn-a/2024-01-01/inv@1=x.log',
    'x'.repeat(maxBlobKeyLength),
    'x'.repeat(maxBlobKeyLength + 1),
    '',
    '/abs',
    'a//b',
    'a/',
    '..',
    'a/./b',
    'a b',
    '~tmp',
    'ü',
  ];
  for (const key of keys) {
    let valid = true;
    try {
      validateBlobKey(key);
    } catch {
      valid = false;
    }
    assert.equal(isValidBlobKey(key), valid, JSON.stringify(key.slice(0, 20)));
  }
});

it('splits a prefix into whole segments and a partial one', () => {
  assert.deepEqual(parseBlobPrefix(''), { dirSegments: [], partial: '' });
  assert.deepEqual(parseBlobPrefix('logs/fn-a/'), { dirSegments: ['logs', 'fn-a'], partial: '' });
  assert.deepEqual(parseBlobPrefix('logs/fn-a'), { dirSegments: ['logs'], partial: 'fn-a' });
  assert.throws(() => parseBlobPrefix('a//'), /BAD_REQUEST/);
  assert.throws(() => parseBlobPrefix('../'), /BAD_REQUEST/);
});

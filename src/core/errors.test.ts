import assert from 'node:assert/strict';
import { it } from 'node:test';
import { PlatformError, errorCodes, isPlatformError } from './errors.js';

it('every error code has a status, a description, and is documented in the README', async () => {
  const { readFile } = await import('node:fs/promises');
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const missing: string[] = [];
  for (const [code, entry] of Object.entries(errorCodes)) {
    assert.match(code, /^[A-Z][A-Z_]+$/);
    assert.ok(entry.status >= 400 && entry.status < 600, code);
    assert.ok(entry.description.length > 10, code);
    if (!new RegExp(`\\|\\s*\`${code}\`\\s*\\|\\s*${entry.status}\\s*\\|`).test(readme)) missing.push(code);
  }
  assert.deepEqual(missing, [], 'codes missing from the README');
  assert.equal(new Set(Object.keys(errorCodes)).size, Object.keys(errorCodes).length);
});

it('prefixes the message with the code and keeps the cause', () => {
  const cause = new Error('disk full');
  const err = new PlatformError('UNAVAILABLE', 'store down', { cause, details: { retryAfterSeconds: 2 } });
  assert.equal(err.message, '[UNAVAILABLE] store down');
  assert.equal(err.rawMessage, 'store down');
  assert.equal(err.status, 503);
  assert.equal(err.cause, cause);
  assert.equal(err.isUserError, false);
  assert.ok(isPlatformError(err, 'UNAVAILABLE'));
  assert.ok(!isPlatformError(err, 'INTERNAL'));
});

it('normalises unknown values at boundaries', () => {
  assert.equal(PlatformError.from('boom').code, 'INTERNAL');
  assert.equal(PlatformError.from(new Error('x'), 'UNAVAILABLE').rawMessage, 'x');
  const original = new PlatformError('NOT_FOUND', 'gone');
  assert.equal(PlatformError.from(original), original);
  assert.equal(new PlatformError('TOO_MANY_REQUESTS', 'x').isUserError, true);
});

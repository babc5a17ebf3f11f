import assert from 'node:assert/strict';
import { isPlatformError } from '../../src/core/errors.js';
import type { ErrorCode } from '../../src/core/errors.js';

/**
 * Asserts that `promise` rejects with a PlatformError of `code` whose message matches `message` (when given); `what`
 * names the call in the failure.
 */
export async function assertRejectsWith(
  promise: Promise<unknown>,
  code: ErrorCode,
  message?: RegExp,
  what = 'the call',
): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(isPlatformError(err), `${what}: expected a PlatformError, got ${String(err)}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    if (message !== undefined) assert.match(err.message, message, what);
    return true;
  });
}

import { PlatformError } from './errors.js';

/** The longest blob key, in characters (keys are ASCII, so also in bytes: S3's own limit). */
export const maxBlobKeyLength = 1024;

/** One key segment. `~` is deliberately absent: the fs adapter's temporary files use it, so they can never be keys. */
const segmentPattern = /^[A-Za-z0-9._@=-]+$/;
const partialSegmentPattern = /^[A-Za-z0-9._@=-]*$/;

/**
 * Check a blob key and return it; throws BAD_REQUEST saying what is wrong with it. A key is relative,
 * `/`-separated, made of segments of `[A-Za-z0-9._@=-]` that are neither `.` nor `..`, at most 1024 characters.
 *
 * @example
 * validateBlobKey('code/3f2a….zip'); // 'code/3f2a….zip'
 * validateBlobKey('../etc/passwd'); // throws [BAD_REQUEST] invalid blob key "../etc/passwd": …
 */
export function validateBlobKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0) throw badKey(key, 'it is empty');
  if (key.length > maxBlobKeyLength) throw badKey(key, `it is longer than ${maxBlobKeyLength} characters`);
  if (key.startsWith('/')) throw badKey(key, 'it must be relative, not start with "/"');
  for (const segment of key.split('/')) {
    if (segment.length === 0) throw badKey(key, 'it has an empty segment ("//" or a trailing "/")');
    if (!isValidBlobKeySegment(segment)) {
      throw badKey(key, 'segments may only use letters, digits and ._@=- and may not be "." or ".."');
    }
  }
  return key;
}

/** True when `key` passes `validateBlobKey`; for filtering what a listing of the backend returns. */
export function isValidBlobKey(key: string): boolean {
  return key.length > 0 && key.length <= maxBlobKeyLength && key.split('/').every(isValidBlobKeySegment);
}

/** True for one valid segment of a key (the text between two `/`). */
export function isValidBlobKeySegment(segment: string): boolean {
  return segmentPattern.test(segment) && segment !== '.' && segment !== '..';
}

/** A list prefix split into whole directory segments and the partial last segment (`a/b/c` → `[a, b]`, `c`). */
export interface BlobPrefix {
  dirSegments: string[];
  partial: string;
}

/**
 * Check a list prefix: any beginning of a valid key, `''` included (`logs/fn-a/`, `logs/fn-a`). Throws BAD_REQUEST.
 */
export function parseBlobPrefix(prefix: unknown): BlobPrefix {
  if (typeof prefix !== 'string') throw badKey(prefix, 'a prefix must be a string');
  if (prefix.length > maxBlobKeyLength) throw badKey(prefix, `it is longer than ${maxBlobKeyLength} characters`);
  if (prefix.startsWith('/')) throw badKey(prefix, 'it must be relative, not start with "/"');
  const dirSegments = prefix.split('/');
  const partial = dirSegments.pop() ?? '';
  if (!dirSegments.every(isValidBlobKeySegment) || !partialSegmentPattern.test(partial)) {
    throw badKey(prefix, 'segments may only use letters, digits and ._@=- and may not be empty, "." or ".."');
  }
  return { dirSegments, partial };
}

function badKey(key: unknown, why: string): PlatformError {
  const shown = typeof key === 'string' && key.length > 80 ? `${key.slice(0, 80)}…` : key;
  return new PlatformError('BAD_REQUEST', `invalid blob key ${JSON.stringify(shown)}: ${why}`);
}

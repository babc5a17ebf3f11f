/**
 * Validating a function's code zip and inflating it: pure (fflate and the platform's errors only), so that it can
 * run in a worker thread (`bundle-unzip-worker.ts`) and be tested directly.
 */
import { posix } from 'node:path';
import { unzipSync } from 'fflate';
import { PlatformError } from '../core/errors.js';

export interface BundleLimits {
  /** Total uncompressed size of all entries (as declared by the zip, which also bounds what is inflated). */
  maxUncompressedBytes: number;
  maxEntries: number;
}

export const defaultBundleLimits: BundleLimits = {
  maxUncompressedBytes: 250 * 1024 * 1024,
  maxEntries: 20_000,
};

/** Longest file or directory name Linux file systems take (NAME_MAX), and longest entry path we accept. */
const maxSegmentBytes = 255;
const maxPathBytes = 1024;

/** One entry of a validated zip: its path split into safe segments; `data` is null for a directory. */
export interface UnzippedEntry {
  name: string;
  segments: string[];
  data: Uint8Array | null;
}

export function invalidBundle(message: string, cause?: unknown): PlatformError {
  return new PlatformError('INVALID_BUNDLE', message, cause === undefined ? {} : { cause });
}

/** An entry's name as error messages quote it: JSON, and at most 100 characters of it. */
export function entryLabel(name: string): string {
  return JSON.stringify(name.length > 100 ? `${name.slice(0, 100)}…` : name);
}

/** The entry's path split into segments, or an error for anything that could land outside the target directory. */
export function safeSegments(name: string): string[] {
  const label = entryLabel(name);
  if (name.includes('\0')) throw invalidBundle(`zip entry ${label} has a NUL byte in its name`);
  if (name.includes('\\')) throw invalidBundle(`zip entry ${label} uses backslashes; use "/" in zip paths`);
  if (posix.isAbsolute(name) || /^[A-Za-z]:/.test(name)) {
    throw invalidBundle(`zip entry ${label} has an absolute path`);
  }
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw invalidBundle(`zip entry ${label} escapes the bundle with ".."`);
  if (Buffer.byteLength(name) > maxPathBytes) {
    throw invalidBundle(`zip entry ${label} has a path over ${maxPathBytes} bytes`);
  }
  if (segments.some((segment) => Buffer.byteLength(segment) > maxSegmentBytes)) {
    throw invalidBundle(`zip entry ${label} has a file or directory name over ${maxSegmentBytes} bytes`);
  }
  return segments;
}

/**
 * Validate a zip (paths, entry count, total size) and inflate it. Synchronous and CPU-bound: the Agent runs it in a
 * worker thread (`unzipBundleOffThread` in code-bundle.ts). Throws PlatformError('INVALID_BUNDLE') for a bad zip.
 */
export function unzipBundle(zip: Uint8Array, limits: Partial<BundleLimits> = {}): UnzippedEntry[] {
  const { maxUncompressedBytes, maxEntries } = { ...defaultBundleLimits, ...limits };
  const entries: UnzippedEntry[] = [];
  let count = 0;
  let totalBytes = 0;
  let contents: Record<string, Uint8Array>;
  try {
    // The filter sees each entry's header before it is inflated: validate there, so a zip bomb is refused
    // before its data is decompressed (fflate never inflates past the declared size).
    contents = unzipSync(zip, {
      filter: (file) => {
        count += 1;
        if (count > maxEntries) throw invalidBundle(`the zip has more than ${maxEntries} entries`);
        totalBytes += file.originalSize;
        if (totalBytes > maxUncompressedBytes) {
          throw invalidBundle(`the zip uncompresses to more than ${maxUncompressedBytes} bytes`);
        }
        const isDir = file.name.endsWith('/');
        const segments = safeSegments(file.name);
        if (segments.length === 0 && !isDir) throw invalidBundle(`zip entry ${entryLabel(file.name)} has no file name`);
        if (isDir) entries.push({ name: file.name, segments, data: null });
        return !isDir;
      },
    });
  } catch (err) {
    if (err instanceof PlatformError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw invalidBundle(`not a valid zip archive: ${reason}`, err);
  }
  // The same name twice in one zip: the later entry wins, as with unzip(1) (fflate keeps the last one).
  for (const [name, data] of Object.entries(contents)) entries.push({ name, segments: safeSegments(name), data });
  if (!entries.some((entry) => entry.data !== null)) throw invalidBundle('the zip contains no files');
  return entries;
}

import { randomUUID } from 'node:crypto';
import { chmod, copyFile, link, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
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

function invalid(message: string, cause?: unknown): PlatformError {
  return new PlatformError('INVALID_BUNDLE', message, cause === undefined ? {} : { cause });
}

/** The entry's path split into segments, or an error for anything that could land outside the target directory. */
function safeSegments(name: string): string[] {
  if (name.includes('\0')) throw invalid(`zip entry ${JSON.stringify(name)} has a NUL byte in its name`);
  if (name.includes('\\')) throw invalid(`zip entry ${JSON.stringify(name)} uses backslashes; use "/" in zip paths`);
  if (posix.isAbsolute(name) || /^[A-Za-z]:/.test(name)) {
    throw invalid(`zip entry ${JSON.stringify(name)} has an absolute path`);
  }
  const segments = name.split('/').filter((segment) => segment !== '' && segment !== '.');
  if (segments.includes('..')) throw invalid(`zip entry ${JSON.stringify(name)} escapes the bundle with ".."`);
  return segments;
}

/** Whether a path exists; `extractBundle`'s cache check, exported so callers can skip fetching a bundle already extracted. */
export async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Extract a function's code zip into `destDir`. The zip is validated first (paths, entry count, total size) and
 * extracted into a temporary sibling directory that is renamed into place, so `destDir` either does not exist or
 * holds the complete bundle. An existing `destDir` is a cache hit: nothing is done.
 *
 * Resolves to true when this call extracted the bundle, false on a cache hit (or when a concurrent call won).
 * Throws PlatformError('INVALID_BUNDLE') for a bad zip.
 */
export async function extractBundle(
  zip: Uint8Array,
  destDir: string,
  limits: Partial<BundleLimits> = {},
): Promise<boolean> {
  if (await exists(destDir)) return false;
  const { maxUncompressedBytes, maxEntries } = { ...defaultBundleLimits, ...limits };

  const files: { segments: string[]; isDir: boolean }[] = [];
  let entries = 0;
  let totalBytes = 0;
  let contents: Record<string, Uint8Array>;
  try {
    // The filter sees each entry's header before it is inflated: validate there, so a zip bomb is refused
    // before its data is decompressed (fflate never inflates past the declared size).
    contents = unzipSync(zip, {
      filter: (file) => {
        entries += 1;
        if (entries > maxEntries) throw invalid(`the zip has more than ${maxEntries} entries`);
        totalBytes += file.originalSize;
        if (totalBytes > maxUncompressedBytes) {
          throw invalid(`the zip uncompresses to more than ${maxUncompressedBytes} bytes`);
        }
        const isDir = file.name.endsWith('/');
        const segments = safeSegments(file.name);
        if (segments.length === 0 && !isDir) throw invalid(`zip entry ${JSON.stringify(file.name)} has no file name`);
        files.push({ segments, isDir });
        return !isDir;
      },
    });
  } catch (err) {
    if (err instanceof PlatformError) throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw invalid(`not a valid zip archive: ${reason}`, err);
  }
  if (!files.some((file) => !file.isDir)) throw invalid('the zip contains no files');

  const parent = dirname(destDir);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `.extract-${randomUUID()}`);
  try {
    await mkdir(tmp, { mode: 0o755 });
    for (const [name, data] of Object.entries(contents)) {
      const target = join(tmp, ...safeSegments(name));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, data, { flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
        // The same name twice in one zip: the later entry wins, as with unzip(1).
        if (err.code !== 'EEXIST') throw err;
        await writeFile(target, data);
      });
    }
    for (const file of files.filter((entry) => entry.isDir)) {
      await mkdir(join(tmp, ...file.segments), { recursive: true });
    }
    // Node decides whether a `.js` file is CommonJS or ESM from the nearest package.json, searching parent
    // directories: without a boundary here, a bundle extracted under a project with "type": "module" (such as
    // Savassan's own data dir) would turn a Lambda-style CommonJS index.js into ESM. As on Lambda, a bundle
    // without a package.json is CommonJS.
    if (!(await exists(join(tmp, 'package.json')))) {
      await writeFile(join(tmp, 'package.json'), '{"type":"commonjs"}\n');
    }
    await makeWorldReadable(tmp);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    // A file and a directory of the same name: the zip is at fault. Anything else (disk full) is ours.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTDIR' && code !== 'EISDIR' && code !== 'EEXIST') throw err;
    const reason = err instanceof Error ? err.message : String(err);
    throw invalid(`the zip cannot be extracted, a path is both a file and a directory: ${reason}`, err);
  }
  try {
    await rename(tmp, destDir);
    return true;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    // Another extraction of the same bundle finished first; its copy is as good as ours.
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'EEXIST' || code === 'ENOTEMPTY') && (await exists(destDir))) return false;
    throw err;
  }
}

/** Every directory and file under `root` (not `root` itself), parents before children, as relative paths. */
async function walk(root: string): Promise<{ path: string; isDir: boolean }[]> {
  const entries = await readdir(root, { recursive: true, withFileTypes: true });
  return entries
    .map((entry) => ({ path: relative(root, join(entry.parentPath, entry.name)), isDir: entry.isDirectory() }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/**
 * Code is read by sandboxes running as unprivileged users of their own: directories 0755 and files 0644 (0755
 * when executable), whatever the umask was at extraction.
 */
async function makeWorldReadable(root: string): Promise<void> {
  await chmod(root, 0o755);
  for (const entry of await walk(root)) {
    const path = join(root, entry.path);
    const executable = !entry.isDir && ((await stat(path)).mode & 0o100) !== 0;
    await chmod(path, entry.isDir || executable ? 0o755 : 0o644);
  }
}

/**
 * Place extracted code into a sandbox's task directory (which exists and is empty) as hard links: a function
 * gets its code in a fraction of a millisecond whatever its size, and the cached copy stays shared and
 * read-only. Falls back to copying where the two are on different filesystems.
 */
export async function placeCode(codeDir: string, taskDir: string): Promise<void> {
  for (const entry of await walk(codeDir)) {
    const from = join(codeDir, entry.path);
    const to = join(taskDir, entry.path);
    if (entry.isDir) {
      await mkdir(to, { mode: 0o755 });
      await chmod(to, 0o755);
      continue;
    }
    try {
      await link(from, to);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await copyFile(from, to);
    }
  }
}

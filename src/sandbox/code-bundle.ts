import { randomUUID } from 'node:crypto';
import { chmod, copyFile, link, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { PlatformError } from '../core/errors.js';
import { startModuleWorker } from '../core/module-worker.js';
import type { BundleLimits, UnzippedEntry } from './bundle-unzip.js';
import { entryLabel, invalidBundle } from './bundle-unzip.js';
import type { UnzipReply } from './bundle-unzip-worker.js';

export type { BundleLimits } from './bundle-unzip.js';
export { defaultBundleLimits } from './bundle-unzip.js';

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
 * Validate and inflate a zip in a worker thread (`unzipBundle`): inflating a 240 MB bundle took the event loop
 * ~0.7 s when done in place. Same limits and errors as `unzipBundle`.
 */
export function unzipBundleOffThread(zip: Uint8Array, limits: Partial<BundleLimits> = {}): Promise<UnzippedEntry[]> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      fn();
    };
    let worker: Worker;
    try {
      worker = startModuleWorker(import.meta.url, 'bundle-unzip-worker', { workerData: { zip, limits } });
    } catch (err) {
      reject(new PlatformError('UNAVAILABLE', 'cannot start the bundle unzip worker', { cause: err }));
      return;
    }
    worker.once('message', (reply: UnzipReply) =>
      settle(() => {
        if (reply.ok) resolve(reply.entries);
        else if (reply.invalid) reject(invalidBundle(reply.message));
        else reject(new PlatformError('INTERNAL', `unzipping the bundle failed: ${reply.message}`));
      }),
    );
    worker.once('error', (err) =>
      settle(() => reject(new PlatformError('INTERNAL', 'the bundle unzip worker failed', { cause: err }))),
    );
    worker.once('exit', (code) =>
      settle(() => reject(new PlatformError('INTERNAL', `the bundle unzip worker exited (code ${code})`))),
    );
  });
}

/** File system errors that say the node cannot store anything right now; any other one is the zip's doing. */
const hostErrorCodes = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EROFS', 'EACCES', 'EPERM', 'ENOMEM']);

/**
 * A file system error while writing an entry, as the caller sees it: never the host path (the message of a Node
 * fs error names it). The zip's fault (a name the file system refuses, a path both a file and a directory) is
 * INVALID_BUNDLE naming the entry; the node's (disk full, I/O error) is UNAVAILABLE.
 */
function extractionError(err: unknown, entry: string): PlatformError {
  if (err instanceof PlatformError) return err;
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
  if (hostErrorCodes.has(code)) {
    return new PlatformError('UNAVAILABLE', `this node cannot store the code bundle right now (${code})`, {
      cause: err,
    });
  }
  const reason =
    code === 'ENAMETOOLONG'
      ? 'its name is too long for the file system'
      : code === 'ENOTDIR' || code === 'EISDIR' || code === 'EEXIST'
        ? 'a path in the zip is both a file and a directory'
        : `the file system refused it (${code})`;
  return invalidBundle(`zip entry ${entryLabel(entry)} cannot be extracted: ${reason}`, err);
}

/**
 * Extract a function's code zip into `destDir`. The zip is validated and inflated in a worker thread (paths, entry
 * count, total size) and written into a temporary sibling directory that is renamed into place, so `destDir`
 * either does not exist or holds the complete bundle. An existing `destDir` is a cache hit: nothing is done. On any
 * failure nothing is left behind.
 *
 * Resolves to true when this call extracted the bundle, false on a cache hit (or when a concurrent call won).
 * Throws PlatformError('INVALID_BUNDLE') for a bad zip, naming the entry and never a host path.
 */
export async function extractBundle(
  zip: Uint8Array,
  destDir: string,
  limits: Partial<BundleLimits> = {},
): Promise<boolean> {
  if (await exists(destDir)) return false;
  const entries = await unzipBundleOffThread(zip, limits);

  const parent = dirname(destDir);
  await mkdir(parent, { recursive: true });
  const tmp = join(parent, `.extract-${randomUUID()}`);
  let current = '';
  try {
    await mkdir(tmp, { mode: 0o755 });
    for (const entry of entries) {
      current = entry.name;
      const target = join(tmp, ...entry.segments);
      if (entry.data === null) {
        await mkdir(target, { recursive: true });
        continue;
      }
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, entry.data, { flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
        // The same path twice in one zip (`a/b` and `a/./b`): the later entry wins, as with unzip(1).
        if (err.code !== 'EEXIST') throw err;
        await writeFile(target, entry.data ?? new Uint8Array(0));
      });
    }
    current = 'package.json';
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
    throw extractionError(err, current);
  }
  try {
    await rename(tmp, destDir);
    return true;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    // Another extraction of the same bundle finished first; its copy is as good as ours.
    const code = (err as NodeJS.ErrnoException).code;
    if ((code === 'EEXIST' || code === 'ENOTEMPTY') && (await exists(destDir))) return false;
    throw new PlatformError('UNAVAILABLE', `cannot put the extracted code bundle in place (${code ?? 'error'})`, {
      cause: err,
    });
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

import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { dirname, join, resolve } from 'node:path';
import { isValidBlobKeySegment, parseBlobPrefix, validateBlobKey } from '../../core/blob-keys.js';
import { PlatformError } from '../../core/errors.js';
import { ExactLength } from '../../core/stream-length.js';
import type { BlobStore } from '../../core/ports/blob-store.js';

/**
 * A `BlobStore` on the local file system: key `a/b/c` is the file `{root}/a/b/c`. Directories are made on
 * demand. Writes are atomic (a temporary file in the target directory, fsynced, then renamed over the key),
 * so readers see the old or the new content, never a part. Keys must be relative, `/`-separated, made of
 * segments of `[A-Za-z0-9._@=-]`, at most 1024 characters; anything else is BAD_REQUEST.
 *
 * A key cannot be both a blob and a prefix of another blob's directory (`a` and `a/b`): that put is BAD_REQUEST.
 */
export class FsBlobStore implements BlobStore {
  readonly root: string;
  #closed = false;

  constructor(root: string) {
    this.root = resolve(root);
  }

  put(key: string, data: Uint8Array | string): Promise<void> {
    return this.#write(key, (handle) => handle.writeFile(data));
  }

  async putStream(key: string, body: Readable, length: number): Promise<void> {
    const checked = new ExactLength(length, `cannot store blob ${key}`);
    await this.#write(key, async (handle) => {
      body.once('error', (err) => checked.destroy(err));
      for await (const chunk of body.pipe(checked)) await handle.write(chunk as Buffer);
    });
  }

  async #write(key: string, fill: (handle: FileHandle) => Promise<void>): Promise<void> {
    this.#assertOpen('write');
    const path = this.#pathOf(key);
    const dir = dirname(path);
    const temp = join(dir, `~tmp-${randomUUID()}`);
    try {
      // Code and logs may hold secrets: readable by the platform's user only, whatever the umask.
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const handle = await open(temp, 'wx', 0o600);
      try {
        await fill(handle);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (err) {
      await unlink(temp).catch(() => undefined);
      if (err instanceof PlatformError) throw err;
      if (hasCode(err, 'ENOTDIR', 'EEXIST', 'EISDIR', 'ENAMETOOLONG')) {
        throw new PlatformError(
          'BAD_REQUEST',
          `cannot store blob ${key}: it conflicts with an existing key or its name is too long for the file system`,
          { cause: err },
        );
      }
      throw unavailable(`write blob ${key}`, err);
    }
    await syncDirectory(dir);
  }

  async get(key: string): Promise<Buffer | null> {
    this.#assertOpen('read');
    const path = this.#pathOf(key);
    try {
      return await readFile(path);
    } catch (err) {
      if (isMissing(err)) return null;
      throw unavailable(`read blob ${key}`, err);
    }
  }

  async getStream(key: string): Promise<Readable | null> {
    this.#assertOpen('read');
    const path = this.#pathOf(key);
    let handle: FileHandle;
    try {
      handle = await open(path, 'r');
      if ((await handle.stat()).isDirectory()) {
        await handle.close();
        return null; // a prefix, not a blob
      }
    } catch (err) {
      if (isMissing(err)) return null;
      throw unavailable(`read blob ${key}`, err);
    }
    return handle.createReadStream();
  }

  async exists(key: string): Promise<boolean> {
    this.#assertOpen('read');
    const path = this.#pathOf(key);
    try {
      return (await stat(path)).isFile();
    } catch (err) {
      if (isMissing(err)) return false;
      throw unavailable(`check blob ${key}`, err);
    }
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen('delete');
    const path = this.#pathOf(key);
    try {
      await unlink(path);
    } catch (err) {
      if (isMissing(err)) return;
      // unlink on a directory: EISDIR on Linux, EPERM on macOS. A directory is not a blob, so nothing to delete.
      if (hasCode(err, 'EPERM') && (await isDirectory(path))) return;
      throw unavailable(`delete blob ${key}`, err);
    }
  }

  async list(prefix: string): Promise<string[]> {
    this.#assertOpen('list');
    const { dirSegments, partial } = parseBlobPrefix(prefix);
    const keys: string[] = [];
    await this.#walk(dirSegments, partial, keys);
    return keys.filter((key) => key.startsWith(prefix)).sort();
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  async #walk(segments: string[], namePrefix: string, out: string[]): Promise<void> {
    let entries;
    try {
      entries = await readdir(join(this.root, ...segments), { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return; // no such prefix, or deleted while we walked
      throw unavailable(`list blobs under ${segments.join('/')}`, err);
    }
    for (const entry of entries) {
      if (!entry.name.startsWith(namePrefix) || !isValidBlobKeySegment(entry.name)) continue;
      const child = [...segments, entry.name];
      if (entry.isDirectory()) await this.#walk(child, '', out);
      else if (entry.isFile()) out.push(child.join('/'));
    }
  }

  #pathOf(key: string): string {
    return join(this.root, ...validateBlobKey(key).split('/'));
  }

  #assertOpen(action: string): void {
    if (this.#closed) throw new PlatformError('UNAVAILABLE', `cannot ${action}: the blob store is closed`);
  }
}

function hasCode(err: unknown, ...codes: string[]): boolean {
  return (
    typeof err === 'object' && err !== null && 'code' in err && typeof err.code === 'string' && codes.includes(err.code)
  );
}

/** Errors that mean "no blob at this path". */
function isMissing(err: unknown): boolean {
  return hasCode(err, 'ENOENT', 'ENOTDIR', 'EISDIR', 'ENAMETOOLONG');
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Make the rename itself durable. Best effort: some platforms (Windows) cannot open a directory. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch {
    // The file's own data is already synced; only the directory entry's durability is best effort.
  }
}

function unavailable(action: string, err: unknown): PlatformError {
  const message = err instanceof Error ? err.message : String(err);
  return new PlatformError('UNAVAILABLE', `cannot ${action}: ${message}`, { cause: err });
}

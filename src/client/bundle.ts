import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { zipSync } from 'fflate';
import type { Zippable } from 'fflate';
import { PlatformError } from '../core/errors.js';

const fixedMtime = new Date(1980, 0, 2);
const skipped = new Set(['.git', '.savassan', '.DS_Store']);

/**
 * Packs a function directory (its code and `node_modules`) into a zip, or reads a `.zip` as is.
 * Symbolic links are skipped: a bundle carries files only.
 */
export async function readBundle(path: string): Promise<Uint8Array> {
  let info;
  try {
    info = await stat(path);
  } catch {
    throw new PlatformError('BAD_REQUEST', `${path}: no such file or directory`);
  }
  if (info.isFile()) {
    if (!path.endsWith('.zip')) throw new PlatformError('BAD_REQUEST', `${path}: give a directory or a .zip file`);
    return readFile(path);
  }
  if (!info.isDirectory()) throw new PlatformError('BAD_REQUEST', `${path}: give a directory or a .zip file`);
  const files: Zippable = {};
  let count = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (skipped.has(entry.name)) continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        files[relative(path, full).split(sep).join('/')] = [await readFile(full), { mtime: fixedMtime }];
        count++;
      }
    }
  };
  await walk(path);
  if (count === 0) throw new PlatformError('BAD_REQUEST', `${path}: the directory holds no files`);
  // A fixed mtime keeps the zip (and so the content hash) identical for identical files.
  return zipSync(files, { level: 6 });
}

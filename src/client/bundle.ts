import { readFile, readdir, stat } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { zipSync } from 'fflate';
import type { Zippable } from 'fflate';
import { PlatformError } from '../core/errors.js';
import { compileIgnorePatterns } from './ignore-matcher.js';
import type { IgnoreMatcher } from './ignore-matcher.js';

const fixedMtime = new Date(1980, 0, 2);
const skipped = new Set(['.git', '.savassan', '.DS_Store']);
/** The patterns of what a bundle leaves out, in the function directory. */
export const ignoreFileName = '.savassanignore';
/** The deploy settings file in the function directory (see `deploy-config.ts`). */
export const configFileName = 'savassan.json';
/** Files of the function directory itself that configure the deploy rather than belong to the function. */
const deployFiles = new Set([ignoreFileName, configFileName]);

/**
 * Packs a function directory (its code and `node_modules`) into a zip, or reads a `.zip` as is.
 * Symbolic links are skipped: a bundle carries files only. Left out: `.git`, `.savassan` and `.DS_Store` anywhere,
 * `.savassanignore` and `savassan.json` at the top, and what `.savassanignore` names (gitignore-style patterns,
 * see `compileIgnorePatterns`).
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
  const ignore = await readIgnoreFile(path);
  const files: Zippable = {};
  let count = 0;
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      if (skipped.has(entry.name)) continue;
      const full = join(dir, entry.name);
      const name = relative(path, full).split(sep).join('/');
      if (deployFiles.has(name) || ignore?.ignores(name, entry.isDirectory()) === true) continue;
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        files[name] = [await readFile(full), { mtime: fixedMtime }];
        count++;
      }
    }
  };
  await walk(path);
  if (count === 0) {
    throw new PlatformError(
      'BAD_REQUEST',
      `${path}: the directory holds no files${ignore === null ? '' : ` that ${ignoreFileName} keeps`}`,
    );
  }
  // A fixed mtime keeps the zip (and so the content hash) identical for identical files.
  return zipSync(files, { level: 6 });
}

async function readIgnoreFile(dir: string): Promise<IgnoreMatcher | null> {
  let text: string;
  try {
    text = await readFile(join(dir, ignoreFileName), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new PlatformError('BAD_REQUEST', `cannot read ${join(dir, ignoreFileName)}: ${(err as Error).message}`);
  }
  return compileIgnorePatterns(text);
}

// A function bundle of an app file plus the npm packages it needs, copied from this repository's node_modules: each
// package and its dependencies, found by walking `package.json` dependencies the way Node resolves them.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { zipSync } from 'fflate';
import { repoRoot } from './server-process.js';

/** The directory `name` resolves to from package directory `from` (its node_modules, then its parents'); or null. */
function resolvePackage(name: string, from: string): string | null {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === repoRoot.replace(/\/$/, '') || dir === dirname(dir)) return null;
  }
}

/** Every package directory `names` need, from the repository's root: theirs and their dependencies', once each. */
function packageDirs(names: readonly string[]): Set<string> {
  const found = new Set<string>();
  const visit = (name: string, from: string): void => {
    const dir = resolvePackage(name, from);
    if (dir === null) throw new Error(`package ${name} is not installed (needed from ${from})`);
    if (found.has(dir)) return;
    found.add(dir);
    const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    for (const dependency of Object.keys(manifest.dependencies ?? {})) visit(dependency, dir);
  };
  for (const name of names) visit(name, repoRoot.replace(/\/$/, ''));
  return found;
}

/** The files of a package directory, without its own node_modules (those are packages of their own). */
function packageFiles(dir: string, files: Record<string, Uint8Array>): void {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules') continue;
    const path = join(dir, entry);
    const stats = statSync(path);
    if (stats.isDirectory()) packageFiles(path, files);
    else if (stats.isFile()) files[relative(repoRoot, path)] = readFileSync(path);
  }
}

/**
 * A zip of `files` (path → source) and the packages `packages` need under `node_modules/`, laid out as in this
 * repository, so `require('express')` in the app finds them.
 *
 * @example
 * const zip = bundleWithPackages({ 'index.js': source }, ['express', 'serverless-http']);
 */
export function bundleWithPackages(files: Record<string, string>, packages: readonly string[]): Uint8Array {
  const entries: Record<string, Uint8Array> = {};
  for (const dir of packageDirs(packages)) packageFiles(dir, entries);
  for (const [path, source] of Object.entries(files)) entries[path] = Buffer.from(source);
  return zipSync(entries);
}

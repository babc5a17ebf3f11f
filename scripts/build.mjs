#!/usr/bin/env node
// Compiles src/ into dist/ (tsc -p tsconfig.build.json) and, once tsc succeeds, writes dist/.build-stamp: the
// modification time of every input as it was when the compile started. Inputs are what the compile reads and
// depends on: src/**/*.ts except the tests, tsconfig*.json and package-lock.json (the TypeScript and @types versions).
// Then, where the project has the web/ workspace, builds the web console into web/dist (vite build) the same way,
// stamped in web/dist/.build-stamp; its inputs are web/ (but web/dist and web/node_modules) and package-lock.json.
//
// Usage: node scripts/build.mjs [--if-stale] [tsc options...]
//   --if-stale  compile only when an input was added, removed or changed since the stamp (`npm start`, `npm test`);
//               without it, always compile (`npm run build`).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const stampPath = join(root, 'dist', '.build-stamp');
const args = process.argv.slice(2);
const ifStale = args.includes('--if-stale');
const tscArgs = args.filter((arg) => arg !== '--if-stale');

/** Path (relative to the root, `/`-separated) → its modification time in ms, for each of `paths`. */
function timesOf(paths) {
  const times = {};
  for (const path of paths.sort()) times[relative(root, path).split('\\').join('/')] = statSync(path).mtimeMs;
  return times;
}

/** Input path (relative to the root, `/`-separated) → its modification time in ms. */
function inputTimes() {
  const paths = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) paths.push(path);
    }
  };
  walk(join(root, 'src'));
  for (const entry of readdirSync(root)) {
    if (/^tsconfig.*\.json$/.test(entry) || entry === 'package-lock.json') paths.push(join(root, entry));
  }
  return timesOf(paths);
}

/** Whether the output stamped at `stampFile` was built from exactly these inputs: same files, none modified since. */
function upToDate(times, stampFile = stampPath) {
  let stamp;
  try {
    stamp = JSON.parse(readFileSync(stampFile, 'utf8'));
  } catch {
    return false;
  }
  const built = stamp?.inputs ?? {};
  const names = Object.keys(times);
  return names.length === Object.keys(built).length && names.every((name) => built[name] === times[name]);
}

const times = inputTimes();
if (ifStale && upToDate(times)) {
  console.log('build: dist/ is up to date');
} else {
  // Gone before tsc writes anything, so an interrupted or failed compile leaves no stamp behind.
  rmSync(stampPath, { force: true });
  const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  const result = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json'), ...tscArgs], {
    cwd: root,
    stdio: 'inherit',
  });
  if (result.status !== 0) process.exit(result.status ?? 1);
  // The times read before the compile: a file edited while tsc ran no longer matches, so the next run compiles again.
  writeFileSync(stampPath, `${JSON.stringify({ inputs: times }, null, 2)}\n`);
}

const webDir = join(root, 'web');
const webStampPath = join(webDir, 'dist', '.build-stamp');

/** The web console's inputs: web/ but what the build writes and the installed packages, and package-lock.json. */
function webInputTimes() {
  const paths = [join(root, 'package-lock.json')];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (dir === webDir && (entry.name === 'dist' || entry.name === 'node_modules')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else paths.push(path);
    }
  };
  walk(webDir);
  return timesOf(paths.filter((path) => existsSync(path)));
}

if (existsSync(join(webDir, 'package.json'))) {
  const webTimes = webInputTimes();
  if (ifStale && upToDate(webTimes, webStampPath)) {
    console.log('build: web/dist is up to date');
  } else {
    rmSync(webStampPath, { force: true });
    const vite = join(
      dirname(createRequire(join(webDir, 'package.json')).resolve('vite/package.json')),
      'bin',
      'vite.js',
    );
    const result = spawnSync(process.execPath, [vite, 'build', '--logLevel', 'warn'], {
      cwd: webDir,
      stdio: 'inherit',
    });
    if (result.status !== 0) {
      console.error('build: the web console did not build (vite build in web/)');
      process.exit(result.status ?? 1);
    }
    writeFileSync(webStampPath, `${JSON.stringify({ inputs: webTimes }, null, 2)}\n`);
    console.log('build: web console built into web/dist');
  }
}

// Installed builds of this checkout for upgrade tests: a directory as an installation holds one (bin/, dist/,
// package.json, node_modules), marked with its own `build-id`, optionally speaking another control protocol.
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { repoRoot } from './server-process.js';

/**
 * Installs this checkout's compiled code (it must be built: dist/) into `dir` as build `buildId`: copies of bin/,
 * dist/ and package.json, node_modules (and web/dist, which the gateway serves as the console, when built) as
 * links. `protocol` makes it speak another control protocol (its compiled `controlProtocolVersion` replaced).
 * Resolves with `dir`.
 */
export async function installBuild(dir: string, buildId: string, options: { protocol?: number } = {}): Promise<string> {
  if (!existsSync(join(repoRoot, 'dist', 'cli', 'main.js'))) {
    throw new Error(`${repoRoot} is not built: run "node scripts/build.mjs" first`);
  }
  await mkdir(dir, { recursive: true });
  await cp(join(repoRoot, 'bin'), join(dir, 'bin'), { recursive: true });
  await cp(join(repoRoot, 'dist'), join(dir, 'dist'), { recursive: true });
  await cp(join(repoRoot, 'package.json'), join(dir, 'package.json'));
  await symlink(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  if (existsSync(join(repoRoot, 'web', 'dist'))) {
    await mkdir(join(dir, 'web'));
    await symlink(join(repoRoot, 'web', 'dist'), join(dir, 'web', 'dist'));
  }
  await writeFile(join(dir, 'build-id'), `${buildId}\n`);
  if (options.protocol !== undefined) {
    const file = join(dir, 'dist', 'core', 'build-info.js');
    const code = await readFile(file, 'utf8');
    const declaration = /\bcontrolProtocolVersion = \d+;/;
    if (!declaration.test(code)) throw new Error(`${file} declares no controlProtocolVersion`);
    const changed = code.replace(declaration, `controlProtocolVersion = ${options.protocol};`);
    await writeFile(file, changed);
  }
  return dir;
}

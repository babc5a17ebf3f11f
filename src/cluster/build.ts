import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { controlProtocolVersion, isBuildText, type BuildInfo } from '../core/build-info.js';
import { PlatformError } from '../core/errors.js';

/** The installation this code runs from: the package root above `src/cluster` or `dist/cluster` alike. */
export const ownInstallDir = fileURLToPath(new URL('../../', import.meta.url));

/**
 * What the installation in `installDir` is (default: the one this code runs from): the version of its
 * `package.json`, the build id in its `build-id` file (`dev` when there is none) and the control protocol this code
 * speaks. INVALID_CONFIG when the version or the build id is not a build text (`isBuildText`).
 *
 * @example
 * const build = await readBuildInfo(); // { version: '0.1.0', build: 'dev', protocol: 1 }
 */
export async function readBuildInfo(installDir: string = ownInstallDir): Promise<BuildInfo> {
  const manifestPath = join(installDir, 'package.json');
  let version: unknown;
  try {
    version = (JSON.parse(await readFile(manifestPath, 'utf8')) as { version?: unknown }).version;
  } catch (err) {
    throw new PlatformError('INVALID_CONFIG', `cannot read the version in ${manifestPath}: ${describe(err)}`, {
      cause: err,
    });
  }
  if (!isBuildText(version)) {
    throw new PlatformError('INVALID_CONFIG', `${manifestPath} has no valid version: ${JSON.stringify(version)}`);
  }
  const buildIdPath = join(installDir, 'build-id');
  let build: string;
  try {
    build = (await readFile(buildIdPath, 'utf8')).trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new PlatformError('INVALID_CONFIG', `cannot read ${buildIdPath}: ${describe(err)}`, { cause: err });
    }
    build = 'dev';
  }
  const shown = JSON.stringify(build.slice(0, 120));
  if (!isBuildText(build)) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `${buildIdPath} must hold 1 to 100 letters, digits and ._+- (starting with a letter or digit), got ${shown}`,
    );
  }
  return { version, build, protocol: controlProtocolVersion };
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

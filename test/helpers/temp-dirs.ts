import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/**
 * Temporary directories for one test file: `tempDir(prefix)` makes one under the system's temp directory,
 * `removeTempDir` removes it, and whatever a failed test left behind is removed after the file's tests.
 */
export function testTempDirs(): {
  tempDir: (prefix: string) => Promise<string>;
  removeTempDir: (dir: string) => Promise<void>;
} {
  const dirs = new Set<string>();
  const removeTempDir = async (dir: string): Promise<void> => {
    await rm(dir, { recursive: true, force: true });
    dirs.delete(dir);
  };
  after(async () => {
    await Promise.all([...dirs].map(removeTempDir));
  });
  return {
    tempDir: async (prefix) => {
      const dir = await mkdtemp(join(tmpdir(), `savassan-${prefix}-`));
      dirs.add(dir);
      return dir;
    },
    removeTempDir,
  };
}

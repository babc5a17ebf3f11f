// The bench's `--sandbox bwrap` servers: where they can run, and how one is started.
import { existsSync } from 'node:fs';
import { chmod, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer, type ServerProcess } from '../test/helpers/server-process.js';

/** Why the warm-path figures on bwrap cannot be measured here, or null where they can. */
export function bwrapSkipReason(): string | null {
  if (!existsSync('/usr/bin/bwrap')) return '/usr/bin/bwrap is not installed';
  if (process.getuid?.() !== 0) return 'the bench does not run as root (bwrap sandboxes run as sandbox users)';
  return null;
}

/** A `savassan start --sandbox bwrap` server; its data dir is one that sandbox users can pass through. */
export async function startBwrapServer(extraArgs: string[] = []): Promise<ServerProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sv-bench-bwrap-'));
  await chmod(dataDir, 0o711);
  return startServer(
    ['--no-examples', '--queue-wait', '30', '--log-level', 'error', '--sandbox', 'bwrap', ...extraArgs],
    dataDir,
  );
}

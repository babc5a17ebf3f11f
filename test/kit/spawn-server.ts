// A server binary started by a test kit (etcd, redis-server): tracked so that a test run that crashes leaves no
// server behind, with its output kept (up to 64 KiB) for the kit's error messages.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

const OUTPUT_LIMIT = 64 * 1024;
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface SpawnedServer {
  child: ChildProcess;
  /** What it printed on stdout and stderr so far. */
  output: () => string;
  exited: () => boolean;
}

export function spawnServer(binary: string, args: string[]): SpawnedServer {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  const collect = (chunk: Buffer): void => {
    if (output.length < OUTPUT_LIMIT) output += chunk.toString();
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  let exited = false;
  child.once('exit', () => {
    exited = true;
    running.delete(child);
  });
  return { child, output: () => output, exited: () => exited };
}

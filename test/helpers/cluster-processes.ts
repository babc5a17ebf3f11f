// What the multi-process cluster tests share: why they skip on a machine without the servers, and a handle on each
// `savassan` process they spawn (its output, a wait for a line, a stop).
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { etcdBinary } from '../kit/etcd-server.js';
import { redisServerAvailable } from '../kit/redis-server.js';

/** Why a test needing etcd, Redis and PostgreSQL cannot run here, or false. */
export function clusterSkipReason(): string | false {
  if (!existsSync(etcdBinary)) return 'etcd is not installed';
  if (!redisServerAvailable()) return 'redis-server is not installed';
  if (!existsSync('/usr/lib/postgresql')) return 'PostgreSQL is not installed';
  return false;
}

export interface Proc {
  child: ChildProcess;
  /** Resolves with the first match of `pattern` in the process's stdout (as it has been written so far or later). */
  waitFor: (pattern: RegExp) => Promise<RegExpExecArray>;
  /** SIGTERM, then wait for the exit. */
  stop: () => Promise<void>;
}

/** Keeps a spawned process's output; a `waitFor` rejects with all of it if the process exits first. */
export function track(name: string, child: ChildProcess): Proc {
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  return {
    child,
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          const match = pattern.exec(output);
          if (match !== null) resolve(match);
        };
        child.stdout?.on('data', check);
        void exited.then(() => reject(new Error(`${name} exited:\n${output}`)));
        check();
      }),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

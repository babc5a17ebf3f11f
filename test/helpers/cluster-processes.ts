// What the multi-process cluster tests share: why they skip on a machine without the servers, and a handle on each
// `savassan` process they spawn (its output, a wait for a line, a stop).
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { etcdBinary } from '../kit/etcd-server.js';
import { netnsUnavailable } from '../kit/netns.js';
import { redisServerAvailable } from '../kit/redis-server.js';

/**
 * Why a test needing etcd and PostgreSQL (and Redis unless `redis` is false, network namespaces when `netns` is
 * true) cannot run here, or false.
 */
export function clusterSkipReason(needs: { redis?: boolean; netns?: boolean } = {}): string | false {
  if (needs.netns === true) {
    const netns = netnsUnavailable();
    if (netns !== null) return netns;
  }
  if (!existsSync(etcdBinary)) return 'etcd is not installed';
  if (needs.redis !== false && !redisServerAvailable()) return 'redis-server is not installed';
  if (!existsSync('/usr/lib/postgresql')) return 'PostgreSQL is not installed';
  return false;
}

export interface Proc {
  name: string;
  child: ChildProcess;
  /** Everything it wrote so far, stdout and stderr interleaved. */
  output: () => string;
  /**
   * Resolves with the first match of `pattern` in the process's output (as it has been written so far or later);
   * rejects with all of it if the process exits first or nothing matches within `timeoutMs`.
   */
  waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpExecArray>;
  /** Sends `signal` (SIGTERM by default) unless it has exited, then waits for the exit. */
  stop: (signal?: NodeJS.Signals) => Promise<void>;
  /** Whether it still runs. */
  running: () => boolean;
  /** Resolves with its exit code (null when a signal ended it) once it exits. */
  exited: Promise<number | null>;
}

/** Keeps a spawned process's output; a `waitFor` rejects with all of it if the process exits first. */
export function track(name: string, child: ChildProcess): Proc {
  let output = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  return {
    name,
    child,
    output: () => output,
    waitFor: (pattern, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const deadline = setTimeout(() => reject(new Error(`${name} did not print ${pattern}:\n${output}`)), timeoutMs);
        const check = (): void => {
          const match = pattern.exec(output);
          if (match === null) return;
          clearTimeout(deadline);
          resolve(match);
        };
        child.stdout?.on('data', check);
        child.stderr?.on('data', check);
        void exited.then(() => {
          clearTimeout(deadline);
          reject(new Error(`${name} exited:\n${output}`));
        });
        check();
      }),
    stop: async (signal = 'SIGTERM') => {
      if (running()) child.kill(signal);
      await exited;
    },
    running,
    exited,
  };
}

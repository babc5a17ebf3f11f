import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, SavassanClient } from '../../src/client/client.js';

export const repoRoot = new URL('../../', import.meta.url).pathname;
export const cliPath = join(repoRoot, 'bin', 'savassan.js');

export interface ServerProcess {
  pid: number;
  url: string;
  dataDir: string;
  child: ChildProcess;
  client: SavassanClient;
  output: () => string;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
  /** Stop if running and remove the data dir. */
  cleanup: () => Promise<void>;
}

/**
 * Starts `savassan start` as a real process on a random port with a fresh data dir. The sandbox runtime is
 * `process` unless `args` names one: these tests are about the engine; test/sandbox covers isolation. `env` is
 * added to this process's environment (`SAVASSAN_REDIS_URL`, ...).
 */
export async function startServer(
  args: string[] = [],
  existingDataDir?: string,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  const dataDir = existingDataDir ?? (await mkdtemp(join(tmpdir(), 'sv-')));
  const sandbox = args.includes('--sandbox') ? [] : ['--sandbox', 'process'];
  const child = spawn(
    process.execPath,
    [cliPath, 'start', '--port', '0', '--data-dir', dataDir, '--log-level', 'warn', ...sandbox, ...args],
    {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SAVASSAN_URL: '', ...env },
    },
  );
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in 30 s:\n${output}`));
    }, 30_000);
    const check = () => {
      // The banner ends with "Press Ctrl-C to stop."; wait for all of it (stdout is a pipe: lines arrive in chunks).
      const match = /listening on (http:\/\/[^\s]+)[\s\S]*Press Ctrl-C/.exec(output);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    };
    child.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}) before listening:\n${output}`));
    });
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    return exited;
  };
  return {
    pid: child.pid ?? 0,
    url,
    dataDir,
    child,
    client: new SavassanClient({ url }),
    output: () => output,
    stop,
    cleanup: async () => {
      await stop();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs the real CLI against a server, `env` added to the environment; resolves with exit code and output. */
export function runCli(
  url: string,
  args: string[],
  env: Record<string, string> = {},
  stdin?: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], {
      cwd: repoRoot,
      env: { ...process.env, SAVASSAN_URL: url, ...env },
      stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    child.stdin?.end(stdin);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Pids of live `process` sandboxes whose scratch dir lives under `dataDir` (found through /proc/<pid>/environ). */
export async function sandboxPids(dataDir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const environ = await readFile(`/proc/${entry}/environ`, 'utf8');
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue;
      if (environ.split('\0').some((v) => v.startsWith('TMPDIR=') && v.includes(dataDir))) pids.push(Number(entry));
    } catch {
      // process gone or not ours
    }
  }
  return pids;
}

/** Pids of live processes in the sandbox cgroups of the server process `serverPid` (isolating runtimes). */
export async function cgroupSandboxPids(serverPid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cgroup = await readFile(`/proc/${entry}/cgroup`, 'utf8');
      const status = await readFile(`/proc/${entry}/status`, 'utf8');
      if (/^State:\s+Z/m.test(status)) continue;
      if (cgroup.includes(`/savassan-${serverPid}/`)) pids.push(Number(entry));
    } catch {
      // process gone
    }
  }
  return pids;
}

export async function eventually<T>(
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    // A probe that throws counts as not yet; at the deadline its error is thrown.
    const attempt = await probe().then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    );
    if ('value' in attempt && (ok(attempt.value) || Date.now() > deadline)) return attempt.value;
    if ('error' in attempt && Date.now() > deadline) throw attempt.error;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The API error a call fails with; throws if it succeeds or fails otherwise. */
export async function apiError(call: Promise<unknown>): Promise<ApiError> {
  try {
    await call;
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected an API error, the call succeeded');
}

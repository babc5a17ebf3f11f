import type { ChildProcess } from 'node:child_process';
import { readFile, statfs } from 'node:fs/promises';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { PlatformError } from '../core/errors.js';
import type { LimitHits, SandboxExit, SandboxProcess } from '../core/ports/sandbox-runtime.js';
import type { SandboxCgroup } from './cgroups.js';

/** How much of the sandbox's stderr (outside the protocol) is kept for crash reports. */
const stderrTailBytes = 8 * 1024;
/** After the process exits, how long to wait for its stderr pipe to drain (a grandchild may hold it open). */
const stderrDrainMs = 200;

export interface ChildSandboxOptions {
  guestTaskDir: string;
  /** The stdio index spawned as `'pipe'` that carries the guest channel (a socketpair made by libuv). */
  channelFd: number;
  /** The sandbox's cgroup, removed once the process is gone; null where the runtime has none. */
  cgroup?: SandboxCgroup | null | undefined;
  /** The host path of the sandbox's private /tmp, once known, to tell whether it filled up. */
  tmpPath?: (() => Promise<string | null>) | undefined;
  /** Stops processes the group kill cannot reach (a container's), before waiting for the exit. */
  terminate?: (() => Promise<void>) | undefined;
  /** Releases what the sandbox held once it has exited (a container's state), before its cgroup goes. */
  release?: (() => Promise<void>) | undefined;
  /**
   * The child is a monitor (bwrap, runc) that waits for the guest and exits with the guest's code, or with 128 + N
   * when signal N killed the guest, as shells do: such a code is reported as that signal. (A guest that calls
   * `process.exit(137)` is reported as killed by SIGKILL, as a shell would.)
   */
  monitor?: boolean | undefined;
}

/** The signal a monitor's exit code of 128 + N stands for, or null. */
function signalOfMonitorCode(code: number | null): NodeJS.Signals | null {
  if (code === null || code <= 128) return null;
  const number = code - 128;
  const entry = Object.entries(constants.signals).find(([, value]) => value === number);
  return entry === undefined ? null : (entry[0] as NodeJS.Signals);
}

/** Resident memory of one process from /proc, or null once it is gone. */
export async function processRssBytes(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
    return match?.[1] === undefined ? null : Number(match[1]) * 1024;
  } catch {
    return null;
  }
}

async function isFull(path: string | null): Promise<boolean> {
  if (path === null) return false;
  try {
    const stats = await statfs(path);
    // Full for a writer when less than a write's worth is left (1 MiB, or 2% of a large /tmp).
    const free = stats.bavail * stats.bsize;
    return free < Math.max(1024 * 1024, (stats.blocks * stats.bsize) / 50);
  } catch {
    return false;
  }
}

/**
 * A sandbox that is a child process of the Agent, leading its own process group: keeps the tail of its stderr for
 * crash reports, kills the whole group, and removes the sandbox's cgroup after the process is gone.
 */
export class ChildSandboxProcess implements SandboxProcess {
  readonly pid: number | null;
  readonly channel: Socket;
  readonly exited: Promise<SandboxExit>;
  readonly guestTaskDir: string;
  private readonly cgroup: SandboxCgroup | null;
  private readonly tmpPath: () => Promise<string | null>;
  private readonly terminate: () => Promise<void>;
  private readonly release: () => Promise<void>;
  private stderr: Buffer = Buffer.alloc(0);
  private done = false;
  private killing: Promise<SandboxExit> | null = null;
  /** The last freeze written, so a kill's thaw lands after it. */
  private freezing: Promise<void> | null = null;
  /** The counters as they were just before the cgroup went away. */
  private finalHits: Promise<LimitHits> | null = null;

  constructor(child: ChildProcess, options: ChildSandboxOptions) {
    this.pid = child.pid ?? null;
    const channel = (child.stdio as unknown[])[options.channelFd];
    if (!(channel instanceof Socket)) {
      throw new PlatformError('INTERNAL', `sandbox descriptor ${options.channelFd} was not spawned as a pipe`);
    }
    this.channel = channel;
    this.guestTaskDir = options.guestTaskDir;
    this.cgroup = options.cgroup ?? null;
    this.tmpPath = options.tmpPath ?? (() => Promise.resolve(null));
    this.terminate = options.terminate ?? (() => Promise.resolve());
    this.release = options.release ?? (() => Promise.resolve());
    child.stderr?.on('data', (chunk: Buffer) => {
      const joined = Buffer.concat([this.stderr, chunk]);
      this.stderr = joined.length > stderrTailBytes ? joined.subarray(joined.length - stderrTailBytes) : joined;
    });
    // Swallow read errors on the pipe; the exit is what matters.
    child.stderr?.on('error', () => {});
    this.exited = new Promise<SandboxExit>((resolve) => {
      child.once('exit', (code, signal) => {
        const guestSignal = options.monitor === true ? signalOfMonitorCode(code) : null;
        const finish = (): void => {
          this.done = true;
          const stderrTail = this.stderr.toString('utf8');
          resolve(
            guestSignal === null ? { code, signal, stderrTail } : { code: null, signal: guestSignal, stderrTail },
          );
        };
        const stderr = child.stderr;
        if (stderr === null || stderr.readableEnded || stderr.destroyed) return finish();
        const timer = setTimeout(finish, stderrDrainMs);
        stderr.once('close', () => {
          clearTimeout(timer);
          finish();
        });
      });
    });
  }

  get freezable(): boolean {
    return this.cgroup?.freezable ?? false;
  }

  freeze(): Promise<void> {
    if (this.done || this.cgroup === null) return Promise.resolve();
    const freezing = this.cgroup.freeze();
    this.freezing = freezing.catch(() => {});
    return freezing;
  }

  async thaw(): Promise<void> {
    await this.cgroup?.thaw();
  }

  async memoryBytes(): Promise<number | null> {
    if (this.done || this.pid === null) return null;
    if (this.cgroup !== null) return this.cgroup.memoryBytes();
    return processRssBytes(this.pid);
  }

  limitHits(): Promise<LimitHits> {
    return this.finalHits ?? this.readLimitHits();
  }

  private async readLimitHits(): Promise<LimitHits> {
    const [counters, tmp] = await Promise.all([
      this.cgroup?.hits() ?? Promise.resolve({ memory: false, pids: false }),
      this.tmpPath().then(isFull),
    ]);
    return { ...counters, tmp };
  }

  kill(): Promise<SandboxExit> {
    this.killing ??= (async () => {
      if (this.pid !== null) {
        try {
          // The whole process group: the sandbox and anything it spawned. Also after the leader exited, since its
          // children may live on; ESRCH means the group is gone.
          process.kill(-this.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
      // A frozen process acts on the pending SIGKILL only once thawed; it dies without running any more code.
      await this.freezing;
      await this.cgroup?.thaw().catch(() => {});
      await this.terminate().catch(() => {});
      const exit = await this.exited;
      this.finalHits = this.readLimitHits();
      await this.finalHits;
      await this.release().catch(() => {});
      // Whatever escaped the process group (a new session inside the sandbox) dies with the cgroup.
      await this.cgroup?.remove();
      return exit;
    })();
    return this.killing;
  }
}

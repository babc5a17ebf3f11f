import { spawn, type ChildProcess } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PlatformError } from '../core/errors.js';
import type { SandboxExit, SandboxLaunchSpec, SandboxProcess, SandboxRuntime } from '../core/ports/sandbox-runtime.js';

export interface ProcessRuntimeOptions {
  /** The compiled guest shim; defaults to `<package root>/dist/sandbox/guest/shim.js`. */
  shimPath?: string | undefined;
  /** The node binary; defaults to the one running the Agent. */
  nodePath?: string | undefined;
}

/** How much of the sandbox's stderr (outside the protocol) is kept for crash reports. */
const stderrTailBytes = 8 * 1024;
/** After the process exits, how long to wait for its stderr pipe to drain (a grandchild may hold it open). */
const stderrDrainMs = 200;

/** The directory holding package.json above this module (src/sandbox or dist/sandbox alike). */
function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new PlatformError('INTERNAL', `no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/**
 * Runs each sandbox as a plain child process of the Agent: no isolation, for development only. The process gets
 * a minimal environment (not the Agent's), its own process group so `kill()` takes everything it spawned, and
 * a V8 heap limit of the function's memory so a memory bomb dies with "heap out of memory".
 */
export class ProcessRuntime implements SandboxRuntime {
  readonly kind = 'process' as const;
  readonly isolating = false;
  private shimPath: string | null;
  private readonly nodePath: string;

  constructor(options: ProcessRuntimeOptions = {}) {
    this.shimPath = options.shimPath ?? null;
    this.nodePath = options.nodePath ?? process.execPath;
  }

  async launch(spec: SandboxLaunchSpec): Promise<SandboxProcess> {
    const shim = await this.resolveShim();
    const child = spawn(this.nodePath, [`--max-old-space-size=${spec.memoryMB}`, shim], {
      cwd: spec.codeDir,
      env: {
        SAVASSAN_SOCKET: spec.socketPath,
        PATH: '/usr/local/bin:/usr/bin:/bin',
        HOME: spec.scratchDir,
        TMPDIR: spec.scratchDir,
        LANG: 'C.UTF-8',
        TZ: 'UTC',
        NODE_ENV: 'production',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
      detached: true,
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) =>
        reject(
          new PlatformError('INTERNAL', `cannot start sandbox process ${this.nodePath}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
    });
    return new ChildSandboxProcess(child);
  }

  private async resolveShim(): Promise<string> {
    if (this.shimPath !== null) {
      await access(this.shimPath).catch(() => {
        throw new PlatformError('INTERNAL', `guest shim not found at ${this.shimPath}`);
      });
      return this.shimPath;
    }
    const shim = join(findPackageRoot(), 'dist', 'sandbox', 'guest', 'shim.js');
    try {
      await access(shim);
    } catch {
      throw new PlatformError('INTERNAL', `guest shim not built: run npm run build (looked for ${shim})`);
    }
    this.shimPath = shim;
    return shim;
  }
}

class ChildSandboxProcess implements SandboxProcess {
  readonly pid: number | null;
  readonly exited: Promise<SandboxExit>;
  private stderr: Buffer = Buffer.alloc(0);
  private done = false;

  constructor(private readonly child: ChildProcess) {
    this.pid = child.pid ?? null;
    child.stderr?.on('data', (chunk: Buffer) => {
      const joined = Buffer.concat([this.stderr, chunk]);
      this.stderr = joined.length > stderrTailBytes ? joined.subarray(joined.length - stderrTailBytes) : joined;
    });
    // Swallow read errors on the pipe; the exit is what matters.
    child.stderr?.on('error', () => {});
    this.exited = new Promise<SandboxExit>((resolve) => {
      child.once('exit', (code, signal) => {
        const finish = (): void => {
          this.done = true;
          resolve({ code, signal, stderrTail: this.stderr.toString('utf8') });
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

  async memoryBytes(): Promise<number | null> {
    if (this.done || this.pid === null) return null;
    try {
      const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
      const match = /^VmRSS:\s+(\d+)\s+kB$/m.exec(status);
      return match?.[1] === undefined ? null : Number(match[1]) * 1024;
    } catch {
      return null;
    }
  }

  kill(): Promise<SandboxExit> {
    if (this.pid !== null) {
      try {
        // The whole process group: the sandbox and anything it spawned. Also after the leader exited, since its
        // children may live on; ESRCH means the group is gone.
        process.kill(-this.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
    return this.exited;
  }
}

import { spawn } from 'node:child_process';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { PlatformError } from '../core/errors.js';
import {
  channelFdVariable,
  type RuntimeCapabilities,
  type SandboxLaunchSpec,
  type SandboxProcess,
  type SandboxRuntime,
} from '../core/ports/sandbox-runtime.js';
import { ChildSandboxProcess } from './child-sandbox.js';
import { nodeBinaryFor } from './node-runtimes.js';
import { builtSandboxDir } from './package-root.js';
import { batchScheduled, schedulingEnforcement } from './scheduling.js';

export interface ProcessRuntimeOptions {
  /** The compiled guest shim; defaults to `<package root>/dist/sandbox/guest/shim.js`. */
  shimPath?: string | undefined;
  /** The node binary for every runtime; defaults to the one each runtime name stands for. */
  nodePath?: string | undefined;
}

/** The guest's end of its channel to the Agent (stdio 0-2 come first). */
const channelFd = 3;

const none = (mechanism: string, note: string) => ({ mechanism, enforced: false, note });

/** What the process runtime enforces: the V8 heap limit and the timeout, nothing else. */
const processRuntimeCapabilities = (): RuntimeCapabilities => ({
  filesystem: none('none', 'the function can read and write whatever the Savassan process can'),
  network: none('none', 'the function can reach any address'),
  hostAddresses: none('none', 'the function can reach every service on this host'),
  processes: none('process group', 'the function sees every process on the host'),
  memory: { mechanism: 'V8 heap limit', enforced: false, note: 'only the JavaScript heap is limited' },
  pids: none('none', 'no process limit'),
  cpu: none('none', 'no CPU share or quota'),
  tmp: none('none', 'scratch space on the host disk, unbounded'),
  openFiles: none('none', 'inherits the Savassan process limit'),
  syscalls: none('none', 'every system call the Savassan process may make'),
  scheduling: schedulingEnforcement(),
  freezing: none('none', 'idle sandboxes keep running whatever their code left running'),
});

/**
 * Runs each sandbox as a plain child process of the Agent: no isolation, for development only. The process gets
 * a minimal environment (not the Agent's), its own process group so `kill()` takes everything it spawned, and
 * a V8 heap limit of the function's memory so a memory bomb dies with "heap out of memory".
 */
export class ProcessRuntime implements SandboxRuntime {
  readonly kind = 'process' as const;
  readonly isolating = false;
  readonly capabilities = processRuntimeCapabilities();
  private shimPath: string | null;
  private readonly nodePath: string | null;

  constructor(options: ProcessRuntimeOptions = {}) {
    this.shimPath = options.shimPath ?? null;
    this.nodePath = options.nodePath ?? null;
  }

  async launch(spec: SandboxLaunchSpec): Promise<SandboxProcess> {
    const shim = await this.resolveShim();
    const nodePath = this.nodePath ?? (await nodeBinaryFor(spec.runtime));
    const [command, args] = batchScheduled(nodePath, [`--max-old-space-size=${spec.limits.memoryMB}`, shim]);
    const child = spawn(command, args, {
      cwd: spec.taskDir,
      env: {
        ...spec.env,
        [channelFdVariable]: String(channelFd),
        PATH: '/usr/local/bin:/usr/bin:/bin',
        HOME: spec.scratchDir,
        TMPDIR: spec.scratchDir,
        LANG: 'C.UTF-8',
        TZ: 'UTC',
        NODE_ENV: 'production',
      },
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
      detached: true,
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) =>
        reject(
          new PlatformError('INTERNAL', `cannot start sandbox process ${nodePath}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
    });
    return new ChildSandboxProcess(child, { guestTaskDir: spec.taskDir, channelFd });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private async resolveShim(): Promise<string> {
    if (this.shimPath !== null) {
      await access(this.shimPath).catch(() => {
        throw new PlatformError('INTERNAL', `guest shim not found at ${this.shimPath}`);
      });
      return this.shimPath;
    }
    const shim = join(builtSandboxDir(), 'guest', 'shim.js');
    try {
      await access(shim);
    } catch {
      throw new PlatformError('INTERNAL', `guest shim not built: run npm run build (looked for ${shim})`);
    }
    this.shimPath = shim;
    return shim;
  }
}

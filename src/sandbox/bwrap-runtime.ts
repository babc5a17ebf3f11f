import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type {
  Enforcement,
  RuntimeCapabilities,
  SandboxLaunchSpec,
  SandboxLimits,
  SandboxProcess,
  SandboxRuntime,
} from '../core/ports/sandbox-runtime.js';
import { Cgroups, freezingEnforcement, type NodeCgroupLimits, type SandboxCgroup } from './cgroups.js';
import { ChildSandboxProcess } from './child-sandbox.js';
import { guestPaths, guestShimPath, heapLimitMB, prepareGuestFiles } from './guest-files.js';
import { nodeBinaryFor, sharedLibraries } from './node-runtimes.js';
import { protectHostFromSandboxes } from './host-firewall.js';
import { SandboxUsers } from './sandbox-users.js';
import { batchScheduled, schedulingEnforcement } from './scheduling.js';

export interface BwrapRuntimeOptions {
  /** Where the runtime keeps the guest shim it exposes read-only to every sandbox. */
  workDir: string;
  /** Name of the parent cgroup of this node's sandboxes. */
  cgroupName: string;
  /** Limits of that parent group: the node's memory and pid budgets. */
  nodeLimits?: NodeCgroupLimits | undefined;
  bwrapPath?: string | undefined;
  logger?: Logger | undefined;
}

/** Files a function with network access needs to resolve names and check certificates. */
const networkFiles = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl/certs'];

/** The file descriptor bwrap writes its `--info-fd` JSON to (stdio 0-2 come first). */
const infoFd = 3;

/**
 * The wrapper (bash: it can name descriptors above 9) that joins the cgroups (the Agent writes the pid, then says
 * go), sets rlimits (open files; no core dumps, hard limit too) and closes every descriptor but stdio and bwrap's
 * info pipe (3), so nothing the Agent inherited without close-on-exec reaches the sandbox, then execs bwrap.
 */
const wrapperScript = [
  'read -r go || exit 125',
  'ulimit -n "$0" && ulimit -c 0 || exit 126',
  'for fd in /proc/$$/fd/*; do n=${fd##*/}; if [ "$n" -gt 3 ]; then eval "exec $n>&-"; fi; done',
  'exec "$@" </dev/null',
].join('; ');

export interface BwrapArgsInput {
  binary: string;
  guestDir: string;
  taskDir: string;
  socketDir: string;
  network: boolean;
  libraries: string[];
  socketName: string;
  limits: SandboxLimits;
  heapMB: number;
}

/**
 * The bubblewrap command line for one sandbox: new user, pid, ipc, uts, mount, cgroup and (unless allowed)
 * network namespaces; a read-only root holding only the node binary, its libraries, the guest shim, the
 * function's code and the Agent's socket; a private size-capped /tmp; no capabilities and no nested namespaces.
 */
export function bwrapArgs(input: BwrapArgsInput): string[] {
  const args = [
    '--unshare-user',
    '--unshare-pid',
    '--unshare-ipc',
    '--unshare-uts',
    '--unshare-cgroup-try',
    ...(input.network ? [] : ['--unshare-net']),
    '--disable-userns',
    '--die-with-parent',
    '--new-session',
    '--uid',
    '1000',
    '--gid',
    '1000',
    '--hostname',
    'sandbox',
    '--cap-drop',
    'ALL',
    '--clearenv',
  ];
  const env: Record<string, string> = {
    PATH: '/usr/bin',
    HOME: '/tmp',
    TMPDIR: '/tmp',
    LANG: 'C.UTF-8',
    TZ: 'UTC',
    NODE_ENV: 'production',
    SAVASSAN_SOCKET: `${guestPaths.socketDir}/${input.socketName}`,
  };
  for (const [key, value] of Object.entries(env)) args.push('--setenv', key, value);
  for (const library of input.libraries) args.push('--ro-bind', library, library);
  if (input.network) {
    for (const file of networkFiles) if (existsSync(file)) args.push('--ro-bind', file, file);
  }
  args.push(
    '--ro-bind',
    input.binary,
    guestPaths.node,
    '--ro-bind',
    input.guestDir,
    guestPaths.guest,
    '--ro-bind',
    input.taskDir,
    guestPaths.task,
    '--ro-bind',
    input.socketDir,
    guestPaths.socketDir,
    '--proc',
    '/proc',
    '--dev',
    '/dev',
    // /dev/shm would be writable memory outside the /tmp cap.
    '--remount-ro',
    '/dev',
    '--size',
    String(input.limits.tmpMB * 1024 * 1024),
    '--tmpfs',
    '/tmp',
    '--remount-ro',
    '/',
    '--chdir',
    guestPaths.task,
    '--info-fd',
    String(infoFd),
    '--',
    guestPaths.node,
    `--max-old-space-size=${input.heapMB}`,
    `${guestPaths.guest}/${guestShimPath}`,
  );
  return args;
}

function enforced(mechanism: string, note: string) {
  return { mechanism, enforced: true, note };
}

function missing(mechanism: string, note: string) {
  return { mechanism, enforced: false, note };
}

function capabilitiesOf(cgroups: Cgroups | { unavailable: string }, hostAddresses: Enforcement): RuntimeCapabilities {
  const cgroupNote = 'unavailable' in cgroups ? cgroups.unavailable : `cgroup v${cgroups.version}`;
  const limited = !('unavailable' in cgroups);
  return {
    filesystem: enforced('mount namespace', 'read-only root: node, its libraries, the shim and the code'),
    network: enforced('network namespace', 'no network unless deployed with --network'),
    hostAddresses,
    processes: enforced('pid namespace', 'the function sees only its own processes'),
    memory: limited
      ? enforced('cgroup memory limit', cgroupNote)
      : missing('V8 heap limit', `${cgroupNote}: only the JavaScript heap is limited`),
    pids: limited ? enforced('cgroup pids limit', cgroupNote) : missing('none', `${cgroupNote}: no process limit`),
    cpu: limited
      ? enforced('cgroup CPU quota and weight', cgroupNote)
      : missing('none', `${cgroupNote}: no CPU quota or weight`),
    tmp: enforced('tmpfs size', 'private /tmp with a size cap'),
    openFiles: enforced('RLIMIT_NOFILE', 'per process'),
    scheduling: schedulingEnforcement(),
    freezing: freezingEnforcement(cgroups),
  };
}

/** Read bwrap's `--info-fd` JSON (it names the sandbox's pid 1 as the host sees it). */
function readChildPid(child: ChildProcess): Promise<number | null> {
  const stream = (child.stdio as (Readable | Writable | null | undefined)[])[infoFd];
  if (!(stream instanceof Readable)) return Promise.resolve(null);
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    stream.on('error', () => resolve(null));
    stream.on('close', () => {
      try {
        const info = JSON.parse(text) as { 'child-pid'?: unknown };
        resolve(typeof info['child-pid'] === 'number' ? info['child-pid'] : null);
      } catch {
        resolve(null);
      }
    });
  });
}

/**
 * bubblewrap resolves bind sources as the sandbox user: every directory above them must let others through
 * (o+x). Fails with the directory to fix rather than with bwrap's bare "Permission denied" at the first launch.
 */
export async function assertTraversable(path: string): Promise<void> {
  let dir = dirname(path);
  for (;;) {
    const { mode } = await stat(dir);
    if ((mode & 0o001) === 0) {
      throw new PlatformError(
        'UNAVAILABLE',
        `sandboxes cannot reach ${path}: ${dir} is not searchable by other users (chmod o+x ${dir}, ` +
          'or use a --data-dir outside it)',
      );
    }
    const parent = dirname(dir);
    if (parent === dir) return;
    dir = parent;
  }
}

/**
 * Sandboxes in bubblewrap (`bwrap`), as an unprivileged user of their own. Memory, processes and CPU are
 * limited by a cgroup per sandbox where this host lets the Agent create them; otherwise `capabilities` says so.
 */
export class BwrapRuntime implements SandboxRuntime {
  readonly kind = 'bwrap' as const;
  readonly isolating = true;
  readonly capabilities: RuntimeCapabilities;
  private readonly users = new SandboxUsers();

  private constructor(
    private readonly bwrapPath: string,
    private readonly guestDir: string,
    private readonly cgroups: Cgroups | null,
    cgroupState: Cgroups | { unavailable: string },
    hostAddresses: Enforcement,
    private readonly logger: Logger,
  ) {
    this.capabilities = capabilitiesOf(cgroupState, hostAddresses);
  }

  /** Check that bubblewrap runs here, prepare the guest files and the node's cgroup. */
  static async open(options: BwrapRuntimeOptions): Promise<BwrapRuntime> {
    const bwrapPath = options.bwrapPath ?? '/usr/bin/bwrap';
    if (!existsSync(bwrapPath)) {
      throw new PlatformError(
        'UNAVAILABLE',
        `bubblewrap is not installed (no ${bwrapPath}): install the bubblewrap package or use --sandbox process`,
      );
    }
    const guestDir = await prepareGuestFiles(join(options.workDir, 'guest'));
    await assertTraversable(join(guestDir, 'package.json'));
    const cgroups = await Cgroups.open(options.cgroupName, undefined, options.nodeLimits);
    const logger = (options.logger ?? silentLogger).child({ component: 'bwrap' });
    const hostAddresses = await protectHostFromSandboxes();
    const cgroupsOrNull = cgroups instanceof Cgroups ? cgroups : null;
    const runtime = new BwrapRuntime(bwrapPath, guestDir, cgroupsOrNull, cgroups, hostAddresses, logger);
    await runtime.probe();
    return runtime;
  }

  async launch(spec: SandboxLaunchSpec): Promise<SandboxProcess> {
    const binary = await nodeBinaryFor(spec.runtime);
    const libraries = await sharedLibraries(binary);
    const cgroup =
      this.cgroups === null
        ? null
        : await this.cgroups.create(spec.instanceId, {
            memoryBytes: spec.limits.memoryMB * 1024 * 1024,
            pids: spec.limits.pids,
            cpus: spec.limits.cpus,
          });
    try {
      const args = bwrapArgs({
        binary,
        guestDir: this.guestDir,
        taskDir: spec.taskDir,
        socketDir: spec.socketDir,
        network: spec.network,
        libraries,
        socketName: spec.socketName,
        limits: spec.limits,
        heapMB: heapLimitMB(spec.limits.memoryMB, cgroup !== null),
      });
      const child = await this.spawnWrapper(args, spec.limits.openFiles);
      const childPid = readChildPid(child);
      let sandboxPid: number | null = null;
      void childPid.then((pid) => (sandboxPid = pid));
      const proc = new ChildSandboxProcess(child, {
        guestTaskDir: guestPaths.task,
        cgroup,
        tmpPath: () => Promise.resolve(sandboxPid === null ? null : `/proc/${sandboxPid}/root/tmp`),
      });
      await this.start(child, cgroup, proc);
      return proc;
    } catch (err) {
      await cgroup?.remove();
      throw err;
    }
  }

  close(): Promise<void> {
    return this.cgroups?.close() ?? Promise.resolve();
  }

  private async spawnWrapper(args: string[], openFiles: number): Promise<ChildProcess> {
    const user = this.users.next();
    const [command, commandArgs] = batchScheduled('/bin/bash', [
      '-c',
      wrapperScript,
      String(openFiles),
      this.bwrapPath,
      ...args,
    ]);
    const child = spawn(command, commandArgs, {
      env: { PATH: '/usr/bin:/bin' },
      stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
      detached: true,
      ...(user === null ? {} : { uid: user, gid: user }),
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) =>
        reject(new PlatformError('INTERNAL', `cannot start bubblewrap: ${err.message}`, { cause: err })),
      );
    });
    return child;
  }

  /** Put the wrapper into the sandbox's cgroup before it runs anything, then let it exec bwrap. */
  private async start(child: ChildProcess, cgroup: SandboxCgroup | null, proc: SandboxProcess): Promise<void> {
    try {
      if (cgroup !== null && child.pid !== undefined) {
        for (const file of cgroup.procsFiles) await writeFile(file, String(child.pid));
      }
    } catch (err) {
      await proc.kill();
      throw new PlatformError('INTERNAL', `cannot move the sandbox into its cgroup: ${(err as Error).message}`, {
        cause: err,
      });
    }
    child.stdin?.on('error', () => {});
    child.stdin?.end('go\n');
  }

  /** One real sandbox running `node -e 0`, so a host where bwrap cannot work fails at start with the reason. */
  private async probe(): Promise<void> {
    const binary = await nodeBinaryFor('nodejs20').catch(() => process.execPath);
    const libraries = await sharedLibraries(binary);
    const args = [
      '--unshare-user',
      '--unshare-pid',
      '--unshare-net',
      '--die-with-parent',
      ...libraries.flatMap((library) => ['--ro-bind', library, library]),
      '--ro-bind',
      binary,
      guestPaths.node,
      '--proc',
      '/proc',
      '--dev',
      '/dev',
      '--',
      guestPaths.node,
      '-e',
      '0',
    ];
    const user = this.users.next();
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(this.bwrapPath, args, {
        stdio: ['ignore', 'ignore', 'pipe'],
        ...(user === null ? {} : { uid: user, gid: user }),
      });
      let stderr = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      child.on('error', (err) => resolve({ code: null, stderr: err.message }));
      child.on('close', (code) => resolve({ code, stderr }));
    });
    if (result.code !== 0) {
      throw new PlatformError(
        'UNAVAILABLE',
        `bubblewrap cannot create a sandbox on this host (exit ${result.code ?? 'none'}): ${result.stderr.trim()}; ` +
          'unprivileged user namespaces may be disabled; use --sandbox process for development',
      );
    }
    this.logger.debug({ cgroups: this.capabilities.memory.note }, 'bubblewrap works');
  }
}

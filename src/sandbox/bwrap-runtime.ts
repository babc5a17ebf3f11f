import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, type Writable } from 'node:stream';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import {
  channelFdVariable,
  type Enforcement,
  type RuntimeCapabilities,
  type SandboxLaunchSpec,
  type SandboxLimits,
  type SandboxProcess,
  type SandboxRuntime,
} from '../core/ports/sandbox-runtime.js';
import { Cgroups, freezingEnforcement, type NodeCgroupLimits, type SandboxCgroup } from './cgroups.js';
import { ChildSandboxProcess } from './child-sandbox.js';
import { guestPaths, guestShimPath, heapLimitMB, prepareGuestFiles } from './guest-files.js';
import { nodeBinaryFor, sharedLibraries } from './node-runtimes.js';
import { inNetns, SandboxNetwork, type SandboxNetns } from './sandbox-network.js';
import { SandboxUsers } from './sandbox-users.js';
import { seccompFilter, seccompNote } from './seccomp.js';
import { batchScheduled, schedulingEnforcement } from './scheduling.js';

export interface BwrapRuntimeOptions {
  /** Where the runtime keeps the guest shim it exposes read-only to every sandbox. */
  workDir: string;
  /** Name of the parent cgroup of this node's sandboxes. */
  cgroupName: string;
  /** Limits of that parent group: the node's memory and pid budgets. */
  nodeLimits?: NodeCgroupLimits | undefined;
  bwrapPath?: string | undefined;
  /** IPv4 range for networked sandboxes' links (see `SandboxNetwork`). */
  sandboxSubnet?: string | undefined;
  logger?: Logger | undefined;
}

/** Files a function with network access needs to resolve names and check certificates. */
const networkFiles = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl/certs'];

/** The file descriptor bwrap writes its `--info-fd` JSON to (stdio 0-2 come first). */
const infoFd = 3;
/** The guest's end of its channel to the Agent (a socketpair): bwrap passes inherited descriptors on. */
const channelFd = 4;

/**
 * Where the wrapper of a root Agent binds the sandbox's host directories (guest files, task dir) inside a mount
 * namespace of its own, so that bwrap, running as the sandbox user, reaches them whatever the modes above them:
 * the data dir is 0700 and may sit in a private directory. bubblewrap 0.8 resolves every bind source, `--ro-bind-fd`
 * included, with realpath() as the sandbox user, so an inherited descriptor alone does not do.
 */
const hostBindRoot = '/run/savassan';

/** The file descriptor bwrap reads the seccomp program from (`--seccomp`); it closes it before running the guest. */
const seccompFd = 5;
/**
 * The file descriptor bwrap reads more arguments from (`--args`, NUL-separated): the function's start-up variables,
 * which are its own settings and so stay out of the command line every local user can read.
 */
const envArgsFd = 6;

/**
 * The wrapper (bash: it can name descriptors above 9) that joins the cgroups (the Agent writes the pid, then says
 * go), sets rlimits (open files; no core dumps, hard limit too) and closes every descriptor but stdio, bwrap's
 * info pipe (3), the guest channel (4), the seccomp program (5) and the start-up variables (6), so nothing the Agent inherited without
 * close-on-exec reaches the sandbox, then execs bwrap with an empty environment (bwrap's pid 1 in the sandbox keeps it: no host `PWD`).
 * Arguments: open files, then the command.
 */
const wrapperPrologue = [
  'read -r go || exit 125',
  'ulimit -n "$0" && ulimit -c 0 || exit 126',
  `for fd in /proc/$$/fd/*; do n=\${fd##*/}; if [ "$n" -gt ${envArgsFd} ]; then eval "exec $n>&-"; fi; done`,
];
const wrapperScript = [...wrapperPrologue, 'exec -c "$@" </dev/null'].join('; ');

/**
 * The wrapper of a root Agent, started as root in a private mount namespace (`unshare --mount`): it binds the guest
 * files and the task dir (`SAVASSAN_GUEST_DIR`, `SAVASSAN_TASK_DIR` in its environment, readable only by root) under
 * `hostBindRoot` on a tmpfs nobody else sees, then becomes the sandbox user (setpriv, no capabilities) and execs
 * bwrap. Arguments: open files, the sandbox uid, then the command.
 */
const rootWrapperScript = [
  ...wrapperPrologue,
  `mount -t tmpfs -o mode=0755,size=64k,nosuid,nodev savassan ${hostBindRoot} || exit 127`,
  `mkdir ${hostBindRoot}/guest ${hostBindRoot}/task || exit 127`,
  `mount --bind "$SAVASSAN_GUEST_DIR" ${hostBindRoot}/guest || exit 127`,
  `mount --bind "$SAVASSAN_TASK_DIR" ${hostBindRoot}/task || exit 127`,
  'exec -c /usr/bin/setpriv --reuid "$1" --regid "$1" --clear-groups --inh-caps=-all -- "${@:2}" </dev/null',
].join('; ');

/**
 * How the wrappers' bash is started: `--norc`, because bash runs `~/.bashrc` even for `-c` when its stdin is a socket
 * (it takes that for rshd), and the wrapper's stdin is the pipe (a socket pair) the Agent says go on. That would run
 * the Agent user's (root's) start-up file in every wrapper and mix its output into the sandbox's stderr.
 */
const bashOptions = ['--norc', '--noprofile', '-c'];

export interface BwrapArgsInput {
  binary: string;
  guestDir: string;
  taskDir: string;
  network: boolean;
  libraries: string[];
  limits: SandboxLimits;
  heapMB: number;
  /** The function's start-up variables (`SandboxLaunchSpec.env`). */
  env?: Readonly<Record<string, string>> | undefined;
}

/**
 * The bubblewrap command line for one sandbox: new user, pid, ipc, uts, mount, cgroup and network namespaces (a
 * networked sandbox's is the one `SandboxNetwork` prepared, which bwrap is started in); a read-only root holding
 * only the node binary, its libraries, the guest shim and the function's code; a private size-capped /tmp; no
 * capabilities and no nested namespaces. The guest talks to the Agent over the channel it inherits as descriptor
 * `channelFd`.
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
  // First, so that the platform's own variables below win.
  if (Object.keys(input.env ?? {}).length > 0) args.push('--args', String(envArgsFd));
  const env: Record<string, string> = {
    PATH: '/usr/bin',
    HOME: '/tmp',
    TMPDIR: '/tmp',
    LANG: 'C.UTF-8',
    TZ: 'UTC',
    NODE_ENV: 'production',
    [channelFdVariable]: String(channelFd),
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
    // Installed on the guest's process just before bwrap execs it, after bwrap's own namespace setup.
    '--seccomp',
    String(seccompFd),
    '--',
    guestPaths.node,
    `--max-old-space-size=${input.heapMB}`,
    `${guestPaths.guest}/${guestShimPath}`,
  );
  return args;
}

/** What bwrap reads from `envArgsFd`: `--setenv KEY VALUE` for each start-up variable, NUL-separated. */
export function envArgsOf(env: Readonly<Record<string, string>> | undefined): Buffer {
  const words = Object.entries(env ?? {}).flatMap(([key, value]) => ['--setenv', key, value]);
  return Buffer.from(words.map((word) => `${word}\0`).join(''));
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
    syscalls: enforced('seccomp filter', seccompNote),
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
    private readonly seccomp: Buffer,
    private readonly cgroups: Cgroups | null,
    cgroupState: Cgroups | { unavailable: string },
    private readonly network: SandboxNetwork,
    private readonly logger: Logger,
  ) {
    this.capabilities = capabilitiesOf(cgroupState, network.enforcement);
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
    const seccomp = seccompFilter();
    const guestDir = await prepareGuestFiles(join(options.workDir, 'guest'));
    if (process.getuid?.() === 0) {
      // The mount point of each wrapper's private tmpfs; empty and unused on the host.
      await mkdir(hostBindRoot, { recursive: true, mode: 0o755 });
      await chmod(hostBindRoot, 0o755);
    }
    const cgroups = await Cgroups.open(options.cgroupName, undefined, options.nodeLimits);
    const logger = (options.logger ?? silentLogger).child({ component: 'bwrap' });
    const network = await SandboxNetwork.open({ subnet: options.sandboxSubnet, logger });
    const cgroupsOrNull = cgroups instanceof Cgroups ? cgroups : null;
    const runtime = new BwrapRuntime(bwrapPath, guestDir, seccomp, cgroupsOrNull, cgroups, network, logger);
    await runtime.probe();
    return runtime;
  }

  async launch(spec: SandboxLaunchSpec): Promise<SandboxProcess> {
    const binary = await nodeBinaryFor(spec.runtime);
    const libraries = await sharedLibraries(binary);
    const netns = spec.network ? await this.network.attach(spec.allowNet ?? []) : null;
    const cgroup =
      this.cgroups === null
        ? null
        : await this.cgroups
            .create(spec.instanceId, {
              memoryBytes: spec.limits.memoryMB * 1024 * 1024,
              pids: spec.limits.pids,
              cpus: spec.limits.cpus,
            })
            .catch(async (err: unknown) => {
              await netns?.release();
              throw err;
            });
    try {
      const user = this.users.next();
      const args = bwrapArgs({
        binary,
        // A root Agent's wrapper binds these where the sandbox user can reach them (see rootWrapperScript).
        guestDir: user === null ? this.guestDir : `${hostBindRoot}/guest`,
        taskDir: user === null ? spec.taskDir : `${hostBindRoot}/task`,
        network: spec.network,
        libraries,
        limits: spec.limits,
        heapMB: heapLimitMB(spec.limits.memoryMB, cgroup !== null),
        env: spec.env,
      });
      const child = await this.spawnWrapper(args, spec, user, netns);
      const childPid = readChildPid(child);
      let sandboxPid: number | null = null;
      void childPid.then((pid) => (sandboxPid = pid));
      const proc = new ChildSandboxProcess(child, {
        guestTaskDir: guestPaths.task,
        channelFd,
        cgroup,
        tmpPath: () => Promise.resolve(sandboxPid === null ? null : `/proc/${sandboxPid}/root/tmp`),
        release: () => netns?.release() ?? Promise.resolve(),
        monitor: true,
      });
      await this.start(child, cgroup, proc);
      return proc;
    } catch (err) {
      await cgroup?.remove();
      await netns?.release();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.network.close();
    await this.cgroups?.close();
  }

  /**
   * Start the wrapper: as root in a private mount namespace for a root Agent (it becomes the sandbox user itself),
   * inside the sandbox's network namespace when it has one, else as the Agent's own user. Its working directory is
   * `/` and its environment minimal: bwrap's pid 1 inside the sandbox shows both.
   */
  private async spawnWrapper(
    args: string[],
    spec: SandboxLaunchSpec,
    user: number | null,
    netns: SandboxNetns | null,
  ): Promise<ChildProcess> {
    if (netns !== null && user === null) throw new PlatformError('INTERNAL', 'a networked sandbox needs its own uid');
    const openFiles = String(spec.limits.openFiles);
    const rootWrapper = [
      '--mount',
      '--propagation',
      'private',
      '/bin/bash',
      ...bashOptions,
      rootWrapperScript,
      openFiles,
      String(user),
      this.bwrapPath,
      ...args,
    ];
    const [entry, entryArgs] =
      user === null
        ? ['/bin/bash', [...bashOptions, wrapperScript, openFiles, this.bwrapPath, ...args]]
        : netns === null
          ? ['/usr/bin/unshare', rootWrapper]
          : inNetns(netns.path, '/usr/bin/unshare', rootWrapper);
    const [command, commandArgs] = batchScheduled(entry, entryArgs);
    const env: Record<string, string> = { PATH: '/usr/bin:/bin' };
    if (user !== null) {
      env['SAVASSAN_GUEST_DIR'] = this.guestDir;
      env['SAVASSAN_TASK_DIR'] = spec.taskDir;
    }
    const child = spawn(command, commandArgs, {
      cwd: '/',
      env,
      stdio: ['pipe', 'ignore', 'pipe', 'pipe', 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) =>
        reject(new PlatformError('INTERNAL', `cannot start bubblewrap: ${err.message}`, { cause: err })),
      );
    });
    // A few hundred bytes: the pipe holds them until bwrap reads them.
    const seccompPipe = (child.stdio as (Readable | Writable | null | undefined)[])[seccompFd] as Writable;
    seccompPipe.on('error', () => {});
    seccompPipe.end(this.seccomp);
    // At most the env limit (4 KiB) and its flags: the pipe holds them too.
    const envArgsPipe = (child.stdio as (Readable | Writable | null | undefined)[])[envArgsFd] as Writable;
    envArgsPipe.on('error', () => {});
    envArgsPipe.end(envArgsOf(spec.env));
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

  /**
   * One real sandbox running `node -e 0` under the seccomp filter, so a host where bwrap or the filter cannot work
   * fails at start with the reason.
   */
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
      '--seccomp',
      '3',
      '--',
      guestPaths.node,
      '-e',
      '0',
    ];
    const user = this.users.next();
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(this.bwrapPath, args, {
        // Not the Agent's environment: a NODE_OPTIONS naming a host file would fail the probe's node.
        env: { PATH: '/usr/bin:/bin' },
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        ...(user === null ? {} : { uid: user, gid: user }),
      });
      (child.stdio[3] as Writable).on('error', () => {}).end(this.seccomp);
      let stderr = '';
      child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
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

import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import {
  channelFdVariable,
  type RuntimeCapabilities,
  type SandboxLaunchSpec,
  type SandboxProcess,
  type SandboxRuntime,
} from '../core/ports/sandbox-runtime.js';
import { Cgroups, freezingEnforcement, type NodeCgroupLimits, type SandboxCgroup } from './cgroups.js';
import { ChildSandboxProcess } from './child-sandbox.js';
import { guestPaths, guestShimPath, heapLimitMB, prepareGuestFiles } from './guest-files.js';
import { nodeBinaryFor, sharedLibraries } from './node-runtimes.js';
import { cloneNewUser, deniedSyscalls, ENOSYS, enosysSyscalls, EPERM, seccompNote } from './seccomp.js';
import { SandboxNetwork } from './sandbox-network.js';
import { SandboxUsers } from './sandbox-users.js';
import { batchScheduled, schedulingEnforcement } from './scheduling.js';

const run = promisify(execFile);

export interface RuncRuntimeOptions {
  /** Where the runtime keeps the guest shim, the shared rootfs skeleton, bundles and runc's state. */
  workDir: string;
  /** Name of the parent cgroup of this node's sandboxes. */
  cgroupName: string;
  /** Limits of that parent group: the node's memory and pid budgets. */
  nodeLimits?: NodeCgroupLimits | undefined;
  runcPath?: string | undefined;
  /** IPv4 range for networked sandboxes' links (see `SandboxNetwork`). */
  sandboxSubnet?: string | undefined;
  logger?: Logger | undefined;
}

const networkFiles = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl/certs'];
const cpuPeriodUs = 100_000;
/**
 * The guest's end of its channel to the Agent (a socketpair): runc's descriptor 3, which `runc run --preserve-fds 1`
 * hands to the container's process as its descriptor 3.
 */
const channelFd = 3;

interface Mount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

function bind(source: string, destination: string): Mount {
  return { destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev'] };
}

export interface RuncConfigInput {
  rootfs: string;
  uid: number;
  binary: string;
  libraries: string[];
  guestDir: string;
  spec: SandboxLaunchSpec;
  cgroupsPath: string;
  heapMB: number;
  /** A networked sandbox's prepared network namespace (`SandboxNetwork`), joined instead of a new empty one. */
  netnsPath?: string | undefined;
}

/**
 * The OCI runtime config of one sandbox: a read-only rootfs skeleton with read-only binds of the node binary, its
 * libraries, the guest shim and the code; pid, ipc, uts, mount, cgroup and network namespaces (a networked sandbox
 * joins the one `SandboxNetwork` prepared); an unprivileged user with no capabilities; memory, pids and CPU limits;
 * a private /tmp.
 */
export function runcConfig(input: RuncConfigInput): Record<string, unknown> {
  const { spec } = input;
  const memoryBytes = spec.limits.memoryMB * 1024 * 1024;
  const mounts: Mount[] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=64k'] },
    {
      destination: '/tmp',
      type: 'tmpfs',
      source: 'tmpfs',
      options: ['nosuid', 'nodev', 'noexec', 'mode=1777', `size=${spec.limits.tmpMB}m`],
    },
    ...input.libraries.map((library) => bind(library, library)),
    bind(input.binary, guestPaths.node),
    bind(input.guestDir, guestPaths.guest),
    bind(spec.taskDir, guestPaths.task),
    ...(spec.network ? networkFiles.filter((file) => existsSync(file)).map((file) => bind(file, file)) : []),
  ];
  const namespaces: { type: string; path?: string }[] = ['pid', 'ipc', 'uts', 'mount', 'cgroup', 'network'].map(
    (type) => (type === 'network' && input.netnsPath !== undefined ? { type, path: input.netnsPath } : { type }),
  );
  const noCapabilities = { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.uid, gid: input.uid },
      args: [guestPaths.node, `--max-old-space-size=${input.heapMB}`, `${guestPaths.guest}/${guestShimPath}`],
      env: [
        ...Object.entries(spec.env ?? {}).map(([name, value]) => `${name}=${value}`),
        'PATH=/usr/bin',
        'HOME=/tmp',
        'TMPDIR=/tmp',
        'LANG=C.UTF-8',
        'TZ=UTC',
        'NODE_ENV=production',
        `${channelFdVariable}=${channelFd}`,
      ],
      cwd: guestPaths.task,
      capabilities: noCapabilities,
      rlimits: [
        { type: 'RLIMIT_NOFILE', hard: spec.limits.openFiles, soft: spec.limits.openFiles },
        { type: 'RLIMIT_CORE', hard: 0, soft: 0 },
      ],
      noNewPrivileges: true,
    },
    root: { path: input.rootfs, readonly: true },
    hostname: 'sandbox',
    mounts,
    linux: {
      namespaces,
      cgroupsPath: input.cgroupsPath,
      resources: {
        memory: { limit: memoryBytes, swap: memoryBytes },
        pids: { limit: spec.limits.pids },
        cpu: { quota: Math.round(spec.limits.cpus * cpuPeriodUs), period: cpuPeriodUs },
      },
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
      seccomp: sandboxSeccomp,
    },
  };
}

/** The runc (libseccomp) form of the sandbox denylist in `seccomp.ts`, which bwrap's BPF filter is built from too. */
export const sandboxSeccomp = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_AARCH64'],
  syscalls: [
    { names: [...deniedSyscalls], action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
    { names: [...enosysSyscalls], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: EPERM,
      args: [{ index: 0, value: cloneNewUser, valueTwo: cloneNewUser, op: 'SCMP_CMP_MASKED_EQ' }],
    },
  ],
};

/** Mount points in the shared skeleton: directories for directory binds, empty files for file binds. */
async function ensureMountPoints(rootfs: string, dirs: string[], files: string[]): Promise<void> {
  for (const dir of dirs) await mkdir(join(rootfs, dir), { recursive: true, mode: 0o755 });
  // runc gives a tmpfs the mode of its mount point: /tmp must be world-writable and sticky, as usual.
  await chmod(join(rootfs, 'tmp'), 0o1777);
  for (const file of files) {
    const path = join(rootfs, file);
    if (existsSync(path)) continue;
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    await writeFile(path, '', { flag: 'a', mode: 0o644 });
  }
}

async function firstPid(cgroup: SandboxCgroup): Promise<number | null> {
  for (const file of cgroup.procsFiles) {
    try {
      const pid = Number((await readFile(file, 'utf8')).split('\n')[0]);
      if (pid > 0) return pid;
    } catch {
      // Try the next controller.
    }
  }
  return null;
}

/**
 * What a previous Agent on this work dir left when it died: its containers (running ones too: nobody speaks to
 * them any more) and their bundles. Containers live in this work dir's own runc state dir, so none is another's.
 */
async function removeLeftovers(runcPath: string, workDir: string, logger: Logger): Promise<void> {
  const stateDir = join(workDir, 'runc', 'state');
  const bundles = join(workDir, 'runc', 'bundles');
  if (existsSync(stateDir)) {
    let ids: string[] = [];
    try {
      const { stdout } = await run(runcPath, ['--root', stateDir, 'list', '--quiet'], { timeout: 10_000 });
      ids = stdout.split('\n').filter((id) => id !== '');
    } catch (err) {
      logger.warn({ err }, 'cannot list leftover runc containers');
    }
    for (const id of ids) {
      await run(runcPath, ['--root', stateDir, 'delete', '--force', id], { timeout: 10_000 }).catch((err: unknown) =>
        logger.warn({ err, id }, 'cannot delete a leftover runc container'),
      );
    }
    if (ids.length > 0) logger.info({ count: ids.length }, 'deleted leftover runc containers');
  }
  await rm(bundles, { recursive: true, force: true });
}

/**
 * Sandboxes as OCI containers run by `runc`: each sandbox gets a bundle (its config.json) over one shared
 * read-only rootfs skeleton, built from read-only binds of host files; nothing is pulled. Needs root and cgroups.
 */
export class RuncRuntime implements SandboxRuntime {
  readonly kind = 'runc' as const;
  readonly isolating = true;
  readonly capabilities: RuntimeCapabilities;
  private readonly users = new SandboxUsers();
  private readonly rootfs: string;
  private readonly bundles: string;
  private readonly stateDir: string;

  private constructor(
    private readonly runcPath: string,
    workDir: string,
    private readonly guestDir: string,
    private readonly cgroups: Cgroups,
    private readonly cgroupName: string,
    private readonly network: SandboxNetwork,
    private readonly logger: Logger,
  ) {
    this.rootfs = join(workDir, 'runc', 'rootfs');
    this.bundles = join(workDir, 'runc', 'bundles');
    this.stateDir = join(workDir, 'runc', 'state');
    const note = `cgroup v${cgroups.version}`;
    const on = (mechanism: string, detail = note) => ({ mechanism, enforced: true, note: detail });
    this.capabilities = {
      filesystem: on('mount namespace', 'read-only rootfs: node, its libraries, the shim and the code'),
      network: on('network namespace', 'no network unless deployed with --network'),
      hostAddresses: network.enforcement,
      processes: on('pid namespace', 'the function sees only its own processes'),
      memory: on('cgroup memory limit'),
      pids: on('cgroup pids limit'),
      cpu: on('cgroup CPU quota and weight'),
      tmp: on('tmpfs size', 'private /tmp with a size cap'),
      openFiles: on('RLIMIT_NOFILE', 'per process'),
      syscalls: on('seccomp filter', seccompNote),
      scheduling: schedulingEnforcement(),
      freezing: freezingEnforcement(cgroups),
    };
  }

  static async open(options: RuncRuntimeOptions): Promise<RuncRuntime> {
    const runcPath = options.runcPath ?? '/usr/sbin/runc';
    if (!existsSync(runcPath)) {
      throw new PlatformError('UNAVAILABLE', `runc is not installed (no ${runcPath}): install the runc package`);
    }
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      throw new PlatformError('UNAVAILABLE', 'the runc sandbox needs root here; use --sandbox bwrap');
    }
    const logger = (options.logger ?? silentLogger).child({ component: 'runc' });
    // Before the cgroups: deleting a container also removes its groups, and what is left is then empty.
    await removeLeftovers(runcPath, options.workDir, logger);
    const cgroups = await Cgroups.open(options.cgroupName, undefined, options.nodeLimits);
    if (!(cgroups instanceof Cgroups)) {
      throw new PlatformError('UNAVAILABLE', `the runc sandbox needs cgroups: ${cgroups.unavailable}`);
    }
    const guestDir = await prepareGuestFiles(join(options.workDir, 'guest'));
    const runtime = new RuncRuntime(
      runcPath,
      options.workDir,
      guestDir,
      cgroups,
      options.cgroupName,
      await SandboxNetwork.open({ subnet: options.sandboxSubnet, logger: options.logger }),
      logger,
    );
    await mkdir(runtime.stateDir, { recursive: true, mode: 0o700 });
    await mkdir(runtime.bundles, { recursive: true, mode: 0o700 });
    return runtime;
  }

  async launch(spec: SandboxLaunchSpec): Promise<SandboxProcess> {
    const binary = await nodeBinaryFor(spec.runtime);
    const libraries = await sharedLibraries(binary);
    await ensureMountPoints(
      this.rootfs,
      ['proc', 'dev', 'tmp', guestPaths.guest, guestPaths.task, 'etc/ssl/certs'],
      [guestPaths.node, ...libraries, ...networkFiles.filter((file) => !file.endsWith('certs'))],
    );
    const uid = this.users.next() ?? 65534;
    const netns = spec.network ? await this.network.attach(spec.allowNet ?? []) : null;
    const cgroup = await this.cgroups
      .create(spec.instanceId, {
        memoryBytes: spec.limits.memoryMB * 1024 * 1024,
        pids: spec.limits.pids,
        cpus: spec.limits.cpus,
      })
      .catch(async (err: unknown) => {
        // The namespace is released with the sandbox; without a sandbox, here.
        await netns?.release();
        throw err;
      });
    const bundle = join(this.bundles, spec.instanceId);
    const id = `savassan-${spec.instanceId}`;
    try {
      await mkdir(bundle, { mode: 0o700 });
      const config = runcConfig({
        rootfs: this.rootfs,
        uid,
        binary,
        libraries,
        guestDir: this.guestDir,
        spec,
        cgroupsPath: `/${this.cgroupName}/${spec.instanceId}`,
        heapMB: heapLimitMB(spec.limits.memoryMB, true),
        netnsPath: netns?.path,
      });
      await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
      // runc's init and the container's process inherit the policy from the runc process.
      const [command, args] = batchScheduled(this.runcPath, [
        '--root',
        this.stateDir,
        'run',
        '--keep',
        '--preserve-fds',
        '1',
        '--bundle',
        bundle,
        id,
      ]);
      const child = spawn(command, args, {
        cwd: '/',
        env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' },
        stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        detached: true,
      });
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', (err) =>
          reject(new PlatformError('INTERNAL', `cannot start runc: ${err.message}`, { cause: err })),
        );
      });
      const proc = new ChildSandboxProcess(child, {
        guestTaskDir: guestPaths.task,
        channelFd,
        cgroup,
        // runc's own setup processes are gone by the time anyone asks: what is left runs in the container.
        tmpPath: async () => {
          const pid = await firstPid(cgroup);
          return pid === null ? null : `/proc/${pid}/root/tmp`;
        },
        terminate: () => this.runc(['kill', '--all', id, 'KILL']),
        monitor: true,
        release: async () => {
          await this.runc(['delete', '--force', id]);
          await rm(bundle, { recursive: true, force: true });
          await netns?.release();
        },
      });
      return proc;
    } catch (err) {
      await cgroup.remove();
      await rm(bundle, { recursive: true, force: true });
      await netns?.release();
      throw err;
    }
  }

  async close(): Promise<void> {
    await this.network.close();
    await this.cgroups.close();
  }

  private async runc(args: string[]): Promise<void> {
    try {
      await run(this.runcPath, ['--root', this.stateDir, ...args], { timeout: 10_000 });
    } catch (err) {
      this.logger.debug({ err, args }, 'runc command failed');
    }
  }
}

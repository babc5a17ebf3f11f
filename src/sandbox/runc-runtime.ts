import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type {
  Enforcement,
  RuntimeCapabilities,
  SandboxLaunchSpec,
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

const run = promisify(execFile);

export interface RuncRuntimeOptions {
  /** Where the runtime keeps the guest shim, the shared rootfs skeleton, bundles and runc's state. */
  workDir: string;
  /** Name of the parent cgroup of this node's sandboxes. */
  cgroupName: string;
  /** Limits of that parent group: the node's memory and pid budgets. */
  nodeLimits?: NodeCgroupLimits | undefined;
  runcPath?: string | undefined;
  logger?: Logger | undefined;
}

const networkFiles = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf', '/etc/ssl/certs'];
const cpuPeriodUs = 100_000;

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
}

/**
 * The OCI runtime config of one sandbox: a read-only rootfs skeleton with read-only binds of the node binary, its
 * libraries, the guest shim, the code and the Agent's socket; pid, ipc, uts, mount, cgroup and (unless allowed)
 * network namespaces; an unprivileged user with no capabilities; memory, pids and CPU limits; a private /tmp.
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
    bind(spec.socketDir, guestPaths.socketDir),
    ...(spec.network ? networkFiles.filter((file) => existsSync(file)).map((file) => bind(file, file)) : []),
  ];
  const namespaces = ['pid', 'ipc', 'uts', 'mount', 'cgroup', ...(spec.network ? [] : ['network'])];
  const noCapabilities = { bounding: [], effective: [], inheritable: [], permitted: [], ambient: [] };
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.uid, gid: input.uid },
      args: [guestPaths.node, `--max-old-space-size=${input.heapMB}`, `${guestPaths.guest}/${guestShimPath}`],
      env: [
        'PATH=/usr/bin',
        'HOME=/tmp',
        'TMPDIR=/tmp',
        'LANG=C.UTF-8',
        'TZ=UTC',
        'NODE_ENV=production',
        `SAVASSAN_SOCKET=${guestPaths.socketDir}/${spec.socketName}`,
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
      namespaces: namespaces.map((type) => ({ type })),
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

/** CLONE_NEWUSER: a function must not make a user namespace (and with it capabilities over new namespaces). */
const cloneNewUser = 0x10000000;

/**
 * Syscalls a function has no use for and that widen the kernel surface an escape would use: new namespaces and
 * mounts, keyrings, BPF, perf, userfaultfd, io_uring, module and kexec loading, ptrace. `clone3` answers ENOSYS so
 * the C library falls back to `clone`, whose flags a filter can see.
 */
export const sandboxSeccomp = {
  defaultAction: 'SCMP_ACT_ALLOW',
  architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_AARCH64'],
  syscalls: [
    {
      names: [
        'unshare',
        'setns',
        'mount',
        'umount2',
        'pivot_root',
        'keyctl',
        'add_key',
        'request_key',
        'bpf',
        'perf_event_open',
        'userfaultfd',
        'io_uring_setup',
        'io_uring_enter',
        'io_uring_register',
        'ptrace',
        'process_vm_readv',
        'process_vm_writev',
        'kexec_load',
        'kexec_file_load',
        'init_module',
        'finit_module',
        'delete_module',
        'open_by_handle_at',
        'reboot',
        'swapon',
        'swapoff',
      ],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 1,
    },
    { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
    {
      names: ['clone'],
      action: 'SCMP_ACT_ERRNO',
      errnoRet: 1,
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
    hostAddresses: Enforcement,
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
      hostAddresses,
      processes: on('pid namespace', 'the function sees only its own processes'),
      memory: on('cgroup memory limit'),
      pids: on('cgroup pids limit'),
      cpu: on('cgroup CPU quota and weight'),
      tmp: on('tmpfs size', 'private /tmp with a size cap'),
      openFiles: on('RLIMIT_NOFILE', 'per process'),
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
      await protectHostFromSandboxes(),
      (options.logger ?? silentLogger).child({ component: 'runc' }),
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
      ['proc', 'dev', 'tmp', guestPaths.guest, guestPaths.task, guestPaths.socketDir, 'etc/ssl/certs'],
      [guestPaths.node, ...libraries, ...networkFiles.filter((file) => !file.endsWith('certs'))],
    );
    const uid = this.users.next() ?? 65534;
    const cgroup = await this.cgroups.create(spec.instanceId, {
      memoryBytes: spec.limits.memoryMB * 1024 * 1024,
      pids: spec.limits.pids,
      cpus: spec.limits.cpus,
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
      });
      await writeFile(join(bundle, 'config.json'), JSON.stringify(config));
      // runc's init and the container's process inherit the policy from the runc process.
      const [command, args] = batchScheduled(this.runcPath, [
        '--root',
        this.stateDir,
        'run',
        '--keep',
        '--bundle',
        bundle,
        id,
      ]);
      const child = spawn(command, args, {
        env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin' },
        stdio: ['ignore', 'ignore', 'pipe'],
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
        cgroup,
        // runc's own setup processes are gone by the time anyone asks: what is left runs in the container.
        tmpPath: async () => {
          const pid = await firstPid(cgroup);
          return pid === null ? null : `/proc/${pid}/root/tmp`;
        },
        terminate: () => this.runc(['kill', '--all', id, 'KILL']),
        release: async () => {
          await this.runc(['delete', '--force', id]);
          await rm(bundle, { recursive: true, force: true });
        },
      });
      return proc;
    } catch (err) {
      await cgroup.remove();
      await rm(bundle, { recursive: true, force: true });
      throw err;
    }
  }

  close(): Promise<void> {
    return this.cgroups.close();
  }

  private async runc(args: string[]): Promise<void> {
    try {
      await run(this.runcPath, ['--root', this.stateDir, ...args], { timeout: 10_000 });
    } catch (err) {
      this.logger.debug({ err, args }, 'runc command failed');
    }
  }
}

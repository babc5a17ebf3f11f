import { access, constants, mkdir, readFile, readdir, realpath, rmdir, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Enforcement } from '../core/ports/sandbox-runtime.js';
import { isProcessAlive } from './process-alive.js';

/** Limits one sandbox's cgroup enforces. */
export interface CgroupLimits {
  memoryBytes: number;
  pids: number;
  cpus: number;
}

/**
 * Limits of the parent group of all the node's sandboxes: the node's budgets, so that even a sandbox escaping its
 * own limits cannot take the memory or the pids the platform (and the rest of the host) needs.
 */
export interface NodeCgroupLimits {
  memoryBytes: number;
  pids: number;
}

/** Counters read back from a sandbox's cgroup. */
export interface CgroupHits {
  memory: boolean;
  pids: boolean;
}

const cpuPeriodUs = 100_000;
/**
 * CPU weight of all sandboxes together, where one process weighs 1024 (cgroup v1 `cpu.shares`): one process's. The
 * weight only matters when the CPU is contended; then the sandboxes together get as much as one other busy process
 * (on cgroup v1 every thread of the control plane counts as one) or one sibling group such as `system.slice` (v2).
 * Less (a quarter of one process) let any busy process on the host take the CPU from them, so that invocations
 * queued behind a load generator; more (one process per CPU) let CPU-bound functions take it from the control
 * plane, whose processes share one group under cgroup v2.
 */
const sandboxesCpuShares = 1024;
/** The cgroup v2 `cpu.weight` (1..10000, 100 = the default of a group) of `sandboxesCpuShares`. */
const sandboxesCpuWeight = Math.round((sandboxesCpuShares / 1024) * 100);

const v1Controllers = ['memory', 'pids', 'cpu'] as const;
/** Used where mounted: the freezer stops idle sandboxes, cpuacct counts their CPU time. */
const v1OptionalControllers = ['freezer', 'cpuacct'] as const;
type V1Controller = (typeof v1Controllers)[number] | (typeof v1OptionalControllers)[number];

async function writable(path: string): Promise<boolean> {
  try {
    await access(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

async function readCounter(file: string, name: string): Promise<number> {
  try {
    const text = await readFile(file, 'utf8');
    const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
    return match?.[1] === undefined ? 0 : Number(match[1]);
  } catch {
    return 0;
  }
}

async function writeIfPresent(file: string, value: string): Promise<void> {
  try {
    await writeFile(file, value);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** Kill every process listed in a cgroup.procs file; the group can only be removed once it is empty. */
async function killMembers(procsFile: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(procsFile, 'utf8');
  } catch {
    return 0;
  }
  const pids = text.split('\n').filter((line) => line !== '');
  for (const pid of pids) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // Exited meanwhile.
    }
  }
  return pids.length;
}

async function removeDir(dir: string, procsFile: string): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    try {
      await rmdir(dir);
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return;
      if (code !== 'EBUSY') throw err;
      await killMembers(procsFile);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Empty groups left by a Savassan process that died without cleaning up (`savassan-<pid>...` of a dead pid). */
async function removeStaleGroups(base: string): Promise<void> {
  for (const entry of await readdir(base).catch(() => [] as string[])) {
    const pid = /^savassan-(?:test-)?(\d+)(?:-|$)/.exec(entry)?.[1];
    if (pid === undefined || isProcessAlive(Number(pid))) continue;
    const dir = join(base, entry);
    for (const child of await readdir(dir).catch(() => [] as string[])) {
      if (/^[0-9a-f-]{36}$/.test(child)) await rmdir(join(dir, child)).catch(() => {});
    }
    await rmdir(dir).catch(() => {});
  }
}

/** Whether idle sandboxes are frozen on this host, for `RuntimeCapabilities.freezing`. */
export function freezingEnforcement(cgroups: Cgroups | { unavailable: string }): Enforcement {
  if (!(cgroups instanceof Cgroups)) {
    return { mechanism: 'none', enforced: false, note: `${cgroups.unavailable}: idle sandboxes are not frozen` };
  }
  if (!cgroups.canFreeze) {
    const missing = cgroups.version === 1 ? 'no v1 freezer controller' : 'no cgroup.freeze (kernel before 5.2)';
    return { mechanism: 'none', enforced: false, note: `${missing}: idle sandboxes are not frozen` };
  }
  const file = cgroups.version === 1 ? 'freezer.state' : 'cgroup.freeze';
  return { mechanism: 'cgroup freezer', enforced: true, note: `idle sandboxes are frozen (${file})` };
}

/** One sandbox's cgroup (in every controller under v1, one directory under v2). */
export interface SandboxCgroup {
  /** Files the sandbox's first process writes its pid into to join the group, before it runs anything. */
  readonly procsFiles: string[];
  hits(): Promise<CgroupHits>;
  memoryBytes(): Promise<number | null>;
  /** CPU time the group used so far in nanoseconds, or null where not counted (no cpuacct under v1). */
  cpuUsageNs(): Promise<number | null>;
  /** Whether `freeze` works here. */
  readonly freezable: boolean;
  /** Stop every process of the group (the kernel's freezer) until `thaw`; they use no CPU meanwhile. */
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** Kill anything left in the group (thawed first: a frozen process cannot die) and remove it. */
  remove(): Promise<void>;
}

/** Where each v1 controller's group of a sandbox is, by its parent's index. */
interface V1Layout {
  freezer: boolean;
  memory: string;
  pids: string;
  cpu: string;
  freezerDir: string | null;
  cpuacct: string | null;
}

function v1Layout(parents: Map<V1Controller, string>): V1Layout {
  return {
    freezer: parents.has('freezer'),
    memory: parents.get('memory') ?? '',
    pids: parents.get('pids') ?? '',
    cpu: parents.get('cpu') ?? '',
    freezerDir: parents.get('freezer') ?? null,
    // cpuacct co-mounted with cpu counts in the cpu hierarchy.
    cpuacct: parents.get('cpuacct') ?? parents.get('cpu') ?? null,
  };
}

/**
 * Per-sandbox cgroups under one parent group for the node's sandboxes, on cgroup v1 (memory, pids and cpu
 * controllers, as on these machines) or v2. The parent weighs one process (`sandboxesCpuShares`): the control plane
 * keeps its share against all sandboxes together; each sandbox gets a memory limit without swap, a pids limit and a
 * CPU quota.
 */
export class Cgroups {
  private constructor(
    readonly version: 1 | 2,
    private readonly parents: string[],
    private readonly layout: { freezer: boolean },
  ) {}

  /**
   * Set up the parent group, or explain why this host cannot (not root, nothing mounted, read-only). With `node`
   * limits the parent group gets them (memory without swap, pids).
   */
  static async open(
    name: string,
    root = '/sys/fs/cgroup',
    node?: NodeCgroupLimits,
  ): Promise<Cgroups | { unavailable: string }> {
    if (process.platform !== 'linux') return { unavailable: 'cgroups exist on Linux only' };
    try {
      await access(join(root, 'cgroup.controllers'));
    } catch {
      return Cgroups.openV1(name, root, node);
    }
    return Cgroups.openV2(name, root, node);
  }

  private static async openV1(
    name: string,
    root: string,
    node: NodeCgroupLimits | undefined,
  ): Promise<Cgroups | { unavailable: string }> {
    const parents = new Map<V1Controller, string>();
    const seen = new Set<string>();
    for (const controller of [...v1Controllers, ...v1OptionalControllers]) {
      const base = join(root, controller);
      const required = (v1Controllers as readonly string[]).includes(controller);
      if (!(await writable(base))) {
        if (required) return { unavailable: `cgroup v1 ${controller} controller at ${base} is not writable` };
        continue;
      }
      // Co-mounted controllers (`cpu,cpuacct`) are one hierarchy: one group there.
      const real = await realpath(base).catch(() => base);
      if (seen.has(real)) continue;
      seen.add(real);
      parents.set(controller, join(base, name));
    }
    // Every hierarchy, not only ours: runc joins its containers to all of them (freezer, devices, cpuset...).
    for (const hierarchy of await readdir(root).catch(() => [] as string[])) {
      await removeStaleGroups(join(root, hierarchy));
    }
    try {
      for (const parent of parents.values()) await mkdir(parent, { recursive: true });
      await writeFile(join(root, 'cpu', name, 'cpu.shares'), String(sandboxesCpuShares));
      const memory = join(root, 'memory', name);
      // Children count against the parent's memory (hierarchical accounting); already the default on new kernels.
      await writeIfPresent(join(memory, 'memory.use_hierarchy'), '1').catch(() => {});
      if (node !== undefined) {
        await writeFile(join(memory, 'memory.limit_in_bytes'), String(node.memoryBytes));
        await writeIfPresent(join(memory, 'memory.memsw.limit_in_bytes'), String(node.memoryBytes));
        await writeFile(join(root, 'pids', name, 'pids.max'), String(node.pids));
      }
    } catch (err) {
      return { unavailable: `cannot create cgroup ${name}: ${(err as Error).message}` };
    }
    return new Cgroups(1, [...parents.values()], v1Layout(parents));
  }

  private static async openV2(
    name: string,
    root: string,
    node: NodeCgroupLimits | undefined,
  ): Promise<Cgroups | { unavailable: string }> {
    const parent = join(root, name);
    try {
      const available = (await readFile(join(root, 'cgroup.controllers'), 'utf8')).split(/\s+/);
      for (const controller of ['memory', 'pids', 'cpu']) {
        if (!available.includes(controller)) return { unavailable: `cgroup v2 has no ${controller} controller here` };
      }
      await writeFile(join(root, 'cgroup.subtree_control'), '+memory +pids +cpu');
      await mkdir(parent, { recursive: true });
      await writeFile(join(parent, 'cgroup.subtree_control'), '+memory +pids +cpu');
      await writeFile(join(parent, 'cpu.weight'), String(sandboxesCpuWeight));
      if (node !== undefined) {
        await writeFile(join(parent, 'memory.max'), String(node.memoryBytes));
        await writeIfPresent(join(parent, 'memory.swap.max'), '0');
        await writeFile(join(parent, 'pids.max'), String(node.pids));
      }
    } catch (err) {
      return { unavailable: `cannot set up cgroup v2 group ${parent}: ${(err as Error).message}` };
    }
    // cgroup.freeze exists in every non-root group of kernels since 5.2.
    const freezer = await access(join(parent, 'cgroup.freeze')).then(
      () => true,
      () => false,
    );
    return new Cgroups(2, [parent], { freezer });
  }

  /** Whether idle sandboxes can be frozen (the v1 freezer controller, or v2's cgroup.freeze). */
  get canFreeze(): boolean {
    return this.layout.freezer;
  }

  /** Create the group of one sandbox with its limits. */
  async create(id: string, limits: CgroupLimits): Promise<SandboxCgroup> {
    const dirs = this.parents.map((parent) => join(parent, id));
    for (const dir of dirs) await mkdir(dir);
    const group =
      this.version === 1
        ? new V1Group(dirs, this.layout as V1Layout, id)
        : new V2Group(dirs[0] ?? '', this.layout.freezer);
    try {
      await group.limit(limits);
    } catch (err) {
      await group.remove();
      throw err;
    }
    return group;
  }

  /** Remove the parent groups (after every sandbox group is gone), also in controllers runc joined on its own. */
  async close(): Promise<void> {
    for (const parent of this.parents) await rmdir(parent).catch(() => {});
    if (this.version !== 1) return;
    const root = dirname(dirname(this.parents[0] ?? '/'));
    const name = basename(this.parents[0] ?? '');
    const controllers = await readdir(root).catch(() => [] as string[]);
    for (const controller of controllers) await rmdir(join(root, controller, name)).catch(() => {});
  }
}

class V1Group implements SandboxCgroup {
  readonly procsFiles: string[];
  readonly freezable: boolean;
  private readonly memory: string;
  private readonly pids: string;
  private readonly cpu: string;
  private readonly freezer: string | null;
  private readonly cpuacct: string | null;

  constructor(
    private readonly dirs: string[],
    layout: V1Layout,
    id: string,
  ) {
    this.procsFiles = dirs.map((dir) => join(dir, 'cgroup.procs'));
    this.memory = join(layout.memory, id);
    this.pids = join(layout.pids, id);
    this.cpu = join(layout.cpu, id);
    this.freezer = layout.freezerDir === null ? null : join(layout.freezerDir, id);
    this.cpuacct = layout.cpuacct === null ? null : join(layout.cpuacct, id);
    this.freezable = this.freezer !== null;
  }

  async freeze(): Promise<void> {
    if (this.freezer !== null) await writeFile(join(this.freezer, 'freezer.state'), 'FROZEN');
  }

  async thaw(): Promise<void> {
    if (this.freezer !== null) await writeIfPresent(join(this.freezer, 'freezer.state'), 'THAWED');
  }

  async cpuUsageNs(): Promise<number | null> {
    if (this.cpuacct === null) return null;
    try {
      return Number(await readFile(join(this.cpuacct, 'cpuacct.usage'), 'utf8'));
    } catch {
      return null;
    }
  }

  async limit(limits: CgroupLimits): Promise<void> {
    await writeFile(join(this.memory, 'memory.limit_in_bytes'), String(limits.memoryBytes));
    // No swap either, where swap accounting exists.
    await writeIfPresent(join(this.memory, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
    await writeFile(join(this.pids, 'pids.max'), String(limits.pids));
    await writeFile(join(this.cpu, 'cpu.cfs_period_us'), String(cpuPeriodUs));
    await writeFile(join(this.cpu, 'cpu.cfs_quota_us'), String(Math.round(limits.cpus * cpuPeriodUs)));
  }

  async hits(): Promise<CgroupHits> {
    const [oomKills, pidsMax] = await Promise.all([
      readCounter(join(this.memory, 'memory.oom_control'), 'oom_kill'),
      readCounter(join(this.pids, 'pids.events'), 'max'),
    ]);
    return { memory: oomKills > 0, pids: pidsMax > 0 };
  }

  async memoryBytes(): Promise<number | null> {
    try {
      return Number(await readFile(join(this.memory, 'memory.usage_in_bytes'), 'utf8'));
    } catch {
      return null;
    }
  }

  async remove(): Promise<void> {
    await this.thaw().catch(() => {});
    for (const dir of this.dirs) await removeDir(dir, join(dir, 'cgroup.procs'));
  }
}

class V2Group implements SandboxCgroup {
  readonly procsFiles: string[];

  constructor(
    private readonly dir: string,
    readonly freezable: boolean,
  ) {
    this.procsFiles = [join(dir, 'cgroup.procs')];
  }

  async freeze(): Promise<void> {
    if (this.freezable) await writeFile(join(this.dir, 'cgroup.freeze'), '1');
  }

  async thaw(): Promise<void> {
    if (this.freezable) await writeIfPresent(join(this.dir, 'cgroup.freeze'), '0');
  }

  async cpuUsageNs(): Promise<number | null> {
    const usec = await readCounter(join(this.dir, 'cpu.stat'), 'usage_usec');
    return usec * 1000;
  }

  async limit(limits: CgroupLimits): Promise<void> {
    await writeFile(join(this.dir, 'memory.max'), String(limits.memoryBytes));
    await writeIfPresent(join(this.dir, 'memory.swap.max'), '0');
    await writeFile(join(this.dir, 'pids.max'), String(limits.pids));
    await writeFile(join(this.dir, 'cpu.max'), `${Math.round(limits.cpus * cpuPeriodUs)} ${cpuPeriodUs}`);
  }

  async hits(): Promise<CgroupHits> {
    const [oomKills, pidsMax] = await Promise.all([
      readCounter(join(this.dir, 'memory.events'), 'oom_kill'),
      readCounter(join(this.dir, 'pids.events'), 'max'),
    ]);
    return { memory: oomKills > 0, pids: pidsMax > 0 };
  }

  async memoryBytes(): Promise<number | null> {
    try {
      return Number(await readFile(join(this.dir, 'memory.current'), 'utf8'));
    } catch {
      return null;
    }
  }

  async remove(): Promise<void> {
    await writeIfPresent(join(this.dir, 'cgroup.kill'), '1').catch(() => {});
    await this.thaw().catch(() => {});
    await removeDir(this.dir, join(this.dir, 'cgroup.procs'));
  }
}

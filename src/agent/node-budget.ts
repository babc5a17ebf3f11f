import { readFile } from 'node:fs/promises';
import { totalmem } from 'node:os';
import { PlatformError } from '../core/errors.js';

/**
 * What all the sandboxes of a node may hold together: the sum of their memory limits and of their pids limits.
 * The Agent refuses a creation past either (429), and the parent cgroup of the node's sandboxes is limited to the
 * same figures, so even a sandbox escaping its own limits cannot take what the platform and the host need.
 */
export interface NodeBudget {
  memoryMB: number;
  pids: number;
}

export interface NodeBudgetInput {
  /** `--node-memory`: MB for all sandboxes together. Default: the host's memory less a reserve for the platform. */
  memoryMB?: number | undefined;
  /** `--node-pids`: processes and threads for all sandboxes together. Default: the kernel's limit less a reserve. */
  pids?: number | undefined;
}

const mib = 1024 * 1024;

/** The host's memory less what the platform and the rest of the host keep: 1/8, at least 512 MB, at most half. */
export function defaultNodeMemoryMB(totalMB: number): number {
  const reserve = Math.max(512, Math.round(totalMB / 8));
  return Math.max(Math.floor(totalMB / 2), totalMB - reserve);
}

/** The kernel's limit on tasks (the lower of pid_max and threads-max) less a quarter, at least 4096, at most half. */
export function defaultNodePids(kernelLimit: number): number {
  const reserve = Math.max(4096, Math.round(kernelLimit / 4));
  return Math.max(Math.floor(kernelLimit / 2), kernelLimit - reserve);
}

async function readNumber(file: string): Promise<number | null> {
  try {
    const value = Number((await readFile(file, 'utf8')).trim());
    return Number.isSafeInteger(value) && value > 0 ? value : null;
  } catch {
    return null;
  }
}

/** How many tasks (processes and threads) the kernel allows in all: the lower of pid_max and threads-max. */
export async function kernelTaskLimit(): Promise<number> {
  const limits = (
    await Promise.all([readNumber('/proc/sys/kernel/pid_max'), readNumber('/proc/sys/kernel/threads-max')])
  ).filter((n): n is number => n !== null);
  // 32768 is the kernel's default pid_max.
  return limits.length === 0 ? 32_768 : Math.min(...limits);
}

/**
 * Validate the node's budgets and default the missing ones from the host. One sandbox must fit: memory at least
 * 128 MB (the smallest function) and pids at least one sandbox's limit (`sandboxPids`).
 */
export async function compileNodeBudget(input: NodeBudgetInput, sandboxPids: number): Promise<NodeBudget> {
  const memoryMB = input.memoryMB ?? defaultNodeMemoryMB(Math.floor(totalmem() / mib));
  const pids = input.pids ?? defaultNodePids(await kernelTaskLimit());
  if (!Number.isInteger(memoryMB) || memoryMB < 128) {
    throw new PlatformError('INVALID_CONFIG', `node memory must be an integer of at least 128 MB, got ${memoryMB}`);
  }
  if (!Number.isInteger(pids) || pids < sandboxPids) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `node pids must be an integer of at least ${sandboxPids} (one sandbox's limit), got ${pids}`,
    );
  }
  return { memoryMB, pids };
}

/** The budgets as the limits of the node's parent cgroup. */
export function nodeCgroupLimits(budget: NodeBudget): { memoryBytes: number; pids: number } {
  return { memoryBytes: budget.memoryMB * mib, pids: budget.pids };
}

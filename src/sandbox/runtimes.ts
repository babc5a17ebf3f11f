import type { Logger } from '../core/logger.js';
import type { Enforcement, SandboxRuntime } from '../core/ports/sandbox-runtime.js';
import { BwrapRuntime } from './bwrap-runtime.js';
import type { NodeCgroupLimits } from './cgroups.js';
import { ProcessRuntime } from './process-runtime.js';
import { RuncRuntime } from './runc-runtime.js';

export type SandboxKind = 'process' | 'bwrap' | 'runc';

/**
 * The sandbox runtime of a node; isolating runtimes check the host and set up the node's cgroup first, limited to
 * `nodeLimits` (the node's budgets) when given. `SAVASSAN_SANDBOX_SUBNET` (an IPv4 CIDR, default 10.254.0.0/16) is
 * where networked sandboxes' links take their addresses from: pick one no network this host must reach uses.
 */
export function createRuntime(
  kind: SandboxKind,
  workDir: string,
  logger: Logger,
  nodeLimits?: NodeCgroupLimits,
): Promise<SandboxRuntime> {
  const cgroupName = `savassan-${process.pid}`;
  const sandboxSubnet = process.env['SAVASSAN_SANDBOX_SUBNET'] || undefined;
  switch (kind) {
    case 'process':
      return Promise.resolve(new ProcessRuntime());
    case 'bwrap':
      return BwrapRuntime.open({ workDir, cgroupName, logger, sandboxSubnet, nodeLimits });
    case 'runc':
      return RuncRuntime.open({ workDir, cgroupName, logger, sandboxSubnet, nodeLimits });
  }
}

/** The warning every node running the `process` runtime carries. */
export const unisolatedWarning = 'sandboxes are plain processes: function code is NOT isolated from the host';

/** What the node cannot enforce, as warnings for `savassan start` and `GET /v1/nodes`. */
export function runtimeWarnings(runtime: SandboxRuntime): string[] {
  if (!runtime.isolating) return [unisolatedWarning];
  return (Object.entries(runtime.capabilities) as [string, Enforcement][])
    .filter(([, enforcement]) => !enforcement.enforced)
    .map(([limit, enforcement]) => `${limit} is not enforced: ${enforcement.note}`);
}

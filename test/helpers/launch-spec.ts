import { join } from 'node:path';
import type { SandboxLaunchSpec } from '../../src/core/ports/sandbox-runtime.js';

/** A sandbox's launch spec for runtime tests: its code in `root/code`, its scratch space in `root/scratch`. */
export function launchSpecIn(root: string): SandboxLaunchSpec {
  return {
    instanceId: 'i-1',
    taskDir: join(root, 'code'),
    scratchDir: join(root, 'scratch'),
    runtime: 'nodejs20',
    network: false,
    limits: { memoryMB: 64, pids: 64, openFiles: 256, tmpMB: 16, cpus: 1 },
  };
}

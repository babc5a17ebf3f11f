import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import type { Enforcement } from '../core/ports/sandbox-runtime.js';

/** util-linux's chrt, on every Debian and most other systems (it is in an essential package). */
const chrtCandidates = ['/usr/bin/chrt', '/bin/chrt'];

/** chrt, if it is here and this process may start a command under SCHED_BATCH with it; else why not. */
function findChrt(): { path: string } | { unavailable: string } {
  const path = chrtCandidates.find((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
  if (path === undefined) return { unavailable: 'chrt (util-linux) is missing' };
  try {
    // Once per process (~1 ms): where sched_setscheduler is refused (some seccomp profiles, gVisor), chrt would
    // fail every sandbox's start instead.
    execFileSync(path, ['--batch', '0', 'true'], { stdio: 'ignore', timeout: 5000 });
    return { path };
  } catch (err) {
    return { unavailable: `chrt cannot start a process under SCHED_BATCH here (${(err as Error).message})` };
  }
}

/** Found on first use, by the first runtime built: not when this module is merely imported (every CLI command). */
let chrt: { path: string } | { unavailable: string } | undefined;
const probedChrt = () => (chrt ??= findChrt());

/**
 * Sandboxes run under Linux's SCHED_BATCH policy: a sandbox woken by its invocation does not preempt the process
 * that woke it (the Agent's event loop, which is also the gateway's in embedded mode); it runs when a CPU is free
 * or at the next scheduler tick. With the normal policy every write to a sandbox's socket could hand the CPU to
 * the sandbox mid-way through the platform's work, so under load the one event loop that serves every
 * invocation waited behind the functions it was feeding. CPU shares between sandboxes are unchanged, and an
 * unprivileged process may choose SCHED_BATCH, so this needs nothing from the host but chrt.
 *
 * Returns the command and arguments that start `command args` under SCHED_BATCH (through chrt, which execs it:
 * same process, one exec more), or them unchanged where chrt is missing (`schedulingEnforcement` says so).
 */
export function batchScheduled(command: string, args: readonly string[]): [string, string[]] {
  const found = probedChrt();
  if (!('path' in found)) return [command, [...args]];
  return [found.path, ['--batch', '0', command, ...args]];
}

/** What `batchScheduled` gives sandboxes on this host, for a runtime's capabilities. */
export function schedulingEnforcement(): Enforcement {
  const found = probedChrt();
  return 'path' in found
    ? {
        mechanism: 'SCHED_BATCH',
        enforced: true,
        note: 'a sandbox never preempts the platform when it wakes up; CPU shares are unchanged',
      }
    : {
        mechanism: 'none',
        enforced: false,
        note: `${found.unavailable}: sandboxes can preempt the platform when they wake up`,
      };
}

import { randomInt } from 'node:crypto';

/** First host uid handed to sandboxes; far above any system or login user. */
const firstUid = 1_000_000;
const uidCount = 1_000_000;

/** The host uids sandboxes run as (when the Agent is root): firewall rules match on them. */
export const sandboxUidRange = { first: firstUid, last: firstUid + uidCount - 1 } as const;

/**
 * Host user ids for sandboxes: when the Agent runs as root, each sandbox gets a fresh unprivileged uid (and gid)
 * of its own, so even outside its namespaces it owns nothing and can signal no other sandbox. Without root the
 * sandbox runs as the Agent's user (bubblewrap then maps it inside its user namespace).
 */
export class SandboxUsers {
  /** Starts at a random place so agents on one host (and a restarted agent) rarely hand out the same uids. */
  private counter = randomInt(uidCount);
  private readonly root = typeof process.getuid === 'function' && process.getuid() === 0;

  /** The uid (also the gid) for the next sandbox, or null to run it as the Agent's own user. */
  next(): number | null {
    if (!this.root) return null;
    const uid = firstUid + (this.counter % uidCount);
    this.counter += 1;
    return uid;
  }
}

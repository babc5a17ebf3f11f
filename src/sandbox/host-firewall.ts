import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { Enforcement } from '../core/ports/sandbox-runtime.js';
import { sandboxUidRange } from './sandbox-users.js';

const run = promisify(execFile);
const chain = 'SAVASSAN-SANDBOX';

async function tables(binary: string, args: string[]): Promise<void> {
  await run(binary, ['-w', '5', ...args]);
}

/** Set up one family's rules; idempotent (the chain is flushed and refilled, the jump added once). */
async function protectFamily(binary: 'iptables' | 'ip6tables'): Promise<void> {
  await tables(binary, ['-N', chain]).catch(() => {}); // exists already
  await tables(binary, ['-F', chain]);
  // This host's own addresses (loopback and every local interface): the gateway, databases, the agent's gRPC.
  await tables(binary, ['-A', chain, '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', 'REJECT']);
  // Link-local: cloud metadata services.
  const linkLocal = binary === 'iptables' ? '169.254.0.0/16' : 'fe80::/10';
  await tables(binary, ['-A', chain, '-d', linkLocal, '-j', 'REJECT']);
  const jump = [
    'OUTPUT',
    '-m',
    'owner',
    '--uid-owner',
    `${sandboxUidRange.first}-${sandboxUidRange.last}`,
    '-j',
    chain,
  ];
  const present = await tables(binary, ['-C', ...jump]).then(
    () => true,
    () => false,
  );
  if (!present) await tables(binary, ['-I', ...jump]);
}

/**
 * Keeps functions deployed with `--network` (which share the host's network) off this host's own addresses and
 * link-local ones, by the sandbox uids: packets from those uids to a local address are rejected. Needs root and
 * iptables; says what it could not do instead of failing.
 */
export async function protectHostFromSandboxes(): Promise<Enforcement> {
  const mechanism = 'iptables owner match on the sandbox uids';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
    return { mechanism, enforced: false, note: 'not root: functions deployed with --network can reach this host' };
  }
  try {
    await protectFamily('iptables');
  } catch (err) {
    const why = (err as Error).message.split('\n')[0] ?? '';
    return { mechanism, enforced: false, note: `iptables failed (${why}): --network functions can reach this host` };
  }
  // IPv6 may be off on the host; IPv4 holds the rules that matter most.
  const v6 = await protectFamily('ip6tables').then(
    () => '',
    () => ' (IPv4 only: ip6tables failed)',
  );
  return {
    mechanism,
    enforced: true,
    note: `--network functions cannot reach this host's own or link-local addresses${v6}`,
  };
}

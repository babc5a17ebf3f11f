import { execFile } from 'node:child_process';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { randomInt } from 'node:crypto';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { Enforcement } from '../core/ports/sandbox-runtime.js';
import { ipv4Cidr, type Ipv4Cidr } from '../core/function-config.js';
import { deniedIpv4Ranges } from '../core/net-ranges.js';
import { isProcessAlive } from './process-alive.js';

/** The default range networked sandboxes take their addresses from: a /31 each. */
const defaultSandboxSubnet = '10.254.0.0/16';

/** Where a networked sandbox may never connect unless its function allows a CIDR with `--allow-net`. */
const deniedRanges = deniedIpv4Ranges;

const netnsDir = '/run/netns';
/** Named namespaces: `savassan-<agent pid>-<n>`; the pid says whether its owner still runs. */
const netnsPattern = /^savassan-(\d+)-\d+$/;
/** Host ends of the veth pairs: `svn<slot>`; the slot is the sandbox's /31 in the subnet. */
const vethPrefix = 'svn';
const vethPattern = /^svn(\d+)$/;
const chainPrefix = 'SAVASSAN-';
/** The chain the owner-match firewall of earlier versions left behind. */
const legacyChain = 'SAVASSAN-SANDBOX';
/**
 * Every packet from, to or towards a sandbox link passes this chain (jumped to from INPUT, FORWARD and OUTPUT for
 * `svn+`): each sandbox's jumps are inserted at its top, and its last rule rejects whatever no sandbox chain took,
 * so a link whose rules are missing (being set up, removed by a stale cleanup, flushed by hand) is closed, not open.
 */
const guardChain = 'SAVASSAN-GUARD';
/** The jumps into the guard chain; the host's own new connections to a sandbox (OUTPUT) are stopped there too. */
const guardJumps = [
  ['INPUT', '-i', `${vethPrefix}+`],
  ['FORWARD', '-i', `${vethPrefix}+`],
  ['FORWARD', '-o', `${vethPrefix}+`],
  ['OUTPUT', '-o', `${vethPrefix}+`],
] as const;

export interface SandboxNetworkOptions {
  /** IPv4 range the sandboxes' point-to-point links take addresses from (default `defaultSandboxSubnet`). */
  subnet?: string | undefined;
  /** Resolvers networked sandboxes may reach on port 53 (default: the IPv4 `nameserver`s of /etc/resolv.conf). */
  nameservers?: string[] | undefined;
  logger?: Logger | undefined;
}

/** A networked sandbox's namespace: join it by `path` (runc, nsenter); `release()` removes it and its rules. */
export interface SandboxNetns {
  readonly path: string;
  /** The sandbox's address (the host end is the other address of its /31). */
  readonly address: string;
  release(): Promise<void>;
}

function run(command: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command} ${args.join(' ')}: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
    child.stdin?.on('error', () => {});
    child.stdin?.end(input ?? '');
  });
}

function intToIp(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** The IPv4 nameservers of a resolv.conf. */
export function nameserversOf(resolvConf: string): string[] {
  const servers: string[] = [];
  for (const line of resolvConf.split('\n')) {
    const match = /^\s*nameserver\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line);
    if (match?.[1] !== undefined) servers.push(match[1]);
  }
  return servers;
}

interface SlotRules {
  veth: string;
  chain: string;
  comment: string;
  sandboxIp: string;
}

function slotNames(slot: number, subnet: Ipv4Cidr): SlotRules {
  return namesOf(`${vethPrefix}${slot}`, intToIp(subnet.base + slot * 2 + 1));
}

/** The names of a slot's rules, from its host-side veth. */
function namesOf(veth: string, sandboxIp: string): SlotRules {
  return { veth, chain: `${chainPrefix}${veth}`, comment: `savassan:${veth}`, sandboxIp };
}

/** The jumps into a sandbox's chain and its NAT rule, as `iptables-restore` rule specs without `-A`/`-D`. */
function hookRules(names: SlotRules): { filter: string[]; nat: string[] } {
  // Quoted as `iptables -S` prints it, so a rule is found by its text when it is removed.
  const mark = `-m comment --comment "${names.comment}"`;
  return {
    filter: [
      `${guardChain} -i ${names.veth} ${mark} -j ${names.chain}`,
      `${guardChain} -o ${names.veth} ${mark} -j ${names.chain}`,
    ],
    nat: [`POSTROUTING -s ${names.sandboxIp}/32 ${mark} -j MASQUERADE`],
  };
}

/**
 * The `iptables-restore --noflush` input that installs one sandbox's rules: a chain of its own, reached from the
 * guard chain for its link (which INPUT, FORWARD and OUTPUT send every sandbox link's packets to), and its NAT.
 * Exported for a unit test of the order.
 */
export function sandboxRules(
  names: SlotRules,
  input: { allowNet: readonly string[]; nameservers: readonly string[]; subnet: string; hostSubnets: string[] },
): string {
  const { chain, veth } = names;
  const reject = '-j REJECT --reject-with icmp-admin-prohibited';
  const lines = [
    '*filter',
    `:${chain} - [0:0]`,
    // Nothing reaches a sandbox but the answers to its own connections.
    `-A ${chain} -o ${veth} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
    `-A ${chain} -o ${veth} -j DROP`,
    ...input.nameservers.flatMap((ns) =>
      ['udp', 'tcp'].map((proto) => `-A ${chain} -d ${ns}/32 -p ${proto} --dport 53 -j ACCEPT`),
    ),
    // This host's own addresses (the gateway, databases, the agent), whatever --allow-net says; then the others.
    `-A ${chain} -m addrtype --dst-type LOCAL ${reject}`,
    `-A ${chain} -d ${input.subnet} ${reject}`,
    ...input.allowNet.map((cidr) => `-A ${chain} -d ${cidr} -j ACCEPT`),
    ...[...deniedRanges, ...input.hostSubnets].map((range) => `-A ${chain} -d ${range} ${reject}`),
    `-A ${chain} -m addrtype --dst-type BROADCAST,MULTICAST -j DROP`,
    `-A ${chain} -j ACCEPT`,
  ];
  const hooks = hookRules(names);
  lines.push(...hooks.filter.map((rule) => `-I ${rule}`), 'COMMIT', '*nat', ...hooks.nat.map((r) => `-I ${r}`));
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The input that removes one sandbox's rules (or what is left of them). */
function removalRules(names: SlotRules, present: { filter: string; nat: string }): string {
  const hooks = hookRules(names);
  const lines = ['*filter'];
  for (const rule of hooks.filter) if (present.filter.includes(`-A ${rule}\n`)) lines.push(`-D ${rule}`);
  if (present.filter.includes(`-N ${names.chain}\n`)) lines.push(`-F ${names.chain}`, `-X ${names.chain}`);
  lines.push('COMMIT', '*nat');
  for (const rule of hooks.nat) if (present.nat.includes(`-A ${rule}\n`)) lines.push(`-D ${rule}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/**
 * A network namespace per networked sandbox, with outbound NAT and a default-deny firewall (needs root and
 * iptables). Each sandbox gets a veth pair on a /31 of `subnet`: `eth0` inside (no IPv6 address at all), `svn<slot>`
 * on the host, and a chain `SAVASSAN-svn<slot>` that rejects this host's own addresses, private, shared, loopback,
 * link-local, multicast and this host's connected subnets, except the resolvers on port 53 and the function's
 * `--allow-net` CIDRs. Root creates the namespace, so the sandbox's user namespace has no CAP_NET_ADMIN over it
 * and cannot change its routes or these rules. A namespace's rules go with it; at open, what a crashed agent
 * left (namespaces of dead pids, their veths, chains without a veth, the legacy owner-match chain) is removed.
 */
export class SandboxNetwork {
  private sequence = 0;
  /** Slots are tried from a random place, so agents on one host rarely race for the same veth name. */
  private nextSlot: number;
  private readonly live = new Set<SandboxNetns>();

  private constructor(
    readonly enforcement: Enforcement,
    private readonly subnet: Ipv4Cidr,
    private readonly nameservers: string[],
    private readonly hostSubnets: string[],
    private readonly logger: Logger,
  ) {
    this.nextSlot = randomInt(this.slots());
  }

  static async open(options: SandboxNetworkOptions = {}): Promise<SandboxNetwork> {
    const logger = (options.logger ?? silentLogger).child({ component: 'sandbox-network' });
    const subnetText = options.subnet ?? defaultSandboxSubnet;
    const subnet = ipv4Cidr(subnetText);
    if (subnet === null || subnet.prefix > 30) {
      throw new PlatformError(
        'UNAVAILABLE',
        `sandbox subnet ${JSON.stringify(subnetText)} must be an IPv4 CIDR of /30 or wider`,
      );
    }
    const mechanism = 'network namespace per sandbox, NAT and iptables';
    const off = (note: string) => new SandboxNetwork({ mechanism, enforced: false, note }, subnet, [], [], logger);
    if (process.platform !== 'linux') return off('network namespaces need Linux: --network deploys are refused');
    if (typeof process.getuid !== 'function' || process.getuid() !== 0) {
      return off('not root: no network namespace per sandbox, so --network deploys are refused');
    }
    const nameservers =
      options.nameservers ?? nameserversOf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
    try {
      await ensureGuard();
      await removeStale(logger);
      await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
      const hostSubnets = await connectedSubnets(subnet.text);
      return new SandboxNetwork(
        {
          mechanism,
          enforced: true,
          note:
            '--network functions reach public addresses only (and their resolvers on port 53, and --allow-net ' +
            'CIDRs); never this host, loopback, link-local, private ranges or host abstract sockets; no IPv6',
        },
        subnet,
        nameservers,
        hostSubnets,
        logger,
      );
    } catch (err) {
      const why = (err as Error).message.split('\n')[0] ?? '';
      return off(`cannot set up sandbox networking (${why}): --network deploys are refused`);
    }
  }

  /**
   * Create a sandbox's namespace, link and rules; it may reach the `allowNet` CIDRs. They are checked again here,
   * whatever checked them before: they go into root's firewall, and they arrive from the metadata store or over gRPC.
   */
  async attach(allowNet: readonly string[]): Promise<SandboxNetns> {
    for (const cidr of allowNet) {
      if (ipv4Cidr(cidr)?.text !== cidr) {
        throw new PlatformError(
          'INVALID_CONFIG',
          `allowNet entry ${JSON.stringify(cidr)} is not a canonical IPv4 CIDR`,
        );
      }
    }
    if (!this.enforcement.enforced) {
      throw new PlatformError(
        'UNAVAILABLE',
        `functions deployed with --network cannot run on this node: ${this.enforcement.note}`,
      );
    }
    const name = `savassan-${process.pid}-${this.sequence++}`;
    const path = `${netnsDir}/${name}`;
    await run('ip', ['netns', 'add', name]);
    try {
      const names = await this.link(name);
      const netns: SandboxNetns = {
        path,
        address: names.sandboxIp,
        release: async () => {
          if (!this.live.delete(netns)) return;
          await removeSlot(names).catch((err: unknown) => this.logger.warn({ err }, 'cannot remove sandbox rules'));
          // Deleting the host end takes the pair at once; a namespace's own links go later, in the background.
          await run('ip', ['link', 'del', names.veth]).catch(() => {});
          await run('ip', ['netns', 'del', name]).catch((err: unknown) =>
            this.logger.warn({ err }, 'cannot remove a sandbox network namespace'),
          );
        },
      };
      this.live.add(netns);
      try {
        await run(
          'iptables-restore',
          ['-w', '5', '--noflush'],
          sandboxRules(names, {
            allowNet,
            nameservers: this.nameservers,
            subnet: this.subnet.text,
            hostSubnets: this.hostSubnets,
          }),
        );
      } catch (err) {
        await netns.release();
        throw err;
      }
      return netns;
    } catch (err) {
      await run('ip', ['netns', 'del', name]).catch(() => {});
      throw new PlatformError('INTERNAL', `cannot set up the sandbox's network: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  /** Remove every namespace still attached (their sandboxes must be gone). Idempotent. */
  async close(): Promise<void> {
    await Promise.all([...this.live].map((netns) => netns.release()));
  }

  private slots(): number {
    return 2 ** (32 - this.subnet.prefix - 1);
  }

  /** A veth pair on a free /31: the host end's name is the lock (another agent on this host holds a taken one). */
  private async link(netnsName: string): Promise<SlotRules> {
    for (let attempt = 0; ; attempt++) {
      const slot = this.nextSlot;
      this.nextSlot = (this.nextSlot + 1) % this.slots();
      const names = slotNames(slot, this.subnet);
      const hostIp = intToIp(this.subnet.base + slot * 2);
      try {
        await run(
          'ip',
          ['-batch', '-'],
          [
            `link add ${names.veth} type veth peer name eth0 netns ${netnsName}`,
            `link set dev ${names.veth} alias savassan:${process.pid} addrgenmode none`,
            `addr add ${hostIp}/31 dev ${names.veth}`,
            `link set ${names.veth} up`,
            '',
          ].join('\n'),
        );
      } catch (err) {
        if (/File exists/.test((err as Error).message) && attempt < 64) continue;
        throw err;
      }
      await run(
        'ip',
        ['-n', netnsName, '-batch', '-'],
        [
          'link set lo up',
          'link set eth0 addrgenmode none',
          `addr add ${names.sandboxIp}/31 dev eth0`,
          'link set eth0 up',
          `route add default via ${hostIp}`,
          '',
        ].join('\n'),
      );
      return names;
    }
  }
}

/** IPv4 subnets directly on this host's interfaces (its LAN: other cluster machines), but not the sandboxes'. */
async function connectedSubnets(sandboxSubnet: string): Promise<string[]> {
  const routes = await run('ip', ['-4', '-o', 'route', 'show', 'scope', 'link']);
  const subnets = new Set<string>();
  for (const line of routes.split('\n')) {
    const dest = line.split(' ')[0] ?? '';
    const dev = /\bdev (\S+)/.exec(line)?.[1] ?? '';
    if (vethPattern.test(dev) || dest === 'default' || dest === '') continue;
    const cidr = ipv4Cidr(dest.includes('/') ? dest : `${dest}/32`);
    if (cidr !== null && cidr.text !== sandboxSubnet) subnets.add(cidr.text);
  }
  return [...subnets];
}

/**
 * The guard chain and the jumps into it, made once per host and left in place (they touch only sandbox links).
 * Plain `iptables` rather than `iptables-restore`: declaring an existing chain there would flush the jumps of the
 * sandboxes other agents on this host are running.
 */
async function ensureGuard(): Promise<void> {
  const iptables = (args: string[]) => run('iptables', ['-w', '5', ...args]);
  const has = (args: string[]) =>
    iptables(['-C', ...args]).then(
      () => true,
      () => false,
    );
  await iptables(['-N', guardChain]).catch(() => {}); // exists already
  const closed = [guardChain, '-j', 'REJECT', '--reject-with', 'icmp-admin-prohibited'];
  if (!(await has(closed))) await iptables(['-A', ...closed]);
  for (const [chain, direction, links] of guardJumps) {
    const jump = [chain, direction, links, '-j', guardChain];
    if (!(await has(jump))) await iptables(['-I', ...jump]);
  }
}

async function iptablesState(): Promise<{ filter: string; nat: string }> {
  const [filter, nat] = await Promise.all([
    run('iptables', ['-w', '5', '-S']),
    run('iptables', ['-w', '5', '-t', 'nat', '-S']),
  ]);
  return { filter, nat };
}

async function removeSlot(names: SlotRules): Promise<void> {
  await run('iptables-restore', ['-w', '5', '--noflush'], removalRules(names, await iptablesState()));
}

/** Remove what agents that are no longer running left behind: namespaces, veths, chains and NAT rules. */
async function removeStale(logger: Logger): Promise<void> {
  const entries = await readdir(netnsDir).catch(() => [] as string[]);
  for (const entry of entries) {
    const pid = Number(netnsPattern.exec(entry)?.[1] ?? Number.NaN);
    if (Number.isInteger(pid) && pid !== process.pid && !isProcessAlive(pid)) {
      await run('ip', ['netns', 'del', entry]).catch(() => {});
    }
  }
  // A namespace's links are destroyed in the background after `netns del`, and one left half made never moved:
  // a veth whose alias names a dead agent goes now.
  for (const { veth, owner } of await svnVeths()) {
    if (owner !== null && owner !== process.pid && !isProcessAlive(owner)) {
      await run('ip', ['link', 'del', veth]).catch(() => {});
    }
  }
  // Rules first, links second: a live agent makes a veth before its rules, so rules seen here whose veth is
  // missing afterwards are stale (or being removed by their owner right now, which the catch below allows).
  const state = await iptablesState();
  const present = new Set((await svnVeths()).map(({ veth }) => veth));
  const stale = new Set<string>();
  for (const match of `${state.filter}\n${state.nat}`.matchAll(/savassan:(svn\d+)|-N SAVASSAN-(svn\d+)\n/g)) {
    const veth = match[1] ?? match[2];
    if (veth !== undefined && !present.has(veth)) stale.add(veth);
  }
  // A live agent may have taken one of these slots since the links were listed: leave those.
  const nowPresent = new Set((await svnVeths()).map(({ veth }) => veth));
  for (const veth of stale) {
    if (nowPresent.has(veth)) continue;
    const removal = removalRules(namesOf(veth, sandboxIpOf(veth, state.nat)), state);
    await run('iptables-restore', ['-w', '5', '--noflush'], removal).catch((err: unknown) =>
      logger.warn({ err, veth }, 'cannot remove stale sandbox rules'),
    );
  }
  await removeLegacyChain(state.filter);
}

/** The host ends of sandbox veths on this host, with the agent pid their alias names (null if none). */
async function svnVeths(): Promise<{ veth: string; owner: number | null }[]> {
  const links = await run('ip', ['-o', 'link', 'show', 'type', 'veth']);
  const found: { veth: string; owner: number | null }[] = [];
  for (const line of links.split('\n')) {
    const veth = /^\d+: (svn\d+)[@:]/.exec(line)?.[1];
    const owner = /alias savassan:(\d+)/.exec(line)?.[1];
    if (veth !== undefined) found.push({ veth, owner: owner === undefined ? null : Number(owner) });
  }
  return found;
}

/** The sandbox address in a stale NAT rule (the subnet may have been another one when it was made). */
function sandboxIpOf(veth: string, nat: string): string {
  const match = new RegExp(`-s (\\d+\\.\\d+\\.\\d+\\.\\d+)/32 -m comment --comment "savassan:${veth}" `).exec(nat);
  return match?.[1] ?? '';
}

/** The owner-match chain earlier versions put on OUTPUT: the namespaces make it unnecessary. */
async function removeLegacyChain(filter: string): Promise<void> {
  if (!filter.includes(`-N ${legacyChain}\n`)) return;
  const lines = ['*filter'];
  for (const line of filter.split('\n'))
    if (line.startsWith('-A OUTPUT') && line.includes(`-j ${legacyChain}`)) {
      lines.push(line.replace(/^-A/, '-D'));
    }
  lines.push(`-F ${legacyChain}`, `-X ${legacyChain}`, 'COMMIT', '');
  await run('iptables-restore', ['-w', '5', '--noflush'], lines.join('\n'));
}

/**
 * The command that runs `command args` inside a sandbox's network namespace: nsenter joins it (as root) and execs
 * the command in the same process (it does not fork for a network namespace), which then drops to the sandbox user.
 */
export function inNetns(path: string, command: string, args: readonly string[]): [string, string[]] {
  return ['/usr/bin/nsenter', [`--net=${path}`, command, ...args]];
}

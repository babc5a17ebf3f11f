import { BlockList, isIPv4, isIPv6 } from 'node:net';

/**
 * What the platform never reaches on a function's behalf unless its function allows a CIDR with `--allow-net`:
 * every private, shared, loopback, link-local (cloud metadata), reserved, multicast and broadcast IPv4 range. The
 * sandboxes' firewall and the webhook destinations both apply it.
 */
export const deniedIpv4Ranges: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '224.0.0.0/4',
  '240.0.0.0/4',
];

/**
 * IPv6 ranges the platform never reaches for a function: loopback, unspecified, IPv4-compatible and the forms that
 * embed an IPv4 address (NAT64, 6to4), link-local, site-local, unique-local and multicast. (IPv4-mapped addresses are
 * judged as the IPv4 address they map.)
 */
const deniedIpv6Ranges: readonly [string, number][] = [
  ['::', 96],
  ['64:ff9b::', 96],
  ['2002::', 16],
  ['fe80::', 10],
  ['fec0::', 10],
  ['fc00::', 7],
  ['ff00::', 8],
];

/** Never reached for a function, whatever its `allowNet`: the host itself. */
const hostRanges: readonly string[] = ['0.0.0.0/8', '127.0.0.0/8'];

function blockList(ipv4: readonly string[], ipv6: readonly [string, number][] = []): BlockList {
  const list = new BlockList();
  for (const cidr of ipv4) {
    const [base = '', prefix = '32'] = cidr.split('/');
    list.addSubnet(base, Number(prefix), 'ipv4');
  }
  for (const [base, prefix] of ipv6) list.addSubnet(base, prefix, 'ipv6');
  return list;
}

const denied = blockList(deniedIpv4Ranges, deniedIpv6Ranges);
const host = blockList(hostRanges, [['::1', 128]]);

/**
 * Whether the platform may connect to `address` on behalf of a function whose `allowNet` is given (a webhook
 * destination): a public address, or a denied one the function allows, but never the host's own loopback or
 * unspecified addresses (a sandbox's loopback is its own; the platform's is the host's) unless the operator allows it
 * (`hostLoopback`; `allowNet` must still list it). An IPv4-mapped IPv6 address is judged as the IPv4 address it maps,
 * in any of its spellings.
 */
export function mayConnect(
  address: string,
  allowNet: readonly string[],
  options: { hostLoopback?: boolean } = {},
): boolean {
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : null;
  if (family === null) return false;
  if (host.check(address, family) && options.hostLoopback !== true) return false;
  if (!denied.check(address, family)) return true;
  return allowNet.length > 0 && blockList(allowNet).check(address, family);
}

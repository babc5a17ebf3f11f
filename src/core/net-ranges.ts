import { isIPv4, isIPv6 } from 'node:net';
import { ipv4Cidr } from './function-config.js';

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

function ipv4Number(address: string): number {
  return address.split('.').reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0);
}

function inCidr(address: number, cidr: string): boolean {
  const parsed = ipv4Cidr(cidr);
  if (parsed === null) return false;
  const mask = parsed.prefix === 0 ? 0 : (0xffffffff << (32 - parsed.prefix)) >>> 0;
  return (address & mask) >>> 0 === parsed.base;
}

/**
 * Whether the platform may connect to `address` for a function whose `allowNet` is given: a public address, or a
 * denied one the function allows. IPv6: loopback, unspecified, link-local, unique-local and multicast addresses are
 * refused (`allowNet` holds IPv4 only); an IPv4-mapped address is judged as its IPv4 address.
 */
export function mayConnect(address: string, allowNet: readonly string[]): boolean {
  if (isIPv6(address)) {
    const lower = address.toLowerCase();
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    if (mapped !== null) return mayConnect(mapped[1]!, allowNet);
    if (lower === '::1' || lower === '::') return false;
    return !/^(fe[89ab]|f[cd]|ff)/.test(lower);
  }
  if (!isIPv4(address)) return false;
  const n = ipv4Number(address);
  if (!deniedIpv4Ranges.some((cidr) => inCidr(n, cidr))) return true;
  return allowNet.some((cidr) => inCidr(n, cidr));
}

// Several "hosts" on one machine for cluster tests: a network namespace per host, each joined by a veth pair to
// a bridge in the test's own namespace, on a private /24. Needs root and iproute2; everything is removed by
// `destroy()` (and, best effort, when the process exits).
import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface NetHost {
  /** Network namespace name. */
  name: string;
  /** The host's address on the test network. */
  ip: string;
  /** Start a process inside this host's network namespace. */
  spawn(command: string, args: string[], options?: SpawnOptions): ChildProcess;
}

export interface TestNetwork {
  /** The address of the test's own namespace on the bridge: servers the hosts must reach listen here. */
  bridgeIp: string;
  hosts: NetHost[];
  destroy(): Promise<void>;
}

/** Why this machine cannot make test hosts, or null when it can. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'network namespaces need root';
  if (!existsSync('/usr/sbin/ip') && !existsSync('/sbin/ip')) return 'iproute2 (ip) is not installed';
  return null;
}

async function ip(...args: string[]): Promise<void> {
  await run('ip', args);
}

/** Create `count` hosts on a fresh bridge. Names carry the pid so parallel test files never collide. */
export async function createTestNetwork(count: number): Promise<TestNetwork> {
  const tag = `${process.pid % 100000}`;
  const subnet = `10.${200 + (process.pid % 50)}.${Math.floor(Math.random() * 250) + 1}`;
  const bridge = `svb${tag}`;
  const bridgeIp = `${subnet}.1`;
  const names: string[] = [];
  const cleanup = async (): Promise<void> => {
    for (const name of names) await ip('netns', 'del', name).catch(() => {});
    await ip('link', 'del', bridge).catch(() => {});
  };
  const onExit = (): void => {
    for (const name of names) spawnSyncQuiet('ip', ['netns', 'del', name]);
    spawnSyncQuiet('ip', ['link', 'del', bridge]);
  };
  process.once('exit', onExit);
  try {
    await ip('link', 'add', bridge, 'type', 'bridge');
    await ip('addr', 'add', `${bridgeIp}/24`, 'dev', bridge);
    await ip('link', 'set', bridge, 'up');
    const hosts: NetHost[] = [];
    for (let i = 0; i < count; i++) {
      const name = `sv${tag}h${i}`;
      const outside = `sv${tag}v${i}`;
      const inside = `sv${tag}p${i}`;
      const address = `${subnet}.${11 + i}`;
      await ip('netns', 'add', name);
      names.push(name);
      await ip('link', 'add', outside, 'type', 'veth', 'peer', 'name', inside);
      await ip('link', 'set', inside, 'netns', name);
      await ip('link', 'set', outside, 'master', bridge);
      await ip('link', 'set', outside, 'up');
      await ip('netns', 'exec', name, 'ip', 'addr', 'add', `${address}/24`, 'dev', inside);
      await ip('netns', 'exec', name, 'ip', 'link', 'set', inside, 'up');
      await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
      hosts.push({
        name,
        ip: address,
        spawn: (command, args, options = {}) => spawn('ip', ['netns', 'exec', name, command, ...args], options),
      });
    }
    return {
      bridgeIp,
      hosts,
      destroy: async () => {
        process.off('exit', onExit);
        await cleanup();
      },
    };
  } catch (err) {
    process.off('exit', onExit);
    await cleanup();
    throw err;
  }
}

function spawnSyncQuiet(command: string, args: string[]): void {
  try {
    // Exit handlers cannot wait: fire and forget.
    spawn(command, args, { stdio: 'ignore', detached: true }).unref();
  } catch {
    // Nothing more to do at exit.
  }
}

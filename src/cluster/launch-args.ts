// What an upgrade starts a replacement with. A process's arguments are read from its etcd entry, which anyone who can
// write etcd can forge: only flags that cannot redirect a secret or weaken a check are copied from it; where the
// cluster is, and how to authenticate to it, come from the leader's own arguments.

/** Flags of the replaced process that its replacement keeps, by role (each takes a value unless listed as a switch). */
const copied: Record<'manager' | 'gateway', ReadonlySet<string>> = {
  manager: new Set(['--concurrency', '--pool', '--listen', '--advertise', '--followers', '--leader-ttl']),
  gateway: new Set([
    '--host',
    '--port',
    '--routing-listen',
    '--grpc-port',
    '--queue-wait',
    '--region',
    '--account-id',
    '--pool',
  ]),
};
/** Flags without a value. */
const switches: ReadonlySet<string> = new Set(['--json']);
/** The leader's own flags every process it starts gets: where etcd is and how to reach it, the token file, logging. */
const fromLeader: ReadonlySet<string> = new Set([
  '--etcd',
  '--etcd-prefix',
  '--etcd-user',
  '--etcd-password-file',
  '--etcd-ca',
  '--etcd-cert',
  '--etcd-key',
  '--token-file',
  '--log-level',
]);
/** The leader's own flags the managers it starts get too: where builds are installed and how processes start, for the next upgrade. */
const fromLeaderToManagers: ReadonlySet<string> = new Set([
  '--builds-dir',
  '--infrastructure',
  '--image',
  '--namespace',
]);
/** A value a copied flag may have: no control characters, bounded. */
const valuePattern = /^[^\p{Cc}]{0,300}$/u;

/** `[flag, value]` pairs of `args` (`--flag value` and `--flag=value`), switches with a null value. */
function pairs(args: readonly string[]): [string, string | null][] {
  const out: [string, string | null][] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    if (!arg.startsWith('--')) continue;
    const eq = arg.indexOf('=');
    if (eq !== -1) out.push([arg.slice(0, eq), arg.slice(eq + 1)]);
    else if (switches.has(arg)) out.push([arg, null]);
    else {
      out.push([arg, args[i + 1] ?? '']);
      i++;
    }
  }
  return out;
}

function flatten(kept: [string, string | null][]): string[] {
  return kept.flatMap(([flag, value]) => (value === null ? [flag] : [flag, value]));
}

/**
 * The arguments of a replacement for a process of `role` that announced `announced`: its role flags that are safe to
 * copy (`--port`, `--host`, `--concurrency`…, values without control characters), then the leader's own etcd, token
 * file and log level flags. Everything else (API key files, workflow backends, another etcd) is left out: such
 * settings reach the new process through the leader's environment, as its secrets do.
 *
 * @example
 * launchableArgs('gateway', ['--port', '0', '--api-key-file', '/tmp/x'], ['--etcd', 'http://10.0.0.2:2379'])
 * // ['--port', '0', '--etcd', 'http://10.0.0.2:2379']
 */
export function launchableArgs(
  role: 'manager' | 'gateway',
  announced: readonly string[],
  leaderArgs: readonly string[],
): string[] {
  const own = pairs(announced).filter(
    ([flag, value]) => switches.has(flag) || (copied[role].has(flag) && valuePattern.test(value ?? '')),
  );
  const common = pairs(leaderArgs).filter(
    ([flag]) => fromLeader.has(flag) || (role === 'manager' && fromLeaderToManagers.has(flag)),
  );
  return [...flatten(own), ...flatten(common)];
}

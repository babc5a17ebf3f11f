// Event loops: the same no-op on servers started with `--event-loops 1, 2, 4, 8, 16` (as many as the machine has
// cores for), throughput at concurrency 64 in interleaved rounds beside the bare server, and the gateway process's
// CPU time per request (every thread of it, and its main event loop alone; its sandboxes are other processes). The
// main loop's share is the figure that bounds the curve: it runs every invocation's pool operations and sandbox I/O.
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { repoRoot, type ServerProcess } from '../test/helpers/server-process.js';
import { join } from 'node:path';
import { load, mean, round, warmThroughput, warmUntilSteady } from './load.js';
import { withCpuPerRequest } from './process-cpu.js';

/** Loop counts worth measuring on a machine with `cores` cores: 1, 2, 4, 8, 16, up to the core count. */
export function eventLoopCounts(cores: number): number[] {
  return [1, 2, 4, 8, 16].filter((loops) => loops === 1 || loops <= cores);
}

export interface EventLoopOptions {
  loops: number[];
  /** Server arguments that choose the sandbox (`['--sandbox', 'bwrap']`) and its data dir. */
  start: (extraArgs: string[]) => Promise<ServerProcess>;
  bareUrl: string;
  requests: number;
  warmUp: { requests: number; total: number };
  rounds?: number;
}

const concurrency = 64;
/** Room for one sandbox per concurrent request, so that sandboxes are not what limits the rate. */
const maxInstances = 64;

export async function measureEventLoops(options: EventLoopOptions) {
  const rounds = options.rounds ?? 3;
  const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
  const servers: { loops: number; server: ServerProcess; url: string }[] = [];
  try {
    for (const loops of options.loops) {
      const server = await options.start(['--event-loops', String(loops)]);
      const client = new SavassanClient({ url: server.url });
      await client.deploy('noop', noop, { maxInstances });
      const url = `${server.url}/v1/functions/noop/invoke`;
      servers.push({ loops, server, url });
      await warmUntilSteady(client, url);
      await warmThroughput(url, options.warmUp);
    }
    const bareRates: number[] = [];
    const rates = new Map(servers.map(({ loops }) => [loops, [] as number[]]));
    const cpuPerRequest = new Map(servers.map(({ loops }) => [loops, [] as number[]]));
    const mainThreadPerRequest = new Map(servers.map(({ loops }) => [loops, [] as number[]]));
    const perRound = Math.round(options.requests / rounds);
    for (let r = 0; r < rounds; r++) {
      bareRates.push((await load(options.bareUrl, perRound, concurrency)).rps);
      for (const { loops, server, url } of servers) {
        const measured = await withCpuPerRequest(server.pid, perRound, () => load(url, perRound, concurrency));
        rates.get(loops)!.push(measured.value.rps);
        cpuPerRequest.get(loops)!.push(measured.cpuMicrosPerRequest);
        mainThreadPerRequest.get(loops)!.push(measured.mainThreadMicrosPerRequest);
      }
    }
    const bareRps = mean(bareRates);
    return {
      note: 'no-op at concurrency 64, max instances 64; rps per loop count in interleaved rounds; gatewayCpuUsPerRequest: CPU time of the server process (all its threads) per request; mainLoopCpuUsPerRequest: its main thread alone',
      concurrency,
      bareRps: round(bareRps, 0),
      byLoops: Object.fromEntries(
        servers.map(({ loops }) => {
          const loopRates = rates.get(loops)!;
          return [
            String(loops),
            {
              rps: round(mean(loopRates), 0),
              ratio: round(mean(loopRates) / bareRps, 2),
              roundRps: loopRates.map((rate) => round(rate, 0)),
              gatewayCpuUsPerRequest: round(mean(cpuPerRequest.get(loops)!), 1),
              mainLoopCpuUsPerRequest: round(mean(mainThreadPerRequest.get(loops)!), 1),
            },
          ];
        }),
      ),
    };
  } finally {
    await Promise.all(servers.map(({ server }) => server.cleanup()));
  }
}

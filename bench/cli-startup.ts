// CLI start-up: the wall time of `savassan ls` against a running server, from spawn to exit, as a user waits for it
// at a shell prompt; beside a bare `node -e ''` spawn in the same rounds, for what Node itself takes on this machine.
// Run alone (`npm run build && node --import tsx bench/cli-startup.ts`), it starts a server of its own.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { readBundle } from '../src/client/bundle.js';
import { cliPath, repoRoot, startServer } from '../test/helpers/server-process.js';
import { round, summarise } from './load.js';

/** The most the median `savassan ls` may take, spawn to exit. */
const targetMs = 300;

/** Wall time of one run of `node <args>`; throws when it fails, so a broken CLI is not timed as a fast one. */
function timedNode(args: string[], env: NodeJS.ProcessEnv): number {
  const started = performance.now();
  const result = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
  const ms = performance.now() - started;
  if (result.status !== 0) {
    throw new Error(`node ${args.join(' ')} exited ${String(result.status)}: ${result.stderr}${result.stdout}`);
  }
  return ms;
}

/** `runs` interleaved rounds of `savassan ls` against `url` and `node -e ''`, after one unmeasured `ls`. */
export function measureCliStartup(url: string, runs: number) {
  const env: NodeJS.ProcessEnv = { ...process.env, SAVASSAN_URL: url };
  delete env.SAVASSAN_API_KEY;
  timedNode([cliPath, 'ls'], env);
  const ls: number[] = [];
  const nodeSpawn: number[] = [];
  for (let i = 0; i < runs; i++) {
    nodeSpawn.push(timedNode(['-e', ''], env));
    ls.push(timedNode([cliPath, 'ls'], env));
  }
  const lsMs = summarise(ls);
  const nodeSpawnMs = summarise(nodeSpawn);
  return {
    command: 'savassan ls',
    lsMs,
    nodeSpawnMs,
    overNodeSpawnP50Ms: round(lsMs.p50 - nodeSpawnMs.p50, 1),
    target: `median (p50) <= ${targetMs / 1000} s`,
    met: lsMs.p50 <= targetMs,
    note: "wall time from spawn to exit against the bench's server, in rounds interleaved with `node -e ''`",
  };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const server = await startServer(['--no-examples', '--log-level', 'error']);
  try {
    await server.client.deploy('noop', await readBundle(join(repoRoot, 'bench', 'functions', 'noop')));
    process.stdout.write(`${JSON.stringify(measureCliStartup(server.url, 10), null, 2)}\n`);
  } finally {
    await server.cleanup();
  }
}

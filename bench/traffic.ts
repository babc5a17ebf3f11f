// Traffic: what choosing a version costs. The no-op deployed twice (two versions of one function), invoked at
// concurrency 1 in interleaved rounds plainly (the `live` alias, one version), through an alias that splits the
// traffic between both versions by weight (`?qualifier=`), and through an alias of one version (what the alias's
// lookup costs without a second sandbox to alternate with), on the same server.
import { join } from 'node:path';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { repoRoot } from '../test/helpers/server-process.js';
import { load, round, summarise, warmUntilSteady } from './load.js';

export interface AliasInvokeOptions {
  /** The server's base URL. */
  url: string;
  /** Requests per side, over all rounds. */
  requests: number;
  rounds?: number;
}

const functionName = 'noop-traffic';
const alias = 'split';
const single = 'single';

export async function measureAliasInvoke(options: AliasInvokeOptions) {
  const rounds = options.rounds ?? 5;
  const client = new SavassanClient({ url: options.url });
  const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
  // Two versions of the same code: a changed setting makes a new version.
  await client.deploy(functionName, noop, { env: { SIDE: 'one' } });
  await client.deploy(functionName, noop, { env: { SIDE: 'two' } });
  const answer = await fetch(`${options.url}/v1/functions/${functionName}/aliases/${alias}`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ weights: { '1': 0.5, '2': 0.5 } }),
  });
  if (!answer.ok) throw new Error(`setting the alias failed: ${answer.status} ${await answer.text()}`);
  await client.putAlias(functionName, single, { '2': 1 });
  const sides = {
    plain: `${options.url}/v1/functions/${functionName}/invoke`,
    alias: `${options.url}/v1/functions/${functionName}/invoke?qualifier=${alias}`,
    single: `${options.url}/v1/functions/${functionName}/invoke?qualifier=${single}`,
  };
  try {
    // Both versions warm, and the alias's choice compiled, before the measured rounds.
    await warmUntilSteady(client, sides.alias);
    await load(sides.plain, 1000, 1);
    const samples: Record<keyof typeof sides, number[]> = { plain: [], alias: [], single: [] };
    const perRound = Math.round(options.requests / rounds);
    for (let r = 0; r < rounds; r++) {
      for (const side of ['plain', 'alias', 'single'] as const)
        samples[side].push(...(await load(sides[side], perRound, 1)).latencies);
    }
    const plain = summarise(samples.plain);
    const split = summarise(samples.alias);
    const one = summarise(samples.single);
    return {
      note: 'no-op at concurrency 1: plain invoke (live, one version) against ?qualifier= an alias splitting 50/50 between two versions, and an alias of one version; interleaved rounds',
      plainMs: plain,
      aliasMs: split,
      p50Ratio: round(split.p50 / plain.p50, 3),
      p99Ratio: round(split.p99 / plain.p99, 3),
      singleVersionAliasMs: one,
      singleVersionP50Ratio: round(one.p50 / plain.p50, 3),
    };
  } finally {
    await client.deleteFunction(functionName);
  }
}

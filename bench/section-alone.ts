// A section of the benchmark run alone (`node --import tsx bench/<section>.ts`): its figures with the machine's, in
// `bench/results/<date>-<section>.json`, and on standard output.
import { mkdir, writeFile } from 'node:fs/promises';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../test/helpers/server-process.js';
import { loadThreads, round } from './load.js';

/** Whether the module `url` names is the script this process runs. */
export function runsAlone(url: string): boolean {
  return url === pathToFileURL(process.argv[1] ?? '').href;
}

/** The machine a run measured, as every result file names it. */
export function machineFacts() {
  return {
    cpus: `${cpus().length} x ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    loadThreads,
  };
}

/** Measures one section (`BENCH_QUICK=1`: its quick sizes) and writes its result file. */
export async function runSectionAlone(name: string, measure: (quick: boolean) => Promise<unknown>): Promise<void> {
  const quick = process.env.BENCH_QUICK === '1';
  const date = new Date().toISOString();
  const results = {
    date,
    machine: machineFacts(),
    quick,
    [name]: await measure(quick),
  };
  await mkdir(join(repoRoot, 'bench', 'results'), { recursive: true });
  const file = join(repoRoot, 'bench', 'results', `${date.replace(/[:.]/g, '-')}-${name}.json`);
  await writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify(results, null, 2)}\nwritten to ${file}\n`);
}

// What `npm run bench` writes into BENCHMARKS.md: between the `latest` markers, one line that says when and where
// the newest run ran and links its result file. The figures stay in bench/results/; the prose and tables of
// BENCHMARKS.md are written from them by hand.

export interface BenchRun {
  date: string;
  quick: boolean;
  machine: { cpus: string; memoryGiB: number; kernel: string; node: string; loadThreads: number };
}

const markers = /<!-- latest:start -->[\s\S]*<!-- latest:end -->/;

/** The marked block for a run whose figures are in `resultFile` (a path relative to the repository root). */
export function latestRunPointer(run: BenchRun, resultFile: string): string {
  const { cpus, memoryGiB, kernel, node, loadThreads } = run.machine;
  const quick = run.quick ? ' with `BENCH_QUICK=1` (a smoke run, not figures to quote)' : '';
  return [
    '<!-- latest:start -->',
    '',
    `Newest run: ${run.date}${quick}.`,
    `Machine: ${cpus}, ${memoryGiB} GiB, Linux ${kernel}, Node ${node}, load generator on ${loadThreads} thread${loadThreads === 1 ? '' : 's'}.`,
    `Figures: [\`${resultFile}\`](${resultFile}) (also \`bench/results/latest.json\`).`,
    '<!-- latest:end -->',
  ].join('\n');
}

/** `text` (BENCHMARKS.md) with the block between its `latest` markers replaced by `pointer`. */
export function withLatestRunPointer(text: string, pointer: string): string {
  if (!markers.test(text))
    throw new Error('BENCHMARKS.md lost its <!-- latest:start --> / <!-- latest:end --> markers');
  return text.replace(markers, () => pointer);
}

// What `npm run bench` writes into BENCHMARKS.md: a pointer to the newest run's result file, never its figures.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { it } from 'node:test';
import { latestRunPointer, withLatestRunPointer, type BenchRun } from '../../bench/latest-run-pointer.js';

const repoRoot = resolve(import.meta.dirname, '..', '..');
const run = {
  date: '2026-12-06T05:15:17.983Z',
  quick: false,
  machine: { cpus: '2 x Intel Xeon', memoryGiB: 23.6, kernel: '6.18.0', node: 'v20.20.2', loadThreads: 1 },
  warmInvoke: { concurrency1: { bareMs: { n: 3000, p50: 0.115 } } },
} satisfies BenchRun & Record<string, unknown>;
const resultFile = 'bench/results/2026-12-06T05-15-17-983Z.json';

it('names the date, the machine and the result file, and holds none of the figures', () => {
  const pointer = latestRunPointer(run, resultFile);
  assert.match(pointer, /^<!-- latest:start -->\n[\s\S]*\n<!-- latest:end -->$/);
  for (const part of [run.date, '2 x Intel Xeon', '23.6 GiB', 'Linux 6.18.0', 'Node v20.20.2', 'on 1 thread.'])
    assert.ok(pointer.includes(part), `${part} in ${pointer}`);
  assert.ok(pointer.includes(`[\`${resultFile}\`](${resultFile})`), pointer);
  assert.doesNotMatch(pointer, /```|[{}]|0\.115|warmInvoke/);
  assert.doesNotMatch(pointer, /BENCH_QUICK/);
  assert.match(latestRunPointer({ ...run, quick: true }, resultFile), /BENCH_QUICK=1/);
});

it('replaces only what lies between the markers of BENCHMARKS.md', async () => {
  const text = await readFile(resolve(repoRoot, 'BENCHMARKS.md'), 'utf8');
  const start = text.indexOf('<!-- latest:start -->');
  const end = text.indexOf('<!-- latest:end -->') + '<!-- latest:end -->'.length;
  assert.ok(start >= 0 && end > start, 'BENCHMARKS.md has its latest markers');
  const pointer = latestRunPointer(run, resultFile);
  const updated = withLatestRunPointer(text, pointer);
  assert.equal(updated, `${text.slice(0, start)}${pointer}${text.slice(end)}`);
  // A second run replaces the first one's pointer instead of adding to it.
  assert.equal(withLatestRunPointer(updated, pointer), updated);
});

it('inserts the pointer as written, $ patterns included', () => {
  const pointer = latestRunPointer({ ...run, machine: { ...run.machine, cpus: "1 x $& $' CPU" } }, resultFile);
  const text = 'before\n<!-- latest:start -->\nold\n<!-- latest:end -->\nafter\n';
  assert.equal(withLatestRunPointer(text, pointer), `before\n${pointer}\nafter\n`);
});

it('refuses a BENCHMARKS.md without the markers', () => {
  assert.throws(() => withLatestRunPointer('# Benchmarks\n', 'x'), /markers/);
});

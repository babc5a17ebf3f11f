import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readBundle } from '../../src/client/bundle.js';

/**
 * One function for workflow tests, steered by its event:
 * - `n`, `mul`, `add`: returns `{ n: n * mul + add }` (defaults 0, 1, 0), with `tag` and `item` echoed;
 * - `startLog`: appends `{ tag, start }` as a JSON line to that file as soon as it runs;
 * - `sleepMs`: sleeps first;
 * - `barrier` `{ file, count }`: appends a line to `file`, then waits until it has `count` lines (throws after 20 s):
 *   proves that `count` runs were under way at once;
 * - `log`: appends `{ tag, start, end, pid }` as a JSON line to that file (start and end epoch ms);
 * - `failTimes` + `counter`: fails while the counter file (incremented on every run) is at most `failTimes`;
 * - `fail`: always throws with that message;
 * - `bigBytes`: returns `{ data }` with a string of that many bytes.
 */
const source = `
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

export const handler = async (event) => {
  const e = event ?? {};
  const start = Date.now();
  if (e.startLog) appendFileSync(e.startLog, JSON.stringify({ tag: e.tag ?? null, start }) + '\\n');
  if (e.counter) {
    let count = 0;
    try { count = Number(readFileSync(e.counter, 'utf8')); } catch {}
    count += 1;
    writeFileSync(e.counter, String(count));
    if (e.failTimes !== undefined && count <= e.failTimes) throw new Error('failing run ' + count);
  }
  if (e.barrier) {
    appendFileSync(e.barrier.file, 'x\\n');
    const until = Date.now() + 20000;
    while (readFileSync(e.barrier.file, 'utf8').split('\\n').length - 1 < e.barrier.count) {
      if (Date.now() > until) throw new Error('barrier: not all runs arrived');
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  if (e.sleepMs) await new Promise((resolve) => setTimeout(resolve, e.sleepMs));
  if (e.log) appendFileSync(e.log, JSON.stringify({ tag: e.tag ?? null, start, end: Date.now(), pid: process.pid }) + '\\n');
  if (e.fail) throw new Error(e.fail);
  if (e.bigBytes) return { data: 'x'.repeat(e.bigBytes) };
  return { n: (e.n ?? 0) * (e.mul ?? 1) + (e.add ?? 0), tag: e.tag ?? null, item: e.item ?? null };
};
`;

/** The bundle of the workflow test function (written under `dir`). */
export async function workflowFunctionBundle(dir: string): Promise<Uint8Array> {
  const path = join(dir, 'wf-fn');
  await mkdir(path, { recursive: true });
  await writeFile(join(path, 'package.json'), '{ "type": "module" }\n');
  await writeFile(join(path, 'index.js'), source);
  return readBundle(path);
}

// The web console: the size of what its page loads (gzip, as a server compressing it would send it), and how long
// the Functions page takes in headless Chromium to show 200 functions with their sparklines, from navigation to
// the last sparkline drawn, each load in a fresh browser context (an empty cache). The server has API keys on, as a
// console reached over a network has.
// Run alone: `npm run build && node --import tsx bench/console.ts` (BENCH_QUICK=1: fewer loads).
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { readBundle } from '../src/client/bundle.js';
import { SavassanClient } from '../src/client/client.js';
import { repoRoot, startServer } from '../test/helpers/server-process.js';
import { chromiumArgs, chromiumPath } from '../test/console/chromium.js';
import { round, summarise } from './load.js';
import { runSectionAlone, runsAlone } from './section-alone.js';

const webDist = join(repoRoot, 'web', 'dist');
/** The most the median load of the Functions page with 200 functions may take. */
const targetMs = 1000;

/** What index.html loads (its scripts, stylesheets and preloads), each with its size raw and gzipped. */
export async function consoleBundleSize() {
  const html = await readFile(join(webDist, 'index.html'), 'utf8');
  const paths = [...html.matchAll(/(?:src|href)="\/console\/([^"]+)"/g)].map((match) => match[1] ?? '');
  const files = [{ file: 'index.html', bytes: Buffer.from(html) }];
  for (const path of paths) files.push({ file: path, bytes: await readFile(join(webDist, path)) });
  const sized = files.map(({ file, bytes }) => ({ file, bytes: bytes.length, gzipBytes: gzipSync(bytes).length }));
  return {
    files: sized,
    totalBytes: sized.reduce((sum, f) => sum + f.bytes, 0),
    totalGzipBytes: sized.reduce((sum, f) => sum + f.gzipBytes, 0),
  };
}

export async function measureConsole(quick: boolean) {
  if (!existsSync(join(webDist, 'index.html'))) throw new Error('web/dist is missing: run `npm run build` first');
  if (!existsSync(chromiumPath)) return { skipped: `no ${chromiumPath}`, bundle: await consoleBundleSize() };
  const functions = 200;
  const loads = quick ? 3 : 10;
  const key = 'bench-console-key';
  const server = await startServer(['--no-examples', '--log-level', 'error'], undefined, { SAVASSAN_API_KEY: key });
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  try {
    const client = new SavassanClient({ url: server.url, apiKey: key });
    const noop = await readBundle(join(repoRoot, 'bench', 'functions', 'noop'));
    const names = Array.from({ length: functions }, (_, i) => `fn-${String(i).padStart(3, '0')}`);
    for (let i = 0; i < names.length; i += 8) {
      await Promise.all(names.slice(i, i + 8).map((name) => client.deploy(name, noop, { idleSeconds: 5 })));
    }
    // A few invocations, so that some sparklines have a shape.
    for (const name of names.slice(0, 10)) await client.invoke(name, {});
    const stats = await fetch(`${server.url}/v1/stats/functions?minutes=60&step=60`, {
      headers: { authorization: `Bearer ${key}` },
    });
    const sparklines = stats.ok;
    const loadMs: number[] = [];
    for (let i = 0; i <= loads; i++) {
      // The page's CSP forbids eval, which the polling below uses; it changes nothing the page itself does.
      const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, bypassCSP: true });
      await context.addInitScript(`sessionStorage.setItem('savassan.apiKey', ${JSON.stringify(key)})`);
      const page = await context.newPage();
      await page.goto(`${server.url}/console/#/functions`, { waitUntil: 'commit' });
      // Navigation start to the moment the list and (where the stats route answers) every sparkline are drawn.
      const done = await page.waitForFunction(
        `(() => {
          const rows = document.querySelectorAll('tr[data-function]').length;
          const lines = document.querySelectorAll('tr[data-function] svg.sparkline').length;
          return rows === ${functions} && (${!sparklines} || lines === ${functions * 3}) ? performance.now() : false;
        })()`,
        undefined,
        { polling: 'raf', timeout: 30_000 },
      );
      const ms = (await done.jsonValue()) as number;
      // The first load warms the server's and the browser's code paths; it is not counted.
      if (i > 0) loadMs.push(ms);
      await context.close();
    }
    return {
      bundle: await consoleBundleSize(),
      functionsPage: {
        functions,
        sparklines,
        ...(sparklines ? {} : { note: 'GET /v1/stats/functions did not answer: the list only' }),
        loadMs: summarise(loadMs),
        samplesMs: loadMs.map((ms) => round(ms, 1)),
        target: `median ≤ ${targetMs} ms`,
        met: (summarise(loadMs).p50 ?? Infinity) <= targetMs,
        how: 'headless Chromium, a fresh context (empty cache) per load, navigation start to the last row and sparkline drawn',
      },
    };
  } finally {
    await browser.close();
    await server.cleanup();
  }
}

if (runsAlone(import.meta.url)) await runSectionAlone('console', measureConsole);

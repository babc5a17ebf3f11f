// The console's workflow pages in a real browser (headless Chromium through playwright-core) against a real
// `savassan start` running real functions: build a three-node workflow in the graph editor by dragging functions
// from the palette and connecting their handles, see a cycle refused, deploy it, run it and watch its nodes turn
// green; round-trip a spec through import and export; and open a 500-node workflow, measuring frame times while
// panning and dragging. With SAVASSAN_CONSOLE_SCREENSHOTS=DIR set, the pages are saved there as 1280×800 PNGs; with
// SAVASSAN_CONSOLE_FRAME_TIMES=FILE, the frame times are written there as JSON.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import type { Browser, Locator, Page } from 'playwright-core';
import { readBundle } from '../../src/client/bundle.js';
import type { WorkflowSpec } from '../../src/core/workflow-spec.js';
import { repoRoot, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { chromiumArgs, chromiumPath } from './chromium.js';

const screenshots = process.env['SAVASSAN_CONSOLE_SCREENSHOTS'];
const frameTimesFile = process.env['SAVASSAN_CONSOLE_FRAME_TIMES'];
const fixtures = join(repoRoot, 'test', 'fixtures', 'console-workflows');

/** Median and 95th percentile of a list of milliseconds. */
function percentiles(values: number[]): { frames: number; medianMs: number; p95Ms: number; maxMs: number } {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const round = (v: number) => Math.round(v * 100) / 100;
  return { frames: sorted.length, medianMs: round(at(0.5)), p95Ms: round(at(0.95)), maxMs: round(sorted.at(-1) ?? 0) };
}

describe('workflows in the web console', { skip: existsSync(chromiumPath) ? false : `no ${chromiumPath}` }, () => {
  let server: ServerProcess;
  let browser: Browser;
  let page: Page;

  const shoot = async (name: string) => {
    if (screenshots === undefined || screenshots === '') return;
    await page.screenshot({ path: join(screenshots, `${name}.png`) });
  };
  const open = async (hash: string) => {
    await page.goto('about:blank');
    await page.goto(`${server.url}/console/${hash}`);
  };
  const node = (id: string): Locator => page.locator(`.react-flow__node[data-id="${id}"]`);
  /** Drags from one node's output handle to another node's input handle with the mouse, as a user does. */
  const connect = async (source: string, target: string) => {
    const from = await node(source).locator('.react-flow__handle.source').boundingBox();
    const to = await node(target).locator('.react-flow__handle[data-handleid="input"]').boundingBox();
    assert.ok(from !== null && to !== null);
    await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
    await page.mouse.down();
    await page.mouse.move(to.x + to.width / 2, to.y + to.height / 2, { steps: 8 });
    await page.mouse.up();
  };
  const putWorkflow = async (name: string, spec: WorkflowSpec) => {
    const response = await fetch(`${server.url}/v1/workflows/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(spec),
    });
    assert.ok(response.ok, `PUT /v1/workflows/${name}: ${response.status} ${await response.text()}`);
  };

  before(async () => {
    server = await startServer(['--no-examples']);
    for (const name of ['double', 'inc']) await server.client.deploy(name, await readBundle(join(fixtures, name)));
    browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.setDefaultTimeout(15_000);
  });
  after(async () => {
    await browser?.close();
    await server?.cleanup();
  });

  it('builds a workflow by dragging and connecting, refuses a cycle, deploys it and runs it to green', async () => {
    await open('#/workflows');
    await page.getByRole('heading', { name: 'Workflows' }).waitFor();
    await page.getByRole('link', { name: 'New workflow' }).first().click();
    await page.getByRole('heading', { name: 'New workflow' }).waitFor();
    await page.getByRole('button', { name: 'Switch to the graph editor' }).click();
    const canvas = page.locator('.editor-canvas');
    await page.locator('[data-palette="double"]').waitFor();
    await page.locator('[data-palette="double"]').dragTo(canvas, { targetPosition: { x: 150, y: 200 } });
    await page.locator('[data-palette="inc"]').dragTo(canvas, { targetPosition: { x: 420, y: 120 } });
    await page.locator('[data-palette="inc"]').dragTo(canvas, { targetPosition: { x: 420, y: 330 } });
    for (const id of ['double', 'inc', 'inc-2']) await node(id).waitFor();

    await node('double').click();
    await page.getByLabel(/^Input \(JSON/).fill('{"n": "$.inputs.x"}');
    await connect('double', 'inc');
    await page.getByTestId('editor-message').getByText('inc takes $.nodes.double.output as its input.').waitFor();
    await connect('inc', 'inc-2');
    await page.getByTestId('editor-message').getByText('inc-2 takes $.nodes.inc.output').waitFor();
    await page.locator('.react-flow__edge').nth(1).waitFor();

    await connect('inc-2', 'double');
    await page
      .getByRole('alert')
      .filter({ hasText: 'Refused: connecting inc-2 to double would make a cycle (double → inc → inc-2 → double).' })
      .waitFor();
    assert.equal(await page.locator('.react-flow__edge').count(), 2);

    await page.locator('.react-flow__pane').click({ position: { x: 20, y: 20 } });
    await page.getByLabel(/^Output \(references\)/).fill('"$.nodes.inc-2.output"');
    await page.getByLabel('Workflow name').fill('pipeline');
    await page.getByRole('button', { name: 'Auto-layout' }).click();
    await page.getByRole('button', { name: 'Validate' }).click();
    await page.getByRole('status').filter({ hasText: 'Valid: 3 nodes, in order double → inc → inc-2.' }).waitFor();
    await shoot('workflow-editor');

    // Still a linear pipeline: the simple form shows it, and the editor takes it back.
    await page.getByRole('button', { name: 'Switch to the simple form' }).click();
    await page.locator('[data-step="inc-2"]').getByText('with the output of inc').waitFor();
    await page.getByRole('button', { name: 'Switch to the graph editor' }).click();
    await node('inc-2').waitFor();

    await page.getByRole('button', { name: 'Deploy' }).click();
    await page.getByRole('status').filter({ hasText: 'Deployed pipeline v1.' }).waitFor();
    await page.getByRole('link', { name: 'Open it' }).click();
    await page.getByRole('heading', { name: /^pipeline/ }).waitFor();
    await node('inc-2').waitFor();

    await page.getByLabel(/^x/).fill('5');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await page.getByRole('heading', { name: /^Execution / }).waitFor();
    await page.getByTestId('execution-phase').getByText('SUCCEEDED').waitFor({ timeout: 60_000 });
    for (const id of ['double', 'inc', 'inc-2']) {
      await page.locator(`.wf-node[data-node="${id}"][data-phase="SUCCEEDED"]`).waitFor();
      // Green, as the Flyte console shows a succeeded node (the page's own script, as text: no DOM types here).
      const colour = await page.evaluate<string>(
        `getComputedStyle(document.querySelector('.wf-node[data-node="${id}"]')).backgroundColor`,
      );
      assert.equal(colour, 'rgb(220, 252, 231)');
    }
    assert.deepEqual(JSON.parse(await page.getByTestId('execution-outputs').innerText()), { n: 12 });
    assert.equal(await page.locator('[data-timeline-node]').count(), 3);
    await shoot('workflow-execution');

    await page.locator('[data-node-row="double"]').getByRole('button', { name: 'double' }).click();
    await page.getByRole('button', { name: 'Show logs' }).first().click();
    await page.getByRole('log', { name: 'Logs of attempt 1' }).getByText('double 5').waitFor();

    await open('#/workflows');
    await page.locator('tr[data-workflow="pipeline"] a.phase-succeeded').waitFor();
    await shoot('workflows');
  });

  it('shows a running node live, terminates the execution, relaunches and recovers it', async () => {
    await server.client.deploy('sleepy', await readBundle(join(repoRoot, 'test', 'fixtures', 'e2e', 'sleepy')), {
      timeoutSeconds: 120,
    });
    await server.client.deployWorkflow('slow', {
      inputs: { ms: 'number' },
      nodes: {
        first: { function: 'double', input: { n: 1 } },
        nap: { function: 'sleepy', input: { ms: '$.inputs.ms', after: '$.nodes.first.output.n' } },
      },
    });
    // Long enough to be seen running and terminated; short, since an aborted node's invocation still runs to its end
    // and the server's stop waits for it.
    const { id } = await server.client.launchExecution({ workflow: 'slow', inputs: { ms: 15_000 } });
    await open(`#/executions/${id.project}/${id.domain}/${id.name}`);
    await page.locator('.wf-node[data-node="nap"][data-phase="RUNNING"]').waitFor({ timeout: 60_000 });
    await page.locator('.wf-node[data-node="first"][data-phase="SUCCEEDED"]').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Recover' }).isDisabled(), true);

    await page.getByRole('button', { name: 'Terminate' }).click();
    await page.getByTestId('execution-phase').getByText('ABORTED').waitFor({ timeout: 60_000 });
    await page.getByText('terminated from the console').waitFor();
    assert.equal(await page.getByRole('button', { name: 'Terminate' }).isDisabled(), true);

    // Recover: a new execution that takes the succeeded node's output and runs the rest.
    await page.getByRole('button', { name: 'Recover' }).click();
    await page.getByText(`RECOVERED of ${id.name}`).waitFor();
    await page.locator('.wf-node[data-node="first"][data-phase="RECOVERED"]').waitFor({ timeout: 60_000 });
    await page.locator('.wf-node[data-node="nap"][data-phase="RUNNING"]').waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Terminate' }).click();
    await page.getByTestId('execution-phase').getByText('ABORTED').waitFor({ timeout: 60_000 });

    await page.getByRole('button', { name: 'Relaunch' }).click();
    await page.getByText(/^RELAUNCH of /).waitFor();
    await page.locator('.wf-node[data-node="first"][data-phase="SUCCEEDED"]').waitFor({ timeout: 60_000 });
    await page.getByRole('button', { name: 'Terminate' }).click();
    await page.getByTestId('execution-phase').getByText('ABORTED').waitFor({ timeout: 60_000 });
  });

  it('round-trips a spec through import and export', async () => {
    const spec: WorkflowSpec = {
      description: 'a diamond',
      inputs: { x: 'number' },
      nodes: {
        a: { function: 'double', input: { n: '$.inputs.x' } },
        b: { function: 'inc', input: '$.nodes.a.output' },
        c: { function: 'double', input: '$.nodes.a.output', retries: 2 },
        d: { function: 'inc', input: { n: '$.nodes.b.output.n', m: '$.nodes.c.output.n' } },
      },
      output: { result: '$.nodes.d.output.n' },
      failurePolicy: 'finishRunnable',
    };
    await open('#/workflows/new');
    await page.getByRole('button', { name: 'Switch to the graph editor' }).click();
    await page.getByRole('button', { name: 'Import JSON' }).click();
    await page.getByLabel('Spec to import').fill('{"nodes": 3}');
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.getByRole('alert').filter({ hasText: 'Cannot import' }).waitFor();
    await page.getByLabel('Spec to import').fill(JSON.stringify(spec));
    await page.getByRole('button', { name: 'Import', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'Imported 4 nodes.' }).waitFor();
    assert.equal(await page.locator('.react-flow__node').count(), 4);
    assert.equal(await page.locator('.react-flow__edge').count(), 4);
    // A diamond is no pipeline: the simple form is out of reach.
    assert.equal(await page.getByRole('button', { name: 'Switch to the simple form' }).isDisabled(), true);

    await page.getByRole('button', { name: 'Export JSON' }).click();
    assert.deepEqual(JSON.parse(await page.getByLabel('Exported spec').inputValue()), spec);
    await page.getByLabel('Workflow name').fill('diamond');
    const download = page.waitForEvent('download');
    await page.getByRole('link', { name: 'Download diamond.json' }).click();
    const path = await (await download).path();
    assert.deepEqual(JSON.parse(await readFile(path, 'utf8')), spec);
  });

  it('opens a 500-node workflow and stays interactive while panning and dragging', async () => {
    const nodes: WorkflowSpec['nodes'] = {};
    const width = 10;
    for (let i = 0; i < 500; i++) {
      const id = `n${i}`;
      const layer = Math.floor(i / width);
      const input = layer === 0 ? { n: '$.inputs.x' } : `$.nodes.n${(layer - 1) * width + ((i * 7) % width)}.output`;
      nodes[id] = { function: i % 2 === 0 ? 'double' : 'inc', input };
    }
    await putWorkflow('big', { inputs: { x: 'number' }, nodes });

    await open('#/workflows/big');
    await page.getByRole('heading', { name: /^big/ }).waitFor();
    await page.locator('.react-flow__node').first().waitFor();
    await open('#/workflows/big/edit');
    await page.getByRole('heading', { name: 'Edit big' }).waitFor();
    await page.locator('.react-flow__node').first().waitFor();

    // Frame times: requestAnimationFrame deltas collected in the page while the mouse pans, then drags a node.
    const start = () =>
      page.evaluate(`(() => {
        window.__frames = [];
        window.__last = performance.now();
        window.__on = true;
        const tick = (now) => {
          window.__frames.push(now - window.__last);
          window.__last = now;
          if (window.__on) requestAnimationFrame(tick);
        };
        requestAnimationFrame(tick);
      })()`);
    const stop = async () => {
      const frames = await page.evaluate<number[]>('(window.__on = false, window.__frames.slice(1))');
      return percentiles(frames);
    };
    const pane = await page.locator('.editor-canvas').boundingBox();
    assert.ok(pane !== null);
    const cx = pane.x + pane.width / 2;
    const cy = pane.y + pane.height / 2;

    const panAcross = async () => {
      await start();
      for (let sweep = 0; sweep < 4; sweep++) {
        await page.mouse.move(cx + 200, cy + 100);
        await page.mouse.down();
        await page.mouse.move(cx - 250, cy - 150, { steps: 40 });
        await page.mouse.up();
      }
      return stop();
    };
    // The whole graph in view (every node drawn), then zoomed in to where a user reads the nodes.
    const overviewRendered = await page.locator('.react-flow__node').count();
    const overview = await panAcross();
    for (let i = 0; i < 12; i++) await page.locator('.react-flow__controls-zoomin').click();
    await page.waitForFunction(`document.querySelectorAll('.react-flow__node').length < ${overviewRendered}`);
    const pan = await panAcross();
    const rendered = await page.locator('.react-flow__node').count();

    // A node wholly in view, so the drag starts on it.
    let box: { x: number; y: number; width: number; height: number } | null = null;
    for (const candidate of await page.locator('.react-flow__node').all()) {
      const at = await candidate.boundingBox();
      if (at !== null && at.x > pane.x + 20 && at.y > pane.y + 20 && at.x + at.width < cx && at.y + at.height < cy) {
        box = at;
        break;
      }
    }
    assert.ok(box !== null, 'no node wholly in view');
    await start();
    await page.mouse.move(box.x + 40, box.y + 20);
    await page.mouse.down();
    await page.mouse.move(box.x + 340, box.y + 220, { steps: 60 });
    await page.mouse.up();
    const drag = await stop();
    await shoot('workflow-editor-500');

    const result = {
      nodes: 500,
      overview: { rendered: overviewRendered, pan: overview },
      zoomed: { rendered, pan, drag },
    };
    console.log(`console workflows, 500 nodes: ${JSON.stringify(result)}`);
    if (frameTimesFile !== undefined && frameTimesFile !== '')
      await writeFile(frameTimesFile, JSON.stringify(result, null, 2));
    assert.ok(overview.frames > 0 && pan.frames > 0 && drag.frames > 0);
    // Only what is in view is rendered.
    assert.ok(rendered < overviewRendered, `${rendered} nodes rendered zoomed in, ${overviewRendered} zoomed out`);
  });
});

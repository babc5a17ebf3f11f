// The fine-tune wizard in a real browser (headless Chromium through playwright-core) against a real `savassan start`
// with its built-in fine-tune workflow and CPU trainer: describe the tuning, review and edit the plan (a broken edit is
// refused by the platform's validator; the edited plan is saved and is the one the run follows), upload synthetic
// images (one dropped on the zone, the rest through the file picker), start the run, accept and reject the images the
// curator picked, and follow the run over its WebSocket until it succeeds and shows its report. The page at the
// feedback grid is saved as docs/console/fine-tune-wizard.png; with SAVASSAN_CONSOLE_SCREENSHOTS=DIR set, the other
// steps are saved there too.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { repoRoot, startServer } from '../helpers/server-process.js';
import type { ServerProcess } from '../helpers/server-process.js';
import { syntheticImages } from '../helpers/synthetic-images.js';
import type { SyntheticImage } from '../helpers/synthetic-images.js';
import { chromiumArgs, chromiumPath } from './chromium.js';

const screenshots = process.env['SAVASSAN_CONSOLE_SCREENSHOTS'];

describe(
  'the fine-tune wizard in the web console',
  { skip: existsSync(chromiumPath) ? false : `no ${chromiumPath}` },
  () => {
    let server: ServerProcess;
    let browser: Browser;
    let page: Page;
    let images: SyntheticImage[];

    const shoot = async (name: string) => {
      if (screenshots === undefined || screenshots === '') return;
      await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
    };

    before(async () => {
      // The examples (the fine-tune workflow's trainer among them) are deployed at start.
      server = await startServer([]);
      images = await syntheticImages({ clusters: 3, perCluster: 6, duplicates: 1, outliers: 1, broken: true });
      browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
      page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      page.setDefaultTimeout(20_000);
    });
    after(async () => {
      await browser?.close();
      await server?.cleanup();
    });

    it('goes from a prompt to a trained model: plan, upload, feedback, live run and report', async () => {
      await page.goto(`${server.url}/console/#/fine-tune`);
      await page.getByRole('heading', { name: 'Fine-tune' }).waitFor();

      // 1. The prompt.
      await page
        .getByLabel('What should the model learn?')
        .fill('Fine-tune stable-diffusion-v1-5 with LoRA on photos of my dog Fluffy, in watercolour style');
      await page.getByRole('button', { name: 'Plan it' }).click();

      // 2. The plan: a LoRA plan from the rule-based planner; an alpha above the rank is refused, then mended.
      await page.getByText('Planned by rule-based').waitFor();
      assert.equal(await page.getByLabel('Tuning type').inputValue(), 'lora');
      const rank = Number(await page.getByLabel('LoRA rank').inputValue());
      await page.getByLabel(/^LoRA alpha/).fill(String(rank + 1));
      await page.getByRole('button', { name: 'Check plan' }).click();
      await page.getByRole('alert').filter({ hasText: '$.hyperparameters.lora_alpha' }).waitFor();
      await page.getByLabel(/^LoRA alpha/).fill(String(rank));
      // An edit the run must keep: the steps.
      await page.getByLabel('Training steps').fill('1234');
      await page.getByRole('button', { name: 'Check plan' }).click();
      await page.getByText('The plan passes every rule.').waitFor();
      await shoot('fine-tune-plan');
      await page.getByRole('button', { name: 'Save the plan, next: images' }).click();

      // 3. The images: the first dropped on the zone, the rest through the file picker; one result line each.
      const [first, ...rest] = images;
      assert.ok(first !== undefined);
      // A DataTransfer holding the file, made in the page (its own script, as text: no DOM types here).
      const transfer = await page.evaluateHandle(`(() => {
      const data = new DataTransfer();
      const bytes = Uint8Array.from(atob(${JSON.stringify(first.bytes.toString('base64'))}), (c) => c.charCodeAt(0));
      data.items.add(new File([bytes], ${JSON.stringify(first.name)}, { type: 'image/png' }));
      return data;
    })()`);
      await page.getByTestId('drop-zone').dispatchEvent('drop', { dataTransfer: transfer });
      await page
        .getByLabel('Images to upload')
        .setInputFiles(
          rest.map((image) => ({ name: image.name, mimeType: 'application/octet-stream', buffer: image.bytes })),
        );
      const uploads = page.getByRole('table', { name: 'Uploads' }).locator('tbody tr');
      await page
        .locator('tbody tr[data-state="done"]')
        .nth(images.length - 1)
        .waitFor();
      assert.equal(await uploads.count(), images.length);
      assert.equal(await page.locator('tbody tr[data-state="failed"]').count(), 0);
      await shoot('fine-tune-upload');
      await page.getByRole('button', { name: /^Next: run/ }).click();

      // 4. The run: its page follows it live.
      await page.getByText('(your edit)').waitFor();
      await page.getByRole('button', { name: 'Start the run' }).click();
      await page.getByRole('heading', { name: /^Run run-/ }).waitFor();
      assert.match(page.url(), /#\/fine-tune\/run-[a-z2-7]{26}$/);
      // The run follows the edited plan (stored as the user's), not one planned again from the prompt.
      const runId = /run-[a-z2-7]{26}$/.exec(page.url())![0];
      const run = (await (await fetch(`${server.url}/v1/intelligence/runs/${runId}`)).json()) as {
        planId: string;
        plan: { hyperparameters: { train_steps: number } } | null;
      };
      assert.equal(run.plan?.hyperparameters.train_steps, 1234);
      const plan = (await (await fetch(`${server.url}/v1/plans/${run.planId}`)).json()) as { planner: string };
      assert.equal(plan.planner, 'user');
      await page.getByRole('link', { name: 'Open in workflow editor' }).first().waitFor();

      // The feedback grid: every picked image shown; the first cluster accepted, the others rejected.
      const cards = page.locator('.feedback-card');
      await cards.first().waitFor({ timeout: 120_000 });
      const count = await cards.count();
      assert.ok(count >= 3, `${count} images for feedback`);
      await page
        .locator('.feedback-card img')
        .nth(count - 1)
        .waitFor();
      const broken = await page.evaluate<number>(
        `[...document.querySelectorAll('.feedback-card img')].filter((img) => !img.complete || img.naturalWidth === 0).length`,
      );
      assert.equal(broken, 0, 'every image shows');
      const firstCluster = (await cards.first().locator('.reason').innerText()).replace(/^.* of /, '');
      let accepted = 0;
      for (let i = 0; i < count; i++) {
        const card = cards.nth(i);
        const take = (await card.locator('.reason').innerText()).endsWith(firstCluster);
        accepted += take ? 1 : 0;
        await card.getByRole('button', { name: take ? 'Accept' : 'Reject' }).click();
      }
      assert.ok(accepted > 0 && accepted < count, `${accepted} of ${count} accepted`);
      await page.getByText(`${count} of ${count} reviewed`).waitFor();
      await page.screenshot({ path: join(repoRoot, 'docs', 'console', 'fine-tune-wizard.png') });
      await page.getByRole('button', { name: 'Submit' }).click();

      // Training, evaluation, and the report.
      await page.getByTestId('run-status').getByText('SUCCEEDED').waitFor({ timeout: 180_000 });
      const report = page.getByTestId('run-report');
      await report.waitFor();
      await report.getByText('Training accuracy').waitFor();
      await report.getByText('Model').first().waitFor();
      assert.ok((await page.locator('.run-step-done').count()) >= 6, 'every step done');
      // The trainer's output came over the socket.
      await page.getByRole('log', { name: 'Training log' }).locator('.log-text').first().waitFor();
      await shoot('fine-tune-report');

      // Progressive disclosure: the same run as an execution of the fine-tune workflow.
      await page.getByRole('link', { name: 'Open the execution' }).click();
      await page.getByRole('heading', { name: /^Execution / }).waitFor();
      await page.getByTestId('execution-phase').getByText('SUCCEEDED').waitFor();
    });
  },
);

// Datasets, curations and fine-tune runs through the real CLI (`bin/savassan.js`) against a real `savassan start`:
// a synthetic image set uploaded from a directory, a run followed to its feedback, verdicts given, the run followed to
// SUCCEEDED; and the errors and exit codes of bad input.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { syntheticImages, type SyntheticImage } from '../helpers/synthetic-images.js';
import { runCli, startServer, type ServerProcess } from '../helpers/server-process.js';

interface RunJson {
  id: string;
  status: string;
  curationId: string | null;
  curatedDatasetUri: string | null;
  output: Record<string, unknown> | null;
}

interface CurationJson {
  id: string;
  status: string;
  imagesForFeedback: { imageId: string }[];
  errors: { file: string }[];
}

describe('intelligence CLI end to end', () => {
  let server: ServerProcess;
  let images: SyntheticImage[];
  let dir: string;
  const cli = (...args: string[]) => runCli(server.url, args);

  before(async () => {
    server = await startServer();
    images = await syntheticImages({ clusters: 2, perCluster: 6, duplicates: 1, outliers: 0, broken: true });
    dir = await mkdtemp(join(tmpdir(), 'sv-images-'));
    await mkdir(join(dir, 'shapes'));
    for (const image of images) await writeFile(join(dir, 'shapes', image.name), image.bytes);
  });

  after(async () => {
    await server.cleanup();
  });

  it('uploads a directory, runs a fine-tune to its feedback, gives verdicts and follows the run to SUCCEEDED', async () => {
    const uploaded = await cli('dataset', 'upload', 'shapes', join(dir, 'shapes'));
    assert.equal(uploaded.code, 0, uploaded.stderr);
    // Every file with an image's extension is uploaded (the corrupt ones too: the job reports them); the text file
    // is not an image file.
    const imageFiles = images.filter((i) => /\.(png|jpe?g)$/.test(i.name));
    assert.ok(imageFiles.length < images.length);
    const lines = uploaded.stdout.trim().split('\n');
    assert.equal(lines.length, imageFiles.length, uploaded.stdout);
    for (const image of imageFiles) {
      assert.ok(
        lines.some((line) => line.startsWith(`uploaded ${image.name} img-`)),
        image.name,
      );
    }
    assert.match(uploaded.stderr, new RegExp(`${imageFiles.length} of ${imageFiles.length} file\\(s\\) uploaded`));

    const listed = await cli('dataset', 'ls', 'shapes', '--json');
    assert.equal(listed.code, 0, listed.stderr);
    const records = (JSON.parse(listed.stdout) as { images: { imageId: string; name: string }[] }).images;
    assert.equal(records.length, imageFiles.length);
    const table = await cli('dataset', 'ls', 'shapes');
    assert.match(table.stdout, /^IMAGE\s+NAME\s+BYTES\s+TYPE\s+UPLOADED$/m);
    assert.match(table.stdout, /^img-\S+\s+c0-00\.png\s+\d+\s+image\/png/m);
    const clusterOf = new Map(
      records.map((record) => [record.imageId, images.find((i) => i.name === record.name)?.cluster]),
    );

    // A plan made beforehand (as one edited and saved would be): the run follows it, and a plan it does not know is
    // refused.
    const planned = await cli('plan', 'LoRA of the red discs in flat vector style', '--json');
    assert.equal(planned.code, 0, planned.stderr);
    const planId = (JSON.parse(planned.stdout) as { id: string }).id;
    const unknownPlan = await cli('finetune', 'run', 'x', '--dataset', 'shapes', '--plan-id', 'plan-nope');
    assert.equal(unknownPlan.code, 1);
    assert.match(unknownPlan.stderr, /^\[BAD_REQUEST\] planId: no plan plan-nope/m);
    const started = await cli(
      'finetune',
      'run',
      'LoRA of the red discs in flat vector style',
      '--dataset',
      'shapes',
      '--plan-id',
      planId,
      '--user',
      'ada',
      '--wait',
    );
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^run run-[a-z2-7]{26} AWAITING_FEEDBACK$/m);
    assert.match(started.stdout, new RegExp(`^plan\\s+${planId} \\(lora of `, 'm'));
    const runId = /^run (run-\S+)/m.exec(started.stdout)?.[1] ?? '';
    const curationId = /^curation\s+(cur-\S+)$/m.exec(started.stdout)?.[1] ?? '';
    assert.notEqual(curationId, '', started.stdout);
    assert.match(started.stderr, new RegExp(`savassan curation feedback ${curationId} --accept`));

    const status = await cli('curation', 'status', curationId);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^curation ${curationId} AWAITING_FEEDBACK`, 'm'));
    assert.match(status.stdout, /^images for feedback \(\d+\):$/m);
    assert.match(status.stdout, /^files that could not be curated \(\d+\):$/m);
    const curation = JSON.parse((await cli('curation', 'status', curationId, '--json')).stdout) as CurationJson;
    assert.equal(curation.errors.length, images.filter((i) => i.kind !== 'base' && i.kind !== 'duplicate').length - 1);
    const accept = curation.imagesForFeedback.filter((i) => clusterOf.get(i.imageId) === 0).map((i) => i.imageId);
    const reject = curation.imagesForFeedback.filter((i) => clusterOf.get(i.imageId) !== 0).map((i) => i.imageId);
    assert.ok(accept.length > 0 && reject.length > 0, JSON.stringify(curation.imagesForFeedback));

    // Verdicts recorded without completing, then the rest given and the job completed.
    const partial = await cli('curation', 'feedback', curationId, '--reject', reject[0]!, '--no-complete');
    assert.equal(partial.code, 0, partial.stderr);
    assert.match(partial.stdout, /AWAITING_FEEDBACK/);
    assert.match(partial.stdout, /^feedback\s+0 accepted, 1 rejected$/m);
    const given = await cli(
      'curation',
      'feedback',
      curationId,
      '--accept',
      accept.join(','),
      '--reject',
      reject.join(','),
    );
    assert.equal(given.code, 0, given.stderr);
    assert.match(given.stdout, new RegExp(`^curation ${curationId} COMPLETED`, 'm'));
    assert.match(given.stdout, /^curated\s+s3:\/\/savassan\/curated\/ds-/m);

    let run: RunJson;
    for (;;) {
      const answer = await cli('finetune', 'status', runId, '--json');
      assert.equal(answer.code, 0, answer.stderr);
      run = JSON.parse(answer.stdout) as RunJson;
      if (run.status === 'SUCCEEDED') break;
      assert.ok(!['FAILED', 'ABORTED'].includes(run.status), answer.stdout);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(run.output?.['accuracy'], 1);
    assert.ok(run.curatedDatasetUri?.startsWith('s3://savassan/curated/ds-'));
    const shown = await cli('finetune', 'status', runId);
    assert.match(shown.stdout, new RegExp(`^run ${runId} SUCCEEDED$`, 'm'));
    assert.match(shown.stdout, /^output\s+\{.*"accuracy":1/m);

    const ls = await cli('finetune', 'ls');
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /^RUN\s+STATUS\s+CREATED\s+CURATION\s+PROMPT$/m);
    assert.match(
      ls.stdout,
      new RegExp(`^${runId}\\s+SUCCEEDED\\s+\\S+\\s+${curationId}\\s+LoRA of the red discs`, 'm'),
    );

    // A completed job takes no more verdicts.
    const late = await cli('curation', 'feedback', curationId, '--accept', accept[0]!);
    assert.equal(late.code, 1);
    assert.match(late.stderr, /^\[CONFLICT\] /m);
  });

  it('starts a curation and waits for its feedback sample', async () => {
    const started = await cli('curation', 'start', '--project', 'cli-shapes', '--dataset', 'shapes', '--wait');
    assert.equal(started.code, 0, started.stderr);
    assert.match(started.stdout, /^curation cur-\S+ AWAITING_FEEDBACK \(project cli-shapes, embedder pixels-v1\)$/m);
    const json = await cli('curation', 'start', '--project', 'cli-shapes', '--dataset', 'shapes', '--json');
    assert.equal(json.code, 0, json.stderr);
    assert.equal((JSON.parse(json.stdout) as { status: string }).status, 'PENDING');
  });

  it('refuses bad input with a clear error and exit code 1', async () => {
    const unknown = await cli('finetune', 'run', 'LoRA of my dog', '--dataset', 'no-such-dataset');
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^\[BAD_REQUEST\] dataset no-such-dataset has no images: upload some with/m);
    const noSource = await cli('finetune', 'run', 'LoRA of my dog');
    assert.equal(noSource.code, 1);
    assert.match(noSource.stderr, /^\[BAD_REQUEST\] give exactly one of --dataset ID and --raw-data-uri/m);
    const twoSources = await cli(
      'curation',
      'start',
      '--project',
      'p',
      '--dataset',
      'shapes',
      '--raw-data-uri',
      's3://savassan/x',
    );
    assert.equal(twoSources.code, 1);
    assert.match(twoSources.stderr, /^\[BAD_REQUEST\] give exactly one of/m);
    const emptyCuration = await cli('curation', 'start', '--project', 'p', '--dataset', 'no-such-dataset');
    assert.equal(emptyCuration.code, 1);
    assert.match(emptyCuration.stderr, /^\[BAD_REQUEST\] dataset no-such-dataset has no images/m);
    const otherBucket = await cli('curation', 'start', '--project', 'p', '--raw-data-uri', 's3://elsewhere/x');
    assert.equal(otherBucket.code, 1);
    assert.match(otherBucket.stderr, /^\[BAD_REQUEST\] .*savassan/m);
    const missingRun = await cli('finetune', 'status', 'run-nope', '--json');
    assert.equal(missingRun.code, 1);
    assert.equal((JSON.parse(missingRun.stdout) as { error: { code: string } }).error.code, 'NOT_FOUND');
    const missingCuration = await cli('curation', 'status', 'cur-nope');
    assert.equal(missingCuration.code, 1);
    assert.match(missingCuration.stderr, /^\[NOT_FOUND\] curation cur-nope does not exist/m);
    const both = await cli('curation', 'feedback', 'cur-nope', '--accept', 'img-a', '--reject', 'img-a');
    assert.equal(both.code, 1);
    assert.match(both.stderr, /^\[BAD_REQUEST\] accepted and rejected at once: img-a/m);

    // One good file, a name the API refuses and a missing file: a line for each, exit 1.
    const mixed = join(dir, 'mixed');
    await mkdir(mixed);
    await writeFile(join(mixed, 'good.png'), images[0]!.bytes);
    await writeFile(join(mixed, 'bad name.png'), images[0]!.bytes);
    const upload = await cli(
      'dataset',
      'upload',
      'mixed',
      join(mixed, 'good.png'),
      join(mixed, 'bad name.png'),
      join(mixed, 'missing.png'),
    );
    assert.equal(upload.code, 1);
    assert.match(
      upload.stdout,
      /^uploaded good\.png img-\S+ \d+ bytes s3:\/\/savassan\/datasets\/mixed\/raw\/good\.png$/m,
    );
    assert.match(upload.stderr, /^failed\s+\S*bad name\.png: \[BAD_REQUEST\] /m);
    assert.match(upload.stderr, /^failed\s+\S*missing\.png: /m);
    assert.match(upload.stderr, /1 of 3 file\(s\) uploaded to dataset mixed/);
    const again = await cli('dataset', 'upload', 'mixed', join(mixed, 'good.png'));
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /^replaced good\.png /m);
    const badDataset = await cli('dataset', 'upload', 'Not_A_Dataset', join(mixed, 'good.png'), '--json');
    assert.equal(badDataset.code, 1);
    const results = JSON.parse(badDataset.stdout) as { name: string; error?: { code: string } }[];
    assert.deepEqual(
      results.map((r) => [r.name, r.error?.code]),
      [['good.png', 'BAD_REQUEST']],
    );
    const empty = await cli('dataset', 'ls', 'no-such-dataset');
    assert.equal(empty.code, 0, empty.stderr);
    assert.match(empty.stderr, /dataset no-such-dataset has no images/);
  });
});

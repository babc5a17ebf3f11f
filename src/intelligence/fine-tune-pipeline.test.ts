// The `fine-tune` workflow (src/intelligence/fine-tune-workflow.ts) on the real engine, as test/helpers/fine-tune-rig.ts
// composes it: plan (the real plan service, rule-based or a scripted model), curate and feedback (a curation service
// that follows the curator's contract), train (the real trainer example), evaluate; runs read back as run views.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CurationManifest } from '../core/curation.js';
import { isPlatformError } from '../core/errors.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsBlobStore } from '../adapters/fs/fs-blob-store.js';
import { MemoryIntelligenceStore } from '../adapters/memory/memory-intelligence-store.js';
import { silentLogger } from '../core/logger.js';
import { fineTuneRig, followRun, TestCurations, TestVectors } from '../../test/helpers/fine-tune-rig.js';
import { ScriptedLlm, validPlan } from '../../test/helpers/scripted-llm.js';
import { syntheticImages } from '../../test/helpers/synthetic-images.js';
import { fineTuneTasks, trainingSetOf } from './fine-tune-tasks.js';
import { createPlanService } from './plan/plan-service.js';
import type { RunService } from './services.js';

describe('the fine-tune workflow on the engine', () => {
  const stops: (() => Promise<void>)[] = [];

  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  async function rig(options: Parameters<typeof fineTuneRig>[0] = {}) {
    const made = await fineTuneRig(options);
    stops.push(made.stop);
    return made;
  }

  it('plans, curates, waits for the feedback, trains the probe and writes the report', async () => {
    const { runs, curations, blobs, trained } = await rig();
    const started = await runs.start({
      prompt: 'LoRA of my dog Fluffy in watercolor style',
      source: { datasetId: 'dogs' },
      userId: 'ada',
    });
    assert.equal(started.status, 'PLANNING');
    assert.deepEqual(started.execution, { project: 'savassan', domain: 'development', name: started.id });
    const seen: string[] = [];
    const waiting = await followRun(runs, started.id, (v) => v.status === 'AWAITING_FEEDBACK', seen);
    assert.ok(waiting.planId !== null && waiting.plan !== null, 'the plan is shown');
    assert.equal(waiting.plan.tuning_type, 'lora');
    assert.ok(waiting.curationId !== null);
    const job = await curations.get(waiting.curationId);
    assert.equal(job?.projectId, started.id);
    await curations.submitFeedback(
      waiting.curationId,
      [
        { imageId: 'img-a00', accepted: true },
        { imageId: 'img-b00', accepted: false },
      ],
      true,
    );
    const done = await followRun(runs, started.id, (v) => v.status === 'SUCCEEDED', seen);
    assert.deepEqual(
      seen.filter((s) => s !== 'CURATING' && s !== 'TRAINING' && s !== 'EVALUATING'),
      ['PLANNING', 'AWAITING_FEEDBACK', 'SUCCEEDED'].filter((s) => seen.includes(s)),
    );
    assert.ok(done.curatedDatasetUri?.startsWith('s3://savassan/curated/ds-'));
    const output = done.output as Record<string, unknown>;
    assert.equal(output['accuracy'], 1);
    assert.equal(output['heldOutAccuracy'], 1);
    assert.equal(output['trainingExamples'], 24);
    assert.equal(output['trainingSetTruncated'], false);
    assert.equal(output['reportUri'], `s3://savassan/models/${started.id}/report.json`);
    // The train node ran the trainer with the plan, the dataset and the labelled embeddings.
    const event = JSON.parse(trained[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(event).sort(), ['curatedDatasetUri', 'plan', 'trainingSet']);
    const report = JSON.parse((await blobs.get(`models/${started.id}/report.json`))!.toString('utf8')) as {
      evaluation: { labelled: { accuracy: number; examples: number }; heldOut: { accuracy: number; examples: number } };
      trainer: { trainAccuracy: number };
      planId: string;
    };
    assert.equal(report.evaluation.labelled.examples, 24);
    assert.equal(report.evaluation.labelled.accuracy, 1);
    assert.equal(report.evaluation.heldOut.examples, 4);
    assert.equal(report.planId, done.planId);
    const model = JSON.parse((await blobs.get(`models/${started.id}/model.json`))!.toString('utf8')) as {
      weights: number[];
    };
    assert.equal(model.weights.length, 8);
    assert.equal((await runs.list({ limit: 10 }))[0]?.id, started.id);
  });

  it('runs with the real curator on synthetic images: uploads, feedback, a probe that tells the clusters apart', async () => {
    const { runs, curations, blobs } = await rig({ curator: 'real' });
    const images = await syntheticImages({ clusters: 2, perCluster: 6, duplicates: 0, outliers: 0, broken: false });
    for (const image of images) {
      await curations.addDatasetImage('shapes', image.name, Readable.from([image.bytes]), image.bytes.length);
    }
    const clusterOf = new Map(
      (await curations.listDatasetImages('shapes')).map((record) => [
        record.imageId,
        images.find((image) => image.name === record.name)?.cluster,
      ]),
    );
    const started = await runs.start({ prompt: 'LoRA of red discs', source: { datasetId: 'shapes' } });
    const waiting = await followRun(runs, started.id, (v) => v.status === 'AWAITING_FEEDBACK');
    const job = await curations.get(waiting.curationId!);
    assert.ok(job !== null && job.imagesForFeedback.length >= 2);
    // The user wants the red discs (synthetic cluster 0), not the blue squares.
    const feedback = job.imagesForFeedback.map((image) => ({
      imageId: image.imageId,
      accepted: clusterOf.get(image.imageId) === 0,
    }));
    assert.ok(feedback.some((v) => v.accepted) && feedback.some((v) => !v.accepted), JSON.stringify(feedback));
    await curations.submitFeedback(job.id, feedback, true);
    const done = await followRun(runs, started.id, (v) => v.status === 'SUCCEEDED');
    const output = done.output as { accuracy: number; trainingExamples: number; reportUri: string };
    assert.equal(output.accuracy, 1);
    assert.ok(output.trainingExamples >= 2);
    const report = JSON.parse((await blobs.get(`models/${started.id}/report.json`))!.toString('utf8')) as {
      curatedDatasetUri: string;
    };
    assert.equal(report.curatedDatasetUri, done.curatedDatasetUri);
  });

  it('fails the run with the plan problems when the plan cannot be made', async () => {
    const llm = new ScriptedLlm(['not json at all']);
    const { runs } = await rig({ plans: (store) => createPlanService({ store, llm }) });
    const started = await runs.start({ prompt: 'something', source: { datasetId: 'dogs' } });
    const failed = await followRun(runs, started.id, (v) => v.status === 'FAILED');
    assert.ok(failed.error !== null);
    assert.match(failed.error.message, /ended PARSING_ERROR: \$/);
    assert.equal(failed.curationId, null);
  });

  it('runs with an edited plan: the plan node answers it and the trainer gets it; a failed plan is refused', async () => {
    const llm = new ScriptedLlm(['not json at all']);
    const { runs, plans, curations, trained, planOutput } = await rig({
      plans: (store) => createPlanService({ store, llm }),
    });
    const edited = { ...validPlan, hyperparameters: { ...validPlan.hyperparameters, train_steps: 999 } };
    const { record } = await plans.createPlan({ prompt: 'LoRA of my dog', plan: edited });
    const started = await runs.start({ prompt: 'LoRA of my dog', source: { datasetId: 'dogs' }, planId: record.id });
    const waiting = await followRun(runs, started.id, (v) => v.status === 'AWAITING_FEEDBACK');
    assert.equal(waiting.planId, record.id);
    assert.deepEqual(waiting.plan, edited);
    assert.deepEqual(await planOutput(started.id), {
      planId: record.id,
      plan: edited,
      planner: 'user',
      warnings: [],
    });
    await curations.submitFeedback(
      waiting.curationId!,
      [
        { imageId: 'img-a00', accepted: true },
        { imageId: 'img-b00', accepted: false },
      ],
      true,
    );
    const done = await followRun(runs, started.id, (v) => v.status === 'SUCCEEDED');
    assert.equal((done.output as { planId: string }).planId, record.id);
    assert.deepEqual((JSON.parse(trained[0]!) as { plan: unknown }).plan, edited);
    // The model was never asked: the run planned nothing.
    assert.equal(llm.requests.length, 0);

    const failed = await plans.createPlan({ prompt: 'something' });
    assert.equal(failed.record.status, 'PARSING_ERROR');
    await assert.rejects(
      runs.start({ prompt: 'something', source: { datasetId: 'dogs' }, planId: failed.record.id }),
      (err: unknown) => {
        assert.ok(isPlatformError(err, 'BAD_REQUEST'), String(err));
        assert.match(err.rawMessage, /ended PARSING_ERROR; only a SUCCESS plan can run/);
        return true;
      },
    );
  });

  it('fails the run when the curation fails, saying why', async () => {
    const { runs } = await rig();
    const started = await runs.start({ prompt: 'LoRA of my cat', source: { datasetId: 'broken' } });
    const failed = await followRun(runs, started.id, (v) => v.status === 'FAILED');
    assert.match(failed.error?.message ?? '', /curation cur-[a-z2-7]{26} failed: nothing could be embedded/);
  });

  it('refuses a run with a bad source or an unknown trainer, and unknown tasks at deploy', async () => {
    const { runs, deployer } = await rig();
    const refused = async (request: Parameters<RunService['start']>[0], pattern: RegExp) =>
      assert.rejects(runs.start(request), (err: unknown) => {
        assert.ok(isPlatformError(err, 'BAD_REQUEST'), String(err));
        assert.match(err.rawMessage, pattern);
        return true;
      });
    await refused({ prompt: ' ', source: { datasetId: 'dogs' } }, /prompt/);
    await refused({ prompt: 'x', source: { rawDataUri: 's3://elsewhere/x' } }, /bucket: s3:\/\/savassan\/PREFIX/);
    await refused({ prompt: 'x', source: {} as never }, /exactly one of rawDataUri and datasetId/);
    await refused({ prompt: 'x', source: { datasetId: 'dogs' }, trainer: 'nope' }, /function nope does not exist/);
    await refused({ prompt: 'x', source: { datasetId: 'empty' } }, /dataset empty has no images: upload some first/);
    await refused({ prompt: 'x', source: { datasetId: 'dogs' }, planId: 'plan-nope' }, /planId: no plan plan-nope/);
    await assert.rejects(
      deployer.deploy('bad', { nodes: { a: { function: 'savassan.nope' } } }),
      /node a: function: savassan.nope is not a built-in task \(built-in tasks: savassan.await-feedback, savassan.curate, savassan.evaluate, savassan.plan, savassan.train;/,
    );
  });

  it("refuses a task a run id that is not its own execution's (no replay of another run's plan, no write over its model)", async () => {
    const { deployer, backend, blobs } = await rig();
    const trainingSet = { dimensions: 1, items: [{ imageId: 'img-a', label: 1, embedding: [1] }] };
    await deployer.deploy('meddle', {
      nodes: {
        evaluate: {
          function: 'savassan.evaluate',
          input: { runId: 'run-someoneelsesrunaaaaaaaaaa', trainingSet, training: { model: {} } },
        },
      },
    });
    const key = await backend.launch({ project: 'savassan', domain: 'development', workflow: 'meddle', inputs: {} });
    let view = await backend.get(key);
    while (view.closure.phase !== 'FAILED' && view.closure.phase !== 'SUCCEEDED') {
      await new Promise((resolve) => setTimeout(resolve, 10));
      view = await backend.get(key);
    }
    assert.equal(view.closure.phase, 'FAILED');
    assert.match(JSON.stringify(view.closure), /runId must be this execution's name/);
    assert.deepEqual(await blobs.list('models/'), []);
  });

  it('caps the training set under the event limit, both labels kept, and says so', async () => {
    const { runs, curations } = await rig({ maxTrainingSetBytes: 2000 });
    const started = await runs.start({ prompt: 'LoRA of my dog', source: { datasetId: 'dogs' } });
    const waiting = await followRun(runs, started.id, (v) => v.status === 'AWAITING_FEEDBACK');
    await curations.submitFeedback(
      waiting.curationId!,
      [
        { imageId: 'img-a00', accepted: true },
        { imageId: 'img-b00', accepted: false },
      ],
      true,
    );
    const done = await followRun(runs, started.id, (v) => v.status === 'SUCCEEDED');
    const output = done.output as Record<string, unknown>;
    assert.equal(output['trainingSetTruncated'], true);
    assert.ok((output['trainingExamples'] as number) < 24);
  });
});

describe('the curate task', () => {
  it('follows the job it started when its attempt runs again, instead of starting another', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'savassan-curate-task-'));
    const blobs = new FsBlobStore(dir);
    const vectors = new TestVectors();
    const curations = new TestCurations(vectors, blobs);
    const plans = createPlanService({ store: new MemoryIntelligenceStore(), llm: null });
    const curate = fineTuneTasks({ plans, curations, vectors, blobStore: blobs, bucket: 'savassan' }).find(
      (task) => task.name === 'savassan.curate',
    );
    assert.ok(curate?.kind === 'run');
    const ref = { project: 'savassan', domain: 'development', name: 'run-x', node: 'curate', attempt: 1 };
    const input = { projectId: 'p', datasetId: 'slow' };
    for (const attempt of [1, 2]) {
      // The process stops mid-wait (the signal), and the attempt runs again.
      const controller = new AbortController();
      const running = curate.run(input, { ref: { ...ref, attempt }, signal: controller.signal, logger: silentLogger });
      while ((await curations.get(curations.started[0] ?? ''))?.status !== 'EMBEDDING') {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      controller.abort(new Error('stopping'));
      await assert.rejects(running, /stopping/);
    }
    assert.equal(curations.started.length, 1);
    await rm(dir, { recursive: true, force: true });
  });
});

describe('trainingSetOf', () => {
  it('labels accepted and neighbour-accepted 1, rejected and neighbour-rejected 0, and alternates under a cap', () => {
    const manifest: CurationManifest = {
      datasetId: 'ds-x',
      curationId: 'cur-x',
      projectId: 'p',
      createdAt: '',
      embedder: 'e',
      dimensions: 2,
      images: [
        { imageId: 'a', uri: '', source: '', label: 'accepted', cluster: 0 },
        { imageId: 'b', uri: '', source: '', label: 'neighbour-accepted', cluster: 0 },
        { imageId: 'c', uri: '', source: '', label: 'kept', cluster: 1 },
      ],
      excluded: [
        { imageId: 'd', source: '', reason: 'rejected' },
        { imageId: 'e', source: '', reason: 'neighbour-rejected' },
        { imageId: 'f', source: '', reason: 'duplicate' },
      ],
    };
    const vectors = new Map(['a', 'b', 'c', 'd', 'e', 'f'].map((id) => [id, Float32Array.of(0.6, 0.8)]));
    const all = trainingSetOf(manifest, vectors, 1 << 20);
    assert.deepEqual(
      all.set.items.map((i) => [i.imageId, i.label]),
      [
        ['a', 1],
        ['d', 0],
        ['b', 1],
        ['e', 0],
      ],
    );
    assert.deepEqual(all.set.items[0]?.embedding, [0.6, 0.8]);
    assert.equal(all.truncated, false);
    const capped = trainingSetOf(manifest, vectors, 64 + 2 * 50);
    assert.deepEqual(
      capped.set.items.map((i) => i.imageId),
      ['a', 'd'],
    );
    assert.equal(capped.truncated, true);
    assert.equal(capped.labelled, 4);
  });
});

// Prompt to model end to end against a real `savassan start` process: synthetic images uploaded into a dataset, a
// run started over HTTP (the fine-tune workflow and the trainer function deployed at start), the curation's feedback
// sample answered, the trainer run as a function, and the model and its report read from the blob store.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { syntheticImages, type SyntheticImage } from '../helpers/synthetic-images.js';
import { startServer, type ServerProcess } from '../helpers/server-process.js';

interface Plan {
  tuning_type: string;
  hyperparameters: { train_steps: number } & Record<string, unknown>;
}

interface RunView {
  id: string;
  status: string;
  planId: string | null;
  plan: Plan | null;
  curationId: string | null;
  curatedDatasetUri: string | null;
  output: Record<string, unknown> | null;
  error: { code: string; message: string } | null;
  execution: { project: string; domain: string; name: string };
}

describe('the intelligence pipeline end to end', () => {
  let server: ServerProcess;
  let images: SyntheticImage[];

  before(async () => {
    server = await startServer();
    images = await syntheticImages({ clusters: 2, perCluster: 6, duplicates: 1, outliers: 0, broken: true });
  });

  after(async () => {
    await server.cleanup();
  });

  async function call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> {
    const answer = await fetch(`${server.url}${path}`, {
      method,
      ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });
    return { status: answer.status, json: (await answer.json()) as T };
  }

  /** The run until `until` holds; a run that ends otherwise fails the test. */
  async function follow(id: string, until: (run: RunView) => boolean): Promise<RunView> {
    for (;;) {
      const { status, json: run } = await call<RunView>('GET', `/v1/intelligence/runs/${id}`);
      assert.equal(status, 200);
      if (until(run)) return run;
      if (['SUCCEEDED', 'FAILED', 'ABORTED'].includes(run.status)) assert.fail(`run ended ${JSON.stringify(run)}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('uploads images, plans, curates with feedback, trains and evaluates', async () => {
    for (const image of images) {
      const answer = await fetch(`${server.url}/v1/datasets/shapes/images?name=${image.name}`, {
        method: 'POST',
        headers: { 'content-type': 'application/octet-stream' },
        body: image.bytes,
      });
      assert.equal(answer.status, 201, await answer.text());
    }
    const listed = await call<{ images: { imageId: string; name: string }[] }>('GET', '/v1/datasets/shapes/images');
    const clusterOf = new Map(
      listed.json.images.map((record) => [record.imageId, images.find((i) => i.name === record.name)?.cluster]),
    );

    // The plan as the console's wizard makes it: planned from the prompt, edited by the user, stored as edited.
    const prompt = 'LoRA of the red discs in flat vector style';
    const planned = await call<{ plan: Plan }>('POST', '/v1/plans', { prompt });
    assert.equal(planned.status, 201);
    const edited: Plan = {
      ...planned.json.plan,
      hyperparameters: { ...planned.json.plan.hyperparameters, train_steps: 321 },
    };
    const saved = await call<{ id: string; planner: string; plan: Plan }>('POST', '/v1/plans', {
      prompt,
      plan: edited,
    });
    assert.equal(saved.status, 201, JSON.stringify(saved.json));
    assert.equal(saved.json.planner, 'user');

    const started = await call<RunView>('POST', '/v1/intelligence/runs', {
      prompt,
      datasetId: 'shapes',
      userId: 'ada',
      planId: saved.json.id,
    });
    assert.equal(started.status, 201, JSON.stringify(started.json));
    const run = started.json;
    assert.deepEqual(run.execution, { project: 'savassan', domain: 'development', name: run.id });

    const waiting = await follow(run.id, (r) => r.status === 'AWAITING_FEEDBACK');
    assert.equal(waiting.plan?.tuning_type, 'lora');
    assert.equal(waiting.planId, saved.json.id);
    assert.deepEqual(waiting.plan, edited);
    const curation = await call<{
      status: string;
      imagesForFeedback: { imageId: string }[];
      errors: { file: string }[];
      progress: { duplicates: number };
    }>('GET', `/v1/curations/${waiting.curationId}`);
    assert.equal(curation.json.status, 'AWAITING_FEEDBACK');
    // The broken files are reported per file; the job went on.
    assert.equal(curation.json.errors.length, images.filter((i) => i.kind !== 'base' && i.kind !== 'duplicate').length);
    const feedback = curation.json.imagesForFeedback.map((image) => ({
      imageId: image.imageId,
      accepted: clusterOf.get(image.imageId) === 0,
    }));
    assert.ok(feedback.some((v) => v.accepted) && feedback.some((v) => !v.accepted), JSON.stringify(feedback));
    const given = await call<{ status: string }>('POST', `/v1/curations/${waiting.curationId}/feedback`, { feedback });
    assert.equal(given.status, 200, JSON.stringify(given.json));

    const done = await follow(run.id, (r) => r.status === 'SUCCEEDED');
    assert.ok(done.curatedDatasetUri?.startsWith('s3://savassan/curated/ds-'));
    assert.equal(done.output?.['accuracy'], 1);
    assert.equal(done.output?.['reportUri'], `s3://savassan/models/${run.id}/report.json`);

    // The model and its report, in the blob store.
    const blobs = join(server.dataDir, 'blobs');
    const report = JSON.parse(await readFile(join(blobs, 'models', run.id, 'report.json'), 'utf8')) as {
      evaluation: { labelled: { accuracy: number; examples: number } };
      trainer: { trainAccuracy: number; examples: number };
      modelUri: string;
      planId: string;
      plan: Plan;
    };
    assert.equal(report.evaluation.labelled.accuracy, 1);
    // The trained model's report names the edited plan.
    assert.equal(report.planId, saved.json.id);
    assert.equal(report.plan.hyperparameters.train_steps, 321);
    assert.ok(report.evaluation.labelled.examples >= 2);
    assert.equal(report.modelUri, `s3://savassan/models/${run.id}/model.json`);
    const model = JSON.parse(await readFile(join(blobs, 'models', run.id, 'model.json'), 'utf8')) as {
      weights: number[];
      dimensions: number;
    };
    assert.equal(model.weights.length, model.dimensions);

    // The train node ran the trainer as a function: its invocation is on the node.
    const nodes = await call<{ node_executions: { id: { node_id: string }; invocation_ids: string[] }[] }>(
      'GET',
      `/api/v1/node_executions/savassan/development/${run.id}`,
    );
    const train = nodes.json.node_executions.find((n) => n.id.node_id === 'train');
    assert.equal(train?.invocation_ids.length, 1);
    const listedRuns = await call<{ runs: RunView[] }>('GET', '/v1/intelligence/runs');
    assert.ok(listedRuns.json.runs.some((r) => r.id === run.id && r.status === 'SUCCEEDED'));
  });

  it('refuses a run without a source, on an empty dataset, with an unknown trainer or plan', async () => {
    const none = await call<{ error: { code: string } }>('POST', '/v1/intelligence/runs', { prompt: 'x' });
    assert.equal(none.status, 400);
    assert.equal(none.json.error.code, 'BAD_REQUEST');
    const trainer = await call<{ error: { message: string } }>('POST', '/v1/intelligence/runs', {
      prompt: 'x',
      datasetId: 'shapes',
      trainer: 'nope',
    });
    assert.equal(trainer.status, 400);
    assert.match(trainer.json.error.message, /function nope does not exist/);
    const empty = await call<{ error: { message: string } }>('POST', '/v1/intelligence/runs', {
      prompt: 'x',
      datasetId: 'nothing-here',
    });
    assert.equal(empty.status, 400);
    assert.match(empty.json.error.message, /dataset nothing-here has no images/);
    const unknownPlan = await call<{ error: { message: string } }>('POST', '/v1/intelligence/runs', {
      prompt: 'x',
      datasetId: 'shapes',
      planId: 'plan-nope',
    });
    assert.equal(unknownPlan.status, 400);
    assert.match(unknownPlan.json.error.message, /no plan plan-nope/);
    const missing = await call<{ error: { code: string } }>('GET', '/v1/intelligence/runs/run-nope');
    assert.equal(missing.status, 404);
  });
});

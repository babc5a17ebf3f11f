// The run routes on a Fastify instance set up as the gateway's (its error answers and shared schemas), over the real
// run service of the fine-tune rig: start, follow, feedback, list, and the 400/404/413 answers.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { maxPromptChars } from '../../../core/plan.js';
import type { FineTunePlan } from '../../../core/plan.js';
import type { RunView } from '../../../intelligence/services.js';
import { fineTuneRig } from '../../../../test/helpers/fine-tune-rig.js';
import { validPlan } from '../../../../test/helpers/scripted-llm.js';
import { sendError } from '../server.js';
import { toPlatformError } from '../route-defaults.js';
import { ErrorBody } from '../schemas.js';
import { intelligenceRunRoutes } from './intelligence-runs.js';

/** A plan as a user edits it: steps and rank the rule-based planner would not choose for the prompt. */
const editedPlan: FineTunePlan = {
  ...validPlan,
  hyperparameters: { ...validPlan.hyperparameters, train_steps: 4321, lora_rank: 32 },
};

describe('/v1/intelligence/runs', () => {
  let rig: Awaited<ReturnType<typeof fineTuneRig>>;
  let app: FastifyInstance;

  before(async () => {
    rig = await fineTuneRig();
    // As the gateway's: no coercion, unknown fields refused.
    app = Fastify({ ajv: { customOptions: { coerceTypes: false, removeAdditional: false } } });
    app.setErrorHandler((err, _request, reply) => sendError(reply, toPlatformError(err)));
    app.addSchema(ErrorBody);
    await app.register(intelligenceRunRoutes(rig.runs));
    await app.ready();
  });

  after(async () => {
    await app.close();
    await rig.stop();
  });

  async function get(id: string): Promise<RunView> {
    const answer = await app.inject({ url: `/v1/intelligence/runs/${id}` });
    assert.equal(answer.statusCode, 200, answer.body);
    return answer.json<RunView>();
  }

  it('starts a run and follows it to the model', async () => {
    const started = await app.inject({
      method: 'POST',
      url: '/v1/intelligence/runs',
      payload: { prompt: 'LoRA of my dog Fluffy in watercolor style', datasetId: 'dogs', userId: 'ada' },
    });
    assert.equal(started.statusCode, 201, started.body);
    const run = started.json<RunView>();
    assert.match(run.id, /^run-[a-z2-7]{26}$/);
    assert.equal(run.userId, 'ada');
    assert.deepEqual(Object.keys(run).sort(), [
      'createdAt',
      'curatedDatasetUri',
      'curationId',
      'error',
      'execution',
      'id',
      'output',
      'plan',
      'planId',
      'prompt',
      'status',
      'userId',
    ]);
    let view = await get(run.id);
    while (view.status !== 'AWAITING_FEEDBACK') {
      assert.ok(!['FAILED', 'ABORTED', 'SUCCEEDED'].includes(view.status), view.status);
      await new Promise((resolve) => setTimeout(resolve, 10));
      view = await get(run.id);
    }
    assert.ok(view.curationId !== null && view.plan !== null);
    await rig.curations.submitFeedback(
      view.curationId,
      [
        { imageId: 'img-a00', accepted: true },
        { imageId: 'img-b00', accepted: false },
      ],
      true,
    );
    while (view.status !== 'SUCCEEDED') {
      assert.ok(!['FAILED', 'ABORTED'].includes(view.status), JSON.stringify(view.error));
      await new Promise((resolve) => setTimeout(resolve, 10));
      view = await get(run.id);
    }
    assert.equal((view.output as { accuracy: number }).accuracy, 1);
    const list = await app.inject({ url: '/v1/intelligence/runs?limit=5' });
    assert.equal(list.statusCode, 200);
    assert.ok(list.json<{ runs: RunView[] }>().runs.some((r) => r.id === run.id));
  });

  it('runs with a stored plan (planId): the plan node answers that plan, the run shows it', async () => {
    const { record } = await rig.plans.createPlan({ prompt: 'my dog Fluffy', plan: editedPlan });
    const started = await app.inject({
      method: 'POST',
      url: '/v1/intelligence/runs',
      payload: { prompt: 'my dog Fluffy', datasetId: 'dogs', planId: record.id },
    });
    assert.equal(started.statusCode, 201, started.body);
    let view = await get(started.json<RunView>().id);
    while (view.status !== 'AWAITING_FEEDBACK') {
      assert.ok(!['FAILED', 'ABORTED', 'SUCCEEDED'].includes(view.status), JSON.stringify(view.error));
      await new Promise((resolve) => setTimeout(resolve, 10));
      view = await get(view.id);
    }
    assert.equal(view.planId, record.id);
    assert.deepEqual(view.plan, editedPlan);
    assert.deepEqual(await rig.planOutput(view.id), {
      planId: record.id,
      plan: editedPlan,
      planner: 'user',
      warnings: [],
    });
  });

  it('answers 400, 404 and 413 as the other /v1 routes do', async () => {
    const refused = async (payload: unknown, status: number, code: string, message: RegExp) => {
      const answer = await app.inject({ method: 'POST', url: '/v1/intelligence/runs', payload: payload as object });
      assert.equal(answer.statusCode, status, answer.body);
      const { error } = answer.json<{ error: { code: string; message: string } }>();
      assert.equal(error.code, code);
      assert.match(error.message, message);
    };
    await refused({ prompt: 'x' }, 400, 'BAD_REQUEST', /exactly one of rawDataUri and datasetId/);
    await refused({ prompt: 'x', datasetId: 'dogs', rawDataUri: 's3://savassan/x' }, 400, 'BAD_REQUEST', /exactly one/);
    await refused({ prompt: '   ', datasetId: 'dogs' }, 400, 'BAD_REQUEST', /prompt/);
    await refused({ prompt: 'x', datasetId: 'dogs', trainer: 'nope' }, 400, 'BAD_REQUEST', /function nope/);
    await refused({ prompt: 'x', datasetId: 'dogs', extra: 1 }, 400, 'BAD_REQUEST', /extra|additional/);
    await refused({ prompt: 'x'.repeat(maxPromptChars + 1), datasetId: 'dogs' }, 413, 'PAYLOAD_TOO_LARGE', /prompt/);
    await refused({ prompt: 'x', datasetId: 'empty' }, 400, 'BAD_REQUEST', /dataset empty has no images/);
    await refused({ prompt: 'x', datasetId: 'dogs', planId: 'plan-nope' }, 400, 'BAD_REQUEST', /no plan plan-nope/);
    const failed = await rig.intelligence.putPlan({
      id: 'plan-failed',
      requestId: 'plan-failed',
      userId: 'ada',
      receivedAt: new Date(),
      userPrompt: 'x',
      plan: null,
      status: 'PARSING_ERROR',
      attempts: 3,
      problems: [{ path: '$', message: 'not JSON' }],
      warnings: [],
      llmPrompt: null,
      llmRawResponse: 'nope',
      processingMs: 1,
      planner: 'scripted:script',
    });
    await refused(
      { prompt: 'x', datasetId: 'dogs', planId: failed.record.id },
      400,
      'BAD_REQUEST',
      /plan plan-failed ended PARSING_ERROR; only a SUCCESS plan can run/,
    );
    const missing = await app.inject({ url: '/v1/intelligence/runs/run-nope' });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json<{ error: { code: string } }>().error.code, 'NOT_FOUND');
  });
});

// The plan validator: the schema's every kind of constraint, the rules between fields, and paths that name the fault.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FineTunePlan } from './plan.js';
import { validatePlan } from './plan-validate.js';

const lora = (): FineTunePlan => ({
  base_model: 'stable-diffusion-v1-5',
  tuning_type: 'lora',
  subject_description: 'my dog Fluffy',
  style_description: 'watercolor',
  dataset: { min_images: 10, recommended_images: 30, resolution: 512, needs_captions: false },
  hyperparameters: { learning_rate: 1e-4, train_steps: 1500, batch_size: 1, lora_rank: 16, lora_alpha: 8 },
});

const problemsOf = (value: unknown) => validatePlan(value).problems;
const paths = (value: unknown) => problemsOf(value).map((p) => p.path);

describe('validatePlan', () => {
  it('passes a valid plan of each tuning type and returns a copy', () => {
    const plan = lora();
    const result = validatePlan(plan);
    assert.deepEqual(result, { plan, problems: [] });
    assert.notEqual(result.plan, plan);

    const dreambooth: FineTunePlan = {
      ...lora(),
      tuning_type: 'dreambooth',
      instance_token: 'sks',
      hyperparameters: { learning_rate: 5e-6, train_steps: 800, batch_size: 1, prior_preservation: true },
    };
    assert.deepEqual(validatePlan(dreambooth).problems, []);
    const full: FineTunePlan = {
      ...lora(),
      tuning_type: 'full',
      style_description: null,
      hyperparameters: { learning_rate: 1e-4, train_steps: 10_000, batch_size: 4 },
    };
    assert.deepEqual(validatePlan(full).problems, []);
  });

  it('refuses what is not an object', () => {
    for (const value of [null, [], 'plan', 3, undefined]) {
      const result = validatePlan(value);
      assert.equal(result.plan, null);
      assert.equal(result.problems[0]?.path, '$');
      assert.match(result.problems[0]?.message ?? '', /must be object/);
    }
  });

  it('names every missing field, unknown field, type, range, pattern and multiple', () => {
    const plan = lora() as unknown as Record<string, unknown>;
    delete plan.base_model;
    plan.extra = 1;
    plan.tuning_type = 'qlora';
    plan.subject_description = '';
    plan.dataset = { min_images: 0, recommended_images: 1.5, resolution: 500, needs_captions: 'no' };
    plan.hyperparameters = { learning_rate: 1, train_steps: 5, batch_size: 65, lora_rank: 300, lora_alpha: 1, x: 1 };
    plan.instance_token = 'SKS';
    const problems = problemsOf(plan);
    const byPath = new Map(problems.map((p) => [p.path, p.message]));
    assert.match(byPath.get('$.base_model') ?? '', /is required/);
    assert.match(byPath.get('$.extra') ?? '', /is not a field/);
    assert.match(byPath.get('$.tuning_type') ?? '', /one of "lora", "dreambooth", "full"/);
    assert.match(byPath.get('$.subject_description') ?? '', /at least 1/);
    assert.match(byPath.get('$.instance_token') ?? '', /must match/);
    assert.match(byPath.get('$.dataset.min_images') ?? '', /at least 1, got 0/);
    assert.match(byPath.get('$.dataset.recommended_images') ?? '', /must be integer, got number/);
    assert.match(byPath.get('$.dataset.resolution') ?? '', /multiple of 64, got 500/);
    assert.match(byPath.get('$.dataset.needs_captions') ?? '', /must be boolean, got string/);
    assert.match(byPath.get('$.hyperparameters.learning_rate') ?? '', /at most 0.01/);
    assert.match(byPath.get('$.hyperparameters.train_steps') ?? '', /at least 10/);
    assert.match(byPath.get('$.hyperparameters.batch_size') ?? '', /at most 64/);
    assert.match(byPath.get('$.hyperparameters.lora_rank') ?? '', /at most 256/);
    assert.match(byPath.get('$.hyperparameters.x') ?? '', /is not a field/);
  });

  it('takes null for style_description but not for other texts, and bounds text length', () => {
    assert.deepEqual(paths({ ...lora(), style_description: null }), []);
    assert.deepEqual(paths({ ...lora(), subject_description: null }), ['$.subject_description']);
    assert.deepEqual(paths({ ...lora(), style_description: 'x'.repeat(2001) }), ['$.style_description']);
    assert.deepEqual(paths({ ...lora(), base_model: 'a b' }), ['$.base_model']);
  });

  it('lora needs lora_rank and lora_alpha, alpha at most rank', () => {
    const plan = lora();
    delete plan.hyperparameters.lora_rank;
    delete plan.hyperparameters.lora_alpha;
    assert.deepEqual(paths(plan), ['$.hyperparameters.lora_rank', '$.hyperparameters.lora_alpha']);
    const over = lora();
    over.hyperparameters.lora_alpha = 32;
    assert.deepEqual(problemsOf(over), [
      { path: '$.hyperparameters.lora_alpha', message: 'must be at most lora_rank (16), got 32' },
    ]);
  });

  it('other tuning types take no lora fields; dreambooth needs instance_token, others none', () => {
    const dreambooth = { ...lora(), tuning_type: 'dreambooth' };
    assert.deepEqual(paths(dreambooth), [
      '$.hyperparameters.lora_rank',
      '$.hyperparameters.lora_alpha',
      '$.instance_token',
    ]);
    const withToken = { ...lora(), instance_token: 'sks' };
    assert.deepEqual(problemsOf(withToken), [
      { path: '$.instance_token', message: 'must be absent when tuning_type is lora' },
    ]);
  });

  it('full fine-tuning keeps learning_rate at most 1e-4', () => {
    const full = {
      ...lora(),
      tuning_type: 'full',
      hyperparameters: { learning_rate: 2e-4, train_steps: 100, batch_size: 1 },
    };
    assert.deepEqual(paths(full), ['$.hyperparameters.learning_rate']);
  });

  it('recommended_images is at least min_images', () => {
    const plan = lora();
    plan.dataset.recommended_images = 5;
    assert.deepEqual(problemsOf(plan), [
      { path: '$.dataset.recommended_images', message: 'must be at least min_images (10), got 5' },
    ]);
  });
});

// The plan as a form: one field per plan field, with the ranges of `planLimits`; the fields a tuning type does not
// take are left out (LoRA's rank and alpha, Dreambooth's token and prior preservation). "Check plan" runs the
// platform's own validator (schema and the rules between fields) and lists what it says, by field.
import { useId } from 'react';
import { validatePlan } from '../../../src/core/plan-validate.js';
import { planLimits, tuningTypes } from '../../../src/core/plan.js';
import type { TuningType } from '../../../src/core/plan.js';
import type { FineTunePlan, PlanProblem } from './ai-api';

/** The plan with the fields of another tuning type: what it needs added with defaults, what it does not take removed. */
export function withTuningType(plan: FineTunePlan, type: TuningType): FineTunePlan {
  const { lora_rank, lora_alpha, prior_preservation, ...hyper } = plan.hyperparameters;
  const { instance_token, ...rest } = plan;
  const next: FineTunePlan = { ...rest, tuning_type: type, hyperparameters: { ...hyper } };
  if (type === 'lora') {
    next.hyperparameters.lora_rank = lora_rank ?? 8;
    next.hyperparameters.lora_alpha = Math.min(lora_alpha ?? 8, next.hyperparameters.lora_rank);
  }
  if (type === 'dreambooth') {
    next.instance_token = instance_token ?? 'sks';
    if (prior_preservation !== undefined) next.hyperparameters.prior_preservation = prior_preservation;
  }
  if (type === 'full') {
    next.hyperparameters.learning_rate = Math.min(next.hyperparameters.learning_rate, planLimits.learningRate.fullMax);
  }
  return next;
}

/** The problems of `plan` as the platform's validator finds them (none: it would be accepted). */
export function planProblems(plan: FineTunePlan): PlanProblem[] {
  return validatePlan(plan).problems;
}

type NumberField = {
  path: string;
  label: string;
  value: number | undefined;
  min: number;
  max: number;
  step: number | 'any';
  set: (value: number) => FineTunePlan;
};

export function PlanForm(props: {
  plan: FineTunePlan;
  problems: PlanProblem[];
  onChange: (plan: FineTunePlan) => void;
}) {
  const { plan, onChange } = props;
  const id = useId();
  const problemAt = (path: string) => props.problems.filter((p) => p.path === path).map((p) => p.message);
  const hyper = plan.hyperparameters;
  const setHyper = (change: Partial<FineTunePlan['hyperparameters']>) => ({
    ...plan,
    hyperparameters: { ...hyper, ...change },
  });
  const setDataset = (change: Partial<FineTunePlan['dataset']>) => ({
    ...plan,
    dataset: { ...plan.dataset, ...change },
  });
  const numbers: NumberField[] = [
    {
      path: '$.dataset.min_images',
      label: 'Fewest images',
      value: plan.dataset.min_images,
      ...planLimits.images,
      step: 1,
      set: (v) => setDataset({ min_images: v }),
    },
    {
      path: '$.dataset.recommended_images',
      label: 'Recommended images',
      value: plan.dataset.recommended_images,
      ...planLimits.images,
      step: 1,
      set: (v) => setDataset({ recommended_images: v }),
    },
    {
      path: '$.dataset.resolution',
      label: 'Resolution (px)',
      value: plan.dataset.resolution,
      min: planLimits.resolution.min,
      max: planLimits.resolution.max,
      step: planLimits.resolution.multipleOf,
      set: (v) => setDataset({ resolution: v }),
    },
    {
      path: '$.hyperparameters.learning_rate',
      label: 'Learning rate',
      value: hyper.learning_rate,
      min: planLimits.learningRate.min,
      max: plan.tuning_type === 'full' ? planLimits.learningRate.fullMax : planLimits.learningRate.max,
      step: 'any',
      set: (v) => setHyper({ learning_rate: v }),
    },
    {
      path: '$.hyperparameters.train_steps',
      label: 'Training steps',
      value: hyper.train_steps,
      ...planLimits.trainSteps,
      step: 1,
      set: (v) => setHyper({ train_steps: v }),
    },
    {
      path: '$.hyperparameters.batch_size',
      label: 'Batch size',
      value: hyper.batch_size,
      ...planLimits.batchSize,
      step: 1,
      set: (v) => setHyper({ batch_size: v }),
    },
  ];
  if (plan.tuning_type === 'lora') {
    numbers.push(
      {
        path: '$.hyperparameters.lora_rank',
        label: 'LoRA rank',
        value: hyper.lora_rank,
        ...planLimits.loraRank,
        step: 1,
        set: (v) => setHyper({ lora_rank: v }),
      },
      {
        path: '$.hyperparameters.lora_alpha',
        label: 'LoRA alpha (at most the rank)',
        value: hyper.lora_alpha,
        min: planLimits.loraRank.min,
        max: Math.min(planLimits.loraRank.max, hyper.lora_rank ?? planLimits.loraRank.max),
        step: 'any',
        set: (v) => setHyper({ lora_alpha: v }),
      },
    );
  }
  const messages = (path: string) => {
    const list = problemAt(path);
    return list.length === 0 ? null : (
      <span className="error field-problem" id={`${id}-${path}`}>
        {list.join('; ')}
      </span>
    );
  };
  const invalid = (path: string) => problemAt(path).length > 0;
  const describedBy = (path: string) => (invalid(path) ? `${id}-${path}` : undefined);

  return (
    <fieldset className="plan-form">
      <legend>Plan</legend>
      <div className="plan-grid">
        <label>
          Base model
          <input
            value={plan.base_model}
            maxLength={128}
            aria-invalid={invalid('$.base_model')}
            aria-describedby={describedBy('$.base_model')}
            onChange={(e) => onChange({ ...plan, base_model: e.target.value })}
          />
          {messages('$.base_model')}
        </label>
        <label>
          Tuning type
          <select
            value={plan.tuning_type}
            onChange={(e) => onChange(withTuningType(plan, e.target.value as TuningType))}
          >
            {tuningTypes.map((t) => (
              <option key={t} value={t}>
                {t}
              </option>
            ))}
          </select>
        </label>
        {plan.tuning_type === 'dreambooth' && (
          <label>
            Instance token
            <input
              value={plan.instance_token ?? ''}
              maxLength={32}
              aria-invalid={invalid('$.instance_token')}
              aria-describedby={describedBy('$.instance_token')}
              onChange={(e) => onChange({ ...plan, instance_token: e.target.value })}
            />
            {messages('$.instance_token')}
          </label>
        )}
        <label className="wide">
          Subject
          <textarea
            rows={2}
            value={plan.subject_description}
            maxLength={planLimits.text}
            aria-invalid={invalid('$.subject_description')}
            aria-describedby={describedBy('$.subject_description')}
            onChange={(e) => onChange({ ...plan, subject_description: e.target.value })}
          />
          {messages('$.subject_description')}
        </label>
        <label className="wide">
          Style (empty: none)
          <textarea
            rows={2}
            value={plan.style_description ?? ''}
            maxLength={planLimits.text}
            onChange={(e) => onChange({ ...plan, style_description: e.target.value === '' ? null : e.target.value })}
          />
          {messages('$.style_description')}
        </label>
        {numbers.map((field) => (
          <label key={field.path}>
            {field.label}
            <input
              type="number"
              value={field.value ?? ''}
              min={field.min}
              max={field.max}
              step={field.step}
              aria-invalid={invalid(field.path)}
              aria-describedby={describedBy(field.path)}
              onChange={(e) => onChange(field.set(e.target.value === '' ? Number.NaN : Number(e.target.value)))}
            />
            <span className="muted range">
              {field.min}–{field.max}
            </span>
            {messages(field.path)}
          </label>
        ))}
        <label className="check">
          <input
            type="checkbox"
            checked={plan.dataset.needs_captions}
            onChange={(e) => onChange(setDataset({ needs_captions: e.target.checked }))}
          />{' '}
          Images need captions
        </label>
        {plan.tuning_type === 'dreambooth' && (
          <label className="check">
            <input
              type="checkbox"
              checked={hyper.prior_preservation === true}
              onChange={(e) => onChange(setHyper({ prior_preservation: e.target.checked }))}
            />{' '}
            Prior preservation
          </label>
        )}
      </div>
    </fieldset>
  );
}

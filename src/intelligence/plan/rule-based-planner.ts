// The default planner: no model, keyword and pattern extraction from the prompt. What it reads: the tuning type
// ("lora", "dreambooth", "full fine-tune"), a base model it knows by name (or one written as `model: NAME`), the
// subject ("my dog Fluffy", "of my cat"), a style ("in the style of …", "… style"), an image count ("30 images"), a
// resolution ("768px"). Everything else is a default, and every default is named in the warnings, so a caller never
// mistakes a guess for something the prompt said.
import type { FineTunePlan, TuningType } from '../../core/plan.js';
import { planLimits } from '../../core/plan.js';

export interface RuleBasedPlan {
  plan: FineTunePlan;
  warnings: string[];
}

const knownModels: readonly { pattern: RegExp; name: string; resolution: number }[] = [
  { pattern: /\bsdxl\b|stable[\s-]*diffusion[\s-]*xl/i, name: 'stable-diffusion-xl-base-1.0', resolution: 1024 },
  {
    pattern: /\bsd[\s-]*2(?:\.1)?\b|stable[\s-]*diffusion[\s-]*2(?:\.1)?\b/i,
    name: 'stable-diffusion-2-1',
    resolution: 768,
  },
  {
    pattern: /\bsd[\s-]*1\.5\b|stable[\s-]*diffusion(?:[\s-]*(?:v?1\.5))?\b/i,
    name: 'stable-diffusion-v1-5',
    resolution: 512,
  },
  { pattern: /\bflux(?:[\s.-]*1)?(?:[\s-]*dev)?\b/i, name: 'flux.1-dev', resolution: 1024 },
];

const defaultModel = { name: 'stable-diffusion-v1-5', resolution: 512 };

/** Per tuning type: learning rate, steps, batch, and the image counts it needs. */
const defaults: Record<TuningType, { lr: number; steps: number; batch: number; min: number; recommended: number }> = {
  lora: { lr: 1e-4, steps: 1500, batch: 1, min: 10, recommended: 30 },
  dreambooth: { lr: 5e-6, steps: 800, batch: 1, min: 3, recommended: 10 },
  full: { lr: 1e-5, steps: 10_000, batch: 4, min: 500, recommended: 2000 },
};

const clamp = (n: number, min: number, max: number): number => Math.min(max, Math.max(min, n));

/** Text of at most `planLimits.text` characters, whitespace collapsed. */
const text = (value: string): string => [...value.replace(/\s+/g, ' ').trim()].slice(0, planLimits.text).join('');

function tuningTypeOf(prompt: string): TuningType | null {
  if (/\bdream[\s-]?booth\b/i.test(prompt)) return 'dreambooth';
  if (/\blo-?ra\b/i.test(prompt)) return 'lora';
  if (/\bfull(?:[\s-]+model)?[\s-]+(?:fine[\s-]?tun|train)/i.test(prompt)) return 'full';
  return null;
}

function baseModelOf(prompt: string): { name: string; resolution: number } | null {
  const named = /\b(?:base[\s_-]*model|model)\s*[:=]\s*([A-Za-z0-9._/-]{1,128})/i.exec(prompt);
  if (named?.[1] !== undefined) {
    const known = knownModels.find((m) => m.pattern.test(named[1] ?? ''));
    return { name: named[1], resolution: known?.resolution ?? defaultModel.resolution };
  }
  return knownModels.find((m) => m.pattern.test(prompt)) ?? null;
}

/** Media and genres the planner recognises as a style without the word "style". */
const knownStyles = [
  'watercolou?rs?',
  'oil paintings?',
  'oils',
  'pencil (?:sketch|drawing)e?s?',
  'charcoal',
  'sketch(?:es)?',
  'ink',
  'pastels?',
  'anime',
  'manga',
  'pixel art',
  'cartoons?',
  'comics?',
  'line art',
  'ukiyo-e',
  'impressionis[mt]',
  'cubis[mt]',
  'art nouveau',
  'art deco',
  'low poly',
  'claymation',
  'stained glass',
];

/** Where a prompt names its style, tried in order. */
const stylePatterns = [
  /\bin\s+(?:the\s+)?style\s+of\s+([^.,;!?\n]{1,200})/i,
  /\bin\s+(?:an?\s+)?([^.,;!?\n]{1,80}?)\s+style\b/i,
  /\b([A-Za-z][A-Za-z -]{0,60}?)[\s-]style\b/i,
  /\bstyle\s*[:=]\s*([^.,;!?\n]{1,200})/i,
  // A named medium or genre without the word "style": "in watercolour", "as pixel art".
  new RegExp(`\\b(?:in|as)\\s+(?:an?\\s+)?(${knownStyles.join('|')})\\b`, 'i'),
];

function styleOf(prompt: string): string | null {
  for (const pattern of stylePatterns) {
    const match = pattern.exec(prompt);
    const found = match?.[1]?.trim();
    if (found !== undefined && found !== '') return text(found);
  }
  return null;
}

function subjectOf(prompt: string): string | null {
  const patterns = [
    /\b((?:my|our|his|her|their)\s+[^.,;!?\n]{1,120}?)(?=\s+(?:in|using|with|on|at|from|for|as|wearing)\b|[.,;!?\n]|$)/i,
    /\b(?:of|on|about)\s+((?:a|an|the)\s+[^.,;!?\n]{1,120}?)(?=\s+(?:in|using|with|on|at|from|for|as|wearing)\b|[.,;!?\n]|$)/i,
    /\bsubject\s*[:=]\s*([^.,;!?\n]{1,200})/i,
  ];
  for (const pattern of patterns) {
    const found = pattern.exec(prompt)?.[1]?.trim();
    if (found !== undefined && found !== '') return text(found);
  }
  return null;
}

function imageCountOf(prompt: string): number | null {
  const match = /\b(\d{1,6})\s*(?:images|photos|pictures|pics|shots|samples)\b/i.exec(prompt);
  return match?.[1] === undefined ? null : Number(match[1]);
}

function resolutionOf(prompt: string): number | null {
  const match = /\b(\d{3,4})\s*(?:px|pixels)\b|\b(\d{3,4})\s*[x×]\s*\d{3,4}\b/i.exec(prompt);
  const value = Number(match?.[1] ?? match?.[2] ?? NaN);
  if (!Number.isFinite(value)) return null;
  const { min, max, multipleOf } = planLimits.resolution;
  return clamp(Math.round(value / multipleOf) * multipleOf, min, max);
}

/** A dreambooth instance token that does not occur as a word in the prompt. */
function instanceTokenFor(prompt: string): string {
  const words = new Set(prompt.toLowerCase().split(/[^a-z0-9]+/));
  return ['sks', 'ohwx', 'zwx', 'qxv'].find((token) => !words.has(token)) ?? 'sksv';
}

/**
 * A plan from the prompt's words alone. The plan passes `validatePlan`; `warnings` names each field that was not
 * in the prompt and the default it got.
 *
 * @example
 * planFromRules('LoRA of my dog Fluffy in watercolor style, 25 images').plan.subject_description; // 'my dog Fluffy'
 */
export function planFromRules(prompt: string): RuleBasedPlan {
  const warnings: string[] = [];
  let tuning = tuningTypeOf(prompt);
  if (tuning === null) {
    tuning = 'lora';
    warnings.push('tuning_type: the prompt names no tuning method; default lora');
  }
  const d = defaults[tuning];
  let model = baseModelOf(prompt);
  if (model === null) {
    model = defaultModel;
    warnings.push(`base_model: the prompt names no known base model; default ${defaultModel.name}`);
  }
  let subject = subjectOf(prompt);
  if (subject === null) {
    subject = text(prompt) === '' ? 'the subject of the training images' : text(prompt);
    warnings.push('subject_description: no subject phrase found; the whole prompt is used');
  }
  const style = styleOf(prompt);
  if (style === null) warnings.push('style_description: the prompt names no style; null');

  const count = imageCountOf(prompt);
  let min = d.min;
  let recommended = d.recommended;
  if (count === null) {
    warnings.push(`dataset.recommended_images: the prompt gives no image count; default ${recommended}`);
  } else {
    recommended = clamp(count, planLimits.images.min, planLimits.images.max);
    if (recommended !== count) {
      warnings.push(`dataset.recommended_images: ${count} images is out of range; ${recommended} used`);
    }
    if (recommended < min) {
      warnings.push(
        `dataset.min_images: ${tuning} usually needs at least ${min} images; lowered to the ${recommended} given`,
      );
      min = recommended;
    }
  }
  warnings.push(`dataset.min_images: default ${min} for ${tuning}`);

  let resolution = resolutionOf(prompt);
  if (resolution === null) {
    resolution = model.resolution;
    warnings.push(`dataset.resolution: none given; default ${resolution} for ${model.name}`);
  }
  const needsCaptions = tuning === 'full';
  warnings.push(`dataset.needs_captions: default ${needsCaptions} for ${tuning}`);
  warnings.push(
    `hyperparameters: defaults for ${tuning}: learning_rate ${d.lr}, train_steps ${d.steps}, batch_size ${d.batch}`,
  );

  const plan: FineTunePlan = {
    base_model: model.name,
    tuning_type: tuning,
    subject_description: subject,
    style_description: style,
    dataset: { min_images: min, recommended_images: recommended, resolution, needs_captions: needsCaptions },
    hyperparameters: { learning_rate: d.lr, train_steps: d.steps, batch_size: d.batch },
  };
  if (tuning === 'lora') {
    plan.hyperparameters.lora_rank = 16;
    plan.hyperparameters.lora_alpha = 16;
    warnings.push('hyperparameters.lora_rank, lora_alpha: default 16 and 16');
  }
  if (tuning === 'dreambooth') {
    plan.instance_token = instanceTokenFor(prompt);
    plan.hyperparameters.prior_preservation = true;
    warnings.push(`instance_token: default ${plan.instance_token}; prior_preservation: default true`);
  }
  return { plan, warnings };
}

/**
 * A fine-tuning plan: what the prompt-to-plan chain (Khaydarin) turns a user's request into, in the seed's snake_case
 * fields. `planJsonSchema` is the one definition: the output parser validates against it (plus the cross-field rules
 * it cannot say), the OpenAI-compatible adapter sends it as the response format, the GGUF adapter compiles it to a
 * grammar, and the console edits a plan with its ranges.
 */

export const tuningTypes = ['lora', 'dreambooth', 'full'] as const;
export type TuningType = (typeof tuningTypes)[number];

/** What the training set must hold. */
export interface PlanDatasetNeeds {
  /** Fewest curated images the run needs (1-10000). */
  min_images: number;
  /** How many the user should provide (>= min_images, <= 10000). */
  recommended_images: number;
  /** Training resolution in pixels (256-2048, a multiple of 64). */
  resolution: number;
  /** Whether each image needs a caption (full fine-tuning of a text-to-image model does). */
  needs_captions: boolean;
}

export interface PlanHyperparameters {
  /** 1e-7 to 1e-2; full fine-tuning at most 1e-4. */
  learning_rate: number;
  /** 10-100000. */
  train_steps: number;
  /** 1-64. */
  batch_size: number;
  /** LoRA only (required there, absent otherwise): 1-256. */
  lora_rank?: number;
  /** LoRA only (required there, absent otherwise): 1-256 and at most `lora_rank`. */
  lora_alpha?: number;
  /** Dreambooth only (optional): keep the class prior with generated class images. */
  prior_preservation?: boolean;
}

export interface FineTunePlan {
  /** The model to tune, e.g. `stable-diffusion-v1-5` (1-128 chars of [A-Za-z0-9._/-]). */
  base_model: string;
  tuning_type: TuningType;
  /** What to learn: "the user's dog Fluffy" (1-2000 chars). */
  subject_description: string;
  /** The style to learn or apply, or null when the prompt names none (at most 2000 chars). */
  style_description: string | null;
  /** Dreambooth's rare token for the subject, e.g. `sks` (required for dreambooth, else absent; 1-32 [a-z0-9]). */
  instance_token?: string;
  dataset: PlanDatasetNeeds;
  hyperparameters: PlanHyperparameters;
}

/** One way a value breaks the plan's schema or rules: where (a JSON path like `$.hyperparameters.lora_alpha`) and why. */
export interface PlanProblem {
  path: string;
  message: string;
}

export const planLimits = {
  learningRate: { min: 1e-7, max: 1e-2, fullMax: 1e-4 },
  trainSteps: { min: 10, max: 100_000 },
  batchSize: { min: 1, max: 64 },
  loraRank: { min: 1, max: 256 },
  images: { min: 1, max: 10_000 },
  resolution: { min: 256, max: 2048, multipleOf: 64 },
  text: 2000,
} as const;

/**
 * The plan's JSON Schema (draft 2020-12 subset that llama.cpp grammars and OpenAI's strict response format both take:
 * no `if`/`then`; the rules between fields are checked by the parser and named in the prompt).
 */
export const planJsonSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['base_model', 'tuning_type', 'subject_description', 'style_description', 'dataset', 'hyperparameters'],
  properties: {
    base_model: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[A-Za-z0-9._/-]+$' },
    tuning_type: { type: 'string', enum: [...tuningTypes] },
    subject_description: { type: 'string', minLength: 1, maxLength: planLimits.text },
    style_description: { type: ['string', 'null'], maxLength: planLimits.text },
    instance_token: { type: 'string', minLength: 1, maxLength: 32, pattern: '^[a-z0-9]+$' },
    dataset: {
      type: 'object',
      additionalProperties: false,
      required: ['min_images', 'recommended_images', 'resolution', 'needs_captions'],
      properties: {
        min_images: { type: 'integer', minimum: planLimits.images.min, maximum: planLimits.images.max },
        recommended_images: { type: 'integer', minimum: planLimits.images.min, maximum: planLimits.images.max },
        resolution: {
          type: 'integer',
          minimum: planLimits.resolution.min,
          maximum: planLimits.resolution.max,
          multipleOf: planLimits.resolution.multipleOf,
        },
        needs_captions: { type: 'boolean' },
      },
    },
    hyperparameters: {
      type: 'object',
      additionalProperties: false,
      required: ['learning_rate', 'train_steps', 'batch_size'],
      properties: {
        learning_rate: { type: 'number', minimum: planLimits.learningRate.min, maximum: planLimits.learningRate.max },
        train_steps: { type: 'integer', minimum: planLimits.trainSteps.min, maximum: planLimits.trainSteps.max },
        batch_size: { type: 'integer', minimum: planLimits.batchSize.min, maximum: planLimits.batchSize.max },
        lora_rank: { type: 'integer', minimum: planLimits.loraRank.min, maximum: planLimits.loraRank.max },
        lora_alpha: { type: 'number', minimum: planLimits.loraRank.min, maximum: planLimits.loraRank.max },
        prior_preservation: { type: 'boolean' },
      },
    },
  },
} as const;

/** How a plan request ended, as the seed's `khaydarin_logs.status` spells it. */
export const planStatusNames = ['SUCCESS', 'LLM_ERROR', 'PARSING_ERROR'] as const;
export type PlanStatus = (typeof planStatusNames)[number];

/** Longest prompt accepted (characters); a longer one is refused with 413 before any model sees it. */
export const maxPromptChars = 16_000;

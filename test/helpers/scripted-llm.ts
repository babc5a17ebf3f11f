// A language model that answers from a script: the plan chain's tests drive the repair loop with it.
import type { FineTunePlan } from '../../src/core/plan.js';
import type { Llm, LlmRequest, LlmResponse } from '../../src/core/ports/llm.js';

/** A plan that passes `validatePlan`. */
export const validPlan: FineTunePlan = {
  base_model: 'stable-diffusion-v1-5',
  tuning_type: 'lora',
  subject_description: 'my dog Fluffy',
  style_description: null,
  dataset: { min_images: 10, recommended_images: 30, resolution: 512, needs_captions: false },
  hyperparameters: { learning_rate: 1e-4, train_steps: 1500, batch_size: 1, lora_rank: 16, lora_alpha: 16 },
};

/** Answers one script entry per call (an Error is thrown; past the end, the last entry again); keeps the requests. */
export class ScriptedLlm implements Llm {
  readonly kind = 'scripted';
  readonly model = 'script';
  readonly constrained = false;
  readonly requests: LlmRequest[] = [];
  constructor(private readonly answers: (string | Error)[]) {}
  complete(request: LlmRequest): Promise<LlmResponse> {
    this.requests.push(request);
    const next = this.answers[Math.min(this.requests.length - 1, this.answers.length - 1)];
    if (next === undefined) return Promise.reject(new Error('no answer scripted'));
    if (next instanceof Error) return Promise.reject(next);
    return Promise.resolve({ text: next, model: this.model });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

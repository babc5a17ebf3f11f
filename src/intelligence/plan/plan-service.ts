// Khaydarin: a prompt becomes a validated fine-tuning plan, and every request is written to the store, whatever its
// end. A request id makes the call idempotent: a known one answers the stored record and runs nothing.
import { PlatformError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { silentLogger } from '../../core/logger.js';
import { validatePlan } from '../../core/plan-validate.js';
import { maxPromptChars } from '../../core/plan.js';
import type { IntelligenceStore, PlanRecord } from '../../core/ports/intelligence-store.js';
import type { Llm } from '../../core/ports/llm.js';
import { newId } from '../ids.js';
import type { PlanRequest, PlanService } from '../services.js';
import { runPlanChain } from './plan-chain.js';
import { planFromRules } from './rule-based-planner.js';

/** The planner records name for a plan the user gave (`POST /v1/plans` with `plan`). */
export const userPlanner = 'user';

/** requestId and userId: 1-255 of these characters. */
export const planKeyPattern = /^[A-Za-z0-9._:@/-]{1,255}$/;

export interface PlanServiceOptions {
  store: IntelligenceStore;
  /** The model to ask; null: the rule-based planner. */
  llm: Llm | null;
  logger?: Logger | undefined;
  /** Repairs after the first answer (default 2). */
  maxRepairs?: number | undefined;
  now?: (() => Date) | undefined;
}

/**
 * Checks a request before anything runs: BAD_REQUEST for an empty prompt or a malformed id, PAYLOAD_TOO_LARGE for a
 * prompt over `maxPromptChars`.
 */
export function checkPlanRequest(request: PlanRequest): { prompt: string; userId: string; requestId?: string } {
  const { prompt } = request;
  if (typeof prompt !== 'string' || prompt.trim() === '') {
    throw new PlatformError('BAD_REQUEST', 'prompt must be a non-empty text');
  }
  const chars = [...prompt].length;
  if (chars > maxPromptChars) {
    throw new PlatformError('PAYLOAD_TOO_LARGE', `prompt has ${chars} characters; at most ${maxPromptChars}`);
  }
  for (const field of ['userId', 'requestId'] as const) {
    const value = request[field];
    if (value !== undefined && (typeof value !== 'string' || !planKeyPattern.test(value))) {
      throw new PlatformError('BAD_REQUEST', `${field} must be 1-255 characters of A-Z a-z 0-9 . _ : @ / -`);
    }
  }
  return {
    prompt,
    userId: request.userId ?? 'anonymous',
    ...(request.requestId === undefined ? {} : { requestId: request.requestId }),
  };
}

/**
 * The plan service: the rule-based planner when `llm` is null, else the model chain (template, model, parser,
 * repairs).
 *
 * @example
 * const plans = createPlanService({ store, llm: null });
 * const { record } = await plans.createPlan({ prompt: 'LoRA of my dog Fluffy in watercolor style' });
 * record.status; // 'SUCCESS'
 */
export function createPlanService(options: PlanServiceOptions): PlanService {
  const { store, llm } = options;
  const logger = (options.logger ?? silentLogger).child({ component: 'khaydarin' });
  const now = options.now ?? (() => new Date());
  const planner = llm === null ? 'rule-based' : `${llm.kind}:${llm.model}`;

  async function plan(
    prompt: string,
  ): Promise<
    Pick<PlanRecord, 'plan' | 'status' | 'attempts' | 'problems' | 'warnings' | 'llmPrompt' | 'llmRawResponse'>
  > {
    if (llm === null) {
      const { plan: candidate, warnings } = planFromRules(prompt);
      // The rule-based plan passes the same check as a model's.
      const checked = validatePlan(candidate);
      return {
        plan: checked.plan,
        status: checked.plan === null ? 'PARSING_ERROR' : 'SUCCESS',
        attempts: 0,
        problems: checked.problems,
        warnings,
        llmPrompt: null,
        llmRawResponse: null,
      };
    }
    const result = await runPlanChain(llm, prompt, { maxRepairs: options.maxRepairs });
    return {
      plan: result.status === 'SUCCESS' ? result.plan : null,
      status: result.status,
      attempts: result.attempts,
      problems: result.problems,
      warnings: [],
      llmPrompt: result.llmPrompt,
      llmRawResponse: result.llmRawResponse,
    };
  }

  /** A plan the user gave: stored as it is when it passes validation, refused (nothing stored) when not. */
  function givenPlan(
    value: unknown,
  ): Pick<PlanRecord, 'plan' | 'status' | 'attempts' | 'problems' | 'warnings' | 'llmPrompt' | 'llmRawResponse'> {
    const checked = validatePlan(value);
    if (checked.plan === null) {
      const problems = checked.problems.map((p) => `${p.path}: ${p.message}`).join('; ');
      throw new PlatformError('BAD_REQUEST', `plan is not valid: ${problems}`);
    }
    return {
      plan: checked.plan,
      status: 'SUCCESS',
      attempts: 0,
      problems: [],
      warnings: [],
      llmPrompt: null,
      llmRawResponse: null,
    };
  }

  return {
    planner,

    async createPlan(request) {
      const checked = checkPlanRequest(request);
      if (checked.requestId !== undefined) {
        const known = await store.getPlanByRequest(checked.requestId);
        if (known !== null) {
          logger.info({ planId: known.id, requestId: known.requestId, replay: true }, 'plan request replayed');
          return { record: known, created: false };
        }
      }
      const id = newId('plan');
      const receivedAt = now();
      const started = performance.now();
      const outcome = request.plan === undefined ? await plan(checked.prompt) : givenPlan(request.plan);
      const record: PlanRecord = {
        id,
        requestId: checked.requestId ?? id,
        userId: checked.userId,
        receivedAt,
        userPrompt: checked.prompt,
        ...outcome,
        // Never a plan that did not pass validation.
        plan: outcome.status === 'SUCCESS' ? outcome.plan : null,
        // Whole milliseconds, as the seed's `processing_time_ms` column keeps them.
        processingMs: Math.round(performance.now() - started),
        planner: request.plan === undefined ? planner : userPlanner,
      };
      const stored = await store.putPlan(record);
      logger.info(
        {
          planId: stored.record.id,
          requestId: stored.record.requestId,
          userId: stored.record.userId,
          status: record.status,
          planner: record.planner,
          attempts: record.attempts,
          processingMs: record.processingMs,
          promptChars: record.userPrompt.length,
          problems: record.problems.length,
          created: stored.created,
        },
        'plan request',
      );
      return stored;
    },

    getPlan(id) {
      return store.getPlan(id);
    },

    listPlans(query) {
      return store.listPlans(query);
    },
  };
}

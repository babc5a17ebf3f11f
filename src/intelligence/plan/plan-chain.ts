// Prompt → model → parser, with a repair loop: an answer that is not a valid plan goes back to the model with its
// problems, at most `maxRepairs` times. Nothing unvalidated leaves: the plan is set only when the parser passed it.
import { PlatformError } from '../../core/errors.js';
import { planJsonSchema } from '../../core/plan.js';
import type { FineTunePlan, PlanProblem, PlanStatus } from '../../core/plan.js';
import type { Llm, LlmMessage } from '../../core/ports/llm.js';
import { keptAnswer, parsePlanAnswer } from './output-parser.js';
import { messagesText, planMessages, repairMessage } from './template.js';

/** Repairs after the first answer: at most 3 model calls in all. */
export const maxRepairs = 2;

/** Tokens a plan answer may take (a plan is ~300 tokens of JSON). */
export const planMaxTokens = 1024;

export interface ChainResult {
  status: PlanStatus;
  /** Set only with SUCCESS, and then valid. */
  plan: FineTunePlan | null;
  /** Model calls made. */
  attempts: number;
  /** The last call's messages as one text. */
  llmPrompt: string;
  /** The last answer, at most 64 KiB of it (`keptAnswer`); null when no call answered. */
  llmRawResponse: string | null;
  problems: PlanProblem[];
}

/**
 * Asks `llm` for a plan for `userPrompt`. A failed model call ends the chain with LLM_ERROR (its message as one
 * problem at `$`); an answer still invalid after the repairs with PARSING_ERROR (the last answer's problems).
 */
export async function runPlanChain(
  llm: Llm,
  userPrompt: string,
  options: { maxRepairs?: number; signal?: AbortSignal } = {},
): Promise<ChainResult> {
  const repairs = options.maxRepairs ?? maxRepairs;
  const messages: LlmMessage[] = planMessages(userPrompt);
  /** The last answer as kept: bounded. */
  let raw: string | null = null;
  let problems: PlanProblem[] = [];
  for (let attempt = 1; attempt <= repairs + 1; attempt++) {
    const llmPrompt = messagesText(messages);
    let text: string;
    try {
      const answer = await llm.complete({
        messages: [...messages],
        jsonSchema: planJsonSchema,
        maxTokens: planMaxTokens,
        temperature: 0,
        signal: options.signal,
      });
      text = answer.text;
      raw = keptAnswer(text);
    } catch (err) {
      const error = PlatformError.from(err, 'UNAVAILABLE');
      return {
        status: 'LLM_ERROR',
        plan: null,
        attempts: attempt,
        llmPrompt,
        llmRawResponse: raw,
        problems: [{ path: '$', message: error.message }],
      };
    }
    const parsed = parsePlanAnswer(text);
    if (parsed.plan !== null) {
      return { status: 'SUCCESS', plan: parsed.plan, attempts: attempt, llmPrompt, llmRawResponse: raw, problems: [] };
    }
    problems = parsed.problems;
    if (attempt === repairs + 1) {
      return { status: 'PARSING_ERROR', plan: null, attempts: attempt, llmPrompt, llmRawResponse: raw, problems };
    }
    messages.push({ role: 'assistant', content: raw }, repairMessage(problems));
  }
  // Unreachable: the loop returns on its last attempt.
  throw new PlatformError('INTERNAL', 'the plan chain ended without an answer');
}

// A model's answer → a validated plan or the problems that stop it. Models wrap JSON in prose and code fences; the
// parser takes the first balanced `{…}` (strings and escapes respected), trying the inside of code fences first.
import { validatePlan } from '../../core/plan-validate.js';
import type { FineTunePlan, PlanProblem } from '../../core/plan.js';

/** The end (exclusive) of the balanced object starting at `start`, or -1 when it never closes. */
function objectEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/** The first balanced `{…}` of a text, or null. */
function firstObject(text: string): string | null {
  for (let start = text.indexOf('{'); start !== -1; start = text.indexOf('{', start + 1)) {
    const end = objectEnd(text, start);
    if (end !== -1) return text.slice(start, end);
  }
  return null;
}

/**
 * The JSON object text in a model's answer: the first balanced `{…}` inside a code fence, else in the whole text;
 * null when there is none.
 *
 * @example
 * extractJsonObject('Here it is:\n```json\n{"a": {"b": "}"}}\n```'); // '{"a": {"b": "}"}}'
 */
export function extractJsonObject(text: string): string | null {
  for (const fence of text.matchAll(/```[A-Za-z0-9_-]*[^\S\n]*\n([\s\S]*?)```/g)) {
    const found = firstObject(fence[1] ?? '');
    if (found !== null) return found;
  }
  return firstObject(text);
}

/** An answer parsed and validated: the plan, or the problems (JSON paths) to send back to the model. */
export function parsePlanAnswer(
  text: string,
): { plan: FineTunePlan; problems: [] } | { plan: null; problems: PlanProblem[] } {
  const json = extractJsonObject(text);
  if (json === null) return { plan: null, problems: [{ path: '$', message: 'the answer holds no JSON object' }] };
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    return { plan: null, problems: [{ path: '$', message: `not valid JSON: ${(err as Error).message}` }] };
  }
  return validatePlan(value);
}

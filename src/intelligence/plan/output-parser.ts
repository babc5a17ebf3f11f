// A model's answer → a validated plan or the problems that stop it. Models wrap JSON in prose and code fences; the
// parser takes the first balanced `{…}` (strings and escapes respected), trying the inside of code fences first.
// Only the first `maxParsedChars` of an answer are parsed, in time linear in their length.
import { validatePlan } from '../../core/plan-validate.js';
import type { FineTunePlan, PlanProblem } from '../../core/plan.js';

/** The most of an answer parsed; a plan is ~1 KB of JSON. */
export const maxParsedChars = 64 * 1024;

/** The most of an answer kept in a plan record or sent back to the model in a repair. */
export const maxKeptAnswerChars = 64 * 1024;

/**
 * The first balanced `{…}` of a text, or null, and how many characters were scanned to find it. One pass from the
 * first `{`, tracking depth and strings: every `{` outside a string is a candidate, and the earliest candidate that
 * closes is the answer (an outer one that closes beats an inner one that closed before it).
 *
 * @example
 * scanFirstObject('{ {"a": 1} and more'); // { json: '{"a": 1}', scanned: 19 }
 */
export function scanFirstObject(text: string): { json: string | null; scanned: number } {
  const first = text.indexOf('{');
  if (first === -1) return { json: null, scanned: text.length };
  /** The starts of the objects open at `i`, outermost first. */
  const opens: number[] = [];
  let bestStart = -1;
  let bestEnd = -1;
  let inString = false;
  let i = first;
  for (; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') inString = true;
    else if (c === '{') opens.push(i);
    else if (c === '}') {
      const start = opens.pop();
      if (start === undefined) continue;
      // The outermost open object started at the first `{`: nothing can start earlier.
      if (opens.length === 0) return { json: text.slice(start, i + 1), scanned: i + 1 };
      if (bestStart === -1 || start < bestStart) {
        bestStart = start;
        bestEnd = i + 1;
      }
    }
  }
  return { json: bestStart === -1 ? null : text.slice(bestStart, bestEnd), scanned: Math.min(i, text.length) };
}

/**
 * The JSON object text in a model's answer: the first balanced `{…}` inside a code fence, else in the whole text;
 * null when there is none. Linear in the text's length; `parsePlanAnswer` bounds that length.
 *
 * @example
 * extractJsonObject('Here it is:\n```json\n{"a": {"b": "}"}}\n```'); // '{"a": {"b": "}"}}'
 */
export function extractJsonObject(text: string): string | null {
  for (const fence of text.matchAll(/```[A-Za-z0-9_-]*[^\S\n]*\n([\s\S]*?)```/g)) {
    const found = scanFirstObject(fence[1] ?? '').json;
    if (found !== null) return found;
  }
  return scanFirstObject(text).json;
}

/**
 * An answer as a plan record keeps it and a repair sends it back: at most `maxKeptAnswerChars`, a longer one cut
 * there and marked `…[truncated: N characters in all]`.
 */
export function keptAnswer(text: string): string {
  if (text.length <= maxKeptAnswerChars) return text;
  return `${text.slice(0, maxKeptAnswerChars)}…[truncated: ${text.length} characters in all]`;
}

/**
 * An answer parsed and validated: the plan, or the problems (JSON paths) to send back to the model. Only the first
 * `maxParsedChars` are read; when that is not all and no plan came of it, a problem says so.
 */
export function parsePlanAnswer(
  text: string,
): { plan: FineTunePlan; problems: [] } | { plan: null; problems: PlanProblem[] } {
  const parsed = parseBounded(text.length > maxParsedChars ? text.slice(0, maxParsedChars) : text);
  if (parsed.plan !== null || text.length <= maxParsedChars) return parsed;
  return {
    plan: null,
    problems: [
      ...parsed.problems,
      {
        path: '$',
        message: `the answer is ${text.length} characters; only its first ${maxParsedChars} were parsed`,
      },
    ],
  };
}

function parseBounded(text: string): { plan: FineTunePlan; problems: [] } | { plan: null; problems: PlanProblem[] } {
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

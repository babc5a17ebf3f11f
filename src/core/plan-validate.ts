/**
 * The one check a plan passes before anyone sees it: `planJsonSchema` (walked by a small validator of the subset the
 * schema uses) and the rules between fields the schema cannot say. Pure: no I/O, no throwing on bad input.
 */
import { planJsonSchema, planLimits } from './plan.js';
import type { FineTunePlan, PlanProblem } from './plan.js';

/** The subset of JSON Schema `planJsonSchema` is written in. */
interface SchemaNode {
  type?: string | readonly string[];
  enum?: readonly unknown[];
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  multipleOf?: number;
  required?: readonly string[];
  additionalProperties?: boolean;
  properties?: Readonly<Record<string, SchemaNode>>;
}

const typeName = (value: unknown): string => {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
};

const matchesType = (value: unknown, type: string): boolean => {
  switch (type) {
    case 'null':
      return value === null;
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    case 'array':
      return Array.isArray(value);
    default:
      return typeof value === type;
  }
};

/** A JSON path segment: `.name` for plain names, `["odd key"]` otherwise. */
const child = (path: string, key: string): string =>
  /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

function walk(schema: SchemaNode, value: unknown, path: string, problems: PlanProblem[]): void {
  if (schema.type !== undefined) {
    const types = typeof schema.type === 'string' ? [schema.type] : schema.type;
    if (!types.some((type) => matchesType(value, type))) {
      problems.push({ path, message: `must be ${types.join(' or ')}, got ${typeName(value)}` });
      return;
    }
  }
  if (schema.enum !== undefined && !schema.enum.includes(value)) {
    problems.push({ path, message: `must be one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}` });
    return;
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) {
      problems.push({ path, message: `must have at least ${schema.minLength} character(s)` });
    }
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      problems.push({ path, message: `must have at most ${schema.maxLength} characters, has ${length}` });
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
      problems.push({ path, message: `must match ${schema.pattern}` });
    }
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) {
      problems.push({ path, message: `must be at least ${schema.minimum}, got ${value}` });
    }
    if (schema.maximum !== undefined && value > schema.maximum) {
      problems.push({ path, message: `must be at most ${schema.maximum}, got ${value}` });
    }
    if (schema.multipleOf !== undefined && value % schema.multipleOf !== 0) {
      problems.push({ path, message: `must be a multiple of ${schema.multipleOf}, got ${value}` });
    }
  }
  if (matchesType(value, 'object')) {
    const object = value as Record<string, unknown>;
    for (const key of schema.required ?? []) {
      if (!(key in object)) problems.push({ path: child(path, key), message: 'is required' });
    }
    for (const [key, item] of Object.entries(object)) {
      const property = schema.properties?.[key];
      if (property === undefined) {
        if (schema.additionalProperties === false) problems.push({ path: child(path, key), message: 'is not a field' });
        continue;
      }
      walk(property, item, child(path, key), problems);
    }
  }
}

/** The rules between fields (checked once the fields themselves are valid). */
function crossFieldProblems(plan: FineTunePlan): PlanProblem[] {
  const problems: PlanProblem[] = [];
  const h = plan.hyperparameters;
  if (plan.tuning_type === 'lora') {
    if (h.lora_rank === undefined) {
      problems.push({ path: '$.hyperparameters.lora_rank', message: 'is required when tuning_type is lora' });
    }
    if (h.lora_alpha === undefined) {
      problems.push({ path: '$.hyperparameters.lora_alpha', message: 'is required when tuning_type is lora' });
    }
    if (h.lora_rank !== undefined && h.lora_alpha !== undefined && h.lora_alpha > h.lora_rank) {
      problems.push({
        path: '$.hyperparameters.lora_alpha',
        message: `must be at most lora_rank (${h.lora_rank}), got ${h.lora_alpha}`,
      });
    }
  } else {
    for (const field of ['lora_rank', 'lora_alpha'] as const) {
      if (h[field] !== undefined) {
        problems.push({
          path: `$.hyperparameters.${field}`,
          message: `must be absent when tuning_type is ${plan.tuning_type}`,
        });
      }
    }
  }
  if (plan.tuning_type === 'dreambooth') {
    if (plan.instance_token === undefined) {
      problems.push({ path: '$.instance_token', message: 'is required when tuning_type is dreambooth' });
    }
  } else if (plan.instance_token !== undefined) {
    problems.push({ path: '$.instance_token', message: `must be absent when tuning_type is ${plan.tuning_type}` });
  }
  if (plan.tuning_type === 'full' && h.learning_rate > planLimits.learningRate.fullMax) {
    problems.push({
      path: '$.hyperparameters.learning_rate',
      message: `must be at most ${planLimits.learningRate.fullMax} when tuning_type is full, got ${h.learning_rate}`,
    });
  }
  if (plan.dataset.recommended_images < plan.dataset.min_images) {
    problems.push({
      path: '$.dataset.recommended_images',
      message: `must be at least min_images (${plan.dataset.min_images}), got ${plan.dataset.recommended_images}`,
    });
  }
  return problems;
}

/**
 * Checks a value against the plan's schema and its cross-field rules: the plan when it passes, else every problem
 * found with its JSON path (`$.hyperparameters.lora_alpha`). The plan returned is a copy of the value.
 *
 * @example
 * const { plan, problems } = validatePlan(JSON.parse(answer));
 * if (plan === null) console.log(problems); // [{ path: '$.dataset.resolution', message: 'must be a multiple of 64, got 500' }]
 */
export function validatePlan(
  value: unknown,
): { plan: FineTunePlan; problems: [] } | { plan: null; problems: PlanProblem[] } {
  const problems: PlanProblem[] = [];
  walk(planJsonSchema, value, '$', problems);
  if (problems.length > 0) return { plan: null, problems };
  const plan = structuredClone(value) as FineTunePlan;
  const rules = crossFieldProblems(plan);
  if (rules.length > 0) return { plan: null, problems: rules };
  return { plan, problems: [] };
}

/** The rules between fields, as the prompt states them to a model (the parser checks each). */
export const planRules: readonly string[] = [
  'tuning_type "lora": hyperparameters.lora_rank and hyperparameters.lora_alpha are required, lora_alpha <= lora_rank',
  'tuning_type "dreambooth" or "full": no lora_rank and no lora_alpha',
  'tuning_type "dreambooth": instance_token is required (a rare lowercase token such as "sks")',
  'tuning_type "lora" or "full": no instance_token',
  `tuning_type "full": hyperparameters.learning_rate <= ${planLimits.learningRate.fullMax}`,
  'dataset.recommended_images >= dataset.min_images',
];

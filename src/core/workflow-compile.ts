/**
 * Checks a workflow spec and compiles it to the graph the engine runs; resolves its references and conditions when
 * nodes run. Pure: the deploy-time look-ups of functions and other workflows come in as functions.
 */
import { createHash } from 'node:crypto';
import { isDnsLabel } from './dns-label.js';
import { PlatformError } from './errors.js';
import {
  maxWorkflowNodes,
  maxWorkflowSpecBytes,
  maxJsonDepth,
  type CompiledNode,
  type CompiledWorkflow,
  type WorkflowCondition,
  type WorkflowFailurePolicy,
  type WorkflowSpec,
  type WorkflowValueType,
} from './workflow-spec.js';

/** Node ids and input names: 1-63 lowercase letters, digits, `_` or `-`, starting with a letter or digit. */
const idPattern = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** A version number, `$LATEST` or an alias. */
const qualifierPattern = /^(?:\$LATEST|[1-9][0-9]{0,15}|[a-z][a-z0-9-]{0,62})$/;
/**
 * A built-in task's name: lowercase words joined by dots (`savassan.plan`). Function names never hold a dot, so a
 * node's `function` with one names a task the platform runs in its own process; deploy checks that the task exists.
 */
const builtinTaskPattern = /^[a-z][a-z0-9-]{0,62}(?:\.[a-z][a-z0-9-]{0,62}){1,3}$/;

/** Whether a node's `function` names a built-in task (it has a dot) rather than a deployed function. */
export function isBuiltinTaskName(name: string): boolean {
  return builtinTaskPattern.test(name);
}
const valueTypes: readonly WorkflowValueType[] = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'any'];
const numericOperators = ['greaterThan', 'greaterThanOrEquals', 'lessThan', 'lessThanOrEquals'] as const;
const leafOperators = ['equals', 'notEquals', ...numericOperators, 'exists', 'truthy'] as const;

// ---------------------------------------------------------------------------------------------------------------
// References

/** A parsed `$.` reference: what it starts from and the path below that. */
export type WorkflowReference =
  | { root: 'inputs'; name: string; path: (string | number)[] }
  | { root: 'nodes'; name: string; path: (string | number)[] }
  | { root: 'item'; name: null; path: (string | number)[] }
  | { root: 'index'; name: null; path: [] };

/** Whether a string is meant as a reference (starts with `$.`). */
export function isReferenceText(value: unknown): value is string {
  return typeof value === 'string' && value.startsWith('$.');
}

/** Parses `$.a.b[2]` segments after the given prefix; a string describing the fault when malformed. */
function parsePath(text: string, from: number): (string | number)[] | string {
  const path: (string | number)[] = [];
  let i = from;
  while (i < text.length) {
    const c = text[i];
    if (c === '.') {
      let j = i + 1;
      while (j < text.length && text[j] !== '.' && text[j] !== '[' && text[j] !== ']') j++;
      if (j === i + 1) return `empty name at character ${i + 1}`;
      path.push(text.slice(i + 1, j));
      i = j;
    } else if (c === '[') {
      const close = text.indexOf(']', i);
      const digits = close < 0 ? '' : text.slice(i + 1, close);
      if (!/^(0|[1-9][0-9]{0,8})$/.test(digits)) return `bad index at character ${i}: use [N]`;
      path.push(Number(digits));
      i = close + 1;
    } else {
      return `unexpected ${JSON.stringify(c)} at character ${i}`;
    }
  }
  return path;
}

function referenceOrFault(text: string): WorkflowReference | string {
  if (!text.startsWith('$.')) return 'a reference starts with $.';
  const head = /^\$\.(inputs|nodes|item|index)(?=$|[.[])/.exec(text);
  if (head === null) return 'a reference starts with $.inputs, $.nodes, $.item or $.index';
  const root = head[1] as 'inputs' | 'nodes' | 'item' | 'index';
  const rest = parsePath(text, head[0].length);
  if (typeof rest === 'string') return rest;
  switch (root) {
    case 'index':
      return rest.length === 0 ? { root, name: null, path: [] } : '$.index has no path below it';
    case 'item':
      return { root, name: null, path: rest };
    case 'inputs': {
      const [name, ...path] = rest;
      if (typeof name !== 'string') return 'use $.inputs.NAME';
      return { root, name, path };
    }
    case 'nodes': {
      const [name, output, ...path] = rest;
      if (typeof name !== 'string' || output !== 'output') return 'use $.nodes.ID.output';
      return { root, name, path };
    }
  }
}

/**
 * Parses a reference such as `$.inputs.x`, `$.nodes.a.output.list[2].id`, `$.item.name` or `$.index`.
 * Throws BAD_REQUEST naming the fault when `text` is not one.
 */
export function parseReference(text: string): WorkflowReference {
  const parsed = referenceOrFault(text);
  if (typeof parsed === 'string') throw new PlatformError('BAD_REQUEST', `${text}: ${parsed}`);
  return parsed;
}

/** What references are resolved against when a node runs. */
export interface WorkflowScope {
  /** The execution's inputs, defaults applied. */
  inputs: Record<string, unknown>;
  /** A node's output; undefined (a node that has none, or was skipped) reads as null. */
  outputs: (nodeId: string) => unknown;
  /** In a map node's element: the element and its index. */
  item?: unknown;
  index?: number;
}

function walk(value: unknown, path: readonly (string | number)[]): unknown {
  let current = value;
  for (const key of path) {
    if (typeof key === 'number') {
      current = Array.isArray(current) ? current[key] : undefined;
    } else if (isPlainObject(current) && Object.hasOwn(current, key)) {
      current = current[key];
    } else {
      current = undefined;
    }
    if (current === undefined) return null;
  }
  return current === undefined ? null : current;
}

function resolveReference(ref: WorkflowReference, scope: WorkflowScope): unknown {
  switch (ref.root) {
    case 'inputs':
      return walk(Object.hasOwn(scope.inputs, ref.name) ? scope.inputs[ref.name] : undefined, ref.path);
    case 'nodes':
      return walk(scope.outputs(ref.name), ref.path);
    case 'item':
      return walk(scope.item, ref.path);
    case 'index':
      return scope.index ?? null;
  }
}

/**
 * A template with its references replaced by their values (a missing path gives null) and `{"$literal": V}` by V.
 * Values are not copied: the result shares objects with the scope.
 *
 * @example resolveTemplate({ n: '$.inputs.x' }, { inputs: { x: 2 }, outputs: () => null }) // { n: 2 }
 */
export function resolveTemplate(template: unknown, scope: WorkflowScope): unknown {
  if (typeof template === 'string') {
    return isReferenceText(template) ? resolveReference(parseReference(template), scope) : template;
  }
  if (Array.isArray(template)) return template.map((element) => resolveTemplate(element, scope));
  if (isPlainObject(template)) {
    if (isLiteralWrapper(template)) return template['$literal'];
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(template)) out[key] = resolveTemplate(value, scope);
    return out;
  }
  return template;
}

/**
 * Evaluates a `when` condition. `equals`/`notEquals` compare JSON values deeply; numeric comparisons are false when
 * the value is not a number; `exists` is whether the value is neither missing nor null; `truthy` uses JavaScript
 * truthiness except that an empty array and an empty object are falsy too (so null, false, 0, NaN, "", [] and {}
 * are falsy).
 */
export function evaluateCondition(condition: WorkflowCondition, scope: WorkflowScope): boolean {
  if ('all' in condition) return condition.all.every((c) => evaluateCondition(c, scope));
  if ('any' in condition) return condition.any.some((c) => evaluateCondition(c, scope));
  if ('not' in condition) return !evaluateCondition(condition.not, scope);
  const value = resolveReference(parseReference(condition.ref), scope);
  if ('equals' in condition) return jsonEquals(value, resolveTemplate(condition.equals, scope));
  if ('notEquals' in condition) return !jsonEquals(value, resolveTemplate(condition.notEquals, scope));
  if ('exists' in condition) return (value !== null && value !== undefined) === condition.exists;
  if ('truthy' in condition) return isTruthy(value) === condition.truthy;
  if (typeof value !== 'number') return false;
  if ('greaterThan' in condition) return value > condition.greaterThan;
  if ('greaterThanOrEquals' in condition) return value >= condition.greaterThanOrEquals;
  if ('lessThan' in condition) return value < condition.lessThan;
  if ('lessThanOrEquals' in condition) return value <= condition.lessThanOrEquals;
  return false;
}

function isTruthy(value: unknown): boolean {
  if (Array.isArray(value)) return value.length > 0;
  if (isPlainObject(value)) return Object.keys(value).length > 0;
  return Boolean(value);
}

function jsonEquals(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((element, i) => jsonEquals(element, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && jsonEquals(a[key], b[key]))
    );
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// Hashes

/** The text a spec is stored as: JSON with every object's keys sorted, no spaces. */
export function canonicalSpecText(json: unknown): string {
  return JSON.stringify(sortKeys(json)) ?? 'null';
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) out[key] = sortKeys(value[key]);
    return out;
  }
  return value;
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** sha256 (hex) of the spec's canonical text: two specs that differ only in key order hash the same. */
export function specHash(spec: unknown): string {
  return sha256(canonicalSpecText(spec));
}

/** The key a cached node output is kept under: `FUNCTION:VERSION:sha256(input JSON)`. */
export function cacheKey(functionName: string, version: number | string, inputJson: string): string {
  return `${functionName}:${version}:${sha256(inputJson)}`;
}

// ---------------------------------------------------------------------------------------------------------------
// Values

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isLiteralWrapper(value: Record<string, unknown>): boolean {
  return Object.hasOwn(value, '$literal');
}

/** Whether `value` is of the declared type (`integer`: a safe integer; `any`: any JSON value). */
export function matchesType(value: unknown, type: WorkflowValueType): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return Number.isSafeInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'object':
      return isPlainObject(value);
    case 'array':
      return Array.isArray(value);
    case 'any':
      return value !== undefined;
  }
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Number.isSafeInteger(value)) return 'integer';
  return typeof value;
}

/** `.name`, `[2]` or `["odd key"]` after `base`, for error messages. */
function jsonPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const part = /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
  return base === '' ? part.replace(/^\./, '') : `${base}${part}`;
}

function bad(message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', message);
}

function plural(names: string[]): string {
  return names.length === 1 ? `field ${names[0]}` : `fields ${names.join(', ')}`;
}

function rejectUnknown(where: string, value: Record<string, unknown>, allowed: readonly string[]): void {
  const unknown = Object.keys(value).filter((key) => !allowed.includes(key));
  if (unknown.length > 0) throw bad(`${where}unknown ${plural(unknown)}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Compile

const specFields = ['description', 'inputs', 'nodes', 'output', 'failurePolicy'] as const;
const commonFields = ['input', 'when', 'retries', 'retryDelaySeconds', 'timeoutSeconds', 'cache', 'description'];
const functionFields = [...commonFields, 'function', 'qualifier'];
const mapFields = [...functionFields, 'map', 'concurrency'];
const subFields = [...commonFields, 'workflow', 'version'];

type DeclaredInputs = CompiledWorkflow['inputs'];

/** Where a template sits, for its references' checks. */
interface TemplateContext {
  /** `node b: ` or `` for the workflow output. */
  prefix: string;
  self: string | null;
  inMap: boolean;
  nodes: Record<string, unknown>;
  inputs: DeclaredInputs;
  /** Node ids found, added to. */
  refers: Set<string>;
}

function checkReference(text: string, where: string, ctx: TemplateContext): WorkflowReference {
  const parsed = referenceOrFault(text);
  if (typeof parsed === 'string') throw bad(`${ctx.prefix}${where}: ${text} is not a reference: ${parsed}`);
  switch (parsed.root) {
    case 'item':
    case 'index':
      if (!ctx.inMap) {
        throw bad(`${ctx.prefix}${where}: ${text} is only allowed in the input of a map node`);
      }
      break;
    case 'inputs': {
      const declared = ctx.inputs[parsed.name];
      if (declared === undefined) throw bad(`${ctx.prefix}${where}: ${text} refers to an unknown input ${parsed.name}`);
      if (parsed.path.length > 0 && ['string', 'number', 'integer', 'boolean'].includes(declared.type)) {
        throw bad(`${ctx.prefix}${where}: ${text} reads into input ${parsed.name}, declared ${declared.type}`);
      }
      break;
    }
    case 'nodes':
      if (parsed.name === ctx.self) throw bad(`${ctx.prefix}${where}: ${text} refers to node ${parsed.name} itself`);
      if (!Object.hasOwn(ctx.nodes, parsed.name)) {
        throw bad(`${ctx.prefix}${where}: ${text} refers to an unknown node ${parsed.name}`);
      }
      ctx.refers.add(parsed.name);
      break;
  }
  return parsed;
}

function checkTemplate(value: unknown, where: string, ctx: TemplateContext): void {
  if (isReferenceText(value)) {
    checkReference(value, where, ctx);
  } else if (Array.isArray(value)) {
    value.forEach((element, i) => checkTemplate(element, jsonPath(where, i), ctx));
  } else if (isPlainObject(value)) {
    if (isLiteralWrapper(value)) {
      if (Object.keys(value).length !== 1) throw bad(`${ctx.prefix}${where}: $literal must be the object's only key`);
      return;
    }
    for (const [key, element] of Object.entries(value)) checkTemplate(element, jsonPath(where, key), ctx);
  } else if (value !== null && typeof value !== 'string' && typeof value !== 'boolean') {
    if (typeof value !== 'number' || !Number.isFinite(value)) throw bad(`${ctx.prefix}${where}: not a JSON value`);
  }
}

function checkCondition(value: unknown, where: string, ctx: TemplateContext): WorkflowCondition {
  if (!isPlainObject(value)) throw bad(`${ctx.prefix}${where}: a condition is an object`);
  for (const combinator of ['all', 'any'] as const) {
    if (Object.hasOwn(value, combinator)) {
      rejectUnknown(`${ctx.prefix}${where}: `, value, [combinator]);
      const list = value[combinator];
      if (!Array.isArray(list) || list.length === 0) {
        throw bad(`${ctx.prefix}${where}.${combinator}: a non-empty list of conditions`);
      }
      return {
        [combinator]: list.map((c, i) => checkCondition(c, `${where}.${combinator}[${i}]`, ctx)),
      } as WorkflowCondition;
    }
  }
  if (Object.hasOwn(value, 'not')) {
    rejectUnknown(`${ctx.prefix}${where}: `, value, ['not']);
    return { not: checkCondition(value['not'], `${where}.not`, ctx) };
  }
  if (!Object.hasOwn(value, 'ref')) {
    throw bad(`${ctx.prefix}${where}: a condition has all, any, not, or ref and one operator`);
  }
  rejectUnknown(`${ctx.prefix}${where}: `, value, ['ref', ...leafOperators]);
  const operators = leafOperators.filter((op) => Object.hasOwn(value, op));
  if (operators.length !== 1) {
    throw bad(`${ctx.prefix}${where}: a condition on ref takes exactly one of ${leafOperators.join(', ')}`);
  }
  const operator = operators[0] as (typeof leafOperators)[number];
  const ref = value['ref'];
  if (!isReferenceText(ref)) throw bad(`${ctx.prefix}${where}.ref: a reference starting with $.`);
  const parsed = checkReference(ref, `${where}.ref`, ctx);
  const operand = value[operator];
  if ((numericOperators as readonly string[]).includes(operator)) {
    if (typeof operand !== 'number' || !Number.isFinite(operand)) {
      throw bad(`${ctx.prefix}${where}.${operator}: a number`);
    }
    if (parsed.root === 'inputs' && parsed.path.length === 0) {
      const type = ctx.inputs[parsed.name]?.type;
      if (type !== undefined && !['number', 'integer', 'any'].includes(type)) {
        throw bad(`${ctx.prefix}${where}.${operator}: compares input ${parsed.name}, declared ${type}, with a number`);
      }
    }
  } else if (operator === 'exists' || operator === 'truthy') {
    if (typeof operand !== 'boolean') throw bad(`${ctx.prefix}${where}.${operator}: true or false`);
  } else {
    checkTemplate(operand, `${where}.${operator}`, { ...ctx, refers: new Set() });
    if (containsReference(operand)) {
      throw bad(`${ctx.prefix}${where}.${operator}: compares with a literal value, not a reference`);
    }
  }
  return value as WorkflowCondition;
}

function containsReference(value: unknown): boolean {
  if (isReferenceText(value)) return true;
  if (Array.isArray(value)) return value.some(containsReference);
  if (isPlainObject(value)) return !isLiteralWrapper(value) && Object.values(value).some(containsReference);
  return false;
}

function integerIn(prefix: string, field: string, value: unknown, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw bad(`${prefix}${field}: an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value as number;
}

function numberIn(prefix: string, field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw bad(`${prefix}${field}: a number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}

function compileInputs(value: unknown): DeclaredInputs {
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw bad('inputs: an object of input names to types');
  const inputs: DeclaredInputs = {};
  for (const [name, declared] of Object.entries(value)) {
    const where = `inputs.${name}`;
    if (!idPattern.test(name)) {
      throw bad(
        `inputs: invalid input name ${JSON.stringify(name)}: use 1-63 lowercase letters, digits, _ or -, starting with a letter or digit`,
      );
    }
    const typeOrSpec: unknown = declared;
    if (typeof typeOrSpec === 'string') {
      if (!valueTypes.includes(typeOrSpec as WorkflowValueType)) {
        throw bad(`${where}: unknown type ${JSON.stringify(typeOrSpec)}: use one of ${valueTypes.join(', ')}`);
      }
      inputs[name] = { type: typeOrSpec as WorkflowValueType, required: true };
      continue;
    }
    if (!isPlainObject(typeOrSpec)) throw bad(`${where}: a type name or {"type", "default"?, "description"?}`);
    rejectUnknown(`${where}: `, typeOrSpec, ['type', 'default', 'description']);
    const type = typeOrSpec['type'];
    if (typeof type !== 'string' || !valueTypes.includes(type as WorkflowValueType)) {
      throw bad(`${where}.type: unknown type ${JSON.stringify(type)}: use one of ${valueTypes.join(', ')}`);
    }
    if (typeOrSpec['description'] !== undefined && typeof typeOrSpec['description'] !== 'string') {
      throw bad(`${where}.description: a string`);
    }
    const compiled: DeclaredInputs[string] = { type: type as WorkflowValueType, required: true };
    if (typeOrSpec['default'] !== undefined) {
      const fallback = typeOrSpec['default'];
      if (!matchesType(fallback, compiled.type)) {
        throw bad(`${where}.default: expected ${compiled.type}, got ${typeOf(fallback)}`);
      }
      compiled.default = fallback;
      compiled.required = false;
    }
    inputs[name] = compiled;
  }
  return inputs;
}

function compileNode(id: string, value: unknown, nodes: Record<string, unknown>, inputs: DeclaredInputs): CompiledNode {
  const prefix = `node ${id}: `;
  if (!isPlainObject(value)) throw bad(`${prefix}a node is an object`);
  const kind: CompiledNode['kind'] = Object.hasOwn(value, 'workflow')
    ? 'workflow'
    : Object.hasOwn(value, 'map')
      ? 'map'
      : 'function';
  if (kind === 'workflow' && Object.hasOwn(value, 'function')) {
    throw bad(`${prefix}a node runs either a function or a workflow, not both`);
  }
  rejectUnknown(prefix, value, kind === 'workflow' ? subFields : kind === 'map' ? mapFields : functionFields);
  const refers = new Set<string>();
  const ctx: TemplateContext = { prefix, self: id, inMap: false, nodes, inputs, refers };

  let target: string;
  let qualifier = 'live';
  let version: number | null = null;
  let map: CompiledNode['map'] = null;
  if (kind === 'workflow') {
    target = value['workflow'] as string;
    if (!isDnsLabel(target)) {
      throw bad(`${prefix}workflow: invalid workflow name ${JSON.stringify(target)}`);
    }
    if (value['version'] !== undefined) version = integerIn(prefix, 'version', value['version'], 1, 2 ** 31 - 1);
    if (value['cache'] !== undefined) throw bad(`${prefix}cache: not for sub-workflow nodes`);
  } else {
    if (!Object.hasOwn(value, 'function')) throw bad(`${prefix}a node has function, map and function, or workflow`);
    target = value['function'] as string;
    if (!isDnsLabel(target) && !(typeof target === 'string' && isBuiltinTaskName(target))) {
      throw bad(`${prefix}function: invalid function name ${JSON.stringify(target)}`);
    }
    if (value['qualifier'] !== undefined) {
      const q = value['qualifier'];
      if (typeof q !== 'string' || !qualifierPattern.test(q)) {
        throw bad(`${prefix}qualifier: a version number or an alias, got ${JSON.stringify(q)}`);
      }
      qualifier = q;
    }
    if (kind === 'map') {
      const over = value['map'];
      if (!isReferenceText(over)) throw bad(`${prefix}map: a reference to a list, starting with $.`);
      const parsed = checkReference(over, 'map', ctx);
      if (parsed.root === 'inputs' && parsed.path.length === 0) {
        const type = inputs[parsed.name]?.type;
        if (type !== 'array' && type !== 'any') {
          throw bad(`${prefix}map: ${over} maps over input ${parsed.name}, declared ${type}, not array`);
        }
      }
      const concurrency =
        value['concurrency'] === undefined ? 10 : integerIn(prefix, 'concurrency', value['concurrency'], 1, 1000);
      map = { ref: over, concurrency };
    }
  }
  const input = value['input'] === undefined ? null : value['input'];
  checkTemplate(input, 'input', { ...ctx, inMap: kind === 'map' });
  const when = value['when'] === undefined ? null : checkCondition(value['when'], 'when', ctx);
  const retries = value['retries'] === undefined ? 0 : integerIn(prefix, 'retries', value['retries'], 0, 10);
  const retryDelaySeconds =
    value['retryDelaySeconds'] === undefined
      ? 1
      : numberIn(prefix, 'retryDelaySeconds', value['retryDelaySeconds'], 0, 3600);
  const timeoutSeconds =
    value['timeoutSeconds'] === undefined
      ? null
      : numberIn(prefix, 'timeoutSeconds', value['timeoutSeconds'], 1, 86400);
  if (value['cache'] !== undefined && typeof value['cache'] !== 'boolean') throw bad(`${prefix}cache: true or false`);
  if (value['description'] !== undefined && typeof value['description'] !== 'string') {
    throw bad(`${prefix}description: a string`);
  }
  return {
    id,
    kind,
    target,
    qualifier: kind === 'workflow' ? 'live' : qualifier,
    version,
    input,
    when,
    map,
    retries,
    retryDelaySeconds,
    timeoutSeconds,
    cache: value['cache'] === true,
    dependsOn: [...refers].sort(),
  };
}

/** Kahn's algorithm, taking the smallest ready id first; on a cycle, throws naming one. */
function topologicalOrder(nodes: Record<string, CompiledNode>): string[] {
  const ids = Object.keys(nodes).sort();
  const waiting = new Map(ids.map((id) => [id, nodes[id]?.dependsOn.length ?? 0]));
  const dependents = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const id of ids) for (const dep of nodes[id]?.dependsOn ?? []) dependents.get(dep)?.push(id);
  const ready = ids.filter((id) => waiting.get(id) === 0);
  const order: string[] = [];
  while (ready.length > 0) {
    ready.sort();
    const id = ready.shift() as string;
    order.push(id);
    for (const next of dependents.get(id) ?? []) {
      const left = (waiting.get(next) ?? 0) - 1;
      waiting.set(next, left);
      if (left === 0) ready.push(next);
    }
  }
  if (order.length < ids.length) {
    const done = new Set(order);
    throw bad(
      `nodes ${findCycle(
        nodes,
        ids.filter((id) => !done.has(id)),
      ).join(' -> ')} form a cycle`,
    );
  }
  return order;
}

/** A cycle among `left` (every one of which waits on another one of them), from its smallest id, in data flow order. */
function findCycle(nodes: Record<string, CompiledNode>, left: string[]): string[] {
  const inLeft = new Set(left);
  // Walk dependencies backwards from the smallest id until one repeats; every node left has a dependency left.
  const seen = new Map<string, number>();
  const walkPath: string[] = [];
  let current = left[0] as string;
  while (!seen.has(current)) {
    seen.set(current, walkPath.length);
    walkPath.push(current);
    current = (nodes[current]?.dependsOn ?? []).find((dep) => inLeft.has(dep)) as string;
  }
  const cycle = walkPath.slice(seen.get(current)).reverse(); // data flows from a dependency to its dependent
  const start = cycle.indexOf([...cycle].sort()[0] as string);
  const rotated = [...cycle.slice(start), ...cycle.slice(0, start)];
  return [...rotated, rotated[0] as string];
}

/**
 * BAD_REQUEST when arrays and objects in `value` nest deeper than `maxJsonDepth` (checked without recursion, so
 * before anything walks the value recursively or stringifies it).
 */
export function checkJsonDepth(what: string, value: unknown, limit = maxJsonDepth): void {
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [current, depth] = stack.pop()!;
    if (typeof current !== 'object' || current === null) continue;
    if (depth > limit) throw bad(`${what}: arrays and objects nest more than ${limit} levels deep`);
    for (const child of Array.isArray(current) ? current : Object.values(current)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
}

/**
 * Checks a spec strictly and compiles it: defaults applied, edges found from the references, a topological order.
 * Throws BAD_REQUEST naming the node and the JSON path of the first fault, e.g.
 * `node b: input.n: $.nodes.zz.output.n refers to an unknown node zz` or `nodes a -> b -> a form a cycle`.
 */
export function compileWorkflow(json: unknown): CompiledWorkflow {
  if (!isPlainObject(json)) throw bad('a workflow spec is a JSON object');
  checkJsonDepth('the spec', json);
  const bytes = new TextEncoder().encode(JSON.stringify(json)).length;
  if (bytes > maxWorkflowSpecBytes) throw bad(`the spec is ${bytes} bytes of JSON, over ${maxWorkflowSpecBytes}`);
  rejectUnknown('', json, specFields);
  if (json['description'] !== undefined && typeof json['description'] !== 'string') {
    throw bad('description: a string');
  }
  const failurePolicy = (json['failurePolicy'] ?? 'failFast') as WorkflowFailurePolicy;
  if (failurePolicy !== 'failFast' && failurePolicy !== 'finishRunnable') {
    throw bad(`failurePolicy: failFast or finishRunnable, got ${JSON.stringify(json['failurePolicy'])}`);
  }
  const inputs = compileInputs(json['inputs']);
  const specNodes = json['nodes'];
  if (!isPlainObject(specNodes)) throw bad('nodes: an object of node ids to nodes');
  const ids = Object.keys(specNodes);
  if (ids.length === 0) throw bad('nodes: a workflow has at least one node');
  if (ids.length > maxWorkflowNodes) throw bad(`nodes: at most ${maxWorkflowNodes} nodes, got ${ids.length}`);
  for (const id of ids) {
    if (!idPattern.test(id)) {
      throw bad(
        `nodes: invalid node id ${JSON.stringify(id)}: use 1-63 lowercase letters, digits, _ or -, starting with a letter or digit`,
      );
    }
  }
  const nodes: Record<string, CompiledNode> = {};
  for (const id of [...ids].sort()) nodes[id] = compileNode(id, specNodes[id], specNodes, inputs);
  const output = json['output'] === undefined ? null : json['output'];
  checkTemplate(output, 'output', {
    prefix: '',
    self: null,
    inMap: false,
    nodes: specNodes,
    inputs,
    refers: new Set(),
  });
  return {
    spec: json as unknown as WorkflowSpec,
    inputs,
    nodes,
    order: topologicalOrder(nodes),
    output,
    failurePolicy,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Launch inputs

/**
 * Checks an execution's inputs against the declared ones and applies defaults. Missing inputs (undefined or null)
 * read as `{}`. Throws BAD_REQUEST naming the input.
 */
export function checkLaunchInputs(compiled: CompiledWorkflow, inputs: unknown): Record<string, unknown> {
  const given = inputs === undefined || inputs === null ? {} : inputs;
  if (!isPlainObject(given)) throw bad('inputs: a JSON object of input names to values');
  checkJsonDepth('inputs', given);
  const unknown = Object.keys(given).filter((name) => !Object.hasOwn(compiled.inputs, name));
  if (unknown.length > 0) {
    throw bad(`unknown ${unknown.length === 1 ? 'input' : 'inputs'} ${unknown.join(', ')}`);
  }
  const out: Record<string, unknown> = {};
  for (const [name, declared] of Object.entries(compiled.inputs)) {
    const value = given[name];
    if (value === undefined) {
      if (declared.required) throw bad(`input ${name} (${declared.type}) is required`);
      out[name] = structuredClone(declared.default);
      continue;
    }
    if (!matchesType(value, declared.type)) {
      throw bad(`input ${name}: expected ${declared.type}, got ${typeOf(value)}`);
    }
    out[name] = value;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Deploy-time targets

/** What a deploy looks up to check a workflow's targets. */
export interface WorkflowTargetLookups {
  functionExists(name: string): Promise<boolean>;
  /** The built-in tasks a node may name (`savassan.plan`...); none when absent. */
  builtinTasks?: ReadonlySet<string> | undefined;
  /** A deployed workflow's version (null: the latest), compiled; null when there is none. */
  workflow(name: string, version: number | null): Promise<CompiledWorkflow | null>;
}

/**
 * Checks, at deploy, what the nodes run: that each function and workflow exists, that no chain of sub-workflows
 * comes back to `self` (the workflow being deployed), and that a sub-workflow node's input gives the child's
 * declared inputs: no unknown names, every required one, literals of the declared type. Throws BAD_REQUEST naming
 * the node.
 */
export async function checkTargets(
  compiled: CompiledWorkflow,
  lookups: WorkflowTargetLookups,
  self: string,
): Promise<void> {
  const functions = new Map<string, boolean>();
  for (const id of compiled.order) {
    const node = compiled.nodes[id] as CompiledNode;
    const prefix = `node ${id}: `;
    if (node.kind !== 'workflow' && isBuiltinTaskName(node.target)) {
      if (lookups.builtinTasks?.has(node.target) === true) continue;
      const known = [...(lookups.builtinTasks ?? [])].sort();
      throw bad(
        `${prefix}function: ${node.target} is not a built-in task (${known.length === 0 ? 'this platform runs none' : `built-in tasks: ${known.join(', ')}`}; function names have no dot)`,
      );
    }
    if (node.kind !== 'workflow') {
      let exists = functions.get(node.target);
      if (exists === undefined) {
        exists = await lookups.functionExists(node.target);
        functions.set(node.target, exists);
      }
      if (!exists) throw bad(`${prefix}function: function ${node.target} does not exist`);
      continue;
    }
    if (node.target === self) throw bad(`${prefix}workflow: workflow ${self} runs itself`);
    const child = await lookups.workflow(node.target, node.version);
    if (child === null) {
      throw bad(
        node.version === null
          ? `${prefix}workflow: workflow ${node.target} does not exist`
          : `${prefix}workflow: version ${node.version} of workflow ${node.target} does not exist`,
      );
    }
    const chain = await chainBackTo(self, [self, node.target], child, lookups, new Set([node.target]));
    if (chain !== null) throw bad(`${prefix}workflow: workflows ${chain.join(' -> ')} form a cycle`);
    checkChildInputs(prefix, node, compiled.inputs, child);
  }
}

async function chainBackTo(
  self: string,
  path: string[],
  workflow: CompiledWorkflow,
  lookups: WorkflowTargetLookups,
  visited: Set<string>,
): Promise<string[] | null> {
  for (const id of workflow.order) {
    const node = workflow.nodes[id];
    if (node?.kind !== 'workflow') continue;
    if (node.target === self) return [...path, self];
    const key = `${node.target}@${node.version ?? 'latest'}`;
    if (visited.has(key)) continue;
    visited.add(key);
    const child = await lookups.workflow(node.target, node.version);
    if (child === null) continue;
    const found = await chainBackTo(self, [...path, node.target], child, lookups, visited);
    if (found !== null) return found;
  }
  return null;
}

function checkChildInputs(
  prefix: string,
  node: CompiledNode,
  parentInputs: DeclaredInputs,
  child: CompiledWorkflow,
): void {
  const input = node.input;
  if (isReferenceText(input)) return; // the whole input comes from a reference: checked at launch
  if (input === null && Object.keys(child.inputs).length === 0) return;
  if (!isPlainObject(input) || isLiteralWrapper(input)) {
    if (isPlainObject(input)) {
      checkLaunchInputsAt(prefix, child, input['$literal']);
      return;
    }
    if (Object.values(child.inputs).some((declared) => declared.required) || input !== null) {
      throw bad(`${prefix}input: workflow ${node.target} takes an object of its inputs`);
    }
    return;
  }
  for (const [name, value] of Object.entries(input)) {
    const declared = child.inputs[name];
    if (declared === undefined)
      throw bad(`${prefix}${jsonPath('input', name)}: workflow ${node.target} has no input ${name}`);
    const where = `${prefix}${jsonPath('input', name)}`;
    if (isReferenceText(value)) {
      const ref = parseReference(value);
      const from = ref.root === 'inputs' && ref.path.length === 0 ? parentInputs[ref.name]?.type : undefined;
      if (from !== undefined && !typeFits(from, declared.type)) {
        throw bad(`${where}: ${value} is declared ${from}, workflow ${node.target} takes ${declared.type}`);
      }
      continue;
    }
    if (containsReference(value)) {
      if (declared.type !== 'any' && declared.type !== (Array.isArray(value) ? 'array' : 'object')) {
        throw bad(`${where}: workflow ${node.target} takes ${declared.type}, got ${typeOf(value)}`);
      }
      continue;
    }
    const literal = resolveTemplate(value, { inputs: {}, outputs: () => null });
    if (!matchesType(literal, declared.type)) {
      throw bad(`${where}: workflow ${node.target} takes ${declared.type}, got ${typeOf(literal)}`);
    }
  }
  const missing = Object.entries(child.inputs)
    .filter(([name, declared]) => declared.required && !Object.hasOwn(input, name))
    .map(([name]) => name);
  if (missing.length > 0) {
    throw bad(`${prefix}input: leaves out ${missing.join(', ')}, required by workflow ${node.target}`);
  }
}

function checkLaunchInputsAt(prefix: string, child: CompiledWorkflow, value: unknown): void {
  try {
    checkLaunchInputs(child, value);
  } catch (err) {
    if (err instanceof PlatformError) throw bad(`${prefix}input: ${err.rawMessage}`);
    throw err;
  }
}

/** Whether a value declared `from` always fits a declared `to`. */
function typeFits(from: WorkflowValueType, to: WorkflowValueType): boolean {
  return to === 'any' || from === 'any' || from === to || (from === 'integer' && to === 'number');
}

// Flyte literals (flyteidl `core.Literal`, `core.LiteralMap`) as their protobuf JSON spells them, read as plain JSON.
// A launch may give its inputs either way; the engine works on plain JSON.
//
// Read (both protobuf JSON spellings, snake_case and camelCase, are accepted):
//   {"scalar": {"primitive": {"integer": "3"}}}              → 3 (an int64 may come as a string or a number)
//   {"scalar": {"primitive": {"float_value": 1.5}}}          → 1.5
//   {"scalar": {"primitive": {"string_value": "a"}}}         → "a"
//   {"scalar": {"primitive": {"boolean": true}}}             → true
//   {"scalar": {"primitive": {"datetime": "2026-…Z"}}}       → "2026-…Z" (RFC 3339, as given)
//   {"scalar": {"primitive": {"duration": "1.5s"}}}          → "1.5s"
//   {"scalar": {"generic": {...}}}                           → the object (a protobuf Struct is plain JSON)
//   {"scalar": {"none_type": {}}}                            → null
//   {"collection": {"literals": [L, ...]}}                   → [...]
//   {"map": {"literals": {"k": L, ...}}}                     → {"k": ...}
import { PlatformError } from './errors.js';
import { checkJsonDepth } from './workflow-compile.js';
import { maxJsonDepth } from './workflow-spec.js';

/** One Flyte literal in protobuf JSON (snake_case as written; camelCase accepted on reading). */
export type FlyteLiteral =
  | { scalar: { primitive: Record<string, unknown> } }
  | { scalar: { generic: Record<string, unknown> } }
  | { scalar: { none_type: Record<string, never> } }
  | { collection: { literals: FlyteLiteral[] } }
  | { map: { literals: Record<string, FlyteLiteral> } };

/** A Flyte `LiteralMap` in protobuf JSON. */
export interface FlyteLiteralMap {
  literals: Record<string, FlyteLiteral>;
}

/** Deepest nesting of collections and maps read. */
const maxDepth = 64;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(path: string, message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', `${path}: ${message}`);
}

/** The one key of `value` among `keys` (snake_case or camelCase spellings); undefined when none. */
function field(value: Record<string, unknown>, ...keys: string[]): unknown {
  for (const key of keys) if (key in value) return value[key];
  return undefined;
}

function primitiveToJson(primitive: unknown, path: string): unknown {
  if (!isObject(primitive)) throw bad(path, 'primitive must be an object');
  const keys = Object.keys(primitive);
  if (keys.length !== 1) throw bad(path, 'primitive must hold exactly one value');
  const [key] = keys as [string];
  const value = primitive[key];
  switch (key) {
    case 'integer': {
      const n =
        typeof value === 'string' && /^-?\d{1,20}$/.test(value)
          ? Number(value)
          : typeof value === 'number'
            ? value
            : NaN;
      if (!Number.isSafeInteger(n)) throw bad(path, `integer must be a whole number, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'float_value':
    case 'floatValue': {
      const n = typeof value === 'number' ? value : typeof value === 'string' ? Number(value) : NaN;
      if (!Number.isFinite(n)) throw bad(path, `float_value must be a finite number, got ${JSON.stringify(value)}`);
      return n;
    }
    case 'string_value':
    case 'stringValue':
      if (typeof value !== 'string') throw bad(path, 'string_value must be a string');
      return value;
    case 'boolean':
      if (typeof value !== 'boolean') throw bad(path, 'boolean must be true or false');
      return value;
    case 'datetime':
      if (typeof value !== 'string' || Number.isNaN(Date.parse(value))) {
        throw bad(path, 'datetime must be an RFC 3339 time');
      }
      return value;
    case 'duration':
      if (typeof value !== 'string' || !/^-?\d+(\.\d{1,9})?s$/.test(value)) {
        throw bad(path, 'duration must be written like "1.5s"');
      }
      return value;
    default:
      throw bad(path, `unknown primitive ${key}`);
  }
}

/**
 * A Flyte literal as plain JSON. Throws BAD_REQUEST naming `path` for anything that is not a literal of the kinds
 * above (blobs, schemas, unions, structured datasets and binaries are not read).
 *
 * @example
 * literalToJson({ scalar: { primitive: { integer: '3' } } }); // 3
 * literalToJson({ collection: { literals: [{ scalar: { primitive: { string_value: 'a' } } }] } }); // ['a']
 */
export function literalToJson(literal: unknown, path = 'literal', depth = 0): unknown {
  if (depth > maxDepth) throw bad(path, `nested deeper than ${maxDepth}`);
  if (!isObject(literal)) throw bad(path, 'a literal must be an object');
  const scalar = literal.scalar;
  if (scalar !== undefined) {
    if (!isObject(scalar)) throw bad(path, 'scalar must be an object');
    const primitive = scalar.primitive;
    if (primitive !== undefined) return primitiveToJson(primitive, `${path}.scalar.primitive`);
    const generic = scalar.generic;
    if (generic !== undefined) {
      if (!isObject(generic)) throw bad(`${path}.scalar.generic`, 'generic must be an object (a Struct)');
      return generic;
    }
    if (field(scalar, 'none_type', 'noneType') !== undefined) return null;
    throw bad(`${path}.scalar`, `unsupported scalar ${Object.keys(scalar).join(', ') || '{}'}`);
  }
  const collection = literal.collection;
  if (collection !== undefined) {
    const items = isObject(collection) ? collection.literals : undefined;
    if (items === undefined) return [];
    if (!Array.isArray(items)) throw bad(`${path}.collection.literals`, 'must be a list');
    return items.map((item, i) => literalToJson(item, `${path}.collection.literals[${i}]`, depth + 1));
  }
  const map = literal.map;
  if (map !== undefined) {
    const entries = isObject(map) ? map.literals : undefined;
    if (entries === undefined) return {};
    if (!isObject(entries)) throw bad(`${path}.map.literals`, 'must be an object');
    return Object.fromEntries(
      Object.entries(entries).map(([k, v]) => [k, literalToJson(v, `${path}.map.literals.${k}`, depth + 1)]),
    );
  }
  throw bad(path, `not a literal (expected scalar, collection or map; got ${Object.keys(literal).join(', ') || '{}'})`);
}

/**
 * Whether `inputs` is a Flyte literal map rather than plain JSON: an object whose only key is `literals`, an object
 * whose every value is an object with `scalar`, `collection` or `map`. (Plain inputs with a single input named
 * `literals` holding such objects would read as a literal map: give them as a literal map then.)
 */
export function isLiteralMap(inputs: unknown): inputs is FlyteLiteralMap {
  if (!isObject(inputs)) return false;
  const keys = Object.keys(inputs);
  if (keys.length !== 1 || keys[0] !== 'literals' || !isObject(inputs.literals)) return false;
  return Object.values(inputs.literals).every(
    (value) => isObject(value) && ('scalar' in value || 'collection' in value || 'map' in value),
  );
}

/**
 * A literal map's values as a plain JSON object.
 *
 * @example
 * literalMapToJson({ literals: { x: { scalar: { primitive: { float_value: 2.5 } } } } }); // { x: 2.5 }
 */
export function literalMapToJson(map: unknown, path = 'inputs'): Record<string, unknown> {
  if (!isObject(map) || !isObject(map.literals)) throw bad(path, 'a literal map must be {"literals": {...}}');
  return Object.fromEntries(
    Object.entries(map.literals).map(([name, literal]) => [name, literalToJson(literal, `${path}.${name}`)]),
  );
}

function checkedDepth<T>(inputs: T): T {
  try {
    checkJsonDepth('inputs', { literals: inputs }, maxJsonDepth * 4);
  } catch {
    throw bad('inputs', `literals nest more than ${maxJsonDepth} levels deep`);
  }
  return inputs;
}

/**
 * Inputs as given to a launch, plain JSON or a literal map, as a plain JSON object; BAD_REQUEST when they are
 * neither an object nor a literal map.
 */
export function launchInputsToJson(inputs: unknown): Record<string, unknown> {
  if (inputs === undefined || inputs === null) return {};
  // A literal wraps each value in a few objects: the plain value's own depth is checked at launch.
  if (isLiteralMap(inputs)) return literalMapToJson(checkedDepth(inputs));
  if (!isObject(inputs)) throw bad('inputs', 'must be an object of named inputs or a Flyte literal map');
  return inputs;
}

/**
 * Plain JSON values and Flyte literals, both ways. A declared workflow input type picks the literal: `integer` →
 * `primitive.integer` (int64, a string in JSON), `number` → `primitive.float_value`, `string`, `boolean`,
 * `object` → `scalar.generic` (a Struct). Values of type `any` and array elements keep their JSON kind: null →
 * `none_type`, a number → `float_value` (an integer too), an array → `collection`, an object → `generic`.
 */
import { PlatformError } from '../../core/errors.js';
import type { WorkflowValueType } from '../../core/workflow-spec.js';
import type { LiteralJson, LiteralMapJson, LiteralTypeJson, ScalarJson } from './flyte-json.js';

/** The Flyte type a declared workflow input travels as. */
export function literalTypeFor(type: WorkflowValueType): LiteralTypeJson {
  switch (type) {
    case 'string':
      return { simple: 'STRING' };
    case 'number':
      return { simple: 'FLOAT' };
    case 'integer':
      return { simple: 'INTEGER' };
    case 'boolean':
      return { simple: 'BOOLEAN' };
    case 'array':
      return { collection_type: { simple: 'STRUCT' } };
    case 'object':
    case 'any':
      return { simple: 'STRUCT' };
  }
}

/** A JSON value as a literal, by its own kind. */
export function literalFromJson(value: unknown): LiteralJson {
  if (Array.isArray(value)) return { collection: { literals: value.map(literalFromJson) } };
  return { scalar: scalarFromJson(value) };
}

/** A JSON scalar or object as a Flyte scalar (arrays have no scalar form). */
export function scalarFromJson(value: unknown): ScalarJson {
  if (value === null || value === undefined) return { none_type: {} };
  if (typeof value === 'boolean') return { primitive: { boolean: value } };
  if (typeof value === 'number') return { primitive: { float_value: value } };
  if (typeof value === 'string') return { primitive: { string_value: value } };
  if (typeof value === 'object' && !Array.isArray(value)) return { generic: value as Record<string, unknown> };
  throw new PlatformError('BAD_REQUEST', `a ${Array.isArray(value) ? 'list' : typeof value} has no Flyte scalar form`);
}

/**
 * A launch input as the literal of its declared type; a value of another type is a BAD_REQUEST naming the input.
 */
export function literalForInput(name: string, type: WorkflowValueType, value: unknown): LiteralJson {
  const wrong = (): PlatformError =>
    new PlatformError('BAD_REQUEST', `input ${name}: expected ${type}, got ${describe(value)}`);
  switch (type) {
    case 'integer':
      if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw wrong();
      return { scalar: { primitive: { integer: String(value) } } };
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) throw wrong();
      return { scalar: { primitive: { float_value: value } } };
    case 'string':
      if (typeof value !== 'string') throw wrong();
      return { scalar: { primitive: { string_value: value } } };
    case 'boolean':
      if (typeof value !== 'boolean') throw wrong();
      return { scalar: { primitive: { boolean: value } } };
    case 'object':
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw wrong();
      return { scalar: { generic: value as Record<string, unknown> } };
    case 'array':
      if (!Array.isArray(value)) throw wrong();
      return literalFromJson(value);
    case 'any':
      return literalFromJson(value);
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

/** A Flyte literal as plain JSON (a shape this adapter cannot read, such as a blob, is an UNAVAILABLE). */
export function jsonFromLiteral(literal: LiteralJson): unknown {
  if (literal.collection != null) return (literal.collection.literals ?? []).map(jsonFromLiteral);
  if (literal.map != null) return jsonFromLiteralMap(literal.map.literals);
  const scalar = literal.scalar;
  if (scalar == null) return null;
  if (scalar.none_type != null) return null;
  if (scalar.generic != null) return scalar.generic;
  if (scalar.union != null) return jsonFromLiteral(scalar.union.value);
  const primitive = scalar.primitive;
  if (primitive != null) {
    if (primitive.integer !== undefined) {
      const n = Number(primitive.integer);
      return Number.isSafeInteger(n) ? n : primitive.integer;
    }
    if (primitive.float_value !== undefined) return Number(primitive.float_value);
    if (primitive.string_value !== undefined) return primitive.string_value;
    if (primitive.boolean !== undefined) return primitive.boolean;
    if (primitive.datetime !== undefined) return primitive.datetime;
    if (primitive.duration !== undefined) return primitive.duration;
  }
  throw new PlatformError(
    'UNAVAILABLE',
    `FlyteAdmin sent a literal this adapter cannot read: ${Object.keys(scalar).join(', ')}`,
  );
}

export function jsonFromLiteralMap(literals: LiteralMapJson['literals'] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, literal] of Object.entries(literals ?? {})) out[key] = jsonFromLiteral(literal);
  return out;
}

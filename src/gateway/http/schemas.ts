import { Type } from 'typebox';
import { PlatformError } from '../../core/errors.js';

export const FunctionNameParams = Type.Object({ name: Type.String({ maxLength: 200 }) });

export const DeployBody = Type.Object(
  {
    code: Type.String({ description: 'The function bundle: a zip file, base64-encoded.', contentEncoding: 'base64' }),
    handler: Type.Optional(Type.String({ description: 'file.export, default "index.handler"' })),
    runtime: Type.Optional(Type.String({ description: 'nodejs20 (default) or nodejs24' })),
    env: Type.Optional(Type.Record(Type.String(), Type.String())),
    timeoutSeconds: Type.Optional(Type.Integer()),
    memoryMB: Type.Optional(Type.Integer()),
    maxInstances: Type.Optional(Type.Integer()),
    minInstances: Type.Optional(Type.Integer()),
    idleSeconds: Type.Optional(Type.Integer()),
    network: Type.Optional(Type.Boolean({ description: 'let the function reach the network (default false)' })),
    allowNet: Type.Optional(
      Type.Array(Type.String({ maxLength: 18 }), {
        maxItems: 32,
        description:
          'IPv4 CIDRs (like "10.1.2.0/24") a networked function may reach although private, loopback and ' +
          'link-local ranges are denied by default; needs network: true',
      }),
    ),
    secrets: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description:
          'environment variables whose values are secrets: {"VARIABLE": "SECRET_NAME"}; each secret must exist ' +
          '(PUT /v1/secrets/{name}); sandboxes get its value when they start',
      }),
    ),
  },
  { additionalProperties: false },
);

export const SetCurrentBody = Type.Object({ version: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

/**
 * A count in a query string. Query strings arrive as text and no type is coerced (a body's `"256"` is not a
 * number either): the text itself must be a plain decimal number; `queryCount` reads it and checks the range.
 */
const QueryCount = Type.String({ pattern: '^[0-9]{1,7}$', description: 'a whole number' });

/** The value of a `QueryCount`: its range checked, a 400 naming the field otherwise. */
export function queryCount(value: string | undefined, field: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const count = Number(value);
  if (count < 1 || count > max) {
    throw new PlatformError('BAD_REQUEST', `querystring/${field} must be from 1 to ${max}, got ${value}`);
  }
  return count;
}

export const LimitQuery = Type.Object({ limit: Type.Optional(QueryCount) });

export const LogsQuery = Type.Object({
  follow: Type.Optional(
    Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')]),
  ),
  limit: Type.Optional(QueryCount),
});

export const InvocationParams = Type.Object({ id: Type.String({ maxLength: 100 }) });

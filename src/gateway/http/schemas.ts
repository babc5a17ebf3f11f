// The HTTP API's request and response schemas (TypeBox). Fastify validates requests with them, serialises answers
// with them (a field a response schema does not list is not sent) and @fastify/swagger builds `/v1/openapi.json`
// from them, so the description cannot drift from what the API does.
import { Type } from 'typebox';
import type { Static, TSchema } from 'typebox';
import { PlatformError, errorCodes } from '../../core/errors.js';
import type { FunctionConfig } from '../../core/function-config.js';
import type { InvocationRecord } from '../../core/types.js';

export const FunctionNameParams = Type.Object({ name: Type.String({ maxLength: 200 }) });

function destinationDescription(which: string): string {
  return (
    `where the records of asynchronous invocations that ${which} go: a function name, queue:NAME, or an ` +
    'http(s) URL POSTed the record'
  );
}

/** A deploy setting: left out, the current version's value is kept; `null` restores the default. */
function setting<T extends TSchema>(schema: T) {
  return Type.Optional(Type.Union([schema, Type.Null()]));
}

export const DeployBody = Type.Object(
  {
    code: Type.String({ description: 'The function bundle: a zip file, base64-encoded.', contentEncoding: 'base64' }),
    handler: setting(Type.String({ description: 'file.export, default "index.handler"' })),
    runtime: setting(Type.String({ description: 'nodejs20 (default) or nodejs24' })),
    env: setting(
      Type.Record(Type.String(), Type.String(), {
        description: 'the whole environment: replaces the current one ({} or null empties it)',
      }),
    ),
    timeoutSeconds: setting(Type.Integer()),
    memoryMB: setting(Type.Integer()),
    maxInstances: setting(Type.Integer()),
    minInstances: setting(Type.Integer()),
    idleSeconds: setting(Type.Integer()),
    network: setting(Type.Boolean({ description: 'let the function reach the network (default false)' })),
    allowNet: setting(
      Type.Array(Type.String({ maxLength: 18 }), {
        maxItems: 32,
        description:
          'IPv4 CIDRs (like "10.1.2.0/24") a networked function may reach although private, loopback and ' +
          'link-local ranges are denied by default; needs network: true. Turning the network off without ' +
          'naming allowNet drops the current list',
      }),
    ),
    secrets: setting(
      Type.Record(Type.String(), Type.String(), {
        description:
          'environment variables whose values are secrets: {"VARIABLE": "SECRET_NAME"}; each secret must exist ' +
          '(PUT /v1/secrets/{name}); sandboxes get its value when they start. Replaces the current ones',
      }),
    ),
    retries: setting(
      Type.Integer({ description: 'asynchronous invocations: retries of a function error, 0 to 2 (default 2)' }),
    ),
    maxEventAgeSeconds: setting(
      Type.Integer({
        description:
          'asynchronous invocations: an event older than this is not run or retried any more, 60 to 21600 ' +
          '(default 21600, 6 hours)',
      }),
    ),
    retryDelaySeconds: setting(
      Type.Integer({
        description:
          'asynchronous invocations: the delay before the first retry of a function error, doubled for the next, ' +
          'with jitter; 1 to 3600 (default 60)',
      }),
    ),
    asyncConcurrency: setting(
      Type.Integer({ description: 'asynchronous invocations one dispatcher runs at once, 1 to 1000 (default 10)' }),
    ),
    onSuccess: setting(Type.String({ description: destinationDescription('succeeded') })),
    onFailure: setting(
      Type.String({
        description: `${destinationDescription('failed for good')}; without one they go to the dead letters`,
      }),
    ),
  },
  {
    additionalProperties: false,
    description:
      "A setting left out keeps the current version's value (a new function gets the default); null restores " +
      'the default.',
  },
);

/** `PUT /v1/functions/{name}?promote=false`: create the version without moving traffic to it. */
export const DeployQuery = Type.Object(
  {
    promote: Type.Optional(
      Type.Union([Type.Literal('true'), Type.Literal('false'), Type.Literal('1'), Type.Literal('0')], {
        description:
          'false: create the version without traffic (an alias or a rollout moves traffic to it later); a new ' +
          "function's first version gets the traffic all the same. Default true",
      }),
    ),
  },
  { additionalProperties: false },
);

/** `POST /v1/functions/{name}/invoke?qualifier=Q`. */
export const InvokeQuery = Type.Object(
  {
    qualifier: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 100,
        description:
          'A version number (digits; leading zeros are ignored: 01 is version 1) or an alias name; default live',
        examples: ['3', 'beta'],
      }),
    ),
    async: Type.Optional(
      Type.Union([Type.Literal('1'), Type.Literal('true'), Type.Literal('0'), Type.Literal('false')], {
        description:
          '1: invoke asynchronously (as the header x-savassan-invocation-type: event does): 202 with the ' +
          'invocation id once the event is queued durably',
      }),
    ),
  },
  { additionalProperties: false },
);

export const SetCurrentBody = Type.Object({ version: Type.Integer({ minimum: 1 }) }, { additionalProperties: false });

/** The query string of a route that takes no parameters: any parameter is a 400 naming it. */
export const NoQuery = Type.Object({}, { additionalProperties: false });

/**
 * A count in a query string. Query strings arrive as text and no type is coerced (a body's `"256"` is not a
 * number either): the text itself must be a plain decimal number; `queryCount` reads it and checks the range.
 */
export const QueryCount = Type.String({ pattern: '^[0-9]{1,7}$', description: 'a whole number' });

/** The value of a `QueryCount`: its range checked, a 400 naming the field otherwise. */
export function queryCount(value: string | undefined, field: string, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const count = Number(value);
  if (count < 1 || count > max) {
    throw new PlatformError('BAD_REQUEST', `querystring/${field} must be from 1 to ${max}, got ${value}`);
  }
  return count;
}

export const LimitQuery = Type.Object(
  { limit: Type.Optional(QueryCount) },
  { additionalProperties: false, description: 'limit: how many, newest first (default 50, at most 1000)' },
);

/** An invocation id as the platform makes them (a UUID). */
export const invocationIdPattern = '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$';

export const LogsQuery = Type.Object(
  {
    follow: Type.Optional(
      Type.Union([Type.Literal('1'), Type.Literal('0'), Type.Literal('true'), Type.Literal('false')]),
    ),
    limit: Type.Optional(QueryCount),
    invocationId: Type.Optional(
      Type.String({ pattern: invocationIdPattern, description: "With follow=1: only this invocation's lines" }),
    ),
  },
  { additionalProperties: false },
);

export const InvocationParams = Type.Object({ id: Type.String({ maxLength: 100 }) });

// ---- Responses ----

/** The `$id` of the shared error schema (`ErrorBody`), registered once with `app.addSchema`. */
export const errorSchemaId = 'Error';

/** Every error answer: `{ "error": { "code", "message", ... } }`. */
export const ErrorBody = Type.Object(
  {
    error: Type.Object(
      {
        code: Type.String({ enum: Object.keys(errorCodes), description: 'One of the codes of the catalogue' }),
        message: Type.String(),
        retryAfterSeconds: Type.Optional(
          Type.Integer({ description: '429 and some 503: when to retry (also the Retry-After header)' }),
        ),
        errorType: Type.Optional(Type.String({ description: "A function's failure: the error's name" })),
        stack: Type.Optional(Type.String({ description: "A function's failure: its stack, trimmed" })),
        invocationId: Type.Optional(Type.String({ description: 'A function failure: the invocation it ended' })),
        parameters: Type.Optional(
          Type.Array(Type.String(), { description: 'An unknown query parameter: the parameters not taken' }),
        ),
      },
      { additionalProperties: true },
    ),
  },
  { $id: errorSchemaId, description: 'An error' },
);

/** A response of the shared error schema, described for one route and status. */
export function errorResponse(description: string): TSchema {
  return Type.Ref(errorSchemaId, { description });
}

/** The `$id` of the error schema of the Flyte-shaped API under `/api/v1` (`FlyteErrorBody`). */
export const flyteErrorSchemaId = 'FlyteError';

/** Every error answer under `/api/v1`: `{ "code", "message", "kind" }`, as FlyteAdmin's clients read errors. */
export const FlyteErrorBody = Type.Object(
  {
    code: Type.String({ enum: Object.keys(errorCodes), description: 'One of the codes of the catalogue' }),
    message: Type.String(),
    kind: Type.Union([Type.Literal('USER'), Type.Literal('SYSTEM')], {
      description: "USER: the request's fault (4xx); SYSTEM: the platform's (5xx)",
    }),
  },
  { $id: flyteErrorSchemaId, description: 'An error of the Flyte-shaped API' },
);

/** A response of the Flyte-shaped API's error schema, described for one route and status. */
export function flyteErrorResponse(description: string): TSchema {
  return Type.Ref(flyteErrorSchemaId, { description });
}

export const FunctionConfigView = Type.Object({
  handler: Type.String(),
  runtime: Type.String(),
  env: Type.Record(Type.String(), Type.String(), {
    description: 'Plain environment variables: their values are shown to every API user (use secrets for secrets)',
  }),
  secrets: Type.Record(Type.String(), Type.String(), {
    description: 'Variables taken from stored secrets, by secret name; the values are never shown',
  }),
  timeoutSeconds: Type.Integer(),
  memoryMB: Type.Integer(),
  maxInstances: Type.Integer(),
  minInstances: Type.Integer(),
  idleSeconds: Type.Integer(),
  network: Type.Boolean(),
  allowNet: Type.Array(Type.String()),
  retries: Type.Integer(),
  maxEventAgeSeconds: Type.Integer(),
  retryDelaySeconds: Type.Integer(),
  asyncConcurrency: Type.Integer(),
  onSuccess: Type.Union([Type.String(), Type.Null()]),
  onFailure: Type.Union([Type.String(), Type.Null()]),
});

export const FunctionView = Type.Object(
  {
    name: Type.String(),
    currentVersion: Type.Integer(),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
    codeSha256: Type.Optional(Type.String({ description: 'Of the current version' })),
    codeSizeBytes: Type.Optional(Type.Integer({ description: 'Of the current version' })),
    config: Type.Optional(FunctionConfigView),
  },
  { description: 'A function and its current version' },
);

export const VersionView = Type.Object(
  {
    version: Type.Integer(),
    current: Type.Boolean(),
    codeSha256: Type.String(),
    codeSizeBytes: Type.Integer(),
    contentHash: Type.String({ description: 'sha256 over the code hash and the config: equal hashes, same version' }),
    config: FunctionConfigView,
    createdAt: Type.String({ format: 'date-time' }),
  },
  { description: 'One immutable version of a function' },
);

export const VersionListView = Type.Object(
  {
    ...VersionView.properties,
    traffic: Type.Number({ description: "The version's share of the live alias's traffic (0 to 1)" }),
    stats: Type.Object(
      {
        invocations: Type.Integer(),
        errors: Type.Integer({
          description: 'Invocations that failed: error, timeout, crash, out of memory, init error',
        }),
        p99Ms: Type.Union([Type.Number(), Type.Null()], {
          description:
            'Of the most recent 10,000 warm invocations of the window at most; null without warm invocations',
        }),
      },
      { description: 'Over the last 5 minutes' },
    ),
  },
  { description: 'One immutable version of a function, its traffic and its recent figures' },
);

const VersionChangeView = Type.Union([
  Type.Object(
    { field: Type.String(), from: Type.Unknown(), to: Type.Unknown() },
    { description: 'A setting (or the code) that changed: its previous and new value' },
  ),
  Type.Object(
    {
      field: Type.String(),
      added: Type.Array(Type.String()),
      removed: Type.Array(Type.String()),
      changed: Type.Array(Type.String()),
    },
    { description: 'A map (env) that changed: the keys added, removed and changed, never the values' },
  ),
]);

export const DeployAnswer = Type.Object({
  created: Type.Boolean({ description: 'False when the same code and config were deployed before' }),
  function: FunctionView,
  version: VersionView,
  changes: Type.Array(VersionChangeView, {
    description: 'What differs from the version that was current; empty for a new function or an unchanged deploy',
  }),
});

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

export const InvocationView = Type.Object(
  {
    id: Type.String(),
    functionName: Type.String(),
    version: Type.Integer(),
    start: Type.Enum(['cold', 'warm'], { type: 'string' }),
    status: Type.Enum(['success', 'error', 'timeout', 'crash', 'oom', 'init-error', 'throttled'], { type: 'string' }),
    initMs: Nullable(Type.Number({ description: 'Init duration of a cold start' })),
    durationMs: Type.Number(),
    peakMemoryBytes: Nullable(Type.Number()),
    error: Nullable(
      Type.Object({
        name: Type.String(),
        code: Type.Optional(Type.String()),
        message: Type.String(),
        stack: Type.Optional(Type.String()),
      }),
    ),
    logKey: Nullable(Type.String()),
    nodeId: Nullable(Type.String()),
    instanceId: Nullable(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    traceId: Nullable(
      Type.String({ description: 'The trace that recorded the invocation, when tracing is on and sampled it' }),
    ),
    memoryMB: Nullable(Type.Integer({ description: "The version's memory limit; null when the version is gone" })),
    report: Type.String({ description: 'The REPORT line: duration, init, memory used of the limit, start' }),
  },
  { description: 'The record of one invocation' },
);

const EnforcementView = Type.Object({
  mechanism: Type.String(),
  enforced: Type.Boolean(),
  note: Type.String(),
});

export const NodeView = Type.Object({
  nodeId: Type.String(),
  status: Type.Enum(['ready', 'draining', 'unverified'], {
    type: 'string',
    description:
      '`unverified`: listed in etcd without proving it holds the cluster token (cluster mode), so never used',
  }),
  sandboxRuntime: Type.String(),
  isolating: Type.Boolean(),
  sandboxes: Type.Integer(),
  capacity: Type.Optional(Type.Integer({ description: 'Sandboxes the node takes at once (cluster mode)' })),
  agentAddress: Type.Optional(Type.String({ description: 'Where its Agent listens (cluster mode)' })),
  routed: Type.Optional(
    Type.Boolean({
      description:
        "Whether the leader's routing table, as last pushed to this gateway, includes the node (cluster mode)",
    }),
  ),
  enforcement: Type.Optional(
    Type.Record(Type.String(), EnforcementView, {
      description:
        'What the sandbox runtime enforces on this node, mechanism by mechanism (in cluster mode, as the node reports it)',
    }),
  ),
  stemCells: Type.Optional(
    Type.Object({ idle: Type.Integer(), starting: Type.Integer(), memoryBytes: Nullable(Type.Number()) }),
  ),
  budget: Type.Optional(
    Type.Object(
      { memoryMB: Type.Number(), pids: Type.Integer(), usedMemoryMB: Type.Number(), usedPids: Type.Integer() },
      {
        description:
          "The node's budgets for all its sandboxes and what they hold (the sums of their memory and pids " +
          'limits); a creation past either is refused with 429 (embedded mode)',
      },
    ),
  ),
  warnings: Type.Array(Type.String()),
});

/** A node of the cluster as `GET /v1/nodes` shows it. */
export type NodeView = Static<typeof NodeView>;

export const ApiIndex = Type.Object(
  {
    name: Type.Literal('savassan'),
    api: Type.String({ description: 'The OpenAPI description of this API' }),
    health: Type.String({ description: 'Liveness probe' }),
    ready: Type.String({ description: 'Readiness probe' }),
  },
  { description: 'Where things are; more links may be added' },
);

/** A text body (logs, metrics) in the OpenAPI description. */
export function textResponse(description: string, mediaType = 'text/plain'): Record<string, unknown> {
  return { description, content: { [mediaType]: { schema: Type.String() } } };
}

// The views must list every field of what they show: a field a response schema leaves out is not sent. These
// fail to compile when a field is added to the domain type and not to its view (or the other way round).
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const configViewIsComplete: Same<Static<typeof FunctionConfigView>, FunctionConfig> = true;
const invocationViewIsComplete: Same<
  Exclude<keyof Static<typeof InvocationView>, 'memoryMB' | 'report'>,
  keyof InvocationRecord
> = true;
void configViewIsComplete;
void invocationViewIsComplete;

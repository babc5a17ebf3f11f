// `/v1/schedules`: functions invoked asynchronously, with a fixed event, on a cron, rate or one-time expression. The
// control-plane leader fires them; each tick is queued once as an asynchronous invocation.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import type { MetadataStore } from '../../../core/ports/metadata-store.js';
import type { ScheduleRecord, ScheduleStore } from '../../../core/ports/schedule-store.js';
import { compileScheduleInput, scheduleLimits, scheduleOf } from '../../../core/schedule-rules.js';
import { errorResponse } from '../schemas.js';

export interface ScheduleRoutesOptions {
  schedules: ScheduleStore;
  /** Whether a schedule's function exists (404 otherwise). */
  metadata: Pick<MetadataStore, 'getFunction'>;
  /** The clock. Default `Date.now`. */
  now?: () => number;
}

const ScheduleParams = Type.Object({ name: Type.String({ maxLength: 200 }) });

const ScheduleBody = Type.Object(
  {
    name: Type.String({
      maxLength: 200,
      description: 'lowercase letters, digits and dashes, starting with a letter, at most 63 characters',
    }),
    functionName: Type.String({ maxLength: 200 }),
    cron: Type.Optional(
      Type.String({
        description: 'a 5-field cron expression, or EventBridge `cron(min hour dom month dow year)`',
        examples: ['*/5 * * * *', 'cron(0 9 ? * MON-FRI *)'],
      }),
    ),
    rate: Type.Optional(
      Type.String({ description: '`rate(N unit)` or `N unit`, down to 1 second', examples: ['rate(30 seconds)'] }),
    ),
    at: Type.Optional(
      Type.String({
        description: 'once, at a local time without offset: `at(...)` or bare',
        examples: ['at(2027-01-01T09:00)'],
      }),
    ),
    timezone: Type.Optional(
      Type.String({ description: 'the IANA zone cron and one-time expressions are read in (default UTC)' }),
    ),
    event: Type.Optional(
      Type.Unknown({ description: 'the event each tick submits, any JSON (default {}), ≤ 256 KiB' }),
    ),
    retries: Type.Optional(
      Type.Integer({
        description: `retries of a function error per event, ${scheduleLimits.retries.min}-${scheduleLimits.retries.max} (default: the function's)`,
      }),
    ),
    maxEventAgeSeconds: Type.Optional(
      Type.Integer({
        description: `how long an event may wait to run, ${scheduleLimits.maxEventAgeSeconds.min}-${scheduleLimits.maxEventAgeSeconds.max} s (default: the function's)`,
      }),
    ),
    missed: Type.Optional(
      Type.String({
        description:
          '`fire` (default): after a time without a leader, fire the latest missed tick once; `skip`: fire none',
      }),
    ),
  },
  { additionalProperties: false },
);

const ScheduleView = Type.Object(
  {
    name: Type.String(),
    functionName: Type.String(),
    expression: Type.String({ description: 'as given' }),
    timezone: Type.String(),
    event: Type.Unknown(),
    state: Type.Union([Type.Literal('active'), Type.Literal('paused')]),
    missed: Type.Union([Type.Literal('fire'), Type.Literal('skip')]),
    retries: Type.Union([Type.Integer(), Type.Null()]),
    maxEventAgeSeconds: Type.Union([Type.Integer(), Type.Null()]),
    nextFireAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()], {
      description: 'null while paused and once a one-time schedule has fired',
    }),
    lastFiredAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false, description: 'A schedule and when it fires next' },
);

function scheduleView(record: ScheduleRecord): Static<typeof ScheduleView> {
  return {
    name: record.name,
    functionName: record.functionName,
    expression: record.expression,
    timezone: record.timezone,
    event: JSON.parse(record.event) as unknown,
    state: record.state,
    missed: record.missed,
    retries: record.retries,
    maxEventAgeSeconds: record.maxEventAgeSeconds,
    nextFireAt: record.nextFireAt?.toISOString() ?? null,
    lastFiredAt: record.lastFiredAt?.toISOString() ?? null,
    createdAt: record.createdAt.toISOString(),
  };
}

function notFound(name: string): PlatformError {
  return new PlatformError('NOT_FOUND', `schedule ${name} not found`);
}

/**
 * The schedule routes, for `app.register`.
 *
 * @example
 * // POST /v1/schedules {"name": "nightly", "functionName": "report", "cron": "0 3 * * *", "timezone": "Asia/Seoul"}
 * //   → 201 {"name": "nightly", "expression": "0 3 * * *", "state": "active", "nextFireAt": "…T18:00:00.000Z", …}
 * // GET /v1/schedules → {"schedules": [{"name": "nightly", "nextFireAt": …}]}
 * // POST /v1/schedules/nightly/pause → 200 {"state": "paused", "nextFireAt": null, …}
 * // DELETE /v1/schedules/nightly → 204
 * await app.register(scheduleRoutes({ schedules, metadata }));
 */
export function scheduleRoutes(options: ScheduleRoutesOptions): FastifyPluginAsync {
  const { schedules, metadata } = options;
  const now = options.now ?? Date.now;
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post(
      '/v1/schedules',
      {
        schema: {
          summary:
            'Create a schedule: the function is invoked asynchronously with `event` at each tick of exactly one of ' +
            '`cron`, `rate` or `at`',
          body: ScheduleBody,
          response: {
            201: { ...ScheduleView, description: 'Created' },
            400: errorResponse(
              'BAD_REQUEST: no or two expressions, an invalid cron, rate, time or time zone, a time that has passed, ' +
                'retry settings out of range, a bad name; INVALID_NAME: a bad function name',
            ),
            404: errorResponse('NOT_FOUND: no function of that name'),
            409: errorResponse('CONFLICT: a schedule of that name exists'),
            429: errorResponse('TOO_MANY_REQUESTS: the platform holds 1000 schedules already'),
            413: errorResponse('PAYLOAD_TOO_LARGE: the event is over 256 KiB as JSON'),
          },
        },
      },
      async (request, reply) => {
        const input = compileScheduleInput(request.body, new Date(now()));
        if ((await metadata.getFunction(input.functionName)) === null) {
          throw new PlatformError('NOT_FOUND', `function ${input.functionName} not found`);
        }
        return reply.code(201).send(scheduleView(await schedules.create(input)));
      },
    );

    app.get(
      '/v1/schedules',
      {
        schema: {
          summary: 'Every schedule, by name, each with its next fire time',
          response: { 200: Type.Object({ schedules: Type.Array(ScheduleView) }, { additionalProperties: false }) },
        },
      },
      async () => ({ schedules: (await schedules.list()).map(scheduleView) }),
    );

    app.get(
      '/v1/schedules/:name',
      {
        schema: {
          summary: 'Get a schedule',
          params: ScheduleParams,
          response: { 200: ScheduleView, 404: errorResponse('NOT_FOUND: no schedule of that name') },
        },
      },
      async (request) => {
        const record = await schedules.get(request.params.name);
        if (record === null) throw notFound(request.params.name);
        return scheduleView(record);
      },
    );

    app.delete(
      '/v1/schedules/:name',
      {
        schema: {
          summary: 'Delete a schedule; events it queued already still run',
          params: ScheduleParams,
          response: {
            204: Type.Null({ description: 'Deleted' }),
            404: errorResponse('NOT_FOUND: no schedule of that name'),
          },
        },
      },
      async (request, reply) => {
        if (!(await schedules.delete(request.params.name))) throw notFound(request.params.name);
        return reply.code(204).send(null);
      },
    );

    /** The schedule in `state` (as it is, if it is there already), with the next fire time `next` gives. */
    const moveTo = async (
      name: string,
      state: 'active' | 'paused',
      next: (record: ScheduleRecord) => Date | null,
    ): Promise<ScheduleRecord> => {
      const record = await schedules.get(name);
      if (record === null) throw notFound(name);
      if (record.state === state) return record;
      const moved = await schedules.setState(name, state, next(record));
      if (moved === null) throw notFound(name);
      return moved;
    };

    app.post(
      '/v1/schedules/:name/pause',
      {
        schema: {
          summary: 'Pause a schedule: no tick fires until it is resumed (no next fire time meanwhile)',
          params: ScheduleParams,
          response: { 200: ScheduleView, 404: errorResponse('NOT_FOUND: no schedule of that name') },
        },
      },
      async (request) => scheduleView(await moveTo(request.params.name, 'paused', () => null)),
    );

    app.post(
      '/v1/schedules/:name/resume',
      {
        schema: {
          summary:
            'Resume a paused schedule from its next tick after now (ticks while it was paused never fire; a ' +
            'one-time schedule whose time passed meanwhile has no next fire time)',
          params: ScheduleParams,
          response: { 200: ScheduleView, 404: errorResponse('NOT_FOUND: no schedule of that name') },
        },
      },
      async (request) =>
        scheduleView(await moveTo(request.params.name, 'active', (record) => scheduleOf(record).next(new Date(now())))),
    );
    return Promise.resolve();
  };
}

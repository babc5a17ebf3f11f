// Asynchronous invocations as the API shows them: one by id (`GET /v1/invocations/{id}` answers with this view when
// the id is an asynchronous invocation's), and a function's dead letters, which can be redriven or purged.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import type { MetadataStore } from '../../../core/ports/metadata-store.js';
import type { InvocationQueue, QueuedInvocation } from '../../../core/ports/invocation-queue.js';
import { decodeAsyncEvent } from '../../../events/async-event.js';
import { errorResponse, LimitQuery, queryCount } from '../schemas.js';

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

const AttemptView = Type.Object({
  startedAt: Type.String({ format: 'date-time' }),
  status: Type.String({
    description:
      'success, error, timeout, crash, oom, init-error (the function ran), throttled (no capacity: retried with ' +
      'backoff) or platform_error (the platform could not run it)',
  }),
  durationMs: Type.Number(),
  error: Nullable(Type.String()),
  invocationId: Nullable(
    Type.String({ description: 'The record of the run (GET /v1/invocations/{id}/logs); null when it did not run' }),
  ),
});

export const AsyncInvocationView = Type.Object(
  {
    invocationId: Type.String(),
    invocationType: Type.Literal('event'),
    functionName: Type.String(),
    state: Type.Enum(['queued', 'running', 'succeeded', 'failed', 'dead_lettered'], {
      type: 'string',
      description:
        'failed: it failed for good and its record went to the on-failure destination; dead_lettered: it failed ' +
        'for good and waits in the dead letters (redrive it)',
    }),
    qualifier: Nullable(Type.String()),
    source: Nullable(Type.String({ description: 'What queued it: api, schedule:NAME, destination:FUNCTION' })),
    event: Type.Unknown({ description: 'The event' }),
    enqueuedAt: Type.String({ format: 'date-time' }),
    nextAttemptAt: Nullable(
      Type.String({ format: 'date-time', description: 'While queued: when it is due; while running: its timeout' }),
    ),
    deliveryCount: Type.Integer(),
    attempts: Type.Array(AttemptView),
    idempotencyKey: Nullable(Type.String()),
    deadLetterReason: Nullable(Type.String()),
    deadLetteredAt: Nullable(Type.String({ format: 'date-time' })),
  },
  { description: 'An asynchronous invocation, with every attempt' },
);

export function asyncInvocationView(queued: QueuedInvocation): Static<typeof AsyncInvocationView> {
  const event = decodeAsyncEvent(queued.payload);
  return {
    invocationId: queued.id,
    invocationType: 'event',
    functionName: queued.functionName,
    state: queued.state,
    qualifier: event.qualifier ?? null,
    source: event.source ?? 'api',
    event: JSON.parse(event.eventJson) as unknown,
    enqueuedAt: queued.enqueuedAt.toISOString(),
    nextAttemptAt: queued.dueAt?.toISOString() ?? null,
    deliveryCount: queued.deliveryCount,
    attempts: queued.attempts.map((a) => ({
      startedAt: a.startedAt.toISOString(),
      status: a.status,
      durationMs: a.durationMs,
      error: a.error,
      invocationId: a.invocationId,
    })),
    idempotencyKey: queued.idempotencyKey,
    deadLetterReason: queued.deadLetterReason,
    deadLetteredAt: queued.deadLetteredAt?.toISOString() ?? null,
  };
}

const FunctionParams = Type.Object({ name: Type.String({ maxLength: 200 }) });
/** Dead letters one answer lists at most: each holds its event (up to 1 MiB). */
export const deadLettersPerAnswer = 100;
const DeadLetterParams = Type.Object({ name: Type.String({ maxLength: 200 }), id: Type.String({ maxLength: 100 }) });

/** `/v1/functions/{name}/dead-letters`: asynchronous invocations that failed for good with no on-failure destination. */
export function deadLetterRoutes(
  queue: InvocationQueue,
  metadata: MetadataStore,
  wake: (functionName: string) => void,
): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
    const requireFunction = async (name: string): Promise<void> => {
      if ((await metadata.getFunction(name)) === null) {
        throw new PlatformError('NOT_FOUND', `function ${name} not found`);
      }
    };
    const deadLetter = async (name: string, id: string): Promise<QueuedInvocation> => {
      const queued = await queue.get(id);
      if (queued === null || queued.functionName !== name || queued.state !== 'dead_lettered') {
        throw new PlatformError('NOT_FOUND', `function ${name} has no dead letter ${id}`);
      }
      return queued;
    };

    app.get(
      '/v1/functions/:name/dead-letters',
      {
        schema: {
          summary: 'Dead letters of a function, most recently dead-lettered first; at most 100 (limit, default 100)',
          params: FunctionParams,
          querystring: LimitQuery,
          response: {
            200: Type.Object({ deadLetters: Type.Array(AsyncInvocationView) }),
            400: errorResponse('BAD_REQUEST: a limit out of range'),
            404: errorResponse('NOT_FOUND: no function of that name'),
          },
        },
      },
      async (request) => {
        const limit = queryCount(request.query.limit, 'limit', deadLettersPerAnswer, deadLettersPerAnswer);
        await requireFunction(request.params.name);
        const letters = await queue.listDeadLetters(request.params.name, limit);
        return { deadLetters: letters.map(asyncInvocationView) };
      },
    );

    app.get(
      '/v1/functions/:name/dead-letters/:id',
      {
        schema: {
          summary: 'One dead letter, with its event and every attempt',
          params: DeadLetterParams,
          response: { 200: AsyncInvocationView, 404: errorResponse('NOT_FOUND: no such function or dead letter') },
        },
      },
      async (request) => asyncInvocationView(await deadLetter(request.params.name, request.params.id)),
    );

    app.post(
      '/v1/functions/:name/dead-letters/:id/redrive',
      {
        schema: {
          summary: 'Queue a dead letter again, due now (its attempts are kept; its retries start again)',
          params: DeadLetterParams,
          response: { 200: AsyncInvocationView, 404: errorResponse('NOT_FOUND: no such function or dead letter') },
        },
      },
      async (request) => {
        const { name, id } = request.params;
        await requireFunction(name);
        if (!(await queue.redrive(name, id))) {
          throw new PlatformError('NOT_FOUND', `function ${name} has no dead letter ${id}`);
        }
        wake(name);
        const queued = await queue.get(id);
        if (queued === null) throw new PlatformError('NOT_FOUND', `invocation ${id} not found`);
        return asyncInvocationView(queued);
      },
    );

    app.delete(
      '/v1/functions/:name/dead-letters',
      {
        schema: {
          summary: "Delete a function's dead letters",
          params: FunctionParams,
          response: {
            200: Type.Object({ purged: Type.Integer() }),
            404: errorResponse('NOT_FOUND: no function of that name'),
          },
        },
      },
      async (request) => {
        await requireFunction(request.params.name);
        return { purged: await queue.purgeDeadLetters(request.params.name) };
      },
    );
    return Promise.resolve();
  };
}

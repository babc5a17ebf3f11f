// `/v1/triggers`: queue triggers, each running a function with batches of a queue's messages.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import { triggerSettingLimits } from '../../../core/message-queue-rules.js';
import type { QueueTrigger, TriggerStore } from '../../../core/ports/trigger-store.js';
import { errorResponse } from '../schemas.js';

const limits = triggerSettingLimits;

function setting(name: keyof typeof triggerSettingLimits, description: string) {
  const { min, max } = limits[name];
  return Type.Optional(
    Type.Integer({ description: `${description} (${min} to ${max}, default ${limits[name].default})` }),
  );
}

const TriggerBody = Type.Object(
  {
    functionName: Type.String({ maxLength: 200, description: 'the function to run' }),
    queue: Type.String({ maxLength: 200, description: 'the queue whose messages it runs with' }),
    batchSize: setting('batchSize', 'messages per invocation at most'),
    windowSeconds: setting('windowSeconds', 'seconds a batch gathers messages before it runs short of batchSize'),
    maxConcurrency: setting('maxConcurrency', 'batches of this trigger running at once, per gateway'),
    maxReceives: setting(
      'maxReceives',
      'receives a message may have: the next moves it to the dead-letter queue, or drops it without one',
    ),
    deadLetterQueue: Type.Optional(
      Type.Union([Type.String({ maxLength: 200 }), Type.Null()], {
        description: 'where messages received more than maxReceives times go; null or left out: they are dropped',
      }),
    ),
  },
  {
    additionalProperties: false,
    examples: [{ functionName: 'billing', queue: 'orders', batchSize: 10, deadLetterQueue: 'orders-dlq' }],
  },
);

const TriggerView = Type.Object(
  {
    id: Type.String(),
    functionName: Type.String(),
    queue: Type.String(),
    batchSize: Type.Integer(),
    windowSeconds: Type.Integer(),
    maxConcurrency: Type.Integer(),
    maxReceives: Type.Integer(),
    deadLetterQueue: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);

function triggerView(trigger: QueueTrigger): Static<typeof TriggerView> {
  return { ...trigger, createdAt: trigger.createdAt.toISOString() };
}

/**
 * The trigger routes, for `app.register`.
 *
 * @example
 * // POST /v1/triggers {"functionName": "billing", "queue": "orders", "deadLetterQueue": "orders-dlq"}
 * //   → 201 {"id": "3f…", "functionName": "billing", "queue": "orders", "batchSize": 10, "windowSeconds": 1, …}
 * // GET /v1/triggers → {"triggers": [ … ]}
 * // DELETE /v1/triggers/3f… → 204
 * await app.register(triggerRoutes(triggers));
 */
export function triggerRoutes(triggers: TriggerStore): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.post(
      '/v1/triggers',
      {
        schema: {
          summary:
            "Run a function with batches of a queue's messages (an SQS-shaped event). Picked up within a second or two",
          body: TriggerBody,
          response: {
            201: TriggerView,
            400: errorResponse(
              'BAD_REQUEST: a setting out of range, a bad queue name, or a dead-letter queue that is the queue itself',
            ),
            404: errorResponse('NOT_FOUND: the function, queue or dead-letter queue (named) does not exist'),
            409: errorResponse('CONFLICT: the function has a trigger on the queue already'),
          },
        },
      },
      async (request, reply) => reply.code(201).send(triggerView(await triggers.create(request.body))),
    );

    app.get(
      '/v1/triggers',
      {
        schema: {
          summary: 'Every trigger, oldest first',
          response: { 200: Type.Object({ triggers: Type.Array(TriggerView) }, { additionalProperties: false }) },
        },
      },
      async () => ({ triggers: (await triggers.list()).map(triggerView) }),
    );

    app.delete(
      '/v1/triggers/:id',
      {
        schema: {
          summary: 'Remove a trigger; its batches in flight finish',
          params: Type.Object({ id: Type.String({ maxLength: 200 }) }),
          response: {
            204: Type.Null({ description: 'Removed' }),
            404: errorResponse('NOT_FOUND: no trigger with that id'),
          },
        },
      },
      async (request, reply) => {
        if (!(await triggers.delete(request.params.id))) {
          throw new PlatformError('NOT_FOUND', `trigger ${request.params.id} does not exist`);
        }
        return reply.code(204).send(null);
      },
    );
    return Promise.resolve();
  };
}

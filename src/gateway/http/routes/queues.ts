// `/v1/queues`: named message queues. Producers send messages to a queue created beforehand; a trigger
// (`/v1/triggers`) runs a function with batches of them.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import { queueNotFound } from '../../../core/message-queue-rules.js';
import type { MessageQueues, MessageQueueStats } from '../../../core/ports/message-queue.js';
import { maxMessageBodyBytes, maxMessagesPerCall } from '../../../core/ports/message-queue.js';
import { errorResponse } from '../schemas.js';

/** A full batch of the largest bodies, JSON-escaped, fits. */
const maxSendBodyBytes = 64 * 1024 * 1024;

const QueueParams = Type.Object({
  queue: Type.String({
    maxLength: 200,
    description: 'the queue name: 1 to 80 letters, digits, dashes and underscores',
  }),
});

const MessageBody = Type.String({
  description: `the message: any text up to ${maxMessageBodyBytes} bytes (256 KiB) of UTF-8`,
});

const SendBody = Type.Object(
  {
    body: Type.Optional(MessageBody),
    messages: Type.Optional(
      Type.Array(Type.Object({ body: MessageBody }, { additionalProperties: false }), {
        minItems: 1,
        maxItems: maxMessagesPerCall,
        description: `1 to ${maxMessagesPerCall} messages, sent all or none`,
      }),
    ),
  },
  {
    additionalProperties: false,
    description: 'One message (`body`) or several (`messages`)',
    examples: [{ body: '{"order":42}' }, { messages: [{ body: 'first' }, { body: 'second' }] }],
  },
);

const QueueView = Type.Object(
  {
    name: Type.String(),
    depth: Type.Integer({ description: 'Messages waiting to be received' }),
    inFlight: Type.Integer({ description: 'Messages received and not yet acknowledged, released or timed out' }),
    oldestAgeSeconds: Type.Union([Type.Integer(), Type.Null()], {
      description: 'Age of the oldest message in the queue (waiting or in flight); null when it is empty',
    }),
  },
  { additionalProperties: false },
);

const QueueCreated = Type.Object(
  { name: Type.String(), createdAt: Type.String({ format: 'date-time' }) },
  { additionalProperties: false },
);

function queueView(stats: MessageQueueStats, now: number): Static<typeof QueueView> {
  return {
    name: stats.name,
    depth: stats.depth,
    inFlight: stats.inFlight,
    oldestAgeSeconds:
      stats.oldestSentAt === null ? null : Math.max(0, Math.floor((now - stats.oldestSentAt.getTime()) / 1000)),
  };
}

/**
 * The queue routes, for `app.register`.
 *
 * @example
 * // PUT /v1/queues/orders → 201 {"name": "orders", "createdAt": "…"} (200 when it existed)
 * // POST /v1/queues/orders/messages {"body": "{\"order\":42}"} → 201 {"messageIds": ["0190…"]}
 * // POST /v1/queues/orders/messages {"messages": [{"body": "a"}, {"body": "b"}]} → 201 {"messageIds": [ …2 ]}
 * // GET /v1/queues/orders → {"name": "orders", "depth": 3, "inFlight": 0, "oldestAgeSeconds": 12}
 * // DELETE /v1/queues/orders/messages → {"purged": 3}
 * await app.register(queueRoutes(queues));
 */
export function queueRoutes(queues: MessageQueues): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.put(
      '/v1/queues/:queue',
      {
        schema: {
          summary: 'Create a queue (idempotent)',
          params: QueueParams,
          response: {
            200: { ...QueueCreated, description: 'The queue existed already' },
            201: { ...QueueCreated, description: 'The queue was created' },
            400: errorResponse('BAD_REQUEST: not a queue name'),
          },
        },
      },
      async (request, reply) => {
        const { queue, created } = await queues.createQueue(request.params.queue);
        return reply.code(created ? 201 : 200).send({ name: queue.name, createdAt: queue.createdAt.toISOString() });
      },
    );

    app.get(
      '/v1/queues',
      {
        schema: {
          summary: 'Every queue with its figures, by name',
          response: { 200: Type.Object({ queues: Type.Array(QueueView) }, { additionalProperties: false }) },
        },
      },
      async () => {
        const stats = await queues.listStats();
        const now = Date.now();
        return { queues: stats.map((entry) => queueView(entry, now)) };
      },
    );

    app.get(
      '/v1/queues/:queue',
      {
        schema: {
          summary: "A queue's figures: messages waiting, in flight, and the age of the oldest",
          params: QueueParams,
          response: {
            200: QueueView,
            400: errorResponse('BAD_REQUEST: not a queue name'),
            404: errorResponse('NOT_FOUND: no queue of that name'),
          },
        },
      },
      async (request) => queueView(await queues.stats(request.params.queue), Date.now()),
    );

    app.post(
      '/v1/queues/:queue/messages',
      {
        bodyLimit: maxSendBodyBytes,
        schema: {
          summary: `Send one message or up to ${maxMessagesPerCall}, all or none`,
          params: QueueParams,
          body: SendBody,
          response: {
            201: Type.Object(
              { messageIds: Type.Array(Type.String(), { description: 'The ids of the messages, in the order given' }) },
              { additionalProperties: false },
            ),
            400: errorResponse(
              `BAD_REQUEST: neither or both of body and messages, more than ${maxMessagesPerCall} messages, a body ` +
                'that is not a string or holds a character a message may not (the message index named). Nothing was sent',
            ),
            404: errorResponse('NOT_FOUND: no queue of that name (queues are created with PUT /v1/queues/{queue})'),
            413: errorResponse(
              `PAYLOAD_TOO_LARGE: a body over ${maxMessageBodyBytes} bytes (the message index named). Nothing was sent`,
            ),
          },
        },
      },
      async (request, reply) => {
        const { body, messages } = request.body;
        if ((body === undefined) === (messages === undefined)) {
          throw new PlatformError('BAD_REQUEST', 'send either body (one message) or messages (several), not both');
        }
        const bodies = body !== undefined ? [body] : (messages ?? []).map((message) => message.body);
        const messageIds = await queues.send(request.params.queue, bodies);
        return reply.code(201).send({ messageIds });
      },
    );

    app.delete(
      '/v1/queues/:queue/messages',
      {
        schema: {
          summary: 'Purge a queue: delete every message, waiting or in flight',
          params: QueueParams,
          response: {
            200: Type.Object(
              { purged: Type.Integer({ description: 'How many messages were deleted' }) },
              { additionalProperties: false },
            ),
            400: errorResponse('BAD_REQUEST: not a queue name'),
            404: errorResponse('NOT_FOUND: no queue of that name'),
          },
        },
      },
      async (request) => ({ purged: await queues.purge(request.params.queue) }),
    );

    app.delete(
      '/v1/queues/:queue',
      {
        schema: {
          summary: 'Delete a queue and its messages',
          params: QueueParams,
          response: {
            204: Type.Null({ description: 'Deleted' }),
            404: errorResponse('NOT_FOUND: no queue of that name'),
            409: errorResponse('CONFLICT: a trigger reads from the queue or dead-letters into it (remove it first)'),
          },
        },
      },
      async (request, reply) => {
        if (!(await queues.deleteQueue(request.params.queue))) throw queueNotFound(request.params.queue);
        return reply.code(204).send(null);
      },
    );
    return Promise.resolve();
  };
}

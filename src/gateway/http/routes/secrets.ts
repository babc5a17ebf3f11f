// `/v1/secrets`: named values a function's environment refers to (`FunctionConfig.secrets`). No route ever answers
// a value, and no error message quotes one.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import { secretLimits } from '../../../core/secrets.js';
import type { SecretRecord } from '../../../core/types.js';
import type { Secrets } from '../../secrets.js';
import { errorResponse } from '../schemas.js';

/** Largest body of `PUT /v1/secrets/{name}`: a 4 KiB value, JSON-escaped (up to 6 bytes a byte), and some room. */
const maxSecretBodyBytes = 32 * 1024;

const SecretNameParams = Type.Object({
  name: Type.String({
    maxLength: 200,
    description: `letters, digits and underscores, not starting with a digit, at most ${secretLimits.nameLength} characters`,
  }),
});

const SecretBody = Type.Object(
  {
    value: Type.String({
      minLength: 1,
      // Characters; the limit proper is in UTF-8 bytes, checked after.
      maxLength: secretLimits.valueBytes,
      description: `the value: 1 to ${secretLimits.valueBytes} bytes of UTF-8, no NUL`,
    }),
  },
  { additionalProperties: false },
);

const timestamps = {
  createdAt: Type.String({ format: 'date-time' }),
  updatedAt: Type.String({ format: 'date-time' }),
};

const SecretAnswer = Type.Object(
  { name: Type.String(), ...timestamps },
  { additionalProperties: false, description: 'A secret, never with its value' },
);

const SecretListAnswer = Type.Object(
  {
    secrets: Type.Array(
      Type.Object(
        {
          name: Type.String(),
          ...timestamps,
          usedBy: Type.Array(Type.String(), { description: 'functions whose current version uses the secret' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

function secretView(secret: SecretRecord): { name: string; createdAt: string; updatedAt: string } {
  return { name: secret.name, createdAt: secret.createdAt.toISOString(), updatedAt: secret.updatedAt.toISOString() };
}

/**
 * The secret routes, for `app.register`.
 *
 * @example
 * // PUT /v1/secrets/STRIPE_KEY {"value": "sk_live_…"} → 201 {"name": "STRIPE_KEY", "createdAt": …, "updatedAt": …}
 * // GET /v1/secrets → {"secrets": [{"name": "STRIPE_KEY", …, "usedBy": ["billing"]}]}
 * // DELETE /v1/secrets/STRIPE_KEY → 204, or 409 CONFLICT while "billing" uses it
 * await app.register(secretRoutes(secrets));
 */
export function secretRoutes(secrets: Secrets): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();
    // JSON.parse's own message quotes the text around a syntax error: here that text is a secret.
    app.removeContentTypeParser('application/json');
    app.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: maxSecretBodyBytes },
      (_request, body, done) => {
        try {
          done(null, JSON.parse(body as string));
        } catch {
          done(new PlatformError('BAD_REQUEST', 'the body is not valid JSON (expected {"value": "..."})'), undefined);
        }
      },
    );

    app.put(
      '/v1/secrets/:name',
      {
        bodyLimit: maxSecretBodyBytes,
        schema: {
          summary: 'Create a secret or replace its value (sandboxes started after get the new value)',
          params: SecretNameParams,
          body: SecretBody,
          response: {
            200: { ...SecretAnswer, description: 'The secret existed: its value was replaced' },
            201: { ...SecretAnswer, description: 'The secret was created' },
            400: errorResponse('The name or the value is not valid'),
          },
        },
      },
      async (request, reply) => {
        const { secret, created } = await secrets.put(request.params.name, request.body.value);
        return reply.code(created ? 201 : 200).send(secretView(secret));
      },
    );

    app.get(
      '/v1/secrets',
      {
        schema: {
          summary: 'List secrets (names, times and the functions using them; never values)',
          response: { 200: SecretListAnswer },
        },
      },
      async () => ({
        secrets: (await secrets.list()).map((secret) => ({ ...secretView(secret), usedBy: secret.usedBy })),
      }),
    );

    app.delete(
      '/v1/secrets/:name',
      {
        schema: {
          summary: 'Delete a secret; 409 CONFLICT while a version an alias serves (or a running rollout) names it',
          params: SecretNameParams,
          response: {
            204: Type.Null({ description: 'Deleted' }),
            404: errorResponse('No such secret'),
            409: errorResponse('A function uses it: error.usedBy names the functions'),
          },
        },
      },
      async (request, reply) => {
        await secrets.remove(request.params.name);
        return reply.code(204).send(null);
      },
    );
    return Promise.resolve();
  };
}

// `/v1/functions/{name}/aliases`: named pointers to one or more versions of a function, each with its share of the
// traffic. `live` is what an invoke without a qualifier runs; `?qualifier=ALIAS` invokes another.
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { weightsToRecord } from '../../../core/traffic.js';
import { maxAliasesPerFunction, maxAliasVersions } from '../../../core/traffic-rules.js';
import type { Alias } from '../../../core/types.js';
import type { Traffic } from '../../traffic.js';
import { errorResponse } from '../schemas.js';

const AliasParams = Type.Object({
  name: Type.String({ maxLength: 200 }),
  alias: Type.String({
    maxLength: 200,
    description: 'lowercase letters, digits and dashes, starting with a letter, at most 63 characters',
  }),
});

const FunctionParams = Type.Object({ name: Type.String({ maxLength: 200 }) });

export const WeightsView = Type.Record(Type.String({ pattern: '^[0-9]+$' }), Type.Number(), {
  description: 'Version number → its share of the traffic, each above 0, summing to 1 (± 0.001)',
  examples: [{ '1': 0.9, '2': 0.1 }],
});

const AliasBody = Type.Object(
  {
    weights: Type.Record(Type.String({ pattern: '^[0-9]{1,10}$' }), Type.Number(), {
      description:
        'version number → its share of the traffic: each above 0, summing to 1 (± 0.001); the versions must exist; ' +
        `up to ${maxAliasVersions} versions`,
      examples: [{ '1': 0.9, '2': 0.1 }],
      maxProperties: maxAliasVersions,
      additionalProperties: false,
    }),
    stickyHeader: Type.Optional(
      Type.Union([Type.String({ maxLength: 200 }), Type.Null()], {
        description:
          'a request header (lowercase, at most 100 characters) whose value picks the version by hash: the same ' +
          'value always runs the same version while the weights stay, and the share of values on each version is ' +
          'its weight. Left out or null: each invocation picks at random by weight',
        examples: ['x-user-id'],
      }),
    ),
  },
  { additionalProperties: false },
);

const AliasView = Type.Object(
  {
    name: Type.String(),
    functionName: Type.String(),
    weights: WeightsView,
    stickyHeader: Type.Union([Type.String(), Type.Null()]),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false, description: 'An alias: its versions with their weights, and its sticky header' },
);

function aliasView(alias: Alias): Static<typeof AliasView> {
  return {
    name: alias.name,
    functionName: alias.functionName,
    weights: weightsToRecord(alias.weights),
    stickyHeader: alias.stickyHeader,
    createdAt: alias.createdAt.toISOString(),
    updatedAt: alias.updatedAt.toISOString(),
  };
}

/**
 * The alias routes, for `app.register`.
 *
 * @example
 * // PUT /v1/functions/shop/aliases/beta {"weights": {"1": 0.9, "2": 0.1}, "stickyHeader": "x-user-id"}
 * //   → 201 {"name": "beta", "functionName": "shop", "weights": {"1": 0.9, "2": 0.1}, "stickyHeader": "x-user-id", …}
 * // POST /v1/functions/shop/invoke?qualifier=beta → runs version 1 or 2 (x-savassan-version, x-savassan-alias: beta)
 * // GET /v1/functions/shop/aliases → {"aliases": [{"name": "beta", …}, {"name": "live", …}]}
 * // DELETE /v1/functions/shop/aliases/beta → 204
 * await app.register(aliasRoutes(traffic));
 */
export function aliasRoutes(traffic: Traffic): FastifyPluginAsync {
  return (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.put(
      '/v1/functions/:name/aliases/:alias',
      {
        schema: {
          summary:
            'Create an alias or replace its weights and sticky header. Setting `live` moves the traffic of invokes ' +
            'without a qualifier (and `currentVersion`, its largest weight)',
          params: AliasParams,
          body: AliasBody,
          response: {
            200: { ...AliasView, description: 'The alias existed: its weights and sticky header were replaced' },
            201: { ...AliasView, description: 'The alias was created' },
            400: errorResponse(
              'BAD_REQUEST: weights that are not above 0 or do not sum to 1 (± 0.001), a bad alias name or sticky ' +
                'header; INVALID_NAME; INVALID_CONFIG: a version names a secret that no longer exists. Nothing changed',
            ),
            404: errorResponse('NOT_FOUND: no function of that name, or no such version'),
            409: errorResponse(
              `CONFLICT: a rollout of the function is moving this alias, or the function has ${maxAliasesPerFunction} aliases already (the most it may have)`,
            ),
          },
        },
      },
      async (request, reply) => {
        const { alias, created } = await traffic.putAlias(request.params.name, request.params.alias, request.body);
        return reply.code(created ? 201 : 200).send(aliasView(alias));
      },
    );

    app.get(
      '/v1/functions/:name/aliases',
      {
        schema: {
          summary: "A function's aliases, by name (`live` among them)",
          params: FunctionParams,
          response: {
            200: Type.Object({ aliases: Type.Array(AliasView) }, { additionalProperties: false }),
            404: errorResponse('NOT_FOUND: no function of that name'),
          },
        },
      },
      async (request) => ({ aliases: (await traffic.listAliases(request.params.name)).map(aliasView) }),
    );

    app.get(
      '/v1/functions/:name/aliases/:alias',
      {
        schema: {
          summary: 'Get an alias',
          params: AliasParams,
          response: {
            200: AliasView,
            400: errorResponse('BAD_REQUEST: not an alias name'),
            404: errorResponse('NOT_FOUND: no function of that name, or no such alias'),
          },
        },
      },
      async (request) => aliasView(await traffic.getAlias(request.params.name, request.params.alias)),
    );

    app.delete(
      '/v1/functions/:name/aliases/:alias',
      {
        schema: {
          summary: 'Delete an alias (not `live`); invokes naming it get 404 from then on',
          params: AliasParams,
          response: {
            204: Type.Null({ description: 'Deleted' }),
            400: errorResponse('BAD_REQUEST: not an alias name; INVALID_NAME'),
            404: errorResponse('NOT_FOUND: no function of that name, or no such alias'),
            409: errorResponse('CONFLICT: the alias is `live`, or a running rollout moves it'),
          },
        },
      },
      async (request, reply) => {
        await traffic.deleteAlias(request.params.name, request.params.alias);
        return reply.code(204).send(null);
      },
    );
    return Promise.resolve();
  };
}

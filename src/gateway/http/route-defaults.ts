// What every route of the HTTP API gets without declaring it: a strict query string and the error answers any route
// can give. Done once, in an `onRoute` hook, so that a new route cannot forget either.
import type { FastifyError, FastifyRequest, onRouteHookHandler } from 'fastify';
import { PlatformError } from '../../core/errors.js';
import type { ErrorCode } from '../../core/errors.js';
import { isSignedRoute, publicRoutes } from './api-keys.js';
import { NoQuery, errorResponse as platformErrorResponse, flyteErrorResponse } from './schemas.js';

/** Where the Flyte-shaped API lives: its errors are `{code, message, kind}`. */
export const flyteApiPrefix = '/api/v1/';

/** Query parameters clients may expect from other platforms, with what to use instead, by route. */
const notYet: Record<string, Record<string, (name: string) => string>> = {
  'POST /v1/functions/:name/invoke': {
    version: () => 'to invoke version N, use ?qualifier=N',
    alias: () => 'to invoke through an alias, use ?qualifier=ALIAS',
  },
  'GET /v1/functions/:name': {
    version: (name) => `GET /v1/functions/${name}/versions lists the versions`,
    qualifier: (name) => `GET /v1/functions/${name}/aliases lists the aliases; the answer shows the current version`,
  },
};

/**
 * An `onRoute` hook that completes each route's schema:
 * - a route that declares no query string takes none: it gets an empty schema that refuses any parameter (a
 *   route's declared query schemas say `additionalProperties: false` themselves), so a misspelt or unsupported
 *   parameter is a 400 naming it (`unknownQueryError`), not silently ignored;
 * - its responses gain the errors every route can answer, unless it describes them itself: 400 (a query
 *   parameter), 401 (without a valid API key, where keys are required and the route is neither public nor one of
 *   the Lambda API's, which answer 403 for a refused signature), 413 (a route
 *   that takes a body), 500 and 503 (a backend does not answer, or the server is shutting down); under `/api/v1`
 *   (the Flyte-shaped API) in its own error shape.
 */
export function routeDefaults(options: { apiKeysRequired: boolean }): onRouteHookHandler {
  return (route) => {
    const schema = (route.schema ??= {});
    schema.querystring ??= NoQuery;
    const errorResponse = route.url.startsWith(flyteApiPrefix) ? flyteErrorResponse : platformErrorResponse;
    const common: Record<number, unknown> = {
      400: errorResponse('BAD_REQUEST: an unknown query parameter, or a value of the wrong type'),
      ...(options.apiKeysRequired && !publicRoutes.has(route.url) && !isSignedRoute(route.url)
        ? { 401: errorResponse('UNAUTHORIZED: no API key, or one that is not valid') }
        : {}),
      ...(schema.body === undefined ? {} : { 413: errorResponse('PAYLOAD_TOO_LARGE: the body is over the limit') }),
      500: errorResponse('INTERNAL: an unexpected platform failure'),
      503: errorResponse('UNAVAILABLE: a backend does not answer, or the server is shutting down'),
    };
    schema.response = { ...common, ...(schema.response as Record<number, unknown> | undefined) };
  };
}

/**
 * The query parameters of `request` that its route does not take, as one 400 that names each of them (and says
 * what to do instead where a parameter asks for something that does not exist yet); null when there are none.
 */
export function unknownQueryError(request: FastifyRequest): PlatformError | null {
  const declared = request.routeOptions.schema?.querystring as { properties?: Record<string, unknown> } | undefined;
  const known = Object.keys(declared?.properties ?? {});
  const query = (request.query ?? {}) as Record<string, unknown>;
  const unknown = Object.keys(query).filter((parameter) => !known.includes(parameter));
  if (unknown.length === 0) return null;
  const route = `${request.method} ${request.routeOptions.url ?? ''}`;
  const { name } = (request.params ?? {}) as { name?: unknown };
  const hints = new Set(
    unknown.flatMap((parameter) => notYet[route]?.[parameter]?.(typeof name === 'string' ? name : 'NAME') ?? []),
  );
  const path = route.replace(/:(\w+)/g, '{$1}');
  const takes = known.length === 0 ? 'takes no query parameters' : `takes only ${known.join(', ')}`;
  const message =
    `unknown query parameter${unknown.length === 1 ? '' : 's'} ${unknown.join(', ')} (${path} ${takes})` +
    (hints.size === 0 ? '' : `: ${[...hints].join('. ')}`);
  return new PlatformError('BAD_REQUEST', message, { details: { parameters: unknown } });
}

const fastifyCodeMap: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'BAD_REQUEST',
};

/** Any error a route or Fastify throws, as a platform error (Fastify's own by their codes and statuses). */
export function toPlatformError(err: unknown): PlatformError {
  if (err instanceof PlatformError) return err;
  const fe = err as Partial<FastifyError>;
  const mapped = typeof fe.code === 'string' ? fastifyCodeMap[fe.code] : undefined;
  if (mapped !== undefined) return new PlatformError(mapped, fe.message ?? 'bad request', { cause: err });
  if (fe.validation !== undefined)
    return new PlatformError('BAD_REQUEST', fe.message ?? 'invalid request', { cause: err });
  if (typeof fe.statusCode === 'number' && fe.statusCode === 413)
    return new PlatformError('PAYLOAD_TOO_LARGE', fe.message ?? 'too large');
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500)
    return new PlatformError('BAD_REQUEST', fe.message ?? 'bad request', { cause: err });
  return PlatformError.from(err);
}

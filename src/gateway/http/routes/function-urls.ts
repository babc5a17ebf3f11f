// Function URLs: `/v1/functions/:name/url` and `/v1/urls` manage them; `/fn/:name/...` (and `{name}.{url domain}`,
// rewritten to it by the server) serves them, each request as a Lambda function URL event (payload format 2.0).
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Static } from 'typebox';
import { PlatformError } from '../../../core/errors.js';
import type { ErrorCode } from '../../../core/errors.js';
import { maxEventBytes } from '../../../core/function-config.js';
import type { FunctionUrlConfig, FunctionUrlStore } from '../../../core/ports/function-url-store.js';
import {
  corsHeaders,
  corsPreflight,
  functionUrlAnswer,
  functionUrlEvent,
  isPreflight,
} from '../../function-url-event.js';
import type { InvocationResult, Invoker } from '../../invoker.js';
import { clientAddressHeader } from '../../lanes/lane-protocol.js';
import type { GatewayMetrics } from '../../metrics.js';
import type { ApiKeyCheck } from '../api-keys.js';
import { callerGone, requestHeaders } from '../invoke-route.js';
import { FunctionNameParams, errorResponse } from '../schemas.js';
import { laneSockets } from '../../lanes/lane-host.js';
import type { Tracer } from '../../../core/ports/tracer.js';
import { invokeWithinSpan } from '../invoke-span.js';

/** The account id function URL events carry. */
const accountId = '000000000000';

const CorsBody = Type.Object(
  {
    allowOrigins: Type.Array(Type.String({ maxLength: 256 }), {
      maxItems: 50,
      description: 'origins allowed (`*`: any)',
    }),
    allowMethods: Type.Optional(
      Type.Array(Type.String({ maxLength: 256 }), { maxItems: 50, description: 'methods allowed; empty: any' }),
    ),
    allowHeaders: Type.Optional(
      Type.Array(Type.String({ maxLength: 256 }), { maxItems: 50, description: 'request headers allowed; empty: any' }),
    ),
  },
  { additionalProperties: false },
);

const UrlBody = Type.Object(
  {
    auth: Type.Optional(
      Type.Union([Type.Literal('none'), Type.Literal('key')], {
        description: "key (default): callers present one of the platform's API keys; none: public",
      }),
    ),
    cors: Type.Optional(Type.Union([CorsBody, Type.Null()], { description: 'CORS rules; null or left out: none' })),
  },
  { additionalProperties: false, examples: [{ auth: 'none', cors: { allowOrigins: ['https://app.example'] } }] },
);

const UrlView = Type.Object(
  {
    functionName: Type.String(),
    auth: Type.Union([Type.Literal('none'), Type.Literal('key')]),
    cors: Type.Union([
      Type.Object({
        allowOrigins: Type.Array(Type.String()),
        allowMethods: Type.Array(Type.String()),
        allowHeaders: Type.Array(Type.String()),
      }),
      Type.Null(),
    ]),
    path: Type.String({ description: 'where the function answers on this server: /fn/{name}/' }),
    host: Type.Union([Type.String(), Type.Null()], {
      description: 'the host name it answers on ({name}.{url domain}), null without a URL domain',
    }),
    createdAt: Type.String({ format: 'date-time' }),
  },
  { additionalProperties: false },
);

export interface FunctionUrlRoutesOptions {
  urls: FunctionUrlStore;
  invoker: Invoker;
  metrics: GatewayMetrics;
  /** Checks a request's API key; null: the server has no keys (every URL is public). */
  apiKeys: ApiKeyCheck | null;
  /** `{name}.{urlDomain}` serves function `name` (the server rewrites such requests to `/fn/{name}/...`). */
  urlDomain: string | null;
  /** Traces: when on, each request gets a server span continuing its `traceparent`. */
  tracer?: Tracer | undefined;
}

/**
 * The function URL routes, for `app.register`: the API and the serving routes (in their own scope, with a parser
 * that takes any body as bytes).
 *
 * @example
 * // PUT /v1/functions/web/url {"auth": "none"} → 201 {"functionName": "web", "auth": "none", "path": "/fn/web/", …}
 * // GET /fn/web/hello?x=1 → whatever the function answers to the event of that request
 * await app.register(functionUrlRoutes({ urls, invoker, metrics, apiKeys: null, urlDomain: null }));
 */
export function functionUrlRoutes(options: FunctionUrlRoutesOptions): FastifyPluginAsync {
  const { urls } = options;
  const view = (config: FunctionUrlConfig): Static<typeof UrlView> => ({
    functionName: config.functionName,
    auth: config.auth,
    cors: config.cors,
    path: `/fn/${config.functionName}/`,
    host: options.urlDomain === null ? null : `${config.functionName}.${options.urlDomain}`,
    createdAt: config.createdAt.toISOString(),
  });
  return async (plugin) => {
    const app = plugin.withTypeProvider<TypeBoxTypeProvider>();

    app.put(
      '/v1/functions/:name/url',
      {
        schema: {
          summary:
            'Give a function a URL (or replace its settings): /fn/{name}/... then answers any method and path as ' +
            'a Lambda function URL (payload format 2.0)',
          params: FunctionNameParams,
          body: UrlBody,
          response: {
            200: { ...UrlView, description: 'The settings of its URL were replaced' },
            201: { ...UrlView, description: 'The function has a URL now' },
            404: errorResponse('NOT_FOUND: no function of that name'),
          },
        },
      },
      async (request, reply) => {
        const { config, created } = await urls.put({
          functionName: request.params.name,
          auth: request.body.auth,
          cors:
            request.body.cors === undefined || request.body.cors === null
              ? null
              : {
                  allowOrigins: request.body.cors.allowOrigins,
                  allowMethods: request.body.cors.allowMethods ?? [],
                  allowHeaders: request.body.cors.allowHeaders ?? [],
                },
        });
        return reply.code(created ? 201 : 200).send(view(config));
      },
    );

    app.get(
      '/v1/functions/:name/url',
      {
        schema: {
          summary: "A function's URL",
          params: FunctionNameParams,
          response: { 200: UrlView, 404: errorResponse('NOT_FOUND: the function has no URL') },
        },
      },
      async (request) => {
        const config = await urls.get(request.params.name);
        if (config === null) throw new PlatformError('NOT_FOUND', `function ${request.params.name} has no URL`);
        return view(config);
      },
    );

    app.delete(
      '/v1/functions/:name/url',
      {
        schema: {
          summary: "Remove a function's URL: /fn/{name}/ answers 404 from then on",
          params: FunctionNameParams,
          response: {
            204: Type.Null({ description: 'Removed' }),
            404: errorResponse('NOT_FOUND: the function has no URL'),
          },
        },
      },
      async (request, reply) => {
        if (!(await urls.delete(request.params.name))) {
          throw new PlatformError('NOT_FOUND', `function ${request.params.name} has no URL`);
        }
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/v1/urls',
      {
        schema: {
          summary: 'Every function URL, by function name',
          response: { 200: Type.Object({ urls: Type.Array(UrlView) }, { additionalProperties: false }) },
        },
      },
      async () => ({ urls: (await urls.list()).map(view) }),
    );

    await app.register((scope, _opts, registered) => {
      // The function gets the body as it arrived, whatever its content type.
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxEventBytes }, (_request, body, done) =>
        done(null, body),
      );
      const serve = (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> =>
        serveFunctionUrl(options, request, reply);
      // Any query string: it is the function's.
      const schema = { hide: true, querystring: Type.Object({}, { additionalProperties: true }) };
      scope.all('/fn/:name', { schema }, serve);
      scope.all('/fn/:name/*', { schema }, serve);
      registered();
    });
  };
}

const failureCodes: Record<Exclude<InvocationResult['outcome']['status'], 'success'>, ErrorCode> = {
  error: 'FUNCTION_ERROR',
  timeout: 'FUNCTION_TIMEOUT',
  crash: 'FUNCTION_CRASHED',
  oom: 'FUNCTION_OUT_OF_MEMORY',
};

/** The path and query string the function sees: `/fn/{name}` stripped from the URL as it arrived. */
function functionPath(url: string): { rawPath: string; rawQueryString: string } {
  const query = url.indexOf('?');
  const path = query === -1 ? url : url.slice(0, query);
  const rest = path.slice('/fn/'.length);
  const slash = rest.indexOf('/');
  return {
    rawPath: slash === -1 ? '/' : rest.slice(slash),
    rawQueryString: query === -1 ? '' : url.slice(query + 1),
  };
}

async function serveFunctionUrl(
  options: FunctionUrlRoutesOptions,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const { name } = request.params as { name: string };
  const config = await options.urls.get(name);
  if (config === null) throw new PlatformError('NOT_FOUND', `function ${name} has no URL`);
  const origin = typeof request.headers.origin === 'string' ? request.headers.origin : undefined;
  if (config.cors !== null && isPreflight(request.method, request.headers)) {
    const requested = request.headers['access-control-request-headers'];
    const answer = corsPreflight(
      config.cors,
      origin ?? '',
      String(request.headers['access-control-request-method']),
      Array.isArray(requested) ? requested.join(',') : requested,
    );
    return reply.code(answer.status).headers(answer.headers).send();
  }
  if (config.auth === 'key' && options.apiKeys !== null) {
    const { presented, valid } = options.apiKeys(request.headers);
    if (!valid) {
      void reply.header('www-authenticate', 'Bearer realm="savassan"');
      throw new PlatformError(
        'UNAUTHORIZED',
        presented === 0 ? 'this function URL needs an API key' : 'the API key is not valid',
      );
    }
  }
  const now = Date.now();
  // A request a lane passed on arrives on the main loop's Unix socket (no remote address), with its client's address.
  const rawHeaders: string[] = [];
  let lanesClient: string | undefined;
  for (let i = 0; i + 1 < request.raw.rawHeaders.length; i += 2) {
    const name = request.raw.rawHeaders[i] ?? '';
    const value = request.raw.rawHeaders[i + 1] ?? '';
    const lower = name.toLowerCase();
    if (lower === clientAddressHeader) lanesClient = value;
    // The platform's key is not the function's business: a key URL's function never sees it.
    else if (config.auth === 'key' && (lower === 'authorization' || lower === 'x-api-key')) continue;
    else rawHeaders.push(name, value);
  }
  // Only a lane's connection may say who its client is; anyone else's claim is ignored.
  const viaLane = laneSockets.has(request.raw.socket);
  const event = functionUrlEvent(
    {
      method: request.method,
      ...functionPath(request.raw.url ?? request.url),
      rawHeaders,
      body: (request.body as Buffer | undefined) ?? Buffer.alloc(0),
      sourceIp: (viaLane ? lanesClient : request.raw.socket.remoteAddress) ?? '',
      protocol: `HTTP/${request.raw.httpVersion}`,
    },
    { requestId: randomUUID(), functionName: name, accountId, now },
  );
  const eventJson = Buffer.from(JSON.stringify(event));
  if (eventJson.length > maxEventBytes) {
    // A binary body grows by a third as base64: the event must still fit what an invocation takes.
    throw new PlatformError(
      'PAYLOAD_TOO_LARGE',
      `the request makes an event of ${eventJson.length} bytes, over ${maxEventBytes} (binary bodies count as base64)`,
    );
  }
  const started = performance.now();
  let result: InvocationResult;
  try {
    const span = {
      method: request.method,
      route: '/fn/{name}/*',
      path: (request.raw.url ?? '').split('?', 1)[0] ?? '',
      functionName: name,
      traceparent: request.headers.traceparent,
    };
    result = await invokeWithinSpan(options.tracer, span, (trace) =>
      options.invoker.invoke(name, eventJson, callerGone(reply.raw), {
        qualifier: undefined,
        header: requestHeaders(request.headers),
        trace,
      }),
    );
  } catch (err) {
    const error = PlatformError.from(err);
    options.metrics.rejected(error.code);
    throw error;
  }
  options.metrics.observe(result, (performance.now() - started) / 1000);
  const cors = config.cors === null ? {} : corsHeaders(config.cors, origin);
  void reply.headers(cors).header('x-savassan-invocation-id', result.invocationId);
  const { outcome } = result;
  if (outcome.status !== 'success') {
    // The stack stays in the invocation's record: a URL may be public.
    throw new PlatformError(failureCodes[outcome.status], outcome.error?.message ?? outcome.status, {
      details: { errorType: outcome.error?.name ?? 'Error', invocationId: result.invocationId },
    });
  }
  let answer;
  try {
    answer = functionUrlAnswer(outcome.payloadJson ?? null);
  } catch (err) {
    throw new PlatformError('FUNCTION_ERROR', `the function's answer is not valid: ${(err as Error).message}`, {
      details: { errorType: 'InvalidAnswer', invocationId: result.invocationId },
    });
  }
  void reply.code(answer.status).headers(answer.headers);
  if (answer.cookies.length > 0) void reply.header('set-cookie', answer.cookies);
  return reply.send(answer.body);
}

import { createServer } from 'node:http';
import fastifySwagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { PlatformError, errorCodes } from '../../core/errors.js';
import type { ErrorCode } from '../../core/errors.js';
import { maxEventBytes } from '../../core/function-config.js';
import type { Logger } from '../../core/logger.js';
import type { BlobStore } from '../../core/ports/blob-store.js';
import type { MetadataStore } from '../../core/ports/metadata-store.js';
import type { Enforcement } from '../../core/ports/sandbox-runtime.js';
import type { InvocationRecord } from '../../core/types.js';
import type { Deployer } from '../deployer.js';
import type { Invoker } from '../invoker.js';
import type { GatewayMetrics } from '../metrics.js';
import { apiKeyCheck, apiKeyHook } from './api-keys.js';
import { callerGone, errorAnswer, eventOf, invokeAndAnswer, invokeFastPath } from './invoke-route.js';
import { DeployBody, FunctionNameParams, InvocationParams, LogsQuery, SetCurrentBody } from './schemas.js';
import { functionView, invocationView, versionView } from './views.js';

export interface NodeView {
  nodeId: string;
  /** `unverified`: listed in etcd without proving it holds the cluster token (cluster mode), so never used. */
  status: 'ready' | 'draining' | 'unverified';
  sandboxRuntime: string;
  isolating: boolean;
  sandboxes: number;
  /** Sandboxes the node takes at once (cluster mode). */
  capacity?: number | undefined;
  /** Where its Agent listens (cluster mode). */
  agentAddress?: string | undefined;
  /** Whether the leader's routing table, as last pushed to this gateway, includes the node (cluster mode). */
  routed?: boolean | undefined;
  /** What the sandbox runtime enforces on this node, mechanism by mechanism (embedded mode). */
  enforcement?: Record<string, Enforcement> | undefined;
  stemCells?: { idle: number; starting: number; memoryBytes: number | null } | undefined;
  /**
   * The node's budgets for all its sandboxes and what they hold (the sums of their memory and pids limits); a
   * creation past either is refused with 429 (embedded mode).
   */
  budget?: { memoryMB: number; pids: number; usedMemoryMB: number; usedPids: number } | undefined;
  warnings: string[];
}

export interface GatewayServerOptions {
  invoker: Invoker;
  deployer: Deployer;
  metadata: MetadataStore;
  blobStore: BlobStore;
  metrics: GatewayMetrics;
  nodes: () => Promise<NodeView[]>;
  /** False while starting or draining: /readyz answers 503. */
  ready: () => boolean;
  /**
   * Keys a request must present (`Authorization: Bearer <key>` or `x-api-key`) on every route but `/healthz`,
   * `/readyz` and `/v1/openapi.json`; empty or absent: no authentication. See `requireApiKeys` for reading them.
   */
  apiKeys?: readonly string[];
  logger?: Logger;
}

const maxDeployBodyBytes = 70 * 1024 * 1024;
const logShipWaitMs = 3000;

const fastifyCodeMap: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'BAD_REQUEST',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_CTP_INVALID_JSON_BODY: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'BAD_REQUEST',
};

export function sendError(reply: FastifyReply, err: PlatformError): FastifyReply {
  const answer = errorAnswer(err);
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

function toPlatformError(err: unknown): PlatformError {
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

/** Builds the Gateway's HTTP API v1 (architecture §5). Listening is the caller's job. */
export async function createGatewayServer(options: GatewayServerOptions): Promise<FastifyInstance> {
  const { invoker, deployer, metadata, blobStore, metrics } = options;
  const apiKeys = options.apiKeys ?? [];
  const answering = { invoker, metrics, logger: options.logger };
  const fastPath = invokeFastPath({
    ...answering,
    ready: options.ready,
    apiKeys: apiKeys.length > 0 ? apiKeyCheck(apiKeys) : null,
  });
  const app = Fastify({
    // Plain invoke requests are answered before Fastify sees them (invoke-route.ts); the rest is Fastify's. The
    // server gets the timeouts Fastify gives the servers it makes itself (its defaults).
    serverFactory: (handler) => {
      const server = createServer((req, res) => {
        if (!fastPath(req, res)) handler(req, res);
      });
      server.keepAliveTimeout = 72_000;
      server.requestTimeout = 0;
      server.setTimeout(0);
      return server;
    },
    logger: false,
    bodyLimit: maxEventBytes,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler((err, request, reply) => {
    const error = toPlatformError(err);
    if (error.status >= 500 && !error.isUserError) {
      options.logger?.error({ err, url: request.url }, 'request failed');
    }
    return sendError(reply, error);
  });
  // While draining, each answer closes its connection: a keep-alive connection that was busy when the close began
  // would otherwise keep the server open until its keep-alive timeout (72 s) after the last answer.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (!options.ready()) void reply.header('connection', 'close');
    done(null, payload);
  });
  if (apiKeys.length > 0) app.addHook('onRequest', apiKeyHook(apiKeys));
  app.setNotFoundHandler((request, reply) =>
    sendError(reply, new PlatformError('NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Savassan API',
        version: '1',
        description:
          'Deploy and invoke functions. Errors are `{ "error": { "code", "message", ... } }`; codes: ' +
          Object.keys(errorCodes).join(', '),
      },
      // With API keys, every route but the public ones (which say `security: []`) needs one.
      ...(apiKeys.length === 0
        ? {}
        : {
            components: {
              securitySchemes: {
                bearer: { type: 'http', scheme: 'bearer' },
                apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key' },
              },
            },
            security: [{ bearer: [] }, { apiKey: [] }],
          }),
    },
  });
  app.get('/v1/openapi.json', { schema: { hide: true } }, () => app.swagger());

  app.get('/healthz', { schema: { summary: 'Liveness', security: [] } }, () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { summary: 'Readiness', security: [] } }, (_request, reply) =>
    options.ready() ? { status: 'ready' } : reply.code(503).send({ status: 'not ready' }),
  );
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.render()),
  );
  app.get('/v1/nodes', { schema: { summary: 'Nodes of the cluster and their sandboxes' } }, async () => ({
    nodes: await options.nodes(),
  }));

  app.put(
    '/v1/functions/:name',
    {
      bodyLimit: maxDeployBodyBytes,
      schema: {
        summary: 'Deploy a function: creates a new immutable version and makes it current',
        params: FunctionNameParams,
        body: DeployBody,
      },
    },
    async (request, reply) => {
      const { code, ...config } = request.body;
      const bytes = Buffer.from(code, 'base64');
      const result = await deployer.deploy(request.params.name, bytes, config);
      return reply.code(result.created ? 201 : 200).send({
        created: result.created,
        function: functionView(result.function, result.version),
        version: versionView(result.version, result.function.currentVersion),
      });
    },
  );

  app.get('/v1/functions', { schema: { summary: 'List functions' } }, async () => {
    const functions = await metadata.listFunctions();
    return {
      functions: await Promise.all(
        functions.map(async (fn) => functionView(fn, await metadata.getVersion(fn.name, fn.currentVersion))),
      ),
    };
  });

  /**
   * An invocation's log: empty when it wrote nothing (no key), null when it is missing. Agents ship logs off the
   * invocation's path, so a log of a record younger than `logShipWaitMs` may still be on its way: wait for it.
   */
  const readLog = async (record: InvocationRecord): Promise<Buffer | null> => {
    if (record.logKey === null) return Buffer.alloc(0);
    for (;;) {
      const log = await blobStore.get(record.logKey);
      if (log !== null || Date.now() - record.createdAt.getTime() > logShipWaitMs) return log;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };

  const getFunction = async (name: string) => {
    const fn = await metadata.getFunction(name);
    if (fn === null) throw new PlatformError('NOT_FOUND', `function ${name} not found`);
    return fn;
  };

  app.get(
    '/v1/functions/:name',
    { schema: { summary: 'Get a function', params: FunctionNameParams } },
    async (request) => {
      const fn = await getFunction(request.params.name);
      return functionView(fn, await metadata.getVersion(fn.name, fn.currentVersion));
    },
  );

  app.delete(
    '/v1/functions/:name',
    { schema: { summary: 'Delete a function and its versions', params: FunctionNameParams } },
    async (request, reply) => {
      await deployer.remove(request.params.name);
      return reply.code(204).send();
    },
  );

  app.get(
    '/v1/functions/:name/versions',
    { schema: { summary: 'List versions', params: FunctionNameParams } },
    async (request) => {
      const fn = await getFunction(request.params.name);
      const versions = await metadata.listVersions(fn.name);
      return { versions: versions.map((v) => versionView(v, fn.currentVersion)) };
    },
  );

  app.put(
    '/v1/functions/:name/current',
    {
      schema: {
        summary: 'Point the function at an existing version (roll back or forward)',
        params: FunctionNameParams,
        body: SetCurrentBody,
      },
    },
    async (request) => {
      const fn = await deployer.setCurrentVersion(request.params.name, request.body.version);
      return functionView(fn, await metadata.getVersion(fn.name, fn.currentVersion));
    },
  );

  app.get(
    '/v1/functions/:name/invocations',
    {
      schema: {
        summary: 'Recent invocations, newest first',
        params: FunctionNameParams,
        querystring: Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }),
      },
    },
    async (request) => {
      const fn = await getFunction(request.params.name);
      const records = await metadata.listInvocations({ functionName: fn.name, limit: request.query.limit ?? 50 });
      return { invocations: records.map(invocationView) };
    },
  );

  app.get(
    '/v1/functions/:name/logs',
    {
      schema: {
        summary: 'Logs of recent invocations (oldest first); follow=1 streams new ones as server-sent events',
        params: FunctionNameParams,
        querystring: LogsQuery,
      },
    },
    async (request, reply) => {
      const fn = await getFunction(request.params.name);
      const follow = request.query.follow === '1' || request.query.follow === 'true';
      const recent = (
        await metadata.listInvocations({ functionName: fn.name, limit: request.query.limit ?? 20 })
      ).reverse();
      const render = async (r: (typeof recent)[number]) => {
        const log = await readLog(r);
        return {
          invocationId: r.id,
          createdAt: r.createdAt.toISOString(),
          status: r.status,
          log: log?.toString('utf8') ?? '',
        };
      };
      if (!follow) {
        return reply
          .type('text/plain; charset=utf-8')
          .send(
            (await Promise.all(recent.map(render)))
              .map((e) => `--- ${e.createdAt} ${e.invocationId} ${e.status}\n${e.log}`)
              .join(''),
          );
      }
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      // Ids already sent, by creation time: polls overlap by 1 ms, so only ids that recent are kept.
      const seen = new Map<string, number>();
      let after = new Date(0);
      const emit = async (records: typeof recent) => {
        for (const r of records) {
          if (seen.has(r.id)) continue;
          seen.set(r.id, r.createdAt.getTime());
          if (r.createdAt > after) {
            after = r.createdAt;
            for (const [id, at] of seen) if (at < after.getTime() - 1) seen.delete(id);
          }
          raw.write(`event: invocation\ndata: ${JSON.stringify(await render(r))}\n\n`);
        }
      };
      await emit(recent);
      const timer = setInterval(() => {
        void (async () => {
          const next = await metadata.listInvocations({
            functionName: fn.name,
            limit: 100,
            afterCreatedAt: new Date(after.getTime() - 1),
          });
          await emit(next.reverse());
          raw.write(': keep-alive\n\n');
        })().catch(() => raw.end());
      }, 500);
      raw.on('close', () => clearInterval(timer));
    },
  );

  app.get(
    '/v1/invocations/:id',
    { schema: { summary: 'Get an invocation record', params: InvocationParams } },
    async (request) => {
      const record = await metadata.getInvocation(request.params.id);
      if (record === null) throw new PlatformError('NOT_FOUND', `invocation ${request.params.id} not found`);
      return invocationView(record);
    },
  );

  app.get(
    '/v1/invocations/:id/logs',
    { schema: { summary: "An invocation's log (text)", params: InvocationParams } },
    async (request, reply) => {
      const record = await metadata.getInvocation(request.params.id);
      if (record === null) throw new PlatformError('NOT_FOUND', `invocation ${request.params.id} not found`);
      const log = await readLog(record);
      if (log === null)
        throw new PlatformError('NOT_FOUND', `the log of invocation ${request.params.id} is not stored`);
      return reply.type('text/plain; charset=utf-8').send(log);
    },
  );

  await app.register((plugin, _opts, registered) => {
    const scope = plugin.withTypeProvider<TypeBoxTypeProvider>();
    // The event is passed to the sandbox as the JSON text it arrived as; it is parsed once here to reject
    // invalid JSON with a 400. An empty body is the event {} (as with Lambda).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: maxEventBytes }, (_request, body, done) => {
      try {
        done(null, eventOf(body as string));
      } catch (err) {
        done(err as PlatformError, undefined);
      }
    });
    scope.post(
      '/v1/functions/:name/invoke',
      {
        schema: {
          summary: 'Invoke a function synchronously; the body is the event (JSON)',
          params: FunctionNameParams,
          body: Type.Unknown(),
        },
      },
      async (request, reply) => {
        const answer = await invokeAndAnswer(
          answering,
          request.params.name,
          (request.body as string | undefined) ?? '{}',
          callerGone(reply.raw),
          request.url,
        );
        return reply.code(answer.status).headers(answer.headers).send(answer.body);
      },
    );
    registered();
  });

  return app;
}

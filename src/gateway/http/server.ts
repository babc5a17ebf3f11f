import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import fastifySwagger from '@fastify/swagger';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { PlatformError, errorCodes } from '../../core/errors.js';
import { maxEventBytes } from '../../core/function-config.js';
import type { Logger } from '../../core/logger.js';
import { reportLine } from '../../core/report.js';
import type { BlobStore } from '../../core/ports/blob-store.js';
import type { InvocationQueue } from '../../core/ports/invocation-queue.js';
import type { MetadataStore } from '../../core/ports/metadata-store.js';
import type { ScheduleStore } from '../../core/ports/schedule-store.js';
import type { InvocationRecord } from '../../core/types.js';
import { liveAlias } from '../../core/types.js';
import type { AsyncInvocations } from '../../events/async-invocations.js';
import type { MessageQueues } from '../../core/ports/message-queue.js';
import type { TriggerStore } from '../../core/ports/trigger-store.js';
import type { FunctionUrlStore } from '../../core/ports/function-url-store.js';
import type { Deployer } from '../deployer.js';
import type { FunctionResolver } from '../function-resolver.js';
import { compileLambdaArnScope } from '../../core/lambda-arn.js';
import type { LambdaArnScope } from '../../core/lambda-arn.js';
import type { Invoker } from '../invoker.js';
import type { GatewayMetrics } from '../metrics.js';
import type { Tracer } from '../../core/ports/tracer.js';
import type { WorkflowDeployer } from '../../workflows/workflow-deployer.js';
import type { Secrets } from '../secrets.js';
import type { Traffic } from '../traffic.js';
import { apiKeyCheck, apiKeyHook } from './api-keys.js';
import { clientErrorHandler, createGatewayHttpServer, defaultRequestTimeoutMs } from './node-server.js';
import { callerGone, errorAnswer, eventOf, invokeAndAnswer, invokeFastPath, requestHeaders } from './invoke-route.js';
import { routeDefaults, toPlatformError, unknownQueryError } from './route-defaults.js';
import { aliasRoutes } from './routes/aliases.js';
import { asksForJson, consolePath, consoleRoutes } from './routes/console.js';
import { lambdaRoutes } from './routes/lambda.js';
import { AsyncInvocationView, asyncInvocationView, deadLetterRoutes } from './routes/dead-letters.js';
import { queueRoutes } from './routes/queues.js';
import { triggerRoutes } from './routes/triggers.js';
import { statsRoutes } from './routes/stats.js';
import { controlPlaneRoutes, standaloneControlPlane } from './routes/control-plane.js';
import type { ControlPlaneApi } from '../../core/control-plane-view.js';
import { createClusterView } from '../cluster-view.js';
import type { ClusterView } from '../cluster-view.js';
import { functionUrlRoutes } from './routes/function-urls.js';
import { functionUrlHost } from '../function-url-event.js';
import { rolloutRoutes } from './routes/rollouts.js';
import { scheduleRoutes } from './routes/schedules.js';
import { secretRoutes } from './routes/secrets.js';
import { liveLogRoutes } from './routes/live-logs.js';
import { intelligenceLiveRoutes } from './routes/intelligence-live.js';
import { websocketSupport } from './websocket.js';
import { workflowRoutes } from './routes/workflows.js';
import { executionRoutes } from './routes/executions.js';
import { planRoutes } from './routes/plans.js';
import { curationRoutes } from './routes/curations.js';
import type { IntelligenceServices } from '../../intelligence/services.js';
import { intelligenceRunRoutes } from './routes/intelligence-runs.js';
import type { ExecutionBackend } from '../../core/ports/execution-backend.js';
import type { LiveLogHub } from '../live-logs.js';
import {
  ApiIndex,
  DeployAnswer,
  DeployBody,
  DeployQuery,
  ErrorBody,
  FlyteErrorBody,
  FunctionNameParams,
  FunctionView,
  InvocationParams,
  InvocationView,
  InvokeQuery,
  LimitQuery,
  LogsQuery,
  NodeView,
  SetCurrentBody,
  VersionListView,
  errorResponse,
  queryCount,
  textResponse,
} from './schemas.js';
import { functionView, invocationView, versionListView, versionView } from './views.js';

export type { NodeView } from './schemas.js';
export { defaultRequestTimeoutMs };

/** What the workflow routes serve. */
export interface GatewayWorkflows {
  deployer: WorkflowDeployer;
  backend: ExecutionBackend;
}

export interface GatewayServerOptions {
  invoker: Invoker;
  /** Traces of the invoke route (default: off). */
  tracer?: Tracer | undefined;
  deployer: Deployer;
  secrets: Secrets;
  traffic: Traffic;
  /** Resolves qualifiers (the Lambda API's DryRun invocations). */
  resolver: FunctionResolver;
  /** The region and account id of the Lambda API's ARNs (default `us-east-1`, `000000000000`). */
  lambdaArnScope?: Partial<LambdaArnScope> | undefined;
  metadata: MetadataStore;
  blobStore: BlobStore;
  metrics: GatewayMetrics;
  /** Asynchronous invocations: their states and dead letters. */
  invocations: InvocationQueue;
  /** Accepts asynchronous invocations (`invoke?async=1`). */
  asyncInvocations: AsyncInvocations;
  /** A dead letter was redriven: a dispatcher in this process may run it at once. */
  onRedrive?: ((functionName: string) => void) | undefined;
  /** Schedules, which the control-plane leader fires. */
  schedules: ScheduleStore;
  /** Named message queues (`/v1/queues`). */
  messageQueues: MessageQueues;
  /** Queue triggers (`/v1/triggers`). */
  triggers: TriggerStore;
  /** Function URLs (`/v1/functions/:name/url`, served at `/fn/:name/...`). */
  functionUrls: FunctionUrlStore;
  /**
   * Where set, a request whose `Host` is `{name}.{urlDomain}` (any port) goes to function `name`'s URL, as if it were
   * for `/fn/{name}/...`.
   */
  urlDomain?: string | undefined;
  nodes: () => Promise<NodeView[]>;
  /** What `GET /v1/cluster` answers (default: embedded mode, no leader, no routing table). */
  cluster?: (() => Promise<ClusterView>) | undefined;
  /** What `/v1/control-plane` shows and does (default: one process leading itself, as in embedded mode). */
  controlPlane?: ControlPlaneApi | undefined;
  /** The functions' output, live (`logs/ws`, `logs?follow=1`). */
  liveLogs: LiveLogHub;
  /**
   * Workflows: deployed at `/v1/workflows`, run through the Flyte-shaped `/api/v1/executions` on `backend`. Absent:
   * neither is served.
   */
  workflows?: GatewayWorkflows | undefined;
  /** Plans, curations and fine-tune runs (`/v1/plans`, `/v1/datasets`, `/v1/curations`, `/v1/intelligence/runs`). */
  intelligence?: IntelligenceServices | undefined;
  /** False while starting or draining: /readyz answers 503. */
  ready: () => boolean;
  /** The backends that do not answer right now (`createReadinessCheck`); any: /readyz answers 503 naming them. */
  backendsDown?: () => Promise<string[]>;
  /**
   * How long a client may take to send a whole request, headers and body (default 60 s): a slower one gets 408 and
   * its connection is closed, so a trickled body cannot hold a connection and its buffer forever.
   */
  requestTimeoutMs?: number;
  /**
   * Keys a request must present (`Authorization: Bearer <key>` or `x-api-key`) on every route but `/`, `/healthz`,
   * `/readyz`, `/v1/openapi.json` and the Lambda API's, which take SigV4 signatures by the keys written
   * `ACCESS_KEY_ID:SECRET` (`sigV4PreHandler`); empty or absent: no authentication. See `requireApiKeys` for reading
   * them.
   */
  apiKeys?: readonly string[];
  logger?: Logger;
}

const maxDeployBodyBytes = 70 * 1024 * 1024;
const logShipWaitMs = 3000;
/** Logs read ahead of the one being sent, in `GET /v1/functions/:name/logs`: its memory is this many logs. */
const logReadAhead = 4;
/** The window of the per-version figures `GET /v1/functions/:name/versions` shows. */
const versionFiguresWindowMs = 5 * 60 * 1000;

export function sendError(reply: FastifyReply, err: PlatformError): FastifyReply {
  const answer = errorAnswer(err);
  return reply.code(answer.status).headers(answer.headers).send(answer.body);
}

/** Builds the Gateway's HTTP API v1 (architecture §5). Listening is the caller's job. */
export async function createGatewayServer(options: GatewayServerOptions): Promise<FastifyInstance> {
  const { invoker, deployer, metadata, blobStore, metrics } = options;
  const apiKeys = options.apiKeys ?? [];
  const answering = { invoker, metrics, logger: options.logger, tracer: options.tracer };
  const fastPath = invokeFastPath({
    answer: (name, event, gone, url, route) => invokeAndAnswer(answering, name, event, gone, url, route),
    logger: options.logger,
    ready: options.ready,
    apiKeys: apiKeys.length > 0 ? apiKeyCheck(apiKeys) : null,
  });
  const requestTimeoutMs = options.requestTimeoutMs ?? defaultRequestTimeoutMs;
  const urlHost = functionUrlHost(options.urlDomain);
  const app = Fastify({
    // Plain invoke requests are answered before Fastify sees them (invoke-route.ts); the rest is Fastify's. Both
    // read bodies under the server's request timeout (headers and body, then 408); once a request has arrived in
    // full, an invocation may take as long as its function's timeout.
    serverFactory: (handler) =>
      createGatewayHttpServer(requestTimeoutMs, (req, res) => {
        if (urlHost !== null) {
          const name = urlHost(req.headers.host);
          if (name !== null) req.url = `/fn/${name}${req.url?.startsWith('/') === true ? '' : '/'}${req.url ?? ''}`;
        }
        if (!fastPath(req, res)) handler(req, res);
      }),
    clientErrorHandler,
    logger: false,
    bodyLimit: maxEventBytes,
    forceCloseConnections: 'idle',
    // No coercion: `"memoryMB": "256"` is a 400 naming the field, not 256. Query strings are validated as text.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  app.setErrorHandler((err, request, reply) => {
    // A query parameter the route does not take: one answer naming them all (the validator stops at the first).
    const unknownQuery =
      (err as Partial<FastifyError>).validationContext === 'querystring' ? unknownQueryError(request) : null;
    const error = unknownQuery ?? toPlatformError(err);
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
  // An upgrade request answered over HTTP (401, 404, 400 before a WebSocket opens) leaves a socket the HTTP server
  // no longer tracks: close it, or it stays open and holds the server's close.
  app.addHook('onResponse', (request, _reply, done) => {
    if ((request.raw as { upgrade?: boolean }).upgrade === true) request.raw.socket.destroy();
    done();
  });
  if (apiKeys.length > 0) app.addHook('onRequest', apiKeyHook(apiKeys));
  app.addSchema(ErrorBody);
  app.addSchema(FlyteErrorBody);
  app.addHook('onRoute', routeDefaults({ apiKeysRequired: apiKeys.length > 0 }));
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
          'Deploy and invoke functions. Errors are `{ "error": { "code", "message", ... } }` (under /api/v1, the ' +
          'Flyte-shaped workflow execution API, `{ "code", "message", "kind" }`); codes: ' +
          Object.keys(errorCodes).join(', ') +
          '. Besides the answers each operation lists, any request that does not arrive in full within the ' +
          "server's request timeout gets 408 REQUEST_TIMEOUT, and one with too large headers 431 BAD_REQUEST.",
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
    // Shared schemas (the error) under their own names in `components.schemas`.
    refResolver: {
      buildLocalReference: (json, _baseUri, _fragment, i) => (typeof json.$id === 'string' ? json.$id : `def-${i}`),
    },
  });

  app.get(
    '/',
    {
      schema: {
        summary:
          'Sends to the web console at /console/; a request that asks for JSON (`Accept: application/json`) gets ' +
          'where the API is described and probed instead. Public (no API key), as /healthz and the description are',
        security: [],
        response: { 200: ApiIndex, 302: { description: 'To the web console, /console/' } },
      },
    },
    (request, reply) =>
      asksForJson(request.headers.accept)
        ? { name: 'savassan' as const, api: '/v1/openapi.json', health: '/healthz', ready: '/readyz' }
        : reply.redirect(consolePath, 302),
  );
  app.get(
    '/v1/openapi.json',
    {
      schema: {
        summary: 'This description (OpenAPI 3.1); public',
        security: [],
        response: { 200: Type.Object({}, { additionalProperties: true, description: 'An OpenAPI document' }) },
      },
    },
    () => app.swagger(),
  );

  app.get(
    '/healthz',
    {
      schema: {
        summary: 'Liveness; public',
        security: [],
        response: { 200: Type.Object({ status: Type.Literal('ok') }) },
      },
    },
    () => ({ status: 'ok' as const }),
  );
  const NotReady = Type.Object(
    {
      status: Type.Literal('not ready'),
      down: Type.Optional(Type.Array(Type.String(), { description: 'The backends that do not answer' })),
    },
    { description: 'Starting, draining, or a backend does not answer' },
  );
  app.get(
    '/readyz',
    {
      schema: {
        summary:
          'Readiness: 503 while starting, draining, or while a backend (metadata, pool, blobs) does not answer; public',
        security: [],
        response: { 200: Type.Object({ status: Type.Literal('ready') }), 503: NotReady },
      },
    },
    async (_request, reply) => {
      if (!options.ready()) return reply.code(503).send({ status: 'not ready' });
      const down = (await options.backendsDown?.()) ?? [];
      return down.length === 0 ? { status: 'ready' as const } : reply.code(503).send({ status: 'not ready', down });
    },
  );
  app.get(
    '/metrics',
    {
      schema: {
        summary: 'Prometheus metrics',
        response: { 200: textResponse('Metrics in the Prometheus text format') },
      },
    },
    async (_request, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  );
  app.get(
    '/v1/nodes',
    {
      schema: {
        summary: 'Nodes of the cluster and their sandboxes',
        response: { 200: Type.Object({ nodes: Type.Array(NodeView) }) },
      },
    },
    async () => ({ nodes: await options.nodes() }),
  );

  app.put(
    '/v1/functions/:name',
    {
      bodyLimit: maxDeployBodyBytes,
      schema: {
        summary:
          'Deploy a function: creates a new immutable version and makes it current (the `live` alias at 100% on ' +
          'it), unless promote=false: then the version is created without traffic, for an alias or a rollout to ' +
          "move traffic to it. Settings left out keep the current version's values; null restores a default. The " +
          'answer lists what changed from the version that was current (`changes`; only the keys of env, never ' +
          'its values)',
        params: FunctionNameParams,
        querystring: DeployQuery,
        body: DeployBody,
        response: {
          200: { ...DeployAnswer, description: 'The same code and config were deployed before: that version' },
          201: { ...DeployAnswer, description: 'A new version: current, unless promote=false' },
          400: errorResponse(
            'BAD_REQUEST, INVALID_NAME, INVALID_CONFIG, INVALID_BUNDLE (the bundle failed to load; the previous ' +
              'version keeps serving)',
          ),
          413: errorResponse('PAYLOAD_TOO_LARGE: the bundle is over 50 MiB'),
          409: errorResponse('CONFLICT: a rollout of the function is running (deploy with promote=false)'),
          429: errorResponse('TOO_MANY_REQUESTS: no node has room to try the bundle; retry after the delay'),
        },
      },
    },
    async (request, reply) => {
      const { code, ...config } = request.body;
      const bytes = Buffer.from(code, 'base64');
      const promote = request.query.promote !== 'false' && request.query.promote !== '0';
      const result = await deployer.deploy(request.params.name, bytes, config, { promote });
      return reply.code(result.created ? 201 : 200).send({
        created: result.created,
        function: functionView(result.function, result.version),
        version: versionView(result.version, result.function.currentVersion),
        changes: result.changes,
      });
    },
  );

  app.get(
    '/v1/functions',
    { schema: { summary: 'List functions', response: { 200: Type.Object({ functions: Type.Array(FunctionView) }) } } },
    async () => {
      const functions = await metadata.listFunctions();
      return {
        functions: await Promise.all(
          functions.map(async (fn) => functionView(fn, await metadata.getVersion(fn.name, fn.currentVersion))),
        ),
      };
    },
  );

  /**
   * An invocation's log: empty when it wrote nothing (no key), null when it is missing. Agents ship logs off the
   * invocation's path, so a log of a record younger than `logShipWaitMs` may still be on its way: wait for it.
   */
  const awaitLog = async <T>(
    key: string,
    createdAt: Date,
    read: (key: string) => Promise<T | null>,
  ): Promise<T | null> => {
    for (;;) {
      const log = await read(key);
      if (log !== null || Date.now() - createdAt.getTime() > logShipWaitMs) return log;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  /** The log whole, for a recent `invocation` event of `follow` (the Agent caps a log at 1 MiB). */
  const readLog = async ({ logKey, createdAt }: InvocationRecord): Promise<Buffer | null> =>
    logKey === null ? Buffer.alloc(0) : awaitLog(logKey, createdAt, (key) => blobStore.get(key));
  /** The log as a stream from the blob store (bounded memory whatever its size). */
  const openLog = async ({ logKey, createdAt }: InvocationRecord): Promise<Readable | null> =>
    logKey === null ? Readable.from([]) : awaitLog(logKey, createdAt, (key) => blobStore.getStream(key));

  // Open `logs?follow=1` streams: they never end by themselves, so closing the server ends them (or it would wait).
  const followers = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const raw of followers) raw.end();
    await options.liveLogs.close();
  });

  /** The memory limit of each version a request's records name, read once per version (null: the version is gone). */
  const memoryLimits = (name: string) => {
    const limits = new Map<number, Promise<number | null>>();
    return (version: number): Promise<number | null> => {
      let limit = limits.get(version);
      if (limit === undefined) {
        limit = metadata.getVersion(name, version).then((v) => v?.config.memoryMB ?? null);
        limits.set(version, limit);
      }
      return limit;
    };
  };

  const getFunction = async (name: string) => {
    const fn = await metadata.getFunction(name);
    if (fn === null) throw new PlatformError('NOT_FOUND', `function ${name} not found`);
    return fn;
  };

  app.get(
    '/v1/functions/:name',
    {
      schema: {
        summary: 'Get a function',
        params: FunctionNameParams,
        response: { 200: FunctionView, 404: errorResponse('NOT_FOUND: no function of that name') },
      },
    },
    async (request) => {
      const fn = await getFunction(request.params.name);
      return functionView(fn, await metadata.getVersion(fn.name, fn.currentVersion));
    },
  );

  app.delete(
    '/v1/functions/:name',
    {
      schema: {
        summary: 'Delete a function and its versions',
        params: FunctionNameParams,
        response: {
          204: Type.Null({ description: 'Deleted; its idle sandboxes are gone, busy ones go when they finish' }),
          400: errorResponse('INVALID_NAME'),
          404: errorResponse('NOT_FOUND: no function of that name'),
        },
      },
    },
    async (request, reply) => {
      await deployer.remove(request.params.name);
      metrics.forgetFunction(request.params.name);
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/v1/functions/:name/versions',
    {
      schema: {
        summary:
          "List versions, each with its share of the `live` alias's traffic and its figures over the last 5 minutes",
        params: FunctionNameParams,
        response: {
          200: Type.Object({ versions: Type.Array(VersionListView) }),
          404: errorResponse('NOT_FOUND: no function of that name'),
        },
      },
    },
    async (request) => {
      const fn = await getFunction(request.params.name);
      const [versions, live, figures] = await Promise.all([
        metadata.listVersions(fn.name),
        options.traffic.getAlias(fn.name, liveAlias),
        options.traffic.versionFigures(fn.name, new Date(Date.now() - versionFiguresWindowMs)),
      ]);
      return {
        versions: versions.map((v) =>
          versionListView(v, fn.currentVersion, live?.weights ?? [], figures.get(v.version)),
        ),
      };
    },
  );

  app.put(
    '/v1/functions/:name/current',
    {
      schema: {
        summary: 'Point the function at an existing version (roll back or forward): the `live` alias at 100% on it',
        params: FunctionNameParams,
        body: SetCurrentBody,
        response: {
          200: FunctionView,
          400: errorResponse('BAD_REQUEST, INVALID_NAME'),
          404: errorResponse('NOT_FOUND: no function of that name, or no such version'),
          409: errorResponse('CONFLICT: a rollout of the function is running (promote or abort it first)'),
        },
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
        querystring: LimitQuery,
        response: {
          200: Type.Object({ invocations: Type.Array(InvocationView) }),
          400: errorResponse('BAD_REQUEST: an unknown query parameter, or a limit out of range'),
          404: errorResponse('NOT_FOUND: no function of that name'),
        },
      },
    },
    async (request) => {
      const limit = queryCount(request.query.limit, 'limit', 50, 1000);
      const fn = await getFunction(request.params.name);
      const records = await metadata.listInvocations({ functionName: fn.name, limit });
      const memoryOf = memoryLimits(fn.name);
      return { invocations: await Promise.all(records.map(async (r) => invocationView(r, await memoryOf(r.version)))) };
    },
  );

  app.get(
    '/v1/functions/:name/logs',
    {
      schema: {
        summary:
          'Logs of recent invocations (oldest first); follow=1 sends them, then each new line live, as server-sent ' +
          'events',
        params: FunctionNameParams,
        querystring: LogsQuery,
        response: {
          200: {
            description:
              'Each log after a line `--- <createdAt> <invocationId> <status>`; with follow=1, server-sent events: ' +
              '`invocation` for each recent one (`{ invocationId, createdAt, status, log, report }`), then `line` ' +
              'for each line written from then on (`{ functionName, invocationId, version, stream, line, time }`, ' +
              'only those of `invocationId` where given), and `dropped` (`{ reason, missed }`) before the stream ' +
              'ends for a client that did not keep up',
            content: {
              'text/plain': { schema: Type.String() },
              'text/event-stream': { schema: Type.String() },
            },
          },
          400: errorResponse(
            'BAD_REQUEST: an unknown query parameter, a limit or follow out of range, or an invocationId that is ' +
              'not an id or comes without follow=1',
          ),
          404: errorResponse('NOT_FOUND: no function of that name'),
          429: errorResponse('TOO_MANY_REQUESTS: with follow=1, as many clients as the gateway takes follow logs'),
        },
      },
    },
    async (request, reply) => {
      const limit = queryCount(request.query.limit, 'limit', 20, 1000);
      const fn = await getFunction(request.params.name);
      const follow = request.query.follow === '1' || request.query.follow === 'true';
      if (request.query.invocationId !== undefined && !follow) {
        throw new PlatformError(
          'BAD_REQUEST',
          'invocationId goes with follow=1; GET /v1/invocations/{id}/logs reads the log of one invocation',
        );
      }
      const recent = (await metadata.listInvocations({ functionName: fn.name, limit })).reverse();
      const memoryOf = memoryLimits(fn.name);
      const report = async (r: InvocationRecord) => reportLine({ ...r, memoryMB: await memoryOf(r.version) });
      const render = async (r: (typeof recent)[number]) => {
        const log = await readLog(r);
        return {
          invocationId: r.id,
          createdAt: r.createdAt.toISOString(),
          status: r.status,
          log: log?.toString('utf8') ?? '',
          report: await report(r),
        };
      };
      if (!follow) {
        // Streamed from the blob store as the client takes it, a few logs opened ahead: a response holds a few
        // stream buffers in memory, however many logs it lists and however large they are.
        async function* text(): AsyncGenerator<Buffer | string> {
          const opens = new Map<number, Promise<Readable | null>>();
          const openAt = (i: number): void => {
            const record = recent[i];
            if (record === undefined) return;
            const open = openLog(record);
            open.catch(() => undefined); // awaited in turn below; not unhandled if the client leaves first
            opens.set(i, open);
          };
          try {
            for (let i = 0; i < logReadAhead; i++) openAt(i);
            for (const [i, r] of recent.entries()) {
              const log = await opens.get(i);
              opens.delete(i);
              openAt(i + logReadAhead);
              yield `--- ${r.createdAt.toISOString()} ${r.id} ${r.status}\n`;
              if (log !== null && log !== undefined) yield* log as AsyncIterable<Buffer>;
              yield `${await report(r)}\n`;
            }
          } finally {
            // The client left early: close the streams opened ahead.
            for (const open of opens.values())
              void open.then(
                (log) => log?.destroy(),
                () => undefined,
              );
          }
        }
        // A byte stream, not object mode (which would buffer 16 logs ahead of a slow client).
        const body = Readable.from(text(), { objectMode: false, highWaterMark: 64 * 1024 });
        return reply.type('text/plain; charset=utf-8').send(body);
      }
      // The Agents are followed before the answer starts: lines written from then on are in the stream.
      options.liveLogs.assertRoom();
      await options.liveLogs.ready();
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        'content-type': 'text/event-stream',
        'cache-control': 'no-cache',
        connection: 'keep-alive',
      });
      // Lines arriving while the recent logs are written wait here (the hub counts them against the client's queue
      // bound, so a client that does not take the recent logs is dropped rather than held in memory).
      let held: Array<[string, () => void]> | null = [];
      const write = (frame: string, written: () => void): void => {
        if (held !== null) held.push([frame, written]);
        else if (raw.writableEnded || raw.destroyed) written();
        else raw.write(frame, () => written());
      };
      const subscription = options.liveLogs.subscribe({
        functionName: fn.name,
        invocationId: request.query.invocationId,
        format: (line) => `event: line\ndata: ${JSON.stringify(line)}\n\n`,
        sink: {
          write,
          drop: (notice) => {
            held = null;
            if (!raw.writableEnded) raw.end(`event: dropped\ndata: ${JSON.stringify(notice)}\n\n`);
          },
          end: () => raw.end(),
        },
      });
      followers.add(raw);
      const keepAlive = setInterval(() => {
        if (!raw.writableEnded && raw.writableLength === 0) raw.write(': keep-alive\n\n');
      }, 15_000);
      raw.on('close', () => {
        clearInterval(keepAlive);
        subscription.close();
        followers.delete(raw);
        for (const [, written] of held ?? []) written();
        held = null;
      });
      try {
        for (const r of recent) {
          if (raw.writableEnded || raw.destroyed) break;
          if (request.query.invocationId !== undefined && r.id !== request.query.invocationId) continue;
          // One log at a time, each only once the client has taken the last: a client that stops reading holds
          // one rendered log (at most the 1 MiB log cap, escaped) and the socket's buffer, not the whole backlog.
          const event = `event: invocation\ndata: ${JSON.stringify(await render(r))}\n\n`;
          // The stream may have ended meanwhile (the client was dropped, or the server is closing).
          if (raw.writableEnded || raw.destroyed) break;
          if (!raw.write(event)) await drained(raw);
        }
      } finally {
        const lines = held ?? [];
        held = null;
        for (const [frame, written] of lines) write(frame, written);
      }
    },
  );

  app.get(
    '/v1/invocations/:id',
    {
      schema: {
        summary:
          'Get an invocation: the record of a synchronous one (or of one attempt of an asynchronous one), or an ' +
          'asynchronous invocation with its state and every attempt',
        params: InvocationParams,
        response: {
          200: Type.Union([InvocationView, AsyncInvocationView]),
          404: errorResponse('NOT_FOUND: no invocation of that id'),
        },
      },
    },
    async (request) => {
      const record = await metadata.getInvocation(request.params.id);
      if (record !== null) return invocationView(record, await memoryLimits(record.functionName)(record.version));
      const queued = await options.invocations.get(request.params.id);
      if (queued === null) throw new PlatformError('NOT_FOUND', `invocation ${request.params.id} not found`);
      return asyncInvocationView(queued);
    },
  );

  app.get(
    '/v1/invocations/:id/logs',
    {
      schema: {
        summary: "An invocation's log (text)",
        params: InvocationParams,
        response: {
          200: textResponse('What the invocation wrote to stdout and stderr (capped, with a truncation marker)'),
          404: errorResponse('NOT_FOUND: no invocation of that id, or its log is not stored'),
        },
      },
    },
    async (request, reply) => {
      const record = await metadata.getInvocation(request.params.id);
      if (record === null) throw new PlatformError('NOT_FOUND', `invocation ${request.params.id} not found`);
      const log = await openLog(record);
      if (log === null)
        throw new PlatformError('NOT_FOUND', `the log of invocation ${request.params.id} is not stored`);
      return reply.type('text/plain; charset=utf-8').send(log);
    },
  );

  await app.register(consoleRoutes());
  await websocketSupport(app);
  await app.register(liveLogRoutes({ hub: options.liveLogs, metadata, keyless: apiKeys.length === 0 }));
  await app.register(secretRoutes(options.secrets));
  await app.register(aliasRoutes(options.traffic));
  await app.register(rolloutRoutes(options.traffic));
  await app.register(deadLetterRoutes(options.invocations, metadata, options.onRedrive ?? (() => {})));
  await app.register(scheduleRoutes({ schedules: options.schedules, metadata }));
  await app.register(queueRoutes(options.messageQueues));
  await app.register(triggerRoutes(options.triggers));
  if (options.workflows !== undefined) {
    await app.register(workflowRoutes({ deployer: options.workflows.deployer }));
    await app.register(executionRoutes({ backend: options.workflows.backend }));
  }
  if (options.intelligence !== undefined) {
    // One route plugin per group: plans, datasets and curations, runs.
    await app.register(planRoutes({ plans: options.intelligence.plans }));
    await app.register(curationRoutes({ curations: options.intelligence.curations }));
    await app.register(intelligenceRunRoutes(options.intelligence.runs));
    const backend = options.workflows?.backend;
    await app.register(
      intelligenceLiveRoutes({
        runs: options.intelligence.runs,
        hub: options.liveLogs,
        keyless: apiKeys.length === 0,
        logger: options.logger,
        trainerOf:
          backend === undefined
            ? undefined
            : async (run) => {
                const { inputs } = await backend.data(run.execution);
                return typeof inputs['trainer'] === 'string' && inputs['trainer'] !== '' ? inputs['trainer'] : null;
              },
      }),
    );
  }
  await app.register(controlPlaneRoutes(options.controlPlane ?? standaloneControlPlane()));
  await app.register(
    statsRoutes({ metadata, cluster: options.cluster ?? createClusterView('embedded', { metadata }) }),
  );
  await app.register(
    lambdaRoutes({
      invoker,
      deployer,
      traffic: options.traffic,
      resolver: options.resolver,
      metadata,
      blobStore,
      metrics,
      asyncInvocations: options.asyncInvocations,
      scope: compileLambdaArnScope(options.lambdaArnScope),
      apiKeys,
      tracer: options.tracer,
    }),
  );
  await app.register(
    functionUrlRoutes({
      urls: options.functionUrls,
      invoker,
      metrics,
      apiKeys: apiKeys.length > 0 ? apiKeyCheck(apiKeys) : null,
      urlDomain: options.urlDomain ?? null,
      tracer: options.tracer,
    }),
  );

  await app.register((plugin, _opts, registered) => {
    const scope = plugin.withTypeProvider<TypeBoxTypeProvider>();
    // The event is passed to the sandbox as the bytes it arrived as; it is parsed once here to reject invalid
    // JSON with a 400. An empty body is the event {} (as with Lambda).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: maxEventBytes }, (_request, body, done) => {
      try {
        done(null, eventOf(body as Buffer));
      } catch (err) {
        done(err as PlatformError, undefined);
      }
    });
    scope.post(
      '/v1/functions/:name/invoke',
      {
        schema: {
          summary:
            'Invoke a function synchronously; the body is the event (JSON). Runs the version the qualifier names, ' +
            "or one the alias picks by its weights (by the hash of the alias's sticky header where the request has " +
            'it)',
          params: FunctionNameParams,
          querystring: InvokeQuery,
          body: Type.Unknown(),
          response: {
            200: Type.Unknown({
              description: "The handler's result, as JSON",
              headers: invocationHeaders,
            }),
            202: Type.Object(
              {
                invocationId: Type.String(),
                duplicate: Type.Boolean({
                  description: 'true: an event with the same idempotency-key was queued within 24 h; this is its id',
                }),
              },
              {
                description:
                  'Asynchronous (async=1 or x-savassan-invocation-type: event): the event is queued durably; ' +
                  'GET /v1/invocations/{invocationId} follows it. An idempotency-key header dedupes within 24 h',
              },
            ),
            400: errorResponse(
              'BAD_REQUEST: the event is not JSON, a query parameter, or a qualifier that is neither a version ' +
                'number nor an alias name; INVALID_CONFIG: the version names a secret that no longer exists',
            ),
            404: errorResponse('NOT_FOUND: no function of that name, or no such version or alias'),
            413: errorResponse('PAYLOAD_TOO_LARGE: the event is over 6 MiB (1 MiB when asynchronous)'),
            429: errorResponse(
              'TOO_MANY_REQUESTS: max instances reached, the provisioning queue full or no node with room; ' +
                'retry after the delay (Retry-After)',
            ),
            502: errorResponse(
              'FUNCTION_ERROR, FUNCTION_INIT_ERROR, FUNCTION_CRASHED, FUNCTION_OUT_OF_MEMORY: the function failed ' +
                '(errorType, message, a trimmed stack, invocationId)',
            ),
            504: errorResponse('FUNCTION_TIMEOUT: the invocation ran past the function timeout'),
          },
        },
      },
      async (request, reply) => {
        if (invocationType(request.query.async, request.headers['x-savassan-invocation-type']) === 'event') {
          const event = (request.body as Buffer | undefined) ?? eventOf(undefined);
          const key = request.headers['idempotency-key'];
          if (Array.isArray(key)) throw new PlatformError('BAD_REQUEST', 'give one idempotency-key header');
          const queued = await options.asyncInvocations.submit(request.params.name, event.toString('utf8'), {
            qualifier: request.query.qualifier,
            idempotencyKey: key,
          });
          return (reply as FastifyReply)
            .code(202)
            .header('x-savassan-invocation-id', queued.id)
            .send({ invocationId: queued.id, duplicate: queued.duplicate });
        }
        const answer = await invokeAndAnswer(
          answering,
          request.params.name,
          // Parsed already; no body at all (no parser ran) is the empty event.
          (request.body as Buffer | undefined) ?? eventOf(undefined),
          callerGone(reply.raw),
          request.url,
          { qualifier: request.query.qualifier, header: requestHeaders(request.headers) },
        );
        // The answer is JSON already (sent as it is, whatever its status), as on the fast path.
        const { body } = answer;
        const payload =
          typeof body === 'string' || Buffer.isBuffer(body)
            ? body
            : Buffer.from(body.buffer, body.byteOffset, body.length);
        return (reply as FastifyReply).code(answer.status).headers(answer.headers).send(payload);
      },
    );
    registered();
  });

  return app;
}

/**
 * `sync` or `event`, from `?async=` and the `x-savassan-invocation-type` header (`event`, or `request-response` /
 * `RequestResponse` for the default); BAD_REQUEST for another type or when the two disagree.
 */
function invocationType(query: string | undefined, header: string | string[] | undefined): 'sync' | 'event' {
  const fromQuery = query === undefined ? undefined : query === '1' || query === 'true' ? 'event' : 'sync';
  let fromHeader: 'sync' | 'event' | undefined;
  if (header !== undefined) {
    const value = (Array.isArray(header) ? header.join(',') : header).trim().toLowerCase();
    if (value === 'event') fromHeader = 'event';
    else if (value === 'request-response' || value === 'requestresponse') fromHeader = 'sync';
    else {
      throw new PlatformError(
        'BAD_REQUEST',
        `x-savassan-invocation-type must be event or request-response, got ${JSON.stringify(value)}`,
      );
    }
  }
  if (fromQuery !== undefined && fromHeader !== undefined && fromQuery !== fromHeader) {
    throw new PlatformError('BAD_REQUEST', 'async= and x-savassan-invocation-type ask for different invocation types');
  }
  return fromHeader ?? fromQuery ?? 'sync';
}

/** The headers of an invocation's answer, failures included (but for those refused before it ran). */
const invocationHeaders = {
  'x-savassan-invocation-id': { type: 'string', description: 'The id of the invocation record' },
  'x-savassan-start': { type: 'string', enum: ['cold', 'warm'], description: 'Whether a sandbox was started for it' },
  'x-savassan-version': { type: 'string', description: 'The version that ran' },
  'x-savassan-alias': {
    type: 'string',
    description: 'The alias that chose the version (absent for a version qualifier)',
  },
};

/** Resolves when `stream` can take more (it drained) or will take nothing more (it closed). */
function drained(stream: NodeJS.WritableStream & { writableEnded: boolean }): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

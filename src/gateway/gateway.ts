import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { LambdaArnScope } from '../core/lambda-arn.js';
import type { Logger } from '../core/logger.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type { InvocationQueue } from '../core/ports/invocation-queue.js';
import type { MessageQueues } from '../core/ports/message-queue.js';
import type { TriggerStore } from '../core/ports/trigger-store.js';
import type { FunctionUrlStore } from '../core/ports/function-url-store.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { ScheduleStore } from '../core/ports/schedule-store.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import { AsyncInvocations } from '../events/async-invocations.js';
import type { RunInvocation } from '../events/run-invocation.js';
import { Deployer } from './deployer.js';
import { FunctionResolver } from './function-resolver.js';
import { createGatewayServer, type GatewayWorkflows, type NodeView } from './http/server.js';
import { LiveLogHub, type LogFeed } from './live-logs.js';
import { type AnswerInvoke, invokeAndAnswer } from './http/invoke-route.js';
import { Invoker } from './invoker.js';
import { GatewayMetrics } from './metrics.js';
import type { Tracer } from '../core/ports/tracer.js';
import { noopTracer } from '../core/ports/tracer.js';
import { createReadinessCheck } from './readiness.js';
import { Secrets } from './secrets.js';
import { Traffic } from './traffic.js';
import type { ClusterView } from './cluster-view.js';
import type { ControlPlaneApi } from '../core/control-plane-view.js';
import type { IntelligenceServices } from '../intelligence/services.js';

export interface GatewayOptions {
  pool: Pool;
  queue: ProvisionQueue;
  metadata: MetadataStore;
  /** Aliases and rollouts, on the metadata store's database. */
  traffic: TrafficStore;
  /** Asynchronous invocations: accepted here, run by a dispatcher (`events/`). */
  invocations: InvocationQueue;
  /** Schedules, on the metadata store's database (the API; the control-plane leader fires them). */
  schedules: ScheduleStore;
  /** Named message queues, on the metadata store's database. */
  messageQueues: MessageQueues;
  /** Queue triggers, on the metadata store's database (run by a `TriggerRunner`). */
  triggers: TriggerStore;
  /** Function URL configs, on the metadata store's database. */
  functionUrls: FunctionUrlStore;
  /** Where set, `{name}.{urlDomain}` serves function `name`'s URL. */
  urlDomain?: string | undefined;
  /** An asynchronous invocation was queued for this function (a dispatcher in this process may run it at once). */
  onQueued?: ((functionName: string) => void) | undefined;
  blobStore: BlobStore;
  agents: AgentDirectory;
  /** The Agents' live output, for the live log routes (followed only while a client listens). */
  logFeed: LogFeed;
  /** How long an invocation waits for an instance before 429. */
  queueWaitMs: number;
  apiKeys: readonly string[];
  /** What `GET /v1/nodes` lists. */
  nodes: () => Promise<NodeView[]>;
  /** What `GET /v1/cluster` answers (default: embedded mode). */
  cluster?: (() => Promise<ClusterView>) | undefined;
  /**
   * What `GET /v1/control-plane` answers and what its handover and upgrade do (default: one process leading itself,
   * embedded mode's answer without build or loop delay).
   */
  controlPlane?: ControlPlaneApi | undefined;
  /** After a deploy, a version or alias change, a rollout's start or end, or a delete (embedded mode reconciles). */
  onChange?: (() => void) | undefined;
  gatewayId?: string | undefined;
  /** See `DeployerOptions.keyedHash`. */
  keyedHash?: ((text: string) => string) | undefined;
  /** The region and account id of the Lambda API's ARNs (default `us-east-1`, `000000000000`). */
  lambdaArnScope?: Partial<LambdaArnScope> | undefined;
  /** How long a client may take to send a whole request (default 60 s; see `GatewayServerOptions`). */
  requestTimeoutMs?: number | undefined;
  logger: Logger;
  /** Traces of the invoke path (default: off). */
  tracer?: Tracer | undefined;
  /** Workflow deploys and executions, served by the API (absent: no workflow routes). */
  workflows?: GatewayWorkflows | undefined;
  /** Plans, curations and fine-tune runs, served by the API (absent: no intelligence routes). */
  intelligence?: IntelligenceServices | undefined;
}

export interface Gateway {
  readonly deployer: Deployer;
  /**
   * Resolves invocations to versions, with a short cache: `resolver.invalidate(name)` makes this gateway see a
   * change to a function's aliases made elsewhere (the control plane's rollout steps) at once.
   */
  readonly resolver: FunctionResolver;
  readonly server: FastifyInstance;
  /** Readiness: false while starting and draining (`/readyz` answers 503). */
  readonly setReady: (ready: boolean) => void;
  readonly metrics: GatewayMetrics;
  /** Whether the gateway takes invocations (ready, not draining). */
  readonly ready: () => boolean;
  /**
   * Runs an invocation the way the invoke route does and builds its HTTP answer, counted in the same metrics: for
   * the extra event loops that serve the route (`LaneHost`).
   */
  readonly answerInvoke: AnswerInvoke;
  /** The invoke path, for what runs events through it (asynchronous invocations, queue triggers). */
  readonly run: RunInvocation;
  /** Accepts asynchronous invocations (checked, then queued). */
  readonly asyncInvocations: AsyncInvocations;
}

/** The Gateway role on its ports: invoke path, deploys and the HTTP API, the same in embedded and cluster mode. */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const { pool, queue, metadata, blobStore, agents, logger } = options;
  const tracer = options.tracer ?? noopTracer;
  const resolver = new FunctionResolver(metadata, options.traffic);
  const deployer = new Deployer({
    metadata,
    blobStore,
    pool,
    agents,
    resolver,
    logger,
    keyedHash: options.keyedHash,
    onChange: options.onChange ?? (() => {}),
  });
  const secrets = new Secrets({ metadata, pool, agents, logger, onChange: options.onChange });
  const traffic = new Traffic({
    metadata,
    traffic: options.traffic,
    resolver,
    logger,
    onChange: options.onChange,
  });
  const invoker = new Invoker({
    pool,
    queue,
    metadata,
    resolver,
    agents,
    gatewayId: options.gatewayId ?? `gateway-${randomUUID()}`,
    queueWaitMs: options.queueWaitMs,
    logger,
    tracer,
  });
  const asyncInvocations = new AsyncInvocations({
    queue: options.invocations,
    check: async (name, qualifier) => {
      await resolver.resolve(name, qualifier);
    },
    onQueued: options.onQueued,
  });
  let ready = false;
  const metrics = new GatewayMetrics();
  metrics.watchPlatform({
    pool,
    nodes: options.nodes,
    invocations: options.invocations,
    messageQueues: options.messageQueues,
    metadata,
  });
  const liveLogs = new LiveLogHub({ feed: options.logFeed, logger });
  const server = await createGatewayServer({
    invoker,
    tracer,
    deployer,
    secrets,
    traffic,
    resolver,
    lambdaArnScope: options.lambdaArnScope,
    metadata,
    blobStore,
    metrics,
    invocations: options.invocations,
    asyncInvocations,
    onRedrive: options.onQueued,
    schedules: options.schedules,
    messageQueues: options.messageQueues,
    triggers: options.triggers,
    functionUrls: options.functionUrls,
    urlDomain: options.urlDomain,
    apiKeys: options.apiKeys,
    logger,
    ready: () => ready,
    backendsDown: createReadinessCheck({
      metadata,
      pool,
      blobStore,
      logger,
      onDown: (backend) => metrics.backendError(backend, 'readiness probe'),
    }),
    ...(options.requestTimeoutMs === undefined ? {} : { requestTimeoutMs: options.requestTimeoutMs }),
    nodes: options.nodes,
    cluster: options.cluster,
    controlPlane: options.controlPlane,
    liveLogs,
    workflows: options.workflows,
    intelligence: options.intelligence,
  });
  // Answers go out before their instances are back in the pool: let those returns land before the pool closes.
  server.addHook('onClose', () => invoker.settle());
  return {
    deployer,
    resolver,
    server,
    setReady: (value) => {
      ready = value;
    },
    metrics,
    ready: () => ready,
    run: async (name, event, qualifier) => {
      const result = await invoker.invoke(name, event, undefined, { qualifier });
      return {
        invocationId: result.invocationId,
        functionName: result.functionName,
        version: result.version,
        outcome: result.outcome,
      };
    },
    asyncInvocations,
    answerInvoke: (name, event, gone, url, route) =>
      invokeAndAnswer({ invoker, metrics, logger, tracer }, name, event, gone, url, route),
  };
}

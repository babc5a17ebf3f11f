import { existsSync } from 'node:fs';
import { chmod, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Agent, defaultSandboxLimits, defaultStemCells } from '../agent/agent.js';
import { compileNodeBudget, nodeCgroupLimits } from '../agent/node-budget.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import { SingleAgentDirectory } from '../core/ports/agent-directory.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { SandboxRuntime } from '../core/ports/sandbox-runtime.js';
import { requireApiKeys } from '../gateway/http/api-keys.js';
import { defaultRequestTimeoutMs } from '../gateway/http/server.js';
import type { Deployer } from '../gateway/deployer.js';
import { createGateway } from '../gateway/gateway.js';
import { agentLogFeed } from '../gateway/live-logs.js';
import { defaultEventLoops, maxEventLoops, startLanes, type LaneHost } from '../gateway/lanes/lane-host.js';
import { ControlPlane } from '../control-plane/control-plane.js';
import { defaultQueueCapacityPerFunction } from '../core/invocation-queue-rules.js';
import { createEventRunners } from '../events/async-dispatch.js';
import { compileLambdaArnScope } from '../core/lambda-arn.js';
import type { LambdaArnScope } from '../core/lambda-arn.js';
import { functionMustExist } from '../events/function-must-exist.js';
import { AsyncInvocations } from '../events/async-invocations.js';
import { Manager } from '../manager/manager.js';
import { createRuntime, runtimeWarnings, type SandboxKind } from '../sandbox/runtimes.js';
import { EnvSealer } from '../adapters/sealed/env-sealer.js';
import { createTracer } from '../adapters/otel/tracing.js';
import type { Tracer } from '../core/ports/tracer.js';
import { openBackends } from './backends.js';
import type { BuildInfo } from '../core/build-info.js';
import { createEmbeddedControlPlane, embeddedBuildInfo } from './embedded-control-plane.js';
import { serveExecutionService, type ExecutionServiceHandle } from '../gateway/grpc-executions.js';
import { randomUUID } from 'node:crypto';
import { BuiltinExecutionBackend } from '../workflows/builtin-backend.js';
import { StoreNodeSink } from '../workflows/node-sink.js';
import { pinFunctionVersion } from '../workflows/pin-function.js';
import { WorkflowNodeRunner } from '../events/workflow-node-runner.js';
import { WorkflowDeployer } from '../workflows/workflow-deployer.js';
import { builtinTaskNames } from '../intelligence/fine-tune-tasks.js';
import { BuiltinTaskRunner } from '../intelligence/tasks.js';
import { createIntelligence, platformIntelligenceFactories, type Intelligence } from './intelligence.js';
import { createFineTunePipeline, fineTuneWorkflow } from '../intelligence/runs.js';
import { fineTuneSpec } from '../intelligence/fine-tune-workflow.js';
import type { WorkflowEngine } from '../workflows/engine.js';
import type { WorkflowStore } from '../core/ports/workflow-store.js';
import type { ExecutionBackend } from '../core/ports/execution-backend.js';
import {
  compileWorkflowBackendOptions,
  createWorkflowBackend,
  describeWorkflowBackend,
  type CompiledWorkflowBackend,
  type WorkflowBackendOptions,
} from './workflow-backend.js';
import {
  compileIntelligenceOptions,
  type CompiledIntelligenceOptions,
  type IntelligenceOptions,
} from './intelligence-options.js';
import type { BackendSummary, BackendUrls } from './backends.js';

export { runtimeWarnings, type SandboxKind };
export { defaultFreezeIdleMs } from '../agent/agent.js';

export interface EmbeddedOptions extends BackendUrls {
  /**
   * Traces of the invoke path. Default: from OpenTelemetry's standard variables in the process's environment (off
   * unless they configure an exporter; README "Traces").
   */
  tracer?: Tracer | undefined;
  dataDir?: string;
  host?: string;
  port?: number;
  sandbox?: SandboxKind;
  /** How long an invocation waits for a free instance before 429. */
  queueWaitMs?: number;
  /** How long a client may take to send a whole request, headers and body, before 408 (default 60 s). */
  requestTimeoutMs?: number;
  /** Capacity of the provisioning queue. */
  queueCapacity?: number;
  /** The region Lambda ARNs name (`--region`; default `us-east-1`). */
  region?: string;
  /** The account id Lambda ARNs name (`--account-id`, 12 digits; default `000000000000`). */
  accountId?: string;
  /** Asynchronous invocations queued or running per function before 429 (default 10 000). */
  asyncQueueCapacity?: number;
  /** Webhook destinations may reach this host's loopback where a function's allowNet lists it (default false). */
  allowLoopbackWebhooks?: boolean;
  managerConcurrency?: number;
  reconcileIntervalMs?: number;
  /** Metadata durability: `process` (default) or `full` (fsync every commit); see `openSqliteMetadataStore`. */
  durability?: 'process' | 'full';
  /** Keep pre-started generic sandboxes for fast cold starts (default true). */
  stemCells?: boolean;
  /** MB all sandboxes may hold together (`--node-memory`); default: the host's memory less a reserve. */
  nodeMemoryMB?: number;
  /** Processes and threads all sandboxes may hold together (`--node-pids`); default: the kernel's limit less a reserve. */
  nodePids?: number;
  /**
   * Event loops serving the HTTP port (`--event-loops`): the main one, plus worker threads that serve invocations on
   * the same socket. Default: `defaultEventLoops()`, by core count.
   */
  eventLoops?: number;
  /** Freeze sandboxes idle this long (ms; 0: after each invocation; false: never). Default `defaultFreezeIdleMs`. */
  freezeIdleMs?: number | false;
  /**
   * The key that seals function environments and secret values in the metadata store (`SAVASSAN_SECRET_KEY`): 32
   * bytes as 64 hex digits or base64. Absent or empty: the key in `{dataDir}/secret.key`, created on first start.
   */
  secretKey?: string | undefined;
  /**
   * API keys of the HTTP API (`--api-key`, `SAVASSAN_API_KEY`; commas separate keys). Required when `host` is not
   * a loopback address; on loopback, given keys are enforced too. See `requireApiKeys`.
   */
  apiKeys?: readonly string[];
  /** Where set, a request for host `{name}.{urlDomain}` goes to function `name`'s URL (`--url-domain`). */
  urlDomain?: string | undefined;
  /**
   * Where set, the gRPC ExecutionService (workflow executions, proto/savassan/v1/execution.proto) listens on `host`
   * at this port (0 picks one), with the HTTP API's keys (`--grpc-port`).
   */
  grpcPort?: number | undefined;
  /**
   * The build this process runs, as `GET /v1/control-plane` shows it (default: the package's version, build `dev`,
   * this code's control protocol; see `embeddedBuildInfo`).
   */
  build?: BuildInfo | undefined;
  /**
   * Where workflow executions run (`--workflow-backend`, `--flyte-url`, ...): the built-in engine in this process
   * (default), or a FlyteAdmin. See `compileWorkflowBackendOptions`.
   */
  workflowBackend?: WorkflowBackendOptions | undefined;
  /** The planner, the curator's embedder and the vector store (`--llm`, `--embedder`, ...). */
  intelligence?: IntelligenceOptions | undefined;
  logger?: Logger;
}

export interface CompiledEmbeddedOptions {
  dataDir: string;
  host: string;
  port: number;
  sandbox: SandboxKind;
  queueWaitMs: number;
  requestTimeoutMs: number;
  queueCapacity: number;
  lambdaArnScope: LambdaArnScope;
  asyncQueueCapacity: number;
  allowLoopbackWebhooks: boolean;
  managerConcurrency: number;
  reconcileIntervalMs: number;
  durability: 'process' | 'full';
  stemCells: boolean;
  nodeMemoryMB: number | undefined;
  nodePids: number | undefined;
  freezeIdleMs: number | false | undefined;
  eventLoops: number;
  /** Empty: no authentication (loopback only). */
  apiKeys: string[];
  urlDomain: string | undefined;
  grpcPort: number | undefined;
  workflowBackend: CompiledWorkflowBackend;
  intelligence: CompiledIntelligenceOptions;
  logger: Logger;
  /** Real backends; undefined keeps the embedded default (memory pool and queue, SQLite, filesystem blobs). */
  redisUrl: string | undefined;
  dbUrl: string | undefined;
  s3Url: string | undefined;
}

/** Validate and default once, at the edge. */
export function compileEmbeddedOptions(options: EmbeddedOptions): CompiledEmbeddedOptions {
  const port = options.port ?? 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new PlatformError('INVALID_CONFIG', `port must be an integer from 0 to 65535, got ${port}`);
  }
  // bwrap where bubblewrap is installed: isolation is the default, the unisolated process runtime the fallback.
  const sandbox = options.sandbox ?? (existsSync('/usr/bin/bwrap') ? 'bwrap' : 'process');
  if (!['process', 'bwrap', 'runc'].includes(sandbox)) {
    throw new PlatformError('INVALID_CONFIG', `sandbox must be process, bwrap or runc, got ${String(sandbox)}`);
  }
  const durability = options.durability ?? 'process';
  if (durability !== 'process' && durability !== 'full') {
    throw new PlatformError('INVALID_CONFIG', `durability must be process or full, got ${String(durability)}`);
  }
  const positive = (name: string, value: number) => {
    if (!Number.isInteger(value) || value < 1) {
      throw new PlatformError('INVALID_CONFIG', `${name} must be a positive integer, got ${value}`);
    }
    return value;
  };
  const host = options.host ?? '127.0.0.1';
  return {
    dataDir: resolve(options.dataDir ?? '.savassan'),
    host,
    port,
    sandbox,
    queueWaitMs: positive('queueWaitMs', options.queueWaitMs ?? 10_000),
    requestTimeoutMs: positive('requestTimeoutMs', options.requestTimeoutMs ?? defaultRequestTimeoutMs),
    queueCapacity: positive('queueCapacity', options.queueCapacity ?? 1000),
    lambdaArnScope: compileLambdaArnScope({ region: options.region, accountId: options.accountId }),
    asyncQueueCapacity: positive('asyncQueueCapacity', options.asyncQueueCapacity ?? defaultQueueCapacityPerFunction),
    allowLoopbackWebhooks: options.allowLoopbackWebhooks ?? false,
    managerConcurrency: positive('managerConcurrency', options.managerConcurrency ?? 4),
    reconcileIntervalMs: positive('reconcileIntervalMs', options.reconcileIntervalMs ?? 1000),
    durability,
    stemCells: options.stemCells ?? true,
    nodeMemoryMB: options.nodeMemoryMB === undefined ? undefined : positive('nodeMemoryMB', options.nodeMemoryMB),
    nodePids: options.nodePids === undefined ? undefined : positive('nodePids', options.nodePids),
    freezeIdleMs: compileFreezeIdleMs(options.freezeIdleMs),
    eventLoops: compileEventLoops(options.eventLoops),
    apiKeys: requireApiKeys(host, options.apiKeys ?? []),
    urlDomain: compileUrlDomain(options.urlDomain),
    grpcPort: compileGrpcPort(options.grpcPort),
    workflowBackend: compileWorkflowBackendOptions(options.workflowBackend),
    intelligence: compileIntelligenceOptions(options.intelligence),
    logger: options.logger ?? silentLogger,
    // An empty value (an environment variable set to '') means the default, as if it were not given.
    redisUrl: options.redisUrl || undefined,
    dbUrl: options.dbUrl || undefined,
    s3Url: options.s3Url || undefined,
  };
}

function compileEventLoops(value: number | undefined): number {
  if (value === undefined) return defaultEventLoops();
  if (!Number.isInteger(value) || value < 1 || value > maxEventLoops) {
    throw new PlatformError('INVALID_CONFIG', `eventLoops must be an integer from 1 to ${maxEventLoops}, got ${value}`);
  }
  return value;
}

/** A freeze delay: a non-negative integer of ms, or false (never). */
function compileFreezeIdleMs(value: number | false | undefined): number | false | undefined {
  if (value === undefined || value === false) return value;
  if (!Number.isInteger(value) || value < 0) {
    throw new PlatformError('INVALID_CONFIG', `freezeIdleMs must be a non-negative integer or false, got ${value}`);
  }
  return value;
}

async function stemCellView(agent: Agent): Promise<{ idle: number; starting: number; memoryBytes: number | null }> {
  const { idle, starting } = agent.stemCellStats();
  const memory = await agent.stemCellMemory();
  const known = memory.filter((bytes): bytes is number => bytes !== null);
  return { idle, starting, memoryBytes: known.length === 0 ? null : known.reduce((a, b) => a + b, 0) };
}

export interface EmbeddedPlatform {
  readonly url: string;
  readonly options: CompiledEmbeddedOptions;
  readonly deployer: Deployer;
  readonly metadata: MetadataStore;
  readonly runtime: SandboxRuntime;
  /** What backs the pool, queue, metadata and blobs, without credentials. */
  readonly backends: BackendSummary;
  readonly server: FastifyInstance;
  /** Workflows: deploys, the execution backend, and the engine that runs executions in this process. */
  readonly workflows: {
    deployer: WorkflowDeployer;
    backend: ExecutionBackend;
    /** The built-in engine; with another backend it has no executions to run. */
    engine: WorkflowEngine;
    store: WorkflowStore;
  };
  /**
   * Built-in workflow tasks (`savassan.plan`...): their names are accepted at deploy from the start; the
   * intelligence services provide their implementations (`provide(fineTuneTasks(...))`).
   */
  readonly builtinTasks: BuiltinTaskRunner;
  /** Where the gRPC ExecutionService listens (`host:port`), or null without `grpcPort`. */
  readonly grpcAddress: string | null;
  /** Stop taking requests, drain in-flight invocations, destroy every sandbox. Idempotent. */
  close(): Promise<void>;
}

/**
 * Embedded mode: gateway, manager and agent in one process, by default with the in-memory pool and queue, SQLite
 * metadata and a filesystem blob store; `redisUrl`, `dbUrl` and `s3Url` move those onto real backends (see
 * `openBackends`). Sandboxes are still separate processes.
 */
export async function startEmbedded(input: EmbeddedOptions = {}): Promise<EmbeddedPlatform> {
  const options = compileEmbeddedOptions(input);
  const { dataDir, logger } = options;
  // First: a bad tracing variable stops the start before anything is opened.
  const tracer = input.tracer ?? (await createTracer(process.env, 'savassan'));
  // Private: the database, code, logs and sandbox directories are nobody else's business (sandboxes reach their
  // own code through binds made as root, see bwrap-runtime.ts).
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  const workDir = join(dataDir, 'agent');
  const sealer =
    input.secretKey === undefined || input.secretKey === ''
      ? await EnvSealer.fromKeyFile(join(dataDir, 'secret.key'))
      : EnvSealer.fromKeyText(input.secretKey);
  const budget = await compileNodeBudget(
    { memoryMB: options.nodeMemoryMB, pids: options.nodePids },
    defaultSandboxLimits.pids,
  );
  const backends = await openBackends({ ...options, sealer });
  const { pool, queue, metadata, traffic, invocations, messageQueues, triggers, functionUrls, blobStore } = backends;
  let runtime: SandboxRuntime;
  try {
    runtime = await createRuntime(options.sandbox, workDir, logger, nodeCgroupLimits(budget));
  } catch (err) {
    await backends.close();
    throw err;
  }
  const nodeId = 'local';
  const agent = new Agent({
    nodeId,
    runtime,
    blobStore,
    workDir,
    logger,
    stemCells: defaultStemCells(options.stemCells),
    budget,
    freezeIdleMs: options.freezeIdleMs,
    tracer,
  });
  const agents = new SingleAgentDirectory(agent);
  const manager = new Manager({
    queue,
    pool,
    metadata,
    agents,
    logger,
    concurrency: options.managerConcurrency,
    tracer,
  });
  /** Set once the gateway exists: drops its cached resolution of a function whose traffic a rollout moved. */
  let invalidate: (functionName: string) => void = () => {};
  /** Set once the event runners exist: runs what was just queued. */
  let wake: (functionName: string) => void = () => {};
  /** Queues schedules' events (the control plane's leader fires them). */
  const leaderInvocations = new AsyncInvocations({
    queue: invocations,
    check: functionMustExist(metadata),
    onQueued: (name) => wake(name),
  });
  /** Set once the invoke path exists: runs workflow node attempts in this process. */
  let nodeRunner: WorkflowNodeRunner | null = null;
  // Built-in tasks (`savassan.plan`...) run in this process through the node sink; their implementations come with
  // the intelligence services (`builtinTasks.provide`), their names are known from the start (deploys check them).
  let workflowSink: StoreNodeSink | null = null;
  const builtinTasks = new BuiltinTaskRunner({
    names: builtinTaskNames,
    sink: () => {
      if (workflowSink === null) throw new PlatformError('UNAVAILABLE', 'the platform is starting');
      return workflowSink;
    },
    logger,
  });
  // Attempts claimed under another boot id ran in a process that stopped: the engine gives them up at once.
  const bootId = randomUUID();
  // The single process always leads the control plane.
  const controlPlane = new ControlPlane({
    pool,
    metadata,
    traffic,
    agents,
    provisioning: manager,
    schedules: { schedules: backends.schedules, asyncInvocations: leaderInvocations },
    workflows: {
      store: backends.workflows,
      blobStore,
      ...builtinTasks.wrap({
        // In one process the node row is the attempt's durable record: attempts run on the invoke path directly.
        submit: (name, eventJson, submitOptions) =>
          nodeRunner === null
            ? Promise.reject(new PlatformError('UNAVAILABLE', 'the platform is starting'))
            : nodeRunner.submit(name, eventJson, submitOptions),
        pinFunction: pinFunctionVersion(metadata, traffic),
      }),
      bootId,
      preclaim: true,
    },
    reconcileIntervalMs: options.reconcileIntervalMs,
    onTrafficChange: (functionName) => invalidate(functionName),
    logger,
  });
  const engine = controlPlane.workflowEngine!;
  const workflowBackend = createWorkflowBackend(
    options.workflowBackend,
    () => new BuiltinExecutionBackend({ store: backends.workflows, blobStore, wake: (key) => engine.wake(key) }),
  );
  const workflowDeployer = new WorkflowDeployer({
    store: backends.workflows,
    backend: workflowBackend,
    functionExists: async (name) => (await metadata.getFunction(name)) !== null,
    builtinTasks: builtinTaskNames,
  });
  workflowSink = new StoreNodeSink({
    store: backends.workflows,
    blobStore,
    processId: bootId,
    // The engine beside it writes attempts claimed for this process already.
    preclaimed: true,
    peek: (key, nodeKey) => engine.peek(key, nodeKey),
    onChange: (row) => engine.nodeChanged(row),
  });
  let intelligence: Intelligence;
  try {
    intelligence = await createIntelligence({
      options: options.intelligence,
      store: backends.intelligence,
      blobStore,
      logger,
      bucket: backends.blobBucket,
      factories: platformIntelligenceFactories({
        dataDir,
        runs: (parts) =>
          createFineTunePipeline({
            ...parts,
            backend: workflowBackend,
            workflowStore: backends.workflows,
            functionExists: async (name) => (await metadata.getFunction(name)) !== null,
            tasks: builtinTasks,
          }),
      }),
    });
  } catch (err) {
    await runtime.close();
    await backends.close();
    throw err;
  }
  // The fine-tune template is part of the platform: deployed when no workflow of that name exists. Its built-in tasks
  // run on the built-in engine only (a FlyteAdmin has no such tasks).
  try {
    if (
      options.workflowBackend.kind === 'builtin' &&
      (await backends.workflows.getWorkflow(fineTuneWorkflow)) === null
    ) {
      await workflowDeployer.deploy(fineTuneWorkflow, fineTuneSpec);
    }
  } catch (err) {
    logger.error({ err }, 'deploying the fine-tune workflow failed');
  }
  let ready = false;
  const embeddedControlPlane = createEmbeddedControlPlane({
    build: input.build ?? embeddedBuildInfo(),
    pool: options.redisUrl === undefined ? 'memory' : 'redis',
  });
  const { deployer, server, setReady, answerInvoke, metrics, resolver, run, asyncInvocations } = await createGateway({
    pool,
    queue,
    metadata,
    traffic,
    invocations,
    schedules: backends.schedules,
    messageQueues,
    triggers,
    functionUrls,
    urlDomain: options.urlDomain,
    blobStore,
    agents,
    logFeed: agentLogFeed(agent),
    queueWaitMs: options.queueWaitMs,
    onQueued: (name) => wake(name),
    requestTimeoutMs: options.requestTimeoutMs,
    lambdaArnScope: options.lambdaArnScope,
    apiKeys: options.apiKeys,
    keyedHash: (text) => sealer.keyedHash(text),
    logger,
    tracer,
    workflows: { deployer: workflowDeployer, backend: workflowBackend },
    intelligence,
    onChange: () => void controlPlane.reconcile(),
    controlPlane: embeddedControlPlane,
    nodes: async () => [
      {
        nodeId,
        status: ready ? 'ready' : 'draining',
        sandboxRuntime: runtime.kind,
        isolating: runtime.isolating,
        sandboxes: (await agent.listSandboxes()).length,
        enforcement: { ...runtime.capabilities, freezing: agent.freezing() },
        budget: agent.budgetUsage() ?? undefined,
        stemCells: await stemCellView(agent),
        warnings: runtimeWarnings(runtime),
      },
    ],
  });
  invalidate = (functionName) => resolver.invalidate(functionName);
  const events = createEventRunners({
    invocations,
    messageQueues,
    triggers,
    metadata,
    run,
    asyncInvocations,
    queueWaitMs: options.queueWaitMs,
    allowLoopbackWebhooks: options.allowLoopbackWebhooks,
    lambdaArnScope: options.lambdaArnScope,
    logger,
  });
  wake = (name) => events.wake(name);
  const runner = new WorkflowNodeRunner({ run, sink: workflowSink, logger });
  nodeRunner = runner;
  let lanes: LaneHost | null = null;
  const markReady = (value: boolean): void => {
    ready = value;
    setReady(value);
    lanes?.setReady(value);
  };

  manager.start();
  controlPlane.start();
  let address: string;
  /** Everything under the HTTP server, stopped in order (after the server, which waits for what is in flight). */
  const stopRoles = async (): Promise<void> => {
    await events.stop();
    await builtinTasks.stop();
    await intelligence.close();
    await controlPlane.stop();
    embeddedControlPlane.close();
    await runner.stop();
    await manager.stop();
    await agent.close();
    await runtime.close();
    await backends.close();
    // Last: the spans of what stopped above are exported before the process ends.
    await tracer.shutdown().catch((err: unknown) => logger.warn({ err }, 'exporting the last spans failed'));
  };
  try {
    address = await server.listen({ host: options.host, port: options.port });
  } catch (err) {
    await stopRoles();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new PlatformError(
        'UNAVAILABLE',
        `port ${options.port} on ${options.host} is already in use; pick another with --port`,
        { cause: err },
      );
    }
    throw PlatformError.from(err, 'UNAVAILABLE');
  }
  if (options.eventLoops > 1) {
    try {
      lanes = await startLanes({
        lanes: options.eventLoops - 1,
        server: server.server,
        answerInvoke,
        ready: false,
        apiKeys: options.apiKeys,
        urlDomain: options.urlDomain,
        requestTimeoutMs: options.requestTimeoutMs,
        logger,
      });
    } catch (err) {
      await server.close();
      await stopRoles();
      throw err;
    }
  }
  let grpc: ExecutionServiceHandle | null = null;
  if (options.grpcPort !== undefined) {
    try {
      grpc = await serveExecutionService({
        address: `${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.grpcPort}`,
        backend: workflowBackend,
        deployer: workflowDeployer,
        intelligence,
        apiKeys: options.apiKeys,
        logger,
      });
    } catch (err) {
      await lanes?.close();
      await server.close();
      await stopRoles();
      throw err;
    }
  }
  metrics.watchEventLoops(lanes?.eventLoops ?? 1, () => lanes?.invocations() ?? []);
  markReady(true);
  events.start();
  // Curation jobs a previous process left active go on.
  intelligence.start().catch((err: unknown) => logger.error({ err }, 'resuming curation jobs failed'));
  void controlPlane.reconcile();
  logger.info(
    {
      address,
      dataDir,
      sandbox: runtime.kind,
      eventLoops: options.eventLoops,
      backends: backends.describe(),
      workflowBackend: describeWorkflowBackend(options.workflowBackend),
    },
    'savassan started',
  );

  let closing: Promise<void> | undefined;
  return {
    url: address,
    options,
    deployer,
    metadata,
    runtime,
    backends: backends.describe(),
    server,
    workflows: { deployer: workflowDeployer, backend: workflowBackend, engine, store: backends.workflows },
    builtinTasks,
    grpcAddress: grpc?.address ?? null,
    close() {
      closing ??= (async () => {
        markReady(false);
        await grpc?.close();
        // Queue batches and asynchronous invocations in flight finish while the invoke path is whole.
        await events.stop();
        // The lanes first: what they have in flight runs on this loop's invoker and API.
        await lanes?.close();
        await server.close(); // waits for in-flight requests (invocations) to finish
        await stopRoles();
        logger.info({}, 'savassan stopped');
      })();
      return closing;
    },
  };
}

function compileGrpcPort(port: number | undefined): number | undefined {
  if (port === undefined) return undefined;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new PlatformError('INVALID_CONFIG', `--grpc-port must be a port from 0 to 65535, got ${port}`);
  }
  return port;
}

/** A URL domain as `--url-domain` gives it: a DNS name, lowercased, without a trailing dot; '' means none. */
function compileUrlDomain(domain: string | undefined): string | undefined {
  if (domain === undefined || domain === '') return undefined;
  const name = domain.trim().toLowerCase().replace(/\.$/, '');
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(name) || name.length > 253) {
    throw new PlatformError('INVALID_CONFIG', `--url-domain must be a DNS name like fn.example.com, got ${domain}`);
  }
  return name;
}

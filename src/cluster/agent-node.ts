import { chmod, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { Agent, defaultSandboxLimits, defaultStemCells } from '../agent/agent.js';
import { compileNodeBudget, nodeCgroupLimits } from '../agent/node-budget.js';
import { serveAgent } from '../agent/grpc-server.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { NodeInfo, NodeRegistration } from '../core/ports/cluster.js';
import type { SandboxRuntime } from '../core/ports/sandbox-runtime.js';
import { openBlobStore } from '../embedded/backends.js';
import { createRuntime, type SandboxKind } from '../sandbox/runtimes.js';
import { readBuildInfo } from './build.js';
import { Closers } from './closers.js';
import { createTracer } from '../adapters/otel/tracing.js';
import { openNodesCluster, type EtcdSecurity } from './connections.js';

export type { SandboxKind };

export interface AgentNodeOptions {
  nodeId: string;
  dataDir: string;
  /** Where the gRPC server listens: `host:port` (port 0 picks one) or `unix:/path`. */
  listen: string;
  /** The address other nodes dial, when it differs from `listen` (a wildcard host, NAT). */
  advertise?: string | undefined;
  /** Shared cluster token; every gRPC call must present it. */
  token: string;
  /** Sandboxes this node runs at once; placement never asks for more. */
  capacity: number;
  sandbox: SandboxKind;
  stemCells: boolean;
  /** MB all sandboxes may hold together (`--node-memory`); default: the host's memory less a reserve. */
  nodeMemoryMB?: number | undefined;
  /** Processes and threads all sandboxes may hold together (`--node-pids`); default: the kernel's limit less a reserve. */
  nodePids?: number | undefined;
  /** Freeze sandboxes idle this long (ms; 0: after each invocation; false: never). Default `defaultFreezeIdleMs`. */
  freezeIdleMs?: number | false | undefined;
  etcdEndpoints: string[];
  etcdPrefix?: string | undefined;
  etcdSecurity?: EtcdSecurity | undefined;
  /** Code and logs: S3 (shared by the cluster) or, for a single machine, `{dataDir}/blobs`. */
  s3Url?: string | undefined;
  /** The registration's lease: a node that stops answering leaves the cluster after this long. */
  leaseTtlSeconds: number;
  logger: Logger;
}

export interface AgentNode {
  readonly nodeId: string;
  readonly address: string;
  /** Deregister, stop serving, destroy every sandbox. Idempotent. */
  close(): Promise<void>;
}

/** How often the node republishes its NodeInfo when its sandboxes or code cache changed. */
const publishIntervalMs = 1000;

/**
 * `savassan agent`: one node's Agent as its own process. It serves the Agent over gRPC (cluster token required),
 * registers its NodeInfo in etcd on a lease kept alive in the background, republishes it as sandboxes come and
 * go, and deregisters on a graceful stop; if it dies, the lease expires and the cluster forgets it.
 */
export async function startAgentNode(options: AgentNodeOptions): Promise<AgentNode> {
  const { nodeId, logger } = options;
  if (options.token === '') throw new PlatformError('INVALID_CONFIG', 'a cluster token is required (--token)');
  const dataDir = resolve(options.dataDir);
  // Private: the database, code, logs and sandbox directories are nobody else's business (sandboxes reach their
  // own code through binds made as root, see bwrap-runtime.ts).
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  await chmod(dataDir, 0o700);
  const workDir = join(dataDir, 'agent');
  const budget = await compileNodeBudget(
    { memoryMB: options.nodeMemoryMB, pids: options.nodePids },
    defaultSandboxLimits.pids,
  );
  // Placement counts sandboxes: never more than the pid budget holds.
  const capacity = Math.min(options.capacity, Math.floor(budget.pids / defaultSandboxLimits.pids));
  const closers = new Closers(logger);
  try {
    // First, and closed last: a bad tracing variable stops the start; the last spans are exported at the end.
    const tracer = await createTracer(process.env, 'savassan-agent');
    closers.add(() => tracer.shutdown());
    const cluster = await openNodesCluster(options, logger);
    closers.add(() => cluster.close());
    const { blobStore } = await openBlobStore({ dataDir, s3Url: options.s3Url });
    closers.add(() => blobStore.close());
    const runtime: SandboxRuntime = await createRuntime(options.sandbox, workDir, logger, nodeCgroupLimits(budget));
    closers.add(() => runtime.close());
    const agent = new Agent({
      nodeId,
      runtime,
      blobStore,
      workDir,
      logger,
      capacity,
      stemCells: defaultStemCells(options.stemCells),
      budget,
      freezeIdleMs: options.freezeIdleMs,
      tracer,
    });
    closers.add(() => agent.close());
    const startedAt = Date.now();
    const build = await readBuildInfo();
    let address = options.advertise ?? '';
    const nodeInfo = async (): Promise<NodeInfo> => ({
      nodeId,
      agentAddress: address,
      capacity,
      sandboxes: (await agent.listSandboxes()).length,
      sandboxRuntime: runtime.kind,
      isolating: runtime.isolating,
      codeCached: await agent.cachedCode(),
      startedAt,
      enforcement: { ...runtime.capabilities, freezing: agent.freezing() },
      build,
    });
    const server = await serveAgent(agent, {
      address: options.listen,
      advertise: options.advertise,
      token: options.token,
      nodeInfo,
      logger,
    });
    closers.add(() => server.close());
    address = options.advertise ?? server.address;
    if (/^(0\.0\.0\.0|\[::\]|::):/.test(address)) {
      throw new PlatformError(
        'INVALID_CONFIG',
        `listening on ${address}: give the address others dial with --advertise`,
      );
    }
    const publisher = new Publisher(options, nodeInfo, cluster.registry, logger);
    await publisher.start();
    closers.add(() => publisher.stop());
    logger.info({ nodeId, address, capacity, budget, sandbox: runtime.kind }, 'agent node started');
    return {
      nodeId,
      address,
      close: () => closers.close(),
    };
  } catch (err) {
    await closers.close();
    throw err;
  }
}

/** Keeps the node's registration alive and current; registers again if the lease is lost (etcd was down). */
class Publisher {
  private registration: NodeRegistration | null = null;
  private last = '';
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private busy = false;

  constructor(
    private readonly options: AgentNodeOptions,
    private readonly info: () => Promise<NodeInfo>,
    private readonly registry: { register(info: NodeInfo, ttlSeconds: number): Promise<NodeRegistration> },
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    await this.register();
    this.timer = setInterval(() => void this.publish(), publishIntervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.registration?.deregister();
  }

  private async register(): Promise<void> {
    const info = await this.info();
    const registration = await this.registry.register(info, this.options.leaseTtlSeconds);
    this.registration = registration;
    this.last = JSON.stringify(info);
    void registration.lost.then(() => this.onLost(registration));
  }

  private onLost(registration: NodeRegistration): void {
    if (this.stopped || registration !== this.registration) return;
    this.logger.warn({ nodeId: this.options.nodeId }, 'cluster registration lost; registering again');
    this.registration = null;
  }

  private async publish(): Promise<void> {
    // One tick at a time: with etcd slow or down, overlapping registrations would leave stray leases behind.
    if (this.stopped || this.busy) return;
    this.busy = true;
    try {
      if (this.registration === null) {
        await this.register();
        this.logger.info({ nodeId: this.options.nodeId }, 'registered in the cluster again');
        return;
      }
      const info = await this.info();
      const text = JSON.stringify(info);
      if (text === this.last) return;
      await this.registration.update(info);
      this.last = text;
    } catch (err) {
      this.logger.debug({ err }, 'could not publish the node info');
    } finally {
      this.busy = false;
    }
  }
}

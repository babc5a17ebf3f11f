import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { Cluster, RoutingTable } from '../core/ports/cluster.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import { Leadership } from './leadership.js';
import { Reconciler, type Provisioning } from './reconciler.js';
import { RolloutDriver } from './rollout-driver.js';
import { RoutingPublisher, type GatewayAddress, type RoutedNode } from './routing-publisher.js';
import { Scheduler, type SchedulerOptions } from './scheduler.js';
import { WorkflowEngine, type WorkflowEngineOptions } from '../workflows/engine.js';

/** Cluster mode: the election and the routing table the leader publishes. */
export interface ControlPlaneClusterOptions {
  cluster: Cluster;
  /** Who campaigns for the lead (the Manager's id). */
  candidateId: string;
  /** The verified Agents now, for the routing table. */
  nodes: () => RoutedNode[];
  /** Push a table to one gateway (over gRPC). */
  push: (gateway: GatewayAddress, table: RoutingTable) => Promise<unknown>;
  /**
   * Called each time this process starts leading, before the leader's loops run: the leader-held pool takes its state
   * here (a handover's, or its copy as a follower).
   */
  onLead?: (() => void) | undefined;
  /** Called each time a lead of this process ends (lost, taken over by another, or given up by `stop`). */
  onLose?: (() => void) | undefined;
}

export interface ControlPlaneOptions {
  pool: Pool;
  metadata: MetadataStore;
  /** Aliases and rollouts: what the reconcile keeps warm, what the rollout driver moves. */
  traffic: TrafficStore;
  agents: AgentDirectory;
  /** The Manager, which provisions what the reconcile asks for. */
  provisioning: Provisioning;
  /** The schedules the leader fires, and where their events go. Absent: no schedules fire. */
  schedules?: Pick<SchedulerOptions, 'schedules' | 'asyncInvocations'> | undefined;
  /** The workflow engine's stores and invoke path: the leader runs the workflow executions. Absent: none run. */
  workflows?: Omit<WorkflowEngineOptions, 'isLeader' | 'logger' | 'now'> | undefined;
  /** How often due schedules are looked for while leading. Default 200 ms. */
  scheduleTickMs?: number | undefined;
  /** Absent: this process always leads (embedded mode). */
  cluster?: ControlPlaneClusterOptions | undefined;
  /** How often the reconcile runs while leading. Default 1 s. */
  reconcileIntervalMs?: number | undefined;
  /** How often running rollouts are judged while leading. Default 1 s. */
  rolloutTickMs?: number | undefined;
  /**
   * After a rollout moved a function's traffic: embedded mode drops the local gateway's cached resolution of it. In
   * a cluster the routing table carries the change to every gateway as well.
   */
  onTrafficChange?: ((functionName: string) => void) | undefined;
  logger?: Logger | undefined;
  now?: (() => number) | undefined;
}

/**
 * The control plane: in a cluster one Manager leads it (elected through the cluster store, again after a loss);
 * in embedded mode the single process always leads. While leading it reconciles the warm pool (`Reconciler`),
 * drives the running rollouts (`RolloutDriver`, which resumes them from the store after a change of leader) and
 * keeps the routing table written and pushed to the gateways (`RoutingPublisher`), fires the schedules
 * (`Scheduler`) and runs the workflow executions (`WorkflowEngine`); otherwise it does nothing.
 */
export class ControlPlane {
  readonly #leadership: Leadership | null;
  readonly #clusterOnLead: (() => void) | undefined;
  readonly #publisher: RoutingPublisher | null;
  readonly #reconciler: Reconciler;
  readonly #rollouts: RolloutDriver;
  readonly #scheduler: Scheduler | null;
  readonly #workflows: WorkflowEngine | null;
  #started = false;
  #stopped = false;

  constructor(options: ControlPlaneOptions) {
    this.#clusterOnLead = options.cluster?.onLead;
    const logger = (options.logger ?? silentLogger).child({ role: 'control-plane' });
    const { cluster } = options;
    const isLeader = (): boolean => this.leading;
    this.#leadership =
      cluster === undefined
        ? null
        : new Leadership({
            cluster: cluster.cluster,
            candidateId: cluster.candidateId,
            logger,
            onLead: () => this.#onLead(),
            ...(cluster.onLose === undefined ? {} : { onLose: cluster.onLose }),
          });
    this.#publisher =
      cluster === undefined
        ? null
        : new RoutingPublisher({
            routing: cluster.cluster.routing,
            isLeader,
            nodes: cluster.nodes,
            push: cluster.push,
            logger,
          });
    this.#reconciler = new Reconciler({
      pool: options.pool,
      metadata: options.metadata,
      traffic: options.traffic,
      agents: options.agents,
      provisioning: options.provisioning,
      isLeader,
      logger,
      ...(options.reconcileIntervalMs === undefined ? {} : { intervalMs: options.reconcileIntervalMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    this.#rollouts = new RolloutDriver({
      traffic: options.traffic,
      isLeader,
      onTrafficChange: (functionName) => {
        this.#publisher?.publishTraffic([functionName]);
        options.onTrafficChange?.(functionName);
      },
      logger,
      ...(options.rolloutTickMs === undefined ? {} : { tickMs: options.rolloutTickMs }),
      ...(options.now === undefined ? {} : { now: options.now }),
    });
    this.#scheduler =
      options.schedules === undefined
        ? null
        : new Scheduler({
            ...options.schedules,
            isLeader,
            logger,
            ...(options.scheduleTickMs === undefined ? {} : { tickMs: options.scheduleTickMs }),
            ...(options.now === undefined ? {} : { now: options.now }),
          });
    this.#workflows =
      options.workflows === undefined
        ? null
        : new WorkflowEngine({
            ...options.workflows,
            isLeader,
            logger,
            ...(options.now === undefined ? {} : { now: options.now }),
          });
  }

  /** The workflow engine (it steps executions only while this process leads), or null without `workflows`. */
  get workflowEngine(): WorkflowEngine | null {
    return this.#workflows;
  }

  /** Whether this process leads the control plane now (always in embedded mode, until stopped). */
  get leading(): boolean {
    if (this.#stopped) return false;
    return this.#leadership === null ? this.#started : this.#leadership.leading;
  }

  /** The term this process leads in (see `Lead.term`); 0 while not leading, and always in embedded mode. */
  get term(): number {
    return this.#stopped || this.#leadership === null ? 0 : this.#leadership.term;
  }

  /**
   * Take the lead over from `fromId`, the leader now, with no moment without a leader (a graceful handover); resolves
   * with the new term. CONFLICT when `fromId` does not lead or this process leads already; BAD_REQUEST in embedded
   * mode, where the single process always leads.
   */
  takeOver(fromId: string): Promise<number> {
    if (this.#leadership === null) {
      return Promise.reject(new PlatformError('BAD_REQUEST', 'embedded mode has no lead to take over'));
    }
    if (this.#stopped) return Promise.reject(new PlatformError('UNAVAILABLE', 'the control plane is stopped'));
    return this.#leadership.takeOver(fromId);
  }

  /** Campaign (cluster mode) and run the leader's loops while leading. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#reconciler.start();
    this.#rollouts.start();
    this.#scheduler?.start();
    this.#workflows?.start();
    if (this.#leadership === null) this.#onLead();
    else this.#leadership.start();
  }

  /** Stop the loops and give the lead up; waits for work under way. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // The lead first, so that another candidate takes over while the work under way ends here.
    await this.#leadership?.stop();
    await Promise.all([
      this.#reconciler.stop(),
      this.#rollouts.stop(),
      this.#scheduler?.stop(),
      this.#workflows?.stop(),
    ]);
    await this.#publisher?.settled();
  }

  /** Reconcile now (after a deploy), if leading. Never rejects. */
  reconcile(): Promise<void> {
    return this.#reconciler.reconcile();
  }

  /** Judge the running rollouts now, if leading. Never rejects. */
  driveRollouts(): Promise<void> {
    return this.#rollouts.tick();
  }

  /** Fire the due schedules now, if leading. Never rejects. */
  fireSchedules(): Promise<void> {
    return this.#scheduler?.tick() ?? Promise.resolve();
  }

  /** The Agents changed: the leader writes and pushes a new routing table. */
  nodesChanged(): void {
    this.#publisher?.publishNodes();
  }

  /** A gateway registered: it gets the current table at once from the leader. */
  gatewayJoined(gateway: GatewayAddress): void {
    this.#publisher?.gatewayJoined(gateway);
  }

  gatewayLeft(gatewayId: string): void {
    this.#publisher?.gatewayLeft(gatewayId);
  }

  #onLead(): void {
    this.#clusterOnLead?.();
    this.#publisher?.publishNodes();
    // A new leader goes on with the rollouts where the last one left them, without waiting for a tick.
    void this.#rollouts.tick();
    void this.#scheduler?.tick();
    void this.#workflows?.pass();
  }
}

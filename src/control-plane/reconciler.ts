import { silentLogger, type Logger } from '../core/logger.js';
import { countInstances, sandboxesOf, type AgentDirectory, type NodeSandbox } from '../core/ports/agent-directory.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { Pool } from '../core/ports/pool.js';
import type { ServedVersions, TrafficStore } from '../core/ports/traffic-store.js';
import type { FunctionRecord, FunctionVersion, InstanceRef, ProvisionRequest, VersionId } from '../core/types.js';
import { parsePoolKey, poolKey } from '../core/types.js';
import { LeaderPass } from './leader-pass.js';

/** What the reconciler needs of the Manager, which provisions sandboxes. */
export interface Provisioning {
  /**
   * Create one sandbox for `request` now, unless it is no longer needed or the version is at its max instances;
   * rejects when the metadata store or the pool is down.
   */
  provision(request: ProvisionRequest): Promise<unknown>;
  /** Ask for replacements of instances that left the pool without being returned, where requests wait for them. */
  replaceFor(instances: readonly InstanceRef[]): void;
  /** Sandboxes on their way for a pool key. */
  inFlight(key: string): number;
}

export interface ReconcilerOptions {
  pool: Pool;
  metadata: MetadataStore;
  /** Which versions carry traffic (an alias points at them) or are kept for a rollout. */
  traffic: Pick<TrafficStore, 'servedVersions'>;
  /** The Agents whose sandboxes are reconciled: the local one in embedded mode, the cluster's live nodes otherwise. */
  agents: AgentDirectory;
  provisioning: Provisioning;
  /** Whether this process leads the control plane now: a pass runs only then. Default: always. */
  isLeader?: () => boolean;
  /** How often a pass runs (`start`); also how long a sandbox must be seen idle before the pool gets it back. */
  intervalMs?: number;
  logger?: Logger;
  now?: () => number;
}

/** An idle sandbox of the Agent as the reconcile saw it first: its invocation count and when. */
interface IdleSighting {
  invocations: number;
  since: number;
}

/**
 * The control plane's housekeeping of the warm pool, run by the leader: keeps min instances of every serving version
 * (one an alias gives traffic) warm, reaps idle instances past their idle time, drains the idle instances of versions
 * neither serving nor retained (see `ServedVersions`: a running rollout's two versions, the baseline of one promoted
 * within its rollback window), reclaims expired leases (and asks for replacements) and rebuilds the pool from the
 * Agents' idle sandboxes when the pool lost them (Redis restarted empty). Retained versions keep their warm instances,
 * so that going back to them costs no cold start, until these idle past the version's `idleSeconds` (no min instances
 * are kept for them): a sandbox is never kept indefinitely, with the secret values it started with. A failing pass (a backend down) is retried by the
 * next one and logged once per outage.
 */
export class Reconciler {
  readonly #options: Required<Omit<ReconcilerOptions, 'logger'>> & { logger: Logger };
  readonly #pass: LeaderPass;
  /** The Agents' idle sandboxes at the last pass, by instance id. */
  #idleSightings = new Map<string, IdleSighting>();

  constructor(options: ReconcilerOptions) {
    this.#options = {
      intervalMs: 1000,
      now: Date.now,
      isLeader: () => true,
      ...options,
      logger: (options.logger ?? silentLogger).child({ role: 'reconciler' }),
    };
    this.#pass = new LeaderPass(() => this.#reconcileOnce(), {
      intervalMs: this.#options.intervalMs,
      isLeader: this.#options.isLeader,
      logger: this.#options.logger,
      what: 'reconcile',
    });
  }

  /** Run a pass every interval (while leading). */
  start(): void {
    this.#pass.start();
  }

  /** Stop the timer and wait for a pass under way. Idempotent. */
  stop(): Promise<void> {
    return this.#pass.stop();
  }

  /** One pass; runs on the timer and after deploys. Concurrent calls share one pass; never rejects. */
  reconcile(): Promise<void> {
    return this.#pass.run();
  }

  async #reconcileOnce(): Promise<void> {
    const { pool, metadata, traffic, agents, provisioning, now } = this.#options;
    // Sandboxes and pool keys are read before the functions: a sandbox or key exists only once its incarnation was
    // stored, so one whose incarnation is missing from the list read after it belongs to a deleted function (and
    // not to one being created meanwhile).
    const sandboxes = await sandboxesOf(agents);
    const keys = await pool.keys();
    const listed = await Promise.all([metadata.listFunctions(), traffic.servedVersions(new Date(now()))]).then(
      ([list, served]) => ({ functions: new Map(list.map((f) => [f.name, f])), served }),
      (err: unknown) => ({ err }),
    );
    if ('err' in listed) {
      // The pool is still rebuilt while the metadata store is down; the pool itself refuses deleted functions' keys.
      await this.#restoreLostInstances(sandboxes, () => true);
      throw listed.err;
    }
    const { functions, served } = listed;
    const live = (of: { functionName: string; incarnation: string }): FunctionRecord | null => {
      const fn = functions.get(of.functionName);
      return fn?.incarnation === of.incarnation ? fn : null;
    };
    /** The versions of a live function to keep; a function created after the served versions were read has its current one. */
    const keptOf = (fn: FunctionRecord): ServedVersions => {
      const kept = served.get(fn.name);
      return kept?.incarnation === fn.incarnation
        ? kept
        : { incarnation: fn.incarnation, serving: [fn.currentVersion], retained: [] };
    };
    const serving = (of: VersionId): boolean => {
      const fn = live(of);
      return fn !== null && keptOf(fn).serving.includes(of.version);
    };
    const retained = (of: VersionId): boolean => {
      const fn = live(of);
      return fn !== null && keptOf(fn).retained.includes(of.version);
    };
    const toDestroy = new Map<string, { instanceId: string; nodeId: string }>();
    const destroy = (instances: readonly { instanceId: string; nodeId: string }[]): void => {
      for (const instance of instances) toDestroy.set(instance.instanceId, instance);
    };
    // An instance restored here of a version no longer kept is retired by the steps below.
    const { restored, orphans } = await this.#restoreLostInstances(
      sandboxes,
      (of) => live(of) !== null,
      (of) => serving(of) || retained(of),
    );
    destroy(orphans);
    for (const instance of restored) keys.push(poolKey(instance));
    const reclaimed = await pool.reclaimExpired(now());
    provisioning.replaceFor(reclaimed);
    destroy(reclaimed);
    // Each version is read once per pass, however many steps below need it.
    const versions = new Map<string, Promise<FunctionVersion | null>>();
    const versionOf = (fn: FunctionRecord, version: number): Promise<FunctionVersion | null> => {
      const key = `${fn.name}@${version}`;
      let read = versions.get(key);
      if (read === undefined) {
        read = metadata.getVersion(fn.name, version);
        versions.set(key, read);
      }
      return read;
    };

    for (const key of new Set(keys)) {
      const id = parsePoolKey(key);
      const fn = id === null ? null : live(id);
      if (id === null || fn === null) {
        // A deleted function (its deleting gateway may have stopped before retiring the key): never pooled again.
        destroy(await pool.retire(key));
        continue;
      }
      if (!serving(id) && !retained(id)) {
        // A version no alias serves and no rollout keeps: retire its idle instances now (an alias may bring it back).
        destroy(await pool.drain(key));
        continue;
      }
      const version = await versionOf(fn, id.version);
      if (version === null) continue;
      const idleBefore = now() - version.config.idleSeconds * 1000;
      // A retained version (kept for a rollback, without traffic) keeps no min instances: its warm ones idle out.
      destroy(await pool.reapIdle(key, idleBefore, serving(id) ? version.config.minInstances : 0));
    }
    await Promise.allSettled(
      [...toDestroy.values()].map(
        (instance) => agents.get(instance.nodeId)?.destroySandbox(instance.instanceId) ?? Promise.resolve(),
      ),
    );

    // Keep min instances of every serving version warm.
    for (const fn of functions.values()) {
      for (const number of keptOf(fn).serving) {
        const version = await versionOf(fn, number);
        if (version === null || version.config.minInstances === 0) continue;
        const missing =
          version.config.minInstances -
          (await countInstances(agents, version)) -
          provisioning.inFlight(poolKey(version));
        // Leadership can move during a pass: stop provisioning as soon as this process no longer leads.
        for (let i = 0; i < missing && !this.#pass.stopped && this.#options.isLeader(); i++) {
          await provisioning.provision({
            functionName: fn.name,
            incarnation: fn.incarnation,
            version: number,
            reason: 'min-instances',
            requestedAt: now(),
          });
        }
      }
    }
  }

  /**
   * Rebuilds the pool from the Agent's sandboxes: an idle sandbox that the pool holds neither idle nor checked out
   * was lost by the pool (Redis restarted empty or was flushed, or a return failed during an outage) and is put
   * back. Only sandboxes seen idle, with the same invocation count, for at least one reconcile interval are
   * candidates: one that just finished an invocation or its creation is on its way back to the pool already, and
   * `restore` is atomic, so an instance the pool holds is never added twice. Idle sandboxes of a deleted function
   * (`live` is false for their incarnation) are returned as orphans instead, to be destroyed: they would otherwise
   * keep running with their old code and secrets. Those of a version that is not `kept` (neither serving nor retained)
   * are restored too, so that the pass retires them as it retires the pool's (restoring claims them atomically: one the
   * pool holds is not destroyed under a gateway that checks it out), but they are not reported as losses: they leave
   * the pool at once.
   */
  async #restoreLostInstances(
    sandboxes: readonly NodeSandbox[],
    live: (of: { functionName: string; incarnation: string }) => boolean,
    kept: (of: VersionId) => boolean = () => true,
  ): Promise<{ restored: InstanceRef[]; orphans: NodeSandbox[] }> {
    const { pool, logger, now, intervalMs } = this.#options;
    const at = now();
    const sightings = new Map<string, IdleSighting>();
    const candidates: InstanceRef[] = [];
    const orphans: NodeSandbox[] = [];
    for (const sandbox of sandboxes) {
      if (sandbox.state !== 'idle') continue;
      // Version 0 is a deploy's trial sandbox, which its deployer destroys.
      if (sandbox.version !== 0 && !live(sandbox)) {
        orphans.push(sandbox);
        continue;
      }
      const previous = this.#idleSightings.get(sandbox.instanceId);
      const sighting =
        previous?.invocations === sandbox.invocations ? previous : { invocations: sandbox.invocations, since: at };
      sightings.set(sandbox.instanceId, sighting);
      if (at - sighting.since < intervalMs) continue;
      candidates.push({
        instanceId: sandbox.instanceId,
        functionName: sandbox.functionName,
        incarnation: sandbox.incarnation,
        version: sandbox.version,
        nodeId: sandbox.nodeId,
        createdAt: sandbox.createdAt,
        // Not reported by the Agent; it only shows on a restored instance that never served (a cold start).
        initMs: 0,
        invocations: sandbox.invocations,
        idleSince: at,
      });
    }
    this.#idleSightings = sightings;
    if (orphans.length > 0) logger.info({ orphans: orphans.length }, 'destroying idle sandboxes of deleted functions');
    if (candidates.length === 0) return { restored: [], orphans };
    const restored = await pool.restore(candidates);
    const back = restored.filter(kept);
    if (back.length === 0) return { restored, orphans };
    logger.warn(
      {
        restored: back.length,
        instances: back.map((i) => `${poolKey(i)}/${i.instanceId}`),
      },
      `pool rebuilt from the agent: ${back.length} idle sandbox(es) the pool had lost are back in it`,
    );
    return { restored, orphans };
  }
}

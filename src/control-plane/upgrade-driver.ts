import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import { describeBuild, sameBuild, type BuildInfo } from '../core/build-info.js';
import type { UpgradeStatus } from '../core/control-plane-view.js';
import { PlatformError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import type { ControlProcess, Infrastructure, InstalledBuild } from '../core/ports/infrastructure.js';

/** The managers and gateways of the cluster, as the upgrade needs them (the cluster wiring reads etcd and dials them). */
export interface Fleet {
  /** The managers and gateways registered now. */
  processes(): Promise<ControlProcess[]>;
  /**
   * Resolves once `id` is registered running `build` and, for a manager, follows the leader and has caught up; rejects
   * when that has not happened within `timeoutMs`.
   */
  waitJoined(id: string, build: BuildInfo, timeoutMs: number): Promise<void>;
  /** Hand the lead over to the manager `id`; resolves once it leads. */
  handoverTo(id: string): Promise<void>;
  /** Ask a process to leave (over gRPC); resolves once its etcd entry is gone. */
  shutdown(process: ControlProcess, reason: string): Promise<void>;
}

/** Where the upgrade status lives: the replicated control state, so that the next leader sees it. */
export interface UpgradeStatusSink {
  get(): UpgradeStatus | null;
  set(status: UpgradeStatus): void;
}

export interface UpgradeDriverOptions {
  infrastructure: Infrastructure;
  fleet: Fleet;
  status: UpgradeStatusSink;
  /** The manager this driver runs in (the leader) and its build. */
  self: { id: string; build: BuildInfo };
  /** How long a new process may take to join (register, and for a manager catch up). Default 2 minutes. */
  joinTimeoutMs?: number;
  /**
   * A gateway on a fixed port is launched again after this pause when its first launch fails (the old one may still
   * be releasing the port as it exits), up to 5 tries. Default 1 s.
   */
  relaunchDelayMs?: number;
  /** The id of a new process of `role` running `build`. Default: `<role>-<build id>-<8 hex digits>`. */
  newId?: (role: ControlProcess['role'], build: BuildInfo) => string;
  logger?: Logger;
  now?: () => number;
}

type Role = ControlProcess['role'];

/** Launches of a gateway on a fixed port, at most (see `relaunchDelayMs`). */
const relaunchTries = 5;

/**
 * Replaces every manager and gateway of the cluster with another build of the same control protocol, through the
 * Infrastructure port (`savassan upgrade --to VERSION_OR_PATH`). Runs on the leader.
 *
 * Gateways go one at a time: a new one is launched, joins, and then the old one is asked to leave and retired (a
 * gateway on a fixed `--port` cannot share it: the old one leaves first). Managers: as many new managers as old ones
 * are launched and each catches up with the leader; the old managers are recorded as `toRetire` and the lead is handed
 * to the first new manager. That new leader (the new build) calls `resume()`, which asks each old manager to leave and
 * retires it, then marks the upgrade succeeded.
 *
 * The status is written at every step to the replicated control state, so it survives the handover. When a step fails,
 * the upgrade stops as failed with the step and the reason; new processes started in that step are shut down (every
 * new manager, when the managers' part fails: none of them has replaced anything yet), and the old generation keeps
 * serving: nothing done in earlier steps is undone. A gateway on a fixed port whose replacement fails is not
 * restarted: the cluster serves with one gateway fewer until it is started again.
 */
export class UpgradeDriver {
  readonly #infrastructure: Infrastructure;
  readonly #fleet: Fleet;
  readonly #sink: UpgradeStatusSink;
  readonly #self: { id: string; build: BuildInfo };
  readonly #joinTimeoutMs: number;
  readonly #relaunchDelayMs: number;
  readonly #newId: (role: Role, build: BuildInfo) => string;
  readonly #logger: Logger;
  readonly #now: () => number;
  /** The run under way in this process (start's or resume's), if any. */
  #running: Promise<void> | undefined;
  /** Set while start() checks a target, so that two starts cannot both pass the checks. */
  #starting = false;

  constructor(options: UpgradeDriverOptions) {
    this.#infrastructure = options.infrastructure;
    this.#fleet = options.fleet;
    this.#sink = options.status;
    this.#self = options.self;
    this.#joinTimeoutMs = options.joinTimeoutMs ?? 120_000;
    this.#relaunchDelayMs = options.relaunchDelayMs ?? 1000;
    this.#newId = options.newId ?? defaultNewId;
    this.#logger = (options.logger ?? silentLogger).child({ component: 'upgrade' });
    this.#now = options.now ?? Date.now;
  }

  /**
   * Check `target` and start replacing the processes that do not run it; answers the status as the upgrade starts,
   * and goes on in the background. Refuses (CONFLICT) while an upgrade runs, when the target speaks another control
   * protocol, and when every process already runs it; the target's own errors (NOT_FOUND, BAD_REQUEST) pass through.
   */
  async start(target: string): Promise<UpgradeStatus> {
    if (this.#starting) throw new PlatformError('CONFLICT', 'an upgrade is being started: wait for it to end');
    this.#refuseWhileRunning();
    this.#starting = true;
    try {
      const build = await this.#infrastructure.resolve(target);
      this.#refuseWhileRunning();
      if (build.protocol !== this.#self.build.protocol) {
        throw new PlatformError(
          'CONFLICT',
          `build ${build.version} (${build.build}) speaks control protocol ${build.protocol}; this cluster speaks ${this.#self.build.protocol}: an upgrade across protocols is not supported`,
        );
      }
      const processes = await this.#fleet.processes();
      const old = processes.filter((p) => !sameBuild(p.build, build));
      if (old.length === 0) {
        throw new PlatformError(
          'CONFLICT',
          `every manager and gateway is already running ${describeBuild(build)}: there is nothing to upgrade`,
        );
      }
      const now = this.#now();
      const status: UpgradeStatus = {
        target,
        to: buildInfoOf(build),
        from: distinctBuilds(old.map((p) => p.build)),
        state: 'running',
        step: 'start',
        started: [],
        retired: [],
        toRetire: [],
        startedAt: now,
        updatedAt: now,
      };
      this.#sink.set(copy(status));
      this.#logger.info({ target, to: status.to, from: status.from, processes: old.length }, 'upgrade started');
      this.#running = this.#run(status, build, old).finally(() => {
        this.#running = undefined;
      });
      return copy(status);
    } finally {
      this.#starting = false;
    }
  }

  /**
   * On a leader that finds an upgrade running in the replicated state: stop and retire the old managers it lists in
   * `toRetire` (the previous leader handed over to this one for that), then mark it succeeded. An upgrade found
   * running without `toRetire` lost the leader that drove it, and one that lists this manager among the processes to
   * retire cannot be finished here: both are marked failed. Does nothing when no upgrade runs or this driver drives
   * it; the returned promise settles when the work is done and never rejects.
   */
  resume(): Promise<void> {
    const current = this.#sink.get();
    if (current?.state !== 'running' || this.#running !== undefined || this.#starting) return this.idle();
    const status = copy(current);
    this.#running = this.#resume(status).finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  /** Resolves once this driver has nothing under way (for shutdown and the tests). */
  async idle(): Promise<void> {
    while (this.#running !== undefined) await this.#running;
  }

  #refuseWhileRunning(): void {
    const current = this.#sink.get();
    if (this.#running !== undefined || current?.state === 'running') {
      const what = current?.state === 'running' ? ` to ${current.target} (step: ${current.step})` : '';
      throw new PlatformError('CONFLICT', `an upgrade${what} is already running: wait for it to end`);
    }
  }

  async #resume(status: UpgradeStatus): Promise<void> {
    if (status.toRetire.length === 0) {
      const started = status.started.join(', ') || 'none';
      await this.#fail(
        status,
        new PlatformError(
          'UNAVAILABLE',
          `the leader driving the upgrade stopped during "${status.step}" (new processes started so far: ${started}); run the upgrade again`,
        ),
        [],
      );
      return;
    }
    if (status.toRetire.some((p) => p.id === this.#self.id)) {
      await this.#fail(
        status,
        new PlatformError(
          'UNAVAILABLE',
          `the lead went to ${this.#self.id}, one of the old managers still to stop; hand the lead over to a manager of ${describeBuild(status.to)} (savassan leader handover --to ID) and run the upgrade again`,
        ),
        [],
      );
      return;
    }
    this.#logger.info({ toRetire: status.toRetire }, 'resuming the upgrade: stopping the old managers');
    await this.#retireOld(status);
  }

  async #run(status: UpgradeStatus, build: InstalledBuild, old: ControlProcess[]): Promise<void> {
    /** New processes launched in the step under way: shut down if it fails. */
    let launchedInStep: ControlProcess[] = [];
    try {
      const gateways = old.filter((p) => p.role === 'gateway');
      for (const [index, gateway] of gateways.entries()) {
        launchedInStep = [];
        const which = `gateway ${index + 1} of ${gateways.length}`;
        const port = fixedPort(gateway.args);
        if (port !== undefined) {
          this.#step(status, `stop ${which} (${gateway.id}): port ${port} cannot be shared`);
          await this.#stop(gateway, status);
        }
        this.#step(status, `start ${which}`);
        const fresh = await this.#launch('gateway', build, gateway, status, port === undefined ? 1 : relaunchTries);
        launchedInStep.push(fresh);
        this.#step(status, `wait for ${which} (${fresh.id}) to join`);
        await this.#fleet.waitJoined(fresh.id, build, this.#joinTimeoutMs);
        if (port === undefined) {
          this.#step(status, `stop ${which} (${gateway.id})`);
          await this.#stop(gateway, status);
        }
      }

      // The managers are one step: none of the new ones replaces anything before the handover, so all of them are
      // shut down when one fails to start or join, or when the handover fails.
      const managers = old.filter((p) => p.role === 'manager');
      const newManagers: ControlProcess[] = [];
      launchedInStep = newManagers;
      for (const [index, manager] of managers.entries()) {
        const which = `manager ${index + 1} of ${managers.length}`;
        this.#step(status, `start ${which}`);
        const fresh = await this.#launch('manager', build, manager, status);
        newManagers.push(fresh);
        this.#step(status, `wait for ${which} (${fresh.id}) to join and catch up`);
        await this.#fleet.waitJoined(fresh.id, build, this.#joinTimeoutMs);
      }

      const successor = newManagers[0];
      if (successor === undefined || sameBuild(this.#self.build, build)) {
        // No manager had to change, or this leader already runs the new build: it retires the old ones itself.
        launchedInStep = [];
        status.toRetire = managers.map(({ id, role }) => ({ id, role }));
        await this.#retireOld(status);
        return;
      }
      // Recorded before the handover, so that the snapshot the successor starts from has it.
      status.toRetire = managers.map(({ id, role }) => ({ id, role }));
      this.#step(status, `hand over to ${successor.id}`);
      try {
        await this.#fleet.handoverTo(successor.id);
      } catch (err) {
        status.toRetire = []; // this leader keeps the lead: nothing is left to retire
        throw err;
      }
      this.#logger.info({ to: successor.id }, 'handed over to the new build; it retires the old managers');
    } catch (err) {
      await this.#fail(status, err, launchedInStep);
    }
  }

  /** Stop and retire each process of `toRetire`, writing the status after each, then succeed. Never rejects. */
  async #retireOld(status: UpgradeStatus): Promise<void> {
    try {
      const total = status.toRetire.length;
      const known = new Map((await this.#fleet.processes()).map((p) => [p.id, p]));
      for (let index = 0; ; index++) {
        const next = status.toRetire[0];
        if (next === undefined) break;
        this.#step(status, `stop old ${next.role} ${index + 1} of ${total} (${next.id})`);
        // Gone from the registry already (it left, or a leader before this one stopped it): it is still retired, in
        // case its process lingers.
        const old = known.get(next.id) ?? {
          id: next.id,
          role: next.role,
          build: status.from[0] ?? status.to,
          args: [],
        };
        await this.#stop(old, status, known.has(next.id));
        status.toRetire = status.toRetire.slice(1);
        this.#write(status);
      }
      status.state = 'succeeded';
      this.#step(status, 'done');
      this.#logger.info({ to: status.to, started: status.started, retired: status.retired }, 'upgrade succeeded');
    } catch (err) {
      await this.#fail(status, err, []);
    }
  }

  async #launch(
    role: Role,
    build: InstalledBuild,
    like: ControlProcess,
    status: UpgradeStatus,
    tries = 1,
  ): Promise<ControlProcess> {
    for (let attempt = 1; ; attempt++) {
      const id = this.#newId(role, build);
      try {
        const launched = await this.#infrastructure.launch({ role, id, build, like });
        status.started = [...status.started, launched.id];
        this.#write(status);
        this.#logger.info({ role, id: launched.id, like: like.id, where: launched.where }, 'new process launched');
        return { id: launched.id, role, build: buildInfoOf(build), args: like.args };
      } catch (err) {
        if (attempt >= tries) throw err;
        this.#logger.warn({ role, id, attempt, err }, 'launch failed: trying again');
        await sleep(this.#relaunchDelayMs);
      }
    }
  }

  /** Ask an old process to leave (when it is still registered), then make sure it is gone. */
  async #stop(old: ControlProcess, status: UpgradeStatus, registered = true): Promise<void> {
    if (registered) await this.#fleet.shutdown(old, `replaced by ${describeBuild(status.to)}`);
    await this.#infrastructure.retire(old);
    status.retired = [...status.retired, old.id];
    this.#write(status);
  }

  async #fail(status: UpgradeStatus, err: unknown, launchedInStep: ControlProcess[]): Promise<void> {
    const error = err instanceof PlatformError ? err.rawMessage : err instanceof Error ? err.message : String(err);
    this.#logger.error({ step: status.step, err }, 'upgrade failed');
    status.state = 'failed';
    status.error = error;
    this.#write(status);
    for (const fresh of launchedInStep) {
      try {
        // Bounded: a process that never joined may never answer, and the next upgrade waits for this one to end.
        await withTimeout(
          this.#fleet.shutdown(fresh, `the upgrade failed: ${error}`),
          this.#joinTimeoutMs,
          `${fresh.id} did not leave within ${this.#joinTimeoutMs} ms`,
        );
      } catch (shutdownErr) {
        this.#logger.warn({ id: fresh.id, err: shutdownErr }, 'a new process of the failed step did not shut down');
      }
      try {
        await this.#infrastructure.retire(fresh);
      } catch (retireErr) {
        this.#logger.warn({ id: fresh.id, err: retireErr }, 'a new process of the failed step could not be retired');
      }
    }
  }

  #step(status: UpgradeStatus, step: string): void {
    status.step = step;
    this.#write(status);
    this.#logger.info({ step }, 'upgrade step');
  }

  #write(status: UpgradeStatus): void {
    status.updatedAt = this.#now();
    this.#sink.set(copy(status));
  }
}

function defaultNewId(role: Role, build: BuildInfo): string {
  return `${role}-${build.build}-${randomBytes(4).toString('hex')}`;
}

/** The `--port` a process was given, when it is fixed (not 0, which picks a free one). */
export function fixedPort(args: readonly string[]): number | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const value = arg === '--port' ? args[i + 1] : arg.startsWith('--port=') ? arg.slice('--port='.length) : undefined;
    if (value === undefined) continue;
    const port = Number(value);
    return Number.isInteger(port) && port > 0 ? port : undefined;
  }
  // The gateway's default port is fixed too.
  return 8080;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  const timeout = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(ms, undefined, { signal: timeout.signal, ref: false }).then(() => {
        throw new PlatformError('UNAVAILABLE', message);
      }),
    ]);
  } finally {
    timeout.abort();
  }
}

function buildInfoOf(build: BuildInfo): BuildInfo {
  return { version: build.version, build: build.build, protocol: build.protocol };
}

function distinctBuilds(builds: BuildInfo[]): BuildInfo[] {
  const out: BuildInfo[] = [];
  for (const build of builds) if (!out.some((b) => sameBuild(b, build))) out.push(buildInfoOf(build));
  return out;
}

function copy(status: UpgradeStatus): UpgradeStatus {
  return structuredClone(status);
}

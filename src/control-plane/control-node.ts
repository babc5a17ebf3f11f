import { compatibleBuilds, describeBuild, type BuildInfo } from '../core/build-info.js';
import type { ControlPlaneView, FollowerView, MemberView, UpgradeStatus } from '../core/control-plane-view.js';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { ProvisionQueue } from '../core/ports/provision-queue.js';
import type { ControlSnapshot } from './control-state.js';
import type { FollowEvent, HeldPool, LeaderHost, PoolRoute } from './leader-host.js';
import type { LoopDelayMonitor } from './loop-delay.js';

/** The pool and queue this manager holds while it leads, with their numbered change stream. */
export interface HeldState {
  readonly pool: HeldPool;
  readonly queue: ProvisionQueue;
  /** The last change's sequence number. */
  readonly seq: number;
  readonly upgrade: UpgradeStatus | null;
  /** A snapshot first (described by `meta`), then every batch of changes; returns the unsubscribe. */
  subscribe(listener: (event: FollowEvent) => void, meta: SnapshotMeta): () => void;
  /** The whole state (waiters included). */
  snapshot(meta: SnapshotMeta): ControlSnapshot;
  /** Writes wait (in `route()`) until `resume`. */
  pause(): void;
  resume(): void;
  setUpgrade(status: UpgradeStatus | null): void;
  /**
   * The state went to `toId` (a handover): end every blocked wait and queue pop with UNAVAILABLE, so that their callers
   * re-issue them there (a wait under its id, which keeps its place: the snapshot carried the waiters).
   */
  handOff(toId: string): void;
  close(): Promise<void>;
}

/** What a follower keeps: the leader's state as of `appliedSeq`. */
export interface HeldReplica {
  readonly appliedSeq: number;
  apply(event: FollowEvent): void;
  /** The state it holds, to lead from after a crash of the leader (no waiters). */
  snapshot(): ControlSnapshot | null;
}

export type SnapshotMeta = Pick<ControlSnapshot, 'leaderId' | 'term' | 'routingVersion' | 'rollouts' | 'schedules'>;

/** Another manager, as this one talks to it. */
export interface ManagerPeer {
  /** Receive the leader's state: resolves when the stream ends, rejects when it fails. */
  follow(
    followerId: string,
    build: BuildInfo,
    onEvent: (event: FollowEvent) => void,
    signal: AbortSignal,
  ): Promise<void>;
  reportApplied(followerId: string, appliedSeq: number): Promise<void>;
  becomeLeader(fromId: string, fromTerm: number, snapshot: ControlSnapshot): Promise<{ term: number }>;
  status(): Promise<ControlPlaneView>;
  handover(toId: string | undefined): Promise<{ fromId: string; toId: string; term: number; pausedMs: number }>;
  upgrade(target: string): Promise<UpgradeStatus>;
}

/** A manager, gateway or agent as its etcd entry shows it. */
export interface Member {
  id: string;
  role: 'manager' | 'gateway' | 'agent';
  /** Managers: the control address; gateways: their URL (else routing address); agents: the agent address. */
  address: string;
  /** Where its gRPC service listens: managers' Leader service, gateways' Routing service, agents' Agent service. */
  endpoint: string;
  build: BuildInfo | null;
  /** The arguments it was started with after its role (managers and gateways), for its replacement. */
  args: string[];
}

/** The cluster's processes and the leader, from etcd, and a way to reach a manager. */
export interface ControlDirectory {
  members(): Promise<Member[]>;
  /** The manager that leads now (its etcd election), with since when; null while none does. */
  leader(): Promise<{ id: string; since: Date | null } | null>;
  peer(manager: Member): ManagerPeer;
}

/** The control plane's election, as ControlNode drives it. */
export interface ControlLead {
  readonly leading: boolean;
  readonly term: number;
  /** Take the lead from `fromId` at once (a handover); resolves with the new term. */
  takeOver(fromId: string): Promise<number>;
}

/** Extra facts the snapshot carries (from the routing publisher, the traffic and schedule stores). */
export interface SnapshotFacts {
  routingVersion(): Promise<number>;
  rollouts(): Promise<string[]>;
  schedules(): Promise<number>;
}

/** The upgrade as ControlNode drives it (UpgradeDriver). */
export interface Upgrades {
  start(target: string): Promise<UpgradeStatus>;
  /** The new leader goes on with an upgrade that handed the lead to it. */
  resume(): void;
}

export interface ControlNodeOptions {
  id: string;
  build: BuildInfo;
  lead: ControlLead;
  directory: ControlDirectory;
  /** A state to lead with: from a snapshot (a handover or a follower's copy), or empty. */
  openState(snapshot: ControlSnapshot | null): HeldState;
  openReplica(): HeldReplica;
  facts: SnapshotFacts;
  /** Followers the leader keeps; `auto`: ⌈log₂(managers)⌉, at least 1. */
  followers: number | 'auto';
  /** Set once the upgrade driver exists (it needs this node). */
  upgrades?: Upgrades | undefined;
  loopDelay?: LoopDelayMonitor | undefined;
  /** Leave the process (Shutdown): the caller closes everything. */
  onShutdown(reason: string): void;
  logger: Logger;
  /** How often a follower says how far it applied. Default 200 ms. */
  reportMs?: number | undefined;
  /** Pause before a manager that is not following tries again. Default 1 s. */
  retryMs?: number | undefined;
}

interface FollowerEntry {
  build: BuildInfo;
  appliedSeq: number;
  reportedAt: number;
  since: number;
  controller: AbortController;
}

type HandoverRecord = NonNullable<ControlPlaneView['handover']>;

/**
 * The control plane of one manager with `--pool leader`: while it leads, it holds the pool and the provisioning
 * queue (`HeldState`) and streams their changes to its followers; otherwise it follows the leader (when the leader
 * takes it) and forwards pool calls there. A handover pauses writes, hands the state to the successor, which takes
 * the lead in etcd at once, and forwards what arrives meanwhile; a leader that crashed is followed by one that
 * continues from its copy, or, with none, rebuilds the pool from the Agents (the reconciler does).
 */
export class ControlNode implements LeaderHost {
  readonly id: string;
  readonly build: BuildInfo;
  readonly #options: ControlNodeOptions;
  readonly #logger: Logger;
  #state: HeldState | null = null;
  /** A state handed over by `becomeLeader`, waiting for the lead to start. */
  #handed: HeldState | null = null;
  #replica: HeldReplica | null = null;
  readonly #followers = new Map<string, FollowerEntry>();
  /** Set after this manager handed the lead over: where calls go until the directory says otherwise. */
  #forwardTo: { id: string; address: string; at: number } | null = null;
  /** While a handover runs: resolves when writes may go on (locally or forwarded). */
  #switching: Promise<void> | null = null;
  #handover: HandoverRecord | null = null;
  #followLoop: Promise<void> | null = null;
  #followAbort: AbortController | null = null;
  #stopped = false;
  #leaderCache: { id: string; address: string; at: number } | null = null;

  constructor(options: ControlNodeOptions) {
    this.#options = options;
    this.id = options.id;
    this.build = options.build;
    this.#logger = options.logger.child({ component: 'control-node' });
  }

  /** Set the upgrade driver (it is made with this node). */
  set upgrades(upgrades: Upgrades) {
    this.#options.upgrades = upgrades;
  }

  /** The state this manager leads with, or null. */
  get held(): HeldState | null {
    return this.#state;
  }

  /** Start following when not leading. */
  start(): void {
    this.#followLoop ??= this.#follow();
  }

  /** The lead started (ControlPlane's onLead): hold the state handed over, or the follower's copy, or an empty one. */
  onLead(): void {
    if (this.#stopped) return;
    this.#followAbort?.abort();
    this.#forwardTo = null;
    const handed = this.#handed;
    this.#handed = null;
    if (handed !== null) {
      this.#state = handed;
    } else {
      const copy = this.#replica?.snapshot() ?? null;
      this.#state = this.#options.openState(copy);
      this.#logger.warn(
        copy === null
          ? {}
          : { seq: copy.seq, idle: Object.values(copy.pool.idle).reduce((sum, list) => sum + list.length, 0) },
        copy === null
          ? 'leading without a copy of the pool: it is rebuilt from the Agents'
          : 'leading from the copy this follower kept',
      );
    }
    this.#replica = null;
    if (this.#state.upgrade?.state === 'running') this.#options.upgrades?.resume();
  }

  /** The lead ended (lost, or handed over): stop serving from the state. */
  onLose(): void {
    const state = this.#state;
    this.#state = null;
    for (const follower of this.#followers.values()) follower.controller.abort();
    this.#followers.clear();
    if (state !== null) {
      // Blocked waits end UNAVAILABLE rather than empty: their callers ask the next leader.
      state.handOff(this.#forwardTo?.id ?? 'the next leader');
      void state.close();
    }
  }

  async route(): Promise<PoolRoute> {
    if (this.#switching !== null) await this.#switching;
    // The successor just handed to, until etcd (read through #leader) can be trusted to name it or a later one.
    if (this.#forwardTo !== null && Date.now() - this.#forwardTo.at > forwardToMs) this.#forwardTo = null;
    if (this.#forwardTo !== null)
      return { kind: 'forward', leaderId: this.#forwardTo.id, address: this.#forwardTo.address };
    if (this.#state !== null && this.#options.lead.leading) {
      return { kind: 'local', pool: this.#state.pool, queue: this.#state.queue };
    }
    const leader = await this.#leader();
    if (leader === null) return { kind: 'none', reason: 'no manager leads the control plane now' };
    if (leader.id === this.id) return { kind: 'none', reason: `${this.id} is taking the lead` };
    return { kind: 'forward', leaderId: leader.id, address: leader.address };
  }

  follow(followerId: string, build: BuildInfo, send: (event: FollowEvent) => void, signal: AbortSignal): Promise<void> {
    const state = this.#state;
    if (state === null || !this.#options.lead.leading) {
      return Promise.reject(new PlatformError('CONFLICT', `${this.id} does not lead the control plane`));
    }
    if (!compatibleBuilds(build, this.build)) {
      return Promise.reject(
        new PlatformError(
          'CONFLICT',
          `${followerId} runs ${describeBuild(build)}; the leader runs ${describeBuild(this.build)}: protocols differ`,
        ),
      );
    }
    return Promise.all([this.#wanted(), this.#meta()]).then(([wanted, meta]) => {
      // Gone while they were read (a manager stopping as it began to follow): its abort has fired already, and an
      // entry made now would be listed as a follower for ever.
      if (signal.aborted) return;
      // The lead ended meanwhile: this state streams nothing more.
      if (this.#state !== state || !this.#options.lead.leading) {
        throw new PlatformError('CONFLICT', `${this.id} does not lead the control plane`);
      }
      this.#followers.get(followerId)?.controller.abort();
      this.#followers.delete(followerId);
      // During an upgrade, managers of the new build follow beyond the usual number: one of them takes the lead.
      const upgrading = state.upgrade?.state === 'running' && build.build === state.upgrade.to.build;
      if (this.#followers.size >= wanted && !upgrading) {
        throw new PlatformError('TOO_MANY_REQUESTS', `the leader has its ${wanted} follower(s)`);
      }
      const controller = new AbortController();
      const entry: FollowerEntry = { build, appliedSeq: 0, reportedAt: Date.now(), since: Date.now(), controller };
      this.#followers.set(followerId, entry);
      this.#logger.info({ followerId, build: describeBuild(build) }, 'a follower joined');
      return new Promise<void>((resolve) => {
        const end = (): void => {
          unsubscribe();
          if (this.#followers.get(followerId) === entry) this.#followers.delete(followerId);
          resolve();
        };
        const unsubscribe = state.subscribe(send, meta);
        signal.addEventListener('abort', end, { once: true });
        controller.signal.addEventListener('abort', end, { once: true });
      });
    });
  }

  /** How many changes the follower `id` is behind, or null when it does not follow this leader. */
  followerLag(id: string): number | null {
    const entry = this.#followers.get(id);
    if (entry === undefined || this.#state === null) return null;
    return Math.max(0, this.#state.seq - entry.appliedSeq);
  }

  reportApplied(followerId: string, appliedSeq: number): void {
    const entry = this.#followers.get(followerId);
    if (entry === undefined) return;
    entry.appliedSeq = Math.max(entry.appliedSeq, appliedSeq);
    entry.reportedAt = Date.now();
  }

  async becomeLeader(fromId: string, fromTerm: number, snapshot: ControlSnapshot): Promise<{ term: number }> {
    if (this.#stopped) throw new PlatformError('UNAVAILABLE', `${this.id} is stopping`);
    if (this.#options.lead.leading) throw new PlatformError('CONFLICT', `${this.id} leads already`);
    if (this.#handed !== null) throw new PlatformError('CONFLICT', `a handover to ${this.id} is under way`);
    const state = this.#options.openState(snapshot);
    this.#handed = state;
    try {
      const term = await this.#options.lead.takeOver(fromId);
      this.#logger.info({ fromId, fromTerm, term, seq: snapshot.seq }, 'took the lead over with the state handed');
      // What this leader saw of it: the pause so far, from the snapshot to the lead taken (the old leader's answer
      // adds the trip back).
      const at = Date.now();
      this.#handover = {
        state: 'done',
        from: fromId,
        to: this.id,
        at: new Date(at).toISOString(),
        pausedMs: Math.max(0, at - snapshot.takenAt),
      };
      // ControlPlane's onLead ran inside takeOver and took the handed state.
      if (this.#handed === state) this.onLead();
      return { term };
    } catch (err) {
      if (this.#handed === state) this.#handed = null;
      await state.close();
      throw err;
    }
  }

  async handover(toId: string | undefined): Promise<{ fromId: string; toId: string; term: number; pausedMs: number }> {
    const state = this.#state;
    if (state === null || !this.#options.lead.leading) {
      const leader = await this.#leaderMember();
      if (leader === null || leader.id === this.id) {
        throw new PlatformError('UNAVAILABLE', 'no manager leads the control plane now');
      }
      return this.#options.directory.peer(leader).handover(toId);
    }
    if (this.#switching !== null) throw new PlatformError('CONFLICT', 'a handover is under way');
    // Taken before anything is awaited: a second handover asked meanwhile is refused, never run beside this one.
    let release!: () => void;
    this.#switching = new Promise((resolve) => (release = resolve));
    let target: Member;
    try {
      target = await this.#target(toId);
    } catch (err) {
      this.#switching = null;
      release();
      throw err;
    }
    const started = Date.now();
    this.#handover = { state: 'running', from: this.id, to: target.id, at: new Date(started).toISOString() };
    state.pause();
    try {
      const snapshot = state.snapshot(await this.#meta());
      const { term } = await this.#options.directory
        .peer(target)
        .becomeLeader(this.id, this.#options.lead.term, snapshot);
      this.#forwardTo = { id: target.id, address: target.address, at: Date.now() };
      this.#leaderCache = null;
      const pausedMs = Date.now() - started;
      this.#handover = { ...this.#handover, state: 'done', pausedMs };
      this.#logger.info({ to: target.id, term, pausedMs }, 'handed the lead over');
      this.onLose();
      return { fromId: this.id, toId: target.id, term, pausedMs };
    } catch (err) {
      const error = PlatformError.from(err);
      this.#handover = { ...this.#handover, state: 'failed', error: error.rawMessage };
      this.#logger.warn({ err: error, to: target.id }, 'the handover failed: this manager leads on');
      throw new PlatformError(error.code, `the handover to ${target.id} failed: ${error.rawMessage}`, { cause: err });
    } finally {
      state.resume();
      this.#switching = null;
      release();
    }
  }

  async status(): Promise<ControlPlaneView> {
    if (this.#state === null || !this.#options.lead.leading) {
      const leader = await this.#leaderMember();
      if (leader !== null && leader.id !== this.id) return this.#options.directory.peer(leader).status();
    }
    return this.#view();
  }

  async upgrade(target: string): Promise<UpgradeStatus> {
    if (this.#state === null || !this.#options.lead.leading) {
      const leader = await this.#leaderMember();
      if (leader === null || leader.id === this.id) {
        throw new PlatformError('UNAVAILABLE', 'no manager leads the control plane now');
      }
      return this.#options.directory.peer(leader).upgrade(target);
    }
    const upgrades = this.#options.upgrades;
    if (upgrades === undefined) throw new PlatformError('CONFLICT', 'this manager cannot run upgrades');
    return upgrades.start(target);
  }

  shutdown(reason: string): void {
    this.#logger.info({ reason }, 'asked to leave');
    setImmediate(() => this.#options.onShutdown(reason));
  }

  /** Hand the lead over if leading (SIGTERM), then stop following. Never rejects. */
  async stop(): Promise<void> {
    // A handover under way ends first (the successor's upgrade may ask this manager to leave as it takes over).
    await this.#switching;
    if (this.#state !== null && this.#options.lead.leading) {
      try {
        await this.handover(undefined);
      } catch (err) {
        this.#logger.warn({ err }, 'could not hand the lead over before stopping: a follower takes it after the lease');
      }
    }
    this.#stopped = true;
    this.#followAbort?.abort();
    await this.#followLoop;
    this.onLose();
    await this.#handed?.close();
  }

  /** The view of a leader: itself, its followers, the members and their builds. */
  async #view(): Promise<ControlPlaneView> {
    const state = this.#state;
    const [members, leader, wanted] = await Promise.all([
      this.#options.directory.members(),
      this.#options.directory.leader(),
      this.#wanted(),
    ]);
    const leaderBuild = state === null ? null : this.build;
    const now = Date.now();
    const followers: FollowerView[] = [...this.#followers].map(([id, entry]) => ({
      id,
      build: entry.build,
      appliedSeq: entry.appliedSeq,
      lag: Math.max(0, (state?.seq ?? 0) - entry.appliedSeq),
      reportedMsAgo: now - entry.reportedAt,
      since: new Date(entry.since).toISOString(),
    }));
    const memberViews = viewsOfMembers(members, leader?.id, (id) => this.#followers.has(id), this.build);
    return {
      mode: 'cluster',
      pool: 'leader',
      leader:
        leader === null
          ? null
          : {
              id: leader.id,
              since: leader.since === null ? null : leader.since.toISOString(),
              term: leader.id === this.id ? this.#options.lead.term : 0,
              build: leader.id === this.id ? leaderBuild : (members.find((m) => m.id === leader.id)?.build ?? null),
              seq: leader.id === this.id ? (state?.seq ?? 0) : 0,
              loopDelayMs: leader.id === this.id ? (this.#options.loopDelay?.figures() ?? null) : null,
            },
      followersWanted: wanted,
      followers,
      members: memberViews,
      handover: this.#handover,
      upgrade: state?.upgrade ?? null,
    };
  }

  async #meta(): Promise<SnapshotMeta> {
    const { facts } = this.#options;
    const [routingVersion, rollouts, schedules] = await Promise.all([
      facts.routingVersion(),
      facts.rollouts(),
      facts.schedules(),
    ]);
    return { leaderId: this.id, term: this.#options.lead.term, routingVersion, rollouts, schedules };
  }

  /** The successor: the manager named, or the follower that applied the most. */
  async #target(toId: string | undefined): Promise<Member> {
    const managers = (await this.#options.directory.members()).filter((m) => m.role === 'manager' && m.id !== this.id);
    if (toId !== undefined) {
      if (toId === this.id) throw new PlatformError('BAD_REQUEST', `${toId} leads already`);
      const named = managers.find((m) => m.id === toId);
      if (named === undefined) throw new PlatformError('NOT_FOUND', `no manager ${toId} in the cluster`);
      if (named.build === null || !compatibleBuilds(named.build, this.build)) {
        throw new PlatformError('CONFLICT', `${toId} does not speak this leader's control protocol`);
      }
      return named;
    }
    const ranked = [...this.#followers]
      .filter(([id]) => managers.some((m) => m.id === id))
      .sort(([, a], [, b]) => b.appliedSeq - a.appliedSeq);
    const best = ranked[0];
    if (best === undefined) throw new PlatformError('CONFLICT', 'the leader has no follower to hand over to');
    const member = managers.find((m) => m.id === best[0]);
    if (member === undefined) throw new PlatformError('NOT_FOUND', `follower ${best[0]} left the cluster`);
    return member;
  }

  async #wanted(): Promise<number> {
    const { followers } = this.#options;
    if (followers !== 'auto') return followers;
    const managers = (await this.#options.directory.members()).filter((m) => m.role === 'manager').length;
    return Math.max(1, Math.ceil(Math.log2(Math.max(1, managers))));
  }

  async #leaderMember(): Promise<Member | null> {
    const leader = await this.#leader();
    if (leader === null) return null;
    return { id: leader.id, role: 'manager', address: leader.address, endpoint: leader.address, build: null, args: [] };
  }

  /** The leading manager and its control address (cached for a second). */
  async #leader(): Promise<{ id: string; address: string } | null> {
    const cached = this.#leaderCache;
    if (cached !== null && Date.now() - cached.at < 1000) return cached;
    const leader = await this.#options.directory.leader();
    if (leader === null) return null;
    const member = (await this.#options.directory.members()).find((m) => m.role === 'manager' && m.id === leader.id);
    if (member === undefined) return null;
    this.#leaderCache = { id: member.id, address: member.address, at: Date.now() };
    return this.#leaderCache;
  }

  /** While not leading: follow the leader, keeping a copy of its state, and report how far it got. */
  async #follow(): Promise<void> {
    const retryMs = this.#options.retryMs ?? 1000;
    while (!this.#stopped) {
      if (this.#options.lead.leading) {
        await sleep(retryMs);
        continue;
      }
      const leader = await this.#leader().catch(() => null);
      if (leader === null || leader.id === this.id) {
        await sleep(retryMs);
        continue;
      }
      const replica = this.#options.openReplica();
      const controller = new AbortController();
      this.#followAbort = controller;
      const peer = this.#options.directory.peer({
        ...leader,
        role: 'manager',
        endpoint: leader.address,
        build: null,
        args: [],
      });
      let reported = 0;
      const report = setInterval(() => {
        if (replica.appliedSeq === reported) return;
        reported = replica.appliedSeq;
        peer.reportApplied(this.id, reported).catch(() => undefined);
      }, this.#options.reportMs ?? 200);
      // The copy taken so far stays until this one holds a snapshot: a leader that just died leaves it to lead from.
      const onEvent = (event: FollowEvent): void => {
        replica.apply(event);
        if (this.#replica !== replica && replica.appliedSeq >= 0) this.#replica = replica;
      };
      try {
        await peer.follow(this.id, this.build, onEvent, controller.signal);
        // The leader ended the stream: it stepped down, so this copy falls behind its successor's state.
        if (this.#replica === replica) this.#replica = null;
      } catch (err) {
        // A stream that broke is kept: if the leader crashed, this copy is what the next leader continues from.
        if (!controller.signal.aborted) {
          const error = PlatformError.from(err);
          if (this.#replica === replica && error.code === 'TOO_MANY_REQUESTS') this.#replica = null;
          else this.#logger.debug({ err: error }, 'following the leader failed');
        }
      } finally {
        clearInterval(report);
        this.#leaderCache = null;
      }
      await sleep(retryMs);
    }
  }
}

/**
 * The members as the view shows them: which manager leads (`leaderId`), which follow, and whether each speaks the
 * control protocol of `reference` (the leader's build).
 */
export function viewsOfMembers(
  members: readonly Member[],
  leaderId: string | undefined,
  follows: (id: string) => boolean,
  reference: BuildInfo,
): MemberView[] {
  return members.map((member) => ({
    id: member.id,
    role: member.role,
    build: member.build,
    address: member.address,
    leader: member.role === 'manager' && member.id === leaderId,
    follower: member.role === 'manager' && follows(member.id),
    compatible: member.build !== null && compatibleBuilds(member.build, reference),
  }));
}

/** How long a manager that handed the lead over forwards to its successor before it asks etcd again. */
const forwardToMs = 3000;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

// A control plane of the cluster's shape for the HTTP routes and the CLI: a leader, followers, members of two builds,
// a handover that passes the lead to a follower, and an upgrade that moves one step each time it is looked at.
// It keeps its state in memory and applies the rules the routes promise (409 for an unknown target, one upgrade at
// a time); the real control plane is tested against etcd in its own area.
import type { BuildInfo } from '../../src/core/build-info.js';
import type { ControlPlaneApi, ControlPlaneView, UpgradeStatus } from '../../src/core/control-plane-view.js';
import { PlatformError } from '../../src/core/errors.js';

export const buildA: BuildInfo = { version: '0.1.0', build: 'A', protocol: 1 };
export const buildB: BuildInfo = { version: '0.2.0', build: 'B', protocol: 1 };

/** The steps an upgrade goes through, one per look at the view. */
export const upgradeSteps = ['start manager 1 of 1', 'start gateway 1 of 1', 'hand over to manager-new', 'retire old'];

/** An upgrade target this control plane fails, at its second step. */
export const failingTarget = 'broken';

/** An upgrade target during which the control plane answers 503 twice, as a gateway being replaced would. */
export const flakyTarget = 'flaky';

export class ClusterControlPlane implements ControlPlaneApi {
  /** What the routes asked, in order: `handover:ID`, `upgrade:TARGET`. */
  readonly calls: string[] = [];
  #leader = 'manager-a';
  #term = 7;
  #upgrade: UpgradeStatus | null = null;
  #upgradeStep = 0;
  #handover: ControlPlaneView['handover'] = null;
  readonly #followers: Record<string, number> = { 'manager-a': 119, 'manager-b': 118, 'manager-c': 120 };

  #unavailable = 0;

  view(): Promise<ControlPlaneView> {
    if (this.#unavailable > 0) {
      this.#unavailable -= 1;
      return Promise.reject(new PlatformError('UNAVAILABLE', 'the server is shutting down'));
    }
    this.#advanceUpgrade();
    const seq = 120;
    const managers = ['manager-a', 'manager-b', 'manager-c'];
    return Promise.resolve({
      mode: 'cluster',
      pool: 'leader',
      leader: {
        id: this.#leader,
        since: '2026-12-01T10:00:00.000Z',
        term: this.#term,
        build: buildA,
        seq,
        loopDelayMs: { p50: 0.2, p99: 3.5, max: 12.25 },
      },
      followersWanted: 2,
      followers: Object.entries(this.#followers)
        .filter(([id]) => id !== this.#leader)
        .map(([id, appliedSeq]) => ({
          id,
          build: buildA,
          appliedSeq,
          lag: seq - appliedSeq,
          reportedMsAgo: 250,
          since: '2026-12-01T10:00:01.000Z',
        })),
      members: [
        ...managers.map((id) => ({
          id,
          role: 'manager' as const,
          build: buildA,
          address: `10.0.0.${managers.indexOf(id) + 1}:7100`,
          leader: id === this.#leader,
          follower: id !== this.#leader && id in this.#followers,
          compatible: true,
        })),
        {
          id: 'gateway-1',
          role: 'gateway',
          build: buildA,
          address: 'http://10.0.0.9:8080',
          leader: false,
          follower: false,
          compatible: true,
        },
        {
          id: 'agent-old',
          role: 'agent',
          build: null,
          address: '10.0.0.20:7000',
          leader: false,
          follower: false,
          compatible: false,
        },
      ],
      handover: this.#handover,
      upgrade: this.#upgrade === null ? null : structuredClone(this.#upgrade),
    });
  }

  handover(to: string | undefined): Promise<{ from: string; to: string; term: number; pausedMs: number }> {
    this.calls.push(`handover:${to ?? ''}`);
    const followers = Object.entries(this.#followers).filter(([id]) => id !== this.#leader);
    const target = to ?? followers.sort((a, b) => b[1] - a[1])[0]?.[0];
    if (target === undefined || !followers.some(([id]) => id === target)) {
      return Promise.reject(new PlatformError('CONFLICT', `${target ?? 'nobody'} is not a follower of the leader`));
    }
    const from = this.#leader;
    this.#leader = target;
    this.#term += 1;
    this.#handover = { state: 'done', from, to: target, at: '2026-12-01T11:00:00.000Z', pausedMs: 12 };
    return Promise.resolve({ from, to: target, term: this.#term, pausedMs: 12 });
  }

  upgrade(to: string): Promise<UpgradeStatus> {
    this.calls.push(`upgrade:${to}`);
    if (this.#upgrade?.state === 'running') {
      return Promise.reject(new PlatformError('CONFLICT', 'an upgrade is under way'));
    }
    this.#upgradeStep = 0;
    this.#unavailable = to === flakyTarget ? 2 : 0;
    this.#upgrade = {
      target: to,
      to: buildB,
      from: [buildA],
      state: 'running',
      step: upgradeSteps[0] as string,
      started: [],
      retired: [],
      toRetire: [
        { id: 'manager-a', role: 'manager' },
        { id: 'gateway-1', role: 'gateway' },
      ],
      startedAt: 1_764_590_000_000,
      updatedAt: 1_764_590_000_000,
    };
    return Promise.resolve(structuredClone(this.#upgrade));
  }

  #advanceUpgrade(): void {
    const upgrade = this.#upgrade;
    if (upgrade?.state !== 'running') return;
    // The step under way is done: what it started counts.
    if (upgrade.step === upgradeSteps[0]) upgrade.started.push('manager-new');
    this.#upgradeStep += 1;
    upgrade.updatedAt += 1000;
    if (upgrade.target === failingTarget && this.#upgradeStep === 2) {
      // The gateway of the new build never became ready: its step is the one that failed.
      upgrade.state = 'failed';
      upgrade.error = 'gateway-new did not become ready in 30 s';
      return;
    }
    const step = upgradeSteps[this.#upgradeStep];
    if (step === undefined) {
      upgrade.state = 'succeeded';
      upgrade.step = 'done';
      upgrade.retired = ['manager-a', 'gateway-1'];
      upgrade.toRetire = [];
      return;
    }
    if (upgrade.step === upgradeSteps[1]) upgrade.started.push('gateway-new');
    upgrade.step = step;
  }
}

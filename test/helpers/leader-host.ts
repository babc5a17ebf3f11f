import { controlProtocolVersion, type BuildInfo } from '../../src/core/build-info.js';
import type { ControlPlaneView, UpgradeStatus } from '../../src/core/control-plane-view.js';
import { PlatformError } from '../../src/core/errors.js';
import type { ControlSnapshot } from '../../src/control-plane/control-state.js';
import type { FollowEvent, LeaderHost, PoolRoute } from '../../src/control-plane/leader-host.js';

/** What a test host does besides routing; each call it was not given fails INTERNAL. */
export type TestLeaderHostParts = Partial<Omit<LeaderHost, 'id' | 'build' | 'route'>>;

/**
 * A LeaderHost for wire tests: `route()` answers what the test sets (`local` to a MemoryPool and
 * MemoryProvisionQueue, `forward` to another server, `none`), and counts its calls; the other calls are the parts
 * the test passes, and fail otherwise.
 */
export class TestLeaderHost implements LeaderHost {
  readonly build: BuildInfo = { version: '0.0.0-test', build: 'test', protocol: controlProtocolVersion };
  /** How many pool and queue calls asked for a route. */
  routed = 0;

  constructor(
    readonly id: string,
    public routeTo: PoolRoute,
    private readonly parts: TestLeaderHostParts = {},
  ) {}

  route(): Promise<PoolRoute> {
    this.routed++;
    return Promise.resolve(this.routeTo);
  }

  follow(followerId: string, build: BuildInfo, send: (event: FollowEvent) => void, signal: AbortSignal): Promise<void> {
    return this.part('follow')(followerId, build, send, signal);
  }

  reportApplied(followerId: string, appliedSeq: number): void {
    this.part('reportApplied')(followerId, appliedSeq);
  }

  becomeLeader(fromId: string, fromTerm: number, snapshot: ControlSnapshot): Promise<{ term: number }> {
    return this.part('becomeLeader')(fromId, fromTerm, snapshot);
  }

  handover(toId: string | undefined): Promise<{ fromId: string; toId: string; term: number; pausedMs: number }> {
    return this.part('handover')(toId);
  }

  status(): Promise<ControlPlaneView> {
    return this.part('status')();
  }

  upgrade(target: string): Promise<UpgradeStatus> {
    return this.part('upgrade')(target);
  }

  shutdown(reason: string): void {
    this.part('shutdown')(reason);
  }

  private part<K extends keyof TestLeaderHostParts>(name: K): NonNullable<TestLeaderHostParts[K]> {
    const part = this.parts[name];
    if (part === undefined) throw new PlatformError('INTERNAL', `the test host does not implement ${name}`);
    return part;
  }
}

import type { Logger } from '../core/logger.js';
import type { AgentApi, InvokeOutcome, InvokeRequest, SandboxInfo, SandboxSpec } from '../core/ports/agent-api.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { MembershipEvent, MembershipWatcher, NodeInfo } from '../core/ports/cluster.js';
import type { InstanceRef } from '../core/types.js';
import { choosePlacement } from '../manager/placement.js';

/**
 * An Agent reached over the network, which must be closed when its node leaves. `verify` resolves once the node
 * proved it holds the cluster token for its id and address (rejects otherwise).
 */
export type RemoteAgent = AgentApi & { verify(): Promise<void>; close(): Promise<void> };

export interface MembershipDirectoryOptions {
  membership: MembershipWatcher;
  /** Dial a node's Agent (a gRPC client in cluster mode). */
  connect: (node: NodeInfo) => RemoteAgent;
  /** Called when a node leaves (lease expired or deregistered), after its client is closed. */
  onLeave?: ((nodeId: string) => void) | undefined;
  /** Called after any join, update or leave. */
  onChange?: (() => void) | undefined;
  logger: Logger;
  /** How often a node that failed its proof is asked again while etcd still lists it. Default 5 s. */
  reverifyMs?: number | undefined;
}

/** How long a created sandbox still counts as pending: a little over the Agents' NodeInfo republish interval. */
const pendingGraceMs = 2000;

/** The Agent a placement chose, reporting when its one `createSandbox` has settled. */
class PlacedAgent implements AgentApi {
  readonly nodeId: string;

  constructor(
    private readonly agent: AgentApi,
    private readonly settled: () => void,
  ) {
    this.nodeId = agent.nodeId;
  }

  createSandbox(spec: SandboxSpec): Promise<InstanceRef> {
    return this.agent.createSandbox(spec).finally(this.settled);
  }

  invoke(instanceId: string, request: InvokeRequest): Promise<InvokeOutcome> {
    return this.agent.invoke(instanceId, request);
  }

  destroySandbox(instanceId: string): Promise<void> {
    return this.agent.destroySandbox(instanceId);
  }

  listSandboxes(): Promise<SandboxInfo[]> {
    return this.agent.listSandboxes();
  }
}

interface Member {
  info: NodeInfo;
  agent: RemoteAgent;
}

/** A node etcd lists that has not proved itself (yet): never dialed with the token, placed on or routed to. */
interface Candidate extends Member {
  verifying: Promise<void>;
  failed: boolean;
  timer?: NodeJS.Timeout | undefined;
}

/**
 * The cluster's live Agents as the membership watcher reports them: a client per node, opened on join and
 * closed on leave. A node counts only once it has proved it holds the cluster token for the id and address etcd
 * gives (anyone able to write etcd can add an entry); until then it is listed as unverified and asked again every
 * few seconds. Placement uses the published capacity and code cache of each verified node, plus the sandboxes this
 * process asked for that the node has not reported yet.
 */
export class MembershipDirectory implements AgentDirectory {
  private readonly members = new Map<string, Member>();
  private readonly candidates = new Map<string, Candidate>();
  private readonly pending = new Map<string, number>();
  private watch: { close(): Promise<void> } | null = null;
  private closed = false;

  private constructor(private readonly options: MembershipDirectoryOptions) {}

  /** Start watching; resolves once the current members are known and have been asked for their proofs. */
  static async open(options: MembershipDirectoryOptions): Promise<MembershipDirectory> {
    const directory = new MembershipDirectory(options);
    directory.watch = await options.membership.watch((event) => directory.apply(event));
    await Promise.all([...directory.candidates.values()].map((candidate) => candidate.verifying));
    return directory;
  }

  /** Nodes etcd lists that have not proved they belong to the cluster: shown, never used. */
  unverifiedNodes(): NodeInfo[] {
    return [...this.candidates.values()].map((candidate) => candidate.info);
  }

  get(nodeId: string): AgentApi | null {
    return this.members.get(nodeId)?.agent ?? null;
  }

  all(): AgentApi[] {
    return [...this.members.values()].map((member) => member.agent);
  }

  nodes(): NodeInfo[] {
    return [...this.members.values()].map((member) => member.info);
  }

  place(spec: SandboxSpec, exclude?: ReadonlySet<string>): AgentApi | null {
    const nodes = this.nodes().filter((node) => exclude?.has(node.nodeId) !== true);
    const node = choosePlacement({ nodes, codeSha256: spec.codeSha256, pending: this.pending });
    if (node === null) return null;
    const member = this.members.get(node.nodeId);
    if (member === undefined) return null;
    const { nodeId } = node;
    this.addPending(nodeId, 1);
    // Counted while the creation runs and a little after, until the node's NodeInfo (republished every second)
    // includes the new sandbox.
    const settle = (): void => void setTimeout(() => this.addPending(nodeId, -1), pendingGraceMs).unref();
    return new PlacedAgent(member.agent, settle);
  }

  private addPending(nodeId: string, delta: number): void {
    const count = (this.pending.get(nodeId) ?? 0) + delta;
    if (count > 0) this.pending.set(nodeId, count);
    else this.pending.delete(nodeId);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watch?.close();
    const members = [...this.members.values(), ...this.candidates.values()];
    for (const candidate of this.candidates.values()) clearTimeout(candidate.timer);
    this.members.clear();
    this.candidates.clear();
    await Promise.all(members.map((member) => member.agent.close()));
  }

  private apply(event: MembershipEvent): void {
    const { logger } = this.options;
    if (event.type === 'leave') {
      const member = this.members.get(event.nodeId);
      const candidate = this.candidates.get(event.nodeId);
      this.members.delete(event.nodeId);
      this.candidates.delete(event.nodeId);
      this.pending.delete(event.nodeId);
      clearTimeout(candidate?.timer);
      if (member !== undefined) void member.agent.close().catch(() => {});
      if (candidate !== undefined) void candidate.agent.close().catch(() => {});
      logger.info({ nodeId: event.nodeId }, 'node left the cluster');
      this.options.onLeave?.(event.nodeId);
      this.options.onChange?.();
      return;
    }
    const { node } = event;
    const existing = this.members.get(node.nodeId) ?? this.candidates.get(node.nodeId);
    if (existing !== undefined && existing.info.startedAt !== node.startedAt) {
      // The node restarted under the same id before its old lease expired: its old sandboxes are gone.
      this.apply({ type: 'leave', nodeId: node.nodeId });
      this.apply({ type: 'join', node });
      return;
    }
    if (existing !== undefined && existing.info.agentAddress === node.agentAddress) {
      existing.info = node;
      this.options.onChange?.();
      return;
    }
    if (existing !== undefined) {
      // A new address must prove itself again.
      this.members.delete(node.nodeId);
      this.candidates.delete(node.nodeId);
      clearTimeout((existing as Partial<Candidate>).timer);
      void existing.agent.close().catch(() => {});
      this.options.onChange?.();
    }
    const candidate: Candidate = {
      info: node,
      agent: this.options.connect(node),
      verifying: Promise.resolve(),
      failed: false,
    };
    this.candidates.set(node.nodeId, candidate);
    this.verify(candidate);
  }

  /** Ask `candidate` for its proof; on success it becomes a member, on failure it is asked again later. */
  private verify(candidate: Candidate): void {
    const { logger } = this.options;
    const current = (): boolean => !this.closed && this.candidates.get(candidate.info.nodeId) === candidate;
    candidate.verifying = candidate.agent.verify().then(
      () => {
        if (!current()) return;
        this.candidates.delete(candidate.info.nodeId);
        this.members.set(candidate.info.nodeId, { info: candidate.info, agent: candidate.agent });
        const { nodeId, agentAddress: address } = candidate.info;
        logger.info({ nodeId, address, verified: true }, 'node joined the cluster');
        this.options.onChange?.();
      },
      (err: unknown) => {
        if (!current()) return;
        if (!candidate.failed) {
          // Logged once per entry: it is asked again every few seconds while etcd lists it.
          candidate.failed = true;
          const { nodeId, agentAddress: address } = candidate.info;
          logger.warn(
            { err, nodeId, address },
            'a node listed in etcd did not prove it holds the cluster token: it is not used (etcd may hold a rogue entry)',
          );
        }
        candidate.timer = setTimeout(() => {
          if (current()) this.verify(candidate);
        }, this.options.reverifyMs ?? 5000);
        candidate.timer.unref();
      },
    );
  }
}

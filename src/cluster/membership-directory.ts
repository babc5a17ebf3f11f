import type { Logger } from '../core/logger.js';
import type { AgentApi, InvokeOutcome, InvokeRequest, SandboxInfo, SandboxSpec } from '../core/ports/agent-api.js';
import type { AgentDirectory } from '../core/ports/agent-directory.js';
import type { MembershipEvent, MembershipWatcher, NodeInfo } from '../core/ports/cluster.js';
import type { InstanceRef } from '../core/types.js';
import { choosePlacement } from '../manager/placement.js';

/** An Agent reached over the network, which must be closed when its node leaves. */
export type RemoteAgent = AgentApi & { close(): Promise<void> };

export interface MembershipDirectoryOptions {
  membership: MembershipWatcher;
  /** Dial a node's Agent (a gRPC client in cluster mode). */
  connect: (node: NodeInfo) => RemoteAgent;
  /** Called when a node leaves (lease expired or deregistered), after its client is closed. */
  onLeave?: ((nodeId: string) => void) | undefined;
  /** Called after any join, update or leave. */
  onChange?: (() => void) | undefined;
  logger: Logger;
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

/**
 * The cluster's live Agents as the membership watcher reports them: a client per node, opened on join and
 * closed on leave. Placement uses the published capacity and code cache of each node, plus the sandboxes this
 * process asked for that the node has not reported yet.
 */
export class MembershipDirectory implements AgentDirectory {
  private readonly members = new Map<string, Member>();
  private readonly pending = new Map<string, number>();
  private watch: { close(): Promise<void> } | null = null;

  private constructor(private readonly options: MembershipDirectoryOptions) {}

  /** Start watching; resolves once the current members are known. */
  static async open(options: MembershipDirectoryOptions): Promise<MembershipDirectory> {
    const directory = new MembershipDirectory(options);
    directory.watch = await options.membership.watch((event) => directory.apply(event));
    return directory;
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
    await this.watch?.close();
    const members = [...this.members.values()];
    this.members.clear();
    await Promise.all(members.map((member) => member.agent.close()));
  }

  private apply(event: MembershipEvent): void {
    const { logger } = this.options;
    if (event.type === 'leave') {
      const member = this.members.get(event.nodeId);
      this.members.delete(event.nodeId);
      this.pending.delete(event.nodeId);
      if (member !== undefined) void member.agent.close().catch(() => {});
      logger.info({ nodeId: event.nodeId }, 'node left the cluster');
      this.options.onLeave?.(event.nodeId);
      this.options.onChange?.();
      return;
    }
    const existing = this.members.get(event.node.nodeId);
    if (existing !== undefined && existing.info.startedAt !== event.node.startedAt) {
      // The node restarted under the same id before its old lease expired: its old sandboxes are gone.
      this.apply({ type: 'leave', nodeId: event.node.nodeId });
      this.apply({ type: 'join', node: event.node });
      return;
    }
    if (existing !== undefined && existing.info.agentAddress === event.node.agentAddress) {
      existing.info = event.node;
      this.options.onChange?.();
      return;
    }
    if (existing !== undefined) void existing.agent.close().catch(() => {});
    this.members.set(event.node.nodeId, { info: event.node, agent: this.options.connect(event.node) });
    logger.info({ nodeId: event.node.nodeId, address: event.node.agentAddress }, 'node joined the cluster');
    this.options.onChange?.();
  }
}

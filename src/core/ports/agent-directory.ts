import type { VersionId } from '../types.js';
import type { AgentApi, SandboxInfo, SandboxSpec } from './agent-api.js';

/**
 * The Agents a Manager or Gateway can use: one in embedded mode, the live members of the cluster otherwise.
 * `place` picks where a new sandbox goes; `get` finds the Agent named in a pool entry.
 */
export interface AgentDirectory {
  /** The Agent of a node, or null when the node is not (or no longer) a member. */
  get(nodeId: string): AgentApi | null;
  /** Every live Agent. */
  all(): AgentApi[];
  /** The Agent that should run a new sandbox for `spec`, or null when no node (outside `exclude`) has room. */
  place(spec: SandboxSpec, exclude?: ReadonlySet<string>): AgentApi | null;
}

/** Embedded mode: the one local Agent for everything. */
export class SingleAgentDirectory implements AgentDirectory {
  constructor(private readonly agent: AgentApi) {}

  get(nodeId: string): AgentApi | null {
    return nodeId === this.agent.nodeId ? this.agent : null;
  }

  all(): AgentApi[] {
    return [this.agent];
  }

  place(_spec: SandboxSpec, exclude?: ReadonlySet<string>): AgentApi | null {
    return exclude?.has(this.agent.nodeId) === true ? null : this.agent;
  }
}

/** A sandbox as an Agent lists it, with the node it runs on. */
export type NodeSandbox = SandboxInfo & { nodeId: string };

/** The sandboxes of every live Agent, each with its node; an Agent that does not answer counts as none. */
export async function sandboxesOf(agents: AgentDirectory): Promise<NodeSandbox[]> {
  const lists = await Promise.all(
    agents.all().map((agent) =>
      agent.listSandboxes().then(
        (sandboxes) => sandboxes.map((sandbox) => ({ ...sandbox, nodeId: agent.nodeId })),
        () => [],
      ),
    ),
  );
  return lists.flat();
}

/** The sandboxes of one version on every live Agent. */
export async function countInstances(agents: AgentDirectory, version: VersionId): Promise<number> {
  const sandboxes = await sandboxesOf(agents);
  return sandboxes.filter(
    (s) =>
      s.functionName === version.functionName && s.incarnation === version.incarnation && s.version === version.version,
  ).length;
}

import type { AgentApi, SandboxSpec } from './agent-api.js';

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

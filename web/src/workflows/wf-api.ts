// What the workflow pages read and send: the workflow API (/v1/workflows) and the Flyte-shaped execution API
// (/api/v1), with the shapes of their answers taken from the platform's own types.
import type { ExecutionView, NodeExecutionView } from '../../../src/core/ports/execution-backend.js';
import type { ExecutionKey, ExecutionPhase, NodePhase } from '../../../src/core/ports/workflow-store.js';
import { terminalExecutionPhases } from '../../../src/core/ports/workflow-store.js';
import type { WorkflowSpec } from '../../../src/core/workflow-spec.js';
import { enc, getJson } from '../api';

export type { ExecutionKey, ExecutionPhase, ExecutionView, NodeExecutionView, NodePhase, WorkflowSpec };

/** Where the console launches and lists executions. */
export const project = 'savassan';
export const domain = 'development';

export interface WorkflowSummary {
  name: string;
  latestVersion: number;
  description?: string | null;
  nodeCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface WorkflowVersionSummary {
  version: number;
  createdAt: string;
  nodeCount?: number;
}

export interface WorkflowDetail {
  name: string;
  version: number;
  createdAt: string;
  spec: WorkflowSpec;
  /** Newest first. */
  versions: WorkflowVersionSummary[];
}

export interface DeployResult {
  name: string;
  version: number;
  created: boolean;
  createdAt: string;
}

export interface ValidateResult {
  valid: true;
  nodeCount: number;
  order: string[];
}

export const workflowPath = (name: string) => `/v1/workflows/${enc(name)}`;
export const executionPath = (key: ExecutionKey) =>
  `/api/v1/executions/${enc(key.project)}/${enc(key.domain)}/${enc(key.name)}`;
export const nodeExecutionsPath = (key: ExecutionKey) =>
  `/api/v1/node_executions/${enc(key.project)}/${enc(key.domain)}/${enc(key.name)}`;
/** Every node execution at `path`, following the pages' tokens. */
export async function getAllNodeExecutions(
  path: string,
  options: { signal: AbortSignal },
): Promise<{ node_executions: NodeExecutionView[] }> {
  const all: NodeExecutionView[] = [];
  let token = '';
  do {
    const page = await getJson<{ node_executions: NodeExecutionView[]; token?: string }>(
      token === '' ? path : `${path}?token=${enc(token)}`,
      options,
    );
    all.push(...page.node_executions);
    token = page.token ?? '';
  } while (token !== '');
  return { node_executions: all };
}
export const dataPath = (key: ExecutionKey) =>
  `/api/v1/data/executions/${enc(key.project)}/${enc(key.domain)}/${enc(key.name)}`;
export const executionsPath = (workflow?: string, limit = 50) =>
  `/api/v1/executions/${project}/${domain}?limit=${limit}${workflow === undefined ? '' : `&workflow=${enc(workflow)}`}`;

export async function launch(workflow: string, inputs: Record<string, unknown>, version?: number) {
  const launchPlan = version === undefined ? { name: workflow } : { name: workflow, version: String(version) };
  return getJson<{ id: ExecutionKey }>('/api/v1/executions', {
    method: 'POST',
    body: { project, domain, spec: { launch_plan: launchPlan }, inputs },
  });
}

/** The phases an execution never leaves. */
export const terminalExecution: ReadonlySet<string> = terminalExecutionPhases;

/** The version numbers a workflow answer lists, newest first. */
export function versionNumbers(detail: WorkflowDetail): number[] {
  return detail.versions.map((v) => v.version);
}

/** Seconds in a protobuf JSON duration (`"1.250s"`). */
export function seconds(duration: string | undefined): number {
  if (duration === undefined) return 0;
  const value = Number.parseFloat(duration.replace(/s$/, ''));
  return Number.isFinite(value) ? value : 0;
}

export function formatSeconds(value: number): string {
  if (value < 1) return `${Math.round(value * 1000)} ms`;
  if (value < 60) return `${value.toFixed(value < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(value / 60);
  return `${minutes} min ${Math.round(value - minutes * 60)} s`;
}

/** A phase's class (colours in styles.css: green for SUCCEEDED, as Flyte's console shows it). */
export function phaseClass(phase: string | undefined): string {
  return `phase phase-${(phase ?? 'UNDEFINED').toLowerCase().replace(/_/g, '-')}`;
}

/** Phase colours for the SVG timeline (fill), the same as the CSS ones. */
export const phaseColours: Record<string, string> = {
  UNDEFINED: '#94a3b8',
  QUEUED: '#a78bfa',
  RUNNING: '#3b82f6',
  SUCCEEDING: '#22c55e',
  SUCCEEDED: '#16a34a',
  RECOVERED: '#15803d',
  FAILING: '#f97316',
  FAILED: '#dc2626',
  TIMED_OUT: '#b45309',
  ABORTING: '#f59e0b',
  ABORTED: '#6b7280',
  SKIPPED: '#cbd5e1',
};

export async function validateSpec(name: string, spec: WorkflowSpec): Promise<ValidateResult> {
  return getJson<ValidateResult>(`${workflowPath(name)}/validate`, { method: 'POST', body: spec });
}

export async function deploySpec(name: string, spec: WorkflowSpec): Promise<DeployResult> {
  return getJson<DeployResult>(workflowPath(name), { method: 'PUT', body: spec });
}

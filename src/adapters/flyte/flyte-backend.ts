/**
 * The `ExecutionBackend` on a real FlyteAdmin: workflow versions are registered there (tasks, workflow, launch plan,
 * activated) and executions run there; this adapter only speaks FlyteAdmin's REST API and maps its answers to the
 * port's Flyte-shaped views. Registration goes to one project and a set of domains fixed by configuration; a launch
 * names its project and domain and finds the launch plan there.
 */
import { PlatformError } from '../../core/errors.js';
import type {
  ExecutionBackend,
  ExecutionPage,
  ExecutionView,
  LaunchRequest,
  NodeExecutionPage,
  NodeExecutionView,
} from '../../core/ports/execution-backend.js';
import type { ExecutionError, ExecutionKey, NodePhase } from '../../core/ports/workflow-store.js';
import { compileWorkflow } from '../../core/workflow-compile.js';
import type { WorkflowValueType } from '../../core/workflow-spec.js';
import { FlyteAdminClient, seg, type FlyteAdminClientOptions } from './flyte-admin-client.js';
import type {
  ExecutionCreateRequestJson,
  ExecutionCreateResponseJson,
  ExecutionDataJson,
  ExecutionErrorJson,
  ExecutionJson,
  ExecutionListJson,
  LaunchPlanJson,
  LiteralJson,
  LiteralTypeJson,
  NodeExecutionJson,
  NodeExecutionListJson,
  TaskExecutionJson,
  TaskExecutionListJson,
  TaskPhaseName,
} from './flyte-json.js';
import { jsonFromLiteral, jsonFromLiteralMap, literalForInput } from './flyte-literals.js';
import { flyteRegistration, outputVar, unpinnedChildren } from './flyte-workflow.js';

export interface FlyteBackendOptions extends FlyteAdminClientOptions {
  /** The Flyte project workflows are registered in (default `savassan`). */
  project?: string | undefined;
  /** The Flyte domains workflows are registered in (default `["development"]`). */
  domains?: readonly string[] | undefined;
}

/** How many node executions one `nodeExecutions` call reads at most (a workflow has at most 2000 nodes). */
const maxNodeExecutions = 5000;
const pageSize = 200;
/** Task-execution lists fetched at once for one `nodeExecutions` call. */
const attemptLookups = 8;

export function createFlyteBackend(options: FlyteBackendOptions): FlyteBackend {
  return new FlyteBackend(options);
}

export class FlyteBackend implements ExecutionBackend {
  readonly kind = 'flyte';
  readonly client: FlyteAdminClient;
  readonly #project: string;
  readonly #domains: readonly string[];

  constructor(options: FlyteBackendOptions) {
    this.client = new FlyteAdminClient(options);
    this.#project = options.project ?? 'savassan';
    this.#domains = options.domains ?? ['development'];
    if (this.#domains.length === 0) throw new PlatformError('BAD_REQUEST', 'the Flyte backend needs a domain');
  }

  async register(name: string, version: number, spec: string): Promise<void> {
    let parsed: unknown;
    try {
      parsed = JSON.parse(spec);
    } catch (err) {
      throw new PlatformError('BAD_REQUEST', `workflow ${name} version ${version}: the spec is not JSON`, {
        cause: err,
      });
    }
    const compiled = compileWorkflow(parsed);
    for (const domain of this.#domains) {
      const childVersions = new Map<string, string>();
      for (const child of unpinnedChildren(compiled)) {
        const launchPlan = await this.#activeLaunchPlan(this.#project, domain, child);
        childVersions.set(child, launchPlan.id.version);
      }
      const registration = flyteRegistration(compiled, {
        project: this.#project,
        domain,
        name,
        version: String(version),
        childVersions,
      });
      // Registering the same version again is a no-op in FlyteAdmin (ALREADY_EXISTS): a registration cut short
      // is finished by the next one.
      for (const task of registration.tasks) await this.#create('/api/v1/tasks', task);
      await this.#create('/api/v1/workflows', registration.workflow);
      await this.#create('/api/v1/launch_plans', registration.launchPlan);
      const lp = registration.launchPlan.id;
      await this.client.put(
        `/api/v1/launch_plans/${seg(lp.project)}/${seg(lp.domain)}/${seg(lp.name)}/${seg(lp.version)}`,
        {
          id: lp,
          state: 'ACTIVE',
        },
      );
    }
  }

  async launch(request: LaunchRequest): Promise<ExecutionKey> {
    const launchPlan =
      request.version === undefined
        ? await this.#activeLaunchPlan(request.project, request.domain, request.workflow)
        : await this.#launchPlan(request.project, request.domain, request.workflow, String(request.version));
    const body: ExecutionCreateRequestJson = {
      project: request.project,
      domain: request.domain,
      ...(request.name !== undefined ? { name: request.name } : {}),
      spec: { launch_plan: { ...launchPlan.id, resource_type: 'LAUNCH_PLAN' }, metadata: { mode: 'MANUAL' } },
      inputs: { literals: launchLiterals(launchPlan, request.inputs) },
    };
    return executionKey(await this.client.post<ExecutionCreateResponseJson>('/api/v1/executions', body));
  }

  async get(key: ExecutionKey): Promise<ExecutionView> {
    return executionView(await this.client.get<ExecutionJson>(`/api/v1/executions/${keyPath(key)}`));
  }

  async list(
    project: string,
    domain: string,
    options: { limit: number; token?: string | undefined; workflow?: string | undefined },
  ): Promise<ExecutionPage> {
    const page = await this.client.get<ExecutionListJson>(`/api/v1/executions/${seg(project)}/${seg(domain)}`, {
      limit: String(options.limit),
      token: options.token === '' ? undefined : options.token,
      filters: options.workflow === undefined ? undefined : `eq(workflow.name,${options.workflow})`,
      'sort_by.key': 'created_at',
      'sort_by.direction': 'DESCENDING',
    });
    return { executions: (page.executions ?? []).map(executionView), token: page.token ?? '' };
  }

  /** A page of `nodeExecutions` (FlyteAdmin's own pages hold its start and end nodes too: the offset is ours). */
  async nodeExecutionPage(
    key: ExecutionKey,
    page: { limit: number; token?: string | undefined },
  ): Promise<NodeExecutionPage> {
    let offset = 0;
    if (page.token !== undefined && page.token !== '') {
      offset = Number(Buffer.from(page.token, 'base64url').toString('utf8'));
      if (!Number.isSafeInteger(offset) || offset < 0) {
        throw new PlatformError('BAD_REQUEST', 'the page token is not one a previous page gave');
      }
    }
    const all = await this.nodeExecutions(key);
    const end = offset + page.limit;
    return {
      node_executions: all.slice(offset, end),
      token: all.length > end ? Buffer.from(String(end)).toString('base64url') : '',
    };
  }

  async nodeExecutions(key: ExecutionKey): Promise<NodeExecutionView[]> {
    const nodes: NodeExecutionJson[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.get<NodeExecutionListJson>(`/api/v1/node_executions/${keyPath(key)}`, {
        limit: String(pageSize),
        token,
      });
      nodes.push(...(page.node_executions ?? []));
      token = page.token === '' ? undefined : page.token;
    } while (token !== undefined && nodes.length < maxNodeExecutions);
    const own = nodes.filter((node) => node.id.node_id !== 'start-node' && node.id.node_id !== 'end-node');
    const attempts = new Map<string, TaskExecutionJson[]>();
    const tasks = own.filter((node) => node.closure?.workflow_node_metadata == null);
    for (let i = 0; i < tasks.length; i += attemptLookups) {
      await Promise.all(
        tasks.slice(i, i + attemptLookups).map(async (node) => {
          attempts.set(node.id.node_id, await this.#taskExecutions(key, node.id.node_id));
        }),
      );
    }
    return own.map((node) => nodeExecutionView(node, attempts.get(node.id.node_id) ?? []));
  }

  async data(key: ExecutionKey): Promise<{ inputs: Record<string, unknown>; outputs: unknown }> {
    const data = await this.client.get<ExecutionDataJson>(`/api/v1/data/executions/${keyPath(key)}`);
    const outputs = data.full_outputs?.literals;
    let output: unknown = null;
    if (outputs != null && Object.keys(outputs).length > 0) {
      const single = outputs[outputVar];
      output = single != null ? jsonFromLiteral(single) : jsonFromLiteralMap(outputs);
    }
    return { inputs: jsonFromLiteralMap(data.full_inputs?.literals), outputs: output };
  }

  async terminate(key: ExecutionKey, cause: string): Promise<void> {
    await this.client.delete(`/api/v1/executions/${keyPath(key)}`, { id: key, cause });
  }

  async relaunch(key: ExecutionKey, name?: string): Promise<ExecutionKey> {
    const body = { id: key, ...(name !== undefined ? { name } : {}) };
    return executionKey(await this.client.post<ExecutionCreateResponseJson>('/api/v1/executions/relaunch', body));
  }

  async recover(key: ExecutionKey, name?: string): Promise<ExecutionKey> {
    const body = { id: key, ...(name !== undefined ? { name } : {}) };
    return executionKey(await this.client.post<ExecutionCreateResponseJson>('/api/v1/executions/recover', body));
  }

  async #create(path: string, body: unknown): Promise<void> {
    try {
      await this.client.post(path, body);
    } catch (err) {
      if (err instanceof PlatformError && err.code === 'CONFLICT' && err.details['flyteCode'] !== 9) return;
      throw err;
    }
  }

  async #activeLaunchPlan(project: string, domain: string, name: string): Promise<LaunchPlanJson> {
    try {
      return await this.client.get<LaunchPlanJson>(
        `/api/v1/active_launch_plans/${seg(project)}/${seg(domain)}/${seg(name)}`,
      );
    } catch (err) {
      if (err instanceof PlatformError && err.code === 'NOT_FOUND') {
        throw new PlatformError(
          'NOT_FOUND',
          `workflow ${name} has no active launch plan in Flyte ${project}/${domain}`,
          {
            cause: err,
          },
        );
      }
      throw err;
    }
  }

  async #launchPlan(project: string, domain: string, name: string, version: string): Promise<LaunchPlanJson> {
    try {
      return await this.client.get<LaunchPlanJson>(
        `/api/v1/launch_plans/${seg(project)}/${seg(domain)}/${seg(name)}/${seg(version)}`,
      );
    } catch (err) {
      if (err instanceof PlatformError && err.code === 'NOT_FOUND') {
        throw new PlatformError(
          'NOT_FOUND',
          `workflow ${name} version ${version} is not registered in Flyte ${project}/${domain}`,
          { cause: err },
        );
      }
      throw err;
    }
  }

  async #taskExecutions(key: ExecutionKey, nodeId: string): Promise<TaskExecutionJson[]> {
    const page = await this.client.get<TaskExecutionListJson>(
      `/api/v1/task_executions/${keyPath(key)}/${seg(nodeId)}`,
      {
        limit: String(pageSize),
      },
    );
    return page.task_executions ?? [];
  }
}

function keyPath(key: ExecutionKey): string {
  return `${seg(key.project)}/${seg(key.domain)}/${seg(key.name)}`;
}

function executionKey(response: ExecutionCreateResponseJson): ExecutionKey {
  const id = response.id;
  if (id == null || typeof id.name !== 'string' || id.name === '') {
    throw new PlatformError('UNAVAILABLE', 'FlyteAdmin created an execution but sent no id');
  }
  return { project: id.project, domain: id.domain, name: id.name };
}

function valueType(type: LiteralTypeJson | undefined): WorkflowValueType {
  if (type?.collection_type !== undefined) return 'array';
  switch (type?.simple) {
    case 'STRING':
      return 'string';
    case 'FLOAT':
      return 'number';
    case 'INTEGER':
      return 'integer';
    case 'BOOLEAN':
      return 'boolean';
    default:
      return 'any';
  }
}

/** The launch inputs as the launch plan's literals, checked against what it expects. */
function launchLiterals(launchPlan: LaunchPlanJson, inputs: Record<string, unknown>): Record<string, LiteralJson> {
  const parameters =
    launchPlan.closure?.expected_inputs?.parameters ?? launchPlan.spec?.default_inputs.parameters ?? {};
  const literals: Record<string, LiteralJson> = {};
  for (const [name, value] of Object.entries(inputs)) {
    const parameter = parameters[name];
    if (parameter === undefined) {
      throw new PlatformError('BAD_REQUEST', `input ${name}: workflow ${launchPlan.id.name} declares no such input`);
    }
    literals[name] = literalForInput(name, valueType(parameter.var.type), value);
  }
  for (const [name, parameter] of Object.entries(parameters)) {
    if (parameter.required === true && !(name in literals)) {
      throw new PlatformError('BAD_REQUEST', `input ${name}: required by workflow ${launchPlan.id.name}`);
    }
  }
  return literals;
}

const epoch = new Date(0).toISOString();

function executionError(error: ExecutionErrorJson | null | undefined): ExecutionError | undefined {
  if (error == null) return undefined;
  return {
    code: error.code ?? 'UNKNOWN',
    message: error.message ?? '',
    kind: error.kind === 'USER' ? 'USER' : 'SYSTEM',
  };
}

function executionView(execution: ExecutionJson): ExecutionView {
  const closure: NonNullable<ExecutionJson['closure']> = execution.closure ?? {};
  const lp = execution.spec?.launch_plan;
  const metadata = execution.spec?.metadata ?? {};
  const mode = metadata.mode;
  const view: ExecutionView = {
    id: { project: execution.id.project, domain: execution.id.domain, name: execution.id.name },
    spec: {
      launch_plan: {
        resource_type: 'LAUNCH_PLAN',
        project: lp?.project ?? execution.id.project,
        domain: lp?.domain ?? execution.id.domain,
        name: lp?.name ?? '',
        version: lp?.version ?? '',
      },
      metadata: {
        mode: mode === 'RELAUNCH' || mode === 'CHILD_WORKFLOW' || mode === 'RECOVERED' ? mode : 'MANUAL',
        ...(metadata.reference_execution != null ? { reference_execution: metadata.reference_execution } : {}),
        ...(metadata.parent_node_execution != null ? { parent_node_execution: metadata.parent_node_execution } : {}),
      },
    },
    closure: {
      phase: closure.phase ?? 'UNDEFINED',
      ...(closure.started_at != null ? { started_at: closure.started_at } : {}),
      duration: closure.duration ?? '0s',
      created_at: closure.created_at ?? closure.started_at ?? epoch,
      updated_at: closure.updated_at ?? closure.created_at ?? epoch,
    },
  };
  const error = executionError(closure.error);
  if (error !== undefined) view.closure.error = error;
  if (closure.abort_metadata != null) {
    view.closure.abort_metadata = {
      cause: closure.abort_metadata.cause ?? '',
      principal: closure.abort_metadata.principal ?? '',
    };
  }
  return view;
}

function taskPhase(phase: TaskPhaseName | undefined): NodePhase {
  switch (phase) {
    case 'SUCCEEDED':
    case 'FAILED':
    case 'ABORTED':
    case 'RUNNING':
    case 'QUEUED':
      return phase;
    case 'RETRYABLE_FAILED':
      return 'FAILED';
    case 'INITIALIZING':
    case 'WAITING_FOR_RESOURCES':
      return 'QUEUED';
    default:
      return 'UNDEFINED';
  }
}

function nodeExecutionView(node: NodeExecutionJson, tasks: TaskExecutionJson[]): NodeExecutionView {
  const closure: NonNullable<NodeExecutionJson['closure']> = node.closure ?? {};
  const phase = closure.phase === 'DYNAMIC_RUNNING' ? 'RUNNING' : (closure.phase ?? 'UNDEFINED');
  const view: NodeExecutionView = {
    id: { node_id: node.id.node_id, execution_id: node.id.execution_id },
    metadata: {
      is_parent_node: node.metadata?.is_parent_node ?? false,
      spec_node_id: node.metadata?.spec_node_id ?? node.id.node_id,
    },
    closure: {
      phase,
      ...(closure.started_at != null ? { started_at: closure.started_at } : {}),
      duration: closure.duration ?? '0s',
      created_at: closure.created_at ?? closure.started_at ?? epoch,
      updated_at: closure.updated_at ?? closure.created_at ?? epoch,
    },
    attempts: [...tasks]
      .sort((a, b) => (a.id.retry_attempt ?? 0) - (b.id.retry_attempt ?? 0))
      .map((task) => {
        const error = executionError(task.closure?.error);
        return {
          attempt: (task.id.retry_attempt ?? 0) + 1,
          phase: taskPhase(task.closure?.phase),
          started_at: task.closure?.started_at ?? epoch,
          duration: task.closure?.duration ?? '0s',
          invocation_id: null,
          ...(error !== undefined ? { error } : {}),
        };
      }),
    invocation_ids: [],
    cache_hit: closure.task_node_metadata?.cache_status === 'CACHE_HIT',
  };
  const error = executionError(closure.error);
  if (error !== undefined) view.closure.error = error;
  const child = closure.workflow_node_metadata?.execution_id;
  if (child != null) view.closure.workflow_node_metadata = { execution_id: child };
  return view;
}

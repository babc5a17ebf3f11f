// A FlyteAdmin-shaped REST server for tests: a real node:http server on loopback that keeps registered tasks,
// workflows, launch plans and executions in memory, checks requests as FlyteAdmin does (ids and resource types,
// entities that must exist, required inputs, names in use), and answers with the gateway's JSON (snake_case, enums by
// name, int64 as strings, unset messages and timestamps as null as FlyteAdmin's `EmitUnpopulated` gateway writes them,
// gRPC-coded errors `{code, message, details}`). Executions advance one phase each time they are read (QUEUED → RUNNING →
// the end), and run for real: each `savassan-function` task calls the test's function of that name on its bound input,
// with the node's retries; array nodes call it per element; workflow nodes run the child launch plan.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type {
  BindingDataJson,
  ExecutionCreateRequestJson,
  ExecutionJson,
  IdentifierJson,
  LaunchPlanCreateRequestJson,
  LaunchPlanJson,
  LiteralJson,
  LiteralTypeJson,
  NodeExecutionJson,
  NodeJson,
  TaskCreateRequestJson,
  TaskExecutionJson,
  WorkflowCreateRequestJson,
  WorkflowTemplateJson,
} from '../../src/adapters/flyte/flyte-json.js';

export type FakeFunction = (input: unknown) => unknown;

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: unknown;
}

export interface FakeFlyteAdmin {
  url: string;
  requests: RecordedRequest[];
  tasks: Map<string, TaskCreateRequestJson>;
  workflows: Map<string, WorkflowCreateRequestJson>;
  launchPlans: Map<string, LaunchPlanJson>;
  /** The next request gets this answer instead (then the server answers normally again). */
  failNext: (status: number, body: string, contentType?: string) => void;
  /** Executions stay where they are when read (true) or advance (false, the default). */
  hold: (held: boolean) => void;
  close: () => Promise<void>;
}

interface FakeNodeRun {
  node: NodeExecutionJson;
  attempts: TaskExecutionJson[];
  output?: unknown;
}

interface FakeExecution {
  execution: ExecutionJson;
  launchPlan: LaunchPlanJson;
  inputs: Record<string, LiteralJson>;
  outputs: Record<string, LiteralJson> | null;
  nodes: FakeNodeRun[];
  recoverFrom: FakeExecution | null;
}

class GrpcError extends Error {
  constructor(
    readonly status: number,
    readonly grpc: number,
    message: string,
  ) {
    super(message);
  }
}

const invalid = (message: string): GrpcError => new GrpcError(400, 3, message);
const notFound = (message: string): GrpcError => new GrpcError(404, 5, message);
const exists = (message: string): GrpcError => new GrpcError(409, 6, message);

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function requireString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value === '') throw invalid(`missing ${what}`);
  return value;
}

function checkIdentifier(id: unknown, type: IdentifierJson['resource_type'], what: string): IdentifierJson {
  if (!isObject(id)) throw invalid(`missing ${what}`);
  if (id['resource_type'] !== type)
    throw invalid(`${what}.resource_type must be ${type}, got ${String(id['resource_type'])}`);
  for (const field of ['project', 'domain', 'name', 'version']) requireString(id[field], `${what}.${field}`);
  return id as unknown as IdentifierJson;
}

function idKey(id: { project: string; domain: string; name: string; version?: string }): string {
  return [id.project, id.domain, id.name, id.version ?? ''].join('/');
}

// Literals, read and written independently of the adapter.
function fromLiteral(literal: LiteralJson): unknown {
  if (literal.collection) return literal.collection.literals.map(fromLiteral);
  if (literal.map)
    return Object.fromEntries(Object.entries(literal.map.literals ?? {}).map(([k, v]) => [k, fromLiteral(v)]));
  const scalar = literal.scalar;
  if (!scalar) throw invalid('a literal needs scalar, collection or map');
  if (scalar.none_type) return null;
  if (scalar.generic) return scalar.generic;
  const p = scalar.primitive;
  if (!p) throw invalid('unsupported scalar');
  if (p.integer !== undefined) {
    if (!/^-?\d+$/.test(p.integer)) throw invalid(`int64 ${p.integer} is not an integer string`);
    return Number(p.integer);
  }
  if (p.float_value !== undefined) return p.float_value;
  if (p.string_value !== undefined) return p.string_value;
  if (p.boolean !== undefined) return p.boolean;
  throw invalid('empty primitive');
}

function toLiteral(value: unknown): LiteralJson {
  if (Array.isArray(value)) return { collection: { literals: value.map(toLiteral) } };
  if (value === null || value === undefined) return { scalar: { none_type: {} } };
  if (typeof value === 'boolean') return { scalar: { primitive: { boolean: value } } };
  if (typeof value === 'number') return { scalar: { primitive: { float_value: value } } };
  if (typeof value === 'string') return { scalar: { primitive: { string_value: value } } };
  return { scalar: { generic: value as Record<string, unknown> } };
}

function checkLiteralType(name: string, literal: LiteralJson, type: LiteralTypeJson): void {
  const p = literal.scalar?.primitive;
  const ok =
    type.collection_type !== undefined
      ? literal.collection !== undefined
      : type.simple === 'INTEGER'
        ? typeof p?.integer === 'string'
        : type.simple === 'FLOAT'
          ? typeof p?.float_value === 'number'
          : type.simple === 'STRING'
            ? typeof p?.string_value === 'string'
            : type.simple === 'BOOLEAN'
              ? typeof p?.boolean === 'boolean'
              : true;
  if (!ok)
    throw invalid(
      `invalid ${name} input wrong type. Expected ${JSON.stringify(type)}, but got ${JSON.stringify(literal)}`,
    );
}

function duration(from: string, to: Date): string {
  return `${((to.getTime() - Date.parse(from)) / 1000).toFixed(3)}s`;
}

function executionName(): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  return 'a' + [...randomBytes(19)].map((b) => alphabet[b % alphabet.length]).join('');
}

/** An execution as the gateway writes it: unset messages and timestamps as null. */
function executionOut(execution: ExecutionJson): object {
  const metadata = execution.spec?.metadata ?? {};
  const closure = execution.closure ?? {};
  return {
    id: { ...execution.id, org: '' },
    spec: {
      ...execution.spec,
      metadata: {
        mode: metadata.mode ?? 'MANUAL',
        principal: '',
        nesting: 0,
        scheduled_at: null,
        parent_node_execution: metadata.parent_node_execution ?? null,
        reference_execution: metadata.reference_execution ?? null,
        system_metadata: null,
        artifact_ids: [],
      },
      labels: null,
      annotations: null,
      security_context: null,
    },
    closure: {
      ...closure,
      computed_inputs: null,
      phase: closure.phase ?? 'UNDEFINED',
      started_at: closure.started_at ?? null,
      duration: closure.duration ?? null,
      created_at: closure.created_at ?? null,
      updated_at: closure.updated_at ?? null,
      notifications: [],
      workflow_id: null,
      state_change_details: null,
    },
  };
}

function nodeExecutionOut(node: NodeExecutionJson): object {
  const closure = node.closure ?? {};
  return {
    ...node,
    input_uri: '',
    closure: {
      ...closure,
      started_at: closure.started_at ?? null,
      duration: closure.duration ?? null,
      created_at: closure.created_at ?? null,
      updated_at: closure.updated_at ?? null,
      deck_uri: '',
      dynamic_job_spec_uri: '',
    },
    metadata: {
      retry_group: '',
      is_parent_node: false,
      spec_node_id: '',
      is_dynamic: false,
      is_array: false,
      ...node.metadata,
    },
  };
}

export async function startFakeFlyteAdmin(
  options: { functions?: Record<string, FakeFunction>; token?: string } = {},
): Promise<FakeFlyteAdmin> {
  const functions = options.functions ?? {};
  const requests: RecordedRequest[] = [];
  const tasks = new Map<string, TaskCreateRequestJson>();
  const workflows = new Map<string, WorkflowCreateRequestJson>();
  const launchPlans = new Map<string, LaunchPlanJson>();
  const executions = new Map<string, FakeExecution>();
  let order: FakeExecution[] = [];
  let injected: { status: number; body: string; contentType: string } | null = null;
  let held = false;

  const execKey = (id: { project: string; domain: string; name: string }): string => idKey({ ...id, version: '' });

  function findExecution(id: unknown): FakeExecution {
    if (!isObject(id)) throw invalid('missing id');
    const key = execKey({
      project: requireString(id['project'], 'id.project'),
      domain: requireString(id['domain'], 'id.domain'),
      name: requireString(id['name'], 'id.name'),
    });
    const found = executions.get(key);
    if (!found) throw notFound(`missing entity of type execution with identifier ${key}`);
    return found;
  }

  function createTask(body: unknown): object {
    if (!isObject(body)) throw invalid('missing body');
    const id = checkIdentifier(body['id'], 'TASK', 'id');
    const spec = body['spec'];
    if (!isObject(spec) || !isObject(spec['template'])) throw invalid('missing spec.template');
    const template = spec['template'];
    if (idKey(checkIdentifier(template['id'], 'TASK', 'spec.template.id')) !== idKey(id)) {
      throw invalid('spec.template.id does not match id');
    }
    requireString(template['type'], 'spec.template.type');
    if (!isObject(template['interface'])) throw invalid('missing spec.template.interface');
    if (tasks.has(idKey(id))) throw exists(`task with different structure already exists ${idKey(id)}`);
    tasks.set(idKey(id), body as unknown as TaskCreateRequestJson);
    return {};
  }

  function checkBinding(binding: BindingDataJson, known: Map<string, Set<string>>, where: string): void {
    if (binding.promise) {
      const vars = known.get(binding.promise.node_id);
      if (!vars) throw invalid(`${where}: promise to unknown node ${binding.promise.node_id}`);
      if (!vars.has(binding.promise.var)) {
        throw invalid(`${where}: node ${binding.promise.node_id} has no output ${binding.promise.var}`);
      }
      for (const step of binding.promise.attr_path ?? []) {
        if (typeof step.string_value !== 'string' && typeof step.int_value !== 'number') {
          throw invalid(`${where}: a promise attribute needs string_value or int_value`);
        }
      }
    } else if (binding.collection) {
      binding.collection.bindings.forEach((b, i) => checkBinding(b, known, `${where}[${i}]`));
    } else if (binding.map) {
      for (const [k, b] of Object.entries(binding.map.bindings)) checkBinding(b, known, `${where}.${k}`);
    } else if (!binding.scalar) {
      throw invalid(`${where}: a binding needs scalar, collection, promise or map`);
    }
  }

  function checkNode(node: NodeJson, known: Map<string, Set<string>>, template: WorkflowTemplateJson): Set<string> {
    requireString(node.id, 'node id');
    for (const upstream of node.upstream_node_ids ?? []) {
      if (!template.nodes.some((n) => n.id === upstream))
        throw invalid(`node ${node.id}: unknown upstream ${upstream}`);
    }
    for (const input of node.inputs ?? []) checkBinding(input.binding, known, `node ${node.id} input ${input.var}`);
    if (node.task_node) {
      const ref = checkIdentifier(node.task_node.reference_id, 'TASK', `node ${node.id} task reference`);
      const task = tasks.get(idKey(ref));
      if (!task) throw invalid(`node ${node.id}: task ${idKey(ref)} is not registered`);
      const vars = task.spec.template.interface.inputs.variables;
      for (const input of node.inputs ?? []) {
        if (!(input.var in vars)) throw invalid(`node ${node.id}: task has no input ${input.var}`);
      }
      for (const name of Object.keys(vars)) {
        if (!(node.inputs ?? []).some((i) => i.var === name))
          throw invalid(`node ${node.id}: input ${name} is not bound`);
      }
      return new Set(Object.keys(task.spec.template.interface.outputs.variables));
    }
    if (node.array_node) {
      const inner = node.array_node.node;
      const own = new Map(known);
      own.set(node.id, new Set((node.inputs ?? []).map((i) => i.var)));
      return checkNode(inner, own, template);
    }
    if (node.workflow_node) {
      const ref = checkIdentifier(node.workflow_node.launchplan_ref, 'LAUNCH_PLAN', `node ${node.id} launch plan`);
      const lp = launchPlans.get(idKey(ref));
      if (!lp) throw invalid(`node ${node.id}: launch plan ${idKey(ref)} is not registered`);
      const params = lp.spec?.default_inputs.parameters ?? {};
      for (const input of node.inputs ?? []) {
        if (!(input.var in params)) throw invalid(`node ${node.id}: launch plan has no input ${input.var}`);
      }
      const wf = workflows.get(idKey({ ...ref, version: ref.version }));
      return new Set(Object.keys(wf?.spec.template.interface.outputs.variables ?? { output: {} }));
    }
    throw invalid(`node ${node.id}: a node needs task_node, workflow_node, branch_node, gate_node or array_node`);
  }

  function createWorkflow(body: unknown): object {
    if (!isObject(body)) throw invalid('missing body');
    const id = checkIdentifier(body['id'], 'WORKFLOW', 'id');
    const spec = body['spec'];
    if (!isObject(spec) || !isObject(spec['template'])) throw invalid('missing spec.template');
    const template = spec['template'] as unknown as WorkflowTemplateJson;
    if (idKey(checkIdentifier(template.id, 'WORKFLOW', 'spec.template.id')) !== idKey(id)) {
      throw invalid('spec.template.id does not match id');
    }
    if (!Array.isArray(template.nodes)) throw invalid('missing spec.template.nodes');
    const known = new Map<string, Set<string>>([
      ['start-node', new Set(Object.keys(template.interface.inputs.variables))],
    ]);
    for (const node of template.nodes) known.set(node.id, checkNode(node, known, template));
    for (const output of template.outputs) checkBinding(output.binding, known, `output ${output.var}`);
    if (workflows.has(idKey(id))) throw exists(`workflow with identical structure already exists ${idKey(id)}`);
    workflows.set(idKey(id), body as unknown as WorkflowCreateRequestJson);
    return {};
  }

  function createLaunchPlan(body: unknown): object {
    if (!isObject(body)) throw invalid('missing body');
    const request = body as unknown as LaunchPlanCreateRequestJson;
    const id = checkIdentifier(request.id, 'LAUNCH_PLAN', 'id');
    if (!isObject(request.spec)) throw invalid('missing spec');
    const wf = checkIdentifier(request.spec.workflow_id, 'WORKFLOW', 'spec.workflow_id');
    if (!workflows.has(idKey(wf))) throw notFound(`missing entity of type workflow with identifier ${idKey(wf)}`);
    if (launchPlans.has(idKey(id))) throw exists(`launch plan already exists ${idKey(id)}`);
    launchPlans.set(idKey(id), {
      id,
      spec: request.spec,
      closure: { state: 'INACTIVE', expected_inputs: request.spec.default_inputs },
    });
    return {};
  }

  function updateLaunchPlan(path: string[], body: unknown): object {
    const [project, domain, name, version] = path.map(decodeURIComponent);
    const lp = launchPlans.get(idKey({ project: project!, domain: domain!, name: name!, version: version! }));
    if (!lp) throw notFound(`missing entity of type launch plan ${path.join('/')}`);
    if (!isObject(body) || (body['state'] !== 'ACTIVE' && body['state'] !== 'INACTIVE')) {
      throw invalid('state must be ACTIVE or INACTIVE');
    }
    if (body['state'] === 'ACTIVE') {
      for (const other of launchPlans.values()) {
        if (other.id.project === project && other.id.domain === domain && other.id.name === name) {
          other.closure = { ...other.closure, state: 'INACTIVE' };
        }
      }
    }
    lp.closure = { ...lp.closure, state: body['state'] };
    return {};
  }

  function newExecution(
    project: string,
    domain: string,
    name: string | undefined,
    lp: LaunchPlanJson,
    inputs: Record<string, LiteralJson>,
    metadata: NonNullable<ExecutionJson['spec']>['metadata'],
  ): FakeExecution {
    const id = { project, domain, name: name ?? executionName() };
    if (executions.has(execKey(id))) throw exists(`execution with name ${id.name} already exists`);
    const now = new Date().toISOString();
    const run: FakeExecution = {
      execution: {
        id,
        spec: { launch_plan: lp.id, metadata: metadata ?? { mode: 'MANUAL' } },
        closure: { phase: 'QUEUED', created_at: now, updated_at: now, duration: '0s' },
      },
      launchPlan: lp,
      inputs,
      outputs: null,
      nodes: [],
      recoverFrom: null,
    };
    executions.set(execKey(id), run);
    order = [run, ...order];
    return run;
  }

  function createExecution(body: unknown): object {
    if (!isObject(body)) throw invalid('missing body');
    const request = body as unknown as ExecutionCreateRequestJson;
    const project = requireString(request.project, 'project');
    const domain = requireString(request.domain, 'domain');
    if (request.name !== undefined && !/^[a-z][a-z0-9-]{0,62}$/.test(request.name))
      throw invalid(`invalid name ${request.name}`);
    if (!isObject(request.spec)) throw invalid('missing spec');
    const lpId = checkIdentifier(request.spec.launch_plan, 'LAUNCH_PLAN', 'spec.launch_plan');
    const lp = launchPlans.get(idKey(lpId));
    if (!lp) throw notFound(`missing entity of type launch plan with identifier ${idKey(lpId)}`);
    const params = lp.closure?.expected_inputs?.parameters ?? {};
    const given = request.inputs.literals ?? {};
    const inputs: Record<string, LiteralJson> = {};
    for (const [name, literal] of Object.entries(given)) {
      const param = params[name];
      if (!param) throw invalid(`invalid input ${name}: not in the launch plan's interface`);
      checkLiteralType(name, literal, param.var.type);
      inputs[name] = literal;
    }
    for (const [name, param] of Object.entries(params)) {
      if (inputs[name] !== undefined) continue;
      if (param.default) inputs[name] = param.default;
      else if (param.required) throw invalid(`invalid input ${name}: required input not provided`);
    }
    const run = newExecution(project, domain, request.name, lp, inputs, {
      mode: request.spec.metadata?.mode ?? 'MANUAL',
    });
    return { id: run.execution.id };
  }

  function attrWalk(value: unknown, binding: NonNullable<BindingDataJson['promise']>): unknown {
    let current = value;
    for (const step of binding.attr_path ?? []) {
      const key = step.string_value ?? step.int_value;
      if (key === undefined || current === null || typeof current !== 'object') {
        throw new Error(`attribute ${String(key)} not found in ${binding.node_id}.${binding.var}`);
      }
      current = (current as Record<string | number, unknown>)[key];
      if (current === undefined)
        throw new Error(`attribute ${String(key)} not found in ${binding.node_id}.${binding.var}`);
    }
    return current;
  }

  function resolve(binding: BindingDataJson, values: Map<string, Record<string, unknown>>): unknown {
    if (binding.promise) {
      const source = values.get(binding.promise.node_id);
      if (!source) throw new Error(`upstream ${binding.promise.node_id} has no outputs`);
      return attrWalk(source[binding.promise.var], binding.promise);
    }
    if (binding.collection) return binding.collection.bindings.map((b) => resolve(b, values));
    if (binding.map) {
      return Object.fromEntries(Object.entries(binding.map.bindings).map(([k, b]) => [k, resolve(b, values)]));
    }
    return fromLiteral({ scalar: binding.scalar! });
  }

  function substituteItem(template: unknown, item: unknown, index: number): unknown {
    if (template === '$.index') return index;
    if (typeof template === 'string' && template.startsWith('$.item')) {
      let current = item;
      for (const m of template.slice('$.item'.length).matchAll(/\.([^.[\]]+)|\[(\d+)\]/g)) {
        current =
          current === null || typeof current !== 'object'
            ? null
            : ((current as Record<string, unknown>)[m[1] ?? Number(m[2])] ?? null);
      }
      return current;
    }
    if (Array.isArray(template)) return template.map((t) => substituteItem(t, item, index));
    if (isObject(template))
      return Object.fromEntries(Object.entries(template).map(([k, v]) => [k, substituteItem(v, item, index)]));
    return template;
  }

  function runTask(node: NodeJson, input: unknown, run: FakeNodeRun, id: NodeExecutionJson['id']): unknown {
    const task = tasks.get(idKey(node.task_node!.reference_id))!;
    const fn = functions[String(task.spec.template.custom['function'])];
    const retries = node.metadata?.retries?.retries ?? 0;
    for (let attempt = 0; ; attempt += 1) {
      const started = new Date().toISOString();
      try {
        if (!fn) throw new Error(`function ${String(task.spec.template.custom['function'])} does not exist`);
        const output = fn(input);
        run.attempts.push({
          id: { node_execution_id: id, retry_attempt: attempt },
          closure: { phase: 'SUCCEEDED', started_at: started, duration: '0.001s' },
        });
        return output;
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        run.attempts.push({
          id: { node_execution_id: id, retry_attempt: attempt },
          closure: {
            phase: attempt < retries ? 'RETRYABLE_FAILED' : 'FAILED',
            started_at: started,
            duration: '0.001s',
            error: { code: 'USER:Error', message, kind: 'USER' },
          },
        });
        if (attempt >= retries) throw err;
      }
    }
  }

  /** Runs every node of the execution's workflow, in order, to its end. */
  function runExecution(exec: FakeExecution): void {
    const wf = workflows.get(idKey(exec.launchPlan.spec!.workflow_id))!.spec.template;
    const values = new Map<string, Record<string, unknown>>();
    values.set('start-node', Object.fromEntries(Object.entries(exec.inputs).map(([k, v]) => [k, fromLiteral(v)])));
    const failFast = wf.metadata.on_failure !== 'FAIL_AFTER_EXECUTABLE_NODES_COMPLETE';
    let failure: { node: string; message: string } | null = null;
    for (const node of wf.nodes) {
      const id = { node_id: node.id, execution_id: exec.execution.id };
      const now = new Date().toISOString();
      const nodeRun: FakeNodeRun = {
        node: {
          id,
          metadata: { spec_node_id: node.id, is_parent_node: node.array_node !== undefined },
          closure: { phase: 'RUNNING', started_at: now, created_at: now, updated_at: now, duration: '0s' },
        },
        attempts: [],
      };
      const upstreamFailed = (node.upstream_node_ids ?? []).some((u) => !values.has(u));
      if (upstreamFailed || (failure && failFast)) continue;
      exec.nodes.push(nodeRun);
      const previous = exec.recoverFrom?.nodes.find((n) => n.node.id.node_id === node.id);
      try {
        let output: unknown;
        if (
          previous &&
          (previous.node.closure?.phase === 'SUCCEEDED' || previous.node.closure?.phase === 'RECOVERED')
        ) {
          output = previous.output;
          nodeRun.node.closure!.phase = 'RECOVERED';
        } else {
          const inputs = Object.fromEntries((node.inputs ?? []).map((b) => [b.var, resolve(b.binding, values)]));
          if (node.task_node) {
            output = runTask(node, inputs['input'], nodeRun, id);
          } else if (node.array_node) {
            const items = inputs['item'];
            if (!Array.isArray(items)) throw new Error(`array node ${node.id}: item is not a list`);
            output = items.map((item, index) =>
              runTask(node.array_node!.node, substituteItem(inputs['input'], item, index), nodeRun, id),
            );
          } else {
            const lp = launchPlans.get(idKey(node.workflow_node!.launchplan_ref))!;
            const child = newExecution(
              exec.execution.id.project,
              exec.execution.id.domain,
              undefined,
              lp,
              Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, toLiteral(v)])),
              { mode: 'CHILD_WORKFLOW', parent_node_execution: id },
            );
            finish(child);
            nodeRun.node.closure!.workflow_node_metadata = { execution_id: child.execution.id };
            if (child.execution.closure?.phase !== 'SUCCEEDED')
              throw new Error(`child execution ${child.execution.id.name} failed`);
            output = child.outputs?.['output'] ? fromLiteral(child.outputs['output']) : null;
          }
          nodeRun.node.closure!.phase = 'SUCCEEDED';
        }
        nodeRun.output = output;
        values.set(node.id, { output });
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        nodeRun.node.closure!.phase = 'FAILED';
        nodeRun.node.closure!.error = { code: 'USER:Error', message, kind: 'USER' };
        failure ??= { node: node.id, message };
      }
    }
    const closure = exec.execution.closure!;
    if (failure) {
      closure.phase = 'FAILED';
      closure.error = { code: 'USER:Error', message: `node ${failure.node}: ${failure.message}`, kind: 'USER' };
      return;
    }
    try {
      exec.outputs = Object.fromEntries(wf.outputs.map((b) => [b.var, toLiteral(resolve(b.binding, values))]));
      closure.phase = 'SUCCEEDED';
    } catch (err) {
      closure.phase = 'FAILED';
      closure.error = { code: 'USER:Error', message: String(err), kind: 'USER' };
    }
  }

  function finish(exec: FakeExecution): void {
    const closure = exec.execution.closure!;
    const now = new Date();
    if (closure.phase === 'QUEUED') closure.started_at = now.toISOString();
    if (closure.phase === 'QUEUED' || closure.phase === 'RUNNING') runExecution(exec);
    closure.updated_at = now.toISOString();
    closure.duration = duration(closure.started_at ?? closure.created_at!, now);
  }

  /** One step forward: QUEUED → RUNNING → its end; ABORTING → ABORTED. */
  function advance(exec: FakeExecution): void {
    if (held) return;
    const closure = exec.execution.closure!;
    const now = new Date();
    if (closure.phase === 'QUEUED') {
      closure.phase = 'RUNNING';
      closure.started_at = now.toISOString();
    } else if (closure.phase === 'RUNNING') {
      finish(exec);
    } else if (closure.phase === 'ABORTING') {
      closure.phase = 'ABORTED';
    }
    closure.updated_at = now.toISOString();
  }

  function terminate(path: string[], body: unknown): object {
    const exec = findExecution({
      project: decodeURIComponent(path[0]!),
      domain: decodeURIComponent(path[1]!),
      name: decodeURIComponent(path[2]!),
    });
    if (!isObject(body)) throw invalid('missing body');
    const closure = exec.execution.closure!;
    if (['SUCCEEDED', 'FAILED', 'ABORTED', 'TIMED_OUT', 'ABORTING'].includes(closure.phase!)) {
      throw new GrpcError(400, 9, `Cannot abort an already terminate workflow execution ${exec.execution.id.name}`);
    }
    closure.phase = 'ABORTING';
    closure.abort_metadata = { cause: typeof body['cause'] === 'string' ? body['cause'] : '', principal: 'flyteadmin' };
    return {};
  }

  function again(body: unknown, mode: 'RELAUNCH' | 'RECOVERED'): object {
    if (!isObject(body)) throw invalid('missing body');
    const from = findExecution(body['id']);
    const name = typeof body['name'] === 'string' && body['name'] !== '' ? body['name'] : undefined;
    const run = newExecution(from.execution.id.project, from.execution.id.domain, name, from.launchPlan, from.inputs, {
      mode,
      reference_execution: from.execution.id,
    });
    if (mode === 'RECOVERED') run.recoverFrom = from;
    return { id: run.execution.id };
  }

  function listExecutions(path: string[], query: URLSearchParams): object {
    const [project, domain] = path.map(decodeURIComponent);
    const limit = Number(query.get('limit') ?? '0');
    if (!Number.isInteger(limit) || limit <= 0) throw invalid('invalid limit');
    const offset = query.get('token') ? Number(query.get('token')) : 0;
    if (!Number.isInteger(offset) || offset < 0) throw invalid('invalid pagination token');
    const filter = /^eq\(workflow\.name,(.+)\)$/.exec(query.get('filters') ?? '');
    if (query.get('filters') && !filter) throw invalid(`unsupported filter ${query.get('filters')}`);
    if (query.get('sort_by.direction') !== 'DESCENDING' || query.get('sort_by.key') !== 'created_at') {
      throw invalid('this server sorts by created_at DESCENDING only');
    }
    const all = order.filter(
      (e) =>
        e.execution.id.project === project &&
        e.execution.id.domain === domain &&
        (!filter || e.launchPlan.spec?.workflow_id.name === filter[1]),
    );
    const page = all.slice(offset, offset + limit);
    return {
      executions: page.map((e) => e.execution),
      token: offset + limit < all.length ? String(offset + limit) : '',
    };
  }

  function route(method: string, parts: string[], query: URLSearchParams, body: unknown): object {
    const [api, v1, kind, ...rest] = parts;
    if (api !== 'api' || v1 !== 'v1') throw new GrpcError(404, 5, 'Not Found');
    const exec = (): FakeExecution =>
      findExecution({
        project: decodeURIComponent(rest[0] ?? ''),
        domain: decodeURIComponent(rest[1] ?? ''),
        name: decodeURIComponent(rest[2] ?? ''),
      });
    if (method === 'POST' && kind === 'tasks' && rest.length === 0) return createTask(body);
    if (method === 'POST' && kind === 'workflows' && rest.length === 0) return createWorkflow(body);
    if (method === 'POST' && kind === 'launch_plans' && rest.length === 0) return createLaunchPlan(body);
    if (method === 'PUT' && kind === 'launch_plans' && rest.length === 4) return updateLaunchPlan(rest, body);
    if (method === 'GET' && kind === 'launch_plans' && rest.length === 4) {
      const [project, domain, name, version] = rest.map(decodeURIComponent);
      const lp = launchPlans.get(idKey({ project: project!, domain: domain!, name: name!, version: version! }));
      if (!lp) throw notFound(`missing entity of type launch plan with identifier ${rest.join('/')}`);
      return lp;
    }
    if (method === 'GET' && kind === 'active_launch_plans' && rest.length === 3) {
      const [project, domain, name] = rest.map(decodeURIComponent);
      const lp = [...launchPlans.values()].find(
        (l) =>
          l.id.project === project && l.id.domain === domain && l.id.name === name && l.closure?.state === 'ACTIVE',
      );
      if (!lp) throw notFound(`No active launch plan could be found: ${rest.join(':')}`);
      return lp;
    }
    if (method === 'POST' && kind === 'executions' && rest.length === 0) return createExecution(body);
    if (method === 'POST' && kind === 'executions' && rest[0] === 'relaunch' && rest.length === 1)
      return again(body, 'RELAUNCH');
    if (method === 'POST' && kind === 'executions' && rest[0] === 'recover' && rest.length === 1)
      return again(body, 'RECOVERED');
    if (method === 'GET' && kind === 'executions' && rest.length === 3) {
      const e = exec();
      advance(e);
      return executionOut(e.execution);
    }
    if (method === 'GET' && kind === 'executions' && rest.length === 2) return listExecutions(rest, query);
    if (method === 'DELETE' && kind === 'executions' && rest.length === 3) return terminate(rest, body);
    if (method === 'GET' && kind === 'data' && rest[0] === 'executions' && rest.length === 4) {
      const e = findExecution({
        project: decodeURIComponent(rest[1]!),
        domain: decodeURIComponent(rest[2]!),
        name: decodeURIComponent(rest[3]!),
      });
      return {
        outputs: null,
        inputs: null,
        full_inputs: { literals: e.inputs },
        full_outputs: e.outputs ? { literals: e.outputs } : null,
      };
    }
    if (method === 'GET' && kind === 'node_executions' && rest.length === 3) {
      const e = exec();
      const limit = Number(query.get('limit') ?? '100');
      const offset = query.get('token') ? Number(query.get('token')) : 0;
      const all = e.nodes.map((n) => n.node);
      return {
        node_executions: all.slice(offset, offset + limit).map(nodeExecutionOut),
        token: offset + limit < all.length ? String(offset + limit) : '',
      };
    }
    if (method === 'GET' && kind === 'task_executions' && rest.length === 4) {
      const e = exec();
      const node = e.nodes.find((n) => n.node.id.node_id === decodeURIComponent(rest[3]!));
      if (!node) throw notFound(`missing entity of type node execution ${rest.join('/')}`);
      return {
        task_executions: node.attempts.map((a) => ({
          ...a,
          closure: {
            ...a.closure,
            started_at: a.closure?.started_at ?? null,
            duration: a.closure?.duration ?? null,
            logs: [],
          },
        })),
        token: '',
      };
    }
    throw new GrpcError(404, 5, 'Not Found');
  }

  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://fake');
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      const send = (status: number, payload: unknown): void => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
      };
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        send(400, { code: 3, message: 'invalid character in request body', details: [] });
        return;
      }
      requests.push({
        method: req.method ?? '',
        path: url.pathname,
        query: url.searchParams,
        headers: req.headers,
        body,
      });
      if (injected) {
        const { status, body: raw, contentType } = injected;
        injected = null;
        res.writeHead(status, { 'content-type': contentType }).end(raw);
        return;
      }
      if (options.token !== undefined && req.headers.authorization !== `Bearer ${options.token}`) {
        send(401, { code: 16, message: 'token not valid', details: [] });
        return;
      }
      try {
        send(
          200,
          route(
            req.method ?? '',
            url.pathname.split('/').filter((p) => p !== ''),
            url.searchParams,
            body,
          ),
        );
      } catch (err) {
        if (err instanceof GrpcError) send(err.status, { code: err.grpc, message: err.message, details: [] });
        else send(500, { code: 13, message: String(err), details: [] });
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    tasks,
    workflows,
    launchPlans,
    failNext: (status, body, contentType = 'application/json') => {
      injected = { status, body, contentType };
    },
    hold: (value) => {
      held = value;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

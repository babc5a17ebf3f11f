/**
 * A compiled Savassan workflow as the entities FlyteAdmin registers: one task per function or map node (plugin type
 * `savassan-function`, the function, its qualifier and retry delay in `custom`), a workflow whose nodes bind their
 * `input` to the workflow's inputs and upstream outputs, and a launch plan named like the workflow.
 *
 * Values cross Flyte as one input variable `input` per task and one output `output` per task and per workflow. A
 * reference becomes a promise: `$.inputs.x.a[1]` → `{node_id: "start-node", var: "x", attr_path: ["a", 1]}`,
 * `$.nodes.b.output.n` → `{node_id: "b", var: "output", attr_path: ["n"]}`. Objects and lists holding references
 * become binding maps and collections; values without references are literals. A map node is an array node over the
 * referenced list (variable `item`, one element per sub-node); `$.item` and `$.index` inside its input stay strings
 * that the `savassan-function` plugin resolves per element. A sub-workflow node is a workflow node on the child's
 * launch plan, its input object bound key by key to the child's inputs. `when` has no counterpart here: such a spec
 * is refused.
 */
import { PlatformError } from '../../core/errors.js';
import { isReferenceText, parseReference } from '../../core/workflow-compile.js';
import type { CompiledNode, CompiledWorkflow } from '../../core/workflow-spec.js';
import type {
  BindingDataJson,
  IdentifierJson,
  LaunchPlanCreateRequestJson,
  NodeJson,
  ParameterJson,
  PromiseAttributeJson,
  TaskCreateRequestJson,
  TypedInterfaceJson,
  VariableJson,
  WorkflowCreateRequestJson,
} from './flyte-json.js';
import { literalForInput, literalTypeFor, scalarFromJson } from './flyte-literals.js';

/** The task plugin that runs a Savassan function for Flyte. */
export const savassanTaskType = 'savassan-function';
/** Flyte's name for the node that holds a workflow's inputs. */
export const startNodeId = 'start-node';
/** The single input and output variable of every task, and the workflow's output. */
export const inputVar = 'input';
export const outputVar = 'output';
export const itemVar = 'item';

const anyJson: VariableJson = { type: { simple: 'STRUCT' } };

function attrPath(path: (string | number)[]): PromiseAttributeJson[] | undefined {
  if (path.length === 0) return undefined;
  return path.map((step) => (typeof step === 'number' ? { int_value: step } : { string_value: step }));
}

function isLiteralEscape(value: unknown): value is { $literal: unknown } {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    '$literal' in value
  );
}

function holdsReference(value: unknown): boolean {
  if (isLiteralEscape(value)) return false;
  if (typeof value === 'string') return isReferenceText(value);
  if (Array.isArray(value)) return value.some(holdsReference);
  if (value !== null && typeof value === 'object') return Object.values(value).some(holdsReference);
  return false;
}

function literalBinding(value: unknown): BindingDataJson {
  if (Array.isArray(value)) return { collection: { bindings: value.map(literalBinding) } };
  return { scalar: scalarFromJson(value) };
}

/**
 * A template (a node input or the workflow output) as binding data. `where` names it in errors; `inMap` allows
 * `$.item` and `$.index`, which stay strings for the plugin.
 */
export function bindingFor(template: unknown, where: string, inMap: boolean): BindingDataJson {
  if (isLiteralEscape(template)) return literalBinding(template.$literal);
  if (!holdsReference(template)) return literalBinding(template ?? null);
  if (Array.isArray(template)) {
    return { collection: { bindings: template.map((v, i) => bindingFor(v, `${where}[${i}]`, inMap)) } };
  }
  if (typeof template === 'object' && template !== null) {
    const bindings: Record<string, BindingDataJson> = {};
    for (const [key, value] of Object.entries(template)) bindings[key] = bindingFor(value, `${where}.${key}`, inMap);
    return { map: { bindings } };
  }
  if (!isReferenceText(template)) return literalBinding(template);
  const ref = parseReference(template);
  switch (ref.root) {
    case 'inputs':
      return { promise: { node_id: startNodeId, var: ref.name, attr_path: attrPath(ref.path) } };
    case 'nodes':
      return { promise: { node_id: ref.name, var: outputVar, attr_path: attrPath(ref.path) } };
    case 'item':
    case 'index':
      if (!inMap) throw new PlatformError('BAD_REQUEST', `${where}: ${template} is only valid in a map node`);
      return literalBinding(template);
  }
}

export interface RegistrationTarget {
  project: string;
  domain: string;
  name: string;
  /** The Savassan version number, as Flyte's version string. */
  version: string;
  /** Sub-workflow nodes' child launch-plan versions, by child workflow name (latest ones resolved beforehand). */
  childVersions: ReadonlyMap<string, string>;
}

/** What to create in FlyteAdmin, in order: tasks, then the workflow, then the launch plan (then activate it). */
export interface FlyteRegistration {
  tasks: TaskCreateRequestJson[];
  workflow: WorkflowCreateRequestJson;
  launchPlan: LaunchPlanCreateRequestJson;
}

function id(
  resource_type: IdentifierJson['resource_type'],
  target: RegistrationTarget,
  name = target.name,
): IdentifierJson {
  return { resource_type, project: target.project, domain: target.domain, name, version: target.version };
}

function workflowInterface(compiled: CompiledWorkflow): TypedInterfaceJson {
  const variables: Record<string, VariableJson> = {};
  for (const [name, input] of Object.entries(compiled.inputs)) variables[name] = { type: literalTypeFor(input.type) };
  return { inputs: { variables }, outputs: { variables: { [outputVar]: anyJson } } };
}

/** The node ids a node, or the workflow output, may not name: Flyte's own. */
function checkNodeId(nodeId: string): void {
  if (nodeId === startNodeId || nodeId === 'end-node') {
    throw new PlatformError('BAD_REQUEST', `node ${nodeId}: the Flyte backend reserves the node id ${nodeId}`);
  }
}

function taskFor(node: CompiledNode, target: RegistrationTarget): TaskCreateRequestJson {
  const taskId = id('TASK', target, `${target.name}.${node.id}`);
  const inputs: Record<string, VariableJson> = { [inputVar]: anyJson };
  if (node.kind === 'map') inputs[itemVar] = anyJson;
  return {
    id: taskId,
    spec: {
      template: {
        id: taskId,
        type: savassanTaskType,
        metadata: node.cache
          ? { discoverable: true, discovery_version: target.version, runtime_flavor: 'savassan' }
          : { runtime_flavor: 'savassan' },
        interface: { inputs: { variables: inputs }, outputs: { variables: { [outputVar]: anyJson } } },
        custom: {
          function: node.target,
          qualifier: node.qualifier,
          retryDelaySeconds: node.retryDelaySeconds,
          ...(node.kind === 'map' ? { map: { concurrency: node.map?.concurrency ?? 10 } } : {}),
        },
      },
    },
  };
}

function nodeFor(node: CompiledNode, target: RegistrationTarget): NodeJson {
  checkNodeId(node.id);
  if (node.when !== null) {
    throw new PlatformError(
      'BAD_REQUEST',
      `node ${node.id}: when: the Flyte backend does not run conditional nodes; remove "when" or use the builtin backend`,
    );
  }
  const metadata: NodeJson['metadata'] = { name: node.id };
  if (node.retries > 0) metadata.retries = { retries: node.retries };
  if (node.timeoutSeconds !== null) metadata.timeout = `${node.timeoutSeconds}s`;
  const upstream = node.dependsOn.length > 0 ? { upstream_node_ids: [...node.dependsOn] } : {};
  const where = `node ${node.id}: input`;
  if (node.kind === 'function') {
    return {
      id: node.id,
      metadata,
      inputs: [{ var: inputVar, binding: bindingFor(node.input, where, false) }],
      ...upstream,
      task_node: { reference_id: id('TASK', target, `${target.name}.${node.id}`) },
    };
  }
  if (node.kind === 'map') {
    if (node.map === null) throw new PlatformError('BAD_REQUEST', `node ${node.id}: map: a map node needs a list`);
    const list = bindingFor(node.map.ref, `node ${node.id}: map`, false);
    if (list.promise === undefined) {
      throw new PlatformError('BAD_REQUEST', `node ${node.id}: map: the Flyte backend maps over a reference only`);
    }
    return {
      id: node.id,
      metadata,
      inputs: [
        { var: itemVar, binding: list },
        { var: inputVar, binding: bindingFor(node.input, where, true) },
      ],
      ...upstream,
      array_node: {
        node: {
          id: `${node.id}-element`,
          metadata: { name: `${node.id}-element`, ...(metadata.retries ? { retries: metadata.retries } : {}) },
          inputs: [
            { var: itemVar, binding: { promise: { node_id: node.id, var: itemVar } } },
            { var: inputVar, binding: { promise: { node_id: node.id, var: inputVar } } },
          ],
          task_node: { reference_id: id('TASK', target, `${target.name}.${node.id}`) },
        },
        parallelism: node.map.concurrency,
        bound_inputs: [inputVar],
      },
    };
  }
  const childVersion = node.version !== null ? String(node.version) : target.childVersions.get(node.target);
  if (childVersion === undefined) {
    throw new PlatformError('NOT_FOUND', `node ${node.id}: workflow ${node.target} is not registered with Flyte`);
  }
  const input = node.input ?? {};
  if (typeof input !== 'object' || Array.isArray(input) || isLiteralEscape(input)) {
    throw new PlatformError(
      'BAD_REQUEST',
      `${where}: the Flyte backend binds a sub-workflow's inputs one by one; give an object of the child's inputs`,
    );
  }
  return {
    id: node.id,
    metadata,
    inputs: Object.entries(input).map(([key, value]) => ({
      var: key,
      binding: bindingFor(value, `${where}.${key}`, false),
    })),
    ...upstream,
    workflow_node: {
      launchplan_ref: { ...id('LAUNCH_PLAN', target, node.target), version: childVersion },
    },
  };
}

/** The FlyteAdmin entities for one workflow version in one project and domain. */
export function flyteRegistration(compiled: CompiledWorkflow, target: RegistrationTarget): FlyteRegistration {
  const nodes = compiled.order.map((nodeId) => {
    const node = compiled.nodes[nodeId];
    if (node === undefined) throw new PlatformError('INTERNAL', `compiled workflow lacks node ${nodeId}`);
    return node;
  });
  const workflowId = id('WORKFLOW', target);
  const iface = workflowInterface(compiled);
  const parameters: Record<string, ParameterJson> = {};
  for (const [name, input] of Object.entries(compiled.inputs)) {
    const variable = iface.inputs.variables[name] ?? anyJson;
    parameters[name] =
      input.required || input.default === undefined
        ? { var: variable, required: true }
        : { var: variable, default: literalForInput(name, input.type, input.default) };
  }
  const launchPlanId = id('LAUNCH_PLAN', target);
  return {
    tasks: nodes.filter((node) => node.kind !== 'workflow').map((node) => taskFor(node, target)),
    workflow: {
      id: workflowId,
      spec: {
        template: {
          id: workflowId,
          metadata: {
            on_failure:
              compiled.failurePolicy === 'finishRunnable' ? 'FAIL_AFTER_EXECUTABLE_NODES_COMPLETE' : 'FAIL_IMMEDIATELY',
          },
          interface: iface,
          nodes: nodes.map((node) => nodeFor(node, target)),
          outputs: [{ var: outputVar, binding: bindingFor(compiled.output, 'output', false) }],
        },
      },
    },
    launchPlan: {
      id: launchPlanId,
      spec: { workflow_id: workflowId, default_inputs: { parameters }, fixed_inputs: { literals: {} } },
    },
  };
}

/** The child workflows whose latest version a registration must look up first. */
export function unpinnedChildren(compiled: CompiledWorkflow): string[] {
  const names = new Set<string>();
  for (const node of Object.values(compiled.nodes)) {
    if (node.kind === 'workflow' && node.version === null) names.add(node.target);
  }
  return [...names].sort();
}

import type {
  WorkflowCondition,
  WorkflowFailurePolicy,
  WorkflowInputSpec,
  WorkflowNodeSpec,
  WorkflowSpec,
  WorkflowValueType,
} from '../core/workflow-spec.js';

/**
 * A typed builder for workflow specs: the JSON `PUT /v1/workflows/{name}` takes, written as code. References are
 * `Ref` objects that serialise to `$.` strings; plain strings starting with `$.` are escaped as `{"$literal": ...}`.
 *
 * @example
 * const wf = workflow({ inputs: { x: 'number' } });
 * const a = wf.node('a', fn('double', { n: wf.input('x') }));
 * const b = wf.node('b', fn('inc', { n: a.output('n') }), { retries: 2 });
 * wf.output({ result: b.output('n') });
 * await client.deployWorkflow('double-inc', wf.toJSON());
 */

/** The TypeScript type of a declared workflow value type. */
export type ValueOf<T extends WorkflowValueType> = T extends 'string'
  ? string
  : T extends 'number' | 'integer'
    ? number
    : T extends 'boolean'
      ? boolean
      : T extends 'object'
        ? Record<string, unknown>
        : T extends 'array'
          ? unknown[]
          : unknown;

/** The TypeScript type of a declared input. */
export type InputValue<S extends WorkflowInputSpec> = S extends WorkflowValueType
  ? ValueOf<S>
  : S extends { type: infer T extends WorkflowValueType }
    ? ValueOf<T>
    : unknown;

/** A reference to a value known when a node runs: an input, a node's output, a map element or its index. */
export class Ref<T = unknown> {
  /** Carries `T` for the type checker only. */
  declare readonly valueType?: T;
  readonly #text: string;

  constructor(text: string) {
    this.#text = text;
  }

  /** A reference below this one: `get('list')`, `get(2)`, `get('list', 2, 'id')`. */
  get<U = unknown>(...path: (string | number)[]): Ref<U> {
    return new Ref<U>(this.#text + pathText(path));
  }

  /** The `$.` text this reference serialises to. */
  toJSON(): string {
    return this.#text;
  }

  toString(): string {
    return this.#text;
  }
}

function pathText(path: readonly (string | number)[]): string {
  return path
    .map((key) => {
      if (typeof key === 'number') {
        if (!Number.isSafeInteger(key) || key < 0) throw new Error(`bad index ${key} in a reference`);
        return `[${key}]`;
      }
      if (key === '' || /[.[\]]/.test(key)) throw new Error(`bad key ${JSON.stringify(key)} in a reference`);
      return `.${key}`;
    })
    .join('');
}

/** What a template may hold: JSON values and references anywhere within them. */
export type Template =
  | Ref<unknown>
  | string
  | number
  | boolean
  | null
  | readonly Template[]
  | { readonly [key: string]: Template | undefined };

/** A template as spec JSON: references as `$.` strings, strings that look like references escaped. */
export function templateJson(value: Template | undefined): unknown {
  if (value instanceof Ref) return value.toJSON();
  if (typeof value === 'string') return value.startsWith('$.') ? { $literal: value } : value;
  if (Array.isArray(value)) return value.map((element: Template) => templateJson(element));
  if (typeof value === 'object' && value !== null) {
    if (Object.hasOwn(value, '$literal')) return { $literal: value };
    const out: Record<string, unknown> = {};
    for (const [key, element] of Object.entries(value as Record<string, Template | undefined>)) {
      if (element !== undefined) out[key] = templateJson(element);
    }
    return out;
  }
  return value;
}

/** What a node runs and with what input; made by `fn` or `subworkflow`. */
export type NodeTarget =
  | { kind: 'function'; function: string; qualifier?: string; input?: Template }
  | { kind: 'workflow'; workflow: string; version?: number; input?: Template };

/** A function node's target: `fn('resize', { key: a.output('key') }, { qualifier: '3' })`. */
export function fn(name: string, input?: Template, options: { qualifier?: string } = {}): NodeTarget {
  return { kind: 'function', function: name, ...options, ...(input === undefined ? {} : { input }) };
}

/** A sub-workflow node's target: `subworkflow('thumbnails', { keys: a.output('keys') }, { version: 2 })`. */
export function subworkflow(name: string, input?: Template, options: { version?: number } = {}): NodeTarget {
  return { kind: 'workflow', workflow: name, ...options, ...(input === undefined ? {} : { input }) };
}

/** Settings every kind of node takes (see `WorkflowNodeCommon`). */
export interface NodeOptions {
  when?: WorkflowCondition;
  retries?: number;
  retryDelaySeconds?: number;
  timeoutSeconds?: number;
  cache?: boolean;
  description?: string;
}

/** A map node: `over` a list reference; `input` as a template or built from the element and its index. */
export interface MapOptions extends NodeOptions {
  over: Ref<unknown>;
  function: string;
  qualifier?: string;
  input?: Template | ((element: { item: Ref<unknown>; index: Ref<number> }) => Template);
  concurrency?: number;
}

/** A node added to a workflow, to refer to its output. */
export class NodeHandle {
  constructor(readonly id: string) {}

  /** `$.nodes.ID.output` and below: `output()`, `output('n')`, `output('list', 2, 'id')`. */
  output<T = unknown>(...path: (string | number)[]): Ref<T> {
    return new Ref<T>(`$.nodes.${this.id}.output${pathText(path)}`);
  }
}

function leaf(ref: Ref<unknown>, operator: string, operand: unknown): WorkflowCondition {
  return { ref: ref.toJSON(), [operator]: operand } as unknown as WorkflowCondition;
}

/** Conditions for a node's `when`. */
export const when = {
  equals: (ref: Ref<unknown>, value: Template): WorkflowCondition => leaf(ref, 'equals', templateJson(value)),
  notEquals: (ref: Ref<unknown>, value: Template): WorkflowCondition => leaf(ref, 'notEquals', templateJson(value)),
  greaterThan: (ref: Ref<unknown>, value: number): WorkflowCondition => leaf(ref, 'greaterThan', value),
  greaterThanOrEquals: (ref: Ref<unknown>, value: number): WorkflowCondition => leaf(ref, 'greaterThanOrEquals', value),
  lessThan: (ref: Ref<unknown>, value: number): WorkflowCondition => leaf(ref, 'lessThan', value),
  lessThanOrEquals: (ref: Ref<unknown>, value: number): WorkflowCondition => leaf(ref, 'lessThanOrEquals', value),
  exists: (ref: Ref<unknown>, exists = true): WorkflowCondition => leaf(ref, 'exists', exists),
  truthy: (ref: Ref<unknown>, truthy = true): WorkflowCondition => leaf(ref, 'truthy', truthy),
  all: (...conditions: WorkflowCondition[]): WorkflowCondition => ({ all: conditions }),
  any: (...conditions: WorkflowCondition[]): WorkflowCondition => ({ any: conditions }),
  not: (condition: WorkflowCondition): WorkflowCondition => ({ not: condition }),
};

/** Builds one workflow spec; see the module example. */
export class WorkflowBuilder<I extends Record<string, WorkflowInputSpec>> {
  readonly #inputs: I | undefined;
  readonly #description: string | undefined;
  readonly #failurePolicy: WorkflowFailurePolicy | undefined;
  readonly #nodes = new Map<string, Record<string, unknown>>();
  #output: Template | undefined;

  constructor(options: { inputs?: I; description?: string; failurePolicy?: WorkflowFailurePolicy }) {
    this.#inputs = options.inputs;
    this.#description = options.description;
    this.#failurePolicy = options.failurePolicy;
  }

  /** `$.inputs.NAME`, typed by the declaration. */
  input<K extends keyof I & string>(name: K): Ref<InputValue<I[K]>> {
    if (this.#inputs === undefined || !Object.hasOwn(this.#inputs, name)) {
      throw new Error(`workflow input ${name} is not declared`);
    }
    return new Ref(`$.inputs.${name}`);
  }

  /** Adds a function or sub-workflow node. */
  node(id: string, target: NodeTarget, options: NodeOptions = {}): NodeHandle {
    const what =
      target.kind === 'function'
        ? { function: target.function, qualifier: target.qualifier }
        : { workflow: target.workflow, version: target.version };
    const input = target.input === undefined ? {} : { input: templateJson(target.input) };
    return this.#add(id, { ...what, ...input, ...options });
  }

  /** Adds a map node: runs `function` once per element of `over`; its output is the list of outputs. */
  map(id: string, options: MapOptions): NodeHandle {
    const { over, input, ...rest } = options;
    const template =
      typeof input === 'function' ? input({ item: new Ref('$.item'), index: new Ref<number>('$.index') }) : input;
    return this.#add(id, {
      map: over.toJSON(),
      ...rest,
      ...(template === undefined ? {} : { input: templateJson(template) }),
    });
  }

  /** Sets the workflow's output. */
  output(template: Template): this {
    this.#output = template;
    return this;
  }

  /** The spec JSON. */
  toJSON(): WorkflowSpec {
    const spec: WorkflowSpec = {
      nodes: Object.fromEntries(this.#nodes) as unknown as Record<string, WorkflowNodeSpec>,
    };
    if (this.#description !== undefined) spec.description = this.#description;
    if (this.#inputs !== undefined) spec.inputs = this.#inputs;
    if (this.#output !== undefined) spec.output = templateJson(this.#output);
    if (this.#failurePolicy !== undefined) spec.failurePolicy = this.#failurePolicy;
    return spec;
  }

  #add(id: string, node: Record<string, unknown>): NodeHandle {
    if (this.#nodes.has(id)) throw new Error(`workflow node ${id} is added twice`);
    const defined = Object.fromEntries(Object.entries(node).filter(([, value]) => value !== undefined));
    this.#nodes.set(id, defined);
    return new NodeHandle(id);
  }
}

/** Starts a workflow spec. */
export function workflow<I extends Record<string, WorkflowInputSpec> = Record<never, WorkflowInputSpec>>(
  options: { inputs?: I; description?: string; failurePolicy?: WorkflowFailurePolicy } = {},
): WorkflowBuilder<I> {
  return new WorkflowBuilder(options);
}

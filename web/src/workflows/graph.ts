// A workflow spec as a graph: the edges its references make, whether a new edge would close a cycle, a layered
// layout (longest-path layers, then barycentre ordering within each layer), and the linear pipeline the wizard edits.
// Pure functions, no React: the pages and the editor share them, and the browser tests check what they produce.
import type { WorkflowNodeSpec, WorkflowSpec } from '../../../src/core/workflow-spec.js';

export type { WorkflowNodeSpec, WorkflowSpec };

/** An edge from the node a reference names to the node whose input (or `when`, or `map`) holds it. */
export interface SpecEdge {
  id: string;
  source: string;
  target: string;
  /** The reference as written, e.g. `$.nodes.a.output.n`. */
  ref: string;
}

export interface Point {
  x: number;
  y: number;
}

const nodeRef = /^\$\.nodes\.([a-z0-9][a-z0-9_-]{0,62})(?=$|[.[])/;

/** Every reference string in a JSON value (skipping `{"$literal": V}`). */
export function referencesIn(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') {
    if (value.startsWith('$.')) out.push(value);
  } else if (Array.isArray(value)) {
    for (const item of value) referencesIn(item, out);
  } else if (value !== null && typeof value === 'object') {
    if (Object.keys(value).length === 1 && '$literal' in value) return out;
    for (const item of Object.values(value)) referencesIn(item, out);
  }
  return out;
}

/** The node a reference names (`$.nodes.a.output.n` → `a`), or null. */
export function referencedNode(ref: string): string | null {
  return nodeRef.exec(ref)?.[1] ?? null;
}

/** What a node refers to: its input, its condition and, for a map node, its list. */
export function nodeReferences(node: WorkflowNodeSpec): string[] {
  const refs = referencesIn(node.input);
  if (node.when !== undefined) referencesIn(node.when, refs);
  if ('map' in node && typeof node.map === 'string') refs.push(node.map);
  return refs;
}

/** The edges of a set of nodes: one per (source, target) pair, labelled with the first reference that makes it. */
export function edgesOf(nodes: Record<string, WorkflowNodeSpec>): SpecEdge[] {
  const edges: SpecEdge[] = [];
  for (const [target, node] of Object.entries(nodes)) {
    const seen = new Set<string>();
    for (const ref of nodeReferences(node)) {
      const source = referencedNode(ref);
      if (source === null || seen.has(source) || !(source in nodes)) continue;
      seen.add(source);
      edges.push({ id: `${source}->${target}`, source, target, ref });
    }
  }
  return edges;
}

/**
 * The path that an edge `source → target` would close into a cycle (`[target, …, source]`, then `target` again as
 * the message shows it), or null when the edge keeps the graph acyclic.
 */
export function cycleThrough(edges: { source: string; target: string }[], source: string, target: string) {
  if (source === target) return [source, source];
  const next = new Map<string, string[]>();
  for (const edge of edges) {
    const list = next.get(edge.source);
    if (list === undefined) next.set(edge.source, [edge.target]);
    else list.push(edge.target);
  }
  // Depth-first from the target: reaching the source means source → target closes a loop.
  const parent = new Map<string, string>([[target, '']]);
  const stack = [target];
  while (stack.length > 0) {
    const at = stack.pop() as string;
    if (at === source) {
      const path = [source];
      for (let step = parent.get(source); step !== undefined && step !== ''; step = parent.get(step)) path.push(step);
      return [...path.reverse(), target];
    }
    for (const to of next.get(at) ?? []) {
      if (!parent.has(to)) {
        parent.set(to, at);
        stack.push(to);
      }
    }
  }
  return null;
}

export const layerGap = 260;
export const rowGap = 90;

/**
 * Positions for the nodes, left to right: a node's layer is the longest path to it from a node with no inputs;
 * within a layer, nodes are ordered by the mean position of their neighbours in the layer before (then after),
 * sweeping a few times, which untangles most crossings. Cycles (an invalid graph) are broken where found.
 */
export function layout(ids: string[], edges: { source: string; target: string }[]): Record<string, Point> {
  const known = new Set(ids);
  const preds = new Map<string, string[]>(ids.map((id) => [id, []]));
  const succs = new Map<string, string[]>(ids.map((id) => [id, []]));
  for (const edge of edges) {
    if (!known.has(edge.source) || !known.has(edge.target) || edge.source === edge.target) continue;
    preds.get(edge.target)?.push(edge.source);
    succs.get(edge.source)?.push(edge.target);
  }
  // Longest-path layering in a topological order (Kahn); nodes left in a cycle go after everything else.
  const layer = new Map<string, number>();
  const indegree = new Map(ids.map((id) => [id, preds.get(id)?.length ?? 0]));
  const queue = ids.filter((id) => indegree.get(id) === 0);
  for (let head = 0; head < queue.length; head++) {
    const id = queue[head] as string;
    const mine = Math.max(-1, ...(preds.get(id) ?? []).map((p) => layer.get(p) ?? -1)) + 1;
    layer.set(id, mine);
    for (const to of succs.get(id) ?? []) {
      const left = (indegree.get(to) ?? 0) - 1;
      indegree.set(to, left);
      if (left === 0) queue.push(to);
    }
  }
  let deepest = Math.max(-1, ...layer.values());
  for (const id of ids) if (!layer.has(id)) layer.set(id, ++deepest);

  const layers: string[][] = [];
  for (const id of ids) {
    const at = layer.get(id) as number;
    (layers[at] ??= []).push(id);
  }
  const rank = new Map<string, number>();
  const renumber = (row: string[]) => row.forEach((id, index) => rank.set(id, index));
  for (const row of layers) if (row !== undefined) renumber(row);
  const sweep = (row: string[], neighbours: Map<string, string[]>) => {
    const centre = new Map<string, number>();
    for (const id of row) {
      const placed = (neighbours.get(id) ?? []).map((n) => rank.get(n)).filter((r) => r !== undefined);
      centre.set(
        id,
        placed.length === 0 ? (rank.get(id) as number) : placed.reduce((a, b) => a + b, 0) / placed.length,
      );
    }
    row.sort(
      (a, b) =>
        (centre.get(a) as number) - (centre.get(b) as number) || (rank.get(a) as number) - (rank.get(b) as number),
    );
    renumber(row);
  };
  for (let round = 0; round < 4; round++) {
    for (let i = 1; i < layers.length; i++) if (layers[i] !== undefined) sweep(layers[i] as string[], preds);
    for (let i = layers.length - 2; i >= 0; i--) if (layers[i] !== undefined) sweep(layers[i] as string[], succs);
  }
  const tallest = Math.max(1, ...layers.map((row) => row?.length ?? 0));
  const positions: Record<string, Point> = {};
  layers.forEach((row, column) => {
    if (row === undefined) return;
    const offset = ((tallest - row.length) * rowGap) / 2;
    row.forEach((id, index) => {
      positions[id] = { x: column * layerGap, y: offset + index * rowGap };
    });
  });
  return positions;
}

/** A node id from a function name: lowercase, `[a-z0-9_-]`, unique among `taken`. */
export function nodeIdFor(name: string, taken: Iterable<string>): string {
  const used = new Set(taken);
  const base =
    name
      .toLowerCase()
      .replace(/[^a-z0-9_-]+/g, '-')
      .replace(/^[^a-z0-9]+/, '')
      .slice(0, 56) || 'node';
  if (!used.has(base)) return base;
  for (let n = 2; ; n++) if (!used.has(`${base}-${n}`)) return `${base}-${n}`;
}

/** The whole output of a node, as a reference; with a field, that field of it. */
export function outputRef(node: string, field = ''): string {
  const path = field.trim().replace(/^\.+/, '');
  return path === '' ? `$.nodes.${node}.output` : `$.nodes.${node}.output.${path}`;
}

/** A value with every reference to `node` replaced by null (an edge deleted in the editor). */
export function withoutReferencesTo(value: unknown, node: string): unknown {
  if (typeof value === 'string') return referencedNode(value) === node ? null : value;
  if (Array.isArray(value)) return value.map((item) => withoutReferencesTo(item, node));
  if (value !== null && typeof value === 'object') {
    if (Object.keys(value).length === 1 && '$literal' in value) return value;
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withoutReferencesTo(v, node)]));
  }
  return value;
}

/** One step of a linear pipeline: the function, and for the first step its input. */
export interface PipelineStep {
  id: string;
  function: string;
}

export interface Pipeline {
  steps: PipelineStep[];
  /** The first step's input (later steps take the previous step's whole output). */
  firstInput: unknown;
}

/** The spec a linear pipeline makes (keeping the other top-level fields of `base`). */
export function specOfPipeline(pipeline: Pipeline, base: Omit<WorkflowSpec, 'nodes'>): WorkflowSpec {
  const nodes: Record<string, WorkflowNodeSpec> = {};
  let previous: string | null = null;
  for (const step of pipeline.steps) {
    nodes[step.id] = {
      function: step.function,
      input: previous === null ? pipeline.firstInput : outputRef(previous),
    };
    previous = step.id;
  }
  return { ...base, nodes, output: previous === null ? null : outputRef(previous) };
}

/**
 * The pipeline a spec is, or why it is not one: plain function nodes in a chain, each after the first taking the
 * previous node's whole output as its input, with no settings the wizard does not show.
 */
export function pipelineOf(spec: WorkflowSpec): { pipeline: Pipeline } | { reason: string } {
  const ids = Object.keys(spec.nodes);
  if (ids.length === 0) return { pipeline: { steps: [], firstInput: null } };
  const edges = edgesOf(spec.nodes);
  const simpleKeys = new Set(['function', 'input']);
  for (const id of ids) {
    const node = spec.nodes[id] as WorkflowNodeSpec;
    const extra = Object.keys(node).find((k) => !simpleKeys.has(k));
    if (!('function' in node) || extra !== undefined)
      return { reason: `node ${id} has settings the simple form does not show (${extra ?? 'not a function node'})` };
  }
  const heads = ids.filter((id) => !edges.some((e) => e.target === id));
  if (heads.length !== 1) return { reason: `the graph has ${heads.length} starting nodes, not one` };
  const steps: PipelineStep[] = [];
  let at: string | undefined = heads[0];
  const visited = new Set<string>();
  while (at !== undefined) {
    if (visited.has(at)) return { reason: 'the graph has a cycle' };
    visited.add(at);
    const node = spec.nodes[at] as WorkflowNodeSpec & { function: string };
    const previous = steps.at(-1);
    if (previous !== undefined && node.input !== outputRef(previous.id))
      return { reason: `node ${at} does not take the whole output of ${previous.id}` };
    steps.push({ id: at, function: node.function });
    const out = edges.filter((e) => e.source === at);
    if (out.length > 1) return { reason: `node ${at} feeds ${out.length} nodes` };
    at = out[0]?.target;
  }
  if (steps.length !== ids.length) return { reason: 'the graph is not one chain' };
  const first = steps[0] as PipelineStep;
  return { pipeline: { steps, firstInput: spec.nodes[first.id]?.input ?? null } };
}

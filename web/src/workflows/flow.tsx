// The graph of a workflow on an xyflow canvas: a node per spec node (its id, what it runs, and in an execution its
// phase), an edge per reference. Node components are memoised and the canvas renders only what is in view, so a
// graph of hundreds of nodes stays responsive while panning and dragging.
import { Background, Controls, Handle, MiniMap, Position, ReactFlow, applyNodeChanges } from '@xyflow/react';
import type { Edge, Node, NodeChange, NodeProps } from '@xyflow/react';
import '@xyflow/react/dist/style.css';
import { memo, useEffect, useMemo, useState } from 'react';
import type { SpecEdge, WorkflowNodeSpec, WorkflowSpec } from './graph';
import { edgesOf, layout } from './graph';
import { phaseClass, phaseColours } from './wf-api';

const fitOptions = { maxZoom: 1 };
export const nodeWidth = 190;
export const nodeHeight = 58;

export interface SpecNodeData extends Record<string, unknown> {
  id: string;
  spec: WorkflowNodeSpec;
  /** The node's phase in an execution. */
  phase?: string;
  /** A line under the name (an execution's timing, a map's progress). */
  note?: string;
  /** Field handles: where a connection sets one field of an object input. */
  fields?: string[];
}

export type SpecFlowNode = Node<SpecNodeData, 'spec'>;

/** What a node runs, as one line: `fn double`, `map over … → fn`, `workflow child v2`. */
export function describeNode(spec: WorkflowNodeSpec): string {
  if ('workflow' in spec) return `workflow ${spec.workflow}${spec.version === undefined ? '' : ` v${spec.version}`}`;
  const qualifier = spec.qualifier === undefined ? '' : `:${spec.qualifier}`;
  if ('map' in spec) return `map ${spec.function}${qualifier}`;
  return `${spec.function}${qualifier}`;
}

/** The top-level fields of an object input: each gets a handle of its own in the editor. */
export function inputFields(spec: WorkflowNodeSpec): string[] {
  const input = spec.input;
  if (input === null || typeof input !== 'object' || Array.isArray(input)) return [];
  if ('$literal' in input) return [];
  return Object.keys(input).slice(0, 6);
}

export const SpecNode = memo(function SpecNode(props: NodeProps<SpecFlowNode>) {
  const { id, spec, phase, note, fields } = props.data;
  return (
    <div
      className={`wf-node${phase === undefined ? '' : ` ${phaseClass(phase)}`}${props.selected ? ' selected' : ''}`}
      data-node={id}
      data-phase={phase}
    >
      <Handle type="target" position={Position.Left} id="input" aria-label={`${id} input`} />
      {(fields ?? []).map((field, index, all) => (
        <Handle
          key={field}
          type="target"
          position={Position.Top}
          id={`field:${field}`}
          className="field-handle"
          style={{ left: `${((index + 1) * 100) / (all.length + 1)}%` }}
          title={`${id} input.${field}`}
        />
      ))}
      <strong className="wf-node-id">{id}</strong>
      <span className="wf-node-what">{describeNode(spec)}</span>
      {phase !== undefined && <span className="wf-node-phase">{phase}</span>}
      {note !== undefined && <span className="wf-node-note">{note}</span>}
      <Handle type="source" position={Position.Right} id="output" aria-label={`${id} output`} />
    </div>
  );
});

export const nodeTypes = { spec: SpecNode };

export function flowEdge(edge: SpecEdge, animated = false): Edge {
  return {
    id: edge.id,
    source: edge.source,
    target: edge.target,
    sourceHandle: 'output',
    targetHandle: 'input',
    animated,
    data: { ref: edge.ref },
  };
}

/** A read-only canvas of a spec, laid out; `phases` colours the nodes of an execution. */
export function FlowView(props: {
  spec: WorkflowSpec;
  phases?: Record<string, { phase: string; note?: string }>;
  selected?: string | null;
  onSelect?: (id: string | null) => void;
  label: string;
}) {
  const { spec, phases } = props;
  const specEdges = useMemo(() => edgesOf(spec.nodes), [spec]);
  const positions = useMemo(() => layout(Object.keys(spec.nodes), specEdges), [spec, specEdges]);
  const [nodes, setNodes] = useState<SpecFlowNode[]>([]);
  useEffect(() => {
    setNodes(
      Object.entries(spec.nodes).map(([id, node]) => ({
        id,
        type: 'spec',
        position: positions[id] ?? { x: 0, y: 0 },
        width: nodeWidth,
        height: nodeHeight,
        data: { id, spec: node },
        draggable: false,
        connectable: false,
      })),
    );
  }, [spec, positions]);
  // Phases change every poll: only the nodes whose phase changed get new objects (the others keep their measure).
  useEffect(() => {
    setNodes((current) =>
      current.map((node) => {
        const now = phases?.[node.id];
        const selected = props.selected === node.id;
        if (node.data.phase === now?.phase && node.data.note === now?.note && Boolean(node.selected) === selected)
          return node;
        return { ...node, selected, data: { ...node.data, phase: now?.phase, note: now?.note } };
      }),
    );
  }, [phases, props.selected, nodes.length]);
  const running = useMemo(
    () =>
      new Set(
        Object.entries(phases ?? {})
          .filter(([, p]) => p.phase === 'RUNNING')
          .map(([id]) => id),
      ),
    [phases],
  );
  const edges = useMemo(() => specEdges.map((edge) => flowEdge(edge, running.has(edge.target))), [specEdges, running]);
  const onNodesChange = (changes: NodeChange<SpecFlowNode>[]) =>
    setNodes((current) => applyNodeChanges(changes, current));
  return (
    <div className="flow" role="figure" aria-label={props.label}>
      <ReactFlow<SpecFlowNode>
        nodes={nodes}
        edges={edges}
        nodeTypes={nodeTypes}
        onNodesChange={onNodesChange}
        onNodeClick={(_, node) => props.onSelect?.(node.id)}
        onPaneClick={() => props.onSelect?.(null)}
        nodesDraggable={false}
        nodesConnectable={false}
        onlyRenderVisibleElements
        fitView
        fitViewOptions={fitOptions}
        minZoom={0.05}
      >
        <Background />
        <Controls showInteractive={false} />
        {nodes.length > 30 && (
          <MiniMap pannable zoomable nodeColor={(n) => phaseColours[String(n.data['phase'])] ?? '#94a3b8'} />
        )}
      </ReactFlow>
    </div>
  );
}

// The graph editor: a palette of deployed functions to drag onto the canvas, connections from a node's output to
// another node's input (each becomes a `$.nodes.SRC.output` reference in the target's input; one that would close a
// cycle is refused), a side panel for the selected node's input and settings or the workflow's own fields, a layered
// auto-layout, validate and deploy through the API, and export and import of the spec as JSON.
import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyNodeChanges,
  useReactFlow,
} from '@xyflow/react';
import type { Connection, Edge, EdgeChange, NodeChange } from '@xyflow/react';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import type { DragEvent } from 'react';
import type { FunctionView } from '../api';
import { useApi } from '../hooks';
import type { SpecFlowNode } from './flow';
import { flowEdge, inputFields, nodeHeight, nodeTypes, nodeWidth } from './flow';
import type { Point, WorkflowNodeSpec, WorkflowSpec } from './graph';
import { cycleThrough, edgesOf, layout, nodeIdFor, outputRef, withoutReferencesTo } from './graph';
import { JsonField } from './json-field';
import { MessageLine, useDeployActions } from './deploy-actions';

export interface Draft {
  name: string;
  spec: WorkflowSpec;
}

type Meta = Omit<WorkflowSpec, 'nodes'>;

const dragType = 'application/x-savassan-function';
const fitOptions = { maxZoom: 1 };

function flowNode(id: string, spec: WorkflowNodeSpec, position: Point): SpecFlowNode {
  return {
    id,
    type: 'spec',
    position,
    width: nodeWidth,
    height: nodeHeight,
    data: { id, spec, fields: inputFields(spec) },
  };
}

/** The spec read from imported JSON: a spec, or `{"spec": …}` as the API returns it. */
export function specFromJson(text: string): WorkflowSpec {
  const value = JSON.parse(text) as unknown;
  const spec = (value !== null && typeof value === 'object' && 'spec' in value ? value.spec : value) as WorkflowSpec;
  if (spec === null || typeof spec !== 'object' || spec.nodes === null || typeof spec.nodes !== 'object')
    throw new Error('a workflow spec is an object with "nodes"');
  return spec;
}

export function Editor(props: {
  initial: Draft;
  nameLocked?: boolean;
  onChange?: (draft: Draft) => void;
  /** Shown in the toolbar: a way back to the simple form, or why there is none. */
  switcher?: React.ReactNode;
}) {
  return (
    <ReactFlowProvider>
      <EditorCanvas {...props} />
    </ReactFlowProvider>
  );
}

function EditorCanvas(props: {
  initial: Draft;
  nameLocked?: boolean;
  onChange?: (draft: Draft) => void;
  switcher?: React.ReactNode;
}) {
  const flow = useReactFlow<SpecFlowNode>();
  const [name, setName] = useState(props.initial.name);
  const [meta, setMeta] = useState<Meta>(() => {
    const { nodes: _nodes, ...rest } = props.initial.spec;
    return rest;
  });
  const [specNodes, setSpecNodes] = useState<Record<string, WorkflowNodeSpec>>(() => props.initial.spec.nodes);
  const [nodes, setNodes] = useState<SpecFlowNode[]>(() => {
    const positions = layout(Object.keys(props.initial.spec.nodes), edgesOf(props.initial.spec.nodes));
    return Object.entries(props.initial.spec.nodes).map(([id, spec]) =>
      flowNode(id, spec, positions[id] ?? { x: 0, y: 0 }),
    );
  });
  const [selected, setSelected] = useState<string | null>(null);
  const [selectedEdge, setSelectedEdge] = useState<string | null>(null);
  const { message, setMessage, busy, callApi } = useDeployActions();
  const [field, setField] = useState('');
  const [transfer, setTransfer] = useState<'closed' | 'export' | 'import'>('closed');
  const functions = useApi<{ functions: FunctionView[] }>('/v1/functions');

  const spec = useMemo<WorkflowSpec>(() => ({ ...meta, nodes: specNodes }), [meta, specNodes]);
  const onChange = props.onChange;
  useEffect(() => onChange?.({ name, spec }), [name, spec, onChange]);

  const specEdges = useMemo(() => edgesOf(specNodes), [specNodes]);
  const edges = useMemo<Edge[]>(
    () =>
      specEdges.map((edge) => ({
        ...flowEdge(edge),
        selected: edge.id === selectedEdge,
        label: edge.ref.replace(/^\$\.nodes\.[^.]+\.output/, '') || undefined,
      })),
    [specEdges, selectedEdge],
  );

  /** Replaces some nodes' specs, keeping every other node object as it is. */
  const updateSpecs = useCallback((changed: Record<string, WorkflowNodeSpec>) => {
    setSpecNodes((current) => ({ ...current, ...changed }));
    setNodes((current) =>
      current.map((node) => {
        const spec = changed[node.id];
        return spec === undefined ? node : { ...node, data: { ...node.data, spec, fields: inputFields(spec) } };
      }),
    );
  }, []);

  const removeNodes = useCallback((ids: string[]) => {
    if (ids.length === 0) return;
    const gone = new Set(ids);
    setSpecNodes((current) => {
      const next: Record<string, WorkflowNodeSpec> = {};
      for (const [id, node] of Object.entries(current)) {
        if (gone.has(id)) continue;
        let input = node.input;
        for (const removed of ids) input = withoutReferencesTo(input, removed);
        next[id] = input === node.input ? node : { ...node, input };
      }
      setNodes((flowNodes) =>
        flowNodes
          .filter((n) => !gone.has(n.id))
          .map((n) => {
            const spec = next[n.id];
            return spec === undefined || spec === n.data.spec
              ? n
              : { ...n, data: { ...n.data, spec, fields: inputFields(spec) } };
          }),
      );
      return next;
    });
    setSelected((current) => (current !== null && gone.has(current) ? null : current));
  }, []);

  const onNodesChange = useCallback(
    (changes: NodeChange<SpecFlowNode>[]) => {
      const removed = changes.flatMap((c) => (c.type === 'remove' ? [c.id] : []));
      for (const change of changes) {
        if (change.type === 'select') {
          const { id, selected: on } = change;
          setSelected((current) => (on ? id : current === id ? null : current));
        }
      }
      const rest = changes.filter((c) => c.type !== 'remove');
      if (rest.length > 0) setNodes((current) => applyNodeChanges(rest, current));
      removeNodes(removed);
    },
    [removeNodes],
  );

  const onEdgesChange = useCallback((changes: EdgeChange[]) => {
    for (const change of changes) {
      if (change.type === 'select') setSelectedEdge(change.selected ? change.id : null);
      if (change.type === 'remove') {
        const [source, target] = change.id.split('->');
        if (source === undefined || target === undefined) continue;
        setSpecNodes((current) => {
          const node = current[target];
          if (node === undefined) return current;
          const spec = { ...node, input: withoutReferencesTo(node.input, source) };
          setNodes((flowNodes) =>
            flowNodes.map((n) =>
              n.id === target ? { ...n, data: { ...n.data, spec, fields: inputFields(spec) } } : n,
            ),
          );
          return { ...current, [target]: spec };
        });
      }
    }
  }, []);

  const onConnect = useCallback(
    (connection: Connection) => {
      const { source, target } = connection;
      const cycle = cycleThrough(specEdges, source, target);
      if (cycle !== null) {
        setMessage({
          kind: 'error',
          text: `Refused: connecting ${source} to ${target} would make a cycle (${cycle.join(' → ')}).`,
        });
        return;
      }
      const node = specNodes[target];
      if (node === undefined) return;
      const ref = outputRef(source, field);
      const handle = connection.targetHandle ?? 'input';
      let input: unknown = ref;
      if (handle.startsWith('field:')) {
        const base =
          node.input !== null && typeof node.input === 'object' && !Array.isArray(node.input) ? node.input : {};
        input = { ...base, [handle.slice('field:'.length)]: ref };
      }
      updateSpecs({ [target]: { ...node, input } });
      setMessage({
        kind: 'ok',
        text: `${target} takes ${ref}${handle.startsWith('field:') ? ` as input.${handle.slice(6)}` : ' as its input'}.`,
      });
    },
    [specEdges, specNodes, field, updateSpecs],
  );

  const addNode = useCallback(
    (fn: string, position?: Point) => {
      const id = nodeIdFor(fn, Object.keys(specNodes));
      const spec: WorkflowNodeSpec = { function: fn, input: null };
      const at = position ?? {
        x: Math.max(0, ...nodes.map((n) => n.position.x)) + (nodes.length === 0 ? 0 : 260),
        y: 0,
      };
      setSpecNodes((current) => ({ ...current, [id]: spec }));
      setNodes((current) => [
        ...current.map((n) => (n.selected ? { ...n, selected: false } : n)),
        { ...flowNode(id, spec, at), selected: true },
      ]);
      setSelected(id);
      setMessage(null);
    },
    [specNodes, nodes],
  );

  const autoLayout = useCallback(() => {
    const positions = layout(Object.keys(specNodes), specEdges);
    setNodes((current) => current.map((n) => ({ ...n, position: positions[n.id] ?? n.position })));
    window.requestAnimationFrame(() => void flow.fitView({ ...fitOptions, duration: 200 }));
  }, [specNodes, specEdges, flow]);

  const load = useCallback(
    (next: WorkflowSpec) => {
      const { nodes: nextNodes, ...rest } = next;
      const positions = layout(Object.keys(nextNodes), edgesOf(nextNodes));
      setMeta(rest);
      setSpecNodes(nextNodes);
      setNodes(Object.entries(nextNodes).map(([id, spec]) => flowNode(id, spec, positions[id] ?? { x: 0, y: 0 })));
      setSelected(null);
      window.requestAnimationFrame(() => void flow.fitView(fitOptions));
    },
    [flow],
  );

  const onDrop = (event: DragEvent) => {
    event.preventDefault();
    const fn = event.dataTransfer.getData(dragType) || event.dataTransfer.getData('text/plain');
    if (fn === '') return;
    const at = flow.screenToFlowPosition({ x: event.clientX, y: event.clientY });
    addNode(fn, { x: at.x - nodeWidth / 2, y: at.y - nodeHeight / 2 });
  };

  const selectedSpec = selected === null ? undefined : specNodes[selected];
  const fnNames = (functions.data?.functions ?? []).map((f) => f.name);

  return (
    <div className="editor">
      <div className="editor-toolbar" role="toolbar" aria-label="Workflow editor">
        <label className="inline">
          Name{' '}
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            readOnly={props.nameLocked}
            aria-label="Workflow name"
          />
        </label>
        <button type="button" onClick={autoLayout}>
          Auto-layout
        </button>
        <button type="button" disabled={busy} onClick={() => void callApi('validate', name, spec)}>
          Validate
        </button>
        <button type="button" className="primary" disabled={busy} onClick={() => void callApi('deploy', name, spec)}>
          Deploy
        </button>
        <button type="button" onClick={() => setTransfer(transfer === 'export' ? 'closed' : 'export')}>
          Export JSON
        </button>
        <button type="button" onClick={() => setTransfer(transfer === 'import' ? 'closed' : 'import')}>
          Import JSON
        </button>
        <label className="inline" title="New connections refer to this field of the source's output (blank: all of it)">
          Output field{' '}
          <input
            className="short"
            value={field}
            onChange={(e) => setField(e.target.value)}
            placeholder="(all)"
            aria-label="Output field for new connections"
          />
        </label>
        {props.switcher}
      </div>
      <MessageLine message={message} />
      {transfer !== 'closed' && (
        <Transfer
          mode={transfer}
          name={name}
          spec={spec}
          onImport={(next) => {
            load(next);
            setTransfer('closed');
            setMessage({ kind: 'ok', text: `Imported ${Object.keys(next.nodes).length} nodes.` });
          }}
        />
      )}
      <div className="editor-body">
        <aside className="palette" aria-label="Functions">
          <h2>Functions</h2>
          <p className="muted">Drag one onto the canvas, or add it.</p>
          {functions.error !== null && <p className="warning">{functions.error}</p>}
          <ul>
            {fnNames.map((fn) => (
              <li
                key={fn}
                draggable
                data-palette={fn}
                onDragStart={(event) => {
                  event.dataTransfer.setData(dragType, fn);
                  event.dataTransfer.setData('text/plain', fn);
                  event.dataTransfer.effectAllowed = 'copy';
                }}
              >
                <span className="palette-name">{fn}</span>
                <button type="button" className="link" aria-label={`Add ${fn}`} onClick={() => addNode(fn)}>
                  Add
                </button>
              </li>
            ))}
          </ul>
        </aside>
        <div
          className="flow editor-canvas"
          role="application"
          aria-label="Workflow graph"
          onDragOver={(event) => {
            event.preventDefault();
            event.dataTransfer.dropEffect = 'copy';
          }}
          onDrop={onDrop}
        >
          <ReactFlow<SpecFlowNode>
            nodes={nodes}
            edges={edges}
            nodeTypes={nodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            onPaneClick={() => setSelected(null)}
            onlyRenderVisibleElements
            // An empty canvas stays at 100%: fitting the first node dropped on it would zoom in on it.
            fitView={Object.keys(props.initial.spec.nodes).length > 0}
            fitViewOptions={fitOptions}
            minZoom={0.05}
            deleteKeyCode={['Delete', 'Backspace']}
          >
            <Background />
            <Controls />
            {nodes.length > 30 && <MiniMap pannable zoomable />}
          </ReactFlow>
        </div>
        <aside className="side-panel" aria-label={selected === null ? 'Workflow settings' : `Node ${selected}`}>
          {selected !== null && selectedSpec !== undefined ? (
            <NodePanel
              key={selected}
              id={selected}
              spec={selectedSpec}
              functions={fnNames}
              onChange={(spec) => updateSpecs({ [selected]: spec })}
              onDelete={() => removeNodes([selected])}
            />
          ) : (
            <MetaPanel meta={meta} onChange={setMeta} nodeCount={nodes.length} />
          )}
        </aside>
      </div>
    </div>
  );
}

function NumberField(props: {
  label: string;
  value: number | undefined;
  onChange: (value: number | undefined) => void;
  min: number;
  max: number;
}) {
  return (
    <label className="field">
      {props.label}
      <input
        type="number"
        min={props.min}
        max={props.max}
        value={props.value ?? ''}
        onChange={(event) => props.onChange(event.target.value === '' ? undefined : Number(event.target.value))}
      />
    </label>
  );
}

/** Drops the keys set to undefined, so the spec stays as small as what the user set. */
function compact<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

function NodePanel(props: {
  id: string;
  spec: WorkflowNodeSpec;
  functions: string[];
  onChange: (spec: WorkflowNodeSpec) => void;
  onDelete: () => void;
}) {
  const { spec } = props;
  const set = (patch: Record<string, unknown>) => props.onChange(compact({ ...spec, ...patch }));
  const isWorkflow = 'workflow' in spec;
  return (
    <div className="node-panel">
      <h2>Node {props.id}</h2>
      {isWorkflow ? (
        <label className="field">
          Workflow
          <input value={spec.workflow} onChange={(e) => set({ workflow: e.target.value })} />
        </label>
      ) : (
        <>
          <label className="field">
            Function
            <select value={spec.function} onChange={(e) => set({ function: e.target.value })}>
              {!props.functions.includes(spec.function) && <option value={spec.function}>{spec.function}</option>}
              {props.functions.map((fn) => (
                <option key={fn} value={fn}>
                  {fn}
                </option>
              ))}
            </select>
          </label>
          <label className="field">
            Qualifier
            <input
              value={spec.qualifier ?? ''}
              placeholder="live"
              onChange={(e) => set({ qualifier: e.target.value === '' ? undefined : e.target.value })}
            />
          </label>
          <label className="field">
            Map over (a reference to a list; blank: run once)
            <input
              className="code"
              value={'map' in spec ? spec.map : ''}
              placeholder="$.inputs.items"
              onChange={(e) => set({ map: e.target.value === '' ? undefined : e.target.value })}
            />
          </label>
        </>
      )}
      <JsonField
        label="Input (JSON; $.inputs.NAME and $.nodes.ID.output are references)"
        value={spec.input ?? null}
        onChange={(input) => set({ input })}
        rows={5}
      />
      <JsonField
        label="Run when (condition, optional)"
        value={spec.when}
        optional
        onChange={(when) => set({ when })}
        rows={2}
        hint='e.g. {"ref": "$.nodes.a.output.n", "greaterThan": 10}'
      />
      <div className="field-row">
        <NumberField label="Retries" value={spec.retries} min={0} max={10} onChange={(retries) => set({ retries })} />
        <NumberField
          label="Retry delay (s)"
          value={spec.retryDelaySeconds}
          min={0}
          max={3600}
          onChange={(retryDelaySeconds) => set({ retryDelaySeconds })}
        />
        <NumberField
          label="Timeout (s)"
          value={spec.timeoutSeconds}
          min={1}
          max={86400}
          onChange={(timeoutSeconds) => set({ timeoutSeconds })}
        />
      </div>
      {!isWorkflow && (
        <label className="inline">
          <input
            type="checkbox"
            checked={spec.cache === true}
            onChange={(e) => set({ cache: e.target.checked ? true : undefined })}
          />{' '}
          Cache outputs
        </label>
      )}
      <button type="button" className="danger" onClick={props.onDelete}>
        Delete node {props.id}
      </button>
    </div>
  );
}

function MetaPanel(props: { meta: Meta; onChange: (meta: Meta) => void; nodeCount: number }) {
  const { meta } = props;
  const set = (patch: Partial<Meta>) => props.onChange(compact({ ...meta, ...patch }));
  return (
    <div className="meta-panel">
      <h2>Workflow</h2>
      <p className="muted">{props.nodeCount} nodes. Select a node to edit it.</p>
      <label className="field">
        Description
        <input
          value={meta.description ?? ''}
          onChange={(e) => set({ description: e.target.value === '' ? undefined : e.target.value })}
        />
      </label>
      <JsonField
        label="Inputs (name → type)"
        value={meta.inputs}
        optional
        onChange={(inputs) => set({ inputs: inputs as Meta['inputs'] })}
        rows={3}
        hint='e.g. {"x": "number"}'
      />
      <JsonField
        label="Output (references)"
        value={meta.output}
        optional
        onChange={(output) => set({ output })}
        rows={3}
        hint='e.g. "$.nodes.last.output"'
      />
      <label className="field">
        On failure
        <select
          value={meta.failurePolicy ?? 'failFast'}
          onChange={(e) => set({ failurePolicy: e.target.value as Meta['failurePolicy'] })}
        >
          <option value="failFast">Fail fast (abort running nodes)</option>
          <option value="finishRunnable">Finish what can still run</option>
        </select>
      </label>
    </div>
  );
}

function Transfer(props: {
  mode: 'export' | 'import';
  name: string;
  spec: WorkflowSpec;
  onImport: (spec: WorkflowSpec) => void;
}) {
  const exported = useMemo(() => JSON.stringify(props.spec, null, 2), [props.spec]);
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [url, setUrl] = useState<string | null>(null);
  const file = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (props.mode !== 'export') return;
    const made = URL.createObjectURL(new Blob([exported], { type: 'application/json' }));
    setUrl(made);
    return () => URL.revokeObjectURL(made);
  }, [exported, props.mode]);
  const take = (json: string) => {
    try {
      props.onImport(specFromJson(json));
      setError(null);
    } catch (err) {
      setError(`Cannot import: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  if (props.mode === 'export') {
    return (
      <div className="transfer">
        <label className="field">
          Spec (JSON)
          <textarea className="code" rows={10} readOnly value={exported} aria-label="Exported spec" />
        </label>
        {url !== null && (
          <a className="button" href={url} download={`${props.name || 'workflow'}.json`}>
            Download {props.name || 'workflow'}.json
          </a>
        )}
      </div>
    );
  }
  return (
    <div className="transfer">
      <label className="field">
        Paste a spec (JSON)
        <textarea
          className="code"
          rows={10}
          value={text}
          onChange={(e) => setText(e.target.value)}
          aria-label="Spec to import"
        />
      </label>
      <button type="button" onClick={() => take(text)}>
        Import
      </button>{' '}
      <label className="inline">
        or a file{' '}
        <input
          ref={file}
          type="file"
          accept="application/json,.json"
          onChange={(event) => {
            const chosen = event.target.files?.[0];
            if (chosen !== undefined) void chosen.text().then(take);
          }}
        />
      </label>
      {error !== null && (
        <p className="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}

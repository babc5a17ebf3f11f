// One execution: its graph with each node's live phase (polled every second until the execution ends), a timeline
// of the nodes, the selected node's attempts with their invocations and logs, the inputs and outputs, and the
// relaunch, recover and terminate actions.
import { useEffect, useMemo, useState } from 'react';
import { getJson, getText, enc } from '../api';
import { href, useApi } from '../hooks';
import { FlowView } from './flow';
import type { ExecutionKey, ExecutionView, NodeExecutionView, WorkflowDetail } from './wf-api';
import {
  dataPath,
  executionPath,
  formatSeconds,
  getAllNodeExecutions,
  nodeExecutionsPath,
  phaseClass,
  phaseColours,
  seconds,
  terminalExecution,
  workflowPath,
} from './wf-api';

export function ExecutionPage(props: { id: ExecutionKey }) {
  const key = props.id;
  const [ended, setEnded] = useState(false);
  const poll = ended ? undefined : 1000;
  const execution = useApi<ExecutionView>(executionPath(key), poll);
  const nodes = useApi<{ node_executions: NodeExecutionView[] }>(nodeExecutionsPath(key), poll, getAllNodeExecutions);
  const data = useApi<{ inputs: Record<string, unknown>; outputs: unknown }>(
    dataPath(key),
    poll === undefined ? undefined : 3000,
  );
  const phase = execution.data?.closure.phase;
  const isTerminal = phase !== undefined && terminalExecution.has(phase);
  const { reload: reloadNodes } = nodes;
  const { reload: reloadData } = data;
  useEffect(() => {
    if (isTerminal && !ended) {
      setEnded(true);
      // One last read: the nodes and outputs as the execution ended.
      reloadNodes();
      reloadData();
    } else if (!isTerminal && ended && phase !== undefined) setEnded(false);
  }, [isTerminal, ended, phase, reloadNodes, reloadData]);

  const launchPlan = execution.data?.spec.launch_plan;
  const wf = useApi<WorkflowDetail>(
    launchPlan === undefined ? null : `${workflowPath(launchPlan.name)}?version=${enc(launchPlan.version)}`,
  );
  const [selected, setSelected] = useState<string | null>(null);
  const list = nodes.data?.node_executions ?? [];
  const topLevel = useMemo(() => list.filter((n) => n.metadata.parent_node_id === undefined), [list]);
  const phases = useMemo(() => {
    const out: Record<string, { phase: string; note?: string }> = {};
    for (const node of topLevel) {
      const id = node.metadata.spec_node_id || node.id.node_id;
      const elements = list.filter((n) => n.metadata.parent_node_id === id);
      const done = elements.filter((n) => n.closure.phase === 'SUCCEEDED' || n.closure.phase === 'RECOVERED').length;
      const note =
        elements.length > 0
          ? `${done}/${elements.length} elements`
          : node.closure.started_at === undefined
            ? undefined
            : formatSeconds(seconds(node.closure.duration));
      out[id] = { phase: node.closure.phase, note };
    }
    return out;
  }, [list, topLevel]);

  return (
    <section aria-labelledby="execution-title">
      <p className="crumbs">
        <a href={href('workflows')}>Workflows</a> /{' '}
        {launchPlan !== undefined && (
          <>
            <a href={href('workflows', launchPlan.name)}>{launchPlan.name}</a> /
          </>
        )}
      </p>
      <div className="title-row">
        <h1 id="execution-title">
          Execution {key.name}{' '}
          {phase !== undefined && (
            <span className={phaseClass(phase)} data-testid="execution-phase">
              {phase}
            </span>
          )}
        </h1>
        {execution.data !== null && <Actions execution={execution.data} onChange={execution.reload} />}
      </div>
      {execution.error !== null && (
        <p className="error" role="alert">
          {execution.error}
        </p>
      )}
      {execution.data !== null && <Summary execution={execution.data} />}
      {wf.error !== null && <p className="warning">The workflow's graph is not available: {wf.error}</p>}
      {wf.data !== null && (
        <FlowView
          spec={wf.data.spec}
          phases={phases}
          selected={selected}
          onSelect={setSelected}
          label={`Graph of execution ${key.name}`}
        />
      )}
      <div className="exec-columns">
        <div>
          <h2>Timeline</h2>
          <Timeline nodes={topLevel} selected={selected} onSelect={setSelected} />
        </div>
        <div>
          <h2>{selected === null ? 'Nodes' : `Node ${selected}`}</h2>
          {selected === null ? (
            <NodeTable nodes={topLevel} onSelect={setSelected} />
          ) : (
            <NodeDetail
              node={topLevel.find((n) => (n.metadata.spec_node_id || n.id.node_id) === selected)}
              elements={list.filter((n) => n.metadata.parent_node_id === selected)}
              onClose={() => setSelected(null)}
            />
          )}
        </div>
      </div>
      <h2>Inputs and outputs</h2>
      {data.error !== null && <p className="warning">{data.error}</p>}
      {data.data !== null && (
        <div className="io">
          <div>
            <h3>Inputs</h3>
            <pre className="code output" data-testid="execution-inputs">
              {JSON.stringify(data.data.inputs, null, 2)}
            </pre>
          </div>
          <div>
            <h3>Outputs</h3>
            <pre className="code output" data-testid="execution-outputs">
              {data.data.outputs === null ? '(none yet)' : JSON.stringify(data.data.outputs, null, 2)}
            </pre>
          </div>
        </div>
      )}
    </section>
  );
}

function Summary(props: { execution: ExecutionView }) {
  const { spec, closure } = props.execution;
  const reference = spec.metadata.reference_execution;
  const parent = spec.metadata.parent_node_execution;
  return (
    <dl className="summary">
      <dt>Workflow</dt>
      <dd>
        <a href={href('workflows', spec.launch_plan.name)}>{spec.launch_plan.name}</a> v{spec.launch_plan.version}
      </dd>
      <dt>Mode</dt>
      <dd>
        {spec.metadata.mode}
        {reference !== undefined && (
          <>
            {' '}
            of <a href={href('executions', reference.project, reference.domain, reference.name)}>{reference.name}</a>
          </>
        )}
        {parent !== undefined && (
          <>
            {' '}
            from node {parent.node_id} of{' '}
            <a
              href={href(
                'executions',
                parent.execution_id.project,
                parent.execution_id.domain,
                parent.execution_id.name,
              )}
            >
              {parent.execution_id.name}
            </a>
          </>
        )}
      </dd>
      <dt>Started</dt>
      <dd>{closure.started_at === undefined ? '–' : new Date(closure.started_at).toLocaleString()}</dd>
      <dt>Duration</dt>
      <dd>{formatSeconds(seconds(closure.duration))}</dd>
      {closure.error !== undefined && (
        <>
          <dt>Error</dt>
          <dd className="error">
            {closure.error.kind} {closure.error.code}: {closure.error.message}
          </dd>
        </>
      )}
      {closure.abort_metadata !== undefined && (
        <>
          <dt>Aborted</dt>
          <dd>
            {closure.abort_metadata.cause}
            {closure.abort_metadata.principal ? ` (${closure.abort_metadata.principal})` : ''}
          </dd>
        </>
      )}
    </dl>
  );
}

function Actions(props: { execution: ExecutionView; onChange: () => void }) {
  const { id, closure } = props.execution;
  const ended = terminalExecution.has(closure.phase);
  const [message, setMessage] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const act = async (what: 'relaunch' | 'recover' | 'terminate') => {
    setBusy(true);
    setMessage(null);
    try {
      if (what === 'terminate') {
        await getJson(executionPath(id), { method: 'DELETE', body: { cause: 'terminated from the console' } });
        props.onChange();
      } else {
        const started = await getJson<{ id: ExecutionKey }>(`/api/v1/executions/${what}`, {
          method: 'POST',
          body: { id },
        });
        window.location.hash = href('executions', started.id.project, started.id.domain, started.id.name);
      }
    } catch (err) {
      setMessage(`Could not ${what}: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className="actions">
      <button type="button" disabled={busy} onClick={() => void act('relaunch')}>
        Relaunch
      </button>
      <button
        type="button"
        disabled={busy || !ended || closure.phase === 'SUCCEEDED'}
        title="Run again, reusing the outputs of the nodes that succeeded"
        onClick={() => void act('recover')}
      >
        Recover
      </button>
      <button type="button" className="danger" disabled={busy || ended} onClick={() => void act('terminate')}>
        Terminate
      </button>
      {message !== null && (
        <p className="error" role="alert">
          {message}
        </p>
      )}
    </div>
  );
}

function nodeId(node: NodeExecutionView): string {
  return node.metadata.spec_node_id || node.id.node_id;
}

function NodeTable(props: { nodes: NodeExecutionView[]; onSelect: (id: string) => void }) {
  if (props.nodes.length === 0) return <p className="muted">No node has started yet.</p>;
  return (
    <table className="nodes">
      <thead>
        <tr>
          <th scope="col">Node</th>
          <th scope="col">Phase</th>
          <th scope="col">Duration</th>
          <th scope="col">Attempts</th>
        </tr>
      </thead>
      <tbody>
        {props.nodes.map((node) => (
          <tr key={node.id.node_id} data-node-row={nodeId(node)}>
            <th scope="row">
              <button type="button" className="link" onClick={() => props.onSelect(nodeId(node))}>
                {nodeId(node)}
              </button>
              {node.cache_hit && <span className="muted"> (cached)</span>}
            </th>
            <td>
              <span className={phaseClass(node.closure.phase)}>{node.closure.phase}</span>
            </td>
            <td>{node.closure.started_at === undefined ? '–' : formatSeconds(seconds(node.closure.duration))}</td>
            <td>{node.attempts.length}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function NodeDetail(props: {
  node: NodeExecutionView | undefined;
  elements: NodeExecutionView[];
  onClose: () => void;
}) {
  const { node } = props;
  return (
    <div className="node-detail">
      <button type="button" className="link" onClick={props.onClose}>
        All nodes
      </button>
      {node === undefined ? (
        <p className="muted">This node has not started.</p>
      ) : (
        <>
          <dl className="summary">
            <dt>Phase</dt>
            <dd>
              <span className={phaseClass(node.closure.phase)}>{node.closure.phase}</span>
              {node.cache_hit && ' (from the cache)'}
            </dd>
            {node.function !== undefined && (
              <>
                <dt>Function</dt>
                <dd>
                  <a href={href('functions', node.function.name)}>{node.function.name}</a>
                  {node.function.version === null ? '' : ` v${node.function.version}`}
                </dd>
              </>
            )}
            {node.closure.workflow_node_metadata !== undefined && (
              <>
                <dt>Child execution</dt>
                <dd>
                  <a
                    href={href(
                      'executions',
                      node.closure.workflow_node_metadata.execution_id.project,
                      node.closure.workflow_node_metadata.execution_id.domain,
                      node.closure.workflow_node_metadata.execution_id.name,
                    )}
                  >
                    {node.closure.workflow_node_metadata.execution_id.name}
                  </a>
                </dd>
              </>
            )}
            <dt>Started</dt>
            <dd>
              {node.closure.started_at === undefined ? '–' : new Date(node.closure.started_at).toLocaleTimeString()}
            </dd>
            <dt>Duration</dt>
            <dd>{formatSeconds(seconds(node.closure.duration))}</dd>
            {node.closure.error !== undefined && (
              <>
                <dt>Error</dt>
                <dd className="error">
                  {node.closure.error.code}: {node.closure.error.message}
                </dd>
              </>
            )}
          </dl>
          <h3>Attempts</h3>
          {node.attempts.length === 0 && <p className="muted">None.</p>}
          {node.attempts.map((attempt) => (
            <Attempt key={attempt.attempt} attempt={attempt} fn={node.function?.name} />
          ))}
          {props.elements.length > 0 && (
            <>
              <h3>Elements</h3>
              <NodeTable nodes={props.elements} onSelect={() => undefined} />
            </>
          )}
        </>
      )}
    </div>
  );
}

function Attempt(props: { attempt: NodeExecutionView['attempts'][number]; fn: string | undefined }) {
  const { attempt } = props;
  const [logs, setLogs] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const id = attempt.invocation_id;
  const load = async () => {
    if (id === null) return;
    try {
      setLogs(await getText(`/v1/invocations/${enc(id)}/logs`));
      setError(null);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <div className="attempt" data-attempt={attempt.attempt}>
      <p>
        <strong>Attempt {attempt.attempt}</strong> <span className={phaseClass(attempt.phase)}>{attempt.phase}</span>{' '}
        {formatSeconds(seconds(attempt.duration))}
        {id !== null && (
          <>
            {' '}
            · invocation{' '}
            {props.fn === undefined ? (
              <code>{id}</code>
            ) : (
              <a href={href('functions', props.fn, 'invocations', id)}>
                <code>{id}</code>
              </a>
            )}{' '}
            <button type="button" className="link" onClick={() => void load()}>
              {logs === null ? 'Show logs' : 'Reload logs'}
            </button>
          </>
        )}
      </p>
      {attempt.error !== undefined && (
        <p className="error">
          {attempt.error.code}: {attempt.error.message}
        </p>
      )}
      {error !== null && <p className="warning">{error}</p>}
      {logs !== null && (
        <pre className="code output" role="log" aria-label={`Logs of attempt ${attempt.attempt}`}>
          {logs || '(empty)'}
        </pre>
      )}
    </div>
  );
}

/** Gantt-like bars: one row per node, from its start for its duration, in its phase's colour. */
function Timeline(props: { nodes: NodeExecutionView[]; selected: string | null; onSelect: (id: string) => void }) {
  const started = props.nodes.filter((n) => n.closure.started_at !== undefined);
  if (started.length === 0) return <p className="muted">Nothing has run yet.</p>;
  const spans = started.map((n) => {
    const start = Date.parse(n.closure.started_at as string);
    return { node: n, start, end: start + seconds(n.closure.duration) * 1000 };
  });
  spans.sort((a, b) => a.start - b.start);
  const origin = Math.min(...spans.map((s) => s.start));
  const total = Math.max(1, Math.max(...spans.map((s) => s.end)) - origin);
  const row = 22;
  const labelWidth = 120;
  const width = 560;
  const scale = (width - labelWidth - 10) / total;
  const height = spans.length * row + 24;
  return (
    <svg
      className="timeline"
      viewBox={`0 0 ${width} ${height}`}
      width="100%"
      role="img"
      aria-label={`Timeline of ${spans.length} nodes over ${formatSeconds(total / 1000)}`}
    >
      {spans.map((span, index) => {
        const id = nodeId(span.node);
        const x = labelWidth + (span.start - origin) * scale;
        const w = Math.max(2, (span.end - span.start) * scale);
        return (
          <g
            key={id}
            className={`timeline-row${props.selected === id ? ' selected' : ''}`}
            data-timeline-node={id}
            onClick={() => props.onSelect(id)}
          >
            <text x={0} y={index * row + 15} className="timeline-label">
              {id.length > 16 ? `${id.slice(0, 15)}…` : id}
            </text>
            <rect
              x={x}
              y={index * row + 4}
              width={w}
              height={row - 8}
              rx={3}
              fill={phaseColours[span.node.closure.phase] ?? '#94a3b8'}
            >
              <title>
                {id}: {span.node.closure.phase}, {formatSeconds((span.end - span.start) / 1000)}
              </title>
            </rect>
          </g>
        );
      })}
      <text x={labelWidth} y={height - 4} className="timeline-axis">
        0
      </text>
      <text x={width - 4} y={height - 4} textAnchor="end" className="timeline-axis">
        {formatSeconds(total / 1000)}
      </text>
    </svg>
  );
}

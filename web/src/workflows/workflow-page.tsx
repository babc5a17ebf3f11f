// One workflow: its graph, its versions, a form to run it with its declared inputs, and its executions.
import { useState } from 'react';
import type { FormEvent } from 'react';
import type { WorkflowInputSpec, WorkflowValueType } from '../../../src/core/workflow-spec.js';
import { enc } from '../api';
import { href, useApi } from '../hooks';
import { FlowView } from './flow';
import type { ExecutionView, WorkflowDetail } from './wf-api';
import { executionsPath, formatSeconds, launch, phaseClass, seconds, versionNumbers, workflowPath } from './wf-api';

export function WorkflowPage(props: { name: string; version?: number }) {
  const path = `${workflowPath(props.name)}${props.version === undefined ? '' : `?version=${props.version}`}`;
  const wf = useApi<WorkflowDetail>(path);
  const executions = useApi<{ executions: ExecutionView[] }>(executionsPath(props.name, 30), 3_000);
  return (
    <section aria-labelledby="workflow-title">
      <p className="crumbs">
        <a href={href('workflows')}>Workflows</a> /
      </p>
      <div className="title-row">
        <h1 id="workflow-title">
          {props.name}
          {wf.data !== null && <span className="muted"> v{wf.data.version}</span>}
        </h1>
        <a className="button" href={href('workflows', props.name, 'edit')}>
          Edit
        </a>
      </div>
      {wf.error !== null && (
        <p className="error" role="alert">
          {wf.error}
        </p>
      )}
      {wf.data !== null && (
        <>
          {wf.data.spec.description ? <p>{wf.data.spec.description}</p> : null}
          <nav className="versions-bar" aria-label="Versions">
            Versions:{' '}
            {versionNumbers(wf.data).map((v, i) => (
              <a
                key={v}
                href={i === 0 ? href('workflows', props.name) : href('workflows', props.name, 'v', String(v))}
                aria-current={v === wf.data?.version ? 'page' : undefined}
              >
                v{v}
              </a>
            ))}
          </nav>
          <FlowView spec={wf.data.spec} label={`Graph of ${props.name} v${wf.data.version}`} />
          <RunForm name={props.name} version={wf.data.version} spec={wf.data.spec} />
        </>
      )}
      <h2>Executions</h2>
      {executions.error !== null && <p className="warning">{executions.error}</p>}
      {executions.data !== null && executions.data.executions.length === 0 && <p className="muted">None yet.</p>}
      {executions.data !== null && executions.data.executions.length > 0 && (
        <ExecutionTable executions={executions.data.executions} />
      )}
    </section>
  );
}

export function ExecutionTable(props: { executions: ExecutionView[] }) {
  return (
    <table className="executions">
      <thead>
        <tr>
          <th scope="col">Execution</th>
          <th scope="col">Phase</th>
          <th scope="col">Version</th>
          <th scope="col">Mode</th>
          <th scope="col">Started</th>
          <th scope="col">Duration</th>
        </tr>
      </thead>
      <tbody>
        {props.executions.map((e) => (
          <tr key={`${e.id.project}/${e.id.domain}/${e.id.name}`} data-execution={e.id.name}>
            <th scope="row">
              <a href={href('executions', e.id.project, e.id.domain, e.id.name)}>{e.id.name}</a>
            </th>
            <td>
              <span className={phaseClass(e.closure.phase)}>{e.closure.phase}</span>
            </td>
            <td>v{e.spec.launch_plan.version}</td>
            <td>{e.spec.metadata.mode}</td>
            <td>{e.closure.started_at === undefined ? '–' : new Date(e.closure.started_at).toLocaleString()}</td>
            <td>{formatSeconds(seconds(e.closure.duration))}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function typeOf(input: WorkflowInputSpec): WorkflowValueType {
  return typeof input === 'string' ? input : input.type;
}

/** The text a field shows for a default value. */
function textOf(value: unknown, type: WorkflowValueType): string {
  if (value === undefined) return '';
  if (type === 'string' && typeof value === 'string') return value;
  return JSON.stringify(value);
}

/** A field's text as the value of its declared type, or an error naming the input. */
export function parseInput(
  name: string,
  type: WorkflowValueType,
  text: string,
): { value: unknown } | { error: string } {
  if (type === 'string') return { value: text };
  if (type === 'number' || type === 'integer') {
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) return { error: `${name}: enter a number` };
    if (type === 'integer' && !Number.isInteger(value)) return { error: `${name}: enter a whole number` };
    return { value };
  }
  if (type === 'boolean') return { value: text === 'true' };
  try {
    return { value: JSON.parse(text) as unknown };
  } catch {
    return { error: `${name}: not valid JSON` };
  }
}

function RunForm(props: { name: string; version: number; spec: WorkflowDetail['spec'] }) {
  const declared = Object.entries(props.spec.inputs ?? {});
  const [values, setValues] = useState<Record<string, string>>(() =>
    Object.fromEntries(
      declared.map(([name, input]) => [
        name,
        typeof input === 'object' ? textOf(input.default, input.type) : input === 'boolean' ? 'false' : '',
      ]),
    ),
  );
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    const inputs: Record<string, unknown> = {};
    for (const [name, input] of declared) {
      const text = values[name] ?? '';
      const hasDefault = typeof input === 'object' && 'default' in input;
      if (text === '' && hasDefault && typeOf(input) !== 'string') continue;
      const parsed = parseInput(name, typeOf(input), text);
      if ('error' in parsed) {
        setError(parsed.error);
        return;
      }
      inputs[name] = parsed.value;
    }
    setBusy(true);
    setError(null);
    try {
      const { id } = await launch(props.name, inputs, props.version);
      window.location.hash = href('executions', id.project, id.domain, id.name);
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  };
  return (
    <form className="run-form" aria-label="Run" onSubmit={(event) => void submit(event)}>
      <h2>Run v{props.version}</h2>
      {declared.length === 0 && <p className="muted">This workflow declares no inputs.</p>}
      {declared.map(([name, input]) => {
        const type = typeOf(input);
        const id = `input-${enc(name)}`;
        return (
          <div className="field" key={name}>
            <label htmlFor={id}>
              {name} <span className="muted">({type})</span>
            </label>
            {type === 'boolean' ? (
              <input
                id={id}
                type="checkbox"
                checked={values[name] === 'true'}
                onChange={(event) => setValues({ ...values, [name]: String(event.target.checked) })}
              />
            ) : (
              <input
                id={id}
                type={type === 'number' || type === 'integer' ? 'number' : 'text'}
                step="any"
                className={type === 'object' || type === 'array' || type === 'any' ? 'code' : undefined}
                value={values[name] ?? ''}
                onChange={(event) => setValues({ ...values, [name]: event.target.value })}
              />
            )}
            {typeof input === 'object' && input.description ? <span className="muted">{input.description}</span> : null}
          </div>
        );
      })}
      <button type="submit" disabled={busy}>
        {busy ? 'Starting…' : 'Run'}
      </button>
      <p className="error" role="alert">
        {error}
      </p>
    </form>
  );
}

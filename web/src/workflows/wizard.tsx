// The simple form for a linear pipeline: pick functions in order; the first takes the workflow's inputs, each next
// one the previous one's output, and the workflow's output is the last one's.
import { useEffect, useId, useMemo, useState } from 'react';
import type { FunctionView } from '../api';
import { useApi } from '../hooks';
import type { Draft } from './editor';
import type { Pipeline, WorkflowSpec } from './graph';
import { nodeIdFor, specOfPipeline } from './graph';
import { JsonField } from './json-field';
import { MessageLine, useDeployActions } from './deploy-actions';

export function Wizard(props: {
  initial: Draft;
  pipeline: Pipeline;
  nameLocked?: boolean;
  onChange: (draft: Draft) => void;
  switcher?: React.ReactNode;
}) {
  const functions = useApi<{ functions: FunctionView[] }>('/v1/functions');
  const names = (functions.data?.functions ?? []).map((f) => f.name);
  const [name, setName] = useState(props.initial.name);
  const [pipeline, setPipeline] = useState<Pipeline>(props.pipeline);
  const [inputs, setInputs] = useState<WorkflowSpec['inputs']>(props.initial.spec.inputs ?? { x: 'number' });
  const [choice, setChoice] = useState('');
  const { message, busy, callApi } = useDeployActions();
  const pickId = useId();
  const { nodes: _nodes, output: _output, inputs: _inputs, ...rest } = props.initial.spec;
  const [base] = useState(rest);
  const spec = useMemo(() => specOfPipeline(pipeline, { ...base, inputs }), [pipeline, base, inputs]);
  const onChange = props.onChange;
  useEffect(() => onChange({ name, spec }), [name, spec, onChange]);

  const add = (fn: string) => {
    if (fn === '') return;
    const id = nodeIdFor(
      fn,
      pipeline.steps.map((s) => s.id),
    );
    const firstInput =
      pipeline.steps.length === 0 && pipeline.firstInput === null
        ? Object.fromEntries(Object.keys(inputs ?? {}).map((k) => [k, `$.inputs.${k}`]))
        : pipeline.firstInput;
    setPipeline({ steps: [...pipeline.steps, { id, function: fn }], firstInput });
    setChoice('');
  };
  const move = (index: number, by: number) => {
    const steps = [...pipeline.steps];
    const [step] = steps.splice(index, 1);
    if (step === undefined) return;
    steps.splice(index + by, 0, step);
    setPipeline({ ...pipeline, steps });
  };
  return (
    <div className="wizard">
      <div className="editor-toolbar">
        <label className="inline">
          Name{' '}
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            readOnly={props.nameLocked}
            aria-label="Workflow name"
          />
        </label>
        <button type="button" disabled={busy} onClick={() => void callApi('validate', name, spec)}>
          Validate
        </button>
        <button type="button" disabled={busy} onClick={() => void callApi('deploy', name, spec)}>
          Deploy
        </button>
        {props.switcher}
      </div>
      <MessageLine message={message} />
      <JsonField
        label="Inputs (name → type)"
        value={inputs}
        optional
        onChange={(v) => setInputs(v as WorkflowSpec['inputs'])}
        rows={3}
        hint='e.g. {"x": "number"}'
      />
      <h2>Steps</h2>
      {pipeline.steps.length === 0 && <p className="muted">No steps yet: pick the first function.</p>}
      <ol className="steps">
        {pipeline.steps.map((step, index) => (
          <li key={step.id} data-step={step.id}>
            <strong>{step.id}</strong> runs <code>{step.function}</code>
            {index === 0 ? ' with the workflow inputs' : ` with the output of ${pipeline.steps[index - 1]?.id}`}{' '}
            <button
              type="button"
              className="link"
              disabled={index === 0}
              onClick={() => move(index, -1)}
              aria-label={`Move ${step.id} up`}
            >
              Up
            </button>{' '}
            <button
              type="button"
              className="link"
              disabled={index === pipeline.steps.length - 1}
              onClick={() => move(index, 1)}
              aria-label={`Move ${step.id} down`}
            >
              Down
            </button>{' '}
            <button
              type="button"
              className="link"
              aria-label={`Remove ${step.id}`}
              onClick={() => setPipeline({ ...pipeline, steps: pipeline.steps.filter((s) => s.id !== step.id) })}
            >
              Remove
            </button>
            {index === 0 && (
              <JsonField
                label="First step's input"
                value={pipeline.firstInput}
                onChange={(firstInput) => setPipeline({ ...pipeline, firstInput })}
                rows={3}
              />
            )}
          </li>
        ))}
      </ol>
      <div className="inline">
        <label htmlFor={pickId}>Next step</label>{' '}
        <select id={pickId} value={choice} onChange={(e) => setChoice(e.target.value)}>
          <option value="">Pick a function…</option>
          {names.map((fn) => (
            <option key={fn} value={fn}>
              {fn}
            </option>
          ))}
        </select>{' '}
        <button type="button" disabled={choice === ''} onClick={() => add(choice)}>
          Add step
        </button>
      </div>
      <details>
        <summary>Spec</summary>
        <pre className="code output">{JSON.stringify(spec, null, 2)}</pre>
      </details>
    </div>
  );
}

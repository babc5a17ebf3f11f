// Building a workflow: a new one (`#/workflows/new`) opens on the simple pipeline form, an existing one
// (`#/workflows/NAME/edit`) on the graph editor. Either switches to the other, the graph going back to the form
// only while it is still a linear pipeline.
import { useCallback, useMemo, useRef, useState } from 'react';
import { href, useApi } from '../hooks';
import type { Draft } from './editor';
import { Editor } from './editor';
import { pipelineOf } from './graph';
import type { WorkflowDetail } from './wf-api';
import { workflowPath } from './wf-api';
import { Wizard } from './wizard';

export function NewWorkflowPage() {
  return (
    <Compose initial={{ name: '', spec: { inputs: { x: 'number' }, nodes: {} } }} mode="wizard" title="New workflow" />
  );
}

export function EditWorkflowPage(props: { name: string }) {
  const wf = useApi<WorkflowDetail>(workflowPath(props.name));
  if (wf.error !== null)
    return (
      <p className="error" role="alert">
        {wf.error}
      </p>
    );
  if (wf.data === null) return <p role="status">Loading…</p>;
  return (
    <Compose initial={{ name: props.name, spec: wf.data.spec }} mode="editor" nameLocked title={`Edit ${props.name}`} />
  );
}

function Compose(props: { initial: Draft; mode: 'wizard' | 'editor'; nameLocked?: boolean; title: string }) {
  const [mode, setMode] = useState(props.mode);
  const draft = useRef<Draft>(props.initial);
  const [shown, setShown] = useState<Draft>(props.initial);
  const [generation, setGeneration] = useState(0);
  const [linear, setLinear] = useState<ReturnType<typeof pipelineOf>>(() => pipelineOf(props.initial.spec));
  const onChange = useCallback((next: Draft) => {
    draft.current = next;
    setLinear(pipelineOf(next.spec));
  }, []);
  const switchTo = (next: 'wizard' | 'editor') => {
    setShown(draft.current);
    setGeneration((n) => n + 1);
    setMode(next);
  };
  const pipeline = 'pipeline' in linear ? linear.pipeline : null;
  const shownLinear = useMemo(() => pipelineOf(shown.spec), [shown]);
  return (
    <section aria-labelledby="compose-title" className="compose">
      <p className="crumbs">
        <a href={href('workflows')}>Workflows</a> /
      </p>
      <h1 id="compose-title">{props.title}</h1>
      {mode === 'wizard' && 'pipeline' in shownLinear ? (
        <Wizard
          key={generation}
          initial={shown}
          pipeline={shownLinear.pipeline}
          nameLocked={props.nameLocked}
          onChange={onChange}
          switcher={
            <button type="button" onClick={() => switchTo('editor')}>
              Switch to the graph editor
            </button>
          }
        />
      ) : (
        <Editor
          key={generation}
          initial={shown}
          nameLocked={props.nameLocked}
          onChange={onChange}
          switcher={
            <button
              type="button"
              disabled={pipeline === null}
              title={'reason' in linear ? `Not a linear pipeline: ${linear.reason}` : 'Edit as a simple pipeline'}
              onClick={() => switchTo('wizard')}
            >
              Switch to the simple form
            </button>
          }
        />
      )}
    </section>
  );
}

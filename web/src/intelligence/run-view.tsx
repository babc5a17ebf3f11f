// A run live: its steps (from the run socket `GET /v1/intelligence/runs/{id}/ws`, which sends the view on each change
// and the trainer's lines), the curation's progress, the feedback grid while it awaits feedback, the training log and
// the final report; links to the `fine-tune` workflow's graph and to the execution, for those who want the detail.
import { useEffect, useRef, useState } from 'react';
import { currentKey, getJson } from '../api';
import { href } from '../hooks';
import type { CurationView, ImageForFeedback, RunLogLine, RunView } from './ai-api';
import {
  curationPath,
  fineTuneWorkflow,
  imageUrl,
  runPath,
  runStatuses,
  submitFeedback,
  terminalRunStatuses,
} from './ai-api';

const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Lines kept on screen. */
const maxLines = 500;

type Link = { state: 'connecting' | 'live' | 'ended' } | { state: 'polling'; reason: string };

/**
 * The run as the socket sends it; where the socket cannot open (a key a subprotocol cannot carry, a proxy without
 * WebSockets), the run is read every second instead, without the log.
 */
export function useLiveRun(id: string) {
  const [run, setRun] = useState<RunView | null>(null);
  const [lines, setLines] = useState<(RunLogLine & { seq: number })[]>([]);
  const [link, setLink] = useState<Link>({ state: 'connecting' });
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let closed = false;
    let seq = 0;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let ended = false;
    const poll = async () => {
      try {
        const view = await getJson<RunView>(runPath(id));
        if (closed) return;
        setRun(view);
        setError(null);
        if (terminalRunStatuses.has(view.status)) {
          setLink({ state: 'ended' });
          return;
        }
      } catch (err) {
        if (closed) return;
        setError(err instanceof Error ? err.message : String(err));
      }
      timer = setTimeout(() => void poll(), 1000);
    };
    const fallBack = (reason: string) => {
      if (closed || ended) return;
      setLink({ state: 'polling', reason });
      void poll();
    };
    const key = currentKey();
    if (key !== null && !tokenPattern.test(key)) {
      fallBack('this key cannot travel in a WebSocket subprotocol');
      return () => {
        closed = true;
        clearTimeout(timer);
      };
    }
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(
      `${scheme}//${window.location.host}${runPath(id)}/ws`,
      key === null ? ['savassan.runs.v1'] : ['savassan.runs.v1', `bearer.${key}`],
    );
    socket.onopen = () => setLink({ state: 'live' });
    socket.onmessage = (message) => {
      if (typeof message.data !== 'string') return;
      let frame: { type?: string; run?: RunView; line?: RunLogLine };
      try {
        frame = JSON.parse(message.data) as typeof frame;
      } catch {
        return;
      }
      if (frame.type === 'run' && frame.run !== undefined) {
        const view = frame.run;
        setRun(view);
        if (terminalRunStatuses.has(view.status)) ended = true;
      } else if (frame.type === 'log' && frame.line !== undefined) {
        const entry = { ...frame.line, seq: seq++ };
        setLines((old) => (old.length >= maxLines ? [...old.slice(1 - maxLines), entry] : [...old, entry]));
      }
    };
    socket.onclose = (close) => {
      if (ended) setLink({ state: 'ended' });
      else fallBack(close.reason === '' ? `the live view closed (${close.code})` : close.reason);
    };
    return () => {
      closed = true;
      clearTimeout(timer);
      socket.close(1000, 'left the page');
    };
  }, [id]);
  return { run, lines, link, error };
}

/** The steps a run goes through, as the progress bar shows them. */
const steps: { status: string; label: string }[] = [
  { status: 'PLANNING', label: 'Plan' },
  { status: 'CURATING', label: 'Curate' },
  { status: 'AWAITING_FEEDBACK', label: 'Feedback' },
  { status: 'TRAINING', label: 'Train' },
  { status: 'EVALUATING', label: 'Evaluate' },
  { status: 'SUCCEEDED', label: 'Done' },
];

function Steps(props: { status: string }) {
  const at = runStatuses.indexOf(props.status as (typeof runStatuses)[number]);
  const failed = props.status === 'FAILED' || props.status === 'ABORTED';
  return (
    <ol className="run-steps" aria-label="Run progress">
      {steps.map((step, i) => {
        const state =
          step.status === props.status
            ? props.status === 'SUCCEEDED'
              ? 'done'
              : 'current'
            : !failed && i < at
              ? 'done'
              : 'todo';
        return (
          <li
            key={step.status}
            className={`run-step run-step-${state}`}
            aria-current={state === 'current' ? 'step' : undefined}
          >
            {step.label}
          </li>
        );
      })}
      {failed && <li className="run-step run-step-failed">{props.status === 'FAILED' ? 'Failed' : 'Aborted'}</li>}
    </ol>
  );
}

export function RunPanel(props: { id: string }) {
  const { run, lines, link, error } = useLiveRun(props.id);
  const curation = useCuration(run);
  if (run === null)
    return (
      <p className="loading" role="status">
        {error ?? 'Connecting to the run…'}
      </p>
    );
  const key = run.execution;
  return (
    <section aria-labelledby="run-title" className="run-panel">
      <div className="title-row">
        <h2 id="run-title">
          Run <code>{run.id}</code>
        </h2>
        <span
          className={`badge run-status run-status-${run.status.toLowerCase()}`}
          role="status"
          data-testid="run-status"
        >
          {run.status}
        </span>
        <span className="muted">
          {link.state === 'live' ? 'live' : link.state === 'polling' ? `polling (${link.reason})` : link.state}
        </span>
      </div>
      <Steps status={run.status} />
      <p className="disclosure">
        Every run is an execution of the <code>{fineTuneWorkflow}</code> workflow: plan → curate → feedback → train →
        evaluate. <a href={href('workflows', fineTuneWorkflow)}>Open in workflow editor</a> ·{' '}
        <a href={href('executions', key.project, key.domain, key.name)}>Open the execution</a>
      </p>
      {run.error !== null && (
        <p className="error" role="alert">
          {run.error.code}: {run.error.message}
        </p>
      )}
      {curation !== null && <CurationProgressLine curation={curation} />}
      {run.status === 'AWAITING_FEEDBACK' && curation !== null && curation.status === 'AWAITING_FEEDBACK' && (
        <FeedbackGrid key={curation.id} curation={curation} />
      )}
      <TrainingLog lines={lines} />
      {run.status === 'SUCCEEDED' && <Report run={run} />}
    </section>
  );
}

/** The run's curation, read when the run names it and again every second while it embeds. */
function useCuration(run: RunView | null): CurationView | null {
  const [curation, setCuration] = useState<CurationView | null>(null);
  const id = run?.curationId ?? null;
  const status = run?.status;
  useEffect(() => {
    if (id === null) return;
    let closed = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = async () => {
      try {
        const view = await getJson<CurationView>(curationPath(id));
        if (closed) return;
        setCuration(view);
        if (view.status === 'PENDING' || view.status === 'EMBEDDING') timer = setTimeout(() => void read(), 1000);
      } catch {
        if (!closed) timer = setTimeout(() => void read(), 2000);
      }
    };
    void read();
    return () => {
      closed = true;
      clearTimeout(timer);
    };
  }, [id, status]);
  return curation;
}

function CurationProgressLine(props: { curation: CurationView }) {
  const { progress, errors, status } = props.curation;
  return (
    <div className="curation-progress">
      <p>
        Curation <code>{props.curation.id}</code>: {status.toLowerCase().replace('_', ' ')}. {progress.embedded} of{' '}
        {progress.total} images embedded
        {progress.duplicates > 0 && `, ${progress.duplicates} near-duplicates set aside`}
        {progress.failed > 0 && `, ${progress.failed} could not be read`}.{' '}
        <span className="muted">Embedder: {props.curation.embedder}</span>
      </p>
      {progress.total > 0 && (
        <progress max={progress.total} value={progress.embedded + progress.failed} aria-label="Images embedded" />
      )}
      {errors.length > 0 && (
        <ul className="warning" aria-label="Files that could not be curated">
          {errors.map((e) => (
            <li key={e.file}>
              {e.file}: {e.message}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

/** Accept or reject each image the curator picked, then submit: the curated set is refined and the run trains. */
function FeedbackGrid(props: { curation: CurationView }) {
  const { curation } = props;
  const [verdicts, setVerdicts] = useState<Record<string, boolean>>(() =>
    Object.fromEntries(curation.feedback.map((f) => [f.imageId, f.accepted])),
  );
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState<{ kind: 'ok' | 'error'; text: string } | null>(null);
  const images = curation.imagesForFeedback;
  const given = images.filter((i) => verdicts[i.imageId] !== undefined).length;
  const submit = async () => {
    setBusy(true);
    setMessage(null);
    try {
      const feedback = images.flatMap((i) => {
        const accepted = verdicts[i.imageId];
        return accepted === undefined ? [] : [{ imageId: i.imageId, accepted }];
      });
      await submitFeedback(curation.id, feedback);
      setMessage({
        kind: 'ok',
        text: `Sent ${feedback.length} verdicts: the curated set is written and training starts.`,
      });
    } catch (err) {
      setMessage({ kind: 'error', text: err instanceof Error ? err.message : String(err) });
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="feedback-title" className="feedback">
      <h3 id="feedback-title">Review these {images.length} images</h3>
      <p className="muted">
        The curator picked the most informative images: each cluster&apos;s most typical one, outliers, and images
        between clusters. Accepted images pull their near neighbours into the training set; rejected ones push theirs
        out. Images without a verdict are kept.
      </p>
      <ul className="feedback-grid">
        {images.map((image) => (
          <FeedbackCard
            key={image.imageId}
            curationId={curation.id}
            image={image}
            verdict={verdicts[image.imageId]}
            onVerdict={(accepted) => setVerdicts((old) => ({ ...old, [image.imageId]: accepted }))}
          />
        ))}
      </ul>
      <div className="row">
        <button type="button" className="primary" disabled={busy} onClick={() => void submit()}>
          Submit
        </button>
        <span className="muted">
          {given} of {images.length} reviewed
        </span>
      </div>
      <p className={message?.kind === 'error' ? 'error' : 'ok'} role={message?.kind === 'error' ? 'alert' : 'status'}>
        {message?.text}
      </p>
    </section>
  );
}

function FeedbackCard(props: {
  curationId: string;
  image: ImageForFeedback;
  verdict: boolean | undefined;
  onVerdict: (accepted: boolean) => void;
}) {
  const { image, verdict } = props;
  const [src, setSrc] = useState<string | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  useEffect(() => {
    const abort = new AbortController();
    let url: string | null = null;
    imageUrl(props.curationId, image.imageId, abort.signal).then(
      (made) => {
        if (abort.signal.aborted) URL.revokeObjectURL(made);
        else {
          url = made;
          setSrc(made);
        }
      },
      (err: unknown) => {
        if (!abort.signal.aborted) setFailed(err instanceof Error ? err.message : String(err));
      },
    );
    return () => {
      abort.abort();
      if (url !== null) URL.revokeObjectURL(url);
    };
  }, [props.curationId, image.imageId]);
  const label = `${image.reason} of cluster ${image.cluster + 1}`;
  return (
    <li
      className={`feedback-card${verdict === true ? ' accepted' : verdict === false ? ' rejected' : ''}`}
      data-image-id={image.imageId}
    >
      {src !== null ? (
        <img src={src} alt={`Image ${image.imageId}, ${label}`} />
      ) : (
        <div className="image-placeholder">{failed ?? 'loading…'}</div>
      )}
      <span className="muted reason">{label}</span>
      <div className="verdict" role="group" aria-label={`Verdict on ${image.imageId}`}>
        <button type="button" aria-pressed={verdict === true} onClick={() => props.onVerdict(true)}>
          Accept
        </button>
        <button type="button" aria-pressed={verdict === false} onClick={() => props.onVerdict(false)}>
          Reject
        </button>
      </div>
    </li>
  );
}

function TrainingLog(props: { lines: (RunLogLine & { seq: number })[] }) {
  const list = useRef<HTMLOListElement>(null);
  useEffect(() => {
    const element = list.current;
    if (element !== null) element.scrollTop = element.scrollHeight;
  }, [props.lines]);
  return (
    <section aria-labelledby="training-log-title" className="logs">
      <h3 id="training-log-title">Training log</h3>
      <ol ref={list} className="log-lines" role="log" aria-live="polite" aria-label="Training log" tabIndex={0}>
        {props.lines.length === 0 && <li className="muted">The trainer&apos;s output appears here as it runs.</li>}
        {props.lines.map((line) => (
          <li key={line.seq} className={line.stream === 'stderr' ? 'stderr' : undefined}>
            <time dateTime={line.time}>{line.time.slice(11, 23)}</time>
            <span className="muted">{line.functionName}</span>
            <span className="log-text">{line.line}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}

/** The names the report gives the fine-tune workflow's outputs. */
const reportFields: [string, string][] = [
  ['accuracy', 'Training accuracy'],
  ['heldOutAccuracy', 'Held-out accuracy'],
  ['trainingExamples', 'Training examples'],
  ['modelUri', 'Model'],
  ['reportUri', 'Report'],
  ['curatedDatasetUri', 'Curated dataset'],
  ['planId', 'Plan'],
  ['curationId', 'Curation'],
];

function show(value: unknown): string {
  if (value === null) return '—';
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(3);
  if (typeof value === 'string') return value;
  return JSON.stringify(value);
}

function Report(props: { run: RunView }) {
  const output = (props.run.output ?? {}) as Record<string, unknown>;
  const known = reportFields.filter(([field]) => output[field] !== undefined);
  return (
    <section aria-labelledby="report-title" className="report" data-testid="run-report">
      <h3 id="report-title">Report</h3>
      <dl>
        {known.map(([field, label]) => (
          <div key={field}>
            <dt>{label}</dt>
            <dd>
              <code>{show(output[field])}</code>
            </dd>
          </div>
        ))}
      </dl>
      <details>
        <summary>The whole output</summary>
        <pre>{JSON.stringify(props.run.output, null, 2)}</pre>
      </details>
    </section>
  );
}

// Recent invocations of a function, and one invocation in detail: how it started and ran, and its log.
import { useEffect, useRef, useState } from 'react';
import type { InvocationView } from '../api';
import { enc, getText } from '../api';
import { href, useApi } from '../hooks';

function memory(bytes: number | null): string {
  return bytes === null ? '–' : `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

/** The trace id of an invocation, where the record carries one (as such or in a `traceparent`). */
function traceIdOf(inv: InvocationView): string | null {
  if (typeof inv.traceId === 'string' && inv.traceId !== '') return inv.traceId;
  const parent = typeof inv.traceparent === 'string' ? /^[0-9a-f]{2}-([0-9a-f]{32})-/.exec(inv.traceparent) : null;
  return parent?.[1] ?? null;
}

function ms(value: number | null): string {
  return value === null ? '–' : `${value.toFixed(1)} ms`;
}

export function Invocations(props: { name: string }) {
  const list = useApi<{ invocations: InvocationView[] }>(
    `/v1/functions/${enc(props.name)}/invocations?limit=50`,
    10_000,
  );
  return (
    <section aria-labelledby="invocations-title">
      <div className="title-row">
        <h2 id="invocations-title">Recent invocations</h2>
        <button type="button" onClick={list.reload}>
          Refresh
        </button>
      </div>
      {list.error !== null && (
        <p className="error" role="alert">
          {list.error}
        </p>
      )}
      {list.data !== null && list.data.invocations.length === 0 && <p className="muted">No invocations yet.</p>}
      {list.data !== null && list.data.invocations.length > 0 && (
        <table className="compact">
          <thead>
            <tr>
              <th scope="col">When</th>
              <th scope="col">Status</th>
              <th scope="col">Version</th>
              <th scope="col">Start</th>
              <th scope="col">Init</th>
              <th scope="col">Run</th>
              <th scope="col">Memory</th>
            </tr>
          </thead>
          <tbody>
            {list.data.invocations.map((inv) => (
              <tr key={inv.id}>
                <th scope="row">
                  <a href={href('functions', props.name, 'invocations', inv.id)} aria-label={`Invocation ${inv.id}`}>
                    {new Date(inv.createdAt).toLocaleTimeString()}
                  </a>
                </th>
                <td>
                  <span className={`badge ${inv.status === 'success' ? 'badge-active' : 'badge-errors'}`}>
                    {inv.status}
                  </span>
                </td>
                <td>v{inv.version}</td>
                <td>{inv.start}</td>
                <td>{ms(inv.initMs)}</td>
                <td>{ms(inv.durationMs)}</td>
                <td>{memory(inv.peakMemoryBytes)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function InvocationDetail(props: { name: string; id: string }) {
  const record = useApi<InvocationView & { state?: string }>(`/v1/invocations/${enc(props.id)}`);
  const heading = useRef<HTMLHeadingElement>(null);
  const logs = useLogText(record.data?.logKey === null ? null : `/v1/invocations/${enc(props.id)}/logs`);
  useEffect(() => heading.current?.focus(), [props.id]);
  const inv = record.data;
  return (
    <section aria-labelledby="invocation-title" className="invocation">
      <p className="crumbs">
        <a href={href('functions', props.name, 'invocations')}>Recent invocations</a> /
      </p>
      <h2 id="invocation-title" ref={heading} tabIndex={-1}>
        Invocation <code>{props.id}</code>
      </h2>
      {record.error !== null && (
        <p className="error" role="alert">
          {record.error}
        </p>
      )}
      {inv !== null && inv.state !== undefined && <p>An asynchronous invocation, {inv.state}.</p>}
      {inv !== null && inv.state === undefined && (
        <dl className="config">
          <div>
            <dt>Status</dt>
            <dd data-testid="invocation-status">{inv.status}</dd>
          </div>
          <div>
            <dt>Start</dt>
            <dd>{inv.start}</dd>
          </div>
          <div>
            <dt>Version</dt>
            <dd>v{inv.version}</dd>
          </div>
          <div>
            <dt>Init time</dt>
            <dd>{ms(inv.initMs)}</dd>
          </div>
          <div>
            <dt>Run time</dt>
            <dd>{ms(inv.durationMs)}</dd>
          </div>
          <div>
            <dt>Memory</dt>
            <dd>
              {memory(inv.peakMemoryBytes)} peak{inv.memoryMB === null ? '' : ` of ${inv.memoryMB} MB`}
            </dd>
          </div>
          <div>
            <dt>Node</dt>
            <dd>{inv.nodeId ?? '–'}</dd>
          </div>
          <div>
            <dt>At</dt>
            <dd>{new Date(inv.createdAt).toLocaleString()}</dd>
          </div>
          {traceIdOf(inv) !== null && (
            <div>
              <dt>Trace id</dt>
              <dd>
                <code>{traceIdOf(inv)}</code>
              </dd>
            </div>
          )}
          {inv.error !== null && (
            <div>
              <dt>Error</dt>
              <dd>
                {inv.error.name}: {inv.error.message}
              </dd>
            </div>
          )}
        </dl>
      )}
      <h3>Log</h3>
      <div aria-live="polite">
        {logs.error !== null && <p className="warning">{logs.error}</p>}
        {inv?.logKey === null && <p className="muted">This invocation wrote no log.</p>}
        {logs.text !== null && <pre className="code output">{logs.text || '(empty)'}</pre>}
      </div>
    </section>
  );
}

function useLogText(path: string | null): { text: string | null; error: string | null } {
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (path === null) return;
    const abort = new AbortController();
    getText(path, { signal: abort.signal }).then(
      (value) => {
        // Bound what the page holds: a log is at most what the Agent keeps, but the screen needs less.
        setText(value.length > 512 * 1024 ? `${value.slice(0, 512 * 1024)}\n… (cut)` : value);
        setError(null);
      },
      (err: unknown) => {
        if (!abort.signal.aborted) setError(err instanceof Error ? err.message : String(err));
      },
    );
    return () => abort.abort();
  }, [path]);
  return { text, error };
}

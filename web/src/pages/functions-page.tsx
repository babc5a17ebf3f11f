// Functions: every deployed function with its last hour (invocations, errors, p99) as sparklines.
import { useMemo, useState } from 'react';
import type { FunctionView, FunctionsStats } from '../api';
import { Sparkline, formatNumber } from '../charts';
import { href, useApi } from '../hooks';

export function FunctionsPage() {
  const functions = useApi<{ functions: FunctionView[] }>('/v1/functions', 30_000);
  const stats = useApi<FunctionsStats>('/v1/stats/functions?minutes=60&step=60', 30_000);
  const [query, setQuery] = useState('');
  const byName = useMemo(
    () => new Map((stats.data?.functions ?? []).map((entry) => [entry.name, entry])),
    [stats.data],
  );
  const list = (functions.data?.functions ?? []).filter((fn) =>
    fn.name.toLowerCase().includes(query.trim().toLowerCase()),
  );

  return (
    <section aria-labelledby="functions-title">
      <div className="title-row">
        <h1 id="functions-title">Functions</h1>
        <label className="search">
          <span className="visually-hidden">Search functions</span>
          <input
            type="search"
            placeholder="Search functions"
            value={query}
            onChange={(event) => setQuery(event.target.value)}
          />
        </label>
      </div>
      {functions.error !== null && (
        <p className="error" role="alert">
          Could not list the functions: {functions.error}
        </p>
      )}
      {stats.error !== null && (
        <p className="warning" role="status">
          Figures of the last hour are not available: {stats.error}
        </p>
      )}
      {functions.data === null && functions.error === null && <p role="status">Loading…</p>}
      {functions.data !== null && functions.data.functions.length === 0 && (
        <div className="empty">
          <p>No functions yet:</p>
          <pre>
            <code>savassan deploy hello ./examples/hello</code>
          </pre>
        </div>
      )}
      {functions.data !== null && functions.data.functions.length > 0 && (
        <table className="functions">
          <caption className="visually-hidden">Functions, with the last hour of invocations, errors and p99</caption>
          <thead>
            <tr>
              <th scope="col">Name</th>
              <th scope="col">Status</th>
              <th scope="col">Version</th>
              <th scope="col">Runtime</th>
              <th scope="col">Invocations (1 h)</th>
              <th scope="col">Errors (1 h)</th>
              <th scope="col">p99 (1 h)</th>
            </tr>
          </thead>
          <tbody aria-live="polite">
            {list.map((fn) => {
              const figures = byName.get(fn.name);
              const status =
                figures === undefined
                  ? 'deployed'
                  : figures.errors > 0
                    ? 'errors'
                    : figures.invocations > 0
                      ? 'active'
                      : 'idle';
              return (
                <tr key={fn.name} data-function={fn.name}>
                  <th scope="row">
                    <a href={href('functions', fn.name)}>{fn.name}</a>
                  </th>
                  <td>
                    <span className={`badge badge-${status}`}>{status}</span>
                  </td>
                  <td>v{fn.currentVersion}</td>
                  <td>{fn.config.runtime}</td>
                  <td>
                    <Figure
                      label={`${fn.name} invocations per minute`}
                      text={figures === undefined ? '–' : formatNumber(figures.invocations)}
                      values={figures?.series.map((p) => p.invocations)}
                    />
                  </td>
                  <td>
                    <Figure
                      label={`${fn.name} errors per minute`}
                      text={figures === undefined ? '–' : formatNumber(figures.errors)}
                      values={figures?.series.map((p) => p.errors)}
                      colour="#dc2626"
                    />
                  </td>
                  <td>
                    <Figure
                      label={`${fn.name} p99 duration, ms`}
                      text={figures?.p99Ms == null ? '–' : `${formatNumber(figures.p99Ms)} ms`}
                      values={figures?.series.map((p) => p.p99Ms)}
                      colour="#7c3aed"
                    />
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
      {functions.data !== null && functions.data.functions.length > 0 && list.length === 0 && (
        <p role="status">No function matches “{query}”.</p>
      )}
    </section>
  );
}

function Figure(props: { label: string; text: string; values: (number | null)[] | undefined; colour?: string }) {
  return (
    <span className="figure">
      <span className="figure-text">{props.text}</span>
      {props.values !== undefined && <Sparkline values={props.values} label={props.label} colour={props.colour} />}
    </span>
  );
}

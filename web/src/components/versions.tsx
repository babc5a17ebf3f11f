// Versions, aliases with a traffic editor (each version's share of an alias's traffic), and rollouts: a running
// one's progress and the decisions taken at each step.
import { useEffect, useId, useState } from 'react';
import type { FormEvent } from 'react';
import type { AliasView, RolloutView, VersionView } from '../api';
import { enc, request } from '../api';
import { useApi } from '../hooks';

export function Versions(props: { name: string }) {
  const versions = useApi<{ versions: VersionView[] }>(`/v1/functions/${enc(props.name)}/versions`, 15_000);
  const aliases = useApi<{ aliases: AliasView[] }>(`/v1/functions/${enc(props.name)}/aliases`);
  const rollouts = useApi<{ rollouts: RolloutView[] }>(`/v1/functions/${enc(props.name)}/rollouts?limit=5`, 5_000);
  const numbers = (versions.data?.versions ?? []).map((v) => v.version);
  return (
    <>
      <section aria-labelledby="versions-title">
        <h2 id="versions-title">Versions</h2>
        {versions.error !== null && (
          <p className="error" role="alert">
            {versions.error}
          </p>
        )}
        {versions.data !== null && (
          <table className="compact">
            <thead>
              <tr>
                <th scope="col">Version</th>
                <th scope="col">Traffic (live)</th>
                <th scope="col">Created</th>
                <th scope="col">Runtime</th>
                <th scope="col">Memory</th>
                <th scope="col">Invocations (5 min)</th>
                <th scope="col">Errors</th>
                <th scope="col">p99</th>
              </tr>
            </thead>
            <tbody>
              {versions.data.versions.map((v) => (
                <tr key={v.version}>
                  <th scope="row">
                    v{v.version}
                    {v.current && <span className="badge badge-active">current</span>}
                  </th>
                  <td>{Math.round(v.traffic * 1000) / 10}%</td>
                  <td>{new Date(v.createdAt).toLocaleString()}</td>
                  <td>{v.config.runtime}</td>
                  <td>{v.config.memoryMB} MB</td>
                  <td>{v.stats.invocations}</td>
                  <td>{v.stats.errors}</td>
                  <td>{v.stats.p99Ms === null ? '–' : `${v.stats.p99Ms.toFixed(1)} ms`}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section aria-labelledby="aliases-title">
        <h2 id="aliases-title">Aliases and traffic</h2>
        {aliases.error !== null && (
          <p className="error" role="alert">
            {aliases.error}
          </p>
        )}
        {(aliases.data?.aliases ?? []).map((alias) => (
          <TrafficEditor
            key={alias.name}
            fn={props.name}
            alias={alias}
            versions={numbers}
            onSaved={() => {
              aliases.reload();
              versions.reload();
            }}
          />
        ))}
      </section>
      <Rollouts
        name={props.name}
        rollouts={rollouts.data?.rollouts ?? []}
        error={rollouts.error}
        reload={rollouts.reload}
      />
    </>
  );
}

function TrafficEditor(props: { fn: string; alias: AliasView; versions: number[]; onSaved: () => void }) {
  const id = useId();
  const initial = Object.fromEntries(
    Object.entries(props.alias.weights).map(([v, w]) => [v, String(Math.round(w * 1000) / 10)]),
  );
  const [shares, setShares] = useState<Record<string, string>>(initial);
  const [sticky, setSticky] = useState(props.alias.stickyHeader ?? '');
  const [adding, setAdding] = useState('');
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  // Saved here or elsewhere: the form shows the alias as it is now.
  const updatedAt = props.alias.updatedAt;
  const weights = props.alias.weights;
  useEffect(() => {
    setShares(Object.fromEntries(Object.entries(weights).map(([v, w]) => [v, String(Math.round(w * 1000) / 10)])));
    // Only a new save resets the form: the weights object itself is new on every load.
  }, [updatedAt]);

  const entries = Object.entries(shares);
  const total = entries.reduce((sum, [, value]) => sum + (Number(value) || 0), 0);
  const invalid = entries.find(([, value]) => !(Number(value) > 0 && Number(value) <= 100));
  const problem =
    entries.length === 0
      ? 'An alias needs at least one version.'
      : invalid !== undefined
        ? `The share of v${invalid[0]} must be above 0 and at most 100.`
        : Math.abs(total - 100) > 0.1
          ? `The shares add up to ${Math.round(total * 10) / 10}%, not 100%.`
          : null;
  const free = props.versions.filter((v) => !(String(v) in shares));

  const save = async (submit: FormEvent) => {
    submit.preventDefault();
    if (problem !== null) {
      setMessage({ error: true, text: problem });
      return;
    }
    setBusy(true);
    setMessage(null);
    try {
      const weights = Object.fromEntries(entries.map(([v, value]) => [v, Number(value) / 100]));
      // Rounded shares can miss 1 by a little: the last version takes the rest.
      const keys = Object.keys(weights);
      const last = keys[keys.length - 1];
      if (last !== undefined) {
        const others = keys.slice(0, -1).reduce((sum, k) => sum + (weights[k] ?? 0), 0);
        weights[last] = Math.round((1 - others) * 1e6) / 1e6;
      }
      await request(`/v1/functions/${enc(props.fn)}/aliases/${enc(props.alias.name)}`, {
        method: 'PUT',
        body: { weights, stickyHeader: sticky.trim() === '' ? null : sticky.trim().toLowerCase() },
      });
      setMessage({ error: false, text: 'Saved.' });
      props.onSaved();
    } catch (err) {
      setMessage({ error: true, text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="traffic" onSubmit={(submit) => void save(submit)} aria-labelledby={`${id}-title`}>
      <h3 id={`${id}-title`}>
        Alias <code>{props.alias.name}</code>
      </h3>
      <div className="bar" aria-hidden="true">
        {entries.map(([v, value], i) => (
          <span
            key={v}
            className={`bar-part swatch-${i % 6}`}
            style={{ width: `${Math.max(0, Math.min(100, Number(value) || 0))}%` }}
          >
            v{v}
          </span>
        ))}
      </div>
      <fieldset>
        <legend>Share of the traffic, in percent</legend>
        {entries.map(([v, value]) => (
          <div key={v} className="row">
            <label htmlFor={`${id}-v${v}`}>v{v}</label>
            <input
              id={`${id}-v${v}`}
              type="number"
              min={0}
              max={100}
              step={0.1}
              value={value}
              onChange={(change) => setShares({ ...shares, [v]: change.target.value })}
            />
            <span aria-hidden="true">%</span>
            <button
              type="button"
              className="link danger"
              aria-label={`Remove version ${v} from ${props.alias.name}`}
              onClick={() => setShares(Object.fromEntries(entries.filter(([other]) => other !== v)))}
            >
              remove
            </button>
          </div>
        ))}
        {free.length > 0 && (
          <div className="row">
            <label htmlFor={`${id}-add`}>Add version</label>
            <select id={`${id}-add`} value={adding} onChange={(change) => setAdding(change.target.value)}>
              <option value="">choose…</option>
              {free.map((v) => (
                <option key={v} value={String(v)}>
                  v{v}
                </option>
              ))}
            </select>
            <button
              type="button"
              disabled={adding === ''}
              onClick={() => {
                setShares({ ...shares, [adding]: '0' });
                setAdding('');
              }}
            >
              Add
            </button>
          </div>
        )}
      </fieldset>
      <div className="row">
        <label htmlFor={`${id}-sticky`}>Sticky header (optional)</label>
        <input
          id={`${id}-sticky`}
          value={sticky}
          maxLength={100}
          placeholder="x-user-id"
          onChange={(change) => setSticky(change.target.value)}
        />
      </div>
      <p className={problem === null ? 'muted' : 'error'} aria-live="polite">
        {problem ?? `Total ${Math.round(total * 10) / 10}%.`}
      </p>
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : `Save ${props.alias.name}`}
      </button>
      <p className={message?.error === true ? 'error' : 'ok'} role="status">
        {message?.text}
      </p>
    </form>
  );
}

function Rollouts(props: { name: string; rollouts: RolloutView[]; error: string | null; reload: () => void }) {
  const [message, setMessage] = useState<string | null>(null);
  const act = async (rollout: RolloutView, action: 'promote' | 'abort') => {
    try {
      await request(`/v1/functions/${enc(props.name)}/rollouts/${enc(rollout.id)}/${action}`, { method: 'POST' });
      setMessage(action === 'promote' ? 'Promoted.' : 'Aborted.');
      props.reload();
    } catch (err) {
      setMessage(err instanceof Error ? err.message : String(err));
    }
  };
  return (
    <section aria-labelledby="rollouts-title">
      <h2 id="rollouts-title">Rollouts</h2>
      {props.error !== null && (
        <p className="error" role="alert">
          {props.error}
        </p>
      )}
      {props.rollouts.length === 0 && (
        <p className="muted">
          No rollouts. Start one with <code>savassan rollout start {props.name} VERSION</code>.
        </p>
      )}
      <p role="status">{message}</p>
      {props.rollouts.map((rollout) => {
        const progress = rollout.steps.length === 0 ? 1 : (rollout.stepIndex + 1) / rollout.steps.length;
        return (
          <article
            key={rollout.id}
            className="rollout"
            aria-label={`Rollout of v${rollout.version} on ${rollout.alias}`}
          >
            <h3>
              v{rollout.baseline} → v{rollout.version} on <code>{rollout.alias}</code>{' '}
              <span
                className={`badge badge-${rollout.state === 'running' ? 'idle' : rollout.state === 'promoted' ? 'active' : 'errors'}`}
              >
                {rollout.state}
              </span>
            </h3>
            <label>
              Step {rollout.stepIndex + 1} of {rollout.steps.length}: {rollout.step}% on v{rollout.version}
              <progress max={1} value={progress} />
            </label>
            {rollout.state === 'running' && (
              <div className="row">
                <button type="button" onClick={() => void act(rollout, 'promote')}>
                  Promote now
                </button>
                <button type="button" className="danger" onClick={() => void act(rollout, 'abort')}>
                  Abort
                </button>
              </div>
            )}
            <table className="compact">
              <caption>Decisions</caption>
              <thead>
                <tr>
                  <th scope="col">At</th>
                  <th scope="col">Step</th>
                  <th scope="col">Decision</th>
                  <th scope="col">Canary (req / err / p99)</th>
                  <th scope="col">Baseline (req / err / p99)</th>
                  <th scope="col">Why</th>
                </tr>
              </thead>
              <tbody>
                {rollout.history.map((entry, i) => (
                  <tr key={i}>
                    <td>{new Date(entry.at).toLocaleTimeString()}</td>
                    <td>{entry.step}%</td>
                    <td>{entry.decision}</td>
                    <td>
                      {entry.canary.requests} / {entry.canary.errors} / {entry.canary.p99Ms?.toFixed(1) ?? '–'}
                    </td>
                    <td>
                      {entry.baseline.requests} / {entry.baseline.errors} / {entry.baseline.p99Ms?.toFixed(1) ?? '–'}
                    </td>
                    <td>{entry.reason}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </article>
        );
      })}
    </section>
  );
}

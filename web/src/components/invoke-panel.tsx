// A test invoke: an event written as JSON (checked as it is typed), an optional qualifier, and the answer. Test events
// can be saved by name, per function, in this browser (localStorage).
import { useEffect, useId, useState } from 'react';
import type { FormEvent } from 'react';
import type { InvokeResult } from '../api';
import { invoke } from '../api';
import { href } from '../hooks';

interface SavedEvent {
  name: string;
  event: string;
}

const maxSaved = 20;
const maxSavedBytes = 64 * 1024;

function storageKey(fn: string): string {
  return `savassan.testEvents.${fn}`;
}

function loadSaved(fn: string): SavedEvent[] {
  try {
    const parsed = JSON.parse(localStorage.getItem(storageKey(fn)) ?? '[]') as unknown;
    if (!Array.isArray(parsed)) return [];
    return parsed
      .filter(
        (entry): entry is SavedEvent =>
          typeof entry === 'object' &&
          entry !== null &&
          typeof (entry as SavedEvent).name === 'string' &&
          typeof (entry as SavedEvent).event === 'string',
      )
      .slice(0, maxSaved);
  } catch {
    return [];
  }
}

function jsonProblem(text: string): string | null {
  if (text.trim() === '') return null;
  try {
    JSON.parse(text);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : 'not JSON';
  }
}

export function InvokePanel(props: { name: string }) {
  const id = useId();
  const [event, setEvent] = useState('{\n  "name": "console"\n}');
  const [qualifier, setQualifier] = useState('');
  const [result, setResult] = useState<InvokeResult | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState<SavedEvent[]>(() => loadSaved(props.name));
  const [saveName, setSaveName] = useState('');
  const [saveMessage, setSaveMessage] = useState<string | null>(null);
  useEffect(() => setSaved(loadSaved(props.name)), [props.name]);
  const problem = jsonProblem(event);

  const persist = (next: SavedEvent[]) => {
    try {
      localStorage.setItem(storageKey(props.name), JSON.stringify(next));
      setSaved(next);
      return true;
    } catch {
      setSaveMessage('This browser refused to store the event.');
      return false;
    }
  };

  const run = async (submit: FormEvent) => {
    submit.preventDefault();
    if (problem !== null) return;
    setBusy(true);
    setError(null);
    try {
      setResult(await invoke(props.name, event.trim() === '' ? '{}' : event, qualifier.trim()));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  const save = () => {
    const name = saveName.trim();
    if (name === '') {
      setSaveMessage('Name the event to save it.');
      return;
    }
    if (problem !== null) {
      setSaveMessage('Only valid JSON can be saved.');
      return;
    }
    if (new Blob([event]).size > maxSavedBytes) {
      setSaveMessage(`An event over ${maxSavedBytes / 1024} KiB is not saved.`);
      return;
    }
    const others = saved.filter((entry) => entry.name !== name);
    if (others.length >= maxSaved) {
      setSaveMessage(`At most ${maxSaved} events are saved per function: delete one first.`);
      return;
    }
    if (persist([{ name, event }, ...others])) setSaveMessage(`Saved “${name}”.`);
  };

  let pretty = result?.body ?? '';
  try {
    if (result !== null && result.body !== '') pretty = JSON.stringify(JSON.parse(result.body), null, 2);
  } catch {
    // Not JSON: shown as it came.
  }

  return (
    <div className="invoke">
      <form onSubmit={(submit) => void run(submit)} aria-labelledby={`${id}-title`}>
        <h2 id={`${id}-title`}>Test invoke</h2>
        <label htmlFor={`${id}-event`}>Event (JSON)</label>
        <textarea
          id={`${id}-event`}
          className="code"
          rows={10}
          spellCheck={false}
          value={event}
          onChange={(change) => setEvent(change.target.value)}
          aria-invalid={problem !== null}
          aria-describedby={`${id}-problem`}
        />
        <p id={`${id}-problem`} className={problem === null ? 'muted' : 'error'} aria-live="polite">
          {problem === null ? 'Valid JSON.' : `Not valid JSON: ${problem}`}
        </p>
        <label htmlFor={`${id}-qualifier`}>Version or alias (optional)</label>
        <input
          id={`${id}-qualifier`}
          value={qualifier}
          onChange={(change) => setQualifier(change.target.value)}
          placeholder="live"
          maxLength={100}
        />
        <button type="submit" disabled={busy || problem !== null}>
          {busy ? 'Invoking…' : 'Invoke'}
        </button>
      </form>

      <section aria-labelledby={`${id}-saved-title`} className="saved">
        <h3 id={`${id}-saved-title`}>Saved test events</h3>
        {saved.length === 0 && <p className="muted">None yet.</p>}
        <ul>
          {saved.map((entry) => (
            <li key={entry.name}>
              <button type="button" className="link" onClick={() => setEvent(entry.event)}>
                Load “{entry.name}”
              </button>{' '}
              <button
                type="button"
                className="link danger"
                aria-label={`Delete saved event ${entry.name}`}
                onClick={() => persist(saved.filter((other) => other.name !== entry.name))}
              >
                delete
              </button>
            </li>
          ))}
        </ul>
        <label htmlFor={`${id}-save-name`}>Save the event as</label>
        <div className="row">
          <input
            id={`${id}-save-name`}
            value={saveName}
            maxLength={60}
            onChange={(change) => setSaveName(change.target.value)}
          />
          <button type="button" onClick={save}>
            Save
          </button>
        </div>
        <p className="muted" role="status">
          {saveMessage}
        </p>
      </section>

      <section aria-labelledby={`${id}-result-title`} className="result">
        <h3 id={`${id}-result-title`}>Result</h3>
        <div aria-live="polite" data-testid="invoke-result">
          {error !== null && (
            <p className="error" role="alert">
              {error}
            </p>
          )}
          {result !== null && (
            <>
              <p>
                <span className={`badge ${result.status < 300 ? 'badge-active' : 'badge-errors'}`}>
                  {result.status}
                </span>{' '}
                {result.version !== null && <>version {result.version} · </>}
                {result.start !== null && <>{result.start} · </>}
                {result.durationMs !== null && <>{result.durationMs} ms</>}
                {result.invocationId !== null && (
                  <>
                    {' · '}
                    <a href={href('functions', props.name, 'invocations', result.invocationId)}>invocation details</a>
                  </>
                )}
              </p>
              <pre className="code output">{pretty}</pre>
            </>
          )}
        </div>
      </section>
    </div>
  );
}

// A textarea holding a JSON value: the value is passed on while the text parses; otherwise the field says why.
import { useEffect, useId, useState } from 'react';

function show(value: unknown): string {
  return value === undefined ? '' : JSON.stringify(value, null, 2);
}

export function JsonField(props: {
  label: string;
  value: unknown;
  onChange: (value: unknown) => void;
  /** Empty text means "not set" (undefined) rather than an error. */
  optional?: boolean;
  rows?: number;
  hint?: string;
}) {
  const id = useId();
  const [text, setText] = useState(() => show(props.value));
  const [error, setError] = useState<string | null>(null);
  // The value changed from outside (a connection drawn on the canvas): show it, unless the text already means it.
  useEffect(() => {
    setText((current) => {
      try {
        if (current.trim() === '' ? props.value === undefined : show(JSON.parse(current)) === show(props.value))
          return current;
      } catch {
        // The text is being edited and does not parse: the new value replaces it.
      }
      setError(null);
      return show(props.value);
    });
  }, [props.value]);
  const edit = (next: string) => {
    setText(next);
    if (next.trim() === '' && props.optional === true) {
      setError(null);
      props.onChange(undefined);
      return;
    }
    try {
      const value = JSON.parse(next) as unknown;
      setError(null);
      props.onChange(value);
    } catch (err) {
      setError(`Not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <textarea
        id={id}
        className="code"
        rows={props.rows ?? 4}
        spellCheck={false}
        value={text}
        aria-invalid={error !== null}
        aria-describedby={`${id}-note`}
        onChange={(event) => edit(event.target.value)}
      />
      <span id={`${id}-note`} className={error === null ? 'muted' : 'error'}>
        {error ?? props.hint}
      </span>
    </div>
  );
}

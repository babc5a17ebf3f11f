// Dead letters: asynchronous invocations that failed for good, each with its attempts, and a redrive that queues the
// event again.
import { useState } from 'react';
import type { DeadLetterView } from '../api';
import { enc, request } from '../api';
import { useApi } from '../hooks';

export function DeadLetters(props: { name: string }) {
  const letters = useApi<{ deadLetters: DeadLetterView[] }>(`/v1/functions/${enc(props.name)}/dead-letters?limit=100`);
  const [message, setMessage] = useState<{ error: boolean; text: string } | null>(null);
  const redrive = async (letter: DeadLetterView) => {
    try {
      await request(`/v1/functions/${enc(props.name)}/dead-letters/${enc(letter.invocationId)}/redrive`, {
        method: 'POST',
      });
      setMessage({ error: false, text: `Redriven: ${letter.invocationId} is queued again.` });
      letters.reload();
    } catch (err) {
      setMessage({ error: true, text: err instanceof Error ? err.message : String(err) });
    }
  };
  return (
    <section aria-labelledby="dead-letters-title">
      <div className="title-row">
        <h2 id="dead-letters-title">Dead letters</h2>
        <button type="button" onClick={letters.reload}>
          Refresh
        </button>
      </div>
      <p className={message?.error === true ? 'error' : 'ok'} role="status">
        {message?.text}
      </p>
      {letters.error !== null && (
        <p className="error" role="alert">
          {letters.error}
        </p>
      )}
      {letters.data !== null && letters.data.deadLetters.length === 0 && (
        <p className="muted">No dead letters: every asynchronous invocation ended or is still trying.</p>
      )}
      {letters.data !== null && letters.data.deadLetters.length > 0 && (
        <table className="compact">
          <thead>
            <tr>
              <th scope="col">Invocation</th>
              <th scope="col">Dead since</th>
              <th scope="col">Attempts</th>
              <th scope="col">Reason</th>
              <th scope="col">Last error</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {letters.data.deadLetters.map((letter) => (
              <tr key={letter.invocationId}>
                <th scope="row">
                  <code>{letter.invocationId}</code>
                </th>
                <td>{letter.deadLetteredAt === null ? '–' : new Date(letter.deadLetteredAt).toLocaleString()}</td>
                <td>{letter.attempts.length}</td>
                <td>{letter.deadLetterReason ?? '–'}</td>
                <td>{letter.attempts[letter.attempts.length - 1]?.error ?? '–'}</td>
                <td>
                  <button
                    type="button"
                    onClick={() => void redrive(letter)}
                    aria-label={`Redrive ${letter.invocationId}`}
                  >
                    Redrive
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

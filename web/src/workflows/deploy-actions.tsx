import { useState } from 'react';
import { href } from '../hooks';
import type { WorkflowSpec } from './graph';
import { deploySpec, validateSpec } from './wf-api';

/** The line under the editor's buttons: what the last action said, and a link to what it deployed. */
export type Message = { kind: 'error' | 'ok'; text: string; link?: string } | null;

/** The message line, the busy flag and the Validate / Deploy actions the editor and the pipeline form share. */
export function useDeployActions() {
  const [message, setMessage] = useState<Message>(null);
  const [busy, setBusy] = useState(false);
  const callApi = async (what: 'validate' | 'deploy', name: string, spec: WorkflowSpec) => {
    if (name.trim() === '') {
      setMessage({ kind: 'error', text: 'Name the workflow first.' });
      return;
    }
    setBusy(true);
    try {
      if (what === 'validate') {
        const result = await validateSpec(name, spec);
        setMessage({ kind: 'ok', text: `Valid: ${result.nodeCount} nodes, in order ${result.order.join(' → ')}.` });
      } else {
        const result = await deploySpec(name, spec);
        setMessage({
          kind: 'ok',
          text: result.created
            ? `Deployed ${result.name} v${result.version}.`
            : `${result.name} v${result.version} is unchanged.`,
          link: href('workflows', result.name),
        });
      }
    } catch (err) {
      setMessage({ kind: 'error', text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(false);
    }
  };
  return { message, setMessage, busy, callApi };
}

/** The message line under the buttons: an alert for an error, a status otherwise, with a link to what was deployed. */
export function MessageLine({ message }: { message: Message }) {
  return (
    <p
      className={message?.kind === 'error' ? 'error' : 'ok'}
      role={message?.kind === 'error' ? 'alert' : 'status'}
      data-testid="editor-message"
    >
      {message?.text}
      {message?.link !== undefined && (
        <>
          {' '}
          <a href={message.link}>Open it</a>
        </>
      )}
    </p>
  );
}

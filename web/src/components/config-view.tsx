// A function's settings. Environment values are not shown, only their names: they may hold credentials.
import type { FunctionView } from '../api';

export function ConfigView(props: { fn: FunctionView }) {
  const c = props.fn.config;
  const rows: [string, string][] = [
    ['Handler', c.handler],
    ['Runtime', c.runtime],
    ['Memory', `${c.memoryMB} MB`],
    ['Timeout', `${c.timeoutSeconds} s`],
    ['Instances', `${c.minInstances} to ${c.maxInstances}`],
    ['Idle before stop', `${c.idleSeconds} s`],
    ['Network', c.network ? `on${c.allowNet.length > 0 ? ` (also ${c.allowNet.join(', ')})` : ''}` : 'off'],
    ['Environment', Object.keys(c.env).join(', ') || 'none'],
    [
      'Secrets',
      Object.entries(c.secrets)
        .map(([k, v]) => `${k} ← ${v}`)
        .join(', ') || 'none',
    ],
    ['Async retries', `${c.retries}, first after ${c.retryDelaySeconds} s, events up to ${c.maxEventAgeSeconds} s old`],
    ['On success', c.onSuccess ?? '–'],
    ['On failure', c.onFailure ?? 'dead letters'],
    ['Code', `${(props.fn.codeSizeBytes / 1024).toFixed(1)} KiB, sha256 ${props.fn.codeSha256.slice(0, 12)}…`],
    ['Updated', new Date(props.fn.updatedAt).toLocaleString()],
  ];
  return (
    <section aria-labelledby="config-title">
      <h2 id="config-title">Configuration</h2>
      <dl className="config">
        {rows.map(([term, value]) => (
          <div key={term}>
            <dt>{term}</dt>
            <dd>{value}</dd>
          </div>
        ))}
      </dl>
    </section>
  );
}

// The live log tail: `GET /v1/functions/{name}/logs/ws`, a WebSocket that sends each line as the Agent receives it.
// Browsers cannot set headers on a WebSocket, so the key travels as the subprotocol `bearer.KEY` beside
// `savassan.logs.v1`. A key a subprotocol cannot carry (characters outside an HTTP token) is sent instead as a
// header on the server-sent-events stream of the same lines (`logs?follow=1`), read with fetch.
import { useEffect, useRef, useState } from 'react';
import { currentKey, enc } from '../api';

export interface LogLine {
  functionName: string;
  invocationId: string | null;
  version: number | null;
  stream: 'stdout' | 'stderr';
  line: string;
  time: string;
}

/** Lines kept on screen: older ones scroll away. */
const maxLines = 1000;
const tokenPattern = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

type Status = { state: 'connecting' | 'live' | 'paused' } | { state: 'closed'; reason: string };

export function LogTail(props: { name: string; invocationId?: string }) {
  const [lines, setLines] = useState<(LogLine & { seq: number })[]>([]);
  const [status, setStatus] = useState<Status>({ state: 'connecting' });
  const [attempt, setAttempt] = useState(0);
  const [paused, setPaused] = useState(false);
  const pausedRef = useRef(false);
  pausedRef.current = paused;
  const seq = useRef(0);
  const list = useRef<HTMLOListElement>(null);

  useEffect(() => {
    let closed = false;
    setStatus({ state: 'connecting' });
    const add = (line: LogLine) => {
      if (pausedRef.current) return;
      const entry = { ...line, seq: seq.current++ };
      setLines((old) => (old.length >= maxLines ? [...old.slice(old.length - maxLines + 1), entry] : [...old, entry]));
    };
    const end = (reason: string) => {
      if (!closed) setStatus({ state: 'closed', reason });
    };
    const query = props.invocationId === undefined ? '' : `?invocationId=${enc(props.invocationId)}`;
    const key = currentKey();
    if (key !== null && !tokenPattern.test(key)) {
      const abort = new AbortController();
      void followSse(
        `/v1/functions/${enc(props.name)}/logs?follow=1${props.invocationId === undefined ? '' : `&invocationId=${enc(props.invocationId)}`}`,
        key,
        abort.signal,
        add,
        () => setStatus({ state: 'live' }),
        end,
      );
      return () => {
        closed = true;
        abort.abort();
      };
    }
    const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${scheme}//${window.location.host}/v1/functions/${enc(props.name)}/logs/ws${query}`;
    const socket = new WebSocket(url, key === null ? ['savassan.logs.v1'] : ['savassan.logs.v1', `bearer.${key}`]);
    socket.onopen = () => setStatus({ state: 'live' });
    socket.onmessage = (message) => {
      if (typeof message.data !== 'string') return;
      let frame: { type?: string } & Partial<LogLine> & { reason?: string; missed?: number };
      try {
        frame = JSON.parse(message.data) as typeof frame;
      } catch {
        return;
      }
      if (frame.type === 'line' && typeof frame.line === 'string') add(frame as LogLine);
      else if (frame.type === 'dropped')
        end(`the tail fell behind and was dropped (${frame.missed ?? '?'} lines missed): ${frame.reason ?? ''}`);
    };
    socket.onerror = () => end('the connection failed (is the function there, and the key valid?)');
    socket.onclose = (close) => end(close.reason === '' ? `closed (${close.code})` : close.reason);
    return () => {
      closed = true;
      socket.close(1000, 'left the page');
    };
  }, [props.name, props.invocationId, attempt]);

  // Follow the newest line unless the reader scrolled up.
  useEffect(() => {
    const element = list.current;
    if (element === null) return;
    if (element.scrollHeight - element.scrollTop - element.clientHeight < 80) element.scrollTop = element.scrollHeight;
  }, [lines]);

  return (
    <section aria-labelledby="logs-title" className="logs">
      <div className="title-row">
        <h2 id="logs-title">Live logs</h2>
        <span
          className={`badge badge-${status.state === 'live' ? 'active' : status.state === 'closed' ? 'errors' : 'idle'}`}
          role="status"
        >
          {paused ? 'paused' : status.state}
        </span>
        <button type="button" onClick={() => setPaused((p) => !p)} aria-pressed={paused}>
          {paused ? 'Resume' : 'Pause'}
        </button>
        <button type="button" onClick={() => setLines([])}>
          Clear
        </button>
        {status.state === 'closed' && (
          <button type="button" onClick={() => setAttempt((n) => n + 1)}>
            Reconnect
          </button>
        )}
      </div>
      {status.state === 'closed' && <p className="warning">{status.reason}</p>}
      <ol
        ref={list}
        className="log-lines"
        role="log"
        aria-live="polite"
        aria-label={`Log lines of ${props.name}`}
        tabIndex={0}
      >
        {lines.length === 0 && (
          <li className="muted">Waiting for lines… invoke the function to see its output here.</li>
        )}
        {lines.map((line) => (
          <li key={line.seq} className={line.stream === 'stderr' ? 'stderr' : undefined}>
            <time dateTime={line.time}>{line.time.slice(11, 23)}</time>
            <span className="muted">{line.version === null ? '' : `v${line.version}`}</span>
            <span className="log-text">{line.line}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}

/** Reads the server-sent events of `path` (its `line` events) with the key as a header. */
async function followSse(
  path: string,
  key: string,
  signal: AbortSignal,
  add: (line: LogLine) => void,
  open: () => void,
  end: (reason: string) => void,
): Promise<void> {
  try {
    const response = await fetch(path, {
      headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
      signal,
    });
    if (!response.ok || response.body === null) {
      end(`the log stream answered ${response.status}`);
      return;
    }
    open();
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let split;
      while ((split = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, split);
        buffer = buffer.slice(split + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (event === 'line') {
          try {
            add(JSON.parse(data) as LogLine);
          } catch {
            // A malformed event is skipped.
          }
        } else if (event === 'dropped') end('the tail fell behind and was dropped');
      }
      // A peer that never ends an event must not grow the buffer without bound.
      if (buffer.length > 1024 * 1024) buffer = '';
    }
    end('the stream ended');
  } catch (err) {
    if (!signal.aborted) end(err instanceof Error ? err.message : String(err));
  }
}

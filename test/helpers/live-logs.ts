import { WebSocket } from 'ws';
import type { ClientOptions } from 'ws';
import type { LiveLogLine } from '../../src/gateway/live-logs.js';

/** A `line` frame of the WebSocket route: the hub's line, typed. */
export type LineFrame = { type: 'line' } & LiveLogLine;

export interface DroppedFrame {
  type: 'dropped';
  reason: string;
  missed: number;
}

export type LogFrame = LineFrame | DroppedFrame;

/** A WebSocket on `logs/ws`, keeping every frame it got. */
export interface LogSocket {
  ws: WebSocket;
  frames: LogFrame[];
  lines: () => LineFrame[];
  /** Resolves with the frames so far once `ok` holds for them; rejects if the socket closes first. */
  until(ok: (frames: LogFrame[]) => boolean): Promise<LogFrame[]>;
  /** Resolves with the close code. */
  closed: Promise<number>;
  close(): Promise<void>;
}

/** Opens `logs/ws` of `name` on the server at `url`; resolves once open (the server follows the Agents by then). */
export function openLogSocket(
  url: string,
  name: string,
  options: { invocationId?: string; protocols?: string[]; ws?: ClientOptions } = {},
): Promise<LogSocket> {
  const query = options.invocationId === undefined ? '' : `?invocationId=${options.invocationId}`;
  const target = `${url.replace(/^http/, 'ws')}/v1/functions/${encodeURIComponent(name)}/logs/ws${query}`;
  const ws = new WebSocket(target, options.protocols ?? [], options.ws);
  const frames: LogFrame[] = [];
  const waiters = new Set<() => void>();
  let closeCode: number | null = null;
  ws.on('message', (data: Buffer) => {
    frames.push(JSON.parse(data.toString('utf8')) as LogFrame);
    for (const waiter of [...waiters]) waiter();
  });
  const closed = new Promise<number>((resolve) =>
    ws.once('close', (code) => {
      closeCode = code;
      resolve(code);
      for (const waiter of [...waiters]) waiter();
    }),
  );
  const socket: LogSocket = {
    ws,
    frames,
    lines: () => frames.filter((f): f is LineFrame => f.type === 'line'),
    closed,
    until: (ok) =>
      new Promise((resolve, reject) => {
        const check = (): void => {
          if (ok(frames)) {
            waiters.delete(check);
            resolve(frames);
          } else if (closeCode !== null) {
            waiters.delete(check);
            reject(new Error(`the socket closed (${closeCode}) first; frames: ${JSON.stringify(frames.slice(-5))}`));
          }
        };
        waiters.add(check);
        check();
      }),
    close: async () => {
      if (ws.readyState === ws.OPEN || ws.readyState === ws.CONNECTING) ws.close();
      await closed;
    },
  };
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(socket));
    ws.once('error', reject);
  });
}

/** What the server answered to an upgrade it refused (status and error code), once it closed the connection. */
export function refusedUpgrade(
  url: string,
  path: string,
  options: { protocols?: string[]; headers?: Record<string, string> } = {},
): Promise<{ status: number; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, options.protocols ?? [], {
      headers: options.headers,
    });
    ws.once('open', () => {
      ws.close();
      reject(new Error('the upgrade was accepted'));
    });
    ws.once('error', () => {});
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      // Resolves once the server closed the connection too: a refused upgrade must not leave it open.
      const socketClosed = new Promise((closed) => res.socket.once('close', closed));
      res.on('end', () => {
        void socketClosed.then(() => {
          let code: string | undefined;
          try {
            code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
          } catch {
            code = undefined;
          }
          resolve({ status: res.statusCode ?? 0, code });
        });
      });
    });
  });
}

/** Numbers of the lines `tag N` among `lines`, in the order they came. */
export function lineNumbers(lines: LineFrame[], tag: string): number[] {
  return lines.flatMap((f) => {
    const match = new RegExp(`^${tag} (\\d+)`).exec(f.line);
    return match === null ? [] : [Number(match[1])];
  });
}

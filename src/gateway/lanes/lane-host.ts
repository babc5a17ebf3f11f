// The main event loop's side of the lanes (lane-worker.ts): starts them on the gateway's listening socket, runs the
// invocations they pass on with the gateway's own invoker (so the node's pool, with its guarantees, stays in one
// place: one invocation per instance, FIFO waiters, max instances), and gives them the API over a private socket.
import { mkdtemp, rm } from 'node:fs/promises';
import type { Server as HttpServer } from 'node:http';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { PlatformError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { startModuleWorker } from '../../core/module-worker.js';
import type { AnswerInvoke } from '../http/invoke-route.js';
import type { CallerGone } from '../invoker.js';
import type { HostMessage, LaneMessage, LaneSettings } from './lane-protocol.js';

/**
 * Event loops serving the HTTP port by default: one below 8 cores, then a quarter of the cores, at most 16. A lane
 * takes a request's HTTP work off the main loop but adds a hop between threads to its invocation (the main loop
 * still runs the pool and the sandbox's I/O), so lanes pay only where many concurrent clients keep the main loop busy
 * and there are cores to spare beside the sandboxes.
 */
export function defaultEventLoops(cores: number = availableParallelism()): number {
  return cores < 8 ? 1 : Math.min(16, Math.floor(cores / 4));
}

/** Most event loops a gateway takes (`--event-loops`). */
export const maxEventLoops = 64;

export interface LaneHostOptions {
  /** Extra event loops to start (the main loop is not counted). */
  lanes: number;
  /** The gateway's HTTP server, listening. */
  server: HttpServer;
  answerInvoke: AnswerInvoke;
  ready: boolean;
  apiKeys: readonly string[];
  /** See `LaneSettings.urlDomain`. */
  urlDomain?: string | undefined;
  requestTimeoutMs: number;
  logger: Logger;
}

export interface LaneHost {
  /** Event loops serving the port, the main one included. */
  readonly eventLoops: number;
  /** Invocations each lane passed on, by lane number (index 0, the main loop, stays 0). */
  invocations(): readonly number[];
  /** Tell the lanes whether the gateway takes invocations (false while draining: each answer closes its connection). */
  setReady(ready: boolean): void;
  /** Stop the lanes: they stop accepting, finish what is in flight (run by the main loop), and exit. Idempotent. */
  close(): Promise<void>;
}

/** The caller of an invocation a lane passed on, gone when the lane says so. */
class LaneCaller implements CallerGone {
  aborted = false;
  #listeners: (() => void)[] = [];

  addEventListener(_type: 'abort', listener: () => void): void {
    this.#listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    this.#listeners = this.#listeners.filter((l) => l !== listener);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    for (const listener of this.#listeners.splice(0)) listener();
  }
}

/** One lane: its worker thread and the invocations it passed on that are still running. */
class Lane {
  readonly callers = new Map<number, LaneCaller>();
  /** Headers asked of the lane for its invocations (a sticky alias), by invocation id. */
  readonly headers = new Map<number, (value: string | undefined) => void>();
  closed: Promise<void> | null = null;
  exited = false;

  constructor(
    readonly number: number,
    readonly worker: Worker,
  ) {}

  post(message: HostMessage): void {
    this.worker.postMessage(message);
  }
}

/**
 * Starts `options.lanes` lanes on the listening socket of `options.server`. Throws `UNAVAILABLE` when one cannot
 * start (the lanes started are stopped first).
 */
/** The connections the lanes pass requests on: what they say of their clients (their address) is trusted. */
export const laneSockets = new WeakSet<Socket>();

export async function startLanes(options: LaneHostOptions): Promise<LaneHost> {
  const { server, logger } = options;
  const listenFd = (server as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof listenFd !== 'number' || listenFd < 0) {
    throw new PlatformError('INVALID_CONFIG', 'more than one event loop needs a listening TCP socket');
  }
  // The API for the lanes: a Unix socket in a directory only this user can enter, fed to the main loop's server.
  const socketDir = await mkdtemp(join(tmpdir(), 'savassan-lanes-'));
  const apiSocket = join(socketDir, 'api.sock');
  const api: NetServer = createServer((socket) => {
    laneSockets.add(socket);
    server.emit('connection', socket);
  });
  await new Promise<void>((resolve, reject) => {
    api.once('error', reject);
    api.listen(apiSocket, () => resolve());
  });
  let ready = options.ready;
  let closing = false;
  const invocations = new Array<number>(options.lanes + 1).fill(0);
  const lanes: Lane[] = [];

  const onMessage = (lane: Lane, message: LaneMessage): void => {
    switch (message.kind) {
      case 'invoke': {
        invocations[lane.number] = (invocations[lane.number] ?? 0) + 1;
        const caller = new LaneCaller();
        lane.callers.set(message.id, caller);
        const { id } = message;
        const header = (name: string): Promise<string | undefined> =>
          new Promise((resolve) => {
            if (lane.exited) return resolve(undefined);
            lane.headers.set(id, resolve);
            lane.post({ kind: 'header', id, name });
          });
        void options
          .answerInvoke(message.name, message.event, caller, message.url, { qualifier: message.qualifier, header })
          .then((answer) => {
            lane.callers.delete(id);
            lane.post({ kind: 'answer', id, ...answer });
          });
        return;
      }
      case 'gone':
        lane.callers.get(message.id)?.abort();
        return;
      case 'header':
        lane.headers.get(message.id)?.(message.value);
        lane.headers.delete(message.id);
        return;
      case 'failed':
        logger.error({ lane: lane.number, reason: message.message }, 'an event loop of the gateway failed');
        return;
      case 'listening':
      case 'closed':
        return;
    }
  };

  const startLane = (number: number): Promise<Lane> => {
    const settings: LaneSettings = {
      lane: number,
      listenFd,
      apiSocket,
      apiKeys: options.apiKeys,
      urlDomain: options.urlDomain,
      requestTimeoutMs: options.requestTimeoutMs,
      ready,
    };
    const lane = new Lane(number, startModuleWorker(import.meta.url, 'lane-worker', { workerData: settings }));
    return new Promise<Lane>((resolve, reject) => {
      let started = false;
      lane.worker.on('message', (message: LaneMessage) => {
        if (!started && message.kind === 'listening') {
          started = true;
          resolve(lane);
        } else if (!started && message.kind === 'failed') {
          reject(new Error(message.message));
        } else {
          onMessage(lane, message);
        }
      });
      lane.worker.on('error', (err) => {
        if (!started) reject(err);
        else logger.error({ err, lane: number }, 'an event loop of the gateway failed');
      });
      lane.worker.on('exit', (code) => {
        lane.exited = true;
        // Its clients are gone with it: stop waiting for instances on their behalf.
        for (const caller of lane.callers.values()) caller.abort();
        for (const answer of lane.headers.values()) answer(undefined);
        lane.headers.clear();
        if (!started) reject(new Error(`the event loop exited with code ${code} while starting`));
        else if (!closing) {
          logger.error({ lane: number, code }, 'an event loop of the gateway exited; starting it again');
          const index = lanes.indexOf(lane);
          void startLane(number).then(
            (again) => {
              if (closing) void again.worker.terminate();
              else lanes[index] = again;
            },
            (err: unknown) => logger.error({ err, lane: number }, 'an event loop of the gateway could not restart'),
          );
        }
      });
    });
  };

  const closeLane = (lane: Lane): Promise<void> =>
    (lane.closed ??= new Promise<void>((resolve) => {
      if (lane.exited) {
        resolve();
        return;
      }
      lane.worker.on('message', (message: LaneMessage) => {
        if (message.kind === 'closed') resolve();
      });
      lane.worker.once('exit', () => resolve());
      lane.post({ kind: 'close' });
    }).then(() => lane.worker.terminate().then(() => undefined)));

  const stopAll = async (): Promise<void> => {
    closing = true;
    await Promise.all(lanes.map(closeLane));
    await new Promise<void>((resolve) => api.close(() => resolve()));
    await rm(socketDir, { recursive: true, force: true });
  };

  const started = await Promise.allSettled(Array.from({ length: options.lanes }, (_, i) => startLane(i + 1)));
  for (const result of started) if (result.status === 'fulfilled') lanes.push(result.value);
  const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failed !== undefined) {
    await stopAll();
    throw new PlatformError('UNAVAILABLE', `an event loop of the gateway could not start: ${String(failed.reason)}`, {
      cause: failed.reason,
    });
  }

  let closed: Promise<void> | undefined;
  return {
    eventLoops: lanes.length + 1,
    invocations: () => invocations,
    setReady(value) {
      ready = value;
      for (const lane of lanes) lane.post({ kind: 'ready', ready: value });
    },
    close() {
      closed ??= stopAll();
      return closed;
    },
  };
}

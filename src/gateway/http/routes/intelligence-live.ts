// `GET /v1/intelligence/runs/{id}/ws`: a fine-tune run live, over a WebSocket. The server reads the run every
// `pollMs` and sends `{type:'run', run}` whenever its view changed (the first frame is the view as it is), and
// `{type:'log', line}` for each line its trainer function writes; once the run has ended it sends the final view and
// closes (1000). Authenticated as `logs/ws`: `Authorization: Bearer KEY`, or for browsers the subprotocols
// `['savassan.runs.v1', 'bearer.' + KEY]`; never a key in the query string.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import type { WebSocket } from 'ws';
import { PlatformError } from '../../../core/errors.js';
import type { Logger } from '../../../core/logger.js';
import { silentLogger } from '../../../core/logger.js';
import type { RunService, RunStatus, RunView } from '../../../intelligence/services.js';
import type { LiveLogHub, LiveLogLine } from '../../live-logs.js';
import { errorResponse } from '../schemas.js';
import { droppedCloseCode, isLoopbackOrigin } from './live-logs.js';

/** The states a run never leaves: the socket closes after the view that shows one. */
export const terminalRunStatuses: ReadonlySet<RunStatus> = new Set(['SUCCEEDED', 'FAILED', 'ABORTED']);

/** The function a run trains with, when its execution does not name one. */
export const defaultTrainer = 'fine-tune-trainer';

/** A frame of the run socket. */
export type RunFrame =
  | { type: 'run'; run: RunView }
  | { type: 'log'; line: LiveLogLine }
  | { type: 'dropped'; reason: string; missed: number };

export const RunIdParams = Type.Object({ id: Type.String({ pattern: '^run-[a-z2-7]{26}$' }) });

export interface IntelligenceLiveRoutesOptions {
  runs: RunService;
  hub: LiveLogHub;
  /** The function that trains `run` (its execution's `trainer` input); default `fine-tune-trainer`. */
  trainerOf?: ((run: RunView) => Promise<string | null>) | undefined;
  /** How often a run is read for changes (default 300 ms). */
  pollMs?: number | undefined;
  /** The gateway takes no API key: only pages served from this machine may open the socket (as `logs/ws`). */
  keyless?: boolean | undefined;
  logger?: Logger | undefined;
}

export function intelligenceLiveRoutes(options: IntelligenceLiveRoutesOptions): FastifyPluginAsync {
  const { runs, hub } = options;
  const pollMs = options.pollMs ?? 300;
  const logger = options.logger ?? silentLogger;
  return (plugin) => {
    const scope = plugin.withTypeProvider<TypeBoxTypeProvider>();
    scope.route({
      method: 'GET',
      url: '/v1/intelligence/runs/:id/ws',
      schema: {
        summary:
          "A fine-tune run live, over a WebSocket: `{type:'run', run}` (the run view) whenever it changes, " +
          "`{type:'log', line}` for each line of its trainer function; after the view of an ended run the socket " +
          'closes (1000). Browsers authenticate with the subprotocols `savassan.runs.v1` and `bearer.KEY`',
        params: RunIdParams,
        response: {
          101: Type.Null({ description: 'Switching to the WebSocket protocol' }),
          400: errorResponse('BAD_REQUEST: not a WebSocket upgrade, or not a run id'),
          401: errorResponse(
            'UNAUTHORIZED: no valid API key, or (on a gateway without keys) a web page of another machine asking',
          ),
          404: errorResponse('NOT_FOUND: no run of that id'),
          429: errorResponse('TOO_MANY_REQUESTS: as many clients as the gateway takes follow logs; retry later'),
        },
      },
      // Before the upgrade: an unknown run is a 404 answer, and the Agents are followed once the socket opens.
      preHandler: async (request) => {
        const origin = request.headers.origin;
        if (options.keyless === true && origin !== undefined && !isLoopbackOrigin(origin)) {
          throw new PlatformError(
            'UNAUTHORIZED',
            'this gateway takes no API key: a WebSocket from a web page may only come from a page on this machine',
          );
        }
        const run = await runs.get(request.params.id);
        if (run === null) throw new PlatformError('NOT_FOUND', `run ${request.params.id} not found`);
        hub.assertRoom();
        await hub.ready();
      },
      handler: () => {
        throw new PlatformError('BAD_REQUEST', 'this route takes a WebSocket upgrade (GET with Upgrade: websocket)');
      },
      wsHandler: (socket: WebSocket, request) => {
        followRun(socket, request.params.id, { ...options, pollMs, logger });
      },
    });
    return Promise.resolve();
  };
}

function followRun(
  socket: WebSocket,
  id: string,
  options: IntelligenceLiveRoutesOptions & { pollMs: number; logger: Logger },
): void {
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let subscription: { close(): void } | null = null;
  let last = '';
  const send = (frame: RunFrame | string, written?: () => void): void => {
    if (closed || socket.readyState !== socket.OPEN) {
      written?.();
      return;
    }
    socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame), () => written?.());
  };
  const finish = (code: number, reason: string): void => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    subscription?.close();
    if (socket.readyState === socket.OPEN) socket.close(code, reason);
  };
  socket.on('close', () => {
    closed = true;
    clearTimeout(timer);
    subscription?.close();
  });
  // Frames from the client carry nothing.
  socket.on('message', () => {});

  const follow = async (run: RunView): Promise<void> => {
    const trainer = (await options.trainerOf?.(run).catch(() => null)) ?? defaultTrainer;
    if (closed) return;
    subscription = options.hub.subscribe({
      functionName: trainer,
      format: (line) => JSON.stringify({ type: 'log', line } satisfies RunFrame),
      sink: {
        write: (frame, written) => send(frame, written),
        drop: (notice) => {
          send(notice);
          finish(droppedCloseCode, 'the client did not keep up');
        },
        end: () => finish(1001, 'the server is closing'),
      },
    });
  };

  const poll = async (): Promise<void> => {
    let run: RunView | null;
    try {
      run = await options.runs.get(id);
    } catch (err) {
      // A store that does not answer now may answer at the next read: the socket stays open.
      options.logger.warn({ err, runId: id }, 'reading a run for its live view failed');
      if (!closed) timer = setTimeout(() => void poll(), options.pollMs);
      return;
    }
    if (closed) return;
    if (run === null) {
      finish(1011, `run ${id} is gone`);
      return;
    }
    const text = JSON.stringify(run);
    if (text !== last) {
      last = text;
      send({ type: 'run', run });
    }
    if (subscription === null && !terminalRunStatuses.has(run.status)) await follow(run);
    if (terminalRunStatuses.has(run.status)) {
      finish(1000, `the run ended: ${run.status}`);
      return;
    }
    if (!closed) timer = setTimeout(() => void poll(), options.pollMs);
  };
  void poll();
}

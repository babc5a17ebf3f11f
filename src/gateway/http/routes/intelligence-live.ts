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
import { defaultTrainer } from '../../../intelligence/fine-tune-tasks.js';
import { terminalRunStatuses } from '../../../intelligence/services.js';
import type { RunService, RunView } from '../../../intelligence/services.js';
import type { LiveLogHub, LiveLogLine } from '../../live-logs.js';
import { errorResponse } from '../schemas.js';
import { droppedCloseCode, notAnUpgrade, refuseForeignPage } from './live-logs.js';

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
  /** How often a run is read for changes (default 300 ms), once for all the sockets following it. */
  pollMs?: number | undefined;
  /** Sockets one run may have open at once (default 20); more are refused with 429. */
  maxSocketsPerRun?: number | undefined;
  /** The gateway takes no API key: only pages served from this machine may open the socket (as `logs/ws`). */
  keyless?: boolean | undefined;
  logger?: Logger | undefined;
}

export function intelligenceLiveRoutes(options: IntelligenceLiveRoutesOptions): FastifyPluginAsync {
  const { runs, hub } = options;
  const pollMs = options.pollMs ?? 300;
  const logger = options.logger ?? silentLogger;
  const watches = new RunWatches(runs, pollMs, options.maxSocketsPerRun ?? 20, logger);
  return (plugin) => {
    plugin.addHook('onClose', () => watches.close());
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
          429: errorResponse(
            'TOO_MANY_REQUESTS: as many clients as the gateway takes follow logs, or this run has as many sockets as it takes; retry later',
          ),
        },
      },
      // Before the upgrade: an unknown run is a 404 answer, and the Agents are followed once the socket opens.
      preHandler: async (request) => {
        refuseForeignPage(options.keyless, request.headers.origin);
        const run = await runs.get(request.params.id);
        if (run === null) throw new PlatformError('NOT_FOUND', `run ${request.params.id} not found`);
        watches.assertRoom(request.params.id);
        hub.assertRoom();
        await hub.ready();
      },
      handler: notAnUpgrade,
      wsHandler: (socket: WebSocket, request) => {
        followRun(socket, request.params.id, watches, { ...options, logger });
      },
    });
    return Promise.resolve();
  };
}

/** A run's view as read, or the read's failure (the socket stays open: the next read may answer). */
type RunRead = { run: RunView | null } | { error: unknown };

/**
 * One reader per followed run: every `pollMs` the run is read once, whatever the number of sockets following it, and
 * each read goes to all of them; the reader stops when the last socket leaves.
 */
class RunWatches {
  readonly #watches = new Map<string, { listeners: Set<(read: RunRead) => void>; timer: NodeJS.Timeout | null }>();

  constructor(
    private readonly runs: RunService,
    private readonly pollMs: number,
    private readonly maxPerRun: number,
    private readonly logger: Logger,
  ) {}

  /** TOO_MANY_REQUESTS when the run has as many sockets as it takes. */
  assertRoom(id: string): void {
    if ((this.#watches.get(id)?.listeners.size ?? 0) >= this.maxPerRun) {
      throw new PlatformError('TOO_MANY_REQUESTS', `run ${id} has ${this.maxPerRun} sockets open; retry later`);
    }
  }

  /** Reads reach `listener` (the first at once) until the returned function is called. */
  watch(id: string, listener: (read: RunRead) => void): () => void {
    let watch = this.#watches.get(id);
    if (watch === undefined) {
      watch = { listeners: new Set(), timer: null };
      this.#watches.set(id, watch);
      const current = watch;
      const read = async (): Promise<void> => {
        let result: RunRead;
        try {
          result = { run: await this.runs.get(id) };
        } catch (err) {
          this.logger.warn({ err, runId: id }, 'reading a run for its live view failed');
          result = { error: err };
        }
        for (const each of [...current.listeners]) {
          try {
            each(result);
          } catch (err) {
            this.logger.warn({ err, runId: id }, 'a run socket failed to take a view');
          }
        }
        if (this.#watches.get(id) === current && current.listeners.size > 0) {
          current.timer = setTimeout(() => void read(), this.pollMs);
        }
      };
      watch.listeners.add(listener);
      void read();
    } else {
      watch.listeners.add(listener);
    }
    const joined = watch;
    return () => {
      joined.listeners.delete(listener);
      if (joined.listeners.size === 0 && this.#watches.get(id) === joined) {
        if (joined.timer !== null) clearTimeout(joined.timer);
        this.#watches.delete(id);
      }
    };
  }

  close(): void {
    for (const watch of this.#watches.values()) if (watch.timer !== null) clearTimeout(watch.timer);
    this.#watches.clear();
  }
}

function followRun(
  socket: WebSocket,
  id: string,
  watches: RunWatches,
  options: IntelligenceLiveRoutesOptions & { logger: Logger },
): void {
  let closed = false;
  let subscription: { close(): void } | null = null;
  let unwatch: (() => void) | null = null;
  let last = '';
  const send = (frame: RunFrame | string, written?: () => void): void => {
    if (closed || socket.readyState !== socket.OPEN) {
      written?.();
      return;
    }
    socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame), () => written?.());
  };
  const stop = (): void => {
    closed = true;
    unwatch?.();
    subscription?.close();
  };
  const finish = (code: number, reason: string): void => {
    if (closed) return;
    stop();
    if (socket.readyState === socket.OPEN) socket.close(code, reason);
  };
  socket.on('close', stop);
  // Frames from the client carry nothing.
  socket.on('message', () => {});

  const follow = async (run: RunView): Promise<void> => {
    const trainer = (await options.trainerOf?.(run).catch(() => null)) ?? defaultTrainer;
    if (closed || subscription !== null) return;
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

  unwatch = watches.watch(id, (read) => {
    if (closed || 'error' in read) return;
    const { run } = read;
    if (run === null) {
      finish(1011, `run ${id} is gone`);
      return;
    }
    const text = JSON.stringify(run);
    if (text !== last) {
      last = text;
      send({ type: 'run', run });
    }
    if (terminalRunStatuses.has(run.status)) {
      finish(1000, `the run ended: ${run.status}`);
      return;
    }
    if (subscription === null) {
      follow(run).catch((err: unknown) => options.logger.warn({ err, runId: id }, 'following a trainer failed'));
    }
  });
  if (closed) unwatch();
}

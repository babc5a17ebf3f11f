// `GET /v1/functions/{name}/logs/ws`: a function's output, line by line as its sandboxes write it, over a
// WebSocket. Authenticated as every /v1 route (`Authorization: Bearer KEY`), or, for browsers, which cannot set
// headers on a WebSocket, by the subprotocol list `['savassan.logs.v1', 'bearer.' + KEY]`.
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { FastifyPluginAsync } from 'fastify';
import { Type } from 'typebox';
import type { WebSocket } from 'ws';
import { PlatformError } from '../../../core/errors.js';
import type { MetadataStore } from '../../../core/ports/metadata-store.js';
import type { LiveLogHub, LiveLogLine } from '../../live-logs.js';
import { isLoopbackHost } from '../api-keys.js';
import { FunctionNameParams, errorResponse, invocationIdPattern } from '../schemas.js';

export const LiveLogsQuery = Type.Object(
  {
    invocationId: Type.Optional(
      Type.String({ pattern: invocationIdPattern, description: "Only this invocation's lines" }),
    ),
  },
  { additionalProperties: false },
);

/** The close code of a client dropped for falling behind ("try again later"). */
export const droppedCloseCode = 1013;

/** A line as the WebSocket sends it. */
export function lineFrame(line: LiveLogLine): string {
  return JSON.stringify({ type: 'line', ...line });
}

export interface LiveLogRoutesOptions {
  hub: LiveLogHub;
  metadata: MetadataStore;
  /**
   * The gateway takes no API key (it listens on loopback only). A web page of any site can open a WebSocket to
   * localhost, with no key to stop it and no CORS check on what it reads: then only pages served from this machine
   * (an `Origin` on a loopback host) or clients that send no `Origin` (not browsers) may follow logs.
   */
  keyless?: boolean | undefined;
}

/** Whether `origin` (an `Origin` header) names a page served from this machine. */
/**
 * On a gateway without API keys, a WebSocket from a web page may only come from a page on this machine (a browser
 * sends Origin; other clients need not): UNAUTHORIZED otherwise.
 */
export function refuseForeignPage(keyless: boolean | undefined, origin: string | undefined): void {
  if (keyless === true && origin !== undefined && !isLoopbackOrigin(origin)) {
    throw new PlatformError(
      'UNAUTHORIZED',
      'this gateway takes no API key: a WebSocket from a web page may only come from a page on this machine',
    );
  }
}

/** The plain-HTTP handler of a WebSocket route. */
export function notAnUpgrade(): never {
  throw new PlatformError('BAD_REQUEST', 'this route takes a WebSocket upgrade (GET with Upgrade: websocket)');
}

export function isLoopbackOrigin(origin: string): boolean {
  try {
    return isLoopbackHost(new URL(origin).hostname);
  } catch {
    return false; // "null" (a sandboxed frame, a file), or not a URL
  }
}

export function liveLogRoutes(options: LiveLogRoutesOptions): FastifyPluginAsync {
  const { hub, metadata } = options;
  // The WebSocket support is registered once, for every route, by the server (`websocketSupport`).
  return (plugin) => {
    const scope = plugin.withTypeProvider<TypeBoxTypeProvider>();
    scope.route({
      method: 'GET',
      url: '/v1/functions/:name/logs/ws',
      schema: {
        summary:
          "A function's output live, over a WebSocket: text frames `{type:'line', functionName, invocationId, " +
          "version, stream, line, time}`; a client that falls behind gets `{type:'dropped', reason, missed}` and " +
          'the socket closes (1013). Browsers authenticate with the subprotocols `savassan.logs.v1` and `bearer.KEY`',
        params: FunctionNameParams,
        querystring: LiveLogsQuery,
        response: {
          101: Type.Null({ description: 'Switching to the WebSocket protocol' }),
          401: errorResponse(
            'UNAUTHORIZED: no valid API key, or (on a gateway without keys) a web page of another machine asking',
          ),
          400: errorResponse('BAD_REQUEST: not a WebSocket upgrade, an unknown query parameter or a bad invocationId'),
          404: errorResponse('NOT_FOUND: no function of that name'),
          429: errorResponse('TOO_MANY_REQUESTS: as many clients as the gateway takes follow logs; retry later'),
        },
      },
      // Before the upgrade: an unknown function is a 404 answer, and the Agents are followed once the socket opens.
      preHandler: async (request) => {
        refuseForeignPage(options.keyless, request.headers.origin);
        const fn = await metadata.getFunction(request.params.name);
        if (fn === null) throw new PlatformError('NOT_FOUND', `function ${request.params.name} not found`);
        hub.assertRoom();
        await hub.ready();
      },
      handler: notAnUpgrade,
      wsHandler: (socket: WebSocket, request) => {
        const subscription = hub.subscribe({
          functionName: request.params.name,
          invocationId: request.query.invocationId,
          format: lineFrame,
          sink: {
            write: (frame, written) => {
              if (socket.readyState !== socket.OPEN) return written();
              socket.send(frame, () => written());
            },
            drop: (notice) => {
              if (socket.readyState !== socket.OPEN) return;
              socket.send(JSON.stringify(notice));
              socket.close(droppedCloseCode, 'the client did not keep up');
            },
            end: () => socket.close(1001, 'the server is closing'),
          },
        });
        socket.on('close', () => subscription.close());
        // Frames from the client carry nothing.
        socket.on('message', () => {});
      },
    });
    return Promise.resolve();
  };
}

// The `node:http` server under the gateway's API, shared by the event loop that runs Fastify and by the extra event
// loops (lanes) that serve invocations on the same listening socket: the same timeouts and the same answers to
// requests that never reach a route, whichever loop accepted the connection.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { PlatformError } from '../../core/errors.js';
import { errorAnswer } from './invoke-route.js';

export const defaultRequestTimeoutMs = 60_000;

/**
 * Answers a request that did not arrive in time (408) or could not be parsed (400) on the raw socket, in the API's
 * error format: Node calls this before any route sees the request.
 */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, reason, error] =
    err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
      ? [408, 'Request Timeout', new PlatformError('REQUEST_TIMEOUT', 'the request was not received in full in time')]
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? [
            431,
            'Request Header Fields Too Large',
            new PlatformError('BAD_REQUEST', 'the request headers are too large'),
          ]
        : [400, 'Bad Request', new PlatformError('BAD_REQUEST', 'the request is not valid HTTP')];
  const { body } = errorAnswer(error);
  // As Node's own handler: no answer on a connection whose response has begun (the route answered early, 413).
  const started = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent === true;
  if (socket.writable && !started) {
    socket.write(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * An HTTP server with the gateway's timeouts: a client has `requestTimeoutMs` to send a whole request, headers and
 * body, then gets 408 and its connection is closed; once a request has arrived in full, answering it may take as
 * long as its function's timeout. Idle keep-alive connections are kept 72 s (longer than common load balancers').
 * The caller attaches `clientErrorHandler` (Fastify does it for the server it is given).
 */
export function createGatewayHttpServer(
  requestTimeoutMs: number,
  listener: (req: IncomingMessage, res: ServerResponse) => void,
): Server {
  const server = createServer(
    {
      requestTimeout: requestTimeoutMs,
      headersTimeout: Math.min(requestTimeoutMs, 60_000),
      // How often Node looks for requests past their timeout (its default is 30 s).
      connectionsCheckingInterval: Math.min(1000, requestTimeoutMs),
    },
    listener,
  );
  server.keepAliveTimeout = 72_000;
  server.setTimeout(0);
  return server;
}

// A lane: one more event loop serving the gateway's HTTP port, in a worker thread. It accepts connections on its own
// duplicate of the listening socket (the kernel hands each new connection to one of the loops waiting on it) and
// answers plain invocations through the same fast path as the main loop, whose invoker, pool and sandboxes it asks
// over a message port: the HTTP work (parsing, the event's validation, writing the answer) is done here, in parallel
// with the other loops. Every other request is passed as it is to the main loop's Fastify over a private Unix
// socket, so the API is the same whichever loop accepted a connection.
import { spawn } from 'node:child_process';
import { Agent, request, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type Server as NetServer } from 'node:net';
import type { Duplex } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { PlatformError } from '../../core/errors.js';
import type { CallerGone, InvokeRoute } from '../invoker.js';
import { functionUrlHost } from '../function-url-event.js';
import { apiKeyCheck } from '../http/api-keys.js';
import { errorAnswer, invokeFastPath, type Answer } from '../http/invoke-route.js';
import { clientErrorHandler, createGatewayHttpServer } from '../http/node-server.js';
import { clientAddressHeader } from './lane-protocol.js';
import type { HostMessage, LaneMessage, LaneSettings } from './lane-protocol.js';

const port = parentPort;
if (port === null) throw new Error('lane-worker runs as a worker thread');
const settings = workerData as LaneSettings;
let ready = settings.ready;
const post = (message: LaneMessage): void => port.postMessage(message);

/** Invocations sent to the main loop, by id, waiting for their answers, with their requests' routes. */
const pending = new Map<number, { settle: (answer: Answer) => void; route: InvokeRoute }>();
let nextId = 1;

function answerFromMain(
  name: string,
  event: Uint8Array,
  gone: CallerGone,
  url: string | undefined,
  route: InvokeRoute,
): Promise<Answer> {
  const id = nextId++;
  const onGone = (): void => post({ kind: 'gone', id });
  gone.addEventListener('abort', onGone, { once: true });
  return new Promise<Answer>((resolve) => {
    const settle = (answer: Answer): void => {
      gone.removeEventListener('abort', onGone);
      resolve(answer);
    };
    pending.set(id, { settle, route });
    post({ kind: 'invoke', id, name, event, url, qualifier: route.qualifier });
  });
}

/** Answers the main loop's question for a header of a pending invocation's request. */
async function sendHeader(id: number, name: string): Promise<void> {
  const value = await pending.get(id)?.route.header?.(name);
  post({ kind: 'header', id, value });
}

const fastPath = invokeFastPath({
  answer: answerFromMain,
  ready: () => ready,
  apiKeys: settings.apiKeys.length > 0 ? apiKeyCheck(settings.apiKeys) : null,
});

/** Headers that belong to one connection, not to the request or answer passed on. */
const hopByHop = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

/**
 * The headers to pass on: without those of one connection (the hop-by-hop ones and any the `Connection` header
 * names).
 */
function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = new Set(
    String(headers['connection'] ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase())
      .filter((name) => name !== ''),
  );
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) if (!hopByHop.has(name) && !named.has(name)) out[name] = value;
  return out;
}

/**
 * The request's headers for the main loop. Its body is framed again on the way: with its Content-Length where it
 * came with one, chunked where it came chunked. Without that, a chunked body of a GET would go on the shared
 * connection to the main loop unframed, and be read there as another request (smuggled), whose answer another client
 * would get.
 */
function upstreamHeaders(req: IncomingMessage): IncomingHttpHeaders {
  const headers = endToEnd(req.headers);
  headers[clientAddressHeader] = req.socket.remoteAddress ?? '';
  if (req.headers['transfer-encoding'] !== undefined) {
    delete headers['content-length'];
    headers['transfer-encoding'] = 'chunked';
  }
  return headers;
}

const mainLoop = new Agent({ keepAlive: true });

function sendUnavailable(res: ServerResponse, message: string): void {
  const answer = errorAnswer(new PlatformError('UNAVAILABLE', message));
  answer.headers['content-length'] = String(Buffer.byteLength(answer.body));
  answer.headers['connection'] = 'close';
  res.writeHead(answer.status, answer.headers);
  res.end(answer.body);
}

/** Passes a request to the main loop's Fastify and its answer back, streaming both bodies. */
function passToMain(req: IncomingMessage, res: ServerResponse): void {
  const upstream = request(
    {
      socketPath: settings.apiSocket,
      agent: mainLoop,
      method: req.method,
      path: req.url,
      headers: upstreamHeaders(req),
    },
    (answer) => {
      const headers = endToEnd(answer.headers);
      // While draining, each answer closes its connection, as the main loop's own answers do.
      if (!ready) headers['connection'] = 'close';
      res.writeHead(answer.statusCode ?? 502, headers);
      answer.pipe(res);
      answer.on('error', () => res.destroy());
    },
  );
  upstream.on('error', (err) => {
    if (res.headersSent) res.destroy();
    else sendUnavailable(res, `the gateway's main event loop did not answer: ${err.message}`);
  });
  // A client that goes away ends the request there too (a log stream it followed stops).
  res.on('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
  req.on('error', () => upstream.destroy());
  req.pipe(upstream);
}

const urlHost = functionUrlHost(settings.urlDomain);

const server = createGatewayHttpServer(settings.requestTimeoutMs, (req, res) => {
  // A function URL's host: its path is the function's, never the invoke route's.
  if (urlHost !== null && urlHost(req.headers.host) !== null) passToMain(req, res);
  else if (!fastPath(req, res)) passToMain(req, res);
});
server.on('clientError', clientErrorHandler);

/** Headers an upgrade is not passed on with: the client address is the lane's to say, and an upgrade has no body. */
const notTunnelled = new Set([clientAddressHeader, 'content-length', 'transfer-encoding']);

/**
 * A WebSocket upgrade (the live log stream) goes to the main loop's Fastify as it came, with the client's address,
 * on a connection of its own; from then on bytes pass both ways untouched, until either side closes.
 */
function tunnelToMain(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  const upstream = connect(settings.apiSocket);
  const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    if (!notTunnelled.has(name.toLowerCase())) lines.push(`${name}: ${req.rawHeaders[i + 1]!}`);
  }
  lines.push(`${clientAddressHeader}: ${req.socket.remoteAddress ?? ''}`);
  upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
  if (head.length > 0) upstream.write(head);
  const close = (): void => {
    socket.destroy();
    upstream.destroy();
  };
  upstream.on('error', close);
  socket.on('error', close);
  upstream.on('close', close);
  socket.on('close', close);
  socket.pipe(upstream);
  upstream.pipe(socket);
}
server.on('upgrade', tunnelToMain);

/**
 * A duplicate of the listening socket, owned by this thread: a short-lived child process receives the descriptor and
 * sends it back as a server handle (the kernel duplicates it on the way). Sharing the descriptor number itself
 * would not do: whichever loop closed its handle first would close the socket under the others.
 */
function duplicateListener(fd: number): Promise<NetServer> {
  const child = spawn(
    process.execPath,
    [
      '-e',
      "const s=require('net').createServer();s.listen({fd:3},()=>process.send('listening',s,()=>process.exit(0)))",
    ],
    { stdio: ['ignore', 'ignore', 'pipe', fd, 'ipc'], env: {} },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return new Promise((resolve, reject) => {
    child.once('message', (_message, handle) => resolve(handle as NetServer));
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`the process duplicating the listening socket exited (${signal ?? code}): ${stderr.trim()}`)),
    );
  });
}

port.on('message', (message: HostMessage) => {
  switch (message.kind) {
    case 'answer': {
      const invocation = pending.get(message.id);
      pending.delete(message.id);
      invocation?.settle({ status: message.status, headers: message.headers, body: message.body });
      return;
    }
    case 'header':
      void sendHeader(message.id, message.name);
      return;
    case 'ready':
      ready = message.ready;
      return;
    case 'close':
      ready = false;
      // Stops accepting and closes idle connections; busy ones close after their answers (`connection: close`).
      server.close(() => {
        mainLoop.destroy();
        post({ kind: 'closed' });
      });
      server.closeIdleConnections();
      return;
  }
});

duplicateListener(settings.listenFd).then(
  (handle) => {
    server.listen(handle, () => post({ kind: 'listening' }));
    // The duplicate is the lane's own; the handle object that carried it is not needed once the server has it.
    server.once('error', (err) => post({ kind: 'failed', message: err.message }));
  },
  (err: unknown) => post({ kind: 'failed', message: err instanceof Error ? err.message : String(err) }),
);

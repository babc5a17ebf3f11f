// `POST /v1/functions/:name/invoke`, the one route on every invocation's path. Fastify serves it like every other
// route (and documents it in the OpenAPI description), but an ordinary request never gets that far: the gateway's
// HTTP server hands it to `invokeFastPath` first, which answers it with plain `node:http`. Fastify's request
// handling (routing, the content-type parser, hooks, the reply) cost ~20 µs per invocation, a tenth of a warm
// no-op's latency. Both run the invocation and build its answer with the same function here (`invokeAndAnswer`),
// so they cannot drift apart; anything unusual (a key that does not match, no or too large a Content-Length, a
// malformed Content-Type, an encoded or over-long name, any query string but a plain `?qualifier=`, a server that is
// draining) is left to Fastify, whose answers (401, 413, 400, 414, 503) stay the only ones. Both read a sticky alias's
// header from the request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PlatformError } from '../../core/errors.js';
import type { ErrorCode } from '../../core/errors.js';
import { maxEventBytes } from '../../core/function-config.js';
import type { Logger } from '../../core/logger.js';
import type { TraceSpan, Tracer } from '../../core/ports/tracer.js';
import type { HeaderValue } from '../function-resolver.js';
import type { CallerGone, InvocationResult, InvokeRoute, Invoker } from '../invoker.js';
import type { GatewayMetrics } from '../metrics.js';
import type { ApiKeyCheck } from './api-keys.js';
import { startInvokeSpan } from './invoke-span.js';

/** An answer of the invoke route: status, headers (without the length) and body (JSON text or its bytes). */
export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string | Uint8Array;
}

/** The Content-Length of an answer's body. */
export function bodyLength(body: string | Uint8Array): number {
  return typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
}

const nullPayload = Buffer.from('null');
const emptyEvent = Buffer.from('{}');

/** The JSON body and headers of a platform error, as every route answers one. */
export function errorAnswer(err: PlatformError): Answer & { body: string } {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
  const retryAfter = err.details.retryAfterSeconds;
  if (typeof retryAfter === 'number') headers['retry-after'] = String(retryAfter);
  const body = JSON.stringify({ error: { code: err.code, message: err.rawMessage, ...err.details } });
  return { status: err.status, headers, body };
}

const failureCodes: Record<Exclude<InvocationResult['outcome']['status'], 'success'>, ErrorCode> = {
  error: 'FUNCTION_ERROR',
  timeout: 'FUNCTION_TIMEOUT',
  crash: 'FUNCTION_CRASHED',
  oom: 'FUNCTION_OUT_OF_MEMORY',
};

/** The answer to an invocation that ran: the handler's result, or its failure as an error (502, 504...). */
export function invocationAnswer(result: InvocationResult): Answer {
  const { outcome } = result;
  const answer: Answer =
    outcome.status === 'success'
      ? {
          status: 200,
          headers: { 'content-type': 'application/json; charset=utf-8' },
          body: outcome.payloadJson ?? nullPayload,
        }
      : errorAnswer(
          new PlatformError(failureCodes[outcome.status], outcome.error?.message ?? outcome.status, {
            details: {
              errorType: outcome.error?.name ?? 'Error',
              ...(outcome.error?.stack === undefined ? {} : { stack: outcome.error.stack }),
              invocationId: result.invocationId,
            },
          }),
        );
  answer.headers['x-savassan-invocation-id'] = result.invocationId;
  answer.headers['x-savassan-start'] = result.start;
  answer.headers['x-savassan-version'] = String(result.version);
  if (result.alias !== null) answer.headers['x-savassan-alias'] = result.alias;
  // The facts of a REPORT line (`savassan invoke -v`), without a second request for the invocation's record.
  answer.headers['x-savassan-duration-ms'] = outcome.durationMs.toFixed(3);
  if (result.initMs !== null) answer.headers['x-savassan-init-ms'] = String(result.initMs);
  if (outcome.peakMemoryBytes !== null) answer.headers['x-savassan-memory-used'] = String(outcome.peakMemoryBytes);
  answer.headers['x-savassan-memory-mb'] = String(result.memoryMB);
  return answer;
}

/**
 * The event as it goes to the sandbox: the body's bytes as they arrived, parsed once only to refuse what is not
 * JSON (400). An empty body (or one of JSON whitespace only) is the event {} (as with Lambda).
 */
export function eventOf(body: Buffer | undefined): Buffer {
  if (body === undefined || isBlank(body)) return emptyEvent;
  try {
    JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `the event is not valid JSON: ${(err as Error).message}`);
  }
  return body;
}

/** Whether `bytes` hold JSON whitespace only (space, tab, line feed, carriage return). */
function isBlank(bytes: Buffer): boolean {
  for (const byte of bytes) {
    if (byte !== 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) return false;
  }
  return true;
}

/**
 * The client went away before its answer: the invoker stops waiting for an instance. The response stream closes
 * early (the request stream closes as soon as the body has been read, so it cannot tell). Built for every
 * invocation, so it costs nothing until the invoker has to wait: no AbortController, no listener before then. A
 * class rather than an object literal: V8 builds a literal with a getter through its runtime on every call (~0.7 µs
 * even when hot).
 */
class ResponseGone implements CallerGone {
  readonly #response: ServerResponse;
  #listeners: Map<() => void, () => void> | null = null;

  constructor(response: ServerResponse) {
    this.#response = response;
  }

  get aborted(): boolean {
    return this.#response.destroyed && !this.#response.writableEnded;
  }

  addEventListener(_type: 'abort', listener: () => void): void {
    const response = this.#response;
    const onClose = (): void => {
      if (!response.writableEnded) listener();
    };
    (this.#listeners ??= new Map()).set(listener, onClose);
    response.once('close', onClose);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const onClose = this.#listeners?.get(listener);
    if (onClose === undefined) return;
    this.#listeners?.delete(listener);
    this.#response.off('close', onClose);
  }
}

export function callerGone(response: ServerResponse): CallerGone {
  return new ResponseGone(response);
}

/** What running an invocation and answering it needs. */
export interface Answering {
  invoker: Invoker;
  metrics: GatewayMetrics;
  logger?: Logger | undefined;
  /** Traces: when enabled, each invocation gets a server span continuing the request's `traceparent`. */
  tracer?: Tracer | undefined;
}

/**
 * Runs the invocation and builds its answer, counted in the metrics. A platform error (404, 429, 503...) becomes
 * its answer too, logged when it is the platform's own 5xx; this never rejects for those.
 */
export function invokeAndAnswer(
  answering: Answering,
  name: string,
  event: Uint8Array,
  gone: CallerGone,
  url: string | undefined,
  route?: InvokeRoute,
): Promise<Answer> {
  // Not async itself: with tracing off, the invocation costs no promise more than it did before traces existed.
  const { tracer } = answering;
  return tracer !== undefined && tracer.enabled
    ? tracedInvokeAndAnswer(answering, tracer, name, event, gone, url, route)
    : untracedInvokeAndAnswer(answering, name, event, gone, url, route);
}

/** `invokeAndAnswer` within an HTTP server span, which continues the request's `traceparent` header. */
async function tracedInvokeAndAnswer(
  answering: Answering,
  tracer: Tracer,
  name: string,
  event: Uint8Array,
  gone: CallerGone,
  url: string | undefined,
  route: InvokeRoute | undefined,
): Promise<Answer> {
  // A lane's request answers this from its own event loop (a promise); the main loop's, at once.
  const span: TraceSpan = startInvokeSpan(tracer, {
    method: 'POST',
    route: invokeRoutePattern,
    path: (url ?? '').split('?', 1)[0] ?? '',
    functionName: name,
    traceparent: await route?.header?.('traceparent'),
  });
  try {
    const answer = await untracedInvokeAndAnswer(answering, name, event, gone, url, { ...route, trace: span });
    span.setAttribute('http.response.status_code', answer.status);
    const invocationId = answer.headers['x-savassan-invocation-id'];
    if (invocationId !== undefined) span.setAttribute('faas.invocation_id', invocationId);
    if (answer.status >= 500) span.fail(`HTTP ${answer.status}`);
    return answer;
  } finally {
    span.end();
  }
}

const invokeRoutePattern = '/v1/functions/{name}/invoke';

async function untracedInvokeAndAnswer(
  { invoker, metrics, logger }: Answering,
  name: string,
  event: Uint8Array,
  gone: CallerGone,
  url: string | undefined,
  route?: InvokeRoute,
): Promise<Answer> {
  const started = performance.now();
  let result: InvocationResult;
  try {
    result = await invoker.invoke(name, event, gone, route);
  } catch (err) {
    const error = PlatformError.from(err);
    metrics.rejected(error.code);
    if (error.status >= 500 && !error.isUserError) logger?.error({ err, url }, 'request failed');
    return errorAnswer(error);
  }
  metrics.observe(result, (performance.now() - started) / 1000);
  return invocationAnswer(result);
}

/** Runs an invocation and builds its answer (`invokeAndAnswer`, or the main event loop's, from a lane). */
export type AnswerInvoke = (
  name: string,
  event: Uint8Array,
  gone: CallerGone,
  url: string | undefined,
  route: InvokeRoute,
) => Promise<Answer>;

/** A request's header values, as a sticky alias reads them (repeated headers joined as Node joins them). */
export function requestHeaders(headers: IncomingMessage['headers']): HeaderValue {
  return (name) => {
    const value = headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  };
}

export interface InvokeFastPathOptions {
  answer: AnswerInvoke;
  /** False while starting or draining: requests are left to Fastify (which answers 503 while closing). */
  ready: () => boolean;
  /** The API key check when keys are required; null when the API is open. */
  apiKeys: ApiKeyCheck | null;
  logger?: Logger | undefined;
}

const prefix = '/v1/functions/';
const suffix = '/invoke';
const qualifierQuery = '?qualifier=';
/**
 * A qualifier the fast path takes as it stands in the URL: letters, digits and dashes (a version number or an alias
 * name as they are made), nothing that decoding could change; the resolver judges it as it judges Fastify's.
 */
const plainQualifier = /^[A-Za-z0-9-]{1,100}$/;
/** Longest function name in a path the fast path takes: Fastify's router refuses longer path parameters (414). */
const maxNameLength = 100;
/** A media type Fastify's parser takes as one (type/subtype, parameters after `;`); others are left to it (400). */
const plainMediaType = /^\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+\/[!#$%&'*+.^_`|~0-9A-Za-z-]+\s*(?:;.*)?$/;

/**
 * Returns a request listener that answers plain invoke requests and returns false for everything else (the caller
 * passes those to Fastify). It takes a request only when nothing about it needs Fastify (`fastPathTarget`). While
 * the server is not ready (draining), each answer closes its connection.
 */
export function invokeFastPath(options: InvokeFastPathOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const { answer: answerInvoke, ready, apiKeys, logger } = options;

  const send = (res: ServerResponse, answer: Answer): void => {
    // While draining, each answer closes its connection (see the server's onSend hook).
    if (!ready()) answer.headers['connection'] = 'close';
    answer.headers['content-length'] = String(bodyLength(answer.body));
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body);
  };

  const serve = (req: IncomingMessage, res: ServerResponse, { name, qualifier }: FastPathTarget): void => {
    // The body stays bytes: it goes to the sandbox as it arrived.
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    // A client that goes away mid-body: nothing was asked of the platform yet.
    req.on('error', () => {});
    req.on('end', () => {
      let event: Buffer;
      try {
        event = eventOf(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
      } catch (err) {
        // As Fastify answers a body its parser refused: and closes the connection.
        const answer = errorAnswer(PlatformError.from(err));
        answer.headers['connection'] = 'close';
        send(res, answer);
        return;
      }
      answerInvoke(name, event, callerGone(res), req.url, { qualifier, header: requestHeaders(req.headers) })
        .then((answer) => send(res, answer))
        // Nothing here is known to throw; if it ever does, the process must not die of an unhandled rejection.
        .catch((err: unknown) => {
          logger?.error({ err, url: req.url }, 'answering an invocation failed');
          res.destroy();
        });
    });
  };

  return (req, res) => {
    const target = fastPathTarget(req, apiKeys, ready());
    if (target === null) return false;
    serve(req, res, target);
    return true;
  };
}

/** What a request the fast path takes invokes: the function, and the qualifier its URL names (none: `live`). */
export interface FastPathTarget {
  name: string;
  qualifier: string | undefined;
}

/**
 * What a request invokes, if the fast path may take it: `POST` to exactly `/v1/functions/<name>/invoke` (a name of at
 * most 100 characters that needs no decoding), with no query or only `?qualifier=` a plain version number or alias
 * name, a Content-Length within the event limit, no Content-Type or a well-formed one, no invocation type header
 * (asynchronous invocations are Fastify's), the server ready, and a valid API key where keys are required. Null: the
 * request is Fastify's.
 */
export function fastPathTarget(
  req: Pick<IncomingMessage, 'method' | 'url' | 'headers'>,
  apiKeys: ApiKeyCheck | null,
  ready: boolean,
): FastPathTarget | null {
  if (req.method !== 'POST' || req.url === undefined || !req.url.startsWith(prefix)) return null;
  let url = req.url;
  let qualifier: string | undefined;
  const query = url.indexOf('?');
  if (query !== -1) {
    if (!url.startsWith(qualifierQuery, query)) return null;
    qualifier = url.slice(query + qualifierQuery.length);
    if (!plainQualifier.test(qualifier)) return null;
    url = url.slice(0, query);
  }
  if (!url.endsWith(suffix)) return null;
  const name = url.slice(prefix.length, url.length - suffix.length);
  if (name === '' || name.length > maxNameLength || /[/?%#]/.test(name)) return null;
  const length = Number(req.headers['content-length']);
  if (!(length >= 0 && length <= maxEventBytes) || !ready) return null;
  const type = req.headers['content-type'];
  if (type !== undefined && !plainMediaType.test(type)) return null;
  // An asynchronous invocation (or an invalid type) is Fastify's.
  if (req.headers['x-savassan-invocation-type'] !== undefined) return null;
  if (apiKeys !== null && !apiKeys(req.headers).valid) return null;
  return { name, qualifier };
}

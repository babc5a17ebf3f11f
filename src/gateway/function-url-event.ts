// Function URLs as Lambda's payload format 2.0: an HTTP request becomes the event a handler written for Lambda
// function URLs expects (`serverless-http`, a plain `(event) => ({ statusCode, body })`), and its answer becomes the
// HTTP response. Pure functions: the route (`routes/function-urls.ts`) does the I/O.
import type { FunctionUrlCors } from '../core/ports/function-url-store.js';

/** A request to a function URL, as the route read it. */
export interface FunctionUrlRequest {
  method: string;
  /** The path the function sees (the `/fn/{name}` prefix stripped), still percent-encoded: `/`, `/users/7`. */
  rawPath: string;
  /** The query string without its `?` (empty when none). */
  rawQueryString: string;
  /** Header names and values in arrival order, as Node's `rawHeaders` holds them. */
  rawHeaders: readonly string[];
  body: Buffer;
  sourceIp: string;
  /** `HTTP/1.1`. */
  protocol: string;
}

/** Facts of the request's context that the route knows and the request does not. */
export interface FunctionUrlContext {
  requestId: string;
  /** The function's name (the event's `apiId` and domain prefix). */
  functionName: string;
  accountId: string;
  /** When the request arrived, epoch milliseconds. */
  now: number;
}

/** The Lambda function URL event (payload format 2.0). */
export interface FunctionUrlEvent {
  version: '2.0';
  routeKey: '$default';
  rawPath: string;
  rawQueryString: string;
  cookies?: string[];
  headers: Record<string, string>;
  queryStringParameters?: Record<string, string>;
  requestContext: {
    accountId: string;
    apiId: string;
    domainName: string;
    domainPrefix: string;
    http: { method: string; path: string; protocol: string; sourceIp: string; userAgent: string };
    requestId: string;
    routeKey: '$default';
    stage: '$default';
    time: string;
    timeEpoch: number;
  };
  body?: string;
  isBase64Encoded: boolean;
}

/** An HTTP answer to a function URL request. */
export interface FunctionUrlAnswer {
  status: number;
  /** Lowercased names; `set-cookie` goes in `cookies`. */
  headers: Record<string, string>;
  /** `Set-Cookie` values, one header each. */
  cookies: string[];
  body: Buffer;
}

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** Lambda's request time: `12/Mar/2020:19:03:58 +0000`. */
function requestTime(epochMs: number): string {
  const d = new Date(epochMs);
  const two = (n: number): string => String(n).padStart(2, '0');
  return (
    `${two(d.getUTCDate())}/${months[d.getUTCMonth()] ?? ''}/${d.getUTCFullYear()}:` +
    `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())} +0000`
  );
}

/**
 * Whether a body of this content type travels as text in the event (else base64): `text/*`, JSON, XML, forms,
 * JavaScript, and bodies without a content type.
 *
 * @example
 * isTextContentType('application/json; charset=utf-8'); // true
 * isTextContentType('image/png'); // false
 */
export function isTextContentType(contentType: string | undefined): boolean {
  if (contentType === undefined || contentType.trim() === '') return true;
  const type = (contentType.split(';')[0] ?? '').trim().toLowerCase();
  return (
    type.startsWith('text/') ||
    type === 'application/json' ||
    type === 'application/xml' ||
    type === 'application/javascript' ||
    type === 'application/x-www-form-urlencoded' ||
    type === 'application/graphql' ||
    type.endsWith('+json') ||
    type.endsWith('+xml')
  );
}

function decodeComponent(text: string): string {
  try {
    return decodeURIComponent(text.replace(/\+/g, ' '));
  } catch {
    return text;
  }
}

/**
 * The function URL event of a request: headers lowercased, repeated ones joined by commas; `Cookie` headers split
 * into `cookies` (and left out of `headers`); query parameters decoded, repeated ones joined by commas; the body as
 * text for textual content types, else base64.
 *
 * @example
 * functionUrlEvent(
 *   { method: 'GET', rawPath: '/hello', rawQueryString: 'a=1', rawHeaders: ['Host', 'x'], body: Buffer.alloc(0),
 *     sourceIp: '127.0.0.1', protocol: 'HTTP/1.1' },
 *   { requestId: 'r1', functionName: 'web', accountId: '000000000000', now: Date.now() },
 * ).queryStringParameters; // { a: '1' }
 */
export function functionUrlEvent(request: FunctionUrlRequest, context: FunctionUrlContext): FunctionUrlEvent {
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  for (let i = 0; i + 1 < request.rawHeaders.length; i += 2) {
    const name = (request.rawHeaders[i] ?? '').toLowerCase();
    const value = request.rawHeaders[i + 1] ?? '';
    if (name === 'cookie') {
      for (const cookie of value.split(';')) {
        const trimmed = cookie.trim();
        if (trimmed !== '') cookies.push(trimmed);
      }
      continue;
    }
    headers[name] = name in headers ? `${headers[name]},${value}` : value;
  }
  const query: Record<string, string> = {};
  for (const pair of request.rawQueryString.split('&')) {
    if (pair === '') continue;
    const at = pair.indexOf('=');
    const key = decodeComponent(at === -1 ? pair : pair.slice(0, at));
    const value = at === -1 ? '' : decodeComponent(pair.slice(at + 1));
    query[key] = key in query ? `${query[key]},${value}` : value;
  }
  const text = isTextContentType(headers['content-type']);
  const domainName = headers.host ?? 'localhost';
  const event: FunctionUrlEvent = {
    version: '2.0',
    routeKey: '$default',
    rawPath: request.rawPath,
    rawQueryString: request.rawQueryString,
    ...(cookies.length === 0 ? {} : { cookies }),
    headers,
    ...(Object.keys(query).length === 0 ? {} : { queryStringParameters: query }),
    requestContext: {
      accountId: context.accountId,
      apiId: context.functionName,
      domainName,
      domainPrefix: domainName.split('.')[0] ?? domainName,
      http: {
        method: request.method,
        path: request.rawPath,
        protocol: request.protocol,
        sourceIp: request.sourceIp,
        userAgent: headers['user-agent'] ?? '',
      },
      requestId: context.requestId,
      routeKey: '$default',
      stage: '$default',
      time: requestTime(context.now),
      timeEpoch: context.now,
    },
    ...(request.body.length === 0 ? {} : { body: request.body.toString(text ? 'utf8' : 'base64') }),
    isBase64Encoded: request.body.length > 0 && !text,
  };
  return event;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonAnswer(value: unknown): FunctionUrlAnswer {
  return {
    status: 200,
    headers: { 'content-type': 'application/json' },
    cookies: [],
    body: Buffer.from(JSON.stringify(value) ?? 'null'),
  };
}

/**
 * The HTTP answer of a handler's result (its JSON): `{ statusCode, headers, multiValueHeaders, cookies, body,
 * isBase64Encoded }` as Lambda reads it (a structured answer without a content type is JSON), or any other JSON
 * value as a 200 `application/json` answer with that value as its body.
 *
 * @example
 * functionUrlAnswer(Buffer.from('{"statusCode":302,"headers":{"Location":"/x"}}')).status; // 302
 * functionUrlAnswer(Buffer.from('[1,2]')).body.toString(); // '[1,2]'
 */
/** Headers that say how the answer is framed or the connection kept: the platform's, never the function's. */
const framingHeaders: ReadonlySet<string> = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'proxy-connection',
]);

export function functionUrlAnswer(payloadJson: Uint8Array | null): FunctionUrlAnswer {
  const value: unknown = payloadJson === null ? null : JSON.parse(Buffer.from(payloadJson).toString('utf8'));
  if (!isRecord(value) || typeof value.statusCode !== 'number') return jsonAnswer(value);
  const status =
    Number.isInteger(value.statusCode) && value.statusCode >= 100 && value.statusCode <= 599 ? value.statusCode : 502;
  const headers: Record<string, string> = {};
  const cookies: string[] = [];
  const addHeader = (name: string, raw: unknown): void => {
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') return;
    const key = name.toLowerCase();
    // The answer's framing is the platform's: a function setting it could confuse a proxy in front.
    if (framingHeaders.has(key)) return;
    const text = String(raw);
    if (key === 'set-cookie') cookies.push(text);
    else headers[key] = key in headers ? `${headers[key]},${text}` : text;
  };
  if (isRecord(value.headers)) for (const [name, raw] of Object.entries(value.headers)) addHeader(name, raw);
  if (isRecord(value.multiValueHeaders)) {
    for (const [name, raws] of Object.entries(value.multiValueHeaders)) {
      for (const raw of Array.isArray(raws) ? raws : [raws]) addHeader(name, raw);
    }
  }
  if (Array.isArray(value.cookies))
    for (const cookie of value.cookies as unknown[]) if (typeof cookie === 'string') cookies.push(cookie);
  headers['content-type'] ??= 'application/json';
  const body =
    value.body === undefined || value.body === null
      ? Buffer.alloc(0)
      : typeof value.body === 'string'
        ? Buffer.from(value.body, value.isBase64Encoded === true ? 'base64' : 'utf8')
        : Buffer.from(JSON.stringify(value.body));
  return { status, headers, cookies, body };
}

/** Whether a request is a CORS preflight: OPTIONS with `Origin` and `Access-Control-Request-Method`. */
export function isPreflight(method: string, headers: Record<string, string | string[] | undefined>): boolean {
  return method === 'OPTIONS' && headers.origin !== undefined && headers['access-control-request-method'] !== undefined;
}

function allowedOrigin(cors: FunctionUrlCors, origin: string | undefined): string | null {
  if (origin === undefined) return null;
  if (cors.allowOrigins.includes('*')) return '*';
  return cors.allowOrigins.includes(origin) ? origin : null;
}

/**
 * The CORS headers of an answer to a request from `origin`: none when the origin is not allowed.
 *
 * @example
 * corsHeaders({ allowOrigins: ['https://a.example'], allowMethods: [], allowHeaders: [] }, 'https://a.example');
 * // { 'access-control-allow-origin': 'https://a.example', vary: 'Origin' }
 */
export function corsHeaders(cors: FunctionUrlCors, origin: string | undefined): Record<string, string> {
  const allowed = allowedOrigin(cors, origin);
  if (allowed === null) return {};
  return { 'access-control-allow-origin': allowed, ...(allowed === '*' ? {} : { vary: 'Origin' }) };
}

/**
 * The platform's answer to a CORS preflight: 204 with the allowed origin, methods and headers, or 403 when the
 * origin, method or a requested header is not allowed.
 *
 * @example
 * corsPreflight({ allowOrigins: ['*'], allowMethods: ['GET'], allowHeaders: [] }, 'https://a.example', 'GET', undefined).status; // 204
 */
export function corsPreflight(
  cors: FunctionUrlCors,
  origin: string,
  method: string,
  requestHeaders: string | undefined,
): { status: number; headers: Record<string, string> } {
  const base = corsHeaders(cors, origin);
  const wantedMethod = method.trim().toUpperCase();
  const wantedHeaders = (requestHeaders ?? '')
    .split(',')
    .map((header) => header.trim().toLowerCase())
    .filter((header) => header !== '');
  const methodOk =
    cors.allowMethods.length === 0 || cors.allowMethods.includes('*') || cors.allowMethods.includes(wantedMethod);
  const headersOk =
    cors.allowHeaders.length === 0 ||
    cors.allowHeaders.includes('*') ||
    wantedHeaders.every((header) => cors.allowHeaders.includes(header));
  if (Object.keys(base).length === 0 || !methodOk || !headersOk) return { status: 403, headers: {} };
  return {
    status: 204,
    headers: {
      ...base,
      'access-control-allow-methods': cors.allowMethods.length === 0 ? '*' : cors.allowMethods.join(', '),
      ...(wantedHeaders.length === 0
        ? {}
        : {
            'access-control-allow-headers':
              cors.allowHeaders.length === 0 || cors.allowHeaders.includes('*')
                ? wantedHeaders.join(', ')
                : cors.allowHeaders.join(', '),
          }),
      'access-control-max-age': '300',
    },
  };
}

/**
 * The function a `Host` header names under `domain` (`web.fn.example:8080` → `web` for `fn.example`), or null; null
 * (no function) for every host without a domain.
 *
 * @example
 * functionUrlHost('fn.example')?.('web.fn.example:8080'); // 'web'
 */
export function functionUrlHost(domain: string | undefined): ((host: string | undefined) => string | null) | null {
  if (domain === undefined || domain === '') return null;
  const suffix = `.${domain.toLowerCase().replace(/\.$/, '')}`;
  return (host) => {
    if (host === undefined) return null;
    const name = host
      .toLowerCase()
      .replace(/:[0-9]+$/, '')
      .replace(/\.$/, '');
    if (!name.endsWith(suffix)) return null;
    const label = name.slice(0, -suffix.length);
    return /^[a-z][a-z0-9-]*$/.test(label) ? label : null;
  };
}

// AWS Signature Version 4 on the Lambda API (`/2015-03-31/...`): the verifier, pure and on node:crypto only, and
// the Fastify preHandler the Lambda routes use.
//
// Which requests must be signed: where the gateway has API keys, every request to a Lambda route; the keys that can
// sign are those written `ACCESS_KEY_ID:SECRET` (see `accessKeysFrom` in api-keys.ts), so
// `SAVASSAN_API_KEY=AKIDEXAMPLE:wJalrXUtnFEMI savassan start` lets an AWS SDK or the AWS CLI configured with that
// access key id and secret call the API. Without keys (loopback only) any signature, or none, is accepted. The `onRequest`
// API key hook leaves the Lambda routes to this check (`isSignedRoute`).
//
// The contract with the Lambda routes: their plugin parses every body as a Buffer (a catch-all content type parser
// with `parseAs: 'buffer'`, and no JSON parser of its own), so that `request.body` holds the bytes the client signed
// (or is undefined for a request without a body), and adds `sigV4PreHandler(apiKeys)` as a `preHandler` hook. A
// refused request is answered there, in the Lambda API's dialect: 403 with `x-amzn-ErrorType` naming the error and
// `{"Type":"User","message":...}`, which the AWS SDKs surface as an error of that name.
//
// What is checked, per the SigV4 specification for a service other than S3:
// - `Authorization: AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/REGION/lambda/aws4_request, SignedHeaders=...,
//   Signature=...`; any region is accepted (a client's region names no place here); `host` and `x-amz-date` must be
//   signed; the credential's date must be the day of `x-amz-date`;
// - `x-amz-date` within 15 minutes of the server's clock;
// - the canonical request: method, the path as received with each segment URI-encoded once more (after removing
//   empty and `.` segments and resolving `..`), the query string sorted by encoded name then value, the signed
//   headers lowercased with their values trimmed and inner runs of spaces made one, the signed header names, and the
//   payload hash: the SHA-256 of the body, or `x-amz-content-sha256` when given, which must then equal the SHA-256
//   of the body. `UNSIGNED-PAYLOAD` (and the streaming forms) are refused: the AWS SDKs sign the Lambda API's
//   payloads, and an unsigned body could be replaced on the way;
// - the signature, compared in constant time.
// Query-string (presigned) signatures and session tokens are not used by the Lambda API's clients and are not
// accepted: a request must carry the `Authorization` header (`x-amz-security-token`, if sent, is ignored unless
// signed, and then only covered by the signature).
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest, preHandlerAsyncHookHandler } from 'fastify';
import { PlatformError } from '../../core/errors.js';
import { accessKeysFrom } from './api-keys.js';

/** How far `x-amz-date` may be from the server's clock, either way, as AWS allows. */
export const maxClockSkewMs = 15 * 60 * 1000;

/** The Lambda API's error names for a refused signature, all 403. */
export type SigV4ErrorCode =
  | 'MissingAuthenticationTokenException'
  | 'IncompleteSignatureException'
  | 'InvalidSignatureException'
  | 'UnrecognizedClientException';

export interface SigV4Request {
  method: string;
  /** The request target as received: the raw path, with its query string. */
  path: string;
  headers: IncomingHttpHeaders;
  /** The body's bytes as received (empty for none). */
  body: Uint8Array;
  /** The server's clock, in milliseconds since the epoch. */
  now: number;
  /** The secret of an access key id; undefined for an unknown one. */
  secretFor: (accessKeyId: string) => string | undefined;
  /** The service the credential scope must name (default `lambda`). */
  service?: string;
}

export type SigV4Result =
  { ok: true; accessKeyId: string } | { ok: false; status: 403; code: SigV4ErrorCode; message: string };

const algorithm = 'AWS4-HMAC-SHA256';
const signatureMismatch =
  'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.';

type SigV4Refusal = Extract<SigV4Result, { ok: false }>;

function refuse(code: SigV4ErrorCode, message: string): SigV4Refusal {
  return { ok: false, status: 403, code, message };
}

/**
 * Checks the SigV4 signature of a request against the secret of its access key id.
 *
 * @example
 * const result = verifySigV4({ method: 'GET', path: '/2015-03-31/functions/', headers, body: Buffer.alloc(0),
 *   now: Date.now(), secretFor: (id) => keys.get(id) });
 * if (!result.ok) reply.code(result.status).header('x-amzn-errortype', result.code).send({ message: result.message });
 */
export function verifySigV4(request: SigV4Request): SigV4Result {
  const checked = checkSigV4Headers(request);
  if (!('secret' in checked)) return checked;
  return verifyWithSecret(request, checked.parsed, checked.secret);
}

/**
 * What can be checked of a signed request before its body is read: the Authorization header's form, the signed
 * headers (every `x-amz-*` header and `Content-Type` present must be signed, so a captured request cannot be replayed
 * with headers added), the date and its skew, and the access key. The secret, when it all holds.
 */
export function checkSigV4Headers(
  request: Omit<SigV4Request, 'body'>,
): { parsed: ParsedAuthorization; secret: string } | SigV4Refusal {
  const service = request.service ?? 'lambda';
  const authorization = headerValue(request.headers, 'authorization');
  if (authorization === undefined) return refuse('MissingAuthenticationTokenException', 'Missing Authentication Token');
  const parsed = parseAuthorization(authorization);
  if (typeof parsed === 'string') return refuse('IncompleteSignatureException', parsed);
  const { accessKeyId, date, scopeService, signedHeaders } = parsed;
  if (scopeService !== service) {
    return refuse(
      'InvalidSignatureException',
      `Credential should be scoped to correct service: '${service}'. (the credential names '${scopeService}')`,
    );
  }
  if (!signedHeaders.includes('host')) {
    return refuse('IncompleteSignatureException', "'Host' must be a signed header");
  }
  const amzDate = headerValue(request.headers, 'x-amz-date');
  if (amzDate === undefined) {
    return refuse('IncompleteSignatureException', "Authorization header requires existence of 'X-Amz-Date' header");
  }
  if (!signedHeaders.includes('x-amz-date')) {
    return refuse('IncompleteSignatureException', "'X-Amz-Date' must be a signed header");
  }
  const signedAt = parseAmzDate(amzDate);
  if (signedAt === null) {
    return refuse('IncompleteSignatureException', `X-Amz-Date '${amzDate}' is not of the form YYYYMMDDTHHMMSSZ`);
  }
  if (date !== amzDate.slice(0, 8)) {
    return refuse(
      'InvalidSignatureException',
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${date}' != '${amzDate.slice(0, 8)}'`,
    );
  }
  if (request.now - signedAt > maxClockSkewMs) {
    return refuse(
      'InvalidSignatureException',
      `Signature expired: ${amzDate} is now earlier than ${amzFormat(request.now - maxClockSkewMs)} (${amzFormat(request.now)} - 15 min.)`,
    );
  }
  if (signedAt - request.now > maxClockSkewMs) {
    return refuse(
      'InvalidSignatureException',
      `Signature not yet current: ${amzDate} is still later than ${amzFormat(request.now + maxClockSkewMs)} (${amzFormat(request.now)} + 15 min.)`,
    );
  }
  for (const name of Object.keys(request.headers)) {
    const lower = name.toLowerCase();
    if ((lower.startsWith('x-amz-') || lower === 'content-type') && !signedHeaders.includes(lower)) {
      return refuse('InvalidSignatureException', `the header '${lower}' is present but not signed`);
    }
  }
  const secret = request.secretFor(accessKeyId);
  if (secret === undefined) {
    return refuse('UnrecognizedClientException', 'The security token included in the request is invalid.');
  }
  return { parsed, secret };
}

function verifyWithSecret(
  request: SigV4Request,
  { accessKeyId, date, region, signedHeaders, signature }: ParsedAuthorization,
  secret: string,
): SigV4Result {
  const service = request.service ?? 'lambda';
  // Present: the header checks required it.
  const amzDate = headerValue(request.headers, 'x-amz-date') ?? '';
  const bodyHash = createHash('sha256').update(request.body).digest('hex');
  const declared = headerValue(request.headers, 'x-amz-content-sha256');
  if (declared !== undefined && declared !== bodyHash) {
    return refuse(
      'InvalidSignatureException',
      declared === 'UNSIGNED-PAYLOAD' || declared.startsWith('STREAMING-')
        ? `x-amz-content-sha256 '${declared}' is not accepted: sign the payload (its SHA-256 in hex)`
        : 'The provided x-amz-content-sha256 header does not match what was computed.',
    );
  }

  const canonicalHeaders: string[] = [];
  for (const name of signedHeaders) {
    const value = headerValue(request.headers, name);
    if (value === undefined) return refuse('InvalidSignatureException', `the signed header '${name}' is missing`);
    canonicalHeaders.push(`${name}:${value.trim().replace(/\s+/g, ' ')}\n`);
  }
  const query = request.path.indexOf('?');
  const path = query === -1 ? request.path : request.path.slice(0, query);
  const canonicalRequest = [
    request.method.toUpperCase(),
    canonicalUri(path),
    query === -1 ? '' : canonicalQuery(request.path.slice(query + 1)),
    canonicalHeaders.join(''),
    signedHeaders.join(';'),
    bodyHash,
  ].join('\n');
  const scope = `${date}/${region}/${service}/aws4_request`;
  const stringToSign = [algorithm, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
  const key = [date, region, service, 'aws4_request'].reduce<Buffer>(
    (previous, part) => hmac(previous, part),
    Buffer.from(`AWS4${secret}`, 'utf8'),
  );
  const expected = hmac(key, stringToSign);
  const presented = Buffer.from(signature, 'hex');
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    return refuse('InvalidSignatureException', signatureMismatch);
  }
  return { ok: true, accessKeyId };
}

interface ParsedAuthorization {
  accessKeyId: string;
  date: string;
  region: string;
  scopeService: string;
  signedHeaders: string[];
  signature: string;
}

/** The parts of an `Authorization: AWS4-HMAC-SHA256 ...` header, or what is wrong with it. */
function parseAuthorization(header: string): ParsedAuthorization | string {
  const space = header.indexOf(' ');
  if (space === -1 || header.slice(0, space) !== algorithm) {
    return `Authorization header must start with '${algorithm} ' (only AWS Signature Version 4 is accepted)`;
  }
  const fields = new Map<string, string>();
  for (const part of header.slice(space + 1).split(',')) {
    const equals = part.indexOf('=');
    if (equals === -1) continue;
    fields.set(part.slice(0, equals).trim(), part.slice(equals + 1).trim());
  }
  const credential = fields.get('Credential');
  const signedHeaders = fields.get('SignedHeaders');
  const signature = fields.get('Signature');
  const missing = [
    ...(credential === undefined ? ["'Credential'"] : []),
    ...(signedHeaders === undefined ? ["'SignedHeaders'"] : []),
    ...(signature === undefined ? ["'Signature'"] : []),
  ];
  if (credential === undefined || signedHeaders === undefined || signature === undefined) {
    return `Authorization header requires ${missing.join(', ')} parameter${missing.length > 1 ? 's' : ''}. Authorization=${header}`;
  }
  const scope = credential.split('/');
  const [accessKeyId, date, region, scopeService, terminal] = scope;
  if (
    scope.length !== 5 ||
    accessKeyId === undefined ||
    accessKeyId === '' ||
    date === undefined ||
    !/^\d{8}$/.test(date) ||
    region === undefined ||
    region === '' ||
    scopeService === undefined ||
    terminal !== 'aws4_request'
  ) {
    return `Credential '${credential}' is not of the form ACCESS_KEY_ID/YYYYMMDD/REGION/SERVICE/aws4_request`;
  }
  if (!/^[0-9a-f]{64}$/.test(signature)) return 'Signature must be 64 lowercase hexadecimal characters';
  const names = signedHeaders.split(';');
  if (names.some((name) => !/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(name))) {
    return `SignedHeaders '${signedHeaders}' must be lowercase header names separated by ';'`;
  }
  return { accessKeyId, date, region, scopeService, signedHeaders: names, signature };
}

/** A header's value, several values joined by commas; undefined when absent. */
function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(',') : value;
}

/** `YYYYMMDDTHHMMSSZ` as milliseconds since the epoch; null when malformed. */
function parseAmzDate(text: string): number | null {
  const match = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(text);
  if (match === null) return null;
  const [year, month, day, hour, minute, second] = match.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const time = Date.UTC(year, month - 1, day, hour, minute, second);
  return amzFormat(time) === text ? time : null;
}

function amzFormat(time: number): string {
  return new Date(time)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}/, '');
}

/** RFC 3986 encoding: everything but letters, digits and `-._~`. */
function uriEncode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Decodes `%XX` escapes; a malformed one is kept as it is. */
function uriDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The canonical URI of a non-S3 service: the path as sent (already encoded once) normalised, with each segment
 * encoded once more, as the AWS SDKs compute it.
 */
function canonicalUri(path: string): string {
  const segments: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  const trailing = segments.length > 0 && path.endsWith('/') ? '/' : '';
  return `/${segments.map(uriEncode).join('/')}${trailing}`;
}

/** The canonical query string: each name and value decoded then RFC 3986-encoded, sorted by name then value. */
function canonicalQuery(query: string): string {
  const pairs: [string, string][] = [];
  for (const part of query.split('&')) {
    if (part === '') continue;
    const equals = part.indexOf('=');
    const name = uriEncode(uriDecode(equals === -1 ? part : part.slice(0, equals)));
    const value = equals === -1 ? '' : uriEncode(uriDecode(part.slice(equals + 1)));
    pairs.push([name, value]);
  }
  pairs.sort(([n1, v1], [n2, v2]) => (n1 < n2 ? -1 : n1 > n2 ? 1 : v1 < v2 ? -1 : v1 > v2 ? 1 : 0));
  return pairs.map(([name, value]) => `${name}=${value}`).join('&');
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

function hmac(key: Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data, 'utf8').digest();
}

/** A refused signature as the Lambda API answers it. */
export function sigV4ErrorAnswer(result: Extract<SigV4Result, { ok: false }>): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  return {
    status: result.status,
    headers: { 'content-type': 'application/json', 'x-amzn-errortype': result.code },
    body: JSON.stringify({ Type: 'User', message: result.message }),
  };
}

/**
 * A `preHandler` for the Lambda routes: with `apiKeys` (the gateway's keys, as `requireApiKeys` returns them), each
 * request must be signed with SigV4 by one of the access key pairs among them (`ACCESS_KEY_ID:SECRET`); a refused
 * one is answered with `sigV4ErrorAnswer`. Without keys, every request passes. `request.body` must be the raw body,
 * a Buffer (or undefined for none): see the file header.
 *
 * @example
 * lambdaApi.addHook('preHandler', sigV4PreHandler(options.apiKeys ?? []));
 */
/**
 * An `onRequest` hook for the signed routes: refuses, before the body is read, a request whose signature cannot hold
 * whatever the body (no or a malformed Authorization, unsigned `x-amz-*` headers, a skewed date, an unknown key), so
 * unsigned callers cannot make the gateway buffer bodies. `sigV4PreHandler` checks the rest once the body is in.
 */
export function sigV4OnRequest(
  apiKeys: readonly string[],
  options: { now?: () => number } = {},
): (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined> {
  const accessKeys = accessKeysFrom(apiKeys);
  const now = options.now ?? Date.now;
  return async (request, reply) => {
    if (apiKeys.length === 0) return undefined;
    const checked = checkSigV4Headers({
      method: request.method,
      path: request.raw.url ?? request.url,
      headers: request.headers,
      now: now(),
      secretFor: (id) => accessKeys.get(id),
    });
    if ('secret' in checked) return undefined;
    const answer = sigV4ErrorAnswer(checked);
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  };
}

export function sigV4PreHandler(
  apiKeys: readonly string[],
  options: { now?: () => number } = {},
): preHandlerAsyncHookHandler {
  if (apiKeys.length === 0) return async () => {};
  const accessKeys = accessKeysFrom(apiKeys);
  const now = options.now ?? Date.now;
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const body = request.body;
    if (body !== undefined && body !== null && !Buffer.isBuffer(body)) {
      throw new PlatformError('INTERNAL', 'a signed route must parse its body as a Buffer to check its signature');
    }
    const result = verifySigV4({
      method: request.method,
      path: request.raw.url ?? request.url,
      headers: request.headers,
      body: body ?? Buffer.alloc(0),
      now: now(),
      secretFor: (id) => accessKeys.get(id),
    });
    if (result.ok) return;
    const answer = sigV4ErrorAnswer(result);
    return reply.code(answer.status).headers(answer.headers).send(answer.body);
  };
}

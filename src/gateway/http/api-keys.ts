// API keys on the Gateway's HTTP API, shared by `savassan start` and the cluster-mode gateway: which
// hosts may go without a key, how the keys given on the command line or in the environment are read, and the
// Fastify hook that checks them.
//
// A key is a bearer token (`Authorization: Bearer KEY` or `x-api-key: KEY`). A key written
// `ACCESS_KEY_ID:SECRET`, the id made of letters and digits (`AKIDEXAMPLE:wJalrXUtnFEMI`), is also an AWS access
// key pair: the Lambda API (`/2015-03-31/...`) takes only requests signed with AWS Signature Version 4 by such a
// pair (sigv4.ts), and leaves bearer tokens aside. The whole `ACCESS_KEY_ID:SECRET` still works as a bearer token on
// the rest of the API.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { isIPv4, isIPv6 } from 'node:net';
import type { FastifyReply, FastifyRequest, onRequestHookHandler } from 'fastify';
import { PlatformError } from '../../core/errors.js';

/**
 * Routes answered without a key: probes of load balancers and orchestrators, the API's description, `/`, which
 * only says where those are, and the web console's static files (the app asks for a key and sends it itself).
 */
export const publicRoutes: ReadonlySet<string> = new Set([
  '/',
  '/healthz',
  '/readyz',
  '/v1/openapi.json',
  '/console',
  '/console/',
  '/console/*',
]);

/** Where the Lambda API's routes live: they check SigV4 signatures themselves (`sigV4PreHandler`), not bearer keys. */
export const signedRoutePrefix = '/2015-03-31/';

/** Whether a route (its pattern, as Fastify names it) checks its own credentials: the Lambda API's. */
export function isSignedRoute(route: string): boolean {
  return route.startsWith(signedRoutePrefix);
}

/** An access key pair written as one key: `ACCESS_KEY_ID:SECRET`, the id of letters and digits. */
const accessKeyPair = /^([A-Za-z0-9]{1,128}):(.+)$/;

/**
 * The AWS access key pairs among `keys`, secret by access key id: each key `ACCESS_KEY_ID:SECRET` whose id is made
 * of letters and digits (1 to 128, as AWS's are); other keys are bearer tokens only. Throws `INVALID_CONFIG` when
 * one id is given two secrets.
 *
 * @example
 * accessKeysFrom(['AKIDEXAMPLE:wJalrXUtnFEMI', 'plain-key']); // Map { 'AKIDEXAMPLE' => 'wJalrXUtnFEMI' }
 */
export function accessKeysFrom(keys: readonly string[]): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const key of keys) {
    const match = accessKeyPair.exec(key);
    if (match === null) continue;
    const [, id, secret] = match as unknown as [string, string, string];
    const known = pairs.get(id);
    if (known !== undefined && known !== secret) {
      throw new PlatformError('INVALID_CONFIG', `the access key id ${id} is given two different secrets`);
    }
    pairs.set(id, secret);
  }
  return pairs;
}
/** The routes that serve function URLs: each checks a key itself, where its URL's `auth` asks for one. */
export const functionUrlRoutePaths: ReadonlySet<string> = new Set(['/fn/:name', '/fn/:name/*']);

/**
 * Whether `host` (an address to listen on) is reachable only from this machine: `localhost`, 127.0.0.0/8, `::1`
 * (also as an IPv4-mapped or bracketed address). Other names count as reachable from elsewhere.
 *
 * @example
 * isLoopbackHost('127.0.0.5'); // true
 * isLoopbackHost('0.0.0.0'); // false
 */
export function isLoopbackHost(host: string): boolean {
  const name = host
    .trim()
    .toLowerCase()
    .replace(/^\[(.*)\]$/, '$1');
  if (name === 'localhost' || name === 'localhost.') return true;
  if (isIPv4(name)) return name.startsWith('127.');
  if (!isIPv6(name)) return false;
  // The URL parser writes IPv6 addresses in one canonical form: ::1, and ::ffff:7fxx:xxxx for ::ffff:127.x.x.x.
  const canonical = new URL(`http://[${name}]/`).hostname;
  return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:[0-9a-f]{1,4}\]$/.test(canonical);
}

/**
 * The API keys a gateway listening on `host` enforces, from `--api-key` values and `SAVASSAN_API_KEY` (each may hold
 * several keys separated by commas; blanks are ignored); a key `ACCESS_KEY_ID:SECRET` is also an AWS access key pair
 * (`accessKeysFrom`). Throws `INVALID_CONFIG` when `host` is not a loopback
 * address and there is no key: the API would be open to the network. An empty answer means no authentication.
 *
 * @example
 * requireApiKeys('0.0.0.0', ['k1,k2']); // ['k1', 'k2']
 * requireApiKeys('127.0.0.1', []); // [] (no authentication on loopback)
 * requireApiKeys('0.0.0.0', []); // throws INVALID_CONFIG
 */
export function requireApiKeys(host: string, values: readonly string[]): string[] {
  const keys = [
    ...new Set(
      values
        .flatMap((value) => value.split(','))
        .map((key) => key.trim())
        .filter((key) => key !== ''),
    ),
  ];
  for (const key of keys) {
    // A key travels in an HTTP header after "Bearer ": visible ASCII only.
    if (!/^[\x21-\x7e]+$/.test(key)) {
      throw new PlatformError('INVALID_CONFIG', 'an API key may hold only visible ASCII characters (no spaces)');
    }
  }
  accessKeysFrom(keys);
  if (keys.length === 0 && !isLoopbackHost(host)) {
    throw new PlatformError(
      'INVALID_CONFIG',
      `listening on ${host} needs an API key: set SAVASSAN_API_KEY or pass --api-key-file FILE`,
    );
  }
  return keys;
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** The WebSocket subprotocol of the live log stream, which the server answers with. */
export const logsSubprotocol = 'savassan.logs.v1';

/** The WebSocket subprotocol of a fine-tune run's live view (`/v1/intelligence/runs/{id}/ws`). */
export const runsSubprotocol = 'savassan.runs.v1';

/** The subprotocols the gateway's WebSockets answer with (a `bearer.<key>` one is never echoed). */
export const websocketSubprotocols: readonly string[] = [logsSubprotocol, runsSubprotocol];

/**
 * How a browser's WebSocket carries its key, in the subprotocol list: `['savassan.logs.v1', 'bearer.' + KEY]` (or
 * `savassan.runs.v1` for a run's live view).
 */
export const bearerSubprotocolPrefix = 'bearer.';

/**
 * The WebSocket routes that take a key in the subprotocol list (browsers cannot set headers on a WebSocket); never
 * in the query string, which ends up in access logs and browser history.
 */
export const subprotocolKeyRoutes: ReadonlySet<string> = new Set([
  '/v1/functions/:name/logs/ws',
  '/v1/intelligence/runs/:id/ws',
]);

/**
 * The credentials a request presents: the token of `Authorization: Bearer <key>`, and `x-api-key`; with
 * `subprotocol`, each `bearer.<key>` of `Sec-WebSocket-Protocol` too.
 */
function presentedKeys(headers: IncomingHttpHeaders, subprotocol = false): string[] {
  const presented: string[] = [];
  const protocols = subprotocol ? headers['sec-websocket-protocol'] : undefined;
  for (const protocol of protocols === undefined ? [] : protocols.split(',')) {
    const name = protocol.trim();
    if (name.startsWith(bearerSubprotocolPrefix)) presented.push(name.slice(bearerSubprotocolPrefix.length));
  }
  const authorization = headers.authorization;
  const bearer = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (bearer?.[1] !== undefined) presented.push(bearer[1]);
  const header = headers['x-api-key'];
  for (const value of Array.isArray(header) ? header : header === undefined ? [] : [header]) {
    presented.push(value.trim());
  }
  return presented;
}

/**
 * Whether a request's headers present one of `keys`, and how many credentials they present. Keys are compared as
 * SHA-256 digests in constant time, against every key, so neither a key's length nor which key matched shows in
 * the timing. `keys` must not be empty.
 */
export type ApiKeyCheck = (
  headers: IncomingHttpHeaders,
  /** Take `bearer.<key>` subprotocols as keys (`subprotocolKeyRoutes`). */
  subprotocol?: boolean,
) => { presented: number; valid: boolean };

export function apiKeyCheck(keys: readonly string[]): ApiKeyCheck {
  if (keys.length === 0) throw new PlatformError('INVALID_CONFIG', 'an API key check needs at least one key');
  const expected = keys.map(digest);
  const matches = (presented: string): boolean => {
    const candidate = digest(presented);
    let found = false;
    for (const key of expected) found = timingSafeEqual(candidate, key) || found;
    return found;
  };
  return (headers, subprotocol) => {
    const presented = presentedKeys(headers, subprotocol);
    return { presented: presented.length, valid: presented.some(matches) };
  };
}

/**
 * A Fastify `onRequest` hook that answers 401 `UNAUTHORIZED` (with `WWW-Authenticate: Bearer`) to any request
 * outside `publicRoutes` and `functionUrlRoutePaths` that does not present one of `keys` as `Authorization: Bearer <key>`
 * or `x-api-key: <key>`. Unknown routes are refused too, so a caller without a key learns nothing about which routes
 * exist. The Lambda API's routes (`isSignedRoute`) are left to their SigV4 check, function URLs to their own. `keys`
 * must not be empty (no keys: do not add the hook).
 *
 * @example
 * app.addHook('onRequest', apiKeyHook(['k1']));
 */
export function apiKeyHook(keys: readonly string[]): onRequestHookHandler {
  const check = apiKeyCheck(keys);
  return (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const route = request.routeOptions.url;
    if (route !== undefined && (publicRoutes.has(route) || isSignedRoute(route) || functionUrlRoutePaths.has(route))) {
      done();
      return;
    }
    const { presented, valid } = check(request.headers, route !== undefined && subprotocolKeyRoutes.has(route));
    if (valid) {
      done();
      return;
    }
    void reply.header('www-authenticate', 'Bearer realm="savassan"');
    done(
      new PlatformError(
        'UNAUTHORIZED',
        presented === 0
          ? 'this API needs an API key: send "Authorization: Bearer <key>" or "x-api-key: <key>" (the CLI and client read SAVASSAN_API_KEY)'
          : 'the API key is not valid',
      ),
    );
  };
}

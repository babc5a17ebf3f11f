/**
 * A small JSON client for FlyteAdmin's REST gateway (`/api/v1`): one request at a time with a timeout, a bounded
 * response, an optional bearer token, and FlyteAdmin's errors read into `PlatformError`s.
 */
import { PlatformError } from '../../core/errors.js';
import type { GatewayErrorJson } from './flyte-json.js';

export interface FlyteAdminClientOptions {
  /** FlyteAdmin's HTTP address, e.g. `http://flyteadmin.flyte:80`. */
  url: string;
  /** Sent as `Authorization: Bearer TOKEN`. */
  token?: string | undefined;
  /** Per request (default 10 000). */
  timeoutMs?: number | undefined;
  /** Largest response body read (default 8 MiB). */
  maxResponseBytes?: number | undefined;
}

/** gRPC status codes FlyteAdmin puts in its error bodies. */
const grpcCodes = {
  INVALID_ARGUMENT: 3,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  FAILED_PRECONDITION: 9,
  UNAUTHENTICATED: 16,
} as const;

/** Text as it may appear in a message or log: the `user:password@` of any URL in it left out. */
export function redactUrl(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/?#@\s]*@/gi, '$1');
}

export class FlyteAdminClient {
  /** FlyteAdmin's address, without credentials (those go in an `Authorization: Basic` header). */
  readonly url: string;
  readonly #token: string | undefined;
  readonly #basic: string | undefined;
  readonly #timeoutMs: number;
  readonly #maxResponseBytes: number;

  constructor(options: FlyteAdminClientOptions) {
    let parsed: URL;
    try {
      parsed = new URL(options.url);
    } catch {
      throw new PlatformError('BAD_REQUEST', `the Flyte URL ${redactUrl(options.url)} is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
      throw new PlatformError('BAD_REQUEST', `the Flyte URL ${redactUrl(options.url)} must be http or https`);
    }
    if (parsed.username !== '' || parsed.password !== '') {
      const user = decodeURIComponent(parsed.username);
      const password = decodeURIComponent(parsed.password);
      this.#basic = Buffer.from(`${user}:${password}`).toString('base64');
      parsed.username = '';
      parsed.password = '';
    }
    this.url = parsed.href.replace(/\/+$/, '');
    this.#token = options.token === '' ? undefined : options.token;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#maxResponseBytes = options.maxResponseBytes ?? 8 * 1024 * 1024;
    if (!Number.isInteger(this.#timeoutMs) || this.#timeoutMs < 1 || this.#timeoutMs > 600_000) {
      throw new PlatformError('BAD_REQUEST', `the Flyte timeout must be 1-600000 ms, got ${this.#timeoutMs}`);
    }
    if (!Number.isInteger(this.#maxResponseBytes) || this.#maxResponseBytes < 1) {
      throw new PlatformError('BAD_REQUEST', `the Flyte response bound must be a positive byte count`);
    }
  }

  get<T>(path: string, query?: Record<string, string | undefined>): Promise<T> {
    return this.request<T>('GET', path, undefined, query);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  delete<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('DELETE', path, body);
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    query?: Record<string, string | undefined>,
  ): Promise<T> {
    const url = new URL(`${this.url}${path}`);
    for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) url.searchParams.set(key, value);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.#token !== undefined) headers['authorization'] = `Bearer ${this.#token}`;
    else if (this.#basic !== undefined) headers['authorization'] = `Basic ${this.#basic}`;
    const what = `FlyteAdmin ${method} ${url.pathname}`;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.#timeoutMs),
        // A redirect could carry the token to another host: FlyteAdmin's API does not redirect.
        redirect: 'error',
      });
      text = await this.#readBody(response, what);
    } catch (err) {
      if (err instanceof PlatformError) throw err;
      const timedOut = err instanceof Error && err.name === 'TimeoutError';
      throw new PlatformError(
        'UNAVAILABLE',
        timedOut
          ? `${what}: no answer within ${this.#timeoutMs} ms`
          : `${what}: cannot reach ${this.url}: ${redactUrl(describeCause(err))}`,
        { cause: err },
      );
    }
    let json: unknown;
    try {
      json = text === '' ? {} : JSON.parse(text);
    } catch (err) {
      throw new PlatformError('UNAVAILABLE', `${what}: answered ${response.status} with a body that is not JSON`, {
        cause: err,
      });
    }
    if (response.ok) {
      if (json === null || typeof json !== 'object' || Array.isArray(json)) {
        throw new PlatformError('UNAVAILABLE', `${what}: answered with JSON that is not an object`);
      }
      return json as T;
    }
    throw errorFromResponse(response.status, json, what);
  }

  async #readBody(response: Response, what: string): Promise<string> {
    const declared = Number(response.headers.get('content-length') ?? Number.NaN);
    if (declared > this.#maxResponseBytes) {
      await response.body?.cancel();
      throw tooLarge(what, this.#maxResponseBytes);
    }
    if (response.body === null) return '';
    const chunks: Uint8Array[] = [];
    let size = 0;
    // Leaving the loop early cancels the stream.
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      size += chunk.byteLength;
      if (size > this.#maxResponseBytes) throw tooLarge(what, this.#maxResponseBytes);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

function tooLarge(what: string, limit: number): PlatformError {
  return new PlatformError('UNAVAILABLE', `${what}: the answer is over ${limit} bytes`);
}

function describeCause(err: unknown): string {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  if (cause instanceof Error) {
    const code = (cause as { code?: unknown }).code;
    return typeof code === 'string' ? `${code} ${cause.message}` : cause.message;
  }
  return String(cause);
}

/** FlyteAdmin's error answer as a PlatformError: by gRPC code when it gives one, else by HTTP status. */
export function errorFromResponse(status: number, body: unknown, what: string): PlatformError {
  const error = (body !== null && typeof body === 'object' ? body : {}) as GatewayErrorJson;
  const message =
    typeof error.message === 'string' ? error.message : typeof error.error === 'string' ? error.error : '';
  const said = `${what}: ${message === '' ? `HTTP ${status}` : message}`;
  const details = { flyteStatus: status, ...(typeof error.code === 'number' ? { flyteCode: error.code } : {}) };
  switch (error.code) {
    case grpcCodes.NOT_FOUND:
      return new PlatformError('NOT_FOUND', said, { details });
    case grpcCodes.ALREADY_EXISTS:
    case grpcCodes.FAILED_PRECONDITION:
      return new PlatformError('CONFLICT', said, { details });
    case grpcCodes.INVALID_ARGUMENT:
      return new PlatformError('BAD_REQUEST', said, { details });
    case grpcCodes.UNAUTHENTICATED:
    case grpcCodes.PERMISSION_DENIED:
      return new PlatformError('UNAVAILABLE', `${said} (check the Flyte token)`, { details });
  }
  if (status === 404) return new PlatformError('NOT_FOUND', said, { details });
  if (status === 409) return new PlatformError('CONFLICT', said, { details });
  if (status === 400) return new PlatformError('BAD_REQUEST', said, { details });
  if (status === 401 || status === 403) {
    return new PlatformError('UNAVAILABLE', `${said} (check the Flyte token)`, { details });
  }
  return new PlatformError('UNAVAILABLE', said, { details });
}

/** A path segment, escaped. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}

import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

import { PlatformError } from '../../core/errors.js';

/** Where a pod's service account credentials are mounted. */
export const serviceAccountDir = '/var/run/secrets/kubernetes.io/serviceaccount';

export interface KubernetesClientOptions {
  /** The API server. Default `https://kubernetes.default.svc` (from inside the cluster). */
  apiUrl?: string;
  /** The bearer token, read again for every request (projected tokens rotate). Default: the service account's. */
  tokenFile?: string;
  /** The CA that signed the API server's certificate (PEM). Default: the service account's. */
  caFile?: string;
  /** How long one request may take. Default 30 s. */
  timeoutMs?: number;
}

/** The longest answer read from the API server. */
const maxResponseBytes = 8 * 1024 * 1024;

/**
 * A minimal client of the Kubernetes API: JSON requests with the service account's token, over TLS with its CA
 * (node:https: global fetch cannot be given a CA without undici's Agent, which is not a dependency). Failures become
 * PlatformErrors: 404 NOT_FOUND, 409 CONFLICT, anything else UNAVAILABLE with the API server's message.
 */
export class KubernetesClient {
  readonly #apiUrl: URL;
  readonly #tokenFile: string;
  readonly #caFile: string;
  readonly #timeoutMs: number;
  #ca: Promise<string> | undefined;

  constructor(options: KubernetesClientOptions = {}) {
    this.#apiUrl = new URL(options.apiUrl ?? 'https://kubernetes.default.svc');
    this.#tokenFile = options.tokenFile ?? `${serviceAccountDir}/token`;
    this.#caFile = options.caFile ?? `${serviceAccountDir}/ca.crt`;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  /** A JSON merge patch (RFC 7386): objects merge, anything else replaces. */
  mergePatch<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PATCH', path, body, 'application/merge-patch+json');
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  async request<T>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const url = new URL(path, this.#apiUrl);
    const token = (await readFile(this.#tokenFile, 'utf8').catch(() => '')).trim();
    const https = url.protocol === 'https:';
    this.#ca ??= https ? readFile(this.#caFile, 'utf8') : Promise.resolve('');
    const ca = await this.#ca.catch((err: unknown) => {
      this.#ca = undefined;
      throw new PlatformError('UNAVAILABLE', `cannot read the Kubernetes API's CA ${this.#caFile}: ${String(err)}`);
    });
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (token !== '') headers['authorization'] = `Bearer ${token}`;
    if (payload !== undefined) headers['content-type'] = contentType;

    const response = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const onResponse = (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxResponseBytes) {
            res.destroy(new Error(`the answer is over ${maxResponseBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      };
      const req = https
        ? httpsRequest(url, { method, headers, ca: ca === '' ? undefined : ca, timeout: this.#timeoutMs }, onResponse)
        : httpRequest(url, { method, headers, timeout: this.#timeoutMs }, onResponse);
      req.on('timeout', () => req.destroy(new Error(`no answer within ${this.#timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    }).catch((err: unknown) => {
      throw new PlatformError(
        'UNAVAILABLE',
        `the Kubernetes API at ${this.#apiUrl.origin} is unavailable: ${String(err)}`,
        {
          cause: err,
        },
      );
    });

    if (response.status >= 200 && response.status < 300) return JSON.parse(response.text) as T;
    const message = apiMessage(response.text);
    const what = `Kubernetes API ${method} ${url.pathname}: ${response.status} ${message}`;
    if (response.status === 404) throw new PlatformError('NOT_FOUND', what);
    if (response.status === 409) throw new PlatformError('CONFLICT', what);
    if (response.status === 401 || response.status === 403) {
      throw new PlatformError(
        'UNAVAILABLE',
        `${what} (the service account needs get/list/create/patch on deployments, replicasets and pods of its namespace)`,
      );
    }
    throw new PlatformError('UNAVAILABLE', what);
  }
}

/** The `message` of a Kubernetes Status answer, else the start of the text. */
function apiMessage(text: string): string {
  try {
    const status = JSON.parse(text) as { message?: unknown };
    if (typeof status.message === 'string') return status.message.slice(0, 500);
  } catch {
    // not JSON
  }
  return text.slice(0, 200);
}

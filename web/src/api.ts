// The console's only way to the platform: the public HTTP API (/v1), with the API key the user logged in with (kept in
// sessionStorage, sent as `Authorization: Bearer`). A 401 anywhere sends the user back to the login form.

const keyStorage = 'savassan.apiKey';

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(keyStorage);
  } catch {
    return null;
  }
}

export function storeKey(key: string | null): void {
  try {
    if (key === null) sessionStorage.removeItem(keyStorage);
    else sessionStorage.setItem(keyStorage, key);
  } catch {
    // Storage refused (private mode): the key lives as long as the page.
  }
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** A function's failure: the invocation it ended. */
    readonly invocationId: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type UnauthorizedListener = (message: string) => void;
const unauthorizedListeners = new Set<UnauthorizedListener>();

/** Called with the server's message when a request is refused for its key (401). */
export function onUnauthorized(listener: UnauthorizedListener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

let memoryKey: string | null = null;

export function currentKey(): string | null {
  return memoryKey ?? storedKey();
}

export function setKey(key: string | null): void {
  memoryKey = key;
  storeKey(key);
}

function headers(extra: Record<string, string> = {}, key = currentKey()): Record<string, string> {
  return key === null ? extra : { ...extra, authorization: `Bearer ${key}` };
}

async function errorOf(response: Response): Promise<ApiError> {
  const text = await response.text().catch(() => '');
  try {
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string; invocationId?: string };
      code?: string;
      message?: string;
    };
    // The Flyte-shaped API (/api/v1) answers `{"code","message","kind"}`.
    if (body.error === undefined && typeof body.message === 'string') {
      return new ApiError(response.status, body.code ?? 'ERROR', body.message);
    }
    if (body.error !== undefined) {
      return new ApiError(
        response.status,
        body.error.code ?? 'ERROR',
        body.error.message ?? response.statusText,
        typeof body.error.invocationId === 'string' ? body.error.invocationId : null,
      );
    }
  } catch {
    // Not JSON: the text itself says what went wrong.
  }
  return new ApiError(response.status, 'ERROR', text.trim() || `${response.status} ${response.statusText}`);
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  /** The body as text, sent as is (an invoke's event). */
  rawBody?: string;
  /** The body as bytes, sent as is (an uploaded image). */
  blobBody?: Blob;
  signal?: AbortSignal;
  /** Try this key instead of the current one (the login form). */
  key?: string;
}

export async function request(path: string, options: RequestOptions = {}): Promise<Response> {
  const body = options.rawBody ?? (options.body === undefined ? undefined : JSON.stringify(options.body));
  const contentType: Record<string, string> =
    options.blobBody !== undefined
      ? { 'content-type': 'application/octet-stream' }
      : body === undefined
        ? {}
        : { 'content-type': 'application/json' };
  const response = await fetch(path, {
    method: options.method ?? 'GET',
    headers: headers(contentType, options.key ?? currentKey()),
    body: options.blobBody ?? body,
    signal: options.signal,
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && options.key === undefined) {
      for (const listener of unauthorizedListeners) listener(error.message);
    }
    throw error;
  }
  return response;
}

export async function getJson<T>(path: string, options: RequestOptions = {}): Promise<T> {
  return (await request(path, options)).json() as Promise<T>;
}

export async function getText(path: string, options: RequestOptions = {}): Promise<string> {
  return (await request(path, options)).text();
}

/** Whether the API asks for a key: `/v1/functions` answers 401 without one. */
export async function keysRequired(): Promise<boolean> {
  const response = await fetch('/v1/functions', { method: 'GET' }).catch(() => null);
  if (response === null) return false;
  return response.status === 401;
}

export const enc = encodeURIComponent;

// The shapes the console reads (the fields it uses; answers carry more).

export interface FunctionConfig {
  handler: string;
  runtime: string;
  env: Record<string, string>;
  secrets: Record<string, string>;
  timeoutSeconds: number;
  memoryMB: number;
  maxInstances: number;
  minInstances: number;
  idleSeconds: number;
  network: boolean;
  allowNet: string[];
  retries: number;
  maxEventAgeSeconds: number;
  retryDelaySeconds: number;
  asyncConcurrency: number;
  onSuccess: string | null;
  onFailure: string | null;
}

export interface FunctionView {
  name: string;
  currentVersion: number;
  createdAt: string;
  updatedAt: string;
  codeSha256: string;
  codeSizeBytes: number;
  config: FunctionConfig;
}

export interface VersionView {
  version: number;
  current: boolean;
  codeSizeBytes: number;
  createdAt: string;
  traffic: number;
  config: FunctionConfig;
  stats: { invocations: number; errors: number; p99Ms: number | null };
}

export interface AliasView {
  name: string;
  functionName: string;
  weights: Record<string, number>;
  stickyHeader: string | null;
  updatedAt: string;
}

export interface RolloutView {
  id: string;
  alias: string;
  version: number;
  baseline: number;
  state: 'running' | 'promoted' | 'rolled_back' | 'aborted';
  step: number;
  stepIndex: number;
  steps: number[];
  weights: Record<string, number>;
  history: {
    at: string;
    step: number;
    canary: { requests: number; errors: number; p99Ms: number | null };
    baseline: { requests: number; errors: number; p99Ms: number | null };
    decision: string;
    reason: string;
  }[];
  createdAt: string;
  endedAt: string | null;
}

export interface InvocationView {
  id: string;
  functionName: string;
  version: number;
  start: 'cold' | 'warm';
  status: string;
  initMs: number | null;
  durationMs: number;
  peakMemoryBytes: number | null;
  memoryMB: number | null;
  error: { name: string; message: string; stack?: string } | null;
  logKey: string | null;
  nodeId: string | null;
  createdAt: string;
  report: string;
  /** Where tracing records it: the trace's id, or the W3C `traceparent` it is read from. */
  traceId?: string | null;
  traceparent?: string | null;
}

export interface DeadLetterView {
  invocationId: string;
  functionName: string;
  state: string;
  qualifier: string | null;
  source: string | null;
  enqueuedAt: string;
  deliveryCount: number;
  attempts: { startedAt: string; status: string; durationMs: number; error: string | null }[];
  deadLetterReason: string | null;
  deadLetteredAt: string | null;
}

export interface NodeView {
  nodeId: string;
  status: string;
  sandboxRuntime: string;
  isolating: boolean;
  sandboxes: number;
  /** Cluster mode only. */
  capacity?: number;
  agentAddress?: string;
  routed?: boolean;
  enforcement: Record<string, { mechanism?: string; enforced?: boolean; note?: string }>;
  stemCells: { idle: number; starting: number; memoryBytes?: number | null };
  budget: { memoryMB: number; pids: number; usedMemoryMB: number; usedPids: number };
  warnings: string[];
}

export interface ClusterView {
  mode: 'embedded' | 'cluster';
  leader: { id: string; since: string } | null;
  routing: {
    version: number | string;
    updatedAt: string;
    entries: { functionName: string; version: number; nodes: string[] }[];
  } | null;
}

export interface StatsPoint {
  start: string;
  invocations: number;
  errors: number;
  p99Ms: number | null;
}

export interface FunctionsStats {
  from: string;
  to: string;
  stepSeconds: number;
  functions: { name: string; invocations: number; errors: number; p99Ms: number | null; series: StatsPoint[] }[];
}

export interface VersionStats {
  version: number;
  invocations: number;
  errors: number;
  p50Ms: number | null;
  p99Ms: number | null;
  series: (StatsPoint & { p50Ms: number | null })[];
}

export interface FunctionStats {
  from: string;
  to: string;
  stepSeconds: number;
  versions: VersionStats[];
}

/** The invoke answer: the function's result as text, and what the headers say about the run. */
export interface InvokeResult {
  status: number;
  body: string;
  invocationId: string | null;
  version: string | null;
  start: string | null;
  durationMs: string | null;
}

export async function invoke(name: string, event: string, qualifier?: string): Promise<InvokeResult> {
  const query = qualifier === undefined || qualifier === '' ? '' : `?qualifier=${enc(qualifier)}`;
  let response: Response;
  try {
    response = await request(`/v1/functions/${enc(name)}/invoke${query}`, { method: 'POST', rawBody: event });
  } catch (err) {
    if (err instanceof ApiError && err.status !== 401) {
      return {
        status: err.status,
        body: `${err.code}: ${err.message}`,
        invocationId: err.invocationId,
        version: null,
        start: null,
        durationMs: null,
      };
    }
    throw err;
  }
  return {
    status: response.status,
    body: await response.text(),
    invocationId: response.headers.get('x-savassan-invocation-id'),
    version: response.headers.get('x-savassan-version'),
    start: response.headers.get('x-savassan-start'),
    durationMs: response.headers.get('x-savassan-duration-ms'),
  };
}

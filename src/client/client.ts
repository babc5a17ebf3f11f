import type { Agent as HttpAgent, IncomingHttpHeaders } from 'node:http';
import { PlatformError } from '../core/errors.js';
import { maxEventBytes } from '../core/function-config.js';
import type { FunctionConfig } from '../core/function-config.js';
import type { FunctionConfigPatch, VersionChange } from '../core/function-config-patch.js';
import type { ExecutionPage, ExecutionView, NodeExecutionView } from '../core/ports/execution-backend.js';
import type { ExecutionKey } from '../core/ports/workflow-store.js';
import type { FineTunePlan, PlanProblem, PlanStatus } from '../core/plan.js';
import type { CurationFileError, CurationProgress, CurationStatus, ImageForFeedback } from '../core/curation.js';
import type { WorkflowSpec } from '../core/workflow-spec.js';
import type { ControlPlaneView, FollowerView, MemberView, UpgradeStatus } from '../core/control-plane-view.js';
import type { BuildInfo } from '../core/build-info.js';

export type { ExecutionKey, ExecutionPage, ExecutionView, NodeExecutionView, WorkflowSpec };
export type { BuildInfo, ControlPlaneView, FollowerView, MemberView, UpgradeStatus };

/** `POST /v1/control-plane/handover`'s answer: who led, who leads now, its term, and how long writes waited. */
export interface HandoverAnswer {
  from: string;
  to: string;
  term: number;
  pausedMs: number;
}

/** The headers of an answer, as far as callers read them (the Fetch API's `Headers` satisfies it too). */
export interface AnswerHeaders {
  get(name: string): string | null;
}

/** A whole answer: status, headers and body text. */
export interface Answer {
  status: number;
  headers: AnswerHeaders;
  text: string;
}

const noHeaders: AnswerHeaders = { get: () => null };

/** The project and domain of executions when none is given (CLI, console, client). */
export const defaultProject = 'savassan';
export const defaultDomain = 'development';

function executionPath(id: ExecutionKey): string {
  return [id.project, id.domain, id.name].map(encodeURIComponent).join('/');
}

function headersOf(raw: IncomingHttpHeaders): AnswerHeaders {
  return {
    get(name) {
      const value = raw[name.toLowerCase()];
      return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
    },
  };
}

/** The ApiError of an error answer (`{ error: { code, message, ... } }`, or any text). */
function apiError(status: number, text: string, headers: AnswerHeaders): ApiError {
  let parsed: Record<string, unknown> = {};
  try {
    parsed = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON
  }
  // `{ error: { code, message } }`, or under /api/v1 (the Flyte-shaped API) `{ code, message, kind }`.
  const error = (parsed.error ?? (typeof parsed.code === 'string' ? parsed : {})) as Record<string, unknown>;
  return new ApiError(
    status,
    typeof error.code === 'string' ? error.code : `HTTP_${status}`,
    typeof error.message === 'string' ? error.message : text.slice(0, 500),
    error,
    headers,
  );
}

/** An error answer from the API: `{ error: { code, message, ... } }` plus the HTTP status. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    /** The server's message, without the `[CODE]` prefix of `message`. */
    readonly rawMessage: string,
    readonly body: Record<string, unknown>,
    readonly headers: AnswerHeaders,
  ) {
    super(`[${code}] ${rawMessage}`);
  }
}

/** What an invocation's answer says of it, success or failure (from its headers). */
export interface InvocationFacts {
  invocationId: string;
  start: 'cold' | 'warm';
  version: number;
  /** The alias that chose the version; null when a version number was invoked. */
  alias: string | null;
  durationMs: number;
  initMs: number | null;
  peakMemoryBytes: number | null;
  memoryMB: number | null;
}

export interface InvokeResponse extends InvocationFacts {
  /** The function's result as JSON text. */
  payload: string;
}

/** The facts of an invocation from its answer's headers; null when the answer is not an invocation's. */
export function invocationFacts(headers: AnswerHeaders): InvocationFacts | null {
  const id = headers.get('x-savassan-invocation-id');
  if (id === null) return null;
  const number = (name: string): number | null => {
    const value = headers.get(name);
    return value === null ? null : Number(value);
  };
  return {
    invocationId: id,
    start: headers.get('x-savassan-start') === 'cold' ? 'cold' : 'warm',
    version: number('x-savassan-version') ?? 0,
    alias: headers.get('x-savassan-alias'),
    durationMs: number('x-savassan-duration-ms') ?? 0,
    initMs: number('x-savassan-init-ms'),
    peakMemoryBytes: number('x-savassan-memory-used'),
    memoryMB: number('x-savassan-memory-mb'),
  };
}

export interface ClientOptions {
  /** Default `SAVASSAN_URL` or http://127.0.0.1:8080. */
  url?: string;
  /**
   * Sent as `Authorization: Bearer <key>` on every request. Default `SAVASSAN_API_KEY` (the first key where it lists
   * several separated by commas, as `savassan start` accepts). Blank: no key.
   */
  apiKey?: string;
}

/**
 * HTTP client for the Savassan API v1.
 *
 * @example
 * const client = new SavassanClient({ url: 'http://127.0.0.1:8080', apiKey: process.env.MY_KEY });
 * await client.deploy('hello', await readBundle('./hello'), { timeoutSeconds: 5 });
 * const { payload, start } = await client.invoke('hello', { name: 'Ada' });
 */
export class SavassanClient {
  readonly url: string;
  readonly #apiKey: string | undefined;
  #agent: HttpAgent | undefined;

  constructor(options: ClientOptions = {}) {
    this.url = (options.url ?? process.env.SAVASSAN_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
    const key = (options.apiKey ?? process.env.SAVASSAN_API_KEY?.split(',')[0] ?? '').trim();
    this.#apiKey = key === '' ? undefined : key;
  }

  async request(method: string, path: string, body?: string, contentType = 'application/json'): Promise<Response> {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = contentType;
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, { method, headers, body });
    } catch (err) {
      throw this.#unreachable(err as Error);
    }
    if (response.status >= 400) throw apiError(response.status, await response.text(), response.headers);
    return response;
  }

  /**
   * One request whose whole answer is wanted at once, over `node:http(s)` rather than `fetch`: a command of the CLI
   * then neither loads the Fetch API (~30 ms) nor waits for fetch's kept-alive socket before it can exit. Connections
   * are kept alive for the next request; an idle one does not keep the process running.
   */
  async send(method: string, path: string, body?: string, extraHeaders: Record<string, string> = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...extraHeaders };
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(body));
    }
    return this.#exchange(method, path, { headers, body });
  }

  /** One request over `node:http(s)`: the body is text, bytes or a stream piped as it is read. */
  async #exchange(
    method: string,
    path: string,
    options: { headers: Record<string, string>; body?: string | Uint8Array | NodeJS.ReadableStream | undefined },
  ): Promise<Answer> {
    const url = new URL(`${this.url}${path}`);
    const { Agent, request } = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
    this.#agent ??= new Agent({ keepAlive: true });
    const agent = this.#agent;
    const headers: Record<string, string> = { ...options.headers };
    if (this.#apiKey !== undefined) headers.authorization = `Bearer ${this.#apiKey}`;
    const { body } = options;
    const answer = await new Promise<Answer>((resolve, reject) => {
      const req = request(url, { method, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: headersOf(res.headers),
            text: Buffer.concat(chunks).toString('utf8'),
          }),
        );
      });
      req.on('error', (err) => reject(this.#unreachable(err)));
      if (body === undefined || typeof body === 'string' || body instanceof Uint8Array) {
        req.end(body);
      } else {
        body.on('error', (err: Error) => {
          req.destroy();
          reject(err);
        });
        body.pipe(req);
      }
    });
    if (answer.status >= 400) throw apiError(answer.status, answer.text, answer.headers);
    return answer;
  }

  #unreachable(err: Error): PlatformError {
    const reason = err.cause instanceof Error ? err.cause.message : err.message;
    return new PlatformError(
      'UNAVAILABLE',
      `cannot reach Savassan at ${this.url} (${reason}); is it running? Start it with "savassan start" or set SAVASSAN_URL`,
    );
  }

  async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const answer = await this.send(method, path, body === undefined ? undefined : JSON.stringify(body));
    if (answer.status === 204) return undefined as T;
    return JSON.parse(answer.text) as T;
  }

  /**
   * Deploy a new version: settings left out keep the current version's values, `null` restores a default. It gets
   * all of the `live` alias's traffic unless `promote` is false (then an alias or a rollout moves traffic to it).
   */
  deploy(
    name: string,
    zip: Uint8Array,
    config: FunctionConfigPatch = {},
    options: { promote?: boolean } = {},
  ): Promise<DeployAnswer> {
    const query = options.promote === false ? '?promote=false' : '';
    return this.json('PUT', `/v1/functions/${encodeURIComponent(name)}${query}`, {
      code: Buffer.from(zip).toString('base64'),
      ...config,
    });
  }

  /**
   * Invoke synchronously. `event` is sent as JSON; pass a string to send JSON text as is. `qualifier` names a version
   * or an alias (default `live`); `headers` go with the request (an alias's sticky header).
   *
   * @example
   * await client.invoke('shop', { item: 1 }, { qualifier: 'beta', headers: { 'x-user-id': 'u-42' } });
   */
  async invoke(
    name: string,
    event: unknown = {},
    options: { qualifier?: string | undefined; headers?: Record<string, string> } = {},
  ): Promise<InvokeResponse> {
    const body = typeof event === 'string' ? event : JSON.stringify(event);
    // The server refuses a larger event from its length and closes the connection, which fetch reports as a
    // write error rather than the 413: say it here instead.
    const size = Buffer.byteLength(body);
    if (size > maxEventBytes) {
      throw new ApiError(
        413,
        'PAYLOAD_TOO_LARGE',
        `the event is ${size} bytes, over the ${maxEventBytes}-byte limit`,
        {},
        noHeaders,
      );
    }
    const query = options.qualifier === undefined ? '' : `?qualifier=${encodeURIComponent(options.qualifier)}`;
    const path = `/v1/functions/${encodeURIComponent(name)}/invoke${query}`;
    const response = await this.send('POST', path, body, options.headers);
    const facts = invocationFacts(response.headers);
    if (facts === null) throw new PlatformError('INTERNAL', 'the answer names no invocation');
    return { payload: response.text, ...facts };
  }

  /**
   * Invoke asynchronously: resolves once the event is queued durably, with its id (`getAsyncInvocation` follows it).
   * `idempotencyKey`: the same key for the same function within 24 h gives back the first event's id.
   *
   * @example
   * const { invocationId } = await client.invokeAsync('billing', { order: 42 }, { idempotencyKey: 'order-42' });
   */
  async invokeAsync(
    name: string,
    event: unknown = {},
    options: { qualifier?: string | undefined; idempotencyKey?: string | undefined } = {},
  ): Promise<{ invocationId: string; duplicate: boolean }> {
    const body = typeof event === 'string' ? event : JSON.stringify(event);
    const query = options.qualifier === undefined ? '' : `&qualifier=${encodeURIComponent(options.qualifier)}`;
    const headers = options.idempotencyKey === undefined ? undefined : { 'idempotency-key': options.idempotencyKey };
    const answer = await this.send('POST', `${functionPath(name)}/invoke?async=1${query}`, body, headers);
    return JSON.parse(answer.text) as { invocationId: string; duplicate: boolean };
  }

  /**
   * What `GET /v1/invocations/{id}` shows: an asynchronous invocation (`invocationType: 'event'`: its state and every
   * attempt), or the record of one that ran.
   */
  getAsyncInvocation(id: string): Promise<AsyncInvocationAnswer | InvocationAnswer> {
    return this.json('GET', `/v1/invocations/${encodeURIComponent(id)}`);
  }

  listDeadLetters(name: string, limit?: number): Promise<{ deadLetters: AsyncInvocationAnswer[] }> {
    return this.json('GET', `${functionPath(name)}/dead-letters${limit === undefined ? '' : `?limit=${limit}`}`);
  }

  getDeadLetter(name: string, id: string): Promise<AsyncInvocationAnswer> {
    return this.json('GET', `${functionPath(name)}/dead-letters/${encodeURIComponent(id)}`);
  }

  /** Queue a dead letter again, due now. */
  redriveDeadLetter(name: string, id: string): Promise<AsyncInvocationAnswer> {
    return this.json('POST', `${functionPath(name)}/dead-letters/${encodeURIComponent(id)}/redrive`);
  }

  /** Delete a function's dead letters; returns how many. */
  purgeDeadLetters(name: string): Promise<{ purged: number }> {
    return this.json('DELETE', `${functionPath(name)}/dead-letters`);
  }

  listFunctions(): Promise<{ functions: FunctionAnswer[] }> {
    return this.json('GET', '/v1/functions');
  }

  getFunction(name: string): Promise<FunctionAnswer> {
    return this.json('GET', `/v1/functions/${encodeURIComponent(name)}`);
  }

  deleteFunction(name: string): Promise<void> {
    return this.json('DELETE', `/v1/functions/${encodeURIComponent(name)}`);
  }

  /** Versions, each with its share of `live` and its figures over the last 5 minutes. */
  listVersions(name: string): Promise<{ versions: VersionListAnswer[] }> {
    return this.json('GET', `/v1/functions/${encodeURIComponent(name)}/versions`);
  }

  setCurrentVersion(name: string, version: number): Promise<FunctionAnswer> {
    return this.json('PUT', `/v1/functions/${encodeURIComponent(name)}/current`, { version });
  }

  /**
   * Create an alias or replace it; `created` says which (201 or 200). `weights`: version → share, summing to 1.
   *
   * @example
   * await client.putAlias('shop', 'beta', { '1': 0.9, '2': 0.1 }, 'x-user-id');
   */
  async putAlias(
    name: string,
    alias: string,
    weights: Record<string, number>,
    stickyHeader?: string | null,
  ): Promise<{ created: boolean; alias: AliasAnswer }> {
    const body = JSON.stringify({ weights, ...(stickyHeader === undefined ? {} : { stickyHeader }) });
    const answer = await this.send('PUT', `${functionPath(name)}/aliases/${encodeURIComponent(alias)}`, body);
    return { created: answer.status === 201, alias: JSON.parse(answer.text) as AliasAnswer };
  }

  listAliases(name: string): Promise<{ aliases: AliasAnswer[] }> {
    return this.json('GET', `${functionPath(name)}/aliases`);
  }

  getAlias(name: string, alias: string): Promise<AliasAnswer> {
    return this.json('GET', `${functionPath(name)}/aliases/${encodeURIComponent(alias)}`);
  }

  /** Delete an alias; CONFLICT (409) for `live` and for an alias a running rollout moves. */
  deleteAlias(name: string, alias: string): Promise<void> {
    return this.json('DELETE', `${functionPath(name)}/aliases/${encodeURIComponent(alias)}`);
  }

  /**
   * Start a rollout of `version` on an alias (default `live`); settings left out get their defaults.
   *
   * @example
   * await client.startRollout('shop', { version: 3, steps: [10, 50, 100], intervalSeconds: 30 });
   */
  startRollout(name: string, request: RolloutRequest): Promise<RolloutAnswer> {
    return this.json('POST', `${functionPath(name)}/rollouts`, request);
  }

  /** The newest `limit` rollouts (default and at most 100), newest first. */
  listRollouts(name: string, options: { limit?: number } = {}): Promise<{ rollouts: RolloutAnswer[] }> {
    const query = options.limit === undefined ? '' : `?limit=${options.limit}`;
    return this.json('GET', `${functionPath(name)}/rollouts${query}`);
  }

  getRollout(name: string, id: string): Promise<RolloutAnswer> {
    return this.json('GET', `${functionPath(name)}/rollouts/${encodeURIComponent(id)}`);
  }

  /** Give the canary all of the alias's traffic now; CONFLICT (409) when the rollout is not running. */
  promoteRollout(name: string, id: string): Promise<RolloutAnswer> {
    return this.json('POST', `${functionPath(name)}/rollouts/${encodeURIComponent(id)}/promote`);
  }

  /** Give the baseline all of the alias's traffic back now; CONFLICT (409) when the rollout is not running. */
  abortRollout(name: string, id: string): Promise<RolloutAnswer> {
    return this.json('POST', `${functionPath(name)}/rollouts/${encodeURIComponent(id)}/abort`);
  }

  /** The record of an invocation that ran (`getAsyncInvocation` for an asynchronous invocation's id). */
  /**
   * Create a schedule: the function is invoked asynchronously with `event` at each tick of one of `cron`, `rate`
   * or `at`. CONFLICT (409) when the name is taken, NOT_FOUND (404) for an unknown function.
   *
   * @example
   * await client.createSchedule({ name: 'nightly', functionName: 'report', cron: '0 3 * * *', timezone: 'Asia/Seoul' });
   */
  createSchedule(request: ScheduleRequest): Promise<ScheduleAnswer> {
    return this.json('POST', '/v1/schedules', request);
  }

  /** Every schedule, by name, with its next fire time. */
  listSchedules(): Promise<{ schedules: ScheduleAnswer[] }> {
    return this.json('GET', '/v1/schedules');
  }

  getSchedule(name: string): Promise<ScheduleAnswer> {
    return this.json('GET', `/v1/schedules/${encodeURIComponent(name)}`);
  }

  deleteSchedule(name: string): Promise<void> {
    return this.json('DELETE', `/v1/schedules/${encodeURIComponent(name)}`);
  }

  /** No tick fires until `resumeSchedule`. */
  pauseSchedule(name: string): Promise<ScheduleAnswer> {
    return this.json('POST', `/v1/schedules/${encodeURIComponent(name)}/pause`);
  }

  /** Fires again from the next tick after now. */
  resumeSchedule(name: string): Promise<ScheduleAnswer> {
    return this.json('POST', `/v1/schedules/${encodeURIComponent(name)}/resume`);
  }

  /**
   * Deploy a workflow spec as the next version of `name` (the same spec as the latest: that version, `created`
   * false). BAD_REQUEST (400) names the node and the JSON path of a fault in the spec.
   *
   * @example
   * await client.deployWorkflow('pipeline', {
   *   inputs: { x: 'number' },
   *   nodes: { a: { function: 'double', input: { n: '$.inputs.x' } } },
   *   output: '$.nodes.a.output',
   * });
   */
  deployWorkflow(name: string, spec: WorkflowSpec | Record<string, unknown>): Promise<WorkflowDeployAnswer> {
    return this.json('PUT', `/v1/workflows/${encodeURIComponent(name)}`, spec);
  }

  /** Every workflow, by name, with its latest version. */
  listWorkflows(): Promise<{ workflows: WorkflowSummaryAnswer[] }> {
    return this.json('GET', '/v1/workflows');
  }

  /** A workflow's latest version (or `version`), with the list of its versions. */
  getWorkflow(name: string, version?: number): Promise<WorkflowAnswer> {
    const query = version === undefined ? '' : `?version=${version}`;
    return this.json('GET', `/v1/workflows/${encodeURIComponent(name)}${query}`);
  }

  /** Delete a workflow and all its versions (its executions stay). */
  deleteWorkflow(name: string): Promise<void> {
    return this.json('DELETE', `/v1/workflows/${encodeURIComponent(name)}`);
  }

  /**
   * Launch an execution (`POST /api/v1/executions`): `inputs` plain JSON or a Flyte literal map. Project `savassan`
   * and domain `development` unless given.
   *
   * @example
   * const { id } = await client.launchExecution({ workflow: 'pipeline', inputs: { x: 3 } });
   * const execution = await client.getExecution(id);
   */
  launchExecution(request: LaunchExecutionRequest): Promise<{ id: ExecutionKey }> {
    return this.json('POST', '/api/v1/executions', {
      project: request.project ?? defaultProject,
      domain: request.domain ?? defaultDomain,
      ...(request.name === undefined ? {} : { name: request.name }),
      spec: {
        launch_plan: {
          name: request.workflow,
          ...(request.version === undefined ? {} : { version: String(request.version) }),
        },
      },
      inputs: request.inputs ?? {},
    });
  }

  getExecution(id: ExecutionKey): Promise<ExecutionView> {
    return this.json('GET', `/api/v1/executions/${executionPath(id)}`);
  }

  /** A page of a project's and domain's executions, newest first; pass `token` of a page for the next. */
  listExecutions(
    options: { project?: string; domain?: string; limit?: number; token?: string; workflow?: string } = {},
  ): Promise<ExecutionPage> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.token !== undefined && options.token !== '') query.set('token', options.token);
    if (options.workflow !== undefined) query.set('workflow', options.workflow);
    const path = `${encodeURIComponent(options.project ?? defaultProject)}/${encodeURIComponent(options.domain ?? defaultDomain)}`;
    const tail = query.size === 0 ? '' : `?${query.toString()}`;
    return this.json('GET', `/api/v1/executions/${path}${tail}`);
  }

  /** An execution's nodes (a map node's elements each as one of their own), with attempts and invocations. */
  /** Every node of an execution, page after page. */
  async nodeExecutions(id: ExecutionKey): Promise<NodeExecutionView[]> {
    const nodes: NodeExecutionView[] = [];
    let token = '';
    do {
      const query = token === '' ? '' : `?token=${encodeURIComponent(token)}`;
      const page = await this.json<{ node_executions: NodeExecutionView[]; token?: string }>(
        'GET',
        `/api/v1/node_executions/${executionPath(id)}${query}`,
      );
      nodes.push(...page.node_executions);
      token = page.token ?? '';
    } while (token !== '');
    return nodes;
  }

  /** An execution's inputs, and its outputs once it succeeded (null before). */
  executionData(id: ExecutionKey): Promise<{ inputs: Record<string, unknown>; outputs: unknown }> {
    return this.json('GET', `/api/v1/data/executions/${executionPath(id)}`);
  }

  /** Abort a running execution; CONFLICT (409) when it has ended. */
  async terminateExecution(id: ExecutionKey, cause?: string): Promise<void> {
    await this.json('DELETE', `/api/v1/executions/${executionPath(id)}`, cause === undefined ? {} : { cause });
  }

  /** A new execution of the same workflow version with the same inputs. */
  relaunchExecution(id: ExecutionKey, name?: string): Promise<{ id: ExecutionKey }> {
    return this.json('POST', '/api/v1/executions/relaunch', { id, ...(name === undefined ? {} : { name }) });
  }

  /** A new execution that keeps the outputs of the nodes of `id` that succeeded and runs the rest. */
  recoverExecution(id: ExecutionKey, name?: string): Promise<{ id: ExecutionKey }> {
    return this.json('POST', '/api/v1/executions/recover', { id, ...(name === undefined ? {} : { name }) });
  }

  /**
   * Turn a prompt into a fine-tuning plan (`POST /v1/plans`). `created` is false when `requestId` was known: the
   * stored record is answered and nothing ran. The plan is set only when `status` is SUCCESS.
   *
   * @example
   * const { plan } = await client.createPlan({ prompt: 'LoRA of my dog Fluffy in watercolor style', requestId: 'r-1' });
   * if (plan.status === 'SUCCESS') console.log(plan.plan?.hyperparameters);
   */
  async createPlan(request: PlanRequestBody): Promise<{ created: boolean; plan: PlanAnswer }> {
    const answer = await this.send('POST', '/v1/plans', JSON.stringify(request));
    return { created: answer.status === 201, plan: JSON.parse(answer.text) as PlanAnswer };
  }

  /**
   * Upload one image into a dataset (`POST /v1/datasets/{datasetId}/images?name=NAME`; the dataset exists from its
   * first image). `file`: the bytes, or `{ path }` to stream a file from disk. `created` is false when an image of
   * that name was replaced. Not decoded here: a curation job reports a file it cannot read.
   *
   * @example
   * const { image } = await client.uploadDatasetImage('cats', 'tabby.jpg', { path: './photos/tabby.jpg' });
   */
  async uploadDatasetImage(
    datasetId: string,
    name: string,
    file: Uint8Array | { path: string },
  ): Promise<{ created: boolean; image: DatasetImageAnswer }> {
    const path = `/v1/datasets/${encodeURIComponent(datasetId)}/images?name=${encodeURIComponent(name)}`;
    let body: Uint8Array | NodeJS.ReadableStream;
    let length: number;
    if (file instanceof Uint8Array) {
      body = file;
      length = file.byteLength;
    } else {
      const { createReadStream } = await import('node:fs');
      const { stat } = await import('node:fs/promises');
      const info = await stat(file.path);
      if (!info.isFile()) throw new PlatformError('BAD_REQUEST', `${file.path} is not a file`);
      length = info.size;
      body = createReadStream(file.path);
    }
    const answer = await this.#exchange('POST', path, {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      body,
    });
    return { created: answer.status === 201, image: JSON.parse(answer.text) as DatasetImageAnswer };
  }

  /** A dataset's images (`GET /v1/datasets/{datasetId}/images`); none for a dataset nothing was uploaded to. */
  listDatasetImages(datasetId: string): Promise<{ images: DatasetImageAnswer[] }> {
    return this.json('GET', `/v1/datasets/${encodeURIComponent(datasetId)}/images`);
  }

  /**
   * Start a curation job (`POST /v1/curations`) over an uploaded dataset or an `s3://` prefix of the platform's
   * bucket: embed, sample images for feedback, then wait for verdicts.
   *
   * @example
   * const { id } = await client.startCuration({ projectId: 'cats', datasetId: 'cats' });
   */
  startCuration(request: CurationRequestBody): Promise<{ id: string; status: 'PENDING' }> {
    return this.json('POST', '/v1/curations', request);
  }

  /** A curation job: status, progress, images for feedback, verdicts, curated dataset (`GET /v1/curations/{id}`). */
  getCuration(id: string): Promise<CurationAnswer> {
    return this.json('GET', `/v1/curations/${encodeURIComponent(id)}`);
  }

  /**
   * Verdicts on the images of a job AWAITING_FEEDBACK (`POST /v1/curations/{id}/feedback`). With `complete` (the
   * default) the job refines them, writes the curated dataset and is COMPLETED; `false` only records them.
   *
   * @example
   * await client.submitCurationFeedback('cur-…', [{ imageId: 'img-…', accepted: true }]);
   */
  submitCurationFeedback(
    id: string,
    feedback: { imageId: string; accepted: boolean }[],
    complete = true,
  ): Promise<CurationAnswer> {
    return this.json('POST', `/v1/curations/${encodeURIComponent(id)}/feedback`, { feedback, complete });
  }

  /**
   * Start a prompt-to-model run (`POST /v1/intelligence/runs`): an execution of the `fine-tune` workflow (plan →
   * curate → feedback → train → evaluate).
   *
   * @example
   * const run = await client.startRun({ prompt: 'LoRA of my dog Fluffy in watercolour', datasetId: 'fluffy' });
   */
  startRun(request: RunRequestBody): Promise<RunAnswer> {
    return this.json('POST', '/v1/intelligence/runs', request);
  }

  /** A run: status, plan, curation, output (`GET /v1/intelligence/runs/{id}`); NOT_FOUND when there is none. */
  getRun(id: string): Promise<RunAnswer> {
    return this.json('GET', `/v1/intelligence/runs/${encodeURIComponent(id)}`);
  }

  /** Runs, newest first; `before`: runs created before this time. */
  listRuns(options: { limit?: number; before?: string } = {}): Promise<{ runs: RunAnswer[] }> {
    const query = new URLSearchParams();
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.before !== undefined) query.set('before', options.before);
    return this.json('GET', `/v1/intelligence/runs${query.size === 0 ? '' : `?${query.toString()}`}`);
  }

  /** A plan request and how it ended (`GET /v1/plans/{id}`); NOT_FOUND when there is none. */
  getPlan(id: string): Promise<PlanAnswer> {
    return this.json('GET', `/v1/plans/${encodeURIComponent(id)}`);
  }

  /** Plan requests, newest first; pass a page's `next` as `before` for the next page. */
  listPlans(options: { userId?: string; limit?: number; before?: string } = {}): Promise<PlanPageAnswer> {
    const query = new URLSearchParams();
    if (options.userId !== undefined) query.set('userId', options.userId);
    if (options.limit !== undefined) query.set('limit', String(options.limit));
    if (options.before !== undefined) query.set('before', options.before);
    return this.json('GET', `/v1/plans${query.size === 0 ? '' : `?${query.toString()}`}`);
  }

  getInvocation(id: string): Promise<InvocationAnswer> {
    return this.json('GET', `/v1/invocations/${encodeURIComponent(id)}`);
  }

  listInvocations(name: string, limit = 50): Promise<{ invocations: InvocationAnswer[] }> {
    return this.json('GET', `/v1/functions/${encodeURIComponent(name)}/invocations?limit=${limit}`);
  }

  async invocationLog(id: string): Promise<string> {
    return (await this.send('GET', `/v1/invocations/${encodeURIComponent(id)}/logs`)).text;
  }

  async functionLogs(name: string, limit = 20): Promise<string> {
    return (await this.send('GET', `/v1/functions/${encodeURIComponent(name)}/logs?limit=${limit}`)).text;
  }

  listNodes(): Promise<{ nodes: NodeAnswer[] }> {
    return this.json('GET', '/v1/nodes');
  }

  /**
   * Create a secret or replace its value; `created` says which (201 or 200). The answer never holds the value.
   *
   * @example
   * await client.putSecret('STRIPE_KEY', process.env.STRIPE_KEY!);
   * await client.deploy('billing', zip, { secrets: { STRIPE_KEY: 'STRIPE_KEY' } });
   */
  async putSecret(name: string, value: string): Promise<{ created: boolean; secret: SecretAnswer }> {
    const answer = await this.send('PUT', `/v1/secrets/${encodeURIComponent(name)}`, JSON.stringify({ value }));
    return { created: answer.status === 201, secret: JSON.parse(answer.text) as SecretAnswer };
  }

  /** Every secret: name, times and the functions whose current version uses it; never values. */
  listSecrets(): Promise<{ secrets: SecretListAnswer[] }> {
    return this.json('GET', '/v1/secrets');
  }

  /** Delete a secret; fails with CONFLICT (409) while a function's current version uses it. */
  deleteSecret(name: string): Promise<void> {
    return this.json('DELETE', `/v1/secrets/${encodeURIComponent(name)}`);
  }

  /**
   * Create a queue (idempotent); `created` says whether it is new (201) or existed (200).
   *
   * @example
   * await client.createQueue('orders');
   * await client.sendMessages('orders', ['{"order":42}']);
   */
  async createQueue(name: string): Promise<{ created: boolean; queue: { name: string; createdAt: string } }> {
    const answer = await this.send('PUT', queuePath(name));
    return { created: answer.status === 201, queue: JSON.parse(answer.text) as { name: string; createdAt: string } };
  }

  /** Every queue with its figures. */
  listQueues(): Promise<{ queues: QueueAnswer[] }> {
    return this.json('GET', '/v1/queues');
  }

  /** A queue's figures; NOT_FOUND (404) when it does not exist. */
  getQueue(name: string): Promise<QueueAnswer> {
    return this.json('GET', queuePath(name));
  }

  /** Send 1 to 100 messages, all or none; their ids in order. */
  sendMessages(name: string, bodies: readonly string[]): Promise<{ messageIds: string[] }> {
    const body = bodies.length === 1 ? { body: bodies[0] } : { messages: bodies.map((text) => ({ body: text })) };
    return this.json('POST', `${queuePath(name)}/messages`, body);
  }

  /** Delete every message of a queue; how many. */
  purgeQueue(name: string): Promise<{ purged: number }> {
    return this.json('DELETE', `${queuePath(name)}/messages`);
  }

  /** Delete a queue and its messages; CONFLICT (409) while a trigger uses it. */
  deleteQueue(name: string): Promise<void> {
    return this.json('DELETE', queuePath(name));
  }

  /**
   * Run a function with batches of a queue's messages; settings left out get their defaults.
   *
   * @example
   * await client.createTrigger({ functionName: 'billing', queue: 'orders', batchSize: 10, deadLetterQueue: 'dlq' });
   */
  createTrigger(request: TriggerRequest): Promise<TriggerAnswer> {
    return this.json('POST', '/v1/triggers', request);
  }

  listTriggers(): Promise<{ triggers: TriggerAnswer[] }> {
    return this.json('GET', '/v1/triggers');
  }

  deleteTrigger(id: string): Promise<void> {
    return this.json('DELETE', `/v1/triggers/${encodeURIComponent(id)}`);
  }

  /**
   * Give a function a URL, or replace its settings: `/fn/{name}/...` then serves it as a Lambda function URL.
   *
   * @example
   * await client.putFunctionUrl('web', { auth: 'none', cors: { allowOrigins: ['https://app.example'] } });
   */
  putFunctionUrl(name: string, request: FunctionUrlRequest = {}): Promise<FunctionUrlAnswer> {
    return this.json('PUT', `${functionPath(name)}/url`, request);
  }

  getFunctionUrl(name: string): Promise<FunctionUrlAnswer> {
    return this.json('GET', `${functionPath(name)}/url`);
  }

  listFunctionUrls(): Promise<{ urls: FunctionUrlAnswer[] }> {
    return this.json('GET', '/v1/urls');
  }

  /** NOT_FOUND (404) when the function has no URL. */
  deleteFunctionUrl(name: string): Promise<void> {
    return this.json('DELETE', `${functionPath(name)}/url`);
  }

  /**
   * The control plane: the leading manager (term, build, last change, event loop delay), its followers, every member
   * with its build, and the last handover and upgrade (`upgrade.state` follows an upgrade).
   *
   * @example
   * const { leader, followers } = await client.controlPlane();
   * console.log(`${leader?.id} leads (term ${leader?.term}), ${followers.length} followers`);
   */
  controlPlane(): Promise<ControlPlaneView> {
    return this.json('GET', '/v1/control-plane');
  }

  /**
   * Hand the lead to the manager `to`, or to the follower with the most changes applied; resolves once the new
   * leader leads. CONFLICT (409) without a follower to hand over to, and in embedded mode.
   *
   * @example
   * const { from, to, term, pausedMs } = await client.handover();
   */
  handover(to?: string): Promise<HandoverAnswer> {
    return this.json('POST', '/v1/control-plane/handover', to === undefined ? {} : { to });
  }

  /**
   * Start upgrading every manager and gateway to the build `to` names (a version, or the path of an installed
   * build); resolves at once with where it stands. `controlPlane().upgrade` follows it to `succeeded` or `failed`.
   * CONFLICT (409) while another upgrade or a handover runs, and in embedded mode.
   *
   * @example
   * await client.upgrade('/opt/savassan/0.2.0');
   */
  upgrade(to: string): Promise<UpgradeStatus> {
    return this.json('POST', '/v1/control-plane/upgrade', { to });
  }
}

function queuePath(name: string): string {
  return `/v1/queues/${encodeURIComponent(name)}`;
}

export interface QueueAnswer {
  name: string;
  /** Messages waiting to be received. */
  depth: number;
  /** Messages received, not yet acknowledged or released. */
  inFlight: number;
  /** Age of the oldest message; null when the queue is empty. */
  oldestAgeSeconds: number | null;
}

export interface TriggerRequest {
  functionName: string;
  queue: string;
  batchSize?: number;
  windowSeconds?: number;
  maxConcurrency?: number;
  maxReceives?: number;
  deadLetterQueue?: string | null;
}

export interface FunctionUrlRequest {
  /** key (default): callers present an API key; none: public. */
  auth?: 'none' | 'key';
  cors?: { allowOrigins: string[]; allowMethods?: string[]; allowHeaders?: string[] } | null;
}

export interface FunctionUrlAnswer {
  functionName: string;
  auth: 'none' | 'key';
  cors: { allowOrigins: string[]; allowMethods: string[]; allowHeaders: string[] } | null;
  /** `/fn/{name}/` */
  path: string;
  /** `{name}.{url domain}`, null where the server has no URL domain. */
  host: string | null;
  createdAt: string;
}

export interface TriggerAnswer {
  id: string;
  functionName: string;
  queue: string;
  batchSize: number;
  windowSeconds: number;
  maxConcurrency: number;
  maxReceives: number;
  deadLetterQueue: string | null;
  createdAt: string;
}

function functionPath(name: string): string {
  return `/v1/functions/${encodeURIComponent(name)}`;
}

export interface SecretAnswer {
  name: string;
  createdAt: string;
  updatedAt: string;
}

export interface SecretListAnswer extends SecretAnswer {
  /** Functions whose current version uses the secret. */
  usedBy: string[];
}

export interface FunctionAnswer {
  name: string;
  currentVersion: number;
  createdAt: string;
  updatedAt: string;
  codeSha256?: string;
  codeSizeBytes?: number;
  config?: FunctionConfig;
}

export interface VersionAnswer {
  version: number;
  current: boolean;
  codeSha256: string;
  codeSizeBytes: number;
  contentHash: string;
  config: FunctionConfig;
  createdAt: string;
}

export interface VersionListAnswer extends VersionAnswer {
  /** Its share of the `live` alias's traffic (0 to 1). */
  traffic: number;
  /** Over the last 5 minutes. */
  stats: { invocations: number; errors: number; p99Ms: number | null };
}

export interface AliasAnswer {
  name: string;
  functionName: string;
  /** Version → share of the traffic. */
  weights: Record<string, number>;
  stickyHeader: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A schedule as `POST /v1/schedules` takes it: exactly one of `cron`, `rate` and `at`. */
export interface ScheduleRequest {
  name: string;
  functionName: string;
  cron?: string;
  rate?: string;
  at?: string;
  timezone?: string;
  event?: unknown;
  retries?: number;
  maxEventAgeSeconds?: number;
  missed?: 'fire' | 'skip';
}

export interface ScheduleAnswer {
  name: string;
  functionName: string;
  expression: string;
  timezone: string;
  event: unknown;
  state: 'active' | 'paused';
  missed: 'fire' | 'skip';
  retries: number | null;
  maxEventAgeSeconds: number | null;
  nextFireAt: string | null;
  lastFiredAt: string | null;
  createdAt: string;
}

export interface RolloutRequest {
  version: number;
  alias?: string;
  steps?: number[];
  intervalSeconds?: number;
  maxErrorRate?: number;
  maxP99Ratio?: number;
  minRequests?: number;
  rollbackWindowSeconds?: number;
}

export interface RolloutFiguresAnswer {
  requests: number;
  errors: number;
  p99Ms: number | null;
}

export interface RolloutAnswer {
  id: string;
  functionName: string;
  alias: string;
  version: number;
  baseline: number;
  state: 'running' | 'promoted' | 'rolled_back' | 'aborted';
  /** The canary's share (percent) at the step under way. */
  step: number;
  stepIndex: number;
  steps: number[];
  stepStartedAt: string;
  /** The alias's weights now. */
  weights: Record<string, number>;
  settings: Required<Omit<RolloutRequest, 'version' | 'alias'>>;
  history: {
    at: string;
    step: number;
    canary: RolloutFiguresAnswer;
    baseline: RolloutFiguresAnswer;
    decision: 'started' | 'advanced' | 'promoted' | 'rolled_back' | 'aborted';
    reason: string;
  }[];
  createdAt: string;
  updatedAt: string;
  endedAt: string | null;
}

export interface DeployAnswer {
  created: boolean;
  function: FunctionAnswer;
  version: VersionAnswer;
  /** What differs from the version that was current before (empty for a new function or an unchanged deploy). */
  changes: VersionChange[];
}

/** An asynchronous invocation as the API shows it. */
export interface AsyncInvocationAnswer {
  invocationId: string;
  invocationType: 'event';
  functionName: string;
  state: 'queued' | 'running' | 'succeeded' | 'failed' | 'dead_lettered';
  qualifier: string | null;
  source: string | null;
  event: unknown;
  enqueuedAt: string;
  nextAttemptAt: string | null;
  deliveryCount: number;
  attempts: {
    startedAt: string;
    status: string;
    durationMs: number;
    error: string | null;
    invocationId: string | null;
  }[];
  idempotencyKey: string | null;
  deadLetterReason: string | null;
  deadLetteredAt: string | null;
}

export interface InvocationAnswer {
  id: string;
  functionName: string;
  version: number;
  start: 'cold' | 'warm';
  status: string;
  initMs: number | null;
  durationMs: number;
  peakMemoryBytes: number | null;
  error: { name: string; message: string; stack?: string } | null;
  logKey: string | null;
  nodeId: string | null;
  instanceId: string | null;
  createdAt: string;
  /** The trace that recorded it, when tracing is on and sampled it. */
  traceId: string | null;
  /** The version's memory limit (MB); null when the version is gone. */
  memoryMB: number | null;
  /** The invocation's REPORT line (duration, init, memory, start). */
  report: string;
}

export interface NodeAnswer {
  nodeId: string;
  status: string;
  sandboxRuntime: string;
  isolating: boolean;
  sandboxes: number;
  /** Cluster mode: sandboxes the node takes at once, and where its Agent listens. */
  capacity?: number;
  agentAddress?: string;
  routed?: boolean;
  /** Embedded mode: what the sandbox runtime enforces, and the stem cells. */
  enforcement?: Record<string, { mechanism: string; enforced: boolean; note: string }>;
  stemCells?: { idle: number; starting: number; memoryBytes: number | null };
  /** Embedded mode: the node's memory (MB) and pid budgets for all sandboxes, and how much of each is in use. */
  budget?: { memoryMB: number; pids: number; usedMemoryMB: number; usedPids: number };
  warnings: string[];
}

/** What `launchExecution` sends. */
export interface LaunchExecutionRequest {
  workflow: string;
  /** Default: the latest. */
  version?: number;
  /** Default `savassan`. */
  project?: string;
  /** Default `development`. */
  domain?: string;
  /** Default: a generated name. */
  name?: string;
  /** Plain JSON by name, or a Flyte literal map `{"literals": {...}}`. */
  inputs?: Record<string, unknown>;
}

export interface WorkflowDeployAnswer {
  name: string;
  version: number;
  created: boolean;
  createdAt: string;
  spec: WorkflowSpec;
}

export interface WorkflowSummaryAnswer {
  name: string;
  latestVersion: number;
  description: string | null;
  nodeCount: number;
  createdAt: string;
  updatedAt: string;
}

export interface WorkflowAnswer {
  name: string;
  version: number;
  createdAt: string;
  spec: WorkflowSpec;
  /** Newest first. */
  versions: { version: number; createdAt: string }[];
}

export interface PlanRequestBody {
  prompt: string;
  /** Default `anonymous`. */
  userId?: string;
  /** Idempotency key: a known one answers the stored record. */
  requestId?: string;
  /** A plan the user wrote or edited: validated (400 listing its problems) and stored; no planner runs. */
  plan?: PlanAnswer['plan'];
}

/** A plan request as `/v1/plans` answers it. */
export interface PlanAnswer {
  id: string;
  requestId: string;
  userId: string;
  status: PlanStatus;
  /** Set only with SUCCESS, and then valid. */
  plan: FineTunePlan | null;
  planner: string;
  attempts: number;
  processingMs: number;
  receivedAt: string;
  problems: PlanProblem[];
  warnings: string[];
  prompt: string;
  llmPrompt: string | null;
  llmRawResponse: string | null;
}

export interface PlanPageAnswer {
  plans: PlanAnswer[];
  /** The `before` of the next page; null: no more. */
  next: string | null;
}

/** An image of a dataset, as `/v1/datasets/{datasetId}/images` answers it. */
export interface DatasetImageAnswer {
  datasetId: string;
  /** New on every upload. */
  imageId: string;
  name: string;
  /** `s3://BUCKET/datasets/{datasetId}/raw/{name}`. */
  uri: string;
  bytes: number;
  /** Hex SHA-256 of the bytes. */
  sha256: string;
  /** From the magic bytes; `application/octet-stream` when not an image. */
  contentType: string;
  createdAt: string;
}

/** `POST /v1/curations`: exactly one of `rawDataUri` and `datasetId`. */
export interface CurationRequestBody {
  projectId: string;
  /** `s3://BUCKET/PREFIX` of the platform's own bucket. */
  rawDataUri?: string;
  datasetId?: string;
}

/** A curation job as `/v1/curations/{id}` answers it. */
export interface CurationAnswer {
  id: string;
  projectId: string;
  status: CurationStatus;
  progress: CurationProgress;
  imagesForFeedback: ImageForFeedback[];
  feedback: { imageId: string; accepted: boolean }[];
  curatedDatasetId: string | null;
  /** `s3://BUCKET/curated/{datasetId}/` once COMPLETED. */
  curatedDatasetUri: string | null;
  errors: CurationFileError[];
  /** With FAILED: why. */
  failure: string | null;
  embedder: string;
  createdAt: string;
  updatedAt: string;
}

/** `POST /v1/intelligence/runs`: exactly one of `rawDataUri` and `datasetId`. */
export interface RunRequestBody {
  prompt: string;
  rawDataUri?: string;
  datasetId?: string;
  userId?: string;
  /** The training function (default `fine-tune-trainer`). */
  trainer?: string;
  /** A stored SUCCESS plan (`createPlan` with `plan`, e.g. an edited one): the run uses it instead of planning. */
  planId?: string;
}

/** A run's states: PLANNING, CURATING, AWAITING_FEEDBACK, TRAINING, EVALUATING, then one of the last three. */
export type RunStatus =
  'PLANNING' | 'CURATING' | 'AWAITING_FEEDBACK' | 'TRAINING' | 'EVALUATING' | 'SUCCEEDED' | 'FAILED' | 'ABORTED';

/** A prompt-to-model run as `/v1/intelligence/runs` answers it. */
export interface RunAnswer {
  id: string;
  status: RunStatus;
  prompt: string;
  userId: string;
  execution: ExecutionKey;
  planId: string | null;
  /** Once planned. */
  plan: FineTunePlan | null;
  /** Once curated: its feedback is `POST /v1/curations/{id}/feedback`. */
  curationId: string | null;
  curatedDatasetUri: string | null;
  /** The evaluate step's output once SUCCEEDED. */
  output: unknown;
  error: { code: string; message: string } | null;
  createdAt: string;
}

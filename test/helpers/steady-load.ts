// A steady load on a cluster's gateways for tests that change the control plane under it (a handover, a leader's
// death, an upgrade): a few loops invoke one function back to back, through the gateways in turn, and every answer
// is recorded. The gateways may come and go: the load asks `gateways()` before each request, and a request refused
// at connect (nothing was sent) is tried on the next gateway and counted, never recorded as a failure.
import { request } from 'node:http';
import type { ControlPlaneView } from '../../src/core/control-plane-view.js';

/** One invocation the load sent, as it ended. */
export interface LoadRecord {
  mode: 'sync' | 'async';
  /** The gateway that took it (the last one tried when none did). */
  gateway: string;
  sentAt: number;
  endedAt: number;
  /** The HTTP status; 0 when no answer came. */
  status: number;
  /** From the answer: the `x-savassan-invocation-id` header (sync) or the body's `invocationId` (async). */
  invocationId: string | null;
  /** Sync: whether it ran on a sandbox started for it (`cold`) or an existing one, from `x-savassan-start`. */
  start: 'cold' | 'warm' | null;
  /** Why it failed (the answer's text, or the connection's error); null when it succeeded. */
  error: string | null;
  /** Connections refused (on other gateways, or on the same one while no other was known) before it was sent. */
  refused: number;
}

export interface SteadyLoadOptions {
  /** The gateways' URLs now (asked before each request). */
  gateways: () => readonly string[];
  functionName: string;
  /** Loops, each waiting for its answer before sending again. */
  concurrency: number;
  /** `sync` (200 expected) or `async` (202 expected, `?async=1`). Default sync. */
  mode?: 'sync' | 'async';
  event?: unknown;
  /** Pause of each loop after a success (default none) and after a failure (default 50 ms). */
  pauseMs?: number;
  failurePauseMs?: number;
  /** How long a request waits for its answer (default 30 s) and for a gateway to take it (default 10 s). */
  timeoutMs?: number;
  connectWithinMs?: number;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** Thrown when a gateway refused the connection: nothing was sent, the request may go elsewhere. */
class Refused extends Error {}

/**
 * POSTs `body` to `url` on a connection of its own (no keep-alive: a gateway that stops closes no connection a
 * request is about to reuse, so "refused at connect" is the only way a stopped gateway turns a request away).
 */
function post(url: string, body: string, timeoutMs: number): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'ECONNREFUSED' ? new Refused(err.message) : err),
    );
    req.end(body);
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class SteadyLoad {
  /** Every invocation sent so far, in the order they ended. */
  readonly records: LoadRecord[] = [];
  readonly #options: SteadyLoadOptions;
  readonly #body: string;
  #running = false;
  #loops: Promise<void> | null = null;
  #turn = 0;

  constructor(options: SteadyLoadOptions) {
    this.#options = options;
    this.#body = JSON.stringify(options.event ?? {});
  }

  /** Starts the loops (once). */
  start(): this {
    if (this.#loops !== null) return this;
    this.#running = true;
    this.#loops = Promise.all(Array.from({ length: this.#options.concurrency }, () => this.#loop())).then(() => {});
    return this;
  }

  /** Stops sending, waits for the answers under way, and resolves with every record. */
  async stop(): Promise<LoadRecord[]> {
    this.#running = false;
    await this.#loops;
    return this.records;
  }

  /** A mark in the records: `since(mark)` gives those that ended after it. */
  mark(): number {
    return this.records.length;
  }

  since(mark: number): LoadRecord[] {
    return this.records.slice(mark);
  }

  /** Connections refused so far (each followed by a try elsewhere). */
  get refused(): number {
    return this.records.reduce((sum, record) => sum + record.refused, 0);
  }

  async #loop(): Promise<void> {
    const { pauseMs = 0, failurePauseMs = 50 } = this.#options;
    while (this.#running) {
      const record = await this.#send();
      this.records.push(record);
      const pause = record.error === null ? pauseMs : failurePauseMs;
      if (pause > 0) await sleep(pause);
    }
  }

  async #send(): Promise<LoadRecord> {
    const { functionName, mode = 'sync', timeoutMs = 30_000, connectWithinMs = 10_000 } = this.#options;
    const path = `/v1/functions/${encodeURIComponent(functionName)}/invoke${mode === 'async' ? '?async=1' : ''}`;
    const sentAt = Date.now();
    let refused = 0;
    let gateway = '';
    const ended = (fields: Pick<LoadRecord, 'status' | 'invocationId' | 'start' | 'error'>): LoadRecord => ({
      mode,
      gateway,
      sentAt,
      endedAt: Date.now(),
      refused,
      ...fields,
    });
    for (;;) {
      const gateways = this.#options.gateways();
      if (gateways.length === 0)
        return ended({ status: 0, invocationId: null, start: null, error: 'no gateway known' });
      gateway = gateways[this.#turn++ % gateways.length] ?? '';
      let answer: Answer;
      try {
        answer = await post(`${gateway}${path}`, this.#body, timeoutMs);
      } catch (err) {
        if (!(err instanceof Refused)) {
          return ended({ status: 0, invocationId: null, start: null, error: `${gateway}: ${String(err)}` });
        }
        refused++;
        if (Date.now() - sentAt > connectWithinMs) {
          return ended({ status: 0, invocationId: null, start: null, error: `refused for ${connectWithinMs} ms` });
        }
        // Every gateway tried once: give the list a moment to change.
        if (refused % gateways.length === 0) await sleep(50);
        continue;
      }
      const expected = mode === 'async' ? 202 : 200;
      if (answer.status !== expected) {
        return ended({
          status: answer.status,
          invocationId: null,
          start: null,
          error: `${answer.status} ${answer.text}`,
        });
      }
      if (mode === 'async') {
        const { invocationId } = JSON.parse(answer.text) as { invocationId: string };
        return ended({ status: answer.status, invocationId, start: null, error: null });
      }
      const header = (name: string): string | null => {
        const value = answer.headers[name];
        return typeof value === 'string' ? value : null;
      };
      return ended({
        status: answer.status,
        invocationId: header('x-savassan-invocation-id'),
        start: header('x-savassan-start') === 'cold' ? 'cold' : 'warm',
        error: null,
      });
    }
  }
}

/** The records that failed. */
export function failures(records: readonly LoadRecord[]): LoadRecord[] {
  return records.filter((record) => record.error !== null);
}

/** Failures as short lines for an assertion's message: each distinct error once, with how many times it came. */
export function describeFailures(records: readonly LoadRecord[]): string[] {
  const counts = new Map<string, number>();
  for (const { error } of failures(records)) counts.set(error ?? '', (counts.get(error ?? '') ?? 0) + 1);
  return [...counts].map(([error, count]) => `${count}× ${error.slice(0, 300)}`);
}

/**
 * The gateways of a cluster as its control plane lists them (members of role gateway, by URL), read through
 * `GET /v1/control-plane` of any gateway known every `intervalMs`, starting from `seed`.
 */
export class GatewayFollower {
  #urls: string[];
  #timer: NodeJS.Timeout | null = null;
  #busy = false;
  /** Lists read so far (for a diagnostic). */
  refreshes = 0;

  constructor(seed: readonly string[], intervalMs = 200) {
    this.#urls = [...seed];
    this.#timer = setInterval(() => void this.refresh(), intervalMs).unref();
  }

  /** The gateways now. */
  urls(): readonly string[] {
    return this.#urls;
  }

  /** Reads the list once (a read under way makes this a no-op); keeps the last list when no gateway answers. */
  async refresh(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      for (const url of this.#urls) {
        try {
          const response = await fetch(`${url}/v1/control-plane`, { signal: AbortSignal.timeout(2000) });
          if (!response.ok) continue;
          const view = (await response.json()) as ControlPlaneView;
          const gateways = view.members
            .filter((member) => member.role === 'gateway' && /^https?:\/\//.test(member.address))
            .map((member) => member.address);
          if (gateways.length > 0) {
            this.#urls = gateways;
            this.refreshes++;
          }
          return;
        } catch {
          // that one is gone: ask the next
        }
      }
    } finally {
      this.#busy = false;
    }
  }

  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

// The Gateway's live log hub: the output of every Agent's sandboxes, split into lines and handed to the clients that
// follow a function (`GET /v1/functions/:name/logs/ws`, `logs?follow=1`). The Agents are followed only while
// someone listens; an invocation never waits on a client, and a client that falls behind is dropped with a notice.
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { SandboxLogLine } from '../core/ports/agent-api.js';

/** One line of a function's output, as the live log routes send it. */
export interface LiveLogLine {
  functionName: string;
  /** Null for output outside an invocation (module load). */
  invocationId: string | null;
  /** Null when the sandbox was not yet bound to a version. */
  version: number | null;
  stream: 'stdout' | 'stderr';
  /** The line without its trailing newline (cut at `maxLineChars`, with `truncatedMarker`). */
  line: string;
  /** When the Agent received it (ISO-8601). */
  time: string;
}

/** Appended to a line cut at the hub's line length cap. */
export const truncatedMarker = ' …[line truncated]';

/**
 * Where the hub's chunks come from: every Agent's live output. `open` resolves once chunks written from then on
 * reach `onChunk` (as far as the Agents it could reach go), with the function that stops the delivery.
 */
export interface LogFeed {
  open(onChunk: (chunk: SandboxLogLine) => void): Promise<() => Promise<void>>;
}

/** Embedded mode: the one local Agent's listeners. */
export function agentLogFeed(agent: { onLog(listener: (line: SandboxLogLine) => void): () => void }): LogFeed {
  return {
    open: (onChunk) => {
      const off = agent.onLog(onChunk);
      return Promise.resolve(() => Promise.resolve(off()));
    },
  };
}

/** What a subscriber's frames are written to: a WebSocket or a server-sent event stream. */
export interface LogSink {
  /** Write one frame; `written` is called once it has left for the socket (or the socket is gone). */
  write(frame: string, written: () => void): void;
  /** The client fell behind: send `notice` (a frame) after what was written and close. */
  drop(notice: DroppedNotice): void;
  /** The hub is closing: end the stream. */
  end(): void;
}

export interface DroppedNotice {
  type: 'dropped';
  reason: string;
  /** Lines the client did not get. */
  missed: number;
}

export interface LogSubscriptionOptions {
  functionName: string;
  /** Only this invocation's lines. */
  invocationId?: string | undefined;
  /** The frame of a line. */
  format: (line: LiveLogLine) => string;
  sink: LogSink;
}

export interface LogSubscription {
  /** Stop delivering (the client left). Idempotent. */
  close(): void;
}

export interface LiveLogHubOptions {
  feed: LogFeed;
  /** Clients that may follow logs at once on this gateway (default 1000): each may hold `maxQueueBytes`. */
  maxSubscribers?: number | undefined;
  /** Bytes of frames a subscriber may have waiting before it is dropped (default 1 MiB). */
  maxQueueBytes?: number | undefined;
  /** Bytes handed to a subscriber's socket that it has not taken yet, before the hub holds frames back (64 KiB). */
  socketHighWaterBytes?: number | undefined;
  /** Longer lines are cut, with `truncatedMarker` (default 16 Ki characters). */
  maxLineChars?: number | undefined;
  /** A partial line (no newline yet) is sent after this long (default 200 ms). */
  flushDelayMs?: number | undefined;
  /** The Agents are followed this long after the last subscriber left or a `ready()` (default 10 s). */
  lingerMs?: number | undefined;
  logger?: Logger | undefined;
}

interface Partial {
  functionName: string;
  invocationId: string | null;
  version: number | null;
  stream: 'stdout' | 'stderr';
  text: string;
  time: number;
  /** The rest of a line that was cut is being skipped, up to its newline. */
  skipping: boolean;
  timer: NodeJS.Timeout | undefined;
}

class Subscriber implements LogSubscription {
  private readonly queue: string[] = [];
  private queuedBytes = 0;
  private inFlightBytes = 0;
  closed = false;

  constructor(
    readonly options: LogSubscriptionOptions,
    private readonly limits: { maxQueueBytes: number; highWater: number },
    private readonly detach: (subscriber: Subscriber) => void,
  ) {}

  matches(line: LiveLogLine): boolean {
    const { invocationId } = this.options;
    return invocationId === undefined || invocationId === line.invocationId;
  }

  push(line: LiveLogLine): void {
    if (this.closed) return;
    const frame = this.options.format(line);
    const bytes = Buffer.byteLength(frame);
    if (this.queuedBytes + bytes > this.limits.maxQueueBytes) {
      const missed = this.queue.length + 1;
      this.queue.length = 0;
      this.queuedBytes = 0;
      this.close();
      this.options.sink.drop({ type: 'dropped', reason: 'the client did not keep up with the log', missed });
      return;
    }
    this.queue.push(frame);
    this.queuedBytes += bytes;
    this.pump();
  }

  private pump(): void {
    while (!this.closed && this.inFlightBytes < this.limits.highWater) {
      const frame = this.queue.shift();
      if (frame === undefined) return;
      const bytes = Buffer.byteLength(frame);
      this.queuedBytes -= bytes;
      this.inFlightBytes += bytes;
      let done = false;
      this.options.sink.write(frame, () => {
        if (done) return;
        done = true;
        this.inFlightBytes -= bytes;
        this.pump();
      });
    }
  }

  end(): void {
    if (this.closed) return;
    this.close();
    this.options.sink.end();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.detach(this);
  }
}

/**
 * Lines of every function's live output, by function, for the clients that follow them. Chunks are split into lines
 * per sandbox and stream; a partial line is sent when the sandbox's next chunk belongs to another invocation or after
 * `flushDelayMs`. Nothing is buffered for a function nobody follows, and the Agents are followed only while someone
 * listens (and `lingerMs` after).
 */
export class LiveLogHub {
  private readonly subscribers = new Map<string, Set<Subscriber>>();
  private readonly partials = new Map<string, Partial>();
  private readonly maxQueueBytes: number;
  private readonly maxSubscribers: number;
  private readonly highWater: number;
  private readonly maxLineChars: number;
  private readonly flushDelayMs: number;
  private readonly lingerMs: number;
  private readonly logger: Logger;
  private feed: Promise<(() => Promise<void>) | null> | null = null;
  private linger: NodeJS.Timeout | undefined;
  private count = 0;
  private closed = false;

  constructor(private readonly options: LiveLogHubOptions) {
    this.maxQueueBytes = options.maxQueueBytes ?? 1024 * 1024;
    this.maxSubscribers = options.maxSubscribers ?? 1000;
    this.highWater = options.socketHighWaterBytes ?? 64 * 1024;
    this.maxLineChars = options.maxLineChars ?? 16 * 1024;
    this.flushDelayMs = options.flushDelayMs ?? 200;
    this.lingerMs = options.lingerMs ?? 10_000;
    this.logger = options.logger ?? silentLogger;
  }

  /**
   * Follow the Agents (if not already); resolves once their output from now on reaches the hub. Call it before
   * answering a client, so that what runs after its stream opened is in it; subscribe within `lingerMs`.
   */
  async ready(): Promise<void> {
    if (this.closed) return;
    this.feed ??= this.options.feed
      .open((chunk) => this.onChunk(chunk))
      .catch((err: unknown) => {
        this.logger.warn({ err }, 'could not follow the agents’ logs');
        this.feed = null;
        return null;
      });
    this.armLinger();
    await this.feed;
  }

  /** Deliver the lines of `options.functionName` (and invocation, where given) to `options.sink` from now on. */
  subscribe(options: LogSubscriptionOptions): LogSubscription {
    const subscriber = new Subscriber(options, { maxQueueBytes: this.maxQueueBytes, highWater: this.highWater }, (s) =>
      this.detach(s),
    );
    if (this.closed) {
      subscriber.end();
      return subscriber;
    }
    // Clients that passed `assertRoom` together (it is checked before an await) may still be one too many.
    if (this.count >= this.maxSubscribers) {
      subscriber.close();
      options.sink.drop({ type: 'dropped', reason: 'as many clients as the gateway takes follow logs', missed: 0 });
      return subscriber;
    }
    let set = this.subscribers.get(options.functionName);
    if (set === undefined) {
      set = new Set();
      this.subscribers.set(options.functionName, set);
    }
    set.add(subscriber);
    this.count += 1;
    clearTimeout(this.linger);
    this.linger = undefined;
    if (this.feed === null) void this.ready();
    return subscriber;
  }

  /**
   * Throws `TOO_MANY_REQUESTS` when as many clients as the hub takes follow logs already: check before answering one
   * (the memory of the hub is bounded by its subscribers' queues).
   */
  assertRoom(): void {
    if (this.count >= this.maxSubscribers) {
      throw new PlatformError(
        'TOO_MANY_REQUESTS',
        `${this.maxSubscribers} clients follow logs on this gateway already; retry later`,
        { details: { retryAfterSeconds: 5 } },
      );
    }
  }

  /** How many clients follow logs now. */
  get subscriberCount(): number {
    return this.count;
  }

  /** Stop following the Agents and end every subscriber's stream. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.linger);
    for (const set of this.subscribers.values()) for (const s of [...set]) s.end();
    await this.stopFeed();
  }

  private detach(subscriber: Subscriber): void {
    const name = subscriber.options.functionName;
    const set = this.subscribers.get(name);
    if (set?.delete(subscriber) !== true) return;
    this.count -= 1;
    if (set.size === 0) this.subscribers.delete(name);
    if (this.count === 0) this.armLinger();
  }

  private armLinger(): void {
    clearTimeout(this.linger);
    this.linger = setTimeout(() => {
      this.linger = undefined;
      if (this.count === 0) void this.stopFeed();
    }, this.lingerMs);
    this.linger.unref();
  }

  private async stopFeed(): Promise<void> {
    const feed = this.feed;
    this.feed = null;
    for (const key of [...this.partials.keys()]) this.flush(key);
    const stop = await feed;
    await stop?.().catch((err: unknown) => this.logger.warn({ err }, 'stopping the log feed failed'));
  }

  private onChunk(chunk: SandboxLogLine): void {
    const { functionName } = chunk;
    if (functionName === null) return;
    // The function is part of the key: output of one function never joins a line of another's.
    const key = `${functionName}\n${chunk.instanceId}\n${chunk.stream}`;
    let partial = this.partials.get(key);
    if (partial !== undefined && (partial.invocationId !== chunk.invocationId || partial.version !== chunk.version)) {
      this.flush(key);
      partial = undefined;
    }
    if (!this.subscribers.has(functionName)) return;
    partial ??= {
      functionName,
      invocationId: chunk.invocationId,
      version: chunk.version,
      stream: chunk.stream,
      text: '',
      time: chunk.time,
      skipping: false,
      timer: undefined,
    };
    let text = partial.text + chunk.text;
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      if (partial.skipping) partial.skipping = false;
      else this.emit(partial, text.slice(start, end), chunk.time);
      start = end + 1;
    }
    text = text.slice(start);
    if (partial.skipping) text = '';
    else if (text.length > this.maxLineChars) {
      this.emit(partial, text.slice(0, this.maxLineChars + 1), chunk.time); // cut and marked there
      partial.skipping = true;
      text = '';
    }
    partial.text = text;
    partial.time = chunk.time;
    if (text === '') {
      clearTimeout(partial.timer);
      partial.timer = undefined;
      if (partial.skipping) this.partials.set(key, partial);
      else this.partials.delete(key);
      return;
    }
    partial.timer ??= setTimeout(() => this.flush(key), this.flushDelayMs).unref();
    this.partials.set(key, partial);
  }

  /** Send a sandbox stream's partial line as it is. */
  private flush(key: string): void {
    const partial = this.partials.get(key);
    if (partial === undefined) return;
    this.partials.delete(key);
    clearTimeout(partial.timer);
    if (partial.text !== '') this.emit(partial, partial.text, partial.time);
  }

  private emit(partial: Partial, whole: string, time: number): void {
    const set = this.subscribers.get(partial.functionName);
    if (set === undefined) return;
    const text = whole.endsWith('\r') ? whole.slice(0, -1) : whole;
    const line: LiveLogLine = {
      functionName: partial.functionName,
      invocationId: partial.invocationId,
      version: partial.version,
      stream: partial.stream,
      line: text.length > this.maxLineChars ? text.slice(0, this.maxLineChars) + truncatedMarker : text,
      time: new Date(time).toISOString(),
    };
    for (const subscriber of [...set]) if (subscriber.matches(line)) subscriber.push(line);
  }
}

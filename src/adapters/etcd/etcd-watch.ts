import { setTimeout as sleep } from 'node:timers/promises';

import type { IKeyValue, IRangeResponse, Namespace, Watcher } from 'etcd3';

import type { Logger } from '../../core/logger.js';

/** A key, or every key under a prefix, relative to the namespace the watch runs in. */
export type WatchRange = { key: string } | { prefix: string };

export interface WatchChange {
  type: 'put' | 'delete';
  /** The key is relative to the namespace. */
  kv: IKeyValue;
}

export interface ResyncingWatchHandlers {
  /**
   * The whole range, read in one request: first when the watch starts, then again after every reconnect, in place of
   * the changes that may have been missed meanwhile.
   */
  snapshot(kvs: IKeyValue[]): void;
  /** One change after the last snapshot, in revision order. */
  change(change: WatchChange): void;
}

const RESYNC_FIRST_DELAY_MS = 100;
const RESYNC_MAX_DELAY_MS = 1_000;
/** Cancelling a watcher waits for etcd's answer; a close does not wait longer than this for it. */
const CANCEL_TIMEOUT_MS = 1_000;

/**
 * A watch that survives reconnects by re-reading its range. It reads a snapshot, then watches from the snapshot's
 * revision + 1, so no change falls between the two. When the watch stream breaks (etcd restarted, connection lost) or
 * etcd cancels the watch (history compacted), it drops the watcher, reads a fresh snapshot (retrying with backoff until
 * etcd answers) and watches again from there: the handlers see a new snapshot rather than a replay, which also covers
 * an etcd that came back with compacted or lost history. etcd3's own resume (from the last revision seen) is never
 * used.
 */
export class ResyncingWatch {
  readonly #ns: Namespace;
  readonly #range: WatchRange;
  readonly #handlers: ResyncingWatchHandlers;
  readonly #logger: Logger;
  readonly #stop = new AbortController();
  #watcher: Watcher | undefined;
  /** A resync is needed (set on failure, cleared when a resync starts). */
  #stale = false;
  #resyncing = false;
  /** Whether a watcher got connected since the last resync; until one does, resyncs back off. */
  #connected = true;
  #retryDelayMs = RESYNC_FIRST_DELAY_MS;

  constructor(ns: Namespace, range: WatchRange, handlers: ResyncingWatchHandlers, logger: Logger) {
    this.#ns = ns;
    this.#range = range;
    this.#handlers = handlers;
    this.#logger = logger.child({ watch: 'key' in range ? range.key : `${range.prefix}*` });
  }

  /** Reads the first snapshot and starts watching after it; rejects with etcd3's error if the read fails. */
  async start(): Promise<void> {
    await this.#sync();
  }

  /** Stops watching; no handler runs after this resolves. Idempotent. */
  async close(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    const watcher = this.#watcher;
    this.#watcher = undefined;
    if (watcher) await withTimeout(watcher.cancel(), CANCEL_TIMEOUT_MS);
  }

  /** Reads the range and, unless closed meanwhile, hands it to `snapshot` and watches from the next revision. */
  async #sync(): Promise<void> {
    const response: IRangeResponse =
      'key' in this.#range
        ? await this.#ns.get(this.#range.key).exec()
        : await this.#ns.getAll().prefix(this.#range.prefix).exec();
    if (this.#stop.signal.aborted) return;
    this.#run(() => this.#handlers.snapshot(response.kvs));
    if (this.#stop.signal.aborted) return; // the snapshot handler may close the watch
    const builder = this.#ns.watch();
    if ('key' in this.#range) builder.key(this.#range.key);
    else builder.prefix(this.#range.prefix);
    const watcher = builder.startRevision((BigInt(response.header.revision) + 1n).toString()).watcher();
    this.#watcher = watcher;
    watcher.on('connected', () => {
      this.#connected = true;
      this.#retryDelayMs = RESYNC_FIRST_DELAY_MS;
    });
    watcher.on('data', (res) => {
      if (this.#watcher !== watcher) return;
      for (const event of res.events) {
        this.#run(() => this.#handlers.change({ type: event.type === 'Put' ? 'put' : 'delete', kv: event.kv }));
      }
    });
    // The stream broke: etcd3 would resume this watcher itself, from the last revision it saw; drop it instead.
    watcher.on('disconnected', (err) => this.#lost(watcher, err, true));
    // etcd cancelled the watch (its start revision was compacted): etcd3 has already dropped it.
    watcher.on('error', (err) => this.#lost(watcher, err, false));
  }

  #lost(watcher: Watcher, err: Error, cancel: boolean): void {
    if (this.#watcher !== watcher) return;
    this.#watcher = undefined;
    // While disconnected, cancelling only takes the watcher off etcd3's list; it sends nothing.
    if (cancel) void withTimeout(watcher.cancel(), CANCEL_TIMEOUT_MS);
    this.#logger.warn({ err }, 'etcd watch interrupted; re-reading the snapshot');
    this.#stale = true;
    if (!this.#resyncing) void this.#resync();
  }

  /**
   * Re-reads and re-watches until it works. The first attempt after a watcher was connected runs at once; later ones
   * (etcd still down, or the new watcher failed before connecting) wait 100 ms, doubling up to 1 s.
   */
  async #resync(): Promise<void> {
    this.#resyncing = true;
    try {
      while (this.#stale && !this.#stop.signal.aborted) {
        if (!this.#connected) {
          await sleep(this.#retryDelayMs, undefined, { signal: this.#stop.signal }).catch(() => undefined);
          this.#retryDelayMs = Math.min(this.#retryDelayMs * 2, RESYNC_MAX_DELAY_MS);
          if (this.#stop.signal.aborted) return;
        }
        this.#connected = false;
        this.#stale = false;
        try {
          await this.#sync();
          if (this.#watcher) this.#logger.info({}, 'etcd watch resumed from a fresh snapshot');
        } catch (err) {
          this.#stale = true;
          this.#logger.debug({ err }, 'etcd snapshot read failed');
        }
      }
    } finally {
      this.#resyncing = false;
    }
  }

  /** Runs a handler; one that throws is logged, never left to etcd3 (which would rethrow it outside any promise). */
  #run(handler: () => void): void {
    try {
      handler();
    } catch (err) {
      this.#logger.error({ err }, 'etcd watch handler threw');
    }
  }
}

/** Waits for `promise` (ignoring its failure) or `ms`, whichever comes first. */
export async function withTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  const timeout = new AbortController();
  await Promise.race([
    promise.catch(() => undefined),
    sleep(ms, undefined, { signal: timeout.signal, ref: false }).catch(() => undefined),
  ]);
  timeout.abort();
}

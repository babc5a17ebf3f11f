// How late this process's event loop runs its timers: one Node thread serves the pool, the queue and the API, so a
// busy loop delays every answer. Shown by `GET /v1/control-plane` and `savassan leader status`.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IntervalHistogram } from 'node:perf_hooks';

/** An event loop's delay over a window, in milliseconds. */
export interface LoopDelayFigures {
  p50: number;
  p99: number;
  max: number;
}

export interface LoopDelayMonitorOptions {
  /** How often the loop is sampled (ms, default 20): the finest delay it can see. */
  resolutionMs?: number;
  /** How long a window lasts before it starts afresh (ms, default one minute). */
  windowMs?: number;
}

const nsPerMs = 1_000_000;

/**
 * Samples this thread's event loop delay with `perf_hooks.monitorEventLoopDelay` and reports it per window (a minute
 * by default): `figures()` gives the window under way, or the last complete window while the one under way has no
 * samples yet. A delay is how much later than asked a sampling timer ran, so an idle loop shows about 0.
 *
 * @example
 * const monitor = new LoopDelayMonitor();
 * monitor.start();
 * monitor.figures(); // { p50: 0.1, p99: 2.3, max: 8.6 }, or null before the first sample
 * monitor.stop();
 */
export class LoopDelayMonitor {
  readonly #resolutionMs: number;
  readonly #windowMs: number;
  #histogram: IntervalHistogram | null = null;
  #timer: NodeJS.Timeout | null = null;
  #lastWindow: LoopDelayFigures | null = null;

  constructor(options: LoopDelayMonitorOptions = {}) {
    this.#resolutionMs = Math.max(1, Math.round(options.resolutionMs ?? 20));
    this.#windowMs = Math.max(this.#resolutionMs, options.windowMs ?? 60_000);
  }

  /** Starts sampling (again after `stop`); a second call while sampling does nothing. */
  start(): void {
    if (this.#histogram !== null) return;
    const histogram = monitorEventLoopDelay({ resolution: this.#resolutionMs });
    histogram.enable();
    this.#histogram = histogram;
    this.#timer = setInterval(() => this.#rollOver(), this.#windowMs);
    // Sampling never keeps the process alive.
    this.#timer.unref();
  }

  /** Stops sampling; idempotent. The figures of the last window stay readable. */
  stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    if (this.#histogram !== null) {
      this.#lastWindow = this.#current() ?? this.#lastWindow;
      this.#histogram.disable();
    }
    this.#histogram = null;
  }

  /** The delay over the window under way, or the last complete one while this one has no sample; null before any. */
  figures(): LoopDelayFigures | null {
    return this.#current() ?? this.#lastWindow;
  }

  #rollOver(): void {
    this.#lastWindow = this.#current() ?? this.#lastWindow;
    this.#histogram?.reset();
  }

  #current(): LoopDelayFigures | null {
    const histogram = this.#histogram;
    if (histogram === null || histogram.count === 0) return null;
    // The histogram holds the time between samples, the resolution included: the delay is what exceeds it.
    const delay = (ns: number) => round(Math.max(0, ns / nsPerMs - this.#resolutionMs));
    return { p50: delay(histogram.percentile(50)), p99: delay(histogram.percentile(99)), max: delay(histogram.max) };
  }
}

/** To the microsecond: enough for a person, and stable in JSON. */
function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

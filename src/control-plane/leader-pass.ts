import type { Logger } from '../core/logger.js';
import { OutageLog } from '../core/outage-log.js';

/**
 * Work the leader repeats: a pass every `intervalMs` while `isLeader()`, also on demand. Concurrent calls share the
 * pass under way; a failing pass (a backend down) is retried by the next one and logged once per outage (`what`
 * names the work in that log line).
 */
export class LeaderPass {
  readonly #log: OutageLog;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #stopped = false;

  constructor(
    private readonly pass: () => Promise<void>,
    private readonly options: { intervalMs: number; isLeader: () => boolean; logger: Logger; what: string },
  ) {
    this.#log = new OutageLog(options.logger, options.what);
  }

  /** Run a pass every interval (while leading). */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#timer = setInterval(() => void this.run(), this.options.intervalMs);
    this.#timer.unref();
  }

  /** Stop the timer and wait for a pass under way. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    await this.#running;
  }

  /** Whether `stop` was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** One pass, if leading; joins the one under way. Never rejects. */
  run(): Promise<void> {
    if (this.#stopped || !this.options.isLeader()) return Promise.resolve();
    this.#running ??= this.pass()
      .then(
        () => this.#log.succeeded(),
        (err: unknown) => this.#log.failed(err),
      )
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }
}

import type { Logger } from './logger.js';

/**
 * Logs a background step that keeps failing (a backend is down) once per outage rather than once per attempt: the
 * first failure as a warning, the next ones at debug level, and the first success after them as the end of it.
 */
export class OutageLog {
  readonly #logger: Logger;
  readonly #what: string;
  readonly #now: () => number;
  #since: number | undefined;
  #failures = 0;

  /** `what` names the step in the messages: `'reconcile'`. */
  constructor(logger: Logger, what: string, now: () => number = Date.now) {
    this.#logger = logger;
    this.#what = what;
    this.#now = now;
  }

  failed(err: unknown): void {
    this.#failures++;
    if (this.#since !== undefined) {
      this.#logger.debug({ err }, `${this.#what} failed again`);
      return;
    }
    this.#since = this.#now();
    this.#logger.warn({ err }, `${this.#what} is failing; further failures are logged at debug level until it works`);
  }

  succeeded(): void {
    if (this.#since === undefined) return;
    this.#logger.info({ failures: this.#failures, outageMs: this.#now() - this.#since }, `${this.#what} works again`);
    this.#since = undefined;
    this.#failures = 0;
  }
}

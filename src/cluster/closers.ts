import type { Logger } from '../core/logger.js';

/**
 * What a process opened, closed in reverse order on stop or on a failed start: each failure is logged and the
 * rest still close. `close()` is idempotent.
 */
export class Closers {
  private readonly steps: (() => Promise<void>)[] = [];
  private closing: Promise<void> | undefined;

  constructor(private readonly logger: Logger) {}

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const step of [...this.steps].reverse()) {
        await step().catch((err: unknown) => this.logger.warn({ err }, 'close failed'));
      }
    })();
    return this.closing;
  }
}

import type { Logger } from '../core/logger.js';
import type { Cluster } from '../core/ports/cluster.js';

export interface LeadershipOptions {
  cluster: Pick<Cluster, 'campaign'>;
  /** Who campaigns (the Manager's id). */
  candidateId: string;
  logger: Logger;
  /** Called each time this candidate becomes the leader. */
  onLead?: () => void;
  /** Pause before campaigning again after a failed campaign. Default 1 s. */
  retryMs?: number;
}

/** Campaigns for the control-plane lead through the cluster's election, and again after losing it. */
export class Leadership {
  readonly #options: LeadershipOptions;
  #leading = false;
  #started = false;
  #stopped = false;
  #resign: (() => Promise<void>) | null = null;

  constructor(options: LeadershipOptions) {
    this.#options = options;
  }

  /** Whether this candidate leads now. */
  get leading(): boolean {
    return this.#leading;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.#campaign();
  }

  /**
   * Give the lead up (if held) and stop campaigning: a campaign still waiting resigns as soon as it would lead.
   * Idempotent.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#leading = false;
    await this.#resign?.();
  }

  async #campaign(): Promise<void> {
    const { cluster, candidateId, logger } = this.#options;
    while (!this.#stopped) {
      try {
        const lead = await cluster.campaign(candidateId);
        if (this.#stopped) {
          await lead.resign();
          return;
        }
        this.#resign = () => lead.resign();
        this.#leading = true;
        logger.info({ managerId: candidateId }, 'leading the control plane');
        this.#options.onLead?.();
        await lead.lost;
        this.#leading = false;
        this.#resign = null;
        if (!this.#stopped) logger.warn({ managerId: candidateId }, 'lost the control-plane lead');
      } catch (err) {
        this.#leading = false;
        if (this.#stopped) return;
        logger.warn({ err }, 'campaign failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, this.#options.retryMs ?? 1000));
      }
    }
  }
}

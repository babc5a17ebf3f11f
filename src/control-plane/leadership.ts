import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Cluster, Lead } from '../core/ports/cluster.js';

export interface LeadershipOptions {
  cluster: Pick<Cluster, 'campaign' | 'takeOver'>;
  /** Who campaigns (the Manager's id). */
  candidateId: string;
  logger: Logger;
  /** Called each time this candidate becomes the leader (elected or by a takeover). */
  onLead?: () => void;
  /** Called each time a lead of this candidate ends (lost, taken over by another, or given up by `stop`). */
  onLose?: () => void;
  /** Pause before campaigning again after a failed campaign. Default 1 s. */
  retryMs?: number;
}

/**
 * Campaigns for the control-plane lead through the cluster's election, and again after losing it. A candidate can
 * also take the lead over from the leader (a graceful handover): its own waiting campaign is withdrawn, and once that
 * lead ends it campaigns again as usual.
 */
export class Leadership {
  readonly #options: LeadershipOptions;
  #lead: Lead | null = null;
  /** Resolves when the lead held now ends; null while none is held. */
  #leadEnded: Promise<void> | null = null;
  /** The campaign waiting to be elected, withdrawn by a takeover or `stop`. */
  #waiting: AbortController | null = null;
  #started = false;
  #stopped = false;
  #onStop: () => void = () => undefined;
  readonly #stopping = new Promise<void>((resolve) => {
    this.#onStop = resolve;
  });

  constructor(options: LeadershipOptions) {
    this.#options = options;
  }

  /** Whether this candidate leads now. */
  get leading(): boolean {
    return this.#lead !== null && !this.#stopped;
  }

  /** The term of the lead held now, or 0 while not leading. */
  get term(): number {
    return this.leading ? (this.#lead?.term ?? 0) : 0;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    void this.#campaign();
  }

  /**
   * Take the lead over from `fromId`, the leader now (see `Cluster.takeOver`), and lead at once; resolves with the new
   * term. CONFLICT when `fromId` does not lead or this candidate leads already; UNAVAILABLE once stopped.
   */
  async takeOver(fromId: string): Promise<number> {
    const { cluster, candidateId, logger } = this.#options;
    if (this.#stopped) throw new PlatformError('UNAVAILABLE', `${candidateId} stopped campaigning`);
    if (this.#lead !== null) throw new PlatformError('CONFLICT', `${candidateId} leads the control plane already`);
    const lead = await cluster.takeOver(candidateId, fromId);
    if (this.#stopped) {
      await lead.resign();
      throw new PlatformError('UNAVAILABLE', `${candidateId} stopped campaigning`);
    }
    // The campaign still waiting would only lead after this lead: it campaigns again once this lead ends.
    this.#waiting?.abort(new PlatformError('CONFLICT', `${candidateId} took the lead over from ${fromId}`));
    logger.info({ managerId: candidateId, from: fromId, term: lead.term }, 'took the control-plane lead over');
    this.#hold(lead);
    return lead.term;
  }

  /** Give the lead up (if held) and stop campaigning: a campaign still waiting is withdrawn. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#onStop();
    this.#waiting?.abort(new PlatformError('UNAVAILABLE', `${this.#options.candidateId} stopped campaigning`));
    await this.#lead?.resign();
  }

  async #campaign(): Promise<void> {
    const { cluster, candidateId, logger } = this.#options;
    while (!this.#stopped) {
      if (this.#leadEnded !== null) {
        // A takeover holds the lead: campaign again once it ends.
        await this.#leadEnded;
        continue;
      }
      const waiting = new AbortController();
      this.#waiting = waiting;
      try {
        const lead = await cluster.campaign(candidateId, { signal: waiting.signal });
        if (this.#stopped) {
          await lead.resign();
          return;
        }
        if (waiting.signal.aborted) {
          // Elected just as a takeover withdrew it: the lead taken over is the one held.
          await lead.resign();
          continue;
        }
        this.#hold(lead);
      } catch (err) {
        if (this.#stopped) return;
        if (waiting.signal.aborted) continue; // withdrawn for a takeover
        logger.warn({ err }, 'campaign failed; trying again');
        await new Promise((resolve) => setTimeout(resolve, this.#options.retryMs ?? 1000));
      } finally {
        if (this.#waiting === waiting) this.#waiting = null;
      }
    }
  }

  /** Leads through `lead` until it is lost or this candidate stops. */
  #hold(lead: Lead): void {
    const { candidateId, logger } = this.#options;
    this.#lead = lead;
    this.#leadEnded = Promise.race([lead.lost, this.#stopping]).then(() => {
      this.#lead = null;
      this.#leadEnded = null;
      if (!this.#stopped) logger.warn({ managerId: candidateId, term: lead.term }, 'lost the control-plane lead');
      this.#notify(this.#options.onLose, 'onLose');
    });
    logger.info({ managerId: candidateId, term: lead.term }, 'leading the control plane');
    this.#notify(this.#options.onLead, 'onLead');
  }

  #notify(callback: (() => void) | undefined, name: string): void {
    try {
      callback?.();
    } catch (err) {
      this.#options.logger.error({ err }, `leadership ${name} threw`);
    }
  }
}

import { PlatformError } from '../core/errors.js';
import { validateFunctionName } from '../core/function-config.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import type { RolloutSettingsInput, StepFigures } from '../core/rollouts.js';
import { compileRolloutSettings, endRollout } from '../core/rollouts.js';
import { noFigures } from '../core/traffic-rules.js';
import { weightsFromRecord } from '../core/traffic.js';
import { validateAliasName, validateStickyHeader } from '../core/traffic-rules.js';
import type { Alias, FunctionRecord, Rollout, VersionFigures } from '../core/types.js';
import { liveAlias } from '../core/types.js';
import type { FunctionResolver } from './function-resolver.js';

export interface TrafficOptions {
  metadata: MetadataStore;
  traffic: TrafficStore;
  resolver: FunctionResolver;
  /** Called after a function's traffic moved (embedded mode reconciles at once). */
  onChange?: ((functionName: string) => void) | undefined;
  logger?: Logger | undefined;
}

/** An alias as the API takes it: weights by version number (`{"1": 0.9, "2": 0.1}`), an optional sticky header. */
export interface AliasRequest {
  weights: Readonly<Record<string, unknown>>;
  stickyHeader?: string | null | undefined;
}

/** A rollout as the API takes it: the canary version, the alias (default `live`) and any settings. */
export interface RolloutRequest extends RolloutSettingsInput {
  version: number;
  alias?: string | undefined;
}

/** How many times a hand promote or abort reads the rollout again after the leader changed it meanwhile. */
const maxEndAttempts = 5;

/**
 * The API's side of traffic: aliases, and rollouts started, promoted and aborted by hand (the control-plane leader
 * drives the steps). Every change goes through the `TrafficStore`, which holds the invariants; this gateway forgets
 * what it cached of the function at once.
 */
export class Traffic {
  readonly #options: TrafficOptions;
  readonly #logger: Logger;

  constructor(options: TrafficOptions) {
    this.#options = options;
    this.#logger = (options.logger ?? silentLogger).child({ role: 'traffic' });
  }

  /** Create or replace an alias; `created` says which. */
  async putAlias(name: string, alias: string, request: AliasRequest): Promise<{ alias: Alias; created: boolean }> {
    validateFunctionName(name);
    validateAliasName(alias);
    const weights = weightsFromRecord(request.weights);
    const stickyHeader = validateStickyHeader(request.stickyHeader);
    const result = await this.#options.traffic.putAlias(name, alias, { weights, stickyHeader });
    this.#changed(name);
    this.#logger.info({ name, alias, weights, stickyHeader }, result.created ? 'alias created' : 'alias changed');
    return result;
  }

  async listAliases(name: string): Promise<Alias[]> {
    await this.requireFunction(name);
    return this.#options.traffic.listAliases(name);
  }

  async getAlias(name: string, alias: string): Promise<Alias> {
    validateAliasName(alias);
    const found = await this.#options.traffic.getAlias(name, alias);
    if (found !== null) return found;
    await this.requireFunction(name);
    throw new PlatformError('NOT_FOUND', `function ${name} has no alias ${alias}`);
  }

  /** Delete an alias: NOT_FOUND when there is none, CONFLICT for `live` and an alias a running rollout moves. */
  async deleteAlias(name: string, alias: string): Promise<void> {
    validateFunctionName(name);
    validateAliasName(alias);
    if (alias === liveAlias) {
      throw new PlatformError('CONFLICT', `the ${liveAlias} alias cannot be deleted: every function has it`);
    }
    if (!(await this.#options.traffic.deleteAlias(name, alias))) {
      await this.requireFunction(name);
      throw new PlatformError('NOT_FOUND', `function ${name} has no alias ${alias}`);
    }
    this.#changed(name);
    this.#logger.info({ name, alias }, 'alias deleted');
  }

  /** Start a rollout: the alias becomes baseline and canary, weighted by the first step. */
  async startRollout(name: string, request: RolloutRequest): Promise<Rollout> {
    validateFunctionName(name);
    const alias = validateAliasName(request.alias ?? liveAlias);
    const settings = compileRolloutSettings(request);
    const rollout = await this.#options.traffic.startRollout({
      functionName: name,
      alias,
      version: request.version,
      settings,
    });
    this.#changed(name);
    this.#logger.info({ name, alias, version: rollout.version, baseline: rollout.baseline }, 'rollout started');
    return rollout;
  }

  /** The newest `limit` (default and at most 100), newest first. */
  async listRollouts(name: string, limit?: number): Promise<Rollout[]> {
    await this.requireFunction(name);
    return this.#options.traffic.listRollouts(name, limit);
  }

  async getRollout(name: string, id: string): Promise<Rollout> {
    const rollout = await this.#options.traffic.getRollout(name, id);
    if (rollout !== null) return rollout;
    await this.requireFunction(name);
    throw new PlatformError('NOT_FOUND', `function ${name} has no rollout ${id}`);
  }

  /** Give the canary all of the alias's traffic now. CONFLICT when the rollout is not running. */
  promote(name: string, id: string): Promise<Rollout> {
    return this.#end(name, id, 'promoted', 'promoted by hand');
  }

  /** Give the baseline all of the alias's traffic back now, without judging anything. CONFLICT when not running. */
  abort(name: string, id: string): Promise<Rollout> {
    return this.#end(name, id, 'aborted', 'aborted by hand');
  }

  /** Per version: its invocations, failures and p99 since `since`. */
  versionFigures(name: string, since: Date): Promise<Map<number, VersionFigures>> {
    return this.#options.traffic.versionFigures(name, since);
  }

  async requireFunction(name: string): Promise<FunctionRecord> {
    const fn = await this.#options.metadata.getFunction(name);
    if (fn === null) throw new PlatformError('NOT_FOUND', `function ${name} not found`);
    return fn;
  }

  async #end(name: string, id: string, outcome: 'promoted' | 'aborted', reason: string): Promise<Rollout> {
    // The leader may judge the rollout between the read and the write: the write is compare-and-set on the
    // revision, and a rollout still running after a lost race is read again.
    for (let attempt = 1; attempt <= maxEndAttempts; attempt++) {
      const rollout = await this.getRollout(name, id);
      if (rollout.state !== 'running') {
        throw new PlatformError('CONFLICT', `rollout ${id} of ${name} is not running: it was ${rollout.state}`, {
          details: { state: rollout.state },
        });
      }
      const change = endRollout(rollout, outcome, new Date(), await this.#stepFigures(rollout), reason);
      const { applied, rollout: after } = await this.#options.traffic.updateRollout(name, id, rollout.revision, change);
      if (applied && after !== null) {
        this.#changed(name);
        this.#logger.info({ name, id, version: rollout.version, baseline: rollout.baseline }, `rollout ${outcome}`);
        return after;
      }
    }
    throw new PlatformError('CONFLICT', `rollout ${id} of ${name} kept changing; try again`);
  }

  /** The canary's and the baseline's figures since the step under way began (for the history entry). */
  async #stepFigures(rollout: Rollout): Promise<StepFigures> {
    const figures = await this.#options.traffic.versionFigures(rollout.functionName, rollout.stepStartedAt, [
      rollout.version,
      rollout.baseline,
    ]);
    return {
      canary: figures.get(rollout.version) ?? { ...noFigures },
      baseline: figures.get(rollout.baseline) ?? { ...noFigures },
    };
  }

  #changed(name: string): void {
    this.#options.resolver.invalidate(name);
    this.#options.onChange?.(name);
  }
}

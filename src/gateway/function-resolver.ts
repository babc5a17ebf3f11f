import { PlatformError } from '../core/errors.js';
import type { MetadataStore } from '../core/ports/metadata-store.js';
import type { TrafficStore } from '../core/ports/traffic-store.js';
import { TrafficSplit, isVersionQualifier, stickyPoint } from '../core/traffic.js';
import { validateAliasName } from '../core/traffic-rules.js';
import type { FunctionVersion } from '../core/types.js';
import { liveAlias } from '../core/types.js';

/** A request header's value, by lowercase name; it may have to be asked of another thread (a lane). */
export type HeaderValue = (name: string) => string | undefined | Promise<string | undefined>;

/** The version an invocation runs, and the alias that chose it (null when a version number was asked for). */
export interface Resolved {
  readonly version: FunctionVersion;
  readonly alias: string | null;
}

/** What a qualifier resolves to, cached: one version, or an alias's versions and how traffic splits between them. */
interface Target {
  readonly expiresAt: number;
  readonly alias: string | null;
  readonly stickyHeader: string | null;
  /** Null when there is one version. */
  readonly split: TrafficSplit | null;
  /** One per version of the split, in its order. */
  readonly resolved: readonly Resolved[];
}

/**
 * Resolves a function and a qualifier (a version number, or an alias: `live` by default) to the version an invocation
 * runs, on the invoke path, with a short-lived cache so a warm invoke reads no store. An alias of several versions
 * picks one per invocation by weight: by the hash of its sticky header's value when the request has it, at random
 * otherwise (`TrafficSplit`). Deploys, alias changes and deletes through this gateway invalidate at once (and the
 * control plane's pushes, through `invalidate`); other gateways see a change within `ttlMs`.
 */
export class FunctionResolver {
  readonly #cache = new Map<string, Map<string, Target>>();
  /** Bumped by each invalidation of a function: a load that started before one is not cached. */
  readonly #generations = new Map<string, number>();

  constructor(
    private readonly metadata: MetadataStore,
    private readonly traffic: TrafficStore,
    private readonly ttlMs = 1000,
  ) {}

  /**
   * The version to run. Throws NOT_FOUND for an unknown function, version or alias, BAD_REQUEST for a qualifier that
   * is neither a version number nor an alias name.
   */
  async resolve(name: string, qualifier: string = liveAlias, header?: HeaderValue): Promise<Resolved> {
    const hit = this.#cache.get(name)?.get(qualifier);
    const target = hit !== undefined && hit.expiresAt > Date.now() ? hit : await this.#load(name, qualifier);
    const { split, resolved } = target;
    if (split === null) return resolved[0] as Resolved;
    let point: number | undefined;
    if (target.stickyHeader !== null && header !== undefined) {
      const value = await header(target.stickyHeader);
      if (value !== undefined && value !== '') point = stickyPoint(name, target.alias ?? '', value);
    }
    return resolved[split.indexAt(point ?? Math.random())] as Resolved;
  }

  /** Forget what is cached of a function: its versions or aliases changed. */
  invalidate(name: string): void {
    this.#cache.delete(name);
    this.#generations.set(name, (this.#generations.get(name) ?? 0) + 1);
  }

  async #load(name: string, qualifier: string): Promise<Target> {
    const generation = this.#generations.get(name) ?? 0;
    const target = isVersionQualifier(qualifier)
      ? await this.#loadVersion(name, qualifier)
      : await this.#loadAlias(name, qualifier);
    if ((this.#generations.get(name) ?? 0) === generation) {
      let targets = this.#cache.get(name);
      if (targets === undefined) this.#cache.set(name, (targets = new Map<string, Target>()));
      targets.set(qualifier, target);
    }
    return target;
  }

  async #loadVersion(name: string, qualifier: string): Promise<Target> {
    const number = Number(qualifier);
    const version = Number.isSafeInteger(number) ? await this.metadata.getVersion(name, number) : null;
    if (version === null) {
      await this.#requireFunction(name);
      throw new PlatformError('NOT_FOUND', `function ${name} has no version ${qualifier}`);
    }
    return {
      expiresAt: Date.now() + this.ttlMs,
      alias: null,
      stickyHeader: null,
      split: null,
      resolved: [{ version, alias: null }],
    };
  }

  async #loadAlias(name: string, qualifier: string): Promise<Target> {
    try {
      validateAliasName(qualifier);
    } catch (err) {
      throw new PlatformError(
        'BAD_REQUEST',
        `qualifier ${JSON.stringify(qualifier.slice(0, 100))} is neither a version number nor an alias name ` +
          '(lowercase letters, digits and dashes, starting with a letter)',
        { cause: err },
      );
    }
    const alias = await this.traffic.getAlias(name, qualifier);
    if (alias === null) {
      await this.#requireFunction(name);
      throw new PlatformError('NOT_FOUND', `function ${name} has no alias ${qualifier}`);
    }
    const split = new TrafficSplit(alias.weights);
    const versions = await Promise.all(split.versions.map((v) => this.metadata.getVersion(name, v)));
    const resolved = versions.map((version, i) => {
      if (version === null) {
        throw new PlatformError(
          'NOT_FOUND',
          `function ${name} has no version ${split.versions[i]} (alias ${qualifier})`,
        );
      }
      return { version, alias: qualifier };
    });
    return {
      expiresAt: Date.now() + this.ttlMs,
      alias: qualifier,
      stickyHeader: alias.stickyHeader,
      split: resolved.length === 1 ? null : split,
      resolved,
    };
  }

  async #requireFunction(name: string): Promise<void> {
    if ((await this.metadata.getFunction(name)) === null) {
      throw new PlatformError('NOT_FOUND', `function ${name} not found`);
    }
  }
}

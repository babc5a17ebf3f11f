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
 *
 * The cache holds what was read in the last `ttlMs` only: expired entries are swept at most once per `ttlMs`, a
 * version qualifier is cached under its number (`01` and `1` are one entry), and only existing versions and aliases
 * are cached, so neither deleted functions nor made-up qualifiers make it grow.
 */
export class FunctionResolver {
  readonly #cache = new Map<string, Map<string, Target>>();
  /** Bumped by each invalidation; a load remembers it when it starts. */
  #epoch = 0;
  /**
   * Function name → the epoch of its last invalidation, while a load that started before it may still be under way
   * (such a load is not cached). Empty whenever no load is under way.
   */
  readonly #invalidated = new Map<string, number>();
  /** The start epochs of the loads under way, with how many started at each. */
  readonly #loading = new Map<number, number>();
  #sweptAt = 0;

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
    // A version number's leading zeros are ignored: `01` is version 1, cached once.
    if (qualifier.startsWith('0') && isVersionQualifier(qualifier)) qualifier = qualifier.replace(/^0+(?=.)/, '');
    const hit = this.#cache.get(name)?.get(qualifier);
    const target = hit !== undefined && hit.expiresAt > Date.now() ? hit : await this.#load(name, qualifier);
    const { split, resolved } = target;
    if (split === null) return resolved[0] as Resolved;
    let point: number | undefined;
    if (target.stickyHeader !== null && header !== undefined) {
      // The HTTP paths read the header at once; only a lane's reader answers later, over its message port.
      const read = header(target.stickyHeader);
      const value = typeof read === 'object' ? await read : read;
      if (value !== undefined && value !== '') point = stickyPoint(name, target.alias ?? '', value);
    }
    return resolved[split.indexAt(point ?? Math.random())] as Resolved;
  }

  /** Forget what is cached of a function: its versions or aliases changed (or it was deleted). */
  invalidate(name: string): void {
    this.#cache.delete(name);
    // Only a load under way can have read what was true before: with none, there is nothing to remember.
    if (this.#loading.size > 0) this.#invalidated.set(name, ++this.#epoch);
  }

  /** How much the cache holds: cached targets, and invalidations remembered for loads under way. */
  cacheSize(): { targets: number; invalidations: number } {
    let targets = 0;
    for (const cached of this.#cache.values()) targets += cached.size;
    return { targets, invalidations: this.#invalidated.size };
  }

  async #load(name: string, qualifier: string): Promise<Target> {
    this.#sweep();
    const started = this.#epoch;
    this.#loading.set(started, (this.#loading.get(started) ?? 0) + 1);
    try {
      const target = isVersionQualifier(qualifier)
        ? await this.#loadVersion(name, qualifier)
        : await this.#loadAlias(name, qualifier);
      if ((this.#invalidated.get(name) ?? -1) <= started) {
        let targets = this.#cache.get(name);
        if (targets === undefined) this.#cache.set(name, (targets = new Map<string, Target>()));
        targets.set(qualifier, target);
      }
      return target;
    } finally {
      const left = (this.#loading.get(started) ?? 1) - 1;
      if (left > 0) this.#loading.set(started, left);
      else this.#loading.delete(started);
      if (this.#loading.size === 0) this.#invalidated.clear();
    }
  }

  /**
   * At most once per `ttlMs`: drop expired targets, and the invalidations older than every load under way (no load
   * can be told apart by them any more).
   */
  #sweep(): void {
    const now = Date.now();
    if (now < this.#sweptAt + this.ttlMs) return;
    this.#sweptAt = now;
    for (const [name, targets] of this.#cache) {
      for (const [qualifier, target] of targets) if (target.expiresAt <= now) targets.delete(qualifier);
      if (targets.size === 0) this.#cache.delete(name);
    }
    if (this.#loading.size === 0) return;
    let oldest = Infinity;
    for (const started of this.#loading.keys()) oldest = Math.min(oldest, started);
    for (const [name, epoch] of this.#invalidated) if (epoch <= oldest) this.#invalidated.delete(name);
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

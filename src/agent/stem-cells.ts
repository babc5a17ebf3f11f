import { isPlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';

export interface StemCellOptions {
  /** Most idle stem cells kept for one kind (runtime, memory, network). Default 2. */
  maxPerKind: number;
  /** Most stem cells on the node in all, idle or starting: the bound on the idle memory they cost. Default 4. */
  maxTotal: number;
  /** A kind nobody asked for in this long shrinks by one cell. Default 60 s. */
  idleMs: number;
  /** Kinds always kept at one cell at least (the default function settings). */
  baseKinds: string[];
  /**
   * The longest a taken cell's replacement waits for the caller's word (see `take`): a sandbox created without an
   * invocation waiting (min instances) may not be invoked for a while. Default 1 s.
   */
  replaceAfterMs: number;
}

export const defaultStemCellOptions: StemCellOptions = {
  maxPerKind: 2,
  maxTotal: 4,
  idleMs: 60_000,
  baseKinds: [],
  replaceAfterMs: 1000,
};

/** What the pool needs from a cell. */
export interface StemCell {
  readonly instanceId: string;
}

interface Kind<T extends StemCell> {
  idle: T[];
  starting: number;
  /** How many cells this kind should have ready; grows on a miss, shrinks when unused. */
  target: number;
  lastDemand: number;
  failures: number;
}

export interface StemCellStats {
  idle: number;
  starting: number;
  byKind: Record<string, { idle: number; starting: number; target: number }>;
}

/**
 * Pre-started generic sandboxes, one small pool per kind, sized to demand: a cold start that finds no cell raises
 * its kind's target (up to `maxPerKind`); a kind left unused for `idleMs` loses a cell. The total, idle or
 * starting, never exceeds `maxTotal`: a kind in demand takes the place of the least recently wanted one.
 */
export class StemCells<T extends StemCell> {
  private readonly kinds = new Map<string, Kind<T>>();
  private readonly timer: NodeJS.Timeout;
  private closed = false;

  constructor(
    private readonly options: StemCellOptions,
    private readonly launch: (kind: string) => Promise<T>,
    private readonly discard: (cell: T) => Promise<void>,
    private readonly logger: Logger,
  ) {
    // Base kinds start full: a deploy's trial and the first invoke after it each take a cell.
    for (const kind of options.baseKinds) this.kindOf(kind).target = options.maxPerKind;
    this.timer = setInterval(() => this.shrinkUnused(), Math.max(1000, options.idleMs / 2));
    this.timer.unref();
    for (const kind of options.baseKinds) this.refill(kind);
  }

  /** See `StemCellOptions.replaceAfterMs`. */
  get replaceAfterMs(): number {
    return this.options.replaceAfterMs;
  }

  /**
   * Take a ready cell of this kind, or null (a miss, which raises the kind's target). Refills in the background:
   * at once after a miss; after a hit, once `refillAfter` settles when given. Starting a sandbox costs the node
   * far more CPU than specialising one, so a cold start that found a cell lets its caller say when the replacement
   * may start (its first answer sent) rather than compete with it.
   */
  take(kind: string, refillAfter?: Promise<unknown>): T | null {
    if (this.closed) return null;
    const entry = this.kindOf(kind);
    entry.lastDemand = Date.now();
    const cell = entry.idle.pop() ?? null;
    if (cell === null) entry.target = Math.min(this.options.maxPerKind, entry.target + 1);
    if (cell === null || refillAfter === undefined) this.refill(kind);
    else {
      const refill = (): void => this.refill(kind);
      refillAfter.then(refill, refill);
    }
    return cell;
  }

  /** Whether a cell of this kind is ready now. */
  hasIdle(kind: string): boolean {
    return (this.kinds.get(kind)?.idle.length ?? 0) > 0;
  }

  /**
   * Give up one idle cell, of the least recently wanted kind, to make room on a full node (the caller discards it);
   * its kind's target drops so it is not started again at once. Null when none is idle.
   */
  evictOne(): T | null {
    let victim: Kind<T> | null = null;
    for (const entry of this.kinds.values()) {
      if (entry.idle.length > 0 && (victim === null || entry.lastDemand < victim.lastDemand)) victim = entry;
    }
    const cell = victim?.idle.shift() ?? null;
    if (victim !== null) victim.target = Math.min(victim.target, victim.idle.length);
    return cell;
  }

  /** A cell died while waiting: drop it and start another. */
  forget(cell: T): void {
    for (const [name, entry] of this.kinds) {
      const at = entry.idle.indexOf(cell);
      if (at === -1) continue;
      entry.idle.splice(at, 1);
      this.refill(name);
      return;
    }
  }

  stats(): StemCellStats {
    const byKind: StemCellStats['byKind'] = {};
    let idle = 0;
    let starting = 0;
    for (const [name, entry] of this.kinds) {
      byKind[name] = { idle: entry.idle.length, starting: entry.starting, target: entry.target };
      idle += entry.idle.length;
      starting += entry.starting;
    }
    return { idle, starting, byKind };
  }

  /** Every idle cell (for memory reports). */
  cells(): T[] {
    return [...this.kinds.values()].flatMap((entry) => entry.idle);
  }

  /** Stop refilling and discard every idle cell; cells still starting are discarded as they arrive. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    const cells = this.cells();
    for (const entry of this.kinds.values()) entry.idle = [];
    await Promise.all(cells.map((cell) => this.discard(cell)));
  }

  private kindOf(kind: string): Kind<T> {
    let entry = this.kinds.get(kind);
    if (entry === undefined) {
      entry = { idle: [], starting: 0, target: 0, lastDemand: Date.now(), failures: 0 };
      this.kinds.set(kind, entry);
    }
    return entry;
  }

  private total(): number {
    let total = 0;
    for (const entry of this.kinds.values()) total += entry.idle.length + entry.starting;
    return total;
  }

  /** Start cells until the kind reaches its target, making room by evicting the least wanted kind's idle cells. */
  private refill(kind: string): void {
    const entry = this.kindOf(kind);
    while (!this.closed && entry.idle.length + entry.starting < entry.target) {
      if (this.total() >= this.options.maxTotal && !this.evictFor(kind)) return;
      entry.starting += 1;
      void this.launch(kind).then(
        (cell) => {
          entry.starting -= 1;
          entry.failures = 0;
          if (this.closed || entry.idle.length >= entry.target) return void this.discard(cell);
          entry.idle.push(cell);
        },
        (err: unknown) => {
          entry.starting -= 1;
          if (this.closed) return; // the node is stopping: nothing failed
          entry.failures += 1;
          // A kind that cannot start (a runtime not installed) stops being refilled until it is wanted again; on a
          // full node it keeps the cells it has.
          const full = isPlatformError(err, 'TOO_MANY_REQUESTS');
          entry.target = full ? Math.min(entry.target, entry.idle.length + entry.starting) : 0;
          this.logger[full ? 'debug' : 'warn']({ err, kind, failures: entry.failures }, 'could not start a stem cell');
        },
      );
    }
  }

  private evictFor(kind: string): boolean {
    let victim: [string, Kind<T>] | null = null;
    for (const candidate of this.kinds) {
      if (candidate[0] === kind || candidate[1].idle.length === 0) continue;
      if (victim === null || candidate[1].lastDemand < victim[1].lastDemand) victim = candidate;
    }
    const cell = victim?.[1].idle.shift();
    if (victim === null || cell === undefined) return false;
    victim[1].target = Math.min(victim[1].target, victim[1].idle.length);
    void this.discard(cell);
    return true;
  }

  private shrinkUnused(): void {
    const now = Date.now();
    for (const [name, entry] of this.kinds) {
      const floor = this.options.baseKinds.includes(name) ? 1 : 0;
      if (now - entry.lastDemand < this.options.idleMs || entry.target <= floor) continue;
      entry.target -= 1;
      entry.lastDemand = now;
      while (entry.idle.length > entry.target) {
        const cell = entry.idle.shift();
        if (cell !== undefined) void this.discard(cell);
      }
    }
  }
}

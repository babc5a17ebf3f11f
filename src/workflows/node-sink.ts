import type { BlobStore } from '../core/ports/blob-store.js';
import type { ExecutionKey, NodeExecutionRecord, WorkflowStore } from '../core/ports/workflow-store.js';
import type { WorkflowNodeOutcome, WorkflowNodeRef, WorkflowNodeSink } from '../events/workflow-node-sink.js';
import { nodeOutputBlobKey, storeJson } from './values.js';

export interface StoreNodeSinkOptions {
  store: WorkflowStore;
  blobStore: BlobStore;
  /** This process's id (its boot id): the `claimedBy` of the attempts its dispatcher runs. */
  processId: string;
  /**
   * How long past the function's own timeout a claim is held before the engine gives the attempt up as lost, when
   * the node sets no timeout of its own (ms, default 30 s).
   */
  claimGraceMs?: number | undefined;
  /**
   * Embedded mode: the engine in this process writes attempts claimed for this process already (`claimedBy` this
   * process, no deadline), and such a row is taken once without a write. Otherwise (a cluster) a row claimed by
   * this process was taken by an earlier delivery here and is never taken again.
   */
  preclaimed?: boolean | undefined;
  /**
   * The row as the engine in this process last saw it (embedded mode), tried before reading the store: a stale one
   * only loses its compare-and-set, and the row is read then.
   */
  peek?: ((key: ExecutionKey, nodeKey: string) => NodeExecutionRecord | undefined) | undefined;
  /** A row was written here: the engine in this process takes it at once (embedded mode). */
  onChange?: ((row: NodeExecutionRecord) => void) | undefined;
  now?: (() => number) | undefined;
}

function attemptId(ref: WorkflowNodeRef): string {
  return `${ref.project}/${ref.domain}/${ref.name}/${ref.node}#${ref.attempt}`;
}

/** Compare-and-set tries before a write gives up (another writer keeps moving the row on). */
const maxTries = 5;

/**
 * The dispatcher's side of node attempts, over the workflow store: a claim is a compare-and-set of the node row
 * (the attempt still current and RUNNING, nobody's yet; or written claimed for this process by the engine beside
 * it, in embedded mode, and not taken here yet), a report writes the attempt's end (and on success the
 * node's output and end; on failure the engine decides on a retry).
 */
export class StoreNodeSink implements WorkflowNodeSink {
  readonly #options: StoreNodeSinkOptions;
  readonly #now: () => number;
  /** Attempts this process took and has not reported: another delivery of the same event is refused. */
  readonly #started = new Set<string>();

  constructor(options: StoreNodeSinkOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  async claim(ref: WorkflowNodeRef, functionTimeoutSeconds: number): Promise<boolean> {
    const id = attemptId(ref);
    if (this.#started.has(id)) return false;
    const timeoutMs =
      ref.timeoutSeconds !== undefined
        ? ref.timeoutSeconds * 1000
        : functionTimeoutSeconds * 1000 + (this.#options.claimGraceMs ?? 30_000);
    let preclaimed = false;
    // Taken before the write: another delivery of the same event in this process is refused meanwhile.
    this.#started.add(id);
    let written = null;
    try {
      written = await this.#update(ref, (row) => {
        if (row.claimedBy === this.#options.processId) {
          // Written claimed for this process by the engine beside it (no deadline: a claim taken here sets one).
          if (this.#options.preclaimed === true && row.deadline === null) preclaimed = true;
          return null;
        }
        if (row.claimedBy !== null) return null;
        return { ...row, claimedBy: this.#options.processId, deadline: new Date(this.#now() + timeoutMs) };
      });
    } finally {
      if (written === null && !preclaimed) this.#started.delete(id);
    }
    return written !== null || preclaimed;
  }

  async release(ref: WorkflowNodeRef): Promise<void> {
    this.#started.delete(attemptId(ref));
    await this.#update(ref, (row) =>
      row.claimedBy !== this.#options.processId ? null : { ...row, claimedBy: null, deadline: null },
    );
  }

  async report(ref: WorkflowNodeRef, outcome: WorkflowNodeOutcome): Promise<void> {
    // The attempt stays taken here until its end is written: a delivery meanwhile must not run it again.
    let output = null;
    if (outcome.status === 'succeeded') {
      const json = Buffer.from(outcome.outputJson).toString('utf8');
      output = await storeJson(this.#options.blobStore, json, nodeOutputBlobKey(ref, ref.node, ref.attempt));
    }
    const written = await this.#update(ref, (row) => {
      if (row.claimedBy !== null && row.claimedBy !== this.#options.processId) return null;
      const now = new Date(this.#now());
      const last = row.attempts.length - 1;
      if (outcome.status === 'succeeded') {
        const attempts = row.attempts.map((a, i) =>
          i === last ? { ...a, phase: 'SUCCEEDED' as const, endedAt: now, invocationId: outcome.invocationId } : a,
        );
        return {
          ...row,
          phase: 'SUCCEEDED',
          attempts,
          output,
          error: null,
          claimedBy: null,
          deadline: null,
          endedAt: now,
        };
      }
      const error = { code: outcome.code, message: outcome.message, kind: outcome.kind };
      const attempts = row.attempts.map((a, i) =>
        i === last ? { ...a, phase: 'FAILED' as const, endedAt: now, invocationId: outcome.invocationId, error } : a,
      );
      return { ...row, attempts, error, claimedBy: null, deadline: null };
    });
    // Written, or the attempt is no longer current (ended or superseded): either way it is never claimed again. A
    // write that kept losing leaves it taken here (the engine gives it up after its deadline).
    if (written === null && (await this.#current(ref))) return;
    this.#started.delete(attemptId(ref));
  }

  /** Whether `ref` is still its node's current, running attempt. */
  async #current(ref: WorkflowNodeRef): Promise<boolean> {
    const row = await this.#options.store.getNode(
      { project: ref.project, domain: ref.domain, name: ref.name },
      ref.node,
    );
    const current = row?.attempts.at(-1);
    return row?.phase === 'RUNNING' && current?.attempt === ref.attempt && current.phase === 'RUNNING';
  }

  /**
   * Apply `change` to the row while `ref` is its current, running attempt; null when it is not (or `change` says
   * no), else the row written.
   */
  async #update(
    ref: WorkflowNodeRef,
    change: (row: NodeExecutionRecord) => Omit<NodeExecutionRecord, 'revision'> | null,
  ): Promise<NodeExecutionRecord | null> {
    const key = { project: ref.project, domain: ref.domain, name: ref.name };
    for (let i = 0; i < maxTries; i += 1) {
      const row =
        (i === 0 ? this.#options.peek?.(key, ref.node) : undefined) ??
        (await this.#options.store.getNode(key, ref.node));
      if (row === null || row.phase !== 'RUNNING') return null;
      const current = row.attempts.at(-1);
      if (current === undefined || current.attempt !== ref.attempt || current.phase !== 'RUNNING') return null;
      const next = change(row);
      if (next === null) return null;
      const { revision: _revision, ...record } = next as NodeExecutionRecord;
      const written = await this.#options.store.putNode({ ...record, updatedAt: new Date(this.#now()) }, row.revision);
      if (written !== null) {
        this.#options.onChange?.(written);
        return written;
      }
    }
    return null;
  }
}

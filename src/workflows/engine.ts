import { createHash } from 'node:crypto';
import { PlatformError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { silentLogger } from '../core/logger.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import {
  terminalExecutionPhases,
  terminalNodePhases,
  type ActiveExecutionsCursor,
  type ExecutionError,
  type ExecutionKey,
  type ExecutionRecord,
  type NodeAttempt,
  type NodeExecutionRecord,
  type StoredValue,
  type WorkflowStore,
} from '../core/ports/workflow-store.js';
import {
  cacheKey,
  checkLaunchInputs,
  compileWorkflow,
  evaluateCondition,
  resolveTemplate,
} from '../core/workflow-compile.js';
import type { CompiledNode, CompiledWorkflow } from '../core/workflow-spec.js';
import type { SubmitOptions } from '../events/async-invocations.js';
import type { WorkflowNodeRef } from '../events/workflow-node-sink.js';
import { executionId, loadJson, loadValue, nodeOutputBlobKey, storeJson, valueBlobKey } from './values.js';

/** The version of a function an attempt runs, pinned when the node starts, and that version's timeout. */
export interface PinnedFunction {
  version: number;
  timeoutSeconds: number;
}

export interface WorkflowEngineOptions {
  store: WorkflowStore;
  blobStore: BlobStore;
  /** Queue an asynchronous invocation (`AsyncInvocations.submit`). */
  submit: (functionName: string, eventJson: string, options: SubmitOptions) => Promise<unknown>;
  /** The version a qualifier names now (a number, or an alias picked by weight); null when there is none. */
  pinFunction: (functionName: string, qualifier: string) => Promise<PinnedFunction | null>;
  /** Whether this process leads the control plane: only the leader runs executions. */
  isLeader: () => boolean;
  /** How often every active execution is read again from the store (ms, default 1000). */
  pollMs?: number | undefined;
  /** Active executions one read of a pass takes; a pass reads page after page (default 1000). */
  activePageSize?: number | undefined;
  /**
   * Embedded mode: this process's boot id, the `claimedBy` of every attempt its dispatcher runs. An attempt claimed
   * under another boot id was running in a process that stopped: it is given up at once.
   */
  bootId?: string | undefined;
  /**
   * Embedded: attempts are written claimed by `bootId` already (the dispatcher runs in this process, see
   * `StoreNodeSink`), which saves the dispatcher's claim write. Attempts of nodes with a timeout are claimed as usual
   * (the claim sets the deadline).
   */
  preclaim?: boolean | undefined;
  /**
   * Without `preclaim` (a cluster): how long past the function's timeout a queued attempt may wait for the dispatcher
   * to claim it before the engine gives it up (ms, default 10 minutes). One whose function version is gone then fails
   * NOT_FOUND.
   */
  queueGraceMs?: number | undefined;
  /** Most bytes of JSON a map node's combined output may take (default `maxMapOutputBytes`). */
  maxMapOutputBytes?: number | undefined;
  now?: (() => number) | undefined;
  logger?: Logger | undefined;
}

/** An error code for attempts lost with the process running them; such attempts do not count against `retries`. */
export const lostAttemptCode = 'LOST';
/** Most elements a map node's list may have. */
export const maxMapElements = 10_000;
/** Most bytes of JSON a map node's combined output may take. */
export const maxMapOutputBytes = 64 * 1024 * 1024;
/** How deeply sub-workflow executions may nest (an execution launched directly is depth 1). */
export const maxWorkflowDepth = 8;
/** Attempts of one node (or element) lost with the process running them before the node fails. */
export const maxLostAttempts = 3;
/** Executions one read of a pass takes (a pass reads page after page). */
const passLimit = 1000;
/** Node starts one step runs at once. */
const startConcurrency = 32;
/** A retry of a submit the queue refused for now (ms). */
const resubmitMs = 1000;

/** An execution the engine runs, as it knows it between passes. */
interface Live {
  id: string;
  key: ExecutionKey;
  record: ExecutionRecord;
  compiled: CompiledWorkflow;
  /** Why the execution's spec cannot be had (its workflow version was deleted), or null. */
  missing: string | null;
  inputs: Record<string, unknown>;
  rows: Map<string, NodeExecutionRecord>;
  /** Parsed outputs of ended nodes and elements, by row key (loaded on demand). */
  outputs: Map<string, unknown>;
  /** Parsed map lists, by map node id. */
  lists: Map<string, unknown[]>;
  /** Attempts (`KEY#N`) submitted by this engine since it loaded the execution. */
  submitted: Set<string>;
  /** Rows whose output this engine put in the cache. */
  cached: Set<string>;
  /** Read everything from the store before the next step. */
  reload: boolean;
  timer: NodeJS.Timeout | null;
  timerAt: number;
}

interface Work {
  running: boolean;
  again: boolean;
}

/** What one step found of a node. */
type NodeState = 'done' | 'skipped' | 'failed' | 'active' | 'pending' | 'blocked';

/**
 * The durable workflow engine. It runs on the control-plane leader: each step of an execution reads the execution
 * and its node rows (from memory, refreshed from the store every poll and after every lost compare-and-set), starts
 * the nodes that are ready, moves on those whose attempts ended, and ends the execution. Every transition is
 * written to the store (a compare-and-set on the row's revision) before it takes effect: a node attempt is written
 * RUNNING before its asynchronous invocation is queued, with an idempotency key that makes the queueing after a
 * crash a no-op. The dispatcher claims and reports attempts through the node sink; `nodeChanged` and `wake` bring
 * those reports to the engine at once in embedded mode, the poll in a cluster.
 */
export class WorkflowEngine {
  readonly #options: WorkflowEngineOptions;
  readonly #store: WorkflowStore;
  readonly #blobs: BlobStore;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #lives = new Map<string, Live>();
  readonly #work = new Map<string, Work>();
  readonly #specs = new Map<string, Promise<CompiledWorkflow>>();
  readonly #inFlight = new Set<Promise<void>>();
  #timer: NodeJS.Timeout | null = null;
  #passing: Promise<void> | null = null;
  #started = false;
  #stopped = false;

  constructor(options: WorkflowEngineOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#blobs = options.blobStore;
    this.#logger = (options.logger ?? silentLogger).child({ role: 'workflow-engine' });
    this.#now = options.now ?? Date.now;
  }

  /** Poll the active executions while leading. */
  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#timer = setInterval(() => void this.pass(), this.#options.pollMs ?? 1000);
    this.#timer.unref();
    void this.pass();
  }

  /** Stop polling and wait for the steps under way. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
    for (const live of this.#lives.values()) if (live.timer !== null) clearTimeout(live.timer);
    await this.#passing;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  /** One step of every active execution, reading each again from the store. Never rejects. */
  pass(): Promise<void> {
    if (this.#stopped || !this.#options.isLeader()) return Promise.resolve();
    this.#passing ??= (async () => {
      try {
        // Every active execution, page by page: old long-running ones never keep newer ones from being stepped.
        const pageSize = this.#options.activePageSize ?? passLimit;
        let after: ActiveExecutionsCursor | undefined;
        for (;;) {
          const active = await this.#store.activeExecutions(pageSize, after);
          for (const record of active) {
            const id = executionId(record);
            const live = this.#lives.get(id);
            if (live !== undefined) live.reload = true;
            this.#kick(id);
          }
          const last = active.at(-1);
          if (active.length < pageSize || last === undefined || this.#stopped || !this.#options.isLeader()) break;
          after = { project: last.project, domain: last.domain, name: last.name, createdAt: last.createdAt };
        }
      } catch (err) {
        this.#logger.warn({ err }, 'reading the active workflow executions failed');
      } finally {
        this.#passing = null;
      }
    })();
    return this.#passing;
  }

  /** Step an execution now (it was created, terminated, or a node of it changed elsewhere). */
  wake(key: ExecutionKey): void {
    const id = executionId(key);
    const live = this.#lives.get(id);
    if (live !== undefined) live.reload = true;
    this.#kick(id);
  }

  /** A node row was written outside the engine (the sink, in this process): take it and step its execution. */
  nodeChanged(row: NodeExecutionRecord): void {
    const id = executionId(row.execution);
    const live = this.#lives.get(id);
    if (live !== undefined) this.#merge(live, row);
    this.#kick(id);
  }

  /** A node row as this engine last saw it, if it runs the execution now. */
  peek(key: ExecutionKey, nodeKey: string): NodeExecutionRecord | undefined {
    return this.#lives.get(executionId(key))?.rows.get(nodeKey);
  }

  /** Resolves once no step is under way (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  #kick(id: string): void {
    if (this.#stopped || !this.#options.isLeader()) return;
    let work = this.#work.get(id);
    if (work === undefined) {
      work = { running: false, again: false };
      this.#work.set(id, work);
    }
    if (work.running) {
      work.again = true;
      return;
    }
    work.running = true;
    const w = work;
    const done = (async () => {
      try {
        do {
          w.again = false;
          await this.#step(id);
        } while (w.again && !this.#stopped && this.#options.isLeader());
      } catch (err) {
        this.#logger.error({ err, execution: id }, 'a workflow execution step failed; retried by the next pass');
        const live = this.#lives.get(id);
        if (live !== undefined) live.reload = true;
      } finally {
        w.running = false;
        this.#work.delete(id);
      }
    })();
    this.#inFlight.add(done);
    void done.finally(() => this.#inFlight.delete(done));
  }

  /** The compiled spec of a workflow version (kept: versions are immutable). */
  compiled(name: string, version: number): Promise<CompiledWorkflow> {
    const key = `${name}@${version}`;
    let spec = this.#specs.get(key);
    if (spec === undefined) {
      spec = (async () => {
        const record = await this.#store.getWorkflow(name, version);
        if (record === null) throw new PlatformError('NOT_FOUND', `workflow ${name} version ${version} not found`);
        return compileWorkflow(JSON.parse(record.spec) as unknown);
      })();
      this.#specs.set(key, spec);
      spec.catch(() => this.#specs.delete(key));
    }
    return spec;
  }

  async #load(id: string): Promise<Live | null> {
    let live = this.#lives.get(id);
    if (live !== undefined && !live.reload) return live;
    const [project, domain, name] = id.split('/') as [string, string, string];
    const key = { project, domain, name };
    const record = await this.#store.getExecution(key);
    if (record === null || terminalExecutionPhases.has(record.phase)) {
      this.#drop(id);
      return null;
    }
    const rows = await this.#store.listNodes(key);
    if (live === undefined) {
      let compiled: CompiledWorkflow;
      let missing: string | null = null;
      let inputs: Record<string, unknown> = {};
      try {
        compiled = await this.compiled(record.workflowName, record.workflowVersion);
        inputs = (await loadValue(this.#blobs, record.inputs)) as Record<string, unknown>;
      } catch (err) {
        if (!(err instanceof PlatformError && err.code === 'NOT_FOUND')) throw err;
        // The workflow version was deleted under the execution: it cannot go on, only end.
        missing = err.rawMessage;
        compiled = { spec: { nodes: {} }, inputs: {}, nodes: {}, order: [], output: null, failurePolicy: 'failFast' };
      }
      live = {
        id,
        key,
        record,
        compiled,
        missing,
        inputs,
        rows: new Map(),
        outputs: new Map(),
        lists: new Map(),
        submitted: new Set(),
        cached: new Set(),
        reload: false,
        timer: null,
        timerAt: Infinity,
      };
      this.#lives.set(id, live);
    }
    if (record.revision >= live.record.revision) live.record = record;
    for (const row of rows) this.#merge(live, row);
    live.reload = false;
    return live;
  }

  #drop(id: string): void {
    const live = this.#lives.get(id);
    if (live?.timer) clearTimeout(live.timer);
    this.#lives.delete(id);
  }

  #merge(live: Live, row: NodeExecutionRecord): void {
    const known = live.rows.get(row.key);
    if (known !== undefined && known.revision >= row.revision) return;
    live.rows.set(row.key, row);
    if (known !== undefined && known.output !== row.output) live.outputs.delete(row.key);
  }

  /** Step again at `at` (epoch ms), unless a step comes sooner. */
  #wakeAt(live: Live, at: number): void {
    if (at >= live.timerAt) return;
    if (live.timer !== null) clearTimeout(live.timer);
    live.timerAt = at;
    live.timer = setTimeout(
      () => {
        live.timer = null;
        live.timerAt = Infinity;
        this.#kick(live.id);
      },
      Math.max(0, at - this.#now()),
    );
    live.timer.unref();
  }

  // ---- the execution ----

  async #step(id: string): Promise<void> {
    const live = await this.#load(id);
    if (live === null) return;
    let { record } = live;
    if (live.missing !== null) {
      // Without its spec the execution ends: what runs is aborted; ABORTED when it was being aborted, else FAILED.
      const aborting = record.phase === 'ABORTING';
      if (!aborting && record.phase !== 'FAILING') {
        const error: ExecutionError = { code: 'NOT_FOUND', message: live.missing, kind: 'SYSTEM' };
        if ((await this.#updateExecution(live, { phase: 'FAILING', error })) === null) return;
      }
      if (await this.#abortAll(live, aborting ? 'the execution was aborted' : live.missing)) {
        await this.#end(live, { phase: aborting ? 'ABORTED' : 'FAILED' });
      }
      return;
    }
    if (record.phase === 'QUEUED' || record.phase === 'UNDEFINED') {
      const started = await this.#updateExecution(live, { phase: 'RUNNING', startedAt: new Date(this.#now()) });
      if (started === null) return;
      record = started;
    }
    if (record.phase === 'ABORTING') {
      if (await this.#abortAll(live, 'the execution was aborted')) await this.#end(live, { phase: 'ABORTED' });
      return;
    }
    if (record.phase === 'FAILING') {
      if (await this.#abortAll(live, 'another node failed')) await this.#end(live, { phase: 'FAILED' });
      return;
    }
    if (record.phase === 'SUCCEEDING') {
      await this.#succeed(live);
      return;
    }
    const states = new Map<string, NodeState>();
    let failure: { node: string; error: ExecutionError | null } | null = null;
    let active = false;
    /** Starts of ready function nodes, run together after the walk (a wide fan-out starts at once). */
    const starts: (() => Promise<NodeState>)[] = [];
    for (const nodeId of live.compiled.order) {
      const node = live.compiled.nodes[nodeId]!;
      let state = await this.#advance(live, node, states, starts);
      if (live.reload) {
        // A compare-and-set lost to a writer elsewhere: step again from what the store holds.
        return this.#again(live);
      }
      if (state === 'failed' && failure === null) {
        failure = { node: nodeId, error: live.rows.get(nodeId)?.error ?? null };
        if (live.compiled.failurePolicy === 'failFast') break;
      }
      if (state === 'active') active = true;
      if (state === 'pending') state = 'blocked';
      states.set(nodeId, state);
    }
    if (starts.length > 0 && (failure === null || live.compiled.failurePolicy === 'finishRunnable')) {
      const started = await runLimited(starts, startConcurrency);
      // A node ended as it started (a cache hit, a missing version) or a write lost: step again.
      if (live.reload || started.some((state) => state !== 'active')) return this.#again(live);
    }
    if (failure !== null && (live.compiled.failurePolicy === 'failFast' || !active)) {
      const error: ExecutionError = {
        code: failure.error?.code ?? 'FAILED',
        message: `node ${failure.node} failed: ${failure.error?.message ?? 'unknown error'}`,
        kind: failure.error?.kind ?? 'SYSTEM',
      };
      const failing = await this.#updateExecution(live, { phase: 'FAILING', error });
      if (failing === null) return;
      if (await this.#abortAll(live, 'another node failed')) await this.#end(live, { phase: 'FAILED' });
      return;
    }
    if (active) return;
    if ([...states.values()].every((s) => s === 'done' || s === 'skipped')) {
      if ((await this.#updateExecution(live, { phase: 'SUCCEEDING' })) === null) return;
      await this.#succeed(live);
    }
  }

  #again(live: Live): void {
    const work = this.#work.get(live.id);
    if (work !== undefined) work.again = true;
  }

  async #succeed(live: Live): Promise<void> {
    const outputs = await this.#scope(live, live.compiled.output, null);
    const value = resolveTemplate(live.compiled.output, outputs);
    const stored = await storeJson(this.#blobs, JSON.stringify(value ?? null), valueBlobKey(live.key, 'output'));
    await this.#end(live, { phase: 'SUCCEEDED', outputs: stored });
  }

  async #end(live: Live, change: { phase: 'SUCCEEDED' | 'FAILED' | 'ABORTED'; outputs?: StoredValue }): Promise<void> {
    const ended = await this.#updateExecution(live, { ...change, endedAt: new Date(this.#now()) });
    if (ended === null) return;
    this.#drop(live.id);
    if (ended.origin.kind === 'child') this.wake(ended.origin.parent);
    this.#logger.info({ execution: live.id, phase: ended.phase }, 'workflow execution ended');
  }

  async #updateExecution(
    live: Live,
    change: Parameters<WorkflowStore['updateExecution']>[2],
  ): Promise<ExecutionRecord | null> {
    const updated = await this.#store.updateExecution(live.key, live.record.revision, {
      ...change,
      updatedAt: new Date(this.#now()),
    });
    if (updated === null) {
      live.reload = true;
      this.#again(live);
      return null;
    }
    live.record = updated;
    return updated;
  }

  /**
   * Abort every node still under way (and the children of sub-workflow nodes). False when a row moved on meanwhile
   * (the step runs again, from the store).
   */
  async #abortAll(live: Live, why: string): Promise<boolean> {
    const now = new Date(this.#now());
    let all = true;
    for (const row of [...live.rows.values()]) {
      if (terminalNodePhases.has(row.phase)) continue;
      if (row.child !== null) await this.#abortChild(row.child, why);
      const attempts = row.attempts.map((a) =>
        a.phase === 'RUNNING' ? { ...a, phase: 'ABORTED' as const, endedAt: now } : a,
      );
      const written = await this.#putRow(
        live,
        { ...row, phase: 'ABORTED', attempts, claimedBy: null, deadline: null, notBefore: null, endedAt: now },
        row.revision,
      );
      if (written === null) all = false;
    }
    return all;
  }

  async #abortChild(child: ExecutionKey, why: string): Promise<void> {
    for (let i = 0; i < 5; i += 1) {
      const record = await this.#store.getExecution(child);
      if (record === null || terminalExecutionPhases.has(record.phase) || record.phase === 'ABORTING') break;
      const updated = await this.#store.updateExecution(child, record.revision, {
        phase: 'ABORTING',
        abortCause: `the parent execution was aborted: ${why}`,
        updatedAt: new Date(this.#now()),
      });
      if (updated !== null) break;
    }
    this.wake(child);
  }

  // ---- nodes ----

  /** Step one node; what it is after. */
  async #advance(
    live: Live,
    node: CompiledNode,
    states: Map<string, NodeState>,
    starts: (() => Promise<NodeState>)[],
  ): Promise<NodeState> {
    const row = live.rows.get(node.id);
    if (row !== undefined && terminalNodePhases.has(row.phase)) {
      if (row.phase === 'SUCCEEDED' || row.phase === 'RECOVERED') {
        if (node.cache && !row.cacheHit && node.kind === 'function') await this.#putCache(live, node, row);
        return 'done';
      }
      return row.phase === 'SKIPPED' ? 'skipped' : 'failed';
    }
    if (row === undefined) {
      let waiting = false;
      for (const dep of node.dependsOn) {
        const state = states.get(dep);
        if (state === 'failed' || state === 'blocked') return 'pending';
        if (state === 'skipped') return this.#skip(live, node);
        if (state !== 'done') waiting = true;
      }
      if (waiting) return 'pending';
      if (node.when !== null) {
        const scope = await this.#scope(live, node.when, null);
        if (!evaluateCondition(node.when, scope)) return this.#skip(live, node);
      }
      if (node.kind === 'function') {
        starts.push(() => this.#startNode(live, node));
        return 'active';
      }
      return this.#startNode(live, node);
    }
    if (node.kind === 'map' && row.item === null) return this.#advanceMap(live, node, row);
    return this.#advanceAttempts(live, node, row);
  }

  async #skip(live: Live, node: CompiledNode): Promise<NodeState> {
    const now = new Date(this.#now());
    const written = await this.#putRow(
      live,
      { ...this.#blankRow(live, node.id, null), phase: 'SKIPPED', endedAt: now },
      null,
    );
    return written === null ? 'active' : 'skipped';
  }

  #blankRow(live: Live, key: string, item: number | null): Omit<NodeExecutionRecord, 'revision'> {
    const now = new Date(this.#now());
    return {
      execution: live.key,
      key,
      nodeId: item === null ? key : key.slice(0, key.indexOf('[')),
      item,
      phase: 'QUEUED',
      input: null,
      output: null,
      error: null,
      attempts: [],
      functionVersion: null,
      cacheHit: false,
      child: null,
      notBefore: null,
      deadline: null,
      claimedBy: null,
      createdAt: now,
      startedAt: null,
      endedAt: null,
      updatedAt: now,
    };
  }

  /** The scope references resolve in: the execution's inputs and the outputs of the nodes `template` refers to. */
  async #scope(
    live: Live,
    template: unknown,
    element: { item: unknown; index: number } | null,
  ): Promise<{
    inputs: Record<string, unknown>;
    outputs: (nodeId: string) => unknown;
    item?: unknown;
    index?: number;
  }> {
    for (const nodeId of referencedNodes(template)) await this.#output(live, nodeId);
    return {
      inputs: live.inputs,
      outputs: (nodeId: string) => live.outputs.get(nodeId) ?? null,
      ...(element === null ? {} : { item: element.item, index: element.index }),
    };
  }

  /** A row's output, parsed (null for a skipped node or a row without one). */
  async #output(live: Live, key: string): Promise<unknown> {
    if (live.outputs.has(key)) return live.outputs.get(key);
    const row = live.rows.get(key);
    const value = row?.output ? await loadValue(this.#blobs, row.output) : null;
    live.outputs.set(key, value);
    return value;
  }

  async #startNode(live: Live, node: CompiledNode): Promise<NodeState> {
    const now = new Date(this.#now());
    if (node.kind === 'map') {
      const scope = await this.#scope(live, node.map!.ref, null);
      const list = resolveTemplate(node.map!.ref, scope);
      const row = { ...this.#blankRow(live, node.id, null), startedAt: now };
      if (!Array.isArray(list)) {
        const error: ExecutionError = {
          code: 'BAD_REQUEST',
          message: `map: ${node.map!.ref} is not a list`,
          kind: 'USER',
        };
        const written = await this.#putRow(live, { ...row, phase: 'FAILED', error, endedAt: now }, null);
        return written === null ? 'active' : 'failed';
      }
      if (list.length > maxMapElements) {
        const error: ExecutionError = {
          code: 'BAD_REQUEST',
          message: `map: ${node.map!.ref} has ${list.length} elements, over the limit of ${maxMapElements}`,
          kind: 'USER',
        };
        const written = await this.#putRow(live, { ...row, phase: 'FAILED', error, endedAt: now }, null);
        return written === null ? 'active' : 'failed';
      }
      const pinned = await this.#pin(live, node);
      if (pinned === null) return this.#startFailed(live, node, row);
      const input = await storeJson(this.#blobs, JSON.stringify(list), valueBlobKey(live.key, `${node.id}.list`));
      live.lists.set(node.id, list);
      if (list.length === 0) {
        const written = await this.#putRow(
          live,
          {
            ...row,
            phase: 'SUCCEEDED',
            input,
            output: { inline: '[]' },
            functionVersion: pinned.version,
            endedAt: now,
          },
          null,
        );
        return written === null ? 'active' : 'done';
      }
      const written = await this.#putRow(
        live,
        { ...row, phase: 'RUNNING', input, functionVersion: pinned.version },
        null,
      );
      if (written === null) return 'active';
      const elements = list.map((_, index) => ({
        ...this.#blankRow(live, `${node.id}[${index}]`, index),
        functionVersion: pinned.version,
      }));
      await this.#store.insertNodes(elements);
      for (const element of await this.#store.listNodes(live.key)) this.#merge(live, element);
      return this.#advanceMap(live, node, written);
    }
    const row = this.#blankRow(live, node.id, null);
    return this.#startAttempt(live, node, row, null);
  }

  async #startFailed(live: Live, node: CompiledNode, row: Omit<NodeExecutionRecord, 'revision'>): Promise<NodeState> {
    const error: ExecutionError = {
      code: 'NOT_FOUND',
      message: `function ${node.target} has no version ${node.qualifier}`,
      kind: 'USER',
    };
    const now = new Date(this.#now());
    const written = await this.#putRow(live, { ...row, phase: 'FAILED', error, endedAt: now }, null);
    return written === null ? 'active' : 'failed';
  }

  async #pin(live: Live, node: CompiledNode): Promise<PinnedFunction | null> {
    return this.#options.pinFunction(node.target, node.qualifier);
  }

  /**
   * Start the next attempt of a function node, a map element or a sub-workflow node: resolve its input (the first
   * time), pin the function version, look in the cache, write the attempt RUNNING, then queue it.
   */
  async #startAttempt(
    live: Live,
    node: CompiledNode,
    row: Omit<NodeExecutionRecord, 'revision'>,
    revision: number | null,
  ): Promise<NodeState> {
    const now = new Date(this.#now());
    const attempt = row.attempts.length + 1;
    let inputJson: string;
    if (row.input !== null) {
      inputJson = await loadJson(this.#blobs, row.input);
    } else {
      const element = row.item === null ? null : await this.#element(live, node, row.item);
      const scope = await this.#scope(live, node.input, element);
      inputJson = JSON.stringify(resolveTemplate(node.input, scope) ?? null);
    }
    const input = row.input ?? (await storeJson(this.#blobs, inputJson, valueBlobKey(live.key, `${row.key}.input`)));
    if (node.kind === 'workflow') return this.#startChild(live, node, { ...row, input }, revision, inputJson);
    let version = row.functionVersion;
    let timeoutSeconds: number | null = null;
    if (version === null) {
      const pinned = await this.#pin(live, node);
      if (pinned === null) return this.#startFailed(live, node, { ...row, input });
      version = pinned.version;
      timeoutSeconds = pinned.timeoutSeconds;
    }
    if (node.cache && attempt === 1) {
      const hit = await this.#store.getCached(cacheKey(node.target, version, inputJson));
      if (hit !== null) {
        const written = await this.#putRow(
          live,
          {
            ...row,
            phase: 'SUCCEEDED',
            input,
            output: hit,
            functionVersion: version,
            cacheHit: true,
            startedAt: row.startedAt ?? now,
            endedAt: now,
            updatedAt: now,
          },
          revision,
        );
        return written === null ? 'active' : 'done';
      }
    }
    const attempts: NodeAttempt[] = [
      ...row.attempts,
      { attempt, startedAt: now, endedAt: null, phase: 'RUNNING', invocationId: null, error: null },
    ];
    // Queued (a cluster): the dispatcher's claim sets the attempt's own deadline; until then it may wait this long.
    let deadline: Date | null = null;
    if (this.#options.preclaim !== true) {
      if (timeoutSeconds === null) {
        timeoutSeconds = (await this.#options.pinFunction(node.target, String(version)))?.timeoutSeconds ?? 0;
      }
      deadline = new Date(now.getTime() + timeoutSeconds * 1000 + (this.#options.queueGraceMs ?? 600_000));
    }
    const written = await this.#putRow(
      live,
      {
        ...row,
        phase: 'RUNNING',
        input,
        functionVersion: version,
        attempts,
        notBefore: null,
        deadline,
        // Embedded: claimed for this process's dispatcher at once, which then runs it without a write of its own.
        claimedBy:
          this.#options.preclaim === true && node.timeoutSeconds === null ? (this.#options.bootId ?? null) : null,
        startedAt: row.startedAt ?? now,
        updatedAt: now,
      },
      revision,
    );
    if (written === null) return 'active';
    await this.#submit(live, node, written, inputJson);
    return 'active';
  }

  async #element(live: Live, node: CompiledNode, index: number): Promise<{ item: unknown; index: number }> {
    let list = live.lists.get(node.id);
    if (list === undefined) {
      list = (await loadValue(this.#blobs, live.rows.get(node.id)?.input ?? null)) as unknown[];
      live.lists.set(node.id, list);
    }
    return { item: list[index] ?? null, index };
  }

  /** Queue the attempt's invocation; a repeat (after a crash) is deduplicated by its idempotency key. */
  async #submit(live: Live, node: CompiledNode, row: NodeExecutionRecord, inputJson: string): Promise<void> {
    const attempt = row.attempts.length;
    const mark = `${row.key}#${attempt}`;
    const workflow: WorkflowNodeRef = { ...live.key, node: row.key, attempt };
    if (node.timeoutSeconds !== null) workflow.timeoutSeconds = node.timeoutSeconds;
    const source = `workflow:${live.id}`;
    try {
      await this.#options.submit(node.target, inputJson, {
        qualifier: String(row.functionVersion),
        retries: 0,
        source,
        idempotencyKey: `${source}:${row.key}:${attempt}`,
        workflow,
      });
      live.submitted.add(mark);
    } catch (err) {
      const error = PlatformError.from(err);
      if (error.code === 'NOT_FOUND' || error.code === 'BAD_REQUEST' || error.code === 'PAYLOAD_TOO_LARGE') {
        await this.#endAttempt(live, row, 'FAILED', { code: error.code, message: error.rawMessage, kind: 'USER' });
        return;
      }
      this.#logger.warn({ err, execution: live.id, node: row.key }, 'queueing a workflow node attempt failed');
      this.#wakeAt(live, this.#now() + resubmitMs);
    }
  }

  /** Write the current attempt ended (the node stays RUNNING until the engine decides on a retry). */
  async #endAttempt(
    live: Live,
    row: NodeExecutionRecord,
    phase: 'FAILED' | 'TIMED_OUT',
    error: ExecutionError,
  ): Promise<void> {
    const now = new Date(this.#now());
    const attempts = row.attempts.map((a, i) =>
      i === row.attempts.length - 1 ? { ...a, phase, endedAt: now, error } : a,
    );
    const written = await this.#putRow(
      live,
      { ...row, attempts, claimedBy: null, deadline: null, updatedAt: now },
      row.revision,
    );
    if (written !== null) this.#again(live);
  }

  /** A function node's or an element's row under way: its attempt's progress, a retry, or its end. */
  async #advanceAttempts(live: Live, node: CompiledNode, row: NodeExecutionRecord): Promise<NodeState> {
    const now = this.#now();
    const current = row.attempts.at(-1);
    if (row.phase === 'QUEUED') {
      if (row.notBefore !== null && row.notBefore.getTime() > now) {
        this.#wakeAt(live, row.notBefore.getTime());
        return 'active';
      }
      return this.#startAttempt(live, node, row, row.revision);
    }
    if (current === undefined) return this.#startAttempt(live, node, row, row.revision);
    if (current.phase === 'RUNNING') {
      if (node.kind === 'workflow') return this.#advanceChild(live, node, row);
      const { bootId } = this.#options;
      const lost = row.claimedBy !== null && bootId !== undefined && row.claimedBy !== bootId;
      const pastDeadline = row.deadline !== null && row.deadline.getTime() <= now;
      if (pastDeadline && row.claimedBy === null && this.#options.preclaim !== true) {
        // Queued and never claimed in time: its function version may be gone (the queue then never runs it).
        const exists = await this.#options.pinFunction(node.target, String(row.functionVersion));
        await this.#endAttempt(
          live,
          row,
          'FAILED',
          exists === null
            ? {
                code: 'NOT_FOUND',
                message: `function ${node.target} version ${row.functionVersion} is gone`,
                kind: 'USER',
              }
            : { code: lostAttemptCode, message: 'lost: it was not claimed from the queue in time', kind: 'SYSTEM' },
        );
        return 'active';
      }
      if (lost || (pastDeadline && node.timeoutSeconds === null)) {
        await this.#endAttempt(live, row, 'FAILED', {
          code: lostAttemptCode,
          message: 'lost: the process running it stopped',
          kind: 'SYSTEM',
        });
        return 'active';
      }
      if (pastDeadline) {
        await this.#endAttempt(live, row, 'TIMED_OUT', {
          code: 'TIMED_OUT',
          message: `the attempt ran longer than the node's timeout (${node.timeoutSeconds} s)`,
          kind: 'USER',
        });
        return 'active';
      }
      if (row.deadline !== null) this.#wakeAt(live, row.deadline.getTime());
      const mine = row.claimedBy === null || row.claimedBy === bootId;
      if (mine && !live.submitted.has(`${row.key}#${current.attempt}`)) {
        await this.#submit(live, node, row, await loadJson(this.#blobs, row.input ?? { inline: 'null' }));
      }
      return 'active';
    }
    if (current.phase === 'SUCCEEDED') {
      // Written by the sink with the node's end; nothing to do (a row only ends SUCCEEDED with it).
      return 'active';
    }
    // The attempt failed: retry, or end the node.
    const counted = row.attempts.filter(
      (a) => (a.phase === 'FAILED' || a.phase === 'TIMED_OUT') && a.error?.code !== lostAttemptCode,
    ).length;
    const ended = new Date(now);
    const lostCount = row.attempts.filter((a) => a.phase === 'FAILED' && a.error?.code === lostAttemptCode).length;
    if (current.error?.code === lostAttemptCode && lostCount >= maxLostAttempts) {
      const error: ExecutionError = {
        code: lostAttemptCode,
        message: `lost ${lostCount} times (the last: ${current.error.message})`,
        kind: 'SYSTEM',
      };
      const written = await this.#putRow(
        live,
        { ...row, phase: 'FAILED', error, claimedBy: null, deadline: null, endedAt: ended, updatedAt: ended },
        row.revision,
      );
      return written === null ? 'active' : 'failed';
    }
    // A function version that is gone stays gone, a refused input stays refused: no retry.
    const final = current.error?.code === 'NOT_FOUND' || current.error?.code === 'BAD_REQUEST';
    if (counted > node.retries || current.phase === 'ABORTED' || final) {
      const phase = current.phase === 'TIMED_OUT' ? 'TIMED_OUT' : current.phase === 'ABORTED' ? 'ABORTED' : 'FAILED';
      const written = await this.#putRow(
        live,
        { ...row, phase, error: current.error, claimedBy: null, deadline: null, endedAt: ended, updatedAt: ended },
        row.revision,
      );
      return written === null ? 'active' : 'failed';
    }
    const lostOne = current.error?.code === lostAttemptCode;
    const delayMs = lostOne ? 0 : node.retryDelaySeconds * 1000 * 2 ** (counted - 1);
    if (delayMs <= 0) return this.#startAttempt(live, node, row, row.revision);
    const notBefore = new Date(now + delayMs);
    const written = await this.#putRow(
      live,
      { ...row, phase: 'QUEUED', notBefore, claimedBy: null, deadline: null, updatedAt: ended },
      row.revision,
    );
    if (written !== null) this.#wakeAt(live, notBefore.getTime());
    return 'active';
  }

  async #putCache(live: Live, node: CompiledNode, row: NodeExecutionRecord): Promise<void> {
    if (live.cached.has(row.key) || row.output === null || row.input === null || row.functionVersion === null) return;
    live.cached.add(row.key);
    const inputJson = await loadJson(this.#blobs, row.input);
    await this.#store.putCached(cacheKey(node.target, row.functionVersion, inputJson), row.output);
  }

  // ---- map nodes ----

  async #advanceMap(live: Live, node: CompiledNode, row: NodeExecutionRecord): Promise<NodeState> {
    const list = (await this.#element(live, node, 0), live.lists.get(node.id)!);
    const concurrency = node.map!.concurrency;
    let running = 0;
    let succeeded = 0;
    const fresh: NodeExecutionRecord[] = [];
    for (let index = 0; index < list.length; index += 1) {
      const element = live.rows.get(`${node.id}[${index}]`);
      if (element === undefined) {
        // Elements are inserted with the map's start; a step that crashed in between inserts them here.
        await this.#store.insertNodes([
          { ...this.#blankRow(live, `${node.id}[${index}]`, index), functionVersion: row.functionVersion },
        ]);
        live.reload = true;
        return 'active';
      }
      if (element.phase === 'SUCCEEDED' || element.phase === 'RECOVERED') {
        if (node.cache && !element.cacheHit) await this.#putCache(live, node, element);
        succeeded += 1;
        continue;
      }
      if (terminalNodePhases.has(element.phase)) {
        return this.#failMap(live, node, row, element);
      }
      if (element.phase === 'QUEUED' && element.attempts.length === 0) {
        fresh.push(element);
        continue;
      }
      running += 1;
      const state = await this.#advanceAttempts(live, node, element);
      if (live.reload) return 'active';
      if (state === 'failed') return this.#failMap(live, node, row, live.rows.get(element.key)!);
    }
    const room = Math.max(0, concurrency - running);
    const started = await runLimited(
      fresh.slice(0, room).map((element) => () => this.#advanceAttempts(live, node, element)),
      startConcurrency,
    );
    if (live.reload) return 'active';
    // Elements that ended as they started (cache hits, a missing version): step again to fill their places.
    if (started.some((state) => state !== 'active')) this.#again(live);
    succeeded += started.filter((state) => state === 'done').length;
    if (succeeded < list.length) return 'active';
    // The combined output's size from the elements' sizes, before any of it is read.
    let total = list.length + 1;
    for (let index = 0; index < list.length; index += 1) {
      const stored = live.rows.get(`${node.id}[${index}]`)!.output;
      total += stored === null ? 4 : 'inline' in stored ? Buffer.byteLength(stored.inline) : stored.bytes;
    }
    const limit = this.#options.maxMapOutputBytes ?? maxMapOutputBytes;
    if (total > limit) {
      const now = new Date(this.#now());
      const error: ExecutionError = {
        code: 'PAYLOAD_TOO_LARGE',
        message: `map: the outputs of its ${list.length} elements take ${total} bytes together, over the limit of ${limit}`,
        kind: 'USER',
      };
      const written = await this.#putRow(
        live,
        { ...row, phase: 'FAILED', error, endedAt: now, updatedAt: now },
        row.revision,
      );
      return written === null ? 'active' : 'failed';
    }
    const outputs: string[] = [];
    for (let index = 0; index < list.length; index += 1) {
      outputs.push(await loadJson(this.#blobs, live.rows.get(`${node.id}[${index}]`)!.output ?? { inline: 'null' }));
    }
    const output = await storeJson(this.#blobs, `[${outputs.join(',')}]`, nodeOutputBlobKey(live.key, node.id, 1));
    const now = new Date(this.#now());
    const written = await this.#putRow(
      live,
      { ...row, phase: 'SUCCEEDED', output, endedAt: now, updatedAt: now },
      row.revision,
    );
    return written === null ? 'active' : 'done';
  }

  async #failMap(
    live: Live,
    node: CompiledNode,
    row: NodeExecutionRecord,
    element: NodeExecutionRecord,
  ): Promise<NodeState> {
    const now = new Date(this.#now());
    for (const other of live.rows.values()) {
      if (other.nodeId !== node.id || other.item === null || terminalNodePhases.has(other.phase)) continue;
      const attempts = other.attempts.map((a) =>
        a.phase === 'RUNNING' ? { ...a, phase: 'ABORTED' as const, endedAt: now } : a,
      );
      const written = await this.#putRow(
        live,
        { ...other, phase: 'ABORTED', attempts, claimedBy: null, deadline: null, endedAt: now },
        other.revision,
      );
      // A row moved on meanwhile: the step runs again, from the store.
      if (written === null) return 'active';
    }
    const error: ExecutionError = {
      code: element.error?.code ?? 'FAILED',
      message: `element ${element.item}: ${element.error?.message ?? element.phase}`,
      kind: element.error?.kind ?? 'SYSTEM',
    };
    const phase = element.phase === 'TIMED_OUT' ? 'TIMED_OUT' : 'FAILED';
    const written = await this.#putRow(live, { ...row, phase, error, endedAt: now, updatedAt: now }, row.revision);
    return written === null ? 'active' : 'failed';
  }

  // ---- sub-workflow nodes ----

  async #startChild(
    live: Live,
    node: CompiledNode,
    row: Omit<NodeExecutionRecord, 'revision'>,
    revision: number | null,
    inputJson: string,
  ): Promise<NodeState> {
    const now = new Date(this.#now());
    const attempt = row.attempts.length + 1;
    const child: ExecutionKey = {
      project: live.key.project,
      domain: live.key.domain,
      name: childName(live.key, node.id, attempt),
    };
    const attempts: NodeAttempt[] = [
      ...row.attempts,
      { attempt, startedAt: now, endedAt: null, phase: 'RUNNING', invocationId: null, error: null },
    ];
    const written = await this.#putRow(
      live,
      {
        ...row,
        phase: 'RUNNING',
        attempts,
        child,
        notBefore: null,
        startedAt: row.startedAt ?? now,
        updatedAt: now,
      },
      revision,
    );
    if (written === null) return 'active';
    await this.#createChild(live, node, written, inputJson);
    return 'active';
  }

  async #createChild(live: Live, node: CompiledNode, row: NodeExecutionRecord, inputJson: string): Promise<void> {
    const child = row.child!;
    let version = node.version;
    if (version === null) {
      const latest = await this.#store.getWorkflow(node.target);
      if (latest === null) {
        await this.#endAttempt(live, row, 'FAILED', {
          code: 'NOT_FOUND',
          message: `workflow ${node.target} not found`,
          kind: 'USER',
        });
        return;
      }
      version = latest.version;
    }
    // Nesting is bounded at run time too: deploys racing each other can make workflows that call each other.
    const chain = await this.#ancestry(live);
    if (chain.length >= maxWorkflowDepth) {
      await this.#endAttempt(live, row, 'FAILED', {
        code: 'BAD_REQUEST',
        message: `sub-workflows nest at most ${maxWorkflowDepth} deep: ${[...chain, node.target].join(' -> ')}`,
        kind: 'USER',
      });
      return;
    }
    let inputs: Record<string, unknown>;
    try {
      const compiled = await this.compiled(node.target, version);
      inputs = checkLaunchInputs(compiled, JSON.parse(inputJson) as unknown);
    } catch (err) {
      const error = PlatformError.from(err);
      await this.#endAttempt(live, row, 'FAILED', { code: error.code, message: error.rawMessage, kind: 'USER' });
      return;
    }
    const now = new Date(this.#now());
    try {
      await this.#store.createExecution({
        ...child,
        workflowName: node.target,
        workflowVersion: version,
        inputs: await storeJson(this.#blobs, JSON.stringify(inputs), valueBlobKey(child, 'inputs')),
        outputs: null,
        phase: 'QUEUED',
        error: null,
        origin: { kind: 'child', parent: live.key, node: node.id },
        abortCause: null,
        createdAt: now,
        startedAt: null,
        endedAt: null,
        updatedAt: now,
      });
    } catch (err) {
      if (!(err instanceof PlatformError && err.code === 'CONFLICT')) throw err;
      // Created before (a step that stopped after it), or another execution has the name: only the first is the child.
      const existing = await this.#store.getExecution(child);
      if (existing === null || !isChildOf(existing, live.key, node.id)) {
        await this.#endAttempt(live, row, 'FAILED', {
          code: 'CONFLICT',
          message: `the child execution name ${child.name} is taken by another execution`,
          kind: 'SYSTEM',
        });
        return;
      }
    }
    this.wake(child);
  }

  /** The workflow names from the outermost execution down to this one (its parents read from the store). */
  async #ancestry(live: Live): Promise<string[]> {
    const names = [live.record.workflowName];
    let origin = live.record.origin;
    while (origin.kind === 'child' && names.length <= maxWorkflowDepth) {
      const parent = await this.#store.getExecution(origin.parent);
      if (parent === null) break;
      names.unshift(parent.workflowName);
      origin = parent.origin;
    }
    return names;
  }

  async #advanceChild(live: Live, node: CompiledNode, row: NodeExecutionRecord): Promise<NodeState> {
    const child = await this.#store.getExecution(row.child!);
    if (child === null) {
      // The step that wrote the attempt stopped before it created the child.
      await this.#createChild(live, node, row, await loadJson(this.#blobs, row.input ?? { inline: 'null' }));
      return 'active';
    }
    if (!terminalExecutionPhases.has(child.phase)) return 'active';
    const now = new Date(this.#now());
    const last = row.attempts.length - 1;
    if (child.phase === 'SUCCEEDED') {
      const attempts = row.attempts.map((a, i) =>
        i === last ? { ...a, phase: 'SUCCEEDED' as const, endedAt: now } : a,
      );
      const written = await this.#putRow(
        live,
        { ...row, phase: 'SUCCEEDED', attempts, output: child.outputs, endedAt: now, updatedAt: now },
        row.revision,
      );
      return written === null ? 'active' : 'done';
    }
    const error: ExecutionError = child.error ?? {
      code: child.phase,
      message: `the child execution ${child.name} ended ${child.phase}${child.abortCause ? `: ${child.abortCause}` : ''}`,
      kind: 'SYSTEM',
    };
    await this.#endAttempt(live, row, child.phase === 'TIMED_OUT' ? 'TIMED_OUT' : 'FAILED', error);
    return 'active';
  }

  /** Write a row (insert when `expected` is null); on a lost compare-and-set, read it again and step again. */
  async #putRow(
    live: Live,
    row: Omit<NodeExecutionRecord, 'revision'> & { revision?: number },
    expected: number | null,
  ): Promise<NodeExecutionRecord | null> {
    const { revision: _revision, ...record } = row;
    const written = await this.#store.putNode({ ...record, updatedAt: new Date(this.#now()) }, expected);
    if (written !== null) {
      this.#merge(live, written);
      return written;
    }
    const fresh = await this.#store.getNode(live.key, row.key);
    if (fresh !== null) this.#merge(live, fresh);
    live.reload = true;
    this.#again(live);
    return null;
  }
}

/** Runs `tasks`, at most `limit` at once; their results in order. */
async function runLimited<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const index = next;
      next += 1;
      results[index] = await tasks[index]!();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

/** The node ids a template, condition or map reference refers to. */
function referencedNodes(template: unknown): Set<string> {
  const found = new Set<string>();
  const walk = (value: unknown): void => {
    if (typeof value === 'string') {
      const match = /^\$\.nodes\.([a-z0-9][a-z0-9_-]*)/.exec(value);
      if (match !== null) found.add(match[1]!);
    } else if (Array.isArray(value)) {
      for (const v of value) walk(v);
    } else if (typeof value === 'object' && value !== null) {
      for (const v of Object.values(value)) walk(v);
    }
  };
  walk(template);
  return found;
}

function isChildOf(record: ExecutionRecord, parent: ExecutionKey, nodeId: string): boolean {
  const { origin } = record;
  return (
    origin.kind === 'child' &&
    origin.node === nodeId &&
    origin.parent.project === parent.project &&
    origin.parent.domain === parent.domain &&
    origin.parent.name === parent.name
  );
}

/** Names of the form `childName` gives, which launches may not take. */
export const childNamePattern = /^c[0-9a-f]{19}$/;

/** A child execution's name: short, a DNS label, the same for the same parent, node and attempt. */
export function childName(parent: ExecutionKey, nodeId: string, attempt: number): string {
  const hash = createHash('sha256').update(`${parent.project}/${parent.domain}/${parent.name}/${nodeId}/${attempt}`);
  return `c${hash.digest('hex').slice(0, 19)}`;
}

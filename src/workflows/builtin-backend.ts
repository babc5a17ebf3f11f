import { randomInt } from 'node:crypto';
import { PlatformError } from '../core/errors.js';
import type { BlobStore } from '../core/ports/blob-store.js';
import type {
  ExecutionBackend,
  ExecutionPage,
  ExecutionView,
  LaunchRequest,
  NodeExecutionPage,
  NodeExecutionView,
} from '../core/ports/execution-backend.js';
import {
  terminalExecutionPhases,
  type ExecutionKey,
  type ExecutionOrigin,
  type ExecutionRecord,
  type NodeExecutionRecord,
  type WorkflowStore,
} from '../core/ports/workflow-store.js';
import { checkLaunchInputs, compileWorkflow } from '../core/workflow-compile.js';
import type { CompiledWorkflow } from '../core/workflow-spec.js';
import { childNamePattern } from './engine.js';
import { loadValue, storeJson, valueBlobKey } from './values.js';

export interface BuiltinBackendOptions {
  store: WorkflowStore;
  blobStore: BlobStore;
  /** An execution was created or asked to stop: the engine in this process steps it at once (embedded mode). */
  wake?: ((key: ExecutionKey) => void) | undefined;
  now?: (() => number) | undefined;
}

const labelPattern = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const namePattern = /^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/;
const nameLetters = 'abcdefghijklmnopqrstuvwxyz0123456789';
const maxListed = 1000;

/**
 * The built-in execution backend: executions and their node rows in the workflow store, run by the
 * `WorkflowEngine` on the control-plane leader. Views are FlyteAdmin's JSON shapes.
 */
export class BuiltinExecutionBackend implements ExecutionBackend {
  readonly kind = 'builtin';
  readonly #options: BuiltinBackendOptions;
  readonly #store: WorkflowStore;
  readonly #blobs: BlobStore;
  readonly #now: () => number;
  readonly #specs = new Map<string, Promise<CompiledWorkflow>>();

  constructor(options: BuiltinBackendOptions) {
    this.#options = options;
    this.#store = options.store;
    this.#blobs = options.blobStore;
    this.#now = options.now ?? Date.now;
  }

  /** The built-in engine runs what the store holds: nothing to register. */
  async register(): Promise<void> {}

  async launch(request: LaunchRequest): Promise<ExecutionKey> {
    checkKeyParts(request.project, request.domain);
    const version = await this.#store.getWorkflow(request.workflow, request.version);
    if (version === null) {
      throw new PlatformError(
        'NOT_FOUND',
        request.version === undefined
          ? `workflow ${request.workflow} not found`
          : `workflow ${request.workflow} version ${request.version} not found`,
      );
    }
    const compiled = await this.#compiled(version.name, version.version, version.spec);
    const inputs = checkLaunchInputs(compiled, request.inputs);
    return this.#create(
      { project: request.project, domain: request.domain, name: this.#name(request.name) },
      version.name,
      version.version,
      JSON.stringify(inputs),
      { kind: 'launch' },
    );
  }

  async get(key: ExecutionKey): Promise<ExecutionView> {
    return executionView(await this.#record(key), this.#now());
  }

  async list(
    project: string,
    domain: string,
    options: { limit: number; token?: string | undefined; workflow?: string | undefined },
  ): Promise<ExecutionPage> {
    const limit = options.limit;
    if (!Number.isInteger(limit) || limit < 1 || limit > maxListed) {
      throw new PlatformError('BAD_REQUEST', `limit must be an integer from 1 to ${maxListed}, got ${limit}`);
    }
    const records = await this.#store.listExecutions({
      project,
      domain,
      workflowName: options.workflow || undefined,
      createdBefore: options.token ? decodeToken(options.token) : undefined,
      limit: limit + 1,
    });
    const page = records.slice(0, limit);
    const last = page.at(-1);
    return {
      executions: page.map((r) => executionView(r, this.#now())),
      token: records.length > limit && last !== undefined ? encodeToken(last) : '',
    };
  }

  async nodeExecutions(key: ExecutionKey): Promise<NodeExecutionView[]> {
    return this.#nodeViews(key, 0, Infinity);
  }

  async nodeExecutionPage(
    key: ExecutionKey,
    page: { limit: number; token?: string | undefined },
  ): Promise<NodeExecutionPage> {
    const offset = page.token === undefined || page.token === '' ? 0 : decodeOffset(page.token);
    const views = await this.#nodeViews(key, offset, page.limit + 1);
    const more = views.length > page.limit;
    return {
      node_executions: views.slice(0, page.limit),
      token: more ? Buffer.from(JSON.stringify({ o: offset + page.limit })).toString('base64url') : '',
    };
  }

  /** The node views in run order, `count` of them from `offset` (views are built for those only). */
  async #nodeViews(key: ExecutionKey, offset: number, count: number): Promise<NodeExecutionView[]> {
    const record = await this.#record(key);
    const all = await this.#store.listNodes(key);
    const compiled = await this.#compiled(record.workflowName, record.workflowVersion).catch(() => null);
    const rank = new Map(compiled?.order.map((id, i) => [id, i]) ?? []);
    all.sort(
      (a, b) =>
        (rank.get(a.nodeId) ?? Infinity) - (rank.get(b.nodeId) ?? Infinity) ||
        a.nodeId.localeCompare(b.nodeId) ||
        (a.item ?? -1) - (b.item ?? -1),
    );
    const rows = all.slice(offset, offset + count);
    return rows.map((row) => nodeView(row, compiled, this.#now()));
  }

  async data(key: ExecutionKey): Promise<{ inputs: Record<string, unknown>; outputs: unknown }> {
    const record = await this.#record(key);
    return {
      inputs: (await loadValue(this.#blobs, record.inputs)) as Record<string, unknown>,
      outputs: record.outputs === null ? null : await loadValue(this.#blobs, record.outputs),
    };
  }

  async terminate(key: ExecutionKey, cause: string): Promise<void> {
    for (;;) {
      const record = await this.#record(key);
      if (terminalExecutionPhases.has(record.phase)) {
        throw new PlatformError('CONFLICT', `execution ${key.name} already ended ${record.phase}`);
      }
      if (record.phase === 'ABORTING') return;
      const updated = await this.#store.updateExecution(key, record.revision, {
        phase: 'ABORTING',
        abortCause: cause,
        updatedAt: new Date(this.#now()),
      });
      if (updated !== null) {
        this.#options.wake?.(key);
        return;
      }
    }
  }

  async relaunch(key: ExecutionKey, name?: string): Promise<ExecutionKey> {
    const source = await this.#record(key);
    await this.#versionExists(source);
    const inputs = JSON.stringify(await loadValue(this.#blobs, source.inputs));
    return this.#create(
      { project: key.project, domain: key.domain, name: this.#name(name) },
      source.workflowName,
      source.workflowVersion,
      inputs,
      { kind: 'relaunch', from: key },
    );
  }

  async recover(key: ExecutionKey, name?: string): Promise<ExecutionKey> {
    const source = await this.#record(key);
    await this.#versionExists(source);
    const target = { project: key.project, domain: key.domain, name: this.#name(name) };
    if ((await this.#store.getExecution(target)) !== null) {
      throw new PlatformError('CONFLICT', `execution ${target.name} already exists`);
    }
    const now = new Date(this.#now());
    const rows = await this.#store.listNodes(key);
    // Succeeded nodes (and the succeeded elements of map nodes) are taken as they are; the rest run again.
    const recovered = rows
      .filter((row) => row.phase === 'SUCCEEDED' || row.phase === 'RECOVERED')
      .map(({ revision: _revision, ...row }): Omit<NodeExecutionRecord, 'revision'> => ({
        ...row,
        execution: target,
        phase: 'RECOVERED',
        claimedBy: null,
        deadline: null,
        notBefore: null,
        createdAt: now,
        updatedAt: now,
      }));
    const inputs = JSON.stringify(await loadValue(this.#blobs, source.inputs));
    // The execution and the rows it takes over are written together: a launch of the same name meanwhile gets a
    // CONFLICT, never these rows.
    return this.#create(
      target,
      source.workflowName,
      source.workflowVersion,
      inputs,
      { kind: 'recover', from: key },
      recovered,
    );
  }

  async #create(
    key: ExecutionKey,
    workflowName: string,
    workflowVersion: number,
    inputsJson: string,
    origin: ExecutionOrigin,
    nodes: Omit<NodeExecutionRecord, 'revision'>[] = [],
  ): Promise<ExecutionKey> {
    const now = new Date(this.#now());
    await this.#store.createExecution(
      {
        ...key,
        workflowName,
        workflowVersion,
        inputs: await storeJson(this.#blobs, inputsJson, valueBlobKey(key, 'inputs')),
        outputs: null,
        phase: 'QUEUED',
        error: null,
        origin,
        abortCause: null,
        createdAt: now,
        startedAt: null,
        endedAt: null,
        updatedAt: now,
      },
      nodes,
    );
    this.#options.wake?.(key);
    return key;
  }

  #name(name: string | undefined): string {
    if (name === undefined || name === '') {
      let generated = nameLetters[randomInt(26)]!;
      while (generated.length < 20) generated += nameLetters[randomInt(nameLetters.length)]!;
      return generated;
    }
    if (!namePattern.test(name)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `an execution name is 1-63 lowercase letters, digits and dashes, starting with a letter, got ${JSON.stringify(name)}`,
      );
    }
    if (childNamePattern.test(name)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `execution names of "c" and 19 hex digits are kept for sub-workflow executions, got ${JSON.stringify(name)}`,
      );
    }
    return name;
  }

  /** NOT_FOUND when the execution's workflow version was deleted since it ran. */
  async #versionExists(source: ExecutionRecord): Promise<void> {
    if ((await this.#store.getWorkflow(source.workflowName, source.workflowVersion)) === null) {
      throw new PlatformError(
        'NOT_FOUND',
        `workflow ${source.workflowName} version ${source.workflowVersion} not found: it was deleted`,
      );
    }
  }

  async #record(key: ExecutionKey): Promise<ExecutionRecord> {
    const record = await this.#store.getExecution(key);
    if (record === null) {
      throw new PlatformError('NOT_FOUND', `execution ${key.project}/${key.domain}/${key.name} not found`);
    }
    return record;
  }

  #compiled(name: string, version: number, spec?: string): Promise<CompiledWorkflow> {
    const id = `${name}@${version}`;
    let compiled = this.#specs.get(id);
    if (compiled === undefined) {
      compiled = (async () => {
        const text = spec ?? (await this.#store.getWorkflow(name, version))?.spec;
        if (text === undefined) throw new PlatformError('NOT_FOUND', `workflow ${name} version ${version} not found`);
        return compileWorkflow(JSON.parse(text) as unknown);
      })();
      this.#specs.set(id, compiled);
      compiled.catch(() => this.#specs.delete(id));
    }
    return compiled;
  }
}

function checkKeyParts(project: string, domain: string): void {
  for (const [what, value] of [
    ['project', project],
    ['domain', domain],
  ] as const) {
    if (typeof value !== 'string' || !labelPattern.test(value)) {
      throw new PlatformError(
        'BAD_REQUEST',
        `${what} must be a DNS label (lowercase letters, digits and dashes), got ${JSON.stringify(value)}`,
      );
    }
  }
}

function encodeToken(record: ExecutionRecord): string {
  return Buffer.from(JSON.stringify({ t: record.createdAt.getTime(), n: record.name })).toString('base64url');
}

function decodeOffset(token: string): number {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { o: unknown };
    if (typeof parsed.o === 'number' && Number.isSafeInteger(parsed.o) && parsed.o >= 0) return parsed.o;
  } catch {
    // reported below
  }
  throw new PlatformError('BAD_REQUEST', 'the page token is not one a previous page gave');
}

function decodeToken(token: string): { createdAt: Date; name: string } {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { t: unknown; n: unknown };
    if (typeof parsed.t === 'number' && typeof parsed.n === 'string') {
      return { createdAt: new Date(parsed.t), name: parsed.n };
    }
  } catch {
    // reported below
  }
  throw new PlatformError('BAD_REQUEST', 'the page token is not one a previous page gave');
}

/** A protobuf JSON duration: `"1.250s"`. */
function duration(from: Date | null, to: Date | null, now: number): string {
  if (from === null) return '0s';
  const ms = Math.max(0, (to?.getTime() ?? now) - from.getTime());
  return `${(ms / 1000).toFixed(3)}s`;
}

const modes = { launch: 'MANUAL', relaunch: 'RELAUNCH', recover: 'RECOVERED', child: 'CHILD_WORKFLOW' } as const;

/** An execution record as FlyteAdmin's `Execution` JSON. */
export function executionView(record: ExecutionRecord, now: number): ExecutionView {
  const { origin } = record;
  return {
    id: { project: record.project, domain: record.domain, name: record.name },
    spec: {
      launch_plan: {
        resource_type: 'LAUNCH_PLAN',
        project: record.project,
        domain: record.domain,
        name: record.workflowName,
        version: String(record.workflowVersion),
      },
      metadata: {
        mode: modes[origin.kind],
        ...(origin.kind === 'relaunch' || origin.kind === 'recover' ? { reference_execution: origin.from } : {}),
        ...(origin.kind === 'child'
          ? { parent_node_execution: { node_id: origin.node, execution_id: origin.parent } }
          : {}),
      },
    },
    closure: {
      phase: record.phase,
      ...(record.startedAt === null ? {} : { started_at: record.startedAt.toISOString() }),
      duration: duration(record.startedAt, record.endedAt, now),
      created_at: record.createdAt.toISOString(),
      updated_at: record.updatedAt.toISOString(),
      ...(record.error === null ? {} : { error: record.error }),
      ...(record.abortCause === null ? {} : { abort_metadata: { cause: record.abortCause, principal: 'savassan' } }),
    },
  };
}

/** A node row as FlyteAdmin's `NodeExecution` JSON, with Savassan's details. */
export function nodeView(row: NodeExecutionRecord, compiled: CompiledWorkflow | null, now: number): NodeExecutionView {
  const node = compiled?.nodes[row.nodeId];
  const kind = node?.kind;
  return {
    id: { node_id: row.key, execution_id: row.execution },
    metadata: {
      ...(row.item === null ? {} : { parent_node_id: row.nodeId, item: row.item }),
      is_parent_node: kind === 'map' && row.item === null,
      spec_node_id: row.nodeId,
    },
    closure: {
      phase: row.phase,
      ...(row.startedAt === null ? {} : { started_at: row.startedAt.toISOString() }),
      duration: duration(row.startedAt, row.endedAt, now),
      created_at: row.createdAt.toISOString(),
      updated_at: row.updatedAt.toISOString(),
      ...(row.error === null ? {} : { error: row.error }),
      ...(row.child === null ? {} : { workflow_node_metadata: { execution_id: row.child } }),
    },
    ...(node !== undefined && kind !== 'workflow'
      ? { function: { name: node.target, version: row.functionVersion } }
      : {}),
    attempts: row.attempts.map((a) => ({
      attempt: a.attempt,
      phase: a.phase,
      started_at: a.startedAt.toISOString(),
      duration: duration(a.startedAt, a.endedAt, now),
      invocation_id: a.invocationId,
      ...(a.error === null ? {} : { error: a.error }),
    })),
    invocation_ids: row.attempts.flatMap((a) => (a.invocationId === null ? [] : [a.invocationId])),
    cache_hit: row.cacheHit,
  };
}

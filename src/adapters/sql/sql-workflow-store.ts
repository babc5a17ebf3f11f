import type { Insertable, Transaction, Updateable } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import type {
  ActiveExecutionsCursor,
  ExecutionError,
  ExecutionFilter,
  ExecutionKey,
  ExecutionOrigin,
  ExecutionPhase,
  ExecutionRecord,
  NodeAttempt,
  NodeExecutionRecord,
  NodePhase,
  StoredValue,
  WorkflowStore,
  WorkflowSummary,
  WorkflowVersionRecord,
} from '../../core/ports/workflow-store.js';
import { executionPhaseNames, nodePhaseNames, terminalExecutionPhases } from '../../core/ports/workflow-store.js';
import type {
  Database,
  WorkflowExecutionRow,
  WorkflowExecutionsTable,
  WorkflowNodeRow,
  WorkflowNodesTable,
  WorkflowVersionRow,
  WorkflowVersionsTable,
} from './schema.js';
import { columnLengths } from './schema.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import { dateFromDb, intFromDb, millisFromDate } from './sql-metadata-store.js';

const executionPhases: ReadonlySet<string> = new Set<ExecutionPhase>(executionPhaseNames);
const nodePhases: ReadonlySet<string> = new Set<NodePhase>(nodePhaseNames);

/** Most executions one `listExecutions` or `activeExecutions` call returns. */
/**
 * Node rows and cached outputs are written without the durability barrier: committed (a crash of the process keeps
 * them), flushed to disk with the next barrier or checkpoint. What a crash of the machine loses of them is recovered
 * by the engine from the execution's state: an attempt the store no longer shows as ended runs again as a new attempt.
 */
const hot = { flush: false } as const;

export const maxExecutionsPerRead = 1000;

/** Node rows per INSERT statement: 22 columns each keeps bound parameters under SQLite's historical limit of 999. */
const nodesPerInsert = 32;

/** The largest value a 32-bit `integer` column holds (versions, revisions, map indexes). */
const maxInteger = 2_147_483_647;

/**
 * `WorkflowStore` over the database of a `SqlMetadataStore` (SQLite, PostgreSQL or MySQL): it shares that store's
 * connections, lifecycle (closed with it), retries and durability barrier, so every write is durable when its promise
 * resolves. Compare-and-sets are one conditional `update` (on the key and the expected revision), so of two writers
 * only one moves a record on, on every engine. A new workflow version is the latest plus one, inserted under the
 * (name, version) primary key: of two concurrent deploys one loses on the key, and its retry sees the winner's
 * version (the same spec: that version; another: the next).
 *
 * Values over a column's bounds (`columnLengths`) are refused with BAD_REQUEST, never truncated; reads of keys no row
 * can have find nothing.
 *
 * @example
 * const metadata = await openSqliteMetadataStore(path);
 * const workflows = new SqlWorkflowStore(metadata.shared());
 * const { record } = await workflows.putWorkflow('etl', spec, sha256Hex(spec));
 */
export class SqlWorkflowStore implements WorkflowStore {
  readonly #access: SqlStoreAccess;
  readonly #now: () => number;

  constructor(access: SqlStoreAccess, options: { now?: () => number } = {}) {
    this.#access = access;
    this.#now = options.now ?? Date.now;
  }

  putWorkflow(
    name: string,
    spec: string,
    specHash: string,
  ): Promise<{ record: WorkflowVersionRecord; created: boolean }> {
    return this.#access.run(`deploy workflow ${String(name)}`, async () => {
      checkText(name, columnLengths.workflowName, 'workflow name');
      checkText(spec, columnLengths.workflowText, 'workflow spec');
      checkText(specHash, columnLengths.sha256, 'spec hash');
      const { description, nodeCount } = specSummary(spec);
      // Fast path for an unchanged deploy: one read, nothing written.
      const latest = await latestWorkflow(this.#access.db, name);
      if (latest !== undefined && latest.spec_hash === specHash) {
        return { record: versionFromRow(latest), created: false };
      }
      return this.#access.write(async (trx) => {
        const current = await latestWorkflow(trx, name);
        if (current !== undefined && current.spec_hash === specHash) {
          return { record: versionFromRow(current), created: false };
        }
        const version = current === undefined ? 1 : intFromDb(current.version, 'version') + 1;
        const row = {
          name,
          version,
          spec,
          spec_hash: specHash,
          description,
          node_count: nodeCount,
          created_at: this.#now(),
        };
        // A concurrent deploy of the same version fails on the primary key; the retry reads the winner's.
        await trx.insertInto('workflow_versions').values(row).execute();
        return { record: versionFromRow(row), created: true };
      });
    });
  }

  getWorkflow(name: string, version?: number): Promise<WorkflowVersionRecord | null> {
    return this.#access.run(`read workflow ${String(name)}`, async () => {
      if (!fits(name, columnLengths.workflowName)) return null;
      if (version === undefined) {
        const row = await latestWorkflow(this.#access.db, name);
        return row === undefined ? null : versionFromRow(row);
      }
      if (!isPositiveInteger(version)) return null;
      const row = await this.#access.db
        .selectFrom('workflow_versions')
        .selectAll()
        .where('name', '=', name)
        .where('version', '=', version)
        .executeTakeFirst();
      return row === undefined ? null : versionFromRow(row);
    });
  }

  listWorkflows(): Promise<WorkflowSummary[]> {
    return this.#access.run('list workflows', async () => {
      // One statement, so each summary's latest version and first creation are read together.
      const rows = await this.#access.db
        .selectFrom('workflow_versions as v')
        .innerJoin(
          (eb) =>
            eb
              .selectFrom('workflow_versions')
              .select((inner) => [
                'name',
                inner.fn.max('version').as('latest'),
                inner.fn.min('created_at').as('first_created_at'),
              ])
              .groupBy('name')
              .as('l'),
          (join) => join.onRef('l.name', '=', 'v.name').onRef('l.latest', '=', 'v.version'),
        )
        .select(['v.name', 'v.version', 'v.description', 'v.node_count', 'v.created_at', 'l.first_created_at'])
        .orderBy('v.name')
        .execute();
      return rows.map((row) => ({
        name: row.name,
        latestVersion: intFromDb(row.version, 'version'),
        description: row.description,
        nodeCount: intFromDb(row.node_count, 'node_count'),
        createdAt: dateFromDb(row.first_created_at, 'created_at'),
        updatedAt: dateFromDb(row.created_at, 'created_at'),
      }));
    });
  }

  listWorkflowVersions(name: string): Promise<WorkflowVersionRecord[]> {
    return this.#access.run(`list the versions of workflow ${String(name)}`, async () => {
      if (!fits(name, columnLengths.workflowName)) return [];
      const rows = await this.#access.db
        .selectFrom('workflow_versions')
        .selectAll()
        .where('name', '=', name)
        .orderBy('version', 'desc')
        .execute();
      return rows.map(versionFromRow);
    });
  }

  deleteWorkflow(name: string): Promise<boolean> {
    return this.#access.run(`delete workflow ${String(name)}`, async () => {
      if (!fits(name, columnLengths.workflowName)) return false;
      const result = await this.#access.write((trx) =>
        trx.deleteFrom('workflow_versions').where('name', '=', name).executeTakeFirst(),
      );
      return result.numDeletedRows > 0n;
    });
  }

  createExecution(
    record: Omit<ExecutionRecord, 'revision'>,
    nodes: Omit<NodeExecutionRecord, 'revision'>[] = [],
  ): Promise<ExecutionRecord> {
    return this.#access.run(`create execution ${describeKey(record)}`, async () => {
      const row = executionToRow({ ...record, revision: 1 });
      const nodeRows = nodes.map((node) => {
        if (!sameKey(node.execution, record)) {
          throw new PlatformError('BAD_REQUEST', `node ${String(node.key)} belongs to another execution`);
        }
        return nodeToRow({ ...node, revision: 1 });
      });
      return this.#access.write(async (trx) => {
        if ((await selectExecution(trx, record)) !== undefined) {
          throw new PlatformError('CONFLICT', `execution ${describeKey(record)} exists already: pick another name`);
        }
        // A race with another create of the key fails on the primary key; the retry finds it and says CONFLICT.
        await trx.insertInto('workflow_executions').values(row).execute();
        for (let start = 0; start < nodeRows.length; start += nodesPerInsert) {
          await insertMissingNodes(trx, nodeRows.slice(start, start + nodesPerInsert));
        }
        return executionFromRow(row);
      });
    });
  }

  getExecution(key: ExecutionKey): Promise<ExecutionRecord | null> {
    return this.#access.run(`read execution ${describeKey(key)}`, async () => {
      if (!isExecutionKey(key)) return null;
      const row = await selectExecution(this.#access.db, key);
      return row === undefined ? null : executionFromRow(row);
    });
  }

  listExecutions(filter: ExecutionFilter): Promise<ExecutionRecord[]> {
    return this.#access.run(`list the executions of ${String(filter.project)}/${String(filter.domain)}`, async () => {
      // One more than a page: a caller reads a full page and one row to know whether another page follows.
      if (!Number.isSafeInteger(filter.limit) || filter.limit < 1 || filter.limit > maxExecutionsPerRead + 1) {
        throw new PlatformError(
          'BAD_REQUEST',
          `limit must be 1-${maxExecutionsPerRead + 1}, got ${String(filter.limit)}`,
        );
      }
      const { limit } = filter;
      if (
        !fits(filter.project, columnLengths.executionKeyPart) ||
        !fits(filter.domain, columnLengths.executionKeyPart)
      ) {
        return [];
      }
      if (filter.phase !== undefined && !executionPhases.has(filter.phase)) {
        throw new PlatformError('BAD_REQUEST', `unknown execution phase ${JSON.stringify(filter.phase)}`);
      }
      let query = this.#access.db
        .selectFrom('workflow_executions')
        .selectAll()
        .where('project', '=', filter.project)
        .where('domain', '=', filter.domain);
      if (filter.workflowName !== undefined) query = query.where('workflow_name', '=', filter.workflowName);
      if (filter.phase !== undefined) query = query.where('phase', '=', filter.phase);
      if (filter.createdBefore !== undefined) {
        const before = millisFromDate(filter.createdBefore.createdAt, 'createdBefore.createdAt');
        const beforeName = filter.createdBefore.name;
        if (typeof beforeName !== 'string')
          throw new PlatformError('BAD_REQUEST', 'createdBefore.name must be a string');
        query = query.where((eb) =>
          eb.or([eb('created_at', '<', before), eb.and([eb('created_at', '=', before), eb('name', '<', beforeName)])]),
        );
      }
      const rows = await query.orderBy('created_at', 'desc').orderBy('name', 'desc').limit(limit).execute();
      return rows.map(executionFromRow);
    });
  }

  activeExecutions(limit: number, after?: ActiveExecutionsCursor): Promise<ExecutionRecord[]> {
    return this.#access.run('read the active executions', async () => {
      let query = this.#access.db
        .selectFrom('workflow_executions')
        .selectAll()
        .where(
          'phase',
          'in',
          [...executionPhases].filter((phase) => !terminalExecutionPhases.has(phase as ExecutionPhase)),
        );
      if (after !== undefined) {
        const at = millisFromDate(after.createdAt, 'after.createdAt');
        const { project, domain, name } = after;
        if (typeof project !== 'string' || typeof domain !== 'string' || typeof name !== 'string') {
          throw new PlatformError('BAD_REQUEST', 'after: an execution key and its createdAt');
        }
        // (created_at, project, domain, name) > after's, spelled out (row values compare differently across engines).
        query = query.where((eb) =>
          eb.or([
            eb('created_at', '>', at),
            eb.and([eb('created_at', '=', at), eb('project', '>', project)]),
            eb.and([eb('created_at', '=', at), eb('project', '=', project), eb('domain', '>', domain)]),
            eb.and([
              eb('created_at', '=', at),
              eb('project', '=', project),
              eb('domain', '=', domain),
              eb('name', '>', name),
            ]),
          ]),
        );
      }
      const rows = await query
        .orderBy('created_at')
        .orderBy('project')
        .orderBy('domain')
        .orderBy('name')
        .limit(readLimit(limit))
        .execute();
      return rows.map(executionFromRow);
    });
  }

  updateExecution(
    key: ExecutionKey,
    expectedRevision: number,
    change: Partial<Omit<ExecutionRecord, keyof ExecutionKey | 'revision' | 'createdAt'>>,
  ): Promise<ExecutionRecord | null> {
    return this.#access.run(`update execution ${describeKey(key)}`, async () => {
      if (!isExecutionKey(key) || !isPositiveInteger(expectedRevision)) return null;
      if (expectedRevision >= maxInteger) {
        throw new PlatformError('BAD_REQUEST', `execution ${describeKey(key)} has reached its last revision`);
      }
      const values = executionChange(change);
      values.revision = expectedRevision + 1;
      values.updated_at = change.updatedAt === undefined ? this.#now() : millisFromDate(change.updatedAt, 'updatedAt');
      return this.#access.write(async (trx) => {
        const result = await trx
          .updateTable('workflow_executions')
          .set(values)
          .where('project', '=', key.project)
          .where('domain', '=', key.domain)
          .where('name', '=', key.name)
          .where('revision', '=', expectedRevision)
          .executeTakeFirst();
        if (result.numUpdatedRows === 0n) return null;
        const row = await selectExecution(trx, key);
        return row === undefined ? null : executionFromRow(row);
      });
    });
  }

  listNodes(key: ExecutionKey): Promise<NodeExecutionRecord[]> {
    return this.#access.run(`list the nodes of execution ${describeKey(key)}`, async () => {
      if (!isExecutionKey(key)) return [];
      const rows = await this.#access.db
        .selectFrom('workflow_nodes')
        .selectAll()
        .where('project', '=', key.project)
        .where('domain', '=', key.domain)
        .where('name', '=', key.name)
        .orderBy('node_key')
        .execute();
      return rows.map(nodeFromRow);
    });
  }

  getNode(key: ExecutionKey, nodeKey: string): Promise<NodeExecutionRecord | null> {
    return this.#access.run(`read node ${String(nodeKey)} of execution ${describeKey(key)}`, async () => {
      if (!isExecutionKey(key) || !fits(nodeKey, columnLengths.workflowNodeKey)) return null;
      const row = await selectNode(this.#access.db, key, nodeKey);
      return row === undefined ? null : nodeFromRow(row);
    });
  }

  putNode(
    record: Omit<NodeExecutionRecord, 'revision'>,
    expectedRevision: number | null,
  ): Promise<NodeExecutionRecord | null> {
    const action = `write node ${String(record.key)} of execution ${describeKey(record.execution)}`;
    return this.#access.run(action, async () => {
      if (expectedRevision === null) {
        const row = nodeToRow({ ...record, revision: 1 });
        return this.#access.write(async (trx) => {
          if ((await selectNode(trx, record.execution, record.key)) !== undefined) return null;
          // A race with another insert of the row fails on the primary key; the retry finds it.
          await trx.insertInto('workflow_nodes').values(row).execute();
          return nodeFromRow(row);
        }, hot);
      }
      if (!isPositiveInteger(expectedRevision)) return null;
      if (expectedRevision >= maxInteger) {
        throw new PlatformError('BAD_REQUEST', `node ${record.key} has reached its last revision`);
      }
      const row = nodeToRow({ ...record, revision: expectedRevision + 1 });
      const { project, domain, name, node_key: nodeKey, created_at: _createdAt, ...values } = row;
      return this.#access.write(async (trx) => {
        const result = await trx
          .updateTable('workflow_nodes')
          .set(values)
          .where('project', '=', project)
          .where('domain', '=', domain)
          .where('name', '=', name)
          .where('node_key', '=', nodeKey)
          .where('revision', '=', expectedRevision)
          .executeTakeFirst();
        if (result.numUpdatedRows === 0n) return null;
        const after = await selectNode(trx, record.execution, record.key);
        return after === undefined ? null : nodeFromRow(after);
      }, hot);
    });
  }

  insertNodes(records: Omit<NodeExecutionRecord, 'revision'>[]): Promise<void> {
    return this.#access.run(`insert ${records.length} node rows`, async () => {
      const rows = records.map((record) => nodeToRow({ ...record, revision: 1 }));
      if (rows.length === 0) return;
      await this.#access.write(async (trx) => {
        // Rows given twice: the first counts, as if inserted one after the other.
        const seen = new Set<string>();
        const fresh = rows.filter((row) => {
          const id = JSON.stringify([row.project, row.domain, row.name, row.node_key]);
          if (seen.has(id)) return false;
          seen.add(id);
          return true;
        });
        for (let start = 0; start < fresh.length; start += nodesPerInsert) {
          await insertMissingNodes(trx, fresh.slice(start, start + nodesPerInsert));
        }
      }, hot);
    });
  }

  getCached(key: string): Promise<StoredValue | null> {
    return this.#access.run('read the workflow cache', async () => {
      if (!fits(key, columnLengths.workflowCacheKey)) return null;
      const row = await this.#access.db
        .selectFrom('workflow_cache')
        .select('output')
        .where('cache_key', '=', key)
        .executeTakeFirst();
      return row === undefined ? null : storedValueFromJson(row.output, 'workflow_cache.output');
    });
  }

  putCached(key: string, output: StoredValue): Promise<void> {
    return this.#access.run('write the workflow cache', async () => {
      checkText(key, columnLengths.workflowCacheKey, 'cache key');
      const json = storedValueToJson(output, 'cached output');
      await this.#access.write(async (trx) => {
        const result = await trx
          .updateTable('workflow_cache')
          .set({ output: json, created_at: this.#now() })
          .where('cache_key', '=', key)
          .executeTakeFirst();
        // A concurrent first put of the key fails on the primary key; the retry updates it.
        if (result.numUpdatedRows === 0n) {
          await trx
            .insertInto('workflow_cache')
            .values({ cache_key: key, output: json, created_at: this.#now() })
            .execute();
        }
      }, hot);
    });
  }
}

// ---- Queries ----

type Executor = SqlStoreAccess['db'] | Transaction<Database>;

function latestWorkflow(db: Executor, name: string): Promise<WorkflowVersionRow | undefined> {
  return db
    .selectFrom('workflow_versions')
    .selectAll()
    .where('name', '=', name)
    .orderBy('version', 'desc')
    .limit(1)
    .executeTakeFirst();
}

function selectExecution(db: Executor, key: ExecutionKey): Promise<WorkflowExecutionRow | undefined> {
  return db
    .selectFrom('workflow_executions')
    .selectAll()
    .where('project', '=', key.project)
    .where('domain', '=', key.domain)
    .where('name', '=', key.name)
    .executeTakeFirst();
}

function selectNode(db: Executor, key: ExecutionKey, nodeKey: string): Promise<WorkflowNodeRow | undefined> {
  return db
    .selectFrom('workflow_nodes')
    .selectAll()
    .where('project', '=', key.project)
    .where('domain', '=', key.domain)
    .where('name', '=', key.name)
    .where('node_key', '=', nodeKey)
    .executeTakeFirst();
}

/** Insert those of `rows` (at most `nodesPerInsert`) that are not in the table yet. */
async function insertMissingNodes(trx: Transaction<Database>, rows: Insertable<WorkflowNodesTable>[]): Promise<void> {
  const existing = await trx
    .selectFrom('workflow_nodes')
    .select(['project', 'domain', 'name', 'node_key'])
    .where((eb) =>
      eb.or(
        rows.map((row) =>
          eb.and([
            eb('project', '=', row.project),
            eb('domain', '=', row.domain),
            eb('name', '=', row.name),
            eb('node_key', '=', row.node_key),
          ]),
        ),
      ),
    )
    .execute();
  const present = new Set(existing.map((row) => JSON.stringify([row.project, row.domain, row.name, row.node_key])));
  const missing = rows.filter((row) => !present.has(JSON.stringify([row.project, row.domain, row.name, row.node_key])));
  // A race with another insert of a row fails on the primary key; the retry finds it.
  if (missing.length > 0) await trx.insertInto('workflow_nodes').values(missing).execute();
}

// ---- Records <-> rows ----

function versionFromRow(row: WorkflowVersionRow | Insertable<WorkflowVersionsTable>): WorkflowVersionRecord {
  return {
    name: row.name,
    version: intFromDb(row.version, 'version'),
    spec: row.spec,
    specHash: row.spec_hash,
    createdAt: dateFromDb(row.created_at, 'created_at'),
  };
}

/** The spec's description and node count, for listing; a spec must be a JSON object. */
function specSummary(spec: string): { description: string | null; nodeCount: number } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(spec);
  } catch {
    throw new PlatformError('BAD_REQUEST', 'the workflow spec is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new PlatformError('BAD_REQUEST', 'the workflow spec must be a JSON object');
  }
  const { description, nodes } = parsed as { description?: unknown; nodes?: unknown };
  return {
    description: typeof description === 'string' ? description : null,
    nodeCount: typeof nodes === 'object' && nodes !== null ? Object.keys(nodes).length : 0,
  };
}

function executionToRow(record: ExecutionRecord): Insertable<WorkflowExecutionsTable> {
  checkExecutionKey(record);
  checkText(record.workflowName, columnLengths.workflowName, 'workflowName');
  checkInteger(record.workflowVersion, 'workflowVersion');
  return {
    project: record.project,
    domain: record.domain,
    name: record.name,
    workflow_name: record.workflowName,
    workflow_version: record.workflowVersion,
    inputs: storedValueToJson(record.inputs, 'inputs'),
    outputs: record.outputs === null ? null : storedValueToJson(record.outputs, 'outputs'),
    phase: checkPhase(record.phase, executionPhases, 'phase'),
    error: errorToJson(record.error, 'error'),
    origin: originToJson(record.origin),
    abort_cause:
      record.abortCause === null ? null : checkText(record.abortCause, columnLengths.workflowText, 'abortCause'),
    created_at: millisFromDate(record.createdAt, 'createdAt'),
    started_at: nullableMillis(record.startedAt, 'startedAt'),
    ended_at: nullableMillis(record.endedAt, 'endedAt'),
    updated_at: millisFromDate(record.updatedAt, 'updatedAt'),
    revision: record.revision,
  };
}

/** The columns an `updateExecution` change sets, each checked as on insert. */
function executionChange(
  change: Partial<Omit<ExecutionRecord, keyof ExecutionKey | 'revision' | 'createdAt'>>,
): Updateable<WorkflowExecutionsTable> {
  const values: Updateable<WorkflowExecutionsTable> = {};
  if (change.workflowName !== undefined) {
    values.workflow_name = checkText(change.workflowName, columnLengths.workflowName, 'workflowName');
  }
  if (change.workflowVersion !== undefined)
    values.workflow_version = checkInteger(change.workflowVersion, 'workflowVersion');
  if (change.inputs !== undefined) values.inputs = storedValueToJson(change.inputs, 'inputs');
  if (change.outputs !== undefined) {
    values.outputs = change.outputs === null ? null : storedValueToJson(change.outputs, 'outputs');
  }
  if (change.phase !== undefined) values.phase = checkPhase(change.phase, executionPhases, 'phase');
  if (change.error !== undefined) values.error = errorToJson(change.error, 'error');
  if (change.origin !== undefined) values.origin = originToJson(change.origin);
  if (change.abortCause !== undefined) {
    values.abort_cause =
      change.abortCause === null ? null : checkText(change.abortCause, columnLengths.workflowText, 'abortCause');
  }
  if (change.startedAt !== undefined) values.started_at = nullableMillis(change.startedAt, 'startedAt');
  if (change.endedAt !== undefined) values.ended_at = nullableMillis(change.endedAt, 'endedAt');
  return values;
}

function executionFromRow(row: WorkflowExecutionRow | Insertable<WorkflowExecutionsTable>): ExecutionRecord {
  const where = `execution ${row.project}/${row.domain}/${row.name}`;
  if (!executionPhases.has(row.phase))
    throw new PlatformError('INTERNAL', `${where} has an unknown phase ${row.phase}`);
  return {
    project: row.project,
    domain: row.domain,
    name: row.name,
    workflowName: row.workflow_name,
    workflowVersion: intFromDb(row.workflow_version, 'workflow_version'),
    inputs: storedValueFromJson(row.inputs, `${where}: inputs`),
    outputs: row.outputs == null ? null : storedValueFromJson(row.outputs, `${where}: outputs`),
    phase: row.phase as ExecutionPhase,
    error: row.error == null ? null : (parseJson(row.error, `${where}: error`) as ExecutionError),
    origin: parseJson(row.origin, `${where}: origin`) as ExecutionOrigin,
    abortCause: row.abort_cause ?? null,
    createdAt: dateFromDb(row.created_at, 'created_at'),
    startedAt: row.started_at == null ? null : dateFromDb(row.started_at, 'started_at'),
    endedAt: row.ended_at == null ? null : dateFromDb(row.ended_at, 'ended_at'),
    updatedAt: dateFromDb(row.updated_at, 'updated_at'),
    revision: intFromDb(row.revision, 'revision'),
  };
}

function nodeToRow(record: NodeExecutionRecord): Insertable<WorkflowNodesTable> {
  if (typeof record !== 'object' || record === null) throw new PlatformError('BAD_REQUEST', 'a node row is required');
  checkExecutionKey(record.execution);
  checkText(record.key, columnLengths.workflowNodeKey, 'node key');
  checkText(record.nodeId, columnLengths.workflowNodeId, 'nodeId');
  if (record.item !== null && !(Number.isSafeInteger(record.item) && record.item >= 0 && record.item <= maxInteger)) {
    throw new PlatformError('BAD_REQUEST', `item must be null or an index 0-${maxInteger}, got ${String(record.item)}`);
  }
  if (!Array.isArray(record.attempts)) throw new PlatformError('BAD_REQUEST', 'attempts must be a list');
  if (typeof record.cacheHit !== 'boolean') throw new PlatformError('BAD_REQUEST', 'cacheHit must be a boolean');
  const attempts = JSON.stringify(record.attempts.map(attemptToJson));
  return {
    project: record.execution.project,
    domain: record.execution.domain,
    name: record.execution.name,
    node_key: record.key,
    node_id: record.nodeId,
    item: record.item,
    phase: checkPhase(record.phase, nodePhases, 'phase'),
    input: record.input === null ? null : storedValueToJson(record.input, 'input'),
    output: record.output === null ? null : storedValueToJson(record.output, 'output'),
    error: errorToJson(record.error, 'error'),
    attempts: checkText(attempts, columnLengths.workflowText, 'attempts'),
    function_version: record.functionVersion === null ? null : checkInteger(record.functionVersion, 'functionVersion'),
    cache_hit: record.cacheHit ? 1 : 0,
    child: record.child === null ? null : JSON.stringify(keyOf(checkExecutionKey(record.child))),
    not_before: nullableMillis(record.notBefore, 'notBefore'),
    deadline: nullableMillis(record.deadline, 'deadline'),
    claimed_by: record.claimedBy === null ? null : checkText(record.claimedBy, columnLengths.instanceId, 'claimedBy'),
    created_at: millisFromDate(record.createdAt, 'createdAt'),
    started_at: nullableMillis(record.startedAt, 'startedAt'),
    ended_at: nullableMillis(record.endedAt, 'endedAt'),
    updated_at: millisFromDate(record.updatedAt, 'updatedAt'),
    revision: record.revision,
  };
}

function nodeFromRow(row: WorkflowNodeRow | Insertable<WorkflowNodesTable>): NodeExecutionRecord {
  const where = `node ${row.node_key} of execution ${row.project}/${row.domain}/${row.name}`;
  if (!nodePhases.has(row.phase)) throw new PlatformError('INTERNAL', `${where} has an unknown phase ${row.phase}`);
  return {
    execution: { project: row.project, domain: row.domain, name: row.name },
    key: row.node_key,
    nodeId: row.node_id,
    item: row.item == null ? null : intFromDb(row.item, 'item'),
    phase: row.phase as NodePhase,
    input: row.input == null ? null : storedValueFromJson(row.input, `${where}: input`),
    output: row.output == null ? null : storedValueFromJson(row.output, `${where}: output`),
    error: row.error == null ? null : (parseJson(row.error, `${where}: error`) as ExecutionError),
    attempts: (parseJson(row.attempts, `${where}: attempts`) as StoredAttempt[]).map(attemptFromJson),
    functionVersion: row.function_version == null ? null : intFromDb(row.function_version, 'function_version'),
    cacheHit: Number(row.cache_hit) === 1,
    child: row.child == null ? null : (parseJson(row.child, `${where}: child`) as ExecutionKey),
    notBefore: row.not_before == null ? null : dateFromDb(row.not_before, 'not_before'),
    deadline: row.deadline == null ? null : dateFromDb(row.deadline, 'deadline'),
    claimedBy: row.claimed_by ?? null,
    createdAt: dateFromDb(row.created_at, 'created_at'),
    startedAt: row.started_at == null ? null : dateFromDb(row.started_at, 'started_at'),
    endedAt: row.ended_at == null ? null : dateFromDb(row.ended_at, 'ended_at'),
    updatedAt: dateFromDb(row.updated_at, 'updated_at'),
    revision: intFromDb(row.revision, 'revision'),
  };
}

/** A `NodeAttempt` as kept in the `attempts` column: dates as epoch milliseconds. */
interface StoredAttempt {
  attempt: number;
  startedAt: number;
  endedAt: number | null;
  phase: NodePhase;
  invocationId: string | null;
  error: ExecutionError | null;
}

function attemptToJson(attempt: NodeAttempt, index: number): StoredAttempt {
  const field = `attempts[${index}]`;
  if (typeof attempt !== 'object' || attempt === null)
    throw new PlatformError('BAD_REQUEST', `${field} must be an object`);
  if (attempt.invocationId !== null && typeof attempt.invocationId !== 'string') {
    throw new PlatformError('BAD_REQUEST', `${field}.invocationId must be a string or null`);
  }
  return {
    attempt: checkInteger(attempt.attempt, `${field}.attempt`),
    startedAt: millisFromDate(attempt.startedAt, `${field}.startedAt`),
    endedAt: nullableMillis(attempt.endedAt, `${field}.endedAt`),
    phase: checkPhase(attempt.phase, nodePhases, `${field}.phase`) as NodePhase,
    invocationId: attempt.invocationId,
    error: attempt.error === null ? null : checkError(attempt.error, `${field}.error`),
  };
}

function attemptFromJson(stored: StoredAttempt): NodeAttempt {
  return {
    attempt: stored.attempt,
    startedAt: new Date(stored.startedAt),
    endedAt: stored.endedAt === null ? null : new Date(stored.endedAt),
    phase: stored.phase,
    invocationId: stored.invocationId,
    error: stored.error,
  };
}

function storedValueToJson(value: StoredValue, field: string): string {
  let plain: StoredValue;
  if (typeof value === 'object' && value !== null && 'inline' in value && typeof value.inline === 'string') {
    plain = { inline: value.inline };
  } else if (
    typeof value === 'object' &&
    value !== null &&
    'blobKey' in value &&
    typeof value.blobKey === 'string' &&
    value.blobKey !== '' &&
    Number.isSafeInteger(value.bytes) &&
    value.bytes >= 0
  ) {
    plain = { blobKey: value.blobKey, bytes: value.bytes };
  } else {
    throw new PlatformError('BAD_REQUEST', `${field} must be {inline: JSON text} or {blobKey, bytes}`);
  }
  return checkText(JSON.stringify(plain), columnLengths.workflowText, field);
}

function storedValueFromJson(json: string, where: string): StoredValue {
  const value = parseJson(json, where) as StoredValue;
  if (typeof value !== 'object' || value === null || !('inline' in value || 'blobKey' in value)) {
    throw new PlatformError('INTERNAL', `${where} holds no stored value`);
  }
  return value;
}

function checkError(error: ExecutionError, field: string): ExecutionError {
  if (
    typeof error !== 'object' ||
    error === null ||
    typeof error.code !== 'string' ||
    typeof error.message !== 'string' ||
    (error.kind !== 'USER' && error.kind !== 'SYSTEM')
  ) {
    throw new PlatformError('BAD_REQUEST', `${field} must be {code, message, kind: USER or SYSTEM}`);
  }
  return { code: error.code, message: error.message, kind: error.kind };
}

function errorToJson(error: ExecutionError | null, field: string): string | null {
  if (error === null) return null;
  return checkText(JSON.stringify(checkError(error, field)), columnLengths.workflowText, field);
}

function originToJson(origin: ExecutionOrigin): string {
  let plain: ExecutionOrigin;
  switch (typeof origin === 'object' && origin !== null ? origin.kind : undefined) {
    case 'launch':
      plain = { kind: 'launch' };
      break;
    case 'relaunch':
    case 'recover': {
      const { kind, from } = origin as { kind: 'relaunch' | 'recover'; from: ExecutionKey };
      plain = { kind, from: keyOf(checkExecutionKey(from)) };
      break;
    }
    case 'child': {
      const { parent, node } = origin as { parent: ExecutionKey; node: string };
      plain = {
        kind: 'child',
        parent: keyOf(checkExecutionKey(parent)),
        node: checkText(node, columnLengths.workflowNodeKey, 'origin.node'),
      };
      break;
    }
    default:
      throw new PlatformError('BAD_REQUEST', 'origin.kind must be launch, relaunch, recover or child');
  }
  return JSON.stringify(plain);
}

function parseJson(json: string, where: string): unknown {
  try {
    return JSON.parse(json);
  } catch (err) {
    throw new PlatformError('INTERNAL', `${where} is not JSON`, { cause: err });
  }
}

// ---- Checks ----

/** Whether `value` is a string of 1 to `max` characters (a key a row can have). */
function fits(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= max;
}

/** `value` if it is a string of 1 to `max` characters; BAD_REQUEST otherwise. */
function checkText(value: unknown, max: number, field: string): string {
  if (typeof value !== 'string' || value.length === 0) {
    throw new PlatformError('BAD_REQUEST', `${field} must be a non-empty string`);
  }
  if (value.length > max) {
    throw new PlatformError('BAD_REQUEST', `${field} is ${value.length} characters long, over the ${max} it may have`);
  }
  return value;
}

function checkInteger(value: unknown, field: string): number {
  if (!isPositiveInteger(value)) {
    throw new PlatformError('BAD_REQUEST', `${field} must be an integer 1-${maxInteger}, got ${String(value)}`);
  }
  return value;
}

function checkPhase(phase: unknown, phases: ReadonlySet<string>, field: string): string {
  if (typeof phase !== 'string' || !phases.has(phase)) {
    throw new PlatformError('BAD_REQUEST', `${field} ${JSON.stringify(phase)} is not a known phase`);
  }
  return phase;
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 1 && value <= maxInteger;
}

function isExecutionKey(key: ExecutionKey): boolean {
  return (
    typeof key === 'object' &&
    key !== null &&
    fits(key.project, columnLengths.executionKeyPart) &&
    fits(key.domain, columnLengths.executionKeyPart) &&
    fits(key.name, columnLengths.executionKeyPart)
  );
}

function checkExecutionKey(key: ExecutionKey): ExecutionKey {
  if (typeof key !== 'object' || key === null) throw new PlatformError('BAD_REQUEST', 'an execution key is required');
  checkText(key.project, columnLengths.executionKeyPart, 'project');
  checkText(key.domain, columnLengths.executionKeyPart, 'domain');
  checkText(key.name, columnLengths.executionKeyPart, 'execution name');
  return key;
}

/** Just the key's fields, whatever else the object holds. */
function keyOf(key: ExecutionKey): ExecutionKey {
  return { project: key.project, domain: key.domain, name: key.name };
}

function nullableMillis(date: Date | null, field: string): number | null {
  return date === null ? null : millisFromDate(date, field);
}

function readLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new PlatformError('BAD_REQUEST', `limit must be a positive integer, got ${String(limit)}`);
  }
  return Math.min(limit, maxExecutionsPerRead);
}

function describeKey(key: ExecutionKey): string {
  if (typeof key !== 'object' || key === null) return String(key);
  return `${String(key.project)}/${String(key.domain)}/${String(key.name)}`;
}

function sameKey(a: ExecutionKey, b: ExecutionKey): boolean {
  return typeof a === 'object' && a !== null && a.project === b.project && a.domain === b.domain && a.name === b.name;
}

import type { Insertable } from 'kysely';
import { PlatformError } from '../../core/errors.js';
import type { CurationSource } from '../../core/curation.js';
import {
  activeCurationStatuses,
  checkBefore,
  checkExpectedRevision,
  checkListLimit,
  couldBeKey,
  curationForStore,
  datasetImageForStore,
  intelligenceLimits,
  planForStore,
  runForStore,
} from '../../core/intelligence-store-rules.js';
import type { FineTunePlan, PlanProblem, PlanStatus } from '../../core/plan.js';
import type {
  CurationRecord,
  DatasetImageRecord,
  IntelligenceRunRecord,
  IntelligenceStore,
  PlanRecord,
} from '../../core/ports/intelligence-store.js';
import type {
  CurationRow,
  CurationsTable,
  DatasetImageRow,
  DatasetImagesTable,
  DbExecutor,
  IntelligenceRunRow,
  IntelligenceRunsTable,
  KhaydarinLogRow,
  KhaydarinLogsTable,
} from './schema.js';
import type { SqlStoreAccess } from './sql-metadata-store.js';
import { dateFromDb, intFromDb } from './sql-metadata-store.js';

/**
 * `IntelligenceStore` over the database of a `SqlMetadataStore` (SQLite, PostgreSQL or MySQL/MariaDB): it shares that
 * store's connections, lifecycle (closed with it), retries and durability barrier, so every write is durable when its
 * promise resolves. Plans are the seed's `khaydarin_logs` rows; JSON fields are text columns.
 *
 * Races are settled by the database: two `putPlan` calls with one request id insert under the unique `request_id`,
 * one loses and its retry reads the winner's row (`created: false`); a curation's compare-and-set is one conditional
 * `update` on (id, revision). Records are checked and normalised as `intelligence-store-rules.ts` says, alike in the
 * memory adapter.
 *
 * @example
 * const metadata = await openSqliteMetadataStore(path);
 * const intelligence = new SqlIntelligenceStore(metadata.shared());
 * const { record, created } = await intelligence.putPlan(plan);
 */
export class SqlIntelligenceStore implements IntelligenceStore {
  readonly #access: SqlStoreAccess;

  constructor(access: SqlStoreAccess) {
    this.#access = access;
  }

  putPlan(record: PlanRecord): Promise<{ record: PlanRecord; created: boolean }> {
    return this.#access.run(`log plan ${String(record?.id)}`, async () => {
      const row = planToRow(planForStore(record));
      return this.#access.write(async (trx) => {
        const existing = await trx
          .selectFrom('khaydarin_logs')
          .selectAll()
          .where((eb) => eb.or([eb('request_id', '=', row.request_id), eb('id', '=', row.id)]))
          .execute();
        const same = existing.find((found) => found.request_id === row.request_id);
        if (same !== undefined) return { record: planFromRow(same), created: false };
        if (existing.length > 0) {
          throw new PlatformError('CONFLICT', `plan ${row.id} exists already under another request id`);
        }
        // A concurrent put with the same request id fails on the unique key; the retry reads the winner's row.
        await trx.insertInto('khaydarin_logs').values(row).execute();
        return { record: planFromRow(row), created: true };
      });
    });
  }

  getPlan(id: string): Promise<PlanRecord | null> {
    return this.#access.run(`read plan ${String(id)}`, async () => {
      if (!couldBeKey(id, intelligenceLimits.id)) return null;
      const row = await this.#access.db
        .selectFrom('khaydarin_logs')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : planFromRow(row);
    });
  }

  getPlanByRequest(requestId: string): Promise<PlanRecord | null> {
    return this.#access.run(`read the plan of request ${String(requestId)}`, async () => {
      if (!couldBeKey(requestId, intelligenceLimits.requestId)) return null;
      const row = await this.#access.db
        .selectFrom('khaydarin_logs')
        .selectAll()
        .where('request_id', '=', requestId)
        .executeTakeFirst();
      return row === undefined ? null : planFromRow(row);
    });
  }

  listPlans(query: { userId?: string | undefined; limit: number; before?: Date | undefined }): Promise<PlanRecord[]> {
    return this.#access.run('list plans', async () => {
      const limit = checkListLimit(query.limit);
      const before = checkBefore(query.before);
      const { userId } = query;
      if (userId !== undefined && !couldBeKey(userId, intelligenceLimits.userId)) return [];
      let select = this.#access.db.selectFrom('khaydarin_logs').selectAll();
      if (userId !== undefined) select = select.where('user_id', '=', userId);
      if (before !== undefined) select = select.where('received_at', '<', before.getTime());
      const rows = await select.orderBy('received_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      return rows.map(planFromRow);
    });
  }

  putDatasetImage(record: DatasetImageRecord): Promise<DatasetImageRecord | null> {
    return this.#access.run(`store image ${String(record?.name)} of dataset ${String(record?.datasetId)}`, async () => {
      const row = imageToRow(datasetImageForStore(record));
      return this.#access.write(async (trx) => {
        const existing = await trx
          .selectFrom('dataset_images')
          .selectAll()
          .where('dataset_id', '=', row.dataset_id)
          .where((eb) => eb.or([eb('name', '=', row.name), eb('image_id', '=', row.image_id)]))
          .execute();
        if (existing.some((found) => found.image_id === row.image_id && found.name !== row.name)) {
          throw new PlatformError('CONFLICT', `image ${row.image_id} exists already under another name`);
        }
        const replaced = existing.find((found) => found.name === row.name);
        if (replaced === undefined) {
          // A concurrent first upload of the name fails on the primary key; the retry replaces it.
          await trx.insertInto('dataset_images').values(row).execute();
          return null;
        }
        const { dataset_id: datasetId, name, ...values } = row;
        await trx
          .updateTable('dataset_images')
          .set(values)
          .where('dataset_id', '=', datasetId)
          .where('name', '=', name)
          .execute();
        return imageFromRow(replaced);
      });
    });
  }

  listDatasetImages(datasetId: string): Promise<DatasetImageRecord[]> {
    return this.#access.run(`list the images of dataset ${String(datasetId)}`, async () => {
      if (!couldBeKey(datasetId, intelligenceLimits.id)) return [];
      const rows = await this.#access.db
        .selectFrom('dataset_images')
        .selectAll()
        .where('dataset_id', '=', datasetId)
        .orderBy('name')
        .execute();
      return rows.map(imageFromRow);
    });
  }

  getDatasetImage(datasetId: string, imageId: string): Promise<DatasetImageRecord | null> {
    return this.#access.run(`read image ${String(imageId)} of dataset ${String(datasetId)}`, async () => {
      if (!couldBeKey(datasetId, intelligenceLimits.id) || !couldBeKey(imageId, intelligenceLimits.id)) return null;
      const row = await this.#access.db
        .selectFrom('dataset_images')
        .selectAll()
        .where('dataset_id', '=', datasetId)
        .where('image_id', '=', imageId)
        .executeTakeFirst();
      return row === undefined ? null : imageFromRow(row);
    });
  }

  putCuration(
    record: Omit<CurationRecord, 'revision'>,
    expectedRevision: number | null,
  ): Promise<CurationRecord | null> {
    return this.#access.run(`write curation ${String(record?.id)}`, async () => {
      const expected = checkExpectedRevision(expectedRevision);
      const row = curationToRow({ ...curationForStore(record), revision: expected === null ? 1 : expected + 1 });
      if (expected === null) {
        return this.#access.write(async (trx) => {
          if ((await selectCuration(trx, row.id)) !== undefined) return null;
          // A concurrent insert of the id fails on the primary key; the retry finds it and answers null.
          await trx.insertInto('curations').values(row).execute();
          return curationFromRow(row);
        });
      }
      // The creation time is the first write's.
      const { id, created_at: _createdAt, ...values } = row;
      return this.#access.write(async (trx) => {
        const result = await trx
          .updateTable('curations')
          .set(values)
          .where('id', '=', id)
          .where('revision', '=', expected)
          .executeTakeFirst();
        if (result.numUpdatedRows === 0n) return null;
        const after = await selectCuration(trx, id);
        return after === undefined ? null : curationFromRow(after);
      });
    });
  }

  getCuration(id: string): Promise<CurationRecord | null> {
    return this.#access.run(`read curation ${String(id)}`, async () => {
      if (!couldBeKey(id, intelligenceLimits.id)) return null;
      const row = await selectCuration(this.#access.db, id);
      return row === undefined ? null : curationFromRow(row);
    });
  }

  listActiveCurations(): Promise<CurationRecord[]> {
    return this.#access.run('list the active curations', async () => {
      const rows = await this.#access.db
        .selectFrom('curations')
        .selectAll()
        .where('status', 'in', [...activeCurationStatuses])
        .orderBy('created_at')
        .orderBy('id')
        .execute();
      return rows.map(curationFromRow);
    });
  }

  putRun(record: IntelligenceRunRecord): Promise<void> {
    return this.#access.run(`record run ${String(record?.id)}`, async () => {
      const row = runToRow(runForStore(record));
      await this.#access.write(async (trx) => {
        const existing = await trx
          .selectFrom('intelligence_runs')
          .select('id')
          .where('id', '=', row.id)
          .executeTakeFirst();
        if (existing !== undefined) throw new PlatformError('CONFLICT', `run ${row.id} exists already`);
        // A concurrent insert of the id fails on the primary key; the retry finds it and says CONFLICT.
        await trx.insertInto('intelligence_runs').values(row).execute();
      });
    });
  }

  getRun(id: string): Promise<IntelligenceRunRecord | null> {
    return this.#access.run(`read run ${String(id)}`, async () => {
      if (!couldBeKey(id, intelligenceLimits.id)) return null;
      const row = await this.#access.db
        .selectFrom('intelligence_runs')
        .selectAll()
        .where('id', '=', id)
        .executeTakeFirst();
      return row === undefined ? null : runFromRow(row);
    });
  }

  listRuns(query: { limit: number; before?: Date | undefined }): Promise<IntelligenceRunRecord[]> {
    return this.#access.run('list runs', async () => {
      const limit = checkListLimit(query.limit);
      const before = checkBefore(query.before);
      let select = this.#access.db.selectFrom('intelligence_runs').selectAll();
      if (before !== undefined) select = select.where('created_at', '<', before.getTime());
      const rows = await select.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      return rows.map(runFromRow);
    });
  }
}

function selectCuration(db: DbExecutor, id: string): Promise<CurationRow | undefined> {
  return db.selectFrom('curations').selectAll().where('id', '=', id).executeTakeFirst();
}

// ---- Records <-> rows (records checked by the rules before they get here) ----

function planToRow(record: PlanRecord): Insertable<KhaydarinLogsTable> {
  return {
    id: record.id,
    request_id: record.requestId,
    user_id: record.userId,
    received_at: record.receivedAt.getTime(),
    user_prompt: record.userPrompt,
    llm_prompt: record.llmPrompt,
    llm_raw_response: record.llmRawResponse,
    structured_plan: record.plan === null ? null : JSON.stringify(record.plan),
    status: record.status,
    processing_time_ms: record.processingMs,
    planner: record.planner,
    attempts: record.attempts,
    problems: JSON.stringify(record.problems),
    warnings: JSON.stringify(record.warnings),
  };
}

function planFromRow(row: KhaydarinLogRow | Insertable<KhaydarinLogsTable>): PlanRecord {
  const where = `plan ${row.id}`;
  return {
    id: row.id,
    requestId: row.request_id,
    userId: row.user_id,
    receivedAt: dateFromDb(row.received_at, 'received_at'),
    userPrompt: row.user_prompt,
    llmPrompt: row.llm_prompt ?? null,
    llmRawResponse: row.llm_raw_response ?? null,
    plan: row.structured_plan == null ? null : (parseJson(row.structured_plan, `${where}: plan`) as FineTunePlan),
    status: row.status as PlanStatus,
    processingMs: intFromDb(row.processing_time_ms, 'processing_time_ms'),
    planner: row.planner,
    attempts: intFromDb(row.attempts, 'attempts'),
    problems: parseJson(row.problems, `${where}: problems`) as PlanProblem[],
    warnings: parseJson(row.warnings, `${where}: warnings`) as string[],
  };
}

function imageToRow(record: DatasetImageRecord): Insertable<DatasetImagesTable> {
  return {
    dataset_id: record.datasetId,
    name: record.name,
    image_id: record.imageId,
    blob_key: record.key,
    bytes: record.bytes,
    sha256: record.sha256,
    content_type: record.contentType,
    created_at: record.createdAt.getTime(),
  };
}

function imageFromRow(row: DatasetImageRow): DatasetImageRecord {
  return {
    datasetId: row.dataset_id,
    name: row.name,
    imageId: row.image_id,
    key: row.blob_key,
    bytes: intFromDb(row.bytes, 'bytes'),
    sha256: row.sha256,
    contentType: row.content_type,
    createdAt: dateFromDb(row.created_at, 'created_at'),
  };
}

function curationToRow(record: CurationRecord): Insertable<CurationsTable> {
  return {
    id: record.id,
    project_id: record.projectId,
    source: JSON.stringify(record.source),
    status: record.status,
    progress: JSON.stringify(record.progress),
    images_for_feedback: JSON.stringify(record.imagesForFeedback),
    feedback: JSON.stringify(record.feedback),
    curated_dataset_id: record.curatedDatasetId,
    curated_dataset_uri: record.curatedDatasetUri,
    errors: JSON.stringify(record.errors),
    failure: record.failure,
    embedder: record.embedder,
    created_at: record.createdAt.getTime(),
    updated_at: record.updatedAt.getTime(),
    revision: record.revision,
  };
}

function curationFromRow(row: CurationRow | Insertable<CurationsTable>): CurationRecord {
  const where = `curation ${row.id}`;
  return {
    id: row.id,
    projectId: row.project_id,
    source: parseJson(row.source, `${where}: source`) as CurationSource,
    status: row.status as CurationRecord['status'],
    progress: parseJson(row.progress, `${where}: progress`) as CurationRecord['progress'],
    imagesForFeedback: parseJson(
      row.images_for_feedback,
      `${where}: imagesForFeedback`,
    ) as CurationRecord['imagesForFeedback'],
    feedback: parseJson(row.feedback, `${where}: feedback`) as CurationRecord['feedback'],
    curatedDatasetId: row.curated_dataset_id ?? null,
    curatedDatasetUri: row.curated_dataset_uri ?? null,
    errors: parseJson(row.errors, `${where}: errors`) as CurationRecord['errors'],
    failure: row.failure ?? null,
    embedder: row.embedder,
    createdAt: dateFromDb(row.created_at, 'created_at'),
    updatedAt: dateFromDb(row.updated_at, 'updated_at'),
    revision: intFromDb(row.revision, 'revision'),
  };
}

function runToRow(record: IntelligenceRunRecord): Insertable<IntelligenceRunsTable> {
  return {
    id: record.id,
    prompt: record.prompt,
    user_id: record.userId,
    source: JSON.stringify(record.source),
    project: record.execution.project,
    domain: record.execution.domain,
    execution_name: record.execution.name,
    created_at: record.createdAt.getTime(),
  };
}

function runFromRow(row: IntelligenceRunRow): IntelligenceRunRecord {
  return {
    id: row.id,
    prompt: row.prompt,
    userId: row.user_id,
    source: parseJson(row.source, `run ${row.id}: source`) as CurationSource,
    execution: { project: row.project, domain: row.domain, name: row.execution_name },
    createdAt: dateFromDb(row.created_at, 'created_at'),
  };
}

function parseJson(json: string, where: string): unknown {
  try {
    return JSON.parse(json);
  } catch (err) {
    throw new PlatformError('INTERNAL', `${where} is not JSON`, { cause: err });
  }
}

import { curationStatusNames, terminalCurationStatuses } from './curation.js';
import type { CurationSource, CurationStatus } from './curation.js';
import { PlatformError } from './errors.js';
import { planStatusNames } from './plan.js';
import type { PlanStatus } from './plan.js';
import type {
  CurationRecord,
  DatasetImageRecord,
  IntelligenceRunRecord,
  PlanRecord,
} from './ports/intelligence-store.js';

/**
 * What every `IntelligenceStore` adapter accepts and how it normalises a record before keeping it, so the memory and
 * SQL adapters answer alike: bounds (the SQL columns'), statuses, and the free text of a plan log made storable.
 */

/** Bounds of the stored fields, in characters; the SQL migration sizes its columns with them. */
export const intelligenceLimits = {
  /** Record ids (`plan-…`, `cur-…`, `img-…`, `ds-…`, `run-…`) and dataset ids. */
  id: 64,
  requestId: 255,
  userId: 255,
  /** A curation's project id, an image's name. */
  projectId: 128,
  imageName: 128,
  sha256: 64,
  /** An execution's project, domain and name (DNS labels). */
  executionKeyPart: 64,
  /** Short texts: planner, embedder, content type, status. */
  label: 1024,
  status: 32,
  /** A long text or JSON document (MySQL's mediumtext holds 16 MiB). */
  text: 4_194_304,
  /** Most records one list call returns. */
  listLimit: 1000,
} as const;

/** The largest value a 32-bit `integer` column holds (revisions, attempts, processing milliseconds). */
export const maxStoredInteger = 2_147_483_647;

const planStatuses: ReadonlySet<string> = new Set<PlanStatus>(planStatusNames);
const curationStatuses: ReadonlySet<string> = new Set<CurationStatus>(curationStatusNames);

/** Statuses of the jobs `listActiveCurations` returns (not COMPLETED or FAILED). */
export const activeCurationStatuses: readonly CurationStatus[] = curationStatusNames.filter(
  (status) => !terminalCurationStatuses.has(status),
);

/**
 * Characters that PostgreSQL cannot keep in text (NUL) or that no engine keeps alike (lone surrogates): replaced by
 * U+FFFD in a plan log's free text, which comes from users and models and must be logged whatever it holds.
 */
const unstorable = /[\0\uD800-\uDFFF]/gu;

/** `text` with NUL and lone surrogates replaced by U+FFFD (pairs of surrogates are kept). */
export function storableText(text: string): string {
  return text.replace(unstorable, '\uFFFD');
}

/** A plan record checked and normalised as every adapter keeps it. */
export function planForStore(record: PlanRecord): PlanRecord {
  if (typeof record !== 'object' || record === null) throw bad('a plan record is required');
  const status = checkStatus(record.status, planStatuses, 'status');
  if (record.plan !== null && (typeof record.plan !== 'object' || Array.isArray(record.plan))) {
    throw bad('plan must be an object or null');
  }
  if (record.plan !== null && status !== 'SUCCESS') throw bad(`a plan with status ${status} must be null`);
  if (!Array.isArray(record.problems)) throw bad('problems must be a list');
  const problems = record.problems.map((problem, index) => {
    if (typeof problem !== 'object' || problem === null) throw bad(`problems[${index}] must be {path, message}`);
    return {
      path: storableText(checkString(problem.path, intelligenceLimits.text, `problems[${index}].path`)),
      message: storableText(checkString(problem.message, intelligenceLimits.text, `problems[${index}].message`)),
    };
  });
  if (!Array.isArray(record.warnings)) throw bad('warnings must be a list');
  const warnings = record.warnings.map((warning, index) =>
    storableText(checkString(warning, intelligenceLimits.text, `warnings[${index}]`)),
  );
  const processingMs = record.processingMs;
  if (typeof processingMs !== 'number' || !Number.isFinite(processingMs) || processingMs < 0) {
    throw bad(`processingMs must be a non-negative number, got ${String(processingMs)}`);
  }
  return {
    id: checkKey(record.id, intelligenceLimits.id, 'id'),
    requestId: checkKey(record.requestId, intelligenceLimits.requestId, 'requestId'),
    userId: checkKey(record.userId, intelligenceLimits.userId, 'userId'),
    receivedAt: checkDate(record.receivedAt, 'receivedAt'),
    userPrompt: storableText(checkString(record.userPrompt, intelligenceLimits.text, 'userPrompt')),
    llmPrompt: nullableText(record.llmPrompt, 'llmPrompt'),
    llmRawResponse: nullableText(record.llmRawResponse, 'llmRawResponse'),
    plan: record.plan === null ? null : (JSON.parse(checkJson(record.plan, 'plan')) as PlanRecord['plan']),
    status,
    // Whole milliseconds, as the seed's `processing_time_ms INT` column keeps them.
    processingMs: Math.min(Math.round(processingMs), maxStoredInteger),
    planner: storableText(checkNonEmpty(record.planner, intelligenceLimits.label, 'planner')),
    attempts: checkCount(record.attempts, 'attempts'),
    problems,
    warnings,
  };
}

/** A dataset image record checked and copied. */
export function datasetImageForStore(record: DatasetImageRecord): DatasetImageRecord {
  if (typeof record !== 'object' || record === null) throw bad('a dataset image record is required');
  const bytes = record.bytes;
  if (typeof bytes !== 'number' || !Number.isSafeInteger(bytes) || bytes < 0) {
    throw bad(`bytes must be a non-negative integer, got ${String(bytes)}`);
  }
  return {
    datasetId: checkKey(record.datasetId, intelligenceLimits.id, 'datasetId'),
    name: checkKey(record.name, intelligenceLimits.imageName, 'name'),
    imageId: checkKey(record.imageId, intelligenceLimits.id, 'imageId'),
    key: checkKey(record.key, intelligenceLimits.label, 'key'),
    bytes,
    sha256: checkKey(record.sha256, intelligenceLimits.sha256, 'sha256'),
    contentType: checkKey(record.contentType, intelligenceLimits.label, 'contentType'),
    createdAt: checkDate(record.createdAt, 'createdAt'),
  };
}

/** A curation record (without its revision) checked and copied, JSON fields deep-copied. */
export function curationForStore(record: Omit<CurationRecord, 'revision'>): Omit<CurationRecord, 'revision'> {
  if (typeof record !== 'object' || record === null) throw bad('a curation record is required');
  const progress = record.progress;
  if (typeof progress !== 'object' || progress === null)
    throw bad('progress must be {total, embedded, failed, duplicates}');
  if (!Array.isArray(record.imagesForFeedback)) throw bad('imagesForFeedback must be a list');
  if (typeof record.feedback !== 'object' || record.feedback === null || Array.isArray(record.feedback)) {
    throw bad('feedback must be an object of image ids to verdicts');
  }
  for (const [imageId, accepted] of Object.entries(record.feedback)) {
    if (typeof accepted !== 'boolean') throw bad(`feedback[${JSON.stringify(imageId)}] must be a boolean`);
  }
  if (!Array.isArray(record.errors)) throw bad('errors must be a list');
  return {
    id: checkKey(record.id, intelligenceLimits.id, 'id'),
    projectId: checkKey(record.projectId, intelligenceLimits.projectId, 'projectId'),
    source: checkSource(record.source),
    status: checkStatus(record.status, curationStatuses, 'status'),
    progress: {
      total: checkCount(progress.total, 'progress.total'),
      embedded: checkCount(progress.embedded, 'progress.embedded'),
      failed: checkCount(progress.failed, 'progress.failed'),
      duplicates: checkCount(progress.duplicates, 'progress.duplicates'),
    },
    imagesForFeedback: jsonCopy(record.imagesForFeedback, 'imagesForFeedback'),
    feedback: jsonCopy(record.feedback, 'feedback'),
    curatedDatasetId:
      record.curatedDatasetId === null
        ? null
        : checkKey(record.curatedDatasetId, intelligenceLimits.id, 'curatedDatasetId'),
    curatedDatasetUri:
      record.curatedDatasetUri === null
        ? null
        : checkNonEmpty(record.curatedDatasetUri, intelligenceLimits.text, 'curatedDatasetUri'),
    errors: jsonCopy(record.errors, 'errors'),
    failure:
      record.failure === null ? null : storableText(checkString(record.failure, intelligenceLimits.text, 'failure')),
    embedder: checkNonEmpty(record.embedder, intelligenceLimits.label, 'embedder'),
    createdAt: checkDate(record.createdAt, 'createdAt'),
    updatedAt: checkDate(record.updatedAt, 'updatedAt'),
  };
}

/** A run record checked and copied. */
export function runForStore(record: IntelligenceRunRecord): IntelligenceRunRecord {
  if (typeof record !== 'object' || record === null) throw bad('a run record is required');
  const execution = record.execution;
  if (typeof execution !== 'object' || execution === null) throw bad('execution must be {project, domain, name}');
  return {
    id: checkKey(record.id, intelligenceLimits.id, 'id'),
    prompt: storableText(checkString(record.prompt, intelligenceLimits.text, 'prompt')),
    userId: checkKey(record.userId, intelligenceLimits.userId, 'userId'),
    source: checkSource(record.source),
    execution: {
      project: checkKey(execution.project, intelligenceLimits.executionKeyPart, 'execution.project'),
      domain: checkKey(execution.domain, intelligenceLimits.executionKeyPart, 'execution.domain'),
      name: checkKey(execution.name, intelligenceLimits.executionKeyPart, 'execution.name'),
    },
    createdAt: checkDate(record.createdAt, 'createdAt'),
  };
}

/** A list call's `limit`: 1-1000, else BAD_REQUEST. */
export function checkListLimit(limit: number): number {
  if (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1 || limit > intelligenceLimits.listLimit) {
    throw bad(`limit must be 1-${intelligenceLimits.listLimit}, got ${String(limit)}`);
  }
  return limit;
}

/** A list call's optional `before` bound, checked. */
export function checkBefore(before: Date | undefined): Date | undefined {
  return before === undefined ? undefined : checkDate(before, 'before');
}

/** The expected revision of `putCuration`: null or a positive integer below the last. */
export function checkExpectedRevision(revision: number | null): number | null {
  if (revision === null) return null;
  if (typeof revision !== 'number' || !Number.isSafeInteger(revision) || revision < 1) {
    throw bad(`expectedRevision must be null or a positive integer, got ${String(revision)}`);
  }
  if (revision >= maxStoredInteger) throw bad('the curation has reached its last revision');
  return revision;
}

/**
 * Key characters no engine stores alike: NUL (PostgreSQL refuses it), lone surrogates, and a trailing space (MySQL's
 * binary collation pads, so `a` and `a ` would be one key there and two elsewhere).
 */
const badKey = /[\0\uD800-\uDFFF]| $/u;

/** Whether `value` could be a stored key of at most `max` characters (reads of other keys find nothing). */
export function couldBeKey(value: unknown, max: number): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= max && !badKey.test(value);
}

/** Order of two keys as every engine sorts the binary-collated columns: by Unicode code point. */
export function compareCodePoints(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function checkSource(source: CurationSource): CurationSource {
  if (typeof source !== 'object' || source === null) throw bad('source must be {rawDataUri} or {datasetId}');
  if ('rawDataUri' in source && !('datasetId' in source)) {
    return { rawDataUri: checkNonEmpty(source.rawDataUri, intelligenceLimits.text, 'source.rawDataUri') };
  }
  if ('datasetId' in source && !('rawDataUri' in source)) {
    return { datasetId: checkKey(source.datasetId, intelligenceLimits.id, 'source.datasetId') };
  }
  throw bad('source must be {rawDataUri} or {datasetId}');
}

function checkStatus<T extends string>(status: T, statuses: ReadonlySet<string>, field: string): T {
  if (typeof status !== 'string' || !statuses.has(status)) {
    throw bad(`${field} ${JSON.stringify(status)} is not one of ${[...statuses].join(', ')}`);
  }
  return status;
}

function checkString(value: unknown, max: number, field: string): string {
  if (typeof value !== 'string') throw bad(`${field} must be a string`);
  if (value.length > max) throw bad(`${field} is ${value.length} characters long, over the ${max} it may have`);
  return value;
}

function checkNonEmpty(value: unknown, max: number, field: string): string {
  const text = checkString(value, max, field);
  if (text.length === 0) throw bad(`${field} must not be empty`);
  return text;
}

/** A key column's value: non-empty, bounded, and free of what no engine stores alike. */
function checkKey(value: unknown, max: number, field: string): string {
  const text = checkNonEmpty(value, max, field);
  if (badKey.test(text)) throw bad(`${field} holds a NUL or an unpaired surrogate, or ends in a space`);
  return text;
}

function nullableText(value: string | null, field: string): string | null {
  return value === null ? null : storableText(checkString(value, intelligenceLimits.text, field));
}

function checkDate(date: Date, field: string): Date {
  const ms = date instanceof Date ? date.getTime() : Number.NaN;
  if (!Number.isFinite(ms)) throw bad(`${field} must be a valid date`);
  return new Date(ms);
}

function checkCount(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > maxStoredInteger) {
    throw bad(`${field} must be an integer 0-${maxStoredInteger}, got ${String(value)}`);
  }
  return value;
}

function checkJson(value: unknown, field: string): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new PlatformError('BAD_REQUEST', `${field} cannot be written as JSON`, { cause: err });
  }
  if (json === undefined) throw bad(`${field} cannot be written as JSON`);
  if (json.length > intelligenceLimits.text) {
    throw bad(`${field} is ${json.length} characters of JSON, over the ${intelligenceLimits.text} it may have`);
  }
  return json;
}

function jsonCopy<T>(value: T, field: string): T {
  return JSON.parse(checkJson(value, field)) as T;
}

function bad(message: string): PlatformError {
  return new PlatformError('BAD_REQUEST', message);
}

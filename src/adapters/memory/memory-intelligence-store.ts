import { PlatformError } from '../../core/errors.js';
import {
  activeCurationStatuses,
  checkBefore,
  checkExpectedRevision,
  checkListLimit,
  compareCodePoints,
  couldBeKey,
  curationForStore,
  datasetImageForStore,
  intelligenceLimits,
  planForStore,
  runForStore,
} from '../../core/intelligence-store-rules.js';
import type {
  CurationRecord,
  DatasetImageRecord,
  IntelligenceRunRecord,
  IntelligenceStore,
  PlanRecord,
} from '../../core/ports/intelligence-store.js';

const active: ReadonlySet<string> = new Set(activeCurationStatuses);

/**
 * `IntelligenceStore` in this process's memory: for tests and for compositions without a database. Records are
 * checked and normalised as the SQL adapter keeps them (`intelligence-store-rules.ts`) and copied in and out, so a
 * caller's later change to an object never reaches the store.
 */
export class MemoryIntelligenceStore implements IntelligenceStore {
  readonly #plans = new Map<string, PlanRecord>();
  /** Plan id by request id. */
  readonly #requests = new Map<string, string>();
  /** Images by dataset, then by name. */
  readonly #images = new Map<string, Map<string, DatasetImageRecord>>();
  readonly #curations = new Map<string, CurationRecord>();
  readonly #runs = new Map<string, IntelligenceRunRecord>();

  putPlan(record: PlanRecord): Promise<{ record: PlanRecord; created: boolean }> {
    return attempt(() => {
      const stored = planForStore(record);
      const existingId = this.#requests.get(stored.requestId);
      if (existingId !== undefined) {
        return { record: copyPlan(this.#plans.get(existingId)!), created: false };
      }
      if (this.#plans.has(stored.id)) {
        throw new PlatformError('CONFLICT', `plan ${stored.id} exists already under another request id`);
      }
      this.#plans.set(stored.id, stored);
      this.#requests.set(stored.requestId, stored.id);
      return { record: copyPlan(stored), created: true };
    });
  }

  getPlan(id: string): Promise<PlanRecord | null> {
    const record = this.#plans.get(id);
    return Promise.resolve(record === undefined ? null : copyPlan(record));
  }

  getPlanByRequest(requestId: string): Promise<PlanRecord | null> {
    const id = this.#requests.get(requestId);
    return this.getPlan(id ?? '');
  }

  listPlans(query: { userId?: string | undefined; limit: number; before?: Date | undefined }): Promise<PlanRecord[]> {
    return attempt(() => {
      const limit = checkListLimit(query.limit);
      const before = checkBefore(query.before)?.getTime();
      const { userId } = query;
      if (userId !== undefined && !couldBeKey(userId, intelligenceLimits.userId)) return [];
      return [...this.#plans.values()]
        .filter(
          (plan) =>
            (userId === undefined || plan.userId === userId) &&
            (before === undefined || plan.receivedAt.getTime() < before),
        )
        .sort((a, b) => newestFirst(a.receivedAt, a.id, b.receivedAt, b.id))
        .slice(0, limit)
        .map(copyPlan);
    });
  }

  putDatasetImage(record: DatasetImageRecord): Promise<DatasetImageRecord | null> {
    return attempt(() => {
      const stored = datasetImageForStore(record);
      let images = this.#images.get(stored.datasetId);
      if (images === undefined) {
        images = new Map();
        this.#images.set(stored.datasetId, images);
      }
      const replaced = images.get(stored.name);
      for (const other of images.values()) {
        if (other.imageId === stored.imageId && other.name !== stored.name) {
          throw new PlatformError('CONFLICT', `image ${stored.imageId} exists already under another name`);
        }
      }
      images.set(stored.name, stored);
      return replaced === undefined ? null : copyImage(replaced);
    });
  }

  listDatasetImages(datasetId: string): Promise<DatasetImageRecord[]> {
    const images = this.#images.get(datasetId);
    if (images === undefined) return Promise.resolve([]);
    return Promise.resolve([...images.values()].sort((a, b) => compareCodePoints(a.name, b.name)).map(copyImage));
  }

  getDatasetImage(datasetId: string, imageId: string): Promise<DatasetImageRecord | null> {
    for (const image of this.#images.get(datasetId)?.values() ?? []) {
      if (image.imageId === imageId) return Promise.resolve(copyImage(image));
    }
    return Promise.resolve(null);
  }

  putCuration(
    record: Omit<CurationRecord, 'revision'>,
    expectedRevision: number | null,
  ): Promise<CurationRecord | null> {
    return attempt(() => {
      const stored = curationForStore(record);
      const expected = checkExpectedRevision(expectedRevision);
      const current = this.#curations.get(stored.id);
      if (expected === null ? current !== undefined : current?.revision !== expected) return null;
      const written: CurationRecord = {
        ...stored,
        // The creation time is the first write's.
        createdAt: current?.createdAt ?? stored.createdAt,
        revision: expected === null ? 1 : expected + 1,
      };
      this.#curations.set(written.id, written);
      return copyCuration(written);
    });
  }

  getCuration(id: string): Promise<CurationRecord | null> {
    const record = this.#curations.get(id);
    return Promise.resolve(record === undefined ? null : copyCuration(record));
  }

  listActiveCurations(): Promise<CurationRecord[]> {
    return Promise.resolve(
      [...this.#curations.values()]
        .filter((curation) => active.has(curation.status))
        .sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || compareCodePoints(a.id, b.id))
        .map(copyCuration),
    );
  }

  putRun(record: IntelligenceRunRecord): Promise<void> {
    return attempt(() => {
      const stored = runForStore(record);
      if (this.#runs.has(stored.id)) throw new PlatformError('CONFLICT', `run ${stored.id} exists already`);
      this.#runs.set(stored.id, stored);
    });
  }

  getRun(id: string): Promise<IntelligenceRunRecord | null> {
    const record = this.#runs.get(id);
    return Promise.resolve(record === undefined ? null : copyRun(record));
  }

  listRuns(query: { limit: number; before?: Date | undefined }): Promise<IntelligenceRunRecord[]> {
    return attempt(() => {
      const limit = checkListLimit(query.limit);
      const before = checkBefore(query.before)?.getTime();
      return [...this.#runs.values()]
        .filter((run) => before === undefined || run.createdAt.getTime() < before)
        .sort((a, b) => newestFirst(a.createdAt, a.id, b.createdAt, b.id))
        .slice(0, limit)
        .map(copyRun);
    });
  }
}

/** Runs `body` now and settles with its result or error (checks throw synchronously). */
function attempt<T>(body: () => T): Promise<T> {
  try {
    return Promise.resolve(body());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

function newestFirst(aAt: Date, aId: string, bAt: Date, bId: string): number {
  return bAt.getTime() - aAt.getTime() || compareCodePoints(bId, aId);
}

function copyPlan(record: PlanRecord): PlanRecord {
  return structuredClone(record);
}

function copyImage(record: DatasetImageRecord): DatasetImageRecord {
  return structuredClone(record);
}

function copyCuration(record: CurationRecord): CurationRecord {
  return structuredClone(record);
}

function copyRun(record: IntelligenceRunRecord): IntelligenceRunRecord {
  return structuredClone(record);
}

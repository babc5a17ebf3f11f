// A small in-memory IntelligenceStore holding plan records only (the other records' methods throw), for the plan
// service's tests.
import type { IntelligenceStore, PlanRecord } from '../../src/core/ports/intelligence-store.js';

export function createPlanTestStore(): IntelligenceStore {
  const plans = new Map<string, PlanRecord>();
  const unsupported = (): never => {
    throw new Error('the plan test store keeps plans only');
  };
  return {
    putPlan(record) {
      const known = [...plans.values()].find((r) => r.requestId === record.requestId);
      if (known !== undefined) return Promise.resolve({ record: structuredClone(known), created: false });
      plans.set(record.id, structuredClone(record));
      return Promise.resolve({ record: structuredClone(record), created: true });
    },
    getPlan(id) {
      const record = plans.get(id);
      return Promise.resolve(record === undefined ? null : structuredClone(record));
    },
    getPlanByRequest(requestId) {
      const record = [...plans.values()].find((r) => r.requestId === requestId);
      return Promise.resolve(record === undefined ? null : structuredClone(record));
    },
    listPlans({ userId, limit, before }) {
      return Promise.resolve(
        [...plans.values()]
          .filter(
            (r) => (userId === undefined || r.userId === userId) && (before === undefined || r.receivedAt < before),
          )
          .sort((a, b) => b.receivedAt.getTime() - a.receivedAt.getTime())
          .slice(0, limit)
          .map((r) => structuredClone(r)),
      );
    },
    putDatasetImage: unsupported,
    listDatasetImages: unsupported,
    getDatasetImage: unsupported,
    putCuration: unsupported,
    getCuration: unsupported,
    listActiveCurations: unsupported,
    putRun: unsupported,
    getRun: unsupported,
    listRuns: unsupported,
  };
}

import type { InvocationRecord } from '../../src/core/types.js';

/** A successful warm invocation record of `alpha`, with `overrides`. */
export function invocationRecord(overrides: Partial<InvocationRecord> = {}): InvocationRecord {
  return {
    id: 'inv-1',
    functionName: 'alpha',
    version: 1,
    start: 'warm',
    status: 'success',
    initMs: null,
    durationMs: 12,
    peakMemoryBytes: 50_000_000,
    error: null,
    logKey: null,
    nodeId: 'node-1',
    instanceId: 'inst-1',
    createdAt: new Date(1_700_000_000_000),
    traceId: null,
    ...overrides,
  };
}

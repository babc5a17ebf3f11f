import type { Static } from 'typebox';
import { reportLine } from '../../core/report.js';
import type { FunctionRecord, FunctionVersion, InvocationRecord } from '../../core/types.js';
import type { FunctionView, InvocationView, VersionView } from './schemas.js';

/** Domain → JSON views for the HTTP API, in one place; their schemas are in schemas.ts. */
export function functionView(fn: FunctionRecord, current: FunctionVersion | null): Static<typeof FunctionView> {
  return {
    name: fn.name,
    currentVersion: fn.currentVersion,
    createdAt: fn.createdAt.toISOString(),
    updatedAt: fn.updatedAt.toISOString(),
    ...(current === null
      ? {}
      : { codeSha256: current.codeSha256, codeSizeBytes: current.codeSizeBytes, config: current.config }),
  };
}

export function versionView(v: FunctionVersion, currentVersion: number): Static<typeof VersionView> {
  return {
    version: v.version,
    current: v.version === currentVersion,
    codeSha256: v.codeSha256,
    codeSizeBytes: v.codeSizeBytes,
    contentHash: v.contentHash,
    config: v.config,
    createdAt: v.createdAt.toISOString(),
  };
}

/** An invocation's record, with its version's memory limit (null: the version is gone) and its REPORT line. */
export function invocationView(r: InvocationRecord, memoryMB: number | null): Static<typeof InvocationView> {
  return { ...r, createdAt: r.createdAt.toISOString(), memoryMB, report: reportLine({ ...r, memoryMB }) };
}

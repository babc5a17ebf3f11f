import type { Static } from 'typebox';
import { reportLine } from '../../core/report.js';
import { shareOf } from '../../core/traffic.js';
import type {
  FunctionRecord,
  FunctionVersion,
  InvocationRecord,
  VersionFigures,
  VersionWeight,
} from '../../core/types.js';
import type { FunctionView, InvocationView, VersionListView, VersionView } from './schemas.js';

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

/** A version as `GET /v1/functions/:name/versions` lists it: its share of `live` and its recent figures. */
export function versionListView(
  v: FunctionVersion,
  currentVersion: number,
  live: readonly VersionWeight[],
  figures: VersionFigures | undefined,
): Static<typeof VersionListView> {
  return {
    ...versionView(v, currentVersion),
    traffic: shareOf(live, v.version),
    stats: { invocations: figures?.requests ?? 0, errors: figures?.errors ?? 0, p99Ms: figures?.p99Ms ?? null },
  };
}

/** An invocation's record, with its version's memory limit (null: the version is gone) and its REPORT line. */
export function invocationView(r: InvocationRecord, memoryMB: number | null): Static<typeof InvocationView> {
  const { traceId = null } = r;
  return { ...r, createdAt: r.createdAt.toISOString(), traceId, memoryMB, report: reportLine({ ...r, memoryMB }) };
}

import type { FunctionConfig, FunctionConfigInput } from './function-config.js';

/**
 * A deploy's settings as `PUT /v1/functions/{name}` takes them. A field left out keeps the current version's value
 * (a new function gets the default); `null` restores the default. `env` is one field: given, it replaces the whole
 * environment (`{}` or `null` empties it); left out, the environment is kept.
 */
export type FunctionConfigPatch = { [K in keyof FunctionConfigInput]?: FunctionConfigInput[K] | null };

/**
 * The settings a deploy compiles: each field of `patch`, else the current version's. `allowNet` is kept only while
 * the function keeps the network: turning it off (`network: false`) without naming `allowNet` drops the list.
 *
 * @example
 * inheritFunctionConfig(current, { timeoutSeconds: 10 }); // current's env, memory... with a 10 s timeout
 * inheritFunctionConfig(current, { timeoutSeconds: null }); // current's settings, the default timeout
 */
export function inheritFunctionConfig(current: FunctionConfig | null, patch: FunctionConfigPatch): FunctionConfigInput {
  const input: Record<string, unknown> = { ...current };
  for (const [field, value] of Object.entries(patch)) {
    if (value === undefined) continue;
    if (value === null) delete input[field];
    else input[field] = value;
  }
  if (patch.allowNet === undefined && input.network !== true) delete input.allowNet;
  return input;
}

/**
 * One difference between two versions. A field holding an object of keys (`env`) names the keys added, removed
 * and changed, never their values; any other field gives its value before and after. `code` compares the bundles'
 * sha256.
 */
export type VersionChange =
  | { field: string; from: unknown; to: unknown }
  | { field: string; added: string[]; removed: string[]; changed: string[] };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** What differs from `previous` to `next`: the code, then each setting in `next`'s order. Empty when nothing does. */
export function versionChanges(
  previous: { codeSha256: string; config: FunctionConfig },
  next: { codeSha256: string; config: FunctionConfig },
): VersionChange[] {
  const changes: VersionChange[] = [];
  if (previous.codeSha256 !== next.codeSha256) {
    changes.push({ field: 'code', from: previous.codeSha256, to: next.codeSha256 });
  }
  const before: Record<string, unknown> = { ...previous.config };
  const after: Record<string, unknown> = { ...next.config };
  for (const field of new Set([...Object.keys(after), ...Object.keys(before)])) {
    const from = before[field];
    const to = after[field];
    if (isRecord(from) || isRecord(to)) {
      const a = isRecord(from) ? from : {};
      const b = isRecord(to) ? to : {};
      const added = Object.keys(b).filter((key) => !(key in a));
      const removed = Object.keys(a).filter((key) => !(key in b));
      const changed = Object.keys(b).filter((key) => key in a && JSON.stringify(a[key]) !== JSON.stringify(b[key]));
      if (added.length + removed.length + changed.length > 0) {
        changes.push({ field, added: added.sort(), removed: removed.sort(), changed: changed.sort() });
      }
    } else if (JSON.stringify(from) !== JSON.stringify(to)) {
      changes.push({ field, from: from ?? null, to: to ?? null });
    }
  }
  return changes;
}

import type { VersionChange } from '../core/function-config-patch.js';

/** How a setting reads in a change line: its name as the CLI's options say it, and its unit. */
const labels: Record<string, [string, string]> = {
  code: ['code', ''],
  handler: ['handler', ''],
  runtime: ['runtime', ''],
  timeoutSeconds: ['timeout', ' s'],
  memoryMB: ['memory', ' MB'],
  maxInstances: ['max instances', ''],
  minInstances: ['min instances', ''],
  idleSeconds: ['idle', ' s'],
  network: ['network', ''],
  allowNet: ['allow-net', ''],
};

function text(field: string, value: unknown): string {
  if (field === 'code' && typeof value === 'string') return value.slice(0, 12);
  if (field === 'network') return value === true ? 'on' : 'off';
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(', ');
  return typeof value === 'string' || typeof value === 'number' ? String(value) : JSON.stringify(value);
}

/**
 * One line per changed field of a deploy's answer.
 *
 * @example
 * changeLines([{ field: 'timeoutSeconds', from: 30, to: 10 }, { field: 'env', added: ['A'], removed: ['B'], changed: [] }]);
 * // ['timeout 30 → 10 s', 'env: +A, -B']
 */
export function changeLines(changes: readonly VersionChange[]): string[] {
  return changes.map((change) => {
    if ('added' in change) {
      const keys = [
        ...change.added.map((key) => `+${key}`),
        ...change.removed.map((key) => `-${key}`),
        ...change.changed.map((key) => `~${key}`),
      ];
      return `${change.field}: ${keys.join(', ')}`;
    }
    const [label, unit] = labels[change.field] ?? [change.field, ''];
    return `${label} ${text(change.field, change.from)} → ${text(change.field, change.to)}${unit}`;
  });
}

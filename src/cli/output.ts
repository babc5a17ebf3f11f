// What every command prints: results on stdout (a table, a line, or JSON with `--json`), everything else on stderr.
import { InvalidArgumentError } from 'commander';

export const out = (line: string): void => void process.stdout.write(`${line}\n`);
export const info = (line: string): void => void process.stderr.write(`${line}\n`);

/** `--json`: one JSON document on stdout (stable shapes, documented in the README's CLI reference). */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function table(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows)
    out(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
}

export function integer(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isInteger(n)) throw new InvalidArgumentError(`not an integer: ${value}`);
  return n;
}

const durationUnits: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600 };

/** A duration option in whole seconds: `90`, `90s`, `15m` or `6h`. */
export function durationSeconds(value: string): number {
  const match = /^\s*(\d+)\s*([smh]?)\s*$/.exec(value);
  if (match === null) {
    throw new InvalidArgumentError(`expected a duration like 90, 90s, 15m or 6h, got ${value}`);
  }
  return Number(match[1]) * (durationUnits[match[2] ?? ''] ?? 1);
}

/** A number (decimal or integer) of an option. */
export function decimal(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError(`not a number: ${value}`);
  return n;
}

/** A comma-separated list of integers (`10,50,100`). */
export function integerList(value: string): number[] {
  return value.split(',').map((part) => {
    try {
      return integer(part);
    } catch {
      throw new InvalidArgumentError(`expected integers separated by commas (like 10,50,100), got ${value}`);
    }
  });
}

/** A repeatable option's values, in order. */
export function repeated(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

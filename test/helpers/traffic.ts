// Helpers for tests of weighted routing: bounded concurrency, counting, and a binomial tolerance.
import assert from 'node:assert/strict';

/** Runs `tasks` with at most `concurrency` at once; resolves with their results in order. */
export async function pool<T>(count: number, concurrency: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await task(i);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return results;
}

/** Within 5 standard deviations of a binomial count's mean (a false failure about once in 1.7 million runs). */
export function assertNearShare(count: number, n: number, share: number, what: string): void {
  const sigma = Math.sqrt(n * share * (1 - share));
  assert.ok(
    Math.abs(count - n * share) <= 5 * sigma,
    `${what}: ${count} of ${n}, expected ${n * share} ± ${(5 * sigma).toFixed(1)}`,
  );
}

export function countBy<T>(items: readonly T[], key: (item: T) => unknown): Map<unknown, number> {
  const counts = new Map<unknown, number>();
  for (const item of items) counts.set(key(item), (counts.get(key(item)) ?? 0) + 1);
  return counts;
}

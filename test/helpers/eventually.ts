/**
 * Polls `probe` every 100 ms until `ok` accepts its value or `timeoutMs` passes, and returns the last value (the
 * caller asserts on it, so a timeout fails with what was seen). A probe that throws counts as not yet.
 */
export async function eventually<T>(
  probe: () => Promise<T>,
  ok: (value: T) => boolean,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined as T);
    if (value !== undefined && ok(value)) return value;
    if (Date.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * How long an idle sandbox runs before it is frozen. Not 0: a thaw adds about 0.4 ms to a warm invocation
 * (BENCHMARKS.md, "Freezing idle sandboxes"); with a delay, back-to-back invocations never pay it.
 */
export const defaultFreezeIdleMs = 1000;

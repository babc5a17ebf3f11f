/**
 * Runs `close` on the first SIGINT or SIGTERM, then exits 0 (1 if closing failed); a second signal exits at once
 * with 130, without waiting for in-flight work or open streams. `doing` says what the first signal starts. Returns the
 * same stop, for a process asked to leave otherwise (`why` is printed as a signal name would be).
 */
export function untilSignal(doing: string, close: () => Promise<void>): (why: string) => void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: stopping at once\n`);
      process.exit(130);
    }
    stopping = true;
    process.stderr.write(`${signal}: ${doing}...\n`);
    void close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`shutdown failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  // The same stop, asked for otherwise (the control plane's Shutdown call); a signal after it exits at once.
  return stop;
}

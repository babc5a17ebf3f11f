/** What the store contracts' fixtures share: opening their stores again over the same data, and removing it. */
export interface Reopenable<S> {
  /** Open the stores again over the same data; left out where the data dies with them. */
  reopen?: () => Promise<S>;
  /** Remove the data. Called once every store is closed. */
  cleanup: () => Promise<void>;
}

/**
 * Runs `body` with the fixture's `reopen`, which also keeps what it opens; afterwards closes `first` (the stores the
 * fixture opened) and every set of stores `reopen` opened, then removes the data.
 */
export async function withReopenable<S>(
  fixture: Reopenable<S>,
  first: S,
  close: (stores: S) => Promise<void>,
  body: (reopen: (() => Promise<S>) | undefined) => Promise<void>,
): Promise<void> {
  const opened = [first];
  const reopenFixture = fixture.reopen;
  const reopen =
    reopenFixture === undefined
      ? undefined
      : async (): Promise<S> => {
          const stores = await reopenFixture();
          opened.push(stores);
          return stores;
        };
  try {
    await body(reopen);
  } finally {
    for (const stores of opened) await close(stores);
    await fixture.cleanup();
  }
}

/**
 * Orders writes inside one pushguard process: writes to one group run one after another (so every
 * replica applies them in the same order), a wipe runs alone (after the writes before it, before
 * the writes after it), and the janitor can hold several groups while it re-checks and deletes
 * them, so no push through this process lands between its check and its delete.
 *
 * Keys are canonical group paths. Several keys are always taken in sorted order and a writer holds
 * one key, so two holders can never wait on each other.
 */
export class GroupLocks {
  readonly #tails = new Map<string, Promise<void>>();
  /** Resolves when the last wipe queued so far has finished. */
  #barrier: Promise<void> = Promise.resolve();
  /** Group sections admitted before the latest wipe was queued; that wipe waits for them. */
  readonly #admitted = new Set<Promise<unknown>>();

  /** Runs `fn` holding every key in `keys` (after any wipe queued before it). */
  withGroups<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
    const barrier = this.#barrier;
    const section = (async () => {
      await barrier;
      const releases: Array<() => void> = [];
      try {
        for (const key of [...new Set(keys)].sort()) releases.push(await this.#acquire(key));
        return await fn();
      } finally {
        for (const release of releases.reverse()) release();
      }
    })();
    const settled = section.then(
      () => undefined,
      () => undefined,
    );
    this.#admitted.add(settled);
    void settled.then(() => this.#admitted.delete(settled));
    return section;
  }

  /** Runs `fn` with no group section running: it waits for those admitted before it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.#barrier;
    const running = [...this.#admitted];
    let release!: () => void;
    const done = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.#barrier = previous.then(() => done);
    return (async () => {
      try {
        await previous;
        await Promise.all(running);
        return await fn();
      } finally {
        release();
      }
    })();
  }

  async #acquire(key: string): Promise<() => void> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    return () => {
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }
}

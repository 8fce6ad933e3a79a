// Waiting for something to happen instead of sleeping for a while: a check that runs whenever
// the caller says something changed (and on a slow poll besides), with a generous deadline that
// only exists to turn a hang into a clear failure message.

export interface WaitOptions {
  /** Callbacks to register in: the check runs again whenever one is called. */
  wake?: Set<() => void>;
  /** Deadline; far above what any healthy run needs, even on a loaded machine. */
  timeoutMs?: number;
  /** What to show when the deadline passes, e.g. the output gathered so far. */
  describe?: () => string;
}

const POLL_MS = 25;

/** Resolves with the first value `check` returns that is not undefined. */
export function waitUntil<T>(check: () => T | undefined, what: string, opts: WaitOptions = {}): Promise<T> {
  const first = check();
  if (first !== undefined) return Promise.resolve(first);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise<T>((resolve, reject) => {
    const run = (): void => {
      const value = check();
      if (value === undefined) return;
      done();
      resolve(value);
    };
    const poll = setInterval(run, POLL_MS);
    const deadline = setTimeout(() => {
      done();
      reject(new Error(`waited ${timeoutMs} ms for ${what}${opts.describe ? `; got:\n${opts.describe()}` : ''}`));
    }, timeoutMs);
    const done = (): void => {
      clearInterval(poll);
      clearTimeout(deadline);
      opts.wake?.delete(run);
    };
    opts.wake?.add(run);
  });
}

/** Probes (a request, a scrape) until one gives a value; the deadline only bounds a hang. */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, opts: { timeoutMs?: number; describe?: () => string } = {}): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 15_000);
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}${opts.describe ? `; last seen:\n${opts.describe()}` : ''}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

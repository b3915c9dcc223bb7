/**
 * The one seam for time: everything that reads the clock, sleeps or ticks takes a
 * `Clock`, so the retry backoff, the rate limiter, the rescue check, the endgame hedge
 * and the dates servers send can be driven by a fake clock in tests instead of by
 * real seconds.
 */
export interface Clock {
  /** Milliseconds, monotonic (not wall time: only differences mean anything). */
  now(): number;
  /**
   * Wall time, milliseconds since the Unix epoch: for what a server says in dates (a
   * `Retry-After` date, a two-digit year), never for measuring time.
   */
  wall(): number;
  /** Resolves after `ms` milliseconds; rejects with the signal's reason as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `tick` every `ms` milliseconds until the returned function is called. The
   * timer never keeps the process alive on its own.
   */
  every(ms: number, tick: () => void): () => void;
}

/**
 * The reason to abort with when a sleep ends early on purpose (an answer came, an idle
 * connection is woken) and nobody reads why: `abort()` without a reason builds a
 * DOMException, stack trace and all, for each of them.
 */
export const WAKE_UP = Symbol("wake up");

/** The real clock: `performance.now`, timers from Node. */
export const systemClock: Clock = {
  now: () => performance.now(),
  wall: () => Date.now(),
  sleep,
  every(ms, tick) {
    const timer = setInterval(tick, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

/**
 * A timer that an abort clears. Not `timers/promises`: it rejects with a new AbortError
 * (a stack trace captured) on every abort, and every request's answer deadline ends
 * that way, so a list of small files paid two error objects per file for nothing.
 */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

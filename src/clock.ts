/**
 * The one seam for time: everything that reads the clock, sleeps or ticks takes a
 * `Clock`, so the retry backoff, the rate limiter, the rescue check and the endgame
 * hedge can be driven by a fake clock in tests instead of by real seconds.
 */
import { setTimeout as sleepFor } from "node:timers/promises";

export interface Clock {
  /** Milliseconds, monotonic (not wall time: only differences mean anything). */
  now(): number;
  /** Resolves after `ms` milliseconds; rejects with the signal's reason as soon as `signal` aborts. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /**
   * Calls `tick` every `ms` milliseconds until the returned function is called. The
   * timer never keeps the process alive on its own.
   */
  every(ms: number, tick: () => void): () => void;
}

/** The real clock: `performance.now`, timers from Node. */
export const systemClock: Clock = {
  now: () => performance.now(),
  sleep: (ms, signal) => sleepFor(ms, undefined, { signal }),
  every(ms, tick) {
    const timer = setInterval(tick, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};

import type { Clock } from "../../src/clock.js";

interface Timer {
  at: number;
  resolve: () => void;
}

interface Ticker {
  next: number;
  ms: number;
  tick: () => void;
}

/**
 * A clock that moves only when a test says so, for retry backoff, deadlines and idle
 * waits without real sleeping. Every `sleep` is recorded in `sleeps`. A sleep of at
 * most `instantUpToMs` passes at once (the clock jumps ahead by it, and the waiter is
 * woken on the next turn of the event loop, so I/O still runs); a longer one (an answer
 * deadline, say) waits for `advance`.
 */
export class FakeClock implements Clock {
  readonly sleeps: number[] = [];
  readonly #instantUpToMs: number;
  readonly #timers = new Set<Timer>();
  readonly #tickers = new Set<Ticker>();
  #now = 0;

  constructor(options: { instantUpToMs?: number } = {}) {
    this.#instantUpToMs = options.instantUpToMs ?? -1;
  }

  /** Wall time: a fixed epoch (2026-01-01) plus the fake time elapsed. */
  wall(): number {
    return Date.UTC(2026, 0, 1) + this.#now;
  }

  now(): number {
    return this.#now;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (ms <= this.#instantUpToMs) {
      this.#now += ms;
      return new Promise((resolve) => setImmediate(resolve));
    }
    return new Promise<void>((resolve, reject) => {
      const timer: Timer = {
        at: this.#now + ms,
        resolve: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        },
      };
      const onAbort = () => {
        this.#timers.delete(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#timers.add(timer);
    });
  }

  every(ms: number, tick: () => void): () => void {
    const ticker: Ticker = { next: this.#now + ms, ms, tick };
    this.#tickers.add(ticker);
    return () => this.#tickers.delete(ticker);
  }

  /** Sleeps still waiting for time to pass. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Moves time forward by `ms`, waking every sleep that is due and ticking every `every` as often as it fell due. */
  advance(ms: number): void {
    this.#now += ms;
    for (const ticker of [...this.#tickers]) {
      for (; ticker.next <= this.#now && this.#tickers.has(ticker); ticker.next += ticker.ms) ticker.tick();
    }
    for (const timer of [...this.#timers]) {
      if (timer.at <= this.#now) {
        this.#timers.delete(timer);
        timer.resolve();
      }
    }
  }
}

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

/** The epoch of `wall()`: 2026-01-01T00:00:00Z, ms. */
export const FAKE_WALL_EPOCH_MS = Date.UTC(2026, 0, 1);

/** Lets every callback queued now run: one turn of the event loop (I/O callbacks included). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The one fake clock of the tests: it moves only when a test says so, for retry
 * backoff, deadlines, idle waits, the ticker and the rate limiter without real
 * sleeping. Every `sleep` is recorded in `sleeps`, so a test asserts exactly what was
 * slept. A sleep of at most `instantUpToMs` passes at once (the clock jumps ahead by
 * it, and the waiter is woken on the next turn of the event loop, so I/O still runs);
 * a longer one (an answer deadline, say) waits for `advance`, `advanceSettling` or
 * `runUntil`. An `every` ticks only when the test moves time (`advance` and the rest),
 * never on an instant sleep's jump.
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

  /** Wall time: `FAKE_WALL_EPOCH_MS` (2026-01-01) plus the fake time elapsed. */
  wall(): number {
    return FAKE_WALL_EPOCH_MS + this.#now;
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

  /** The sum of every sleep so far, ms: what a run waited in all. */
  get slept(): number {
    return this.sleeps.reduce((sum, ms) => sum + ms, 0);
  }

  /**
   * Moves time forward by `ms`, in order: each sleep that falls due is woken and each
   * `every` ticked as often as it fell due, the clock reading the moment of each as it
   * fires. A woken sleeper runs after this returns (a promise resumes later), and sees
   * the time at the end of the advance; `advanceSettling` lets each run at its moment.
   */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (let due = this.#nextDue(target); due !== undefined; due = this.#nextDue(target)) this.#fire(due);
    this.#now = target;
  }

  /**
   * `advance`, but a turn of the event loop after each sleep woken, so its sleeper runs
   * (and may sleep again) at the moment it was due, before time moves on.
   */
  async advanceSettling(ms: number): Promise<void> {
    const target = this.#now + ms;
    await settle();
    for (let due = this.#nextDue(target); due !== undefined; due = this.#nextDue(target)) {
      this.#fire(due);
      if ("resolve" in due) await settle();
    }
    this.#now = target;
  }

  /**
   * Moves time from one pending sleep to the next (`advanceSettling`) until `promise`
   * settles; resolves with the fake milliseconds that took.
   * @throws Error when nothing is left to wait for and `promise` is still pending (a deadlock).
   */
  async runUntil(promise: Promise<unknown>): Promise<number> {
    const start = this.#now;
    let done = false;
    const finished = promise.then(
      () => void (done = true),
      () => void (done = true),
    );
    await settle();
    while (!done) {
      const next = this.#nextTimer();
      if (next === undefined) throw new Error("deadlock: nothing left to wait for");
      await this.advanceSettling(next.at - this.#now);
    }
    await finished;
    return this.#now - start;
  }

  /**
   * Lets fake time run `speed` times as fast as real time, `stepMs` at a time (default
   * 250, the ticker's beat), until the returned function is called. For end-to-end runs
   * against real sockets, whose bytes arrive in real time: the ticker, rescues, hedges,
   * backoffs and Retry-After pauses all pass at fake time's pace and every sleep is
   * still recorded. Give such a run a long `timeout` (its answer deadlines flow too) and
   * no `instantUpToMs` (an instant sleep would jump time past the deadlines).
   */
  flow(options: { speed: number; stepMs?: number }): () => void {
    const stepMs = options.stepMs ?? 250;
    const timer = setInterval(() => this.advance(stepMs), stepMs / options.speed);
    return () => clearInterval(timer);
  }

  /** The earliest sleep or tick due by `target`: timers first on a tie, as they were set before the tick that would see them. */
  #nextDue(target: number): Timer | Ticker | undefined {
    const timer = this.#nextTimer();
    let ticker: Ticker | undefined;
    for (const candidate of this.#tickers) if (ticker === undefined || candidate.next < ticker.next) ticker = candidate;
    const timerAt = timer?.at ?? Number.POSITIVE_INFINITY;
    const tickerAt = ticker?.next ?? Number.POSITIVE_INFINITY;
    if (Math.min(timerAt, tickerAt) > target) return undefined;
    return timerAt <= tickerAt ? timer : ticker;
  }

  #nextTimer(): Timer | undefined {
    let next: Timer | undefined;
    for (const timer of this.#timers) if (next === undefined || timer.at < next.at) next = timer;
    return next;
  }

  #fire(due: Timer | Ticker): void {
    if ("resolve" in due) {
      this.#now = Math.max(this.#now, due.at);
      this.#timers.delete(due);
      due.resolve();
      return;
    }
    this.#now = Math.max(this.#now, due.next);
    due.next += due.ms;
    due.tick();
  }
}

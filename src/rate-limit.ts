/**
 * `--limit-rate`: one token bucket shared by every connection of every file, so the
 * cap is on the total, however many workers there are.
 */
import type { Clock } from "./clock.js";

/** The bucket never holds less than this, so a slow cap still lets a whole read through. */
const MIN_CAPACITY_BYTES = 16 * 1024;

interface Waiter {
  bytes: number;
  /** True once its bytes are subtracted from the bucket: it is at the head of the queue. */
  charged: boolean;
  resolve(): void;
  reject(reason: unknown): void;
  signal: AbortSignal | undefined;
  onAbort(): void;
}

/**
 * A token bucket that lets balances go negative (debt): a taker subtracts its bytes
 * and then waits until the balance is back to zero, so a read larger than the bucket
 * is paced rather than refused. Takers are served one at a time in arrival order,
 * so no connection starves another. The bucket holds about 1/8 s of rate: a burst
 * after an idle moment stays small, which keeps the cap true over short intervals.
 */
export class RateLimiter {
  readonly #bytesPerSecond: number;
  readonly #capacity: number;
  readonly #clock: Pick<Clock, "now" | "sleep">;
  readonly #queue: Waiter[] = [];
  /** Starts empty, so the total over any interval since creation is at most rate × time + capacity. */
  #tokens = 0;
  #updatedAtMs: number;
  #draining = false;
  /** Cuts the current sleep short when the waiter it is for goes away. */
  #wake: AbortController | undefined;

  /** @param clock the download's (or the batch's): the bucket fills and its waiters sleep on it. */
  constructor(bytesPerSecond: number, clock: Pick<Clock, "now" | "sleep">) {
    if (!(bytesPerSecond > 0) || !Number.isFinite(bytesPerSecond)) {
      throw new RangeError(`rate limit must be a positive number of bytes per second, got ${bytesPerSecond}`);
    }
    this.#bytesPerSecond = bytesPerSecond;
    this.#capacity = Math.max(MIN_CAPACITY_BYTES, bytesPerSecond / 8);
    this.#clock = clock;
    this.#updatedAtMs = clock.now();
  }

  /** Resolves when `bytes` may be transferred; rejects with `signal.reason` if it aborts first. */
  take(bytes: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    // A NaN or infinite charge would leave the bucket unable to ever pay it back.
    if (!Number.isFinite(bytes)) return Promise.reject(new RangeError(`cannot take ${bytes} bytes`));
    if (bytes <= 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        charged: false,
        resolve: () => {
          signal?.removeEventListener("abort", waiter.onAbort);
          resolve();
        },
        reject,
        signal,
        onAbort: () => this.#abandon(waiter),
      };
      signal?.addEventListener("abort", waiter.onAbort, { once: true });
      this.#queue.push(waiter);
      if (!this.#draining) void this.#drain();
    });
  }

  #refill(): void {
    const now = this.#clock.now();
    const earned = ((now - this.#updatedAtMs) * this.#bytesPerSecond) / 1000;
    this.#tokens = Math.min(this.#capacity, this.#tokens + earned);
    this.#updatedAtMs = now;
  }

  /** Serves the queue head by head; runs until the queue is empty. */
  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      for (let head = this.#queue[0]; head !== undefined; head = this.#queue[0]) {
        this.#refill();
        if (!head.charged) {
          this.#tokens -= head.bytes;
          head.charged = true;
        }
        // Half a byte of slack absorbs floating-point residue after an exact sleep.
        if (this.#tokens > -0.5) {
          this.#queue.shift();
          head.resolve();
          continue;
        }
        const waitMs = Math.ceil((-this.#tokens * 1000) / this.#bytesPerSecond);
        this.#wake = new AbortController();
        await this.#clock.sleep(waitMs, this.#wake.signal).catch(() => {
          // Woken early because the head was abandoned; the loop looks at the new head.
        });
        this.#wake = undefined;
      }
    } finally {
      this.#draining = false;
    }
  }

  /** A waiter's signal aborted: it leaves the queue, and gives back bytes it never used. */
  #abandon(waiter: Waiter): void {
    const index = this.#queue.indexOf(waiter);
    if (index === -1) return;
    this.#queue.splice(index, 1);
    if (waiter.charged) {
      this.#tokens += waiter.bytes;
      this.#wake?.abort();
    }
    waiter.reject(waiter.signal?.reason);
  }
}

/**
 * The retry policy and the one retry loop. What is worth another attempt and how long
 * to wait are pure (`isRetryableFailure`, `retryDelay`); `withRetries` is the loop the
 * probe, every range and the single stream share, with its clock passed in.
 */
import type { Clock } from "./clock.js";
import { HttpStatusError, IntegrityError, NetworkError } from "./errors.js";
import { parseHttpDate } from "./http-headers.js";

/**
 * Statuses that describe a passing condition rather than a wrong request:
 * 408 Request Timeout (RFC 9110 15.5.9), 429 Too Many Requests (RFC 6585 4),
 * 500, 502, 503, 504 (RFC 9110 15.6). Other 4xx will fail the same way again.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** A server asking for a longer pause is waited for only this long (5 minutes). */
export const MAX_RETRY_AFTER_MS = 300_000;

const BACKOFF_BASE_MS = 500;
const BACKOFF_CAP_MS = 30_000;

/**
 * The delay a `Retry-After` value asks for, in milliseconds, capped at
 * MAX_RETRY_AFTER_MS. RFC 9110 10.2.3: Retry-After = HTTP-date / delay-seconds,
 * where delay-seconds = 1*DIGIT. A date already past means "now".
 */
export function parseRetryAfter(value: string | null | undefined, nowMs: number): number | undefined {
  const text = value?.trim() ?? "";
  if (/^[0-9]+$/.test(text)) {
    // Number() of a long digit string is a huge or infinite number; the cap handles both.
    return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  }
  const dateMs = parseHttpDate(text, nowMs);
  if (dateMs === undefined) return undefined;
  return Math.min(Math.max(dateMs - nowMs, 0), MAX_RETRY_AFTER_MS);
}

/**
 * How long to wait before retry number `attempt` (1-based). The server's Retry-After
 * wins; otherwise exponential backoff with full jitter (a uniformly random delay up
 * to the backoff), which spreads the retries of many connections that failed together
 * instead of having them hammer the server in lockstep.
 */
export function retryDelay(attempt: number, retryAfterMs: number | undefined, random: () => number = Math.random): number {
  if (retryAfterMs !== undefined) return Math.min(Math.max(retryAfterMs, 0), MAX_RETRY_AFTER_MS);
  const backoff = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.max(attempt - 1, 0));
  return random() * backoff;
}

/**
 * Whether a failed attempt is worth another: network trouble (but not TLS trust: a
 * certificate does not become trusted by asking again), a retryable status, and a
 * wrong range from the server (a broken cache node may answer right the next time).
 */
export function isRetryableFailure(error: unknown): boolean {
  if (error instanceof NetworkError) return error.code !== "ERR_TLS";
  if (error instanceof HttpStatusError) return isRetryableStatus(error.status) && error.code === "ERR_HTTP_STATUS";
  return error instanceof IntegrityError && error.code === "ERR_BAD_RANGE";
}

/** What one retry loop says before it waits (see `withRetries`). */
export interface RetryNotice {
  error: unknown;
  delayMs: number;
  attempt: number;
}

/** What one retry loop needs: its budget, its clock, and when to stop waiting. */
export interface RetryLoop {
  /** Attempts in a row without progress before the last failure is thrown (at least 1 attempt). */
  retries: number;
  clock: Pick<Clock, "sleep">;
  /** Aborts the loop, including a backoff in progress (the sleep rejects with its reason). */
  signal: AbortSignal;
  /** Called before each backoff with the failure, the delay and the attempt that failed, to count and report the retry. */
  onRetry?: (retry: RetryNotice) => void;
  /**
   * How far the work has come (bytes accepted). A failed attempt that moved it counts
   * as the first failure of a new run, so a long range on a flaky link is not given up
   * while it keeps advancing. Without it every failure counts.
   */
  progress?: () => number;
  /**
   * A failure that says nothing about this work (a host's connection limit reached
   * while its other connections deliver): retried after the usual delay, without
   * counting as a failed attempt. Whatever bounds it is the caller's.
   */
  uncounted?: (error: unknown) => boolean;
}

/**
 * Runs `attempt` until it resolves. A failure that `isRetryableFailure` accepts is
 * retried after `retryDelay` (the server's Retry-After wins); the loop gives up with
 * that failure after `retries` failures in a row without progress; an `uncounted`
 * failure is retried without counting. Anything else, and any failure once `signal`
 * has aborted, is thrown at once.
 */
export async function withRetries<T>(loop: RetryLoop, attempt: (attemptNumber: number) => Promise<T>): Promise<T> {
  let failuresWithoutProgress = 0;
  for (let attemptNumber = 1; ; attemptNumber++) {
    const before = loop.progress?.();
    try {
      return await attempt(attemptNumber);
    } catch (error) {
      if (loop.signal.aborted) throw error;
      const counted = loop.uncounted?.(error) !== true;
      if (counted) {
        if (!isRetryableFailure(error)) throw error;
        const progressed = loop.progress !== undefined && loop.progress() !== before;
        failuresWithoutProgress = progressed ? 1 : failuresWithoutProgress + 1;
        if (failuresWithoutProgress >= Math.max(1, loop.retries)) throw error;
      }
      const status = error instanceof HttpStatusError ? error : error instanceof Error ? error.cause : undefined;
      const retryAfterMs = status instanceof HttpStatusError ? status.retryAfterMs : undefined;
      const delayMs = retryDelay(Math.max(1, failuresWithoutProgress), retryAfterMs);
      loop.onRetry?.({ error, delayMs, attempt: attemptNumber });
      await loop.clock.sleep(delayMs, loop.signal);
    }
  }
}

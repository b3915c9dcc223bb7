/**
 * Pure retry policy: which statuses are worth another attempt, and how long to wait
 * before it. The caller owns the clock and the attempt count.
 */
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

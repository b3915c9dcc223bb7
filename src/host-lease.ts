/**
 * The host-lease layer of the request path: every request holds one of its host's
 * connections (host-limits.ts) while it runs, and every request teaches the run what
 * the host allows. A worker keeps its lease from range to range, so its next request
 * goes on the socket the last one freed and the host never sees one more than allowed.
 */
import { HostLimitRefusal, HttpStatusError, NetworkError } from "./errors.js";
import { hostKey, type HostLease, type HostLimits } from "./host-limits.js";
import { STOP, type BodyHandler } from "./http.js";

/** A connection a caller keeps across its requests (a worker, range after range), if it holds one now. */
export interface HeldConnection {
  lease: HostLease | undefined;
}

/**
 * Runs `send` (the inner layers) holding one of `url`'s host connections. With `held`,
 * the lease is kept there after an answer read to its end; after a failure or a body
 * cut short (no socket left to reuse) it is given back, as it always is without `held`
 * once the request is over. A 2xx answer tells the lease the host is delivering. A
 * refusal before any answer (`429`, `503`, a refused or reset connect) while other
 * connections to the host deliver lowers the host's limit (DESIGN, "Retries").
 * @throws HostLimitRefusal for that refusal (not a failed attempt of the caller's);
 *   else what `send` threw; the signal's reason while waiting for a lease
 */
export async function holdingHostConnection(
  hostLimits: HostLimits,
  url: string,
  held: HeldConnection | undefined,
  signal: AbortSignal,
  handler: BodyHandler,
  send: (handler: BodyHandler) => Promise<void>,
): Promise<void> {
  const host = hostKey(url);
  if (held?.lease !== undefined && held.lease.host !== host) {
    held.lease.release();
    held.lease = undefined;
  }
  const lease = held?.lease ?? (await hostLimits.acquire(host, signal));
  if (held) held.lease = lease;
  let answered = false;
  let cut = false;
  let ended = false;
  try {
    await send({
      onHeaders(status, headers, answeredBy) {
        answered = true;
        if (status >= 200 && status < 300) lease.answered();
        const next = handler.onHeaders(status, headers, answeredBy);
        if (next === STOP) cut = true;
        return next;
      },
      onData(chunk) {
        const next = handler.onData(chunk);
        if (next === STOP) cut = true;
        return next;
      },
    });
    ended = true;
  } catch (error) {
    if (!answered && refusedByHost(error)) {
      const outcome = hostLimits.refused(lease);
      if (outcome.kind === "host-limit") throw new HostLimitRefusal(error as Error, outcome.limit);
    }
    throw error;
  } finally {
    if (held === undefined || !ended || cut) {
      lease.release();
      if (held) held.lease = undefined;
    }
  }
}

/** Connect refusals and resets that a host answers with when it is at its limit (codes as Node reports them). */
const REFUSAL_CODES = new Set(["ECONNREFUSED", "ECONNRESET"]);

/** A `429`/`503` or a refused or reset connect: what a host at its connection limit answers (DESIGN, "Retries"). */
function refusedByHost(error: unknown): boolean {
  if (error instanceof HttpStatusError) return error.status === 429 || error.status === 503;
  if (!(error instanceof NetworkError)) return false;
  for (let cause: unknown = error.cause, depth = 0; cause instanceof Error && depth < 4; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code !== undefined && REFUSAL_CODES.has(code)) return true;
    cause = cause.cause;
  }
  return false;
}

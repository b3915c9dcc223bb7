/**
 * Pure policies for the tail of a download, so that no connection is stuck at 99%:
 * the rescue of a connection far slower than its peers, and the endgame hedge of the
 * range that would finish last. Both read rates from the one RateSampler; neither
 * does I/O or reads a clock.
 */
import { remaining, type Assignment, type RangePlanner } from "./ranges.js";
import { median, RATE_WINDOW_MS, type RateSampler } from "./rates.js";

/** Far below: under this fraction of the median of the other connections. */
export const SLOW_FRACTION = 1 / 8;
/** For this many checks in a row (one a second), so a hiccup is not a straggler. */
export const SLOW_CHECKS = 3;
/** After this many rescues a range is left to finish where it is. */
export const MAX_RESCUES = 3;
/** What a fresh connection costs before its first byte (connect, slow start), seconds. */
export const RECONNECT_SECONDS = 1;
/** Hedging a range that ends within this long is not worth a connection. */
export const HEDGE_MIN_SECONDS = 1;
/** A rest smaller than `minSplit` is hedged only when it would take longer than this, seconds. */
export const HEDGE_SMALL_REST_SECONDS = 3;
/** Below twice this, a hedge races for the whole rest rather than its back half. */
export const HEDGE_MIN_BYTES = 64 * 1024;

/**
 * The ranges to rescue, checked about once a second: far below the median of the
 * others for SLOW_CHECKS checks in a row, measured over a whole rate window, with
 * enough left that a fresh connection at the median rate would finish first. A
 * uniformly slow network has no such range. `slowChecks` carries the count of slow
 * checks per range id from one check to the next.
 */
export function findStragglers(
  inFlight: readonly Assignment[],
  rates: RateSampler,
  slowChecks: Map<number, number>,
): Assignment[] {
  const live = new Set(inFlight.map((assignment) => assignment.id));
  for (const id of slowChecks.keys()) if (!live.has(id)) slowChecks.delete(id);
  const stragglers: Assignment[] = [];
  for (const assignment of inFlight) {
    const measured = rates.recentRate(assignment);
    if (measured === undefined) continue;
    const rate = measured.bytesPerSecond;
    const typical = median(
      inFlight.flatMap((other) => {
        const peer = other === assignment ? undefined : rates.recentRate(other);
        return peer === undefined ? [] : [peer.bytesPerSecond];
      }),
    );
    const left = remaining(assignment);
    const slow =
      typical !== undefined &&
      typical > 0 &&
      rate < typical * SLOW_FRACTION &&
      left / typical + RECONNECT_SECONDS < left / Math.max(rate, 1e-9);
    const count = slow ? (slowChecks.get(assignment.id) ?? 0) + 1 : 0;
    slowChecks.set(assignment.id, count);
    const eligible =
      measured.spanMs >= RATE_WINDOW_MS * 0.9 &&
      assignment.rescues < MAX_RESCUES &&
      assignment.hedge === undefined &&
      assignment.hedgeOf === undefined &&
      left > 0;
    if (eligible && count >= SLOW_CHECKS) {
      slowChecks.set(assignment.id, 0);
      stragglers.push(assignment);
    }
  }
  return stragglers;
}

/**
 * For an idle connection in the endgame: the in-flight range that will finish last at
 * its rate, if it ends more than HEDGE_MIN_SECONDS away, and, when less than `minSplit`
 * is left, more than HEDGE_SMALL_REST_SECONDS away: a small rest that ends soon is noise
 * beside what a hedge costs (its request, and the bytes in flight when the loser is
 * cut: hedges on a 7 MB file once cost 15% more bytes), hedged so that both parts end
 * about together: the victim keeps the share it can finish at its own rate, the hedge
 * takes the rest at what the other connections have been doing. Registers the hedge
 * with the planner and returns it; undefined when nothing is worth racing.
 */
export function pickHedge(planner: RangePlanner, rates: RateSampler, nowMs: number): Assignment | undefined {
  let victim: Assignment | undefined;
  let victimRate = 0;
  let victimSeconds = HEDGE_MIN_SECONDS;
  for (const assignment of planner.inFlight) {
    if (assignment.hedge || assignment.hedgeOf || remaining(assignment) <= 0) continue;
    const rate = rates.requestRate(assignment, nowMs);
    if (rate === undefined) continue;
    const seconds = rate > 0 ? remaining(assignment) / rate : Number.POSITIVE_INFINITY;
    if (remaining(assignment) < planner.minSplit && seconds <= HEDGE_SMALL_REST_SECONDS) continue;
    if (seconds > victimSeconds) {
      victim = assignment;
      victimRate = rate;
      victimSeconds = seconds;
    }
  }
  if (!victim) return undefined;
  const typical = rates.typical(planner.inFlight, victim, nowMs);
  const share = typical !== undefined ? victimRate / (victimRate + typical) : 0.5;
  return planner.hedge(victim, HEDGE_MIN_BYTES, share);
}

/**
 * Pure: notices connections far slower than their peers. Fed the in-flight ranges
 * about once a second; no clock, no I/O.
 */
import { remaining, type Assignment } from "./ranges.js";

/** Far below: under this fraction of the median of the other connections. */
export const SLOW_FRACTION = 1 / 8;
/** For this many checks in a row, so a hiccup is not a straggler. */
export const SLOW_CHECKS = 3;
/** After this many rescues a range is left to finish where it is. */
export const MAX_RESCUES = 3;
/** What a fresh connection costs before its first byte (connect, slow start), seconds. */
export const RECONNECT_SECONDS = 1;
/** Rates are averaged over this many checks. */
const HISTORY = 3;

interface Track {
  lastNext: number;
  /** Recent rates, bytes per second, newest last. */
  rates: number[];
  slowChecks: number;
}

export class PaceTracker {
  readonly #tracks = new Map<number, Track>();

  /**
   * Records each range's progress over the last `elapsedSeconds` and returns the
   * ranges to rescue: far below the median of the others for SLOW_CHECKS checks in
   * a row, with enough left that a fresh connection at the median rate would finish
   * first. A uniformly slow network has no such range.
   */
  check(inFlight: readonly Assignment[], elapsedSeconds: number): Assignment[] {
    const live = new Set<number>();
    for (const assignment of inFlight) {
      live.add(assignment.id);
      const track = this.#tracks.get(assignment.id);
      if (!track) {
        this.#tracks.set(assignment.id, { lastNext: assignment.next, rates: [], slowChecks: 0 });
        continue;
      }
      track.rates.push(Math.max(0, assignment.next - track.lastNext) / Math.max(elapsedSeconds, 1e-3));
      if (track.rates.length > HISTORY) track.rates.shift();
      track.lastNext = assignment.next;
    }
    for (const id of this.#tracks.keys()) if (!live.has(id)) this.#tracks.delete(id);

    const stragglers: Assignment[] = [];
    for (const assignment of inFlight) {
      const track = this.#tracks.get(assignment.id);
      const rate = this.rateOf(assignment);
      if (!track || rate === undefined) continue;
      const peers = inFlight.flatMap((other) => {
        const peerRate = other === assignment ? undefined : this.rateOf(other);
        return peerRate === undefined ? [] : [peerRate];
      });
      const typical = median(peers);
      const left = remaining(assignment);
      const slow =
        typical !== undefined &&
        typical > 0 &&
        rate < typical * SLOW_FRACTION &&
        left / typical + RECONNECT_SECONDS < left / Math.max(rate, 1e-9);
      track.slowChecks = slow ? track.slowChecks + 1 : 0;
      const eligible =
        track.rates.length >= HISTORY &&
        assignment.rescues < MAX_RESCUES &&
        assignment.hedge === undefined &&
        assignment.hedgeOf === undefined &&
        left > 0;
      if (eligible && track.slowChecks >= SLOW_CHECKS) {
        track.slowChecks = 0;
        stragglers.push(assignment);
      }
    }
    return stragglers;
  }

  /** Mean rate over the recent checks, bytes per second; undefined until measured. */
  rateOf(assignment: Assignment): number | undefined {
    const rates = this.#tracks.get(assignment.id)?.rates;
    if (!rates || rates.length === 0) return undefined;
    return rates.reduce((sum, rate) => sum + rate, 0) / rates.length;
  }

}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

/** A rate measured over less than this is too noisy to plan with. */
const MIN_MEASURE_MS = 250;
/** Rates of this many finished ranges are remembered. */
const FINISHED_KEPT = 8;

/**
 * Per-range throughput since its current request started (connect and first byte
 * included: what a fresh connection pays too), and the rates of recently finished
 * ranges. The endgame plans with it: in the endgame the slowest range is often the
 * only one left in flight, so the once-a-second pace check has no peers and no
 * history yet. Times are passed in, so it stays free of clocks.
 */
export class RangeRates {
  readonly #since = new Map<number, { ms: number; next: number }>();
  readonly #finished: number[] = [];

  started(assignment: Assignment, nowMs: number): void {
    this.#since.set(assignment.id, { ms: nowMs, next: assignment.next });
  }

  /** The range is released: its rate joins the recent ones. */
  finished(assignment: Assignment, nowMs: number): void {
    const rate = this.rateOf(assignment, nowMs);
    this.#since.delete(assignment.id);
    if (rate === undefined || rate === 0) return;
    this.#finished.push(rate);
    if (this.#finished.length > FINISHED_KEPT) this.#finished.shift();
  }

  /** Bytes per second since the range's request started; undefined when too recent. */
  rateOf(assignment: Assignment, nowMs: number): number | undefined {
    const since = this.#since.get(assignment.id);
    if (!since || nowMs - since.ms < MIN_MEASURE_MS) return undefined;
    return ((assignment.next - since.next) * 1000) / (nowMs - since.ms);
  }

  /** What a connection other than `except` does: the median of the others in flight and the recently finished. */
  typical(inFlight: readonly Assignment[], except: Assignment, nowMs: number): number | undefined {
    const others = inFlight.flatMap((other) => {
      const rate = other === except ? undefined : this.rateOf(other, nowMs);
      return rate === undefined || rate === 0 ? [] : [rate];
    });
    return median([...others, ...this.#finished]);
  }
}

/**
 * The rate sampler of a transfer, one per transfer (the parallel path's, or the single
 * stream's when the file comes as one stream) and one mechanism for every rate, as
 * aria2's PeerStat serves both its speed display and its slow-segment check: fed the
 * ranges in flight a few times a second, it answers the progress display (bytes per
 * second overall), the rescue check (each range's rate over the last few seconds) and
 * the endgame hedge (each range's rate since its request started, and what finished
 * ranges did). Times are passed in; no clock, no I/O.
 */
import type { Assignment } from "./ranges.js";

/** Rates for display and for the rescue check are taken over this much history. */
export const RATE_WINDOW_MS = 3000;
/** A rate measured over less than this is too noisy to plan with. */
const MIN_MEASURE_MS = 250;
/** Rates of this many finished ranges are remembered. */
const FINISHED_KEPT = 8;

interface Sample {
  ms: number;
  /** Bytes: a range's `next`, or the download's bytes done. */
  at: number;
}

/** A rate in bytes per second, and how much history it was measured over. */
export interface MeasuredRate {
  bytesPerSecond: number;
  spanMs: number;
}

export class RateSampler {
  readonly #requestStarts = new Map<number, Sample>();
  readonly #history = new Map<number, Sample[]>();
  readonly #total: Sample[] = [];
  readonly #finished: number[] = [];

  /** A request for `assignment` starts now: its request rate is measured from here. */
  started(assignment: Assignment, nowMs: number): void {
    this.#requestStarts.set(assignment.id, { ms: nowMs, at: assignment.next });
  }

  /** The range is released: its request rate joins the recent finished ones. */
  finished(assignment: Assignment, nowMs: number): void {
    const rate = this.requestRate(assignment, nowMs);
    this.#requestStarts.delete(assignment.id);
    this.#history.delete(assignment.id);
    if (rate === undefined || rate === 0) return;
    this.#finished.push(rate);
    if (this.#finished.length > FINISHED_KEPT) this.#finished.shift();
  }

  /** Records where every range in flight and the whole download (`bytesDone`) stand at `nowMs`. */
  sample(nowMs: number, inFlight: readonly Assignment[], bytesDone: number): void {
    const live = new Set<number>();
    for (const assignment of inFlight) {
      live.add(assignment.id);
      let history = this.#history.get(assignment.id);
      if (!history) this.#history.set(assignment.id, (history = []));
      record(history, { ms: nowMs, at: assignment.next });
    }
    for (const id of this.#history.keys()) if (!live.has(id)) this.#history.delete(id);
    record(this.#total, { ms: nowMs, at: bytesDone });
  }

  /** The whole download's bytes per second over the last RATE_WINDOW_MS (0 before two samples). */
  bytesPerSecond(): number {
    return rateOver(this.#total)?.bytesPerSecond ?? 0;
  }

  /** The range's rate over its sampled history (at most RATE_WINDOW_MS); undefined before two samples. */
  recentRate(assignment: Assignment): MeasuredRate | undefined {
    const history = this.#history.get(assignment.id);
    return history ? rateOver(history) : undefined;
  }

  /**
   * Bytes per second since the range's current request started (connect and first
   * byte included: what a fresh connection pays too); undefined when too recent.
   */
  requestRate(assignment: Assignment, nowMs: number): number | undefined {
    const since = this.#requestStarts.get(assignment.id);
    if (!since || nowMs - since.ms < MIN_MEASURE_MS) return undefined;
    return ((assignment.next - since.at) * 1000) / (nowMs - since.ms);
  }

  /** What a connection other than `except` does: the median request rate of the others in flight and the recently finished. */
  typical(inFlight: readonly Assignment[], except: Assignment, nowMs: number): number | undefined {
    const others = inFlight.flatMap((other) => {
      const rate = other === except ? undefined : this.requestRate(other, nowMs);
      return rate === undefined || rate === 0 ? [] : [rate];
    });
    return median([...others, ...this.#finished]);
  }
}

/** Appends `sample`, keeping the newest one at least RATE_WINDOW_MS old as the window's start. */
function record(history: Sample[], sample: Sample): void {
  history.push(sample);
  while (history.length > 2 && (history[1]?.ms ?? 0) <= sample.ms - RATE_WINDOW_MS) history.shift();
}

function rateOver(history: readonly Sample[]): MeasuredRate | undefined {
  const first = history[0];
  const last = history.at(-1);
  if (!first || !last || last.ms <= first.ms) return undefined;
  const spanMs = last.ms - first.ms;
  return { bytesPerSecond: (Math.max(0, last.at - first.at) * 1000) / spanMs, spanMs };
}

export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle] : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2;
}

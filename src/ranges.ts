/**
 * Pure planning: which bytes are done, which are still to fetch, and who fetches
 * what. No I/O and no clock; the download loop asks, this module answers.
 * Every interval is `[start, endInclusive]`, as in HTTP's `Range: bytes=a-b`.
 */
export type Interval = readonly [start: number, end: number];

/** A sorted set of disjoint, non-adjacent byte intervals: the record of what is done. */
export class IntervalSet {
  #intervals: [number, number][] = [];

  static from(intervals: Iterable<Interval>): IntervalSet {
    const set = new IntervalSet();
    for (const [start, end] of intervals) set.add(start, end);
    return set;
  }

  /** Adds `[start, end]`, merging with overlapping or adjacent intervals. */
  add(start: number, end: number): void {
    if (end < start) return;
    const list = this.#intervals;
    // First interval that could touch [start, end]: its end is at least start - 1.
    let low = 0;
    let high = list.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (list[mid]![1] < start - 1) low = mid + 1;
      else high = mid;
    }
    let last = low;
    let mergedStart = start;
    let mergedEnd = end;
    while (last < list.length && list[last]![0] <= end + 1) {
      mergedStart = Math.min(mergedStart, list[last]![0]);
      mergedEnd = Math.max(mergedEnd, list[last]![1]);
      last++;
    }
    list.splice(low, last - low, [mergedStart, mergedEnd]);
  }

  /** True when every byte of `[start, end]` is in the set. */
  covers(start: number, end: number): boolean {
    return this.#intervals.some(([a, b]) => a <= start && end <= b);
  }

  /** Number of bytes in the set. */
  get bytes(): number {
    let total = 0;
    for (const [start, end] of this.#intervals) total += end - start + 1;
    return total;
  }

  /** The bytes of `[0, size)` not in the set. */
  missing(size: number): Interval[] {
    const gaps: Interval[] = [];
    let next = 0;
    for (const [start, end] of this.#intervals) {
      if (start >= size) break;
      if (start > next) gaps.push([next, start - 1]);
      next = Math.max(next, end + 1);
    }
    if (next < size) gaps.push([next, size - 1]);
    return gaps;
  }

  toArray(): Interval[] {
    return this.#intervals.map(([start, end]) => [start, end] as const);
  }

  clone(): IntervalSet {
    const copy = new IntervalSet();
    copy.#intervals = this.#intervals.map(([start, end]) => [start, end]);
    return copy;
  }
}

/**
 * Splits the missing intervals into at most about `connections` ranges of equal
 * size, none smaller than `minSplit` unless the interval itself is.
 */
export function splitMissing(missing: readonly Interval[], connections: number, minSplit: number): Interval[] {
  const total = missing.reduce((sum, [start, end]) => sum + (end - start + 1), 0);
  if (total === 0) return [];
  const target = Math.max(minSplit, Math.ceil(total / connections));
  const ranges: Interval[] = [];
  for (const [start, end] of missing) {
    const length = end - start + 1;
    const pieces = Math.max(1, Math.floor(length / target));
    const pieceLength = Math.floor(length / pieces);
    let pieceStart = start;
    for (let piece = 0; piece < pieces; piece++) {
      // The last piece takes the remainder so no byte is left out.
      const pieceEnd = piece === pieces - 1 ? end : pieceStart + pieceLength - 1;
      ranges.push([pieceStart, pieceEnd]);
      pieceStart = pieceEnd + 1;
    }
  }
  return ranges;
}

/**
 * A range being fetched. The owner reads `end` before accepting each chunk: a steal
 * lowers it, and the owner stops there. `next` is the first byte not yet accepted.
 */
export interface Assignment {
  readonly id: number;
  readonly start: number;
  end: number;
  next: number;
}

/**
 * Hands out ranges to workers. Unassigned ranges go first, in file order; when none
 * are left, a worker steals the back half of the in-flight range with the most bytes
 * remaining, if that leaves both halves at least `minSplit` long.
 */
export class RangePlanner {
  readonly #unassigned: Interval[];
  readonly #inFlight = new Map<number, Assignment>();
  readonly #minSplit: number;
  #nextId = 0;

  constructor(missing: readonly Interval[], connections: number, minSplit: number) {
    this.#minSplit = minSplit;
    this.#unassigned = splitMissing(missing, connections, minSplit);
  }

  /** Registers a range that is already being fetched (the probe's). */
  adopt(start: number, end: number): Assignment {
    const assignment: Assignment = { id: this.#nextId++, start, end, next: start };
    this.#inFlight.set(assignment.id, assignment);
    return assignment;
  }

  /** The next range for an idle worker, or undefined when nothing is left to hand out. */
  next(): Assignment | undefined {
    const queued = this.#unassigned.shift();
    if (queued) return this.adopt(queued[0], queued[1]);
    return this.splitLargestInFlight();
  }

  /** Steals the back half of the in-flight range with the most bytes left. */
  splitLargestInFlight(): Assignment | undefined {
    let victim: Assignment | undefined;
    for (const assignment of this.#inFlight.values()) {
      if (!victim || remaining(assignment) > remaining(victim)) victim = assignment;
    }
    if (!victim || remaining(victim) < 2 * this.#minSplit) return undefined;
    const oldEnd = victim.end;
    const splitAt = victim.next + Math.ceil(remaining(victim) / 2);
    victim.end = splitAt - 1;
    return this.adopt(splitAt, oldEnd);
  }

  /**
   * The worker is done with this assignment. Bytes it did not accept (it failed, or
   * was rescued) return to the queue for someone else.
   */
  release(assignment: Assignment): void {
    this.#inFlight.delete(assignment.id);
    if (assignment.next <= assignment.end) {
      this.#unassigned.push([assignment.next, assignment.end]);
      this.#unassigned.sort((a, b) => a[0] - b[0]);
    }
  }

  get inFlight(): readonly Assignment[] {
    return [...this.#inFlight.values()];
  }

  get unassigned(): readonly Interval[] {
    return this.#unassigned;
  }
}

function remaining(assignment: Assignment): number {
  return assignment.end - assignment.next + 1;
}

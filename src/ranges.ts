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

  /** The intervals, sorted; a copy the caller may keep. */
  toArray(): Interval[] {
    return this.#intervals.map(([start, end]) => [start, end] as const);
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
 * A range being fetched. The owner reads `end` before accepting each chunk: a steal,
 * a rescue or a lost hedge race lowers it, and the owner stops there. `next` is the
 * first byte not yet accepted.
 */
export interface Assignment {
  readonly id: number;
  readonly start: number;
  end: number;
  next: number;
  /** How many times these bytes were moved off a slow connection. */
  readonly rescues: number;
  /** On a range being hedged: the duplicate racing for its back part. */
  hedge?: Assignment | undefined;
  /** On a hedge: the range whose back part it races for. */
  hedgeOf?: Assignment | undefined;
}

interface Queued {
  start: number;
  end: number;
  rescues: number;
}

/** How an ordered stream (`-o -`, `--extract`), a volume without sparse files or `noHedge` narrows what the planner hands out. */
export interface PlannerOptions {
  /** No queued range is handed out longer than this many bytes. Default: no cap. */
  maxRange?: number;
  /** Never split a range in flight (its answer would be cut short): `noHedge`. Default false. */
  noSteal?: boolean;
}

/**
 * Hands out ranges to workers. Queued ranges go first (rescued ones before the rest,
 * then in file order); when none are left, a worker steals the back half of the
 * in-flight range with the most bytes remaining, if that leaves both halves at least
 * `minSplit` long. Rescue and hedging handle the tail that stealing cannot split.
 *
 * For an ordered stream, `limit` keeps every handed-out byte inside the window ahead
 * of the write position: queued bytes at or past it wait, and since steals and hedges
 * only split ranges already in flight, they stay inside it too.
 */
export class RangePlanner {
  readonly #queue: Queued[];
  readonly #inFlight = new Map<number, Assignment>();
  readonly #minSplit: number;
  readonly #maxRange: number;
  readonly #noSteal: boolean;
  #nextId = 0;
  /**
   * Queued bytes at or past this offset are not handed out. A piece cut short by it
   * is handed out only when at least `minSplit` long (or the whole queued rest), so a
   * window that opens a few KiB at a time does not become a flood of tiny requests.
   */
  limit = Number.POSITIVE_INFINITY;

  constructor(missing: readonly Interval[], connections: number, minSplit: number, options: PlannerOptions = {}) {
    this.#minSplit = minSplit;
    this.#maxRange = options.maxRange ?? Number.POSITIVE_INFINITY;
    this.#noSteal = options.noSteal ?? false;
    this.#queue = splitMissing(missing, connections, minSplit).map(([start, end]) => ({ start, end, rescues: 0 }));
  }

  /** Registers a range that is already being fetched (the probe's). */
  adopt(start: number, end: number, rescues = 0): Assignment {
    const assignment: Assignment = { id: this.#nextId++, start, end, next: start, rescues };
    this.#inFlight.set(assignment.id, assignment);
    return assignment;
  }

  /** The next range for an idle worker, or undefined when there is nothing to hand out. */
  next(): Assignment | undefined {
    return this.#fromQueue() ?? this.splitLargestInFlight();
  }

  /** The first queued range (in queue order) with a worthwhile piece below `limit`, cut to `maxRange`. */
  #fromQueue(): Assignment | undefined {
    for (let index = 0; index < this.#queue.length; index++) {
      const queued = this.#queue[index]!;
      const end = Math.min(queued.end, queued.start + this.#maxRange - 1, this.limit - 1);
      if (end < queued.start) continue;
      const whole = end === queued.end;
      if (!whole && end < queued.start + this.#minSplit - 1 && end < queued.start + this.#maxRange - 1) continue;
      if (whole) this.#queue.splice(index, 1);
      const assignment = this.adopt(queued.start, end, queued.rescues);
      queued.start = end + 1;
      return assignment;
    }
    return undefined;
  }

  /** The smallest range worth its own connection, in bytes. */
  get minSplit(): number {
    return this.#minSplit;
  }

  /** Steals the back half of the in-flight range with the most bytes left (never with `noSteal`). */
  splitLargestInFlight(): Assignment | undefined {
    if (this.#noSteal) return undefined;
    let victim: Assignment | undefined;
    for (const assignment of this.#inFlight.values()) {
      if (isHedged(assignment)) continue;
      if (!victim || remaining(assignment) > remaining(victim)) victim = assignment;
    }
    if (!victim || remaining(victim) < 2 * this.#minSplit) return undefined;
    const oldEnd = victim.end;
    const splitAt = victim.next + Math.ceil(remaining(victim) / 2);
    victim.end = splitAt - 1;
    return this.adopt(splitAt, oldEnd, victim.rescues);
  }

  /**
   * Moves the unaccepted rest of a slow range to the front of the queue, for a fresh
   * connection. The owner must be interrupted: its `end` now lies behind it.
   */
  rescue(assignment: Assignment): void {
    if (isHedged(assignment) || remaining(assignment) <= 0) return;
    this.#queue.unshift({ start: assignment.next, end: assignment.end, rescues: assignment.rescues + 1 });
    assignment.end = assignment.next - 1;
  }

  /**
   * Endgame: a duplicate request for the back part of `victim` (all of it when less
   * than `2 * minBytes` is left), which keeps its end. The victim keeps `victimShare`
   * of the rest (half by default; less when it is slower than a fresh connection
   * would be, so both parts end about together), and at least `minBytes`. They race;
   * `settleHedge` decides the winner when the victim reaches the hedge's start.
   */
  hedge(victim: Assignment, minBytes: number, victimShare = 0.5): Assignment | undefined {
    if (isHedged(victim) || remaining(victim) <= 0) return undefined;
    const left = remaining(victim);
    // A small rest is raced for whole; else each side gets at least minBytes.
    let start = victim.next;
    if (left >= 2 * minBytes) {
      const share = Math.min(Math.max(victimShare, 0), 0.5);
      start += Math.min(left - minBytes, Math.max(minBytes, Math.ceil(left * share)));
    }
    const hedge = this.adopt(start, victim.end, victim.rescues);
    hedge.hedgeOf = victim;
    victim.hedge = hedge;
    return hedge;
  }

  /**
   * Called when the hedged range's owner reaches its hedge's start. Whoever wrote
   * into the back half first keeps it; the other stops. Returns the loser (its
   * request is to be interrupted) or undefined when the hedge wins.
   */
  settleHedge(victim: Assignment): Assignment | undefined {
    const hedge = victim.hedge;
    if (!hedge) return undefined;
    victim.hedge = undefined;
    hedge.hedgeOf = undefined;
    if (hedge.next > hedge.start) {
      victim.end = hedge.start - 1;
      return undefined;
    }
    hedge.end = hedge.next - 1;
    return hedge;
  }

  /**
   * The worker is done with this assignment. Bytes it did not accept (it failed) go
   * back to the queue; a hedge race ends with each side keeping what it has. Returns
   * a victim left with nothing to do, still waiting on its connection: interrupt it.
   */
  release(assignment: Assignment): Assignment | undefined {
    this.#inFlight.delete(assignment.id);
    let idle: Assignment | undefined;
    let end = assignment.end;
    const hedge = assignment.hedge;
    const victim = assignment.hedgeOf;
    if (hedge) {
      // The hedge carries on alone with the back half.
      hedge.hedgeOf = undefined;
      assignment.hedge = undefined;
      end = Math.min(end, hedge.start - 1);
    }
    if (victim) {
      // The victim has not reached our start (it would have settled the race), so it
      // keeps its front part and our rest is queued like any other.
      victim.hedge = undefined;
      assignment.hedgeOf = undefined;
      victim.end = Math.min(victim.end, assignment.start - 1);
      if (remaining(victim) <= 0 && this.#inFlight.has(victim.id)) idle = victim;
    }
    if (assignment.next <= end) {
      this.#queue.push({ start: assignment.next, end, rescues: assignment.rescues });
      this.#queue.sort((a, b) => b.rescues - a.rescues || a.start - b.start);
    }
    return idle;
  }

  get inFlight(): readonly Assignment[] {
    return [...this.#inFlight.values()];
  }

  get unassigned(): readonly Interval[] {
    return this.#queue.map(({ start, end }) => [start, end] as const);
  }

  /** True when every byte is accepted: nothing queued, nothing in flight. */
  get finished(): boolean {
    return this.#queue.length === 0 && this.#inFlight.size === 0;
  }
}

export function remaining(assignment: Assignment): number {
  return assignment.end - assignment.next + 1;
}

function isHedged(assignment: Assignment): boolean {
  return assignment.hedge !== undefined || assignment.hedgeOf !== undefined;
}

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { IntervalSet, RangePlanner, splitMissing, type Assignment, type Interval } from "../src/ranges.js";

const MiB = 1024 * 1024;

/** The naive model: one boolean per byte. */
function bytesIn(intervals: readonly Interval[], size: number): boolean[] {
  const bytes = new Array<boolean>(size).fill(false);
  for (const [start, end] of intervals) for (let byte = start; byte <= end && byte < size; byte++) bytes[byte] = true;
  return bytes;
}

function lengthOf([start, end]: Interval): number {
  return end - start + 1;
}

/** Sorted, every interval non-empty, no two overlapping or touching. */
function expectCanonical(intervals: readonly Interval[]): void {
  for (const [start, end] of intervals) expect(start).toBeLessThanOrEqual(end);
  for (let index = 1; index < intervals.length; index++) {
    expect(intervals[index]![0]).toBeGreaterThan(intervals[index - 1]![1] + 1);
  }
}

const smallInterval = (limit: number) =>
  fc
    .tuple(fc.integer({ min: 0, max: limit - 1 }), fc.integer({ min: 0, max: 24 }))
    .map(([start, length]): Interval => [start, Math.min(limit - 1, start + length)]);

describe("IntervalSet.add", () => {
  it.each<[string, Interval[], Interval[]]>([
    ["keeps a single interval", [[0, 9]], [[0, 9]]],
    ["keeps a single byte", [[5, 5]], [[5, 5]]],
    ["merges adjacent intervals", [[0, 4], [5, 9]], [[0, 9]]],
    ["merges adjacent intervals added back to front", [[5, 9], [0, 4]], [[0, 9]]],
    ["keeps a one-byte gap", [[0, 4], [6, 9]], [[0, 4], [6, 9]]],
    ["merges overlapping intervals", [[0, 4], [3, 9]], [[0, 9]]],
    ["absorbs an interval already inside", [[0, 10], [3, 4]], [[0, 10]]],
    ["swallows intervals inside a bigger one", [[3, 4], [6, 7], [0, 10]], [[0, 10]]],
    ["bridges several intervals at once", [[0, 1], [3, 4], [6, 7], [9, 10], [2, 8]], [[0, 10]]],
    ["sorts what arrives out of order", [[30, 40], [0, 5], [10, 20]], [[0, 5], [10, 20], [30, 40]]],
    ["fills a gap between two neighbours", [[10, 20], [0, 5], [30, 40], [6, 9]], [[0, 20], [30, 40]]],
    ["ignores an empty interval", [[0, 4], [9, 8]], [[0, 4]]],
    ["adding the same interval twice changes nothing", [[7, 9], [7, 9]], [[7, 9]]],
    ["handles offsets beyond 4 GiB", [[2 ** 40, 2 ** 40 + 9], [2 ** 40 + 10, 2 ** 41]], [[2 ** 40, 2 ** 41]]],
  ])("%s", (_name, added, expected) => {
    const set = IntervalSet.from(added);
    expect(set.toArray()).toEqual(expected);
  });

  it("keeps intervals sorted, disjoint and non-adjacent, and counts each distinct byte once", () => {
    fc.assert(
      fc.property(fc.array(smallInterval(200), { maxLength: 40 }), (added) => {
        const set = new IntervalSet();
        for (const [start, end] of added) set.add(start, end);
        const intervals = set.toArray();
        expectCanonical(intervals);
        const model = bytesIn(added, 200);
        expect(bytesIn(intervals, 200)).toEqual(model);
        expect(set.bytes).toBe(model.filter(Boolean).length);
      }),
    );
  });

  it("does not depend on the order intervals are added in", () => {
    fc.assert(
      fc.property(
        fc.array(smallInterval(200), { maxLength: 30 }).chain((added) =>
          fc.tuple(fc.constant(added), fc.shuffledSubarray(added, { minLength: added.length, maxLength: added.length })),
        ),
        ([added, shuffled]) => {
          expect(IntervalSet.from(shuffled).toArray()).toEqual(IntervalSet.from(added).toArray());
        },
      ),
    );
  });
});

describe("IntervalSet.missing", () => {
  it.each<[string, Interval[], number, Interval[]]>([
    ["everything is missing from an empty set", [], 10, [[0, 9]]],
    ["nothing is missing from an empty file", [], 0, []],
    ["nothing is missing when all is done", [[0, 9]], 10, []],
    ["a gap at the front", [[5, 9]], 10, [[0, 4]]],
    ["a gap at the back", [[0, 4]], 10, [[5, 9]]],
    ["gaps between intervals", [[2, 3], [6, 7]], 10, [[0, 1], [4, 5], [8, 9]]],
    ["ignores done bytes past the size", [[0, 3], [8, 20]], 10, [[4, 7]]],
    ["ignores intervals wholly past the size", [[0, 3], [12, 20]], 10, [[4, 9]]],
    ["a single missing byte", [[0, 4], [6, 9]], 10, [[5, 5]]],
  ])("%s", (_name, done, size, expected) => {
    expect(IntervalSet.from(done).missing(size)).toEqual(expected);
  });

  it("is exactly the complement of the done bytes within [0, size)", () => {
    fc.assert(
      fc.property(fc.array(smallInterval(250), { maxLength: 30 }), fc.integer({ min: 0, max: 200 }), (added, size) => {
        const set = IntervalSet.from(added);
        const missing = set.missing(size);
        expectCanonical(missing);
        for (const [start, end] of missing) {
          expect(start).toBeGreaterThanOrEqual(0);
          expect(end).toBeLessThan(size);
        }
        const done = bytesIn(set.toArray(), size);
        const gaps = bytesIn(missing, size);
        for (let byte = 0; byte < size; byte++) {
          // Every byte is in exactly one of the two: together the whole file, never both.
          expect(done[byte] !== gaps[byte]).toBe(true);
        }
        const missingBytes = missing.reduce((sum, interval) => sum + lengthOf(interval), 0);
        expect(missingBytes).toBe(done.filter((byte) => !byte).length);
      }),
    );
  });
});

describe("IntervalSet.toArray", () => {
  it("hands out copies, not the set's own storage", () => {
    const set = IntervalSet.from([[0, 9]]);
    const snapshot = set.toArray() as [number, number][];
    snapshot[0]![1] = 1000;
    snapshot.push([2000, 3000]);
    expect(set.toArray()).toEqual([[0, 9]]);
  });
});

describe("splitMissing", () => {
  it.each<[string, Interval[], number, number, Interval[]]>([
    ["nothing missing, nothing to fetch", [], 8, 10, []],
    [
      "splits one interval into `connections` equal ranges",
      [[0, 99]],
      4,
      10,
      [
        [0, 24],
        [25, 49],
        [50, 74],
        [75, 99],
      ],
    ],
    [
      "never cuts a range below min-split",
      [[0, 99]],
      8,
      30,
      [
        [0, 32],
        [33, 65],
        [66, 99],
      ],
    ],
    ["keeps an interval smaller than min-split whole", [[0, 4]], 8, 10, [[0, 4]]],
    ["one connection fetches everything as one range", [[100, 199]], 1, 1, [[100, 199]]],
    [
      "gives each missing interval its own ranges, in file order",
      [
        [0, 9],
        [50, 89],
      ],
      5,
      10,
      [
        [0, 9],
        [50, 59],
        [60, 69],
        [70, 79],
        [80, 89],
      ],
    ],
  ])("%s", (_name, missing, connections, minSplit, expected) => {
    expect(splitMissing(missing, connections, minSplit)).toEqual(expected);
  });

  it("splits a 1 GiB file over 8 connections into 128 MiB ranges", () => {
    const ranges = splitMissing([[0, 1024 * MiB - 1]], 8, 4 * MiB);
    expect(ranges).toHaveLength(8);
    for (const range of ranges) expect(lengthOf(range)).toBe(128 * MiB);
  });

  const missingIntervals = fc
    .array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 400 })), { maxLength: 6 })
    .map((pairs) => {
      // Gaps then lengths, so the intervals are sorted, disjoint and non-adjacent like `missing()`.
      const intervals: Interval[] = [];
      let cursor = 0;
      for (const [gap, length] of pairs) {
        const start = cursor + gap + (intervals.length > 0 ? 1 : 0);
        intervals.push([start, start + length - 1]);
        cursor = start + length;
      }
      return intervals;
    });
  const connections = fc.integer({ min: 1, max: 64 });
  const minSplit = fc.integer({ min: 1, max: 200 });

  it("covers exactly the missing bytes, in order, with no overlap", () => {
    fc.assert(
      fc.property(missingIntervals, connections, minSplit, (missing, n, min) => {
        const ranges = splitMissing(missing, n, min);
        for (const range of ranges) expect(range[0]).toBeLessThanOrEqual(range[1]);
        for (let index = 1; index < ranges.length; index++) {
          expect(ranges[index]![0]).toBeGreaterThan(ranges[index - 1]![1]);
        }
        const size = missing.length > 0 ? missing[missing.length - 1]![1] + 1 : 0;
        expect(bytesIn(ranges, size)).toEqual(bytesIn(missing, size));
        const total = (list: readonly Interval[]) => list.reduce((sum, interval) => sum + lengthOf(interval), 0);
        expect(total(ranges)).toBe(total(missing));
      }),
    );
  });

  it("never makes a range span two missing intervals", () => {
    fc.assert(
      fc.property(missingIntervals, connections, minSplit, (missing, n, min) => {
        for (const [start, end] of splitMissing(missing, n, min)) {
          expect(missing.some(([a, b]) => a <= start && end <= b)).toBe(true);
        }
      }),
    );
  });

  it("makes at most `connections` ranges of a single interval", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), connections, minSplit, (length, n, min) => {
        expect(splitMissing([[0, length - 1]], n, min).length).toBeLessThanOrEqual(n);
      }),
    );
  });

  it("makes at most about `connections` ranges in all: one extra per short interval at worst", () => {
    fc.assert(
      fc.property(missingIntervals, connections, minSplit, (missing, n, min) => {
        expect(splitMissing(missing, n, min).length).toBeLessThanOrEqual(n + Math.max(0, missing.length - 1));
      }),
    );
  });

  it("makes no range smaller than min-split unless its whole interval is smaller", () => {
    fc.assert(
      fc.property(missingIntervals, connections, minSplit, (missing, n, min) => {
        for (const range of splitMissing(missing, n, min)) {
          if (lengthOf(range) >= min) continue;
          expect(missing).toContainEqual(range);
        }
      }),
    );
  });

  it("cuts one interval into nearly equal ranges: only the last takes the remainder", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), connections, minSplit, (length, n, min) => {
        const lengths = splitMissing([[0, length - 1]], n, min).map(lengthOf);
        const first = lengths[0]!;
        for (const pieceLength of lengths.slice(0, -1)) expect(pieceLength).toBe(first);
        expect(lengths[lengths.length - 1]! - first).toBeLessThan(lengths.length);
      }),
    );
  });
});

/**
 * A worker's view of the planner in the model test: the assignments it holds and the
 * bytes it has accepted (its writes, as far as the plan is concerned).
 */
class PlannerModel {
  readonly planner: RangePlanner;
  readonly size: number;
  readonly minSplit: number;
  readonly held: Assignment[] = [];
  readonly accepted: boolean[];

  constructor(done: readonly Interval[], size: number, connections: number, minSplit: number, probe: boolean) {
    this.size = size;
    this.minSplit = minSplit;
    this.accepted = bytesIn(done, size);
    const missing = IntervalSet.from(done).missing(size);
    const first = missing[0];
    if (probe && first) {
      // As transfer.ts does: the probe's range is taken out of the plan and adopted.
      const probeEnd = Math.min(first[1], first[0] + minSplit - 1);
      const rest = IntervalSet.from(missing.slice(1));
      if (probeEnd < first[1]) rest.add(probeEnd + 1, first[1]);
      this.planner = new RangePlanner(rest.toArray(), connections, minSplit);
      this.held.push(this.planner.adopt(first[0], probeEnd));
    } else {
      this.planner = new RangePlanner(missing, connections, minSplit);
    }
  }

  /** next(): the first queued range in file order, else a steal. */
  next(): Assignment | undefined {
    const queued = this.planner.unassigned[0];
    if (queued) {
      const queuedCopy = [queued[0], queued[1]] as const;
      const assignment = this.planner.next();
      expect(assignment).toBeDefined();
      expect([assignment!.start, assignment!.end]).toEqual(queuedCopy);
      expect(assignment!.next).toBe(assignment!.start);
      this.held.push(assignment!);
      return assignment;
    }
    return this.#checkedSteal(() => this.planner.next());
  }

  steal(): Assignment | undefined {
    return this.#checkedSteal(() => this.planner.splitLargestInFlight());
  }

  accept(assignment: Assignment, bytes: number): void {
    const upTo = Math.min(assignment.next + bytes, assignment.end + 1);
    for (let byte = assignment.next; byte < upTo; byte++) {
      if (this.accepted[byte]) throw new Error(`byte ${byte} was accepted twice`);
      this.accepted[byte] = true;
    }
    assignment.next = Math.max(assignment.next, upTo);
  }

  release(assignment: Assignment): void {
    this.planner.release(assignment);
    this.held.splice(this.held.indexOf(assignment), 1);
  }

  /** Every byte is accepted, queued, or in flight in [next, end]: exactly one of them. */
  checkInvariant(): void {
    // Plain loops and one assertion at the end: this runs after every step of every run.
    const places = new Uint8Array(this.size);
    const mark = (start: number, end: number, where: string) => {
      if (start < 0 || end >= this.size) throw new Error(`${where} [${start}, ${end}] reaches outside the file`);
      for (let byte = start; byte <= end; byte++) places[byte]!++;
    };
    this.accepted.forEach((isAccepted, byte) => {
      if (isAccepted) places[byte]!++;
    });
    for (const [start, end] of this.planner.unassigned) {
      if (end < start) throw new Error(`queued range [${start}, ${end}] is empty`);
      mark(start, end, "queued range");
    }
    for (const assignment of this.planner.inFlight) {
      if (assignment.end < assignment.next - 1) throw new Error(`assignment ${assignment.id} ends before its next byte`);
      mark(assignment.next, assignment.end, `assignment ${assignment.id}`);
    }
    const misplaced = places.findIndex((count) => count !== 1);
    expect(misplaced, `byte ${misplaced} is in ${places[misplaced]} places`).toBe(-1);
    expect(this.planner.inFlight.map((a) => a.id).sort((x, y) => x - y)).toEqual(this.held.map((a) => a.id).sort((x, y) => x - y));
  }

  #checkedSteal(steal: () => Assignment | undefined): Assignment | undefined {
    const before = this.planner.inFlight.map((a) => ({ assignment: a, next: a.next, end: a.end }));
    const remaining = (entry: { next: number; end: number }) => entry.end - entry.next + 1;
    const largest = Math.max(0, ...before.map(remaining));
    const stolen = steal();
    if (stolen === undefined) {
      // Nothing worth splitting: no in-flight range had 2 × min-split left, and nothing moved.
      expect(largest).toBeLessThan(2 * this.minSplit);
      for (const entry of before) expect(entry.assignment.end).toBe(entry.end);
      return undefined;
    }
    const moved = before.filter((entry) => entry.assignment.end !== entry.end);
    expect(moved).toHaveLength(1);
    const victim = moved[0]!;
    expect(remaining(victim)).toBe(largest);
    expect(remaining(victim)).toBeGreaterThanOrEqual(2 * this.minSplit);
    // The owner keeps the front, the thief takes the back; nothing between or beyond.
    expect(victim.assignment.end).toBeGreaterThanOrEqual(victim.next);
    expect(victim.assignment.next).toBe(victim.next);
    expect(stolen.start).toBe(victim.assignment.end + 1);
    expect(stolen.end).toBe(victim.end);
    expect(stolen.next).toBe(stolen.start);
    expect(victim.assignment.end - victim.next + 1).toBeGreaterThanOrEqual(this.minSplit);
    expect(stolen.end - stolen.start + 1).toBeGreaterThanOrEqual(this.minSplit);
    this.held.push(stolen);
    return stolen;
  }

  /** Workers finish everything they hold, then keep asking until nothing is left. */
  drain(): void {
    for (let guard = 0; guard <= this.size + 10; guard++) {
      for (const assignment of [...this.held]) {
        this.accept(assignment, this.size);
        this.release(assignment);
        this.checkInvariant();
      }
      if (this.next() === undefined) {
        expect(this.accepted.every(Boolean)).toBe(true);
        expect(this.planner.unassigned).toEqual([]);
        expect(this.planner.inFlight).toEqual([]);
        expect(this.planner.next()).toBeUndefined();
        return;
      }
      this.checkInvariant();
    }
    throw new Error("the planner kept handing out ranges after every byte was accepted");
  }
}

type Operation =
  | { kind: "next" }
  | { kind: "accept"; pick: number; bytes: number }
  | { kind: "release"; pick: number }
  | { kind: "steal" };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  { arbitrary: fc.constant<Operation>({ kind: "next" }), weight: 3 },
  {
    arbitrary: fc.record({ kind: fc.constant("accept" as const), pick: fc.nat(), bytes: fc.nat({ max: 150 }) }),
    weight: 4,
  },
  { arbitrary: fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }), weight: 2 },
  { arbitrary: fc.constant<Operation>({ kind: "steal" }), weight: 2 },
);

const plannerScenario = fc.record({
  size: fc.integer({ min: 0, max: 600 }),
  done: fc.array(smallInterval(600), { maxLength: 8 }),
  connections: fc.integer({ min: 1, max: 12 }),
  minSplit: fc.integer({ min: 1, max: 60 }),
  probe: fc.boolean(),
  operations: fc.array(operation, { maxLength: 80 }),
});

function run(model: PlannerModel, operations: readonly Operation[]): void {
  model.checkInvariant();
  for (const op of operations) {
    const pick = () => model.held[("pick" in op ? op.pick : 0) % model.held.length]!;
    if (op.kind === "next") model.next();
    else if (op.kind === "steal") model.steal();
    else if (model.held.length === 0) continue;
    else if (op.kind === "accept") model.accept(pick(), op.bytes);
    else model.release(pick());
    model.checkInvariant();
  }
  model.drain();
}

describe("RangePlanner", () => {
  it("every byte is accepted, queued or in flight exactly once, whatever the workers do", () => {
    fc.assert(
      fc.property(plannerScenario, ({ size, done, connections, minSplit, probe, operations }) => {
        run(new PlannerModel(done, size, connections, minSplit, probe), operations);
      }),
      { numRuns: 300 },
    );
  });

  it("steals never lose or duplicate bytes", () => {
    // Steal-heavy: workers hold on to their ranges and thieves keep splitting them.
    const stealHeavy = fc.array(
      fc.oneof(
        { arbitrary: fc.constant<Operation>({ kind: "steal" }), weight: 3 },
        { arbitrary: fc.constant<Operation>({ kind: "next" }), weight: 2 },
        { arbitrary: fc.record({ kind: fc.constant("accept" as const), pick: fc.nat(), bytes: fc.nat({ max: 40 }) }), weight: 2 },
      ),
      { maxLength: 60 },
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 800 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 50 }),
        stealHeavy,
        (size, connections, minSplit, operations) => {
          run(new PlannerModel([], size, connections, minSplit, false), operations);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("no connection idles while the tail straggles", () => {
    const size = 100_000;
    const minSplit = 1_000;
    const model = new PlannerModel([], size, 4, minSplit, false);
    const workers = [model.next()!, model.next()!, model.next()!, model.next()!];
    expect(workers.map((a) => [a.start, a.end])).toEqual([
      [0, 24_999],
      [25_000, 49_999],
      [50_000, 74_999],
      [75_000, 99_999],
    ]);
    const straggler = workers[0]!;
    model.accept(straggler, 1_000);
    for (const fast of workers.slice(1)) {
      model.accept(fast, size);
      model.release(fast);
    }
    model.checkInvariant();

    // The first idle worker takes the straggler's back half; the straggler stops at the new end.
    const thief = model.next()!;
    expect([thief.start, thief.end]).toEqual([13_000, 24_999]);
    expect(straggler.end).toBe(12_999);
    model.checkInvariant();

    // The other idle workers split whatever has the most left, until nothing is worth splitting.
    const thieves = [model.next(), model.next()];
    expect(thieves.every((a) => a !== undefined)).toBe(true);
    model.checkInvariant();
    const inFlight = model.planner.inFlight;
    expect(inFlight).toHaveLength(4);
    const remaining = inFlight.map((a) => a.end - a.next + 1);
    expect(remaining.reduce((sum, bytes) => sum + bytes, 0)).toBe(24_000);
    for (const bytes of remaining) expect(bytes).toBeGreaterThanOrEqual(minSplit);
    model.drain();
  });

  it("keeps splitting the straggler's remainder while it is at least 2 × min-split", () => {
    const model = new PlannerModel([], 10_000, 1, 1_000, false);
    const straggler = model.next()!;
    model.accept(straggler, 2_000);
    const stolen: Assignment[] = [];
    for (let thief = model.next(); thief !== undefined; thief = model.next()) {
      stolen.push(thief);
      model.checkInvariant();
    }
    expect(stolen.length).toBeGreaterThanOrEqual(3);
    for (const assignment of model.planner.inFlight) {
      const left = assignment.end - assignment.next + 1;
      expect(left).toBeGreaterThanOrEqual(1_000);
      expect(left).toBeLessThan(2_000);
    }
    model.drain();
  });

  it("does not steal when the largest remainder is under 2 × min-split", () => {
    const planner = new RangePlanner([[0, 199]], 1, 100);
    const only = planner.next()!;
    only.next = 1;
    expect(planner.next()).toBeUndefined();
    expect(planner.splitLargestInFlight()).toBeUndefined();
    expect(only.end).toBe(199);
  });

  it("steals exactly at 2 × min-split, leaving both halves min-split long", () => {
    const planner = new RangePlanner([[0, 199]], 1, 100);
    const owner = planner.next()!;
    const thief = planner.next()!;
    expect([owner.start, owner.end]).toEqual([0, 99]);
    expect([thief.start, thief.end]).toEqual([100, 199]);
  });

  it("steals from the range with the most bytes left, not the longest range", () => {
    const planner = new RangePlanner([[0, 999]], 2, 10);
    const first = planner.next()!;
    const second = planner.next()!;
    first.next = 400; // 100 bytes left
    second.next = 600; // 400 bytes left
    const thief = planner.next()!;
    expect([thief.start, thief.end]).toEqual([800, 999]);
    expect(second.end).toBe(799);
    expect(first.end).toBe(499);
  });

  it("hands out queued ranges in file order before stealing", () => {
    const planner = new RangePlanner(
      [
        [0, 99],
        [200, 299],
      ],
      2,
      10,
    );
    expect([planner.next()!.start, planner.next()!.start]).toEqual([0, 200]);
  });

  it("queues a released assignment's unaccepted bytes, in file order, for the next worker", () => {
    const planner = new RangePlanner([[0, 999]], 4, 10);
    const [a, b, c, d] = [planner.next()!, planner.next()!, planner.next()!, planner.next()!];
    b.next = 300;
    planner.release(b);
    a.next = 100;
    planner.release(a);
    expect(planner.unassigned).toEqual([
      [100, 249],
      [300, 499],
    ]);
    expect(planner.inFlight).toEqual([c, d]);
    const resumed = planner.next()!;
    expect([resumed.start, resumed.end, resumed.next]).toEqual([100, 249, 100]);
  });

  it("queues nothing for an assignment released with every byte accepted", () => {
    const planner = new RangePlanner([[0, 99]], 1, 10);
    const assignment = planner.next()!;
    assignment.next = 100;
    planner.release(assignment);
    expect(planner.unassigned).toEqual([]);
    expect(planner.next()).toBeUndefined();
  });

  it("treats an adopted range (the probe's) as in flight and can steal from it", () => {
    const planner = new RangePlanner([], 4, 10);
    const probe = planner.adopt(0, 99);
    expect(planner.inFlight).toEqual([probe]);
    const thief = planner.next()!;
    expect([thief.start, thief.end]).toEqual([50, 99]);
    expect(probe.end).toBe(49);
  });

  it("gives every assignment its own id", () => {
    const planner = new RangePlanner([[0, 999]], 4, 10);
    const ids = [planner.adopt(1000, 1099), planner.next()!, planner.next()!, planner.next()!, planner.next()!].map(
      (a) => a.id,
    );
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("returns undefined when the file is complete from the start", () => {
    const planner = new RangePlanner([], 8, 10);
    expect(planner.next()).toBeUndefined();
    expect(planner.inFlight).toEqual([]);
  });
});

describe("RangePlanner for ordered streams: limit and maxRange", () => {
  it("hands out queued ranges no longer than maxRange, in file order", () => {
    const planner = new RangePlanner([[0, 999]], 2, 100, { maxRange: 300 });
    const pieces = [planner.next()!, planner.next()!, planner.next()!, planner.next()!].map((a) => [a.start, a.end]);
    expect(pieces).toEqual([
      [0, 299],
      [300, 499],
      [500, 799],
      [800, 999],
    ]);
  });

  it("hands out nothing at or past the limit, and the rest once the limit moves", () => {
    const planner = new RangePlanner([[0, 999]], 1, 150, { maxRange: 200 });
    planner.limit = 400;
    const first = planner.next()!;
    const second = planner.next()!;
    expect([first.start, first.end, second.start, second.end]).toEqual([0, 199, 200, 399]);
    // Both in flight are under 2 × min-split, so nothing to steal either.
    expect(planner.next()).toBeUndefined();
    planner.limit = 650;
    const third = planner.next()!;
    expect([third.start, third.end]).toEqual([400, 599]);
    // 600-649 is shorter than min-split and not the rest: it waits for more room.
    expect(planner.next()).toBeUndefined();
  });

  it("waits for at least min-split of room rather than handing out a sliver at the limit", () => {
    const planner = new RangePlanner([[0, 999]], 1, 150, { maxRange: 200 });
    planner.limit = 340;
    planner.next();
    expect(planner.next()).toBeUndefined();
    planner.limit = 350;
    const piece = planner.next()!;
    expect([piece.start, piece.end]).toEqual([200, 349]);
  });

  it("hands out a queued rest shorter than min-split whole, limit permitting", () => {
    const planner = new RangePlanner([[0, 249]], 1, 100, { maxRange: 200 });
    planner.limit = 1000;
    planner.next();
    const rest = planner.next()!;
    expect([rest.start, rest.end]).toEqual([200, 249]);
  });

  it("gives a released range's rest to the next worker before later bytes, within the limit", () => {
    const planner = new RangePlanner([[0, 999]], 1, 50, { maxRange: 100 });
    planner.limit = 300;
    const first = planner.next()!;
    planner.next();
    first.next = 40;
    planner.release(first);
    const again = planner.next()!;
    expect([again.start, again.end]).toEqual([40, 99]);
  });

  it("never hands out a byte at or past the limit, and every byte exactly once, as the limit creeps up", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 400 }),
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 200 }),
        (size, connections, minSplit, maxRange, steps) => {
          const planner = new RangePlanner([[0, size - 1]], connections, minSplit, { maxRange });
          const window = 2 * Math.max(minSplit, maxRange);
          let position = 0;
          const accepted = new IntervalSet();
          const all: Assignment[] = [];
          const inFlight: Assignment[] = [];
          // Each step: hand out what the window allows (steals included), then the oldest range completes.
          for (let step = 0; step < steps.length + size && !planner.finished; step++) {
            planner.limit = position + window;
            for (let assignment = planner.next(); assignment; assignment = planner.next()) {
              expect(assignment.end).toBeLessThan(planner.limit);
              all.push(assignment);
              inFlight.push(assignment);
            }
            const done = inFlight.shift();
            if (!done) continue;
            done.next = done.end + 1;
            accepted.add(done.start, done.end);
            planner.release(done);
            position = accepted.missing(size)[0]?.[0] ?? size;
          }
          expect(planner.finished).toBe(true);
          const ranges = all.filter((a) => a.end >= a.start).map((a): Interval => [a.start, a.end]);
          expect(IntervalSet.from(ranges).toArray()).toEqual([[0, size - 1]]);
          expect(ranges.reduce((sum, range) => sum + lengthOf(range), 0)).toBe(size);
        },
      ),
    );
  });
});

describe("RangePlanner with noSteal (noHedge)", () => {
  it("never splits a range in flight: an idle worker gets nothing once the queue is empty", () => {
    const planner = new RangePlanner([[0, 99_999_999]], 2, 1_000_000, { noSteal: true });
    expect(planner.next()).toBeDefined();
    expect(planner.next()).toBeDefined();
    expect(planner.next()).toBeUndefined();
    expect(planner.splitLargestInFlight()).toBeUndefined();
    const stealing = new RangePlanner([[0, 99_999_999]], 2, 1_000_000);
    stealing.next();
    stealing.next();
    expect(stealing.next()).toBeDefined();
  });
});

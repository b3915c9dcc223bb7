import { describe, expect, it } from "vitest";
import { MAX_RESCUES, PaceTracker } from "../src/pace.js";
import type { Assignment } from "../src/ranges.js";

function range(id: number, rescues = 0): Assignment {
  return { id, start: 0, end: 100_000_000, next: 0, rescues };
}

/** Runs `checks` once-a-second checks, advancing each range by its rate; returns what each check flagged. */
function run(tracker: PaceTracker, ranges: Assignment[], bytesPerSecond: number[], checks: number): number[][] {
  const flagged: number[][] = [];
  for (let check = 0; check < checks; check++) {
    flagged.push(tracker.check(ranges, 1).map((assignment) => assignment.id));
    ranges.forEach((assignment, index) => {
      assignment.next += bytesPerSecond[index] ?? 0;
    });
  }
  return flagged;
}

describe("PaceTracker", () => {
  it("flags a range far below its peers after three slow checks in a row, not before", () => {
    const flagged = run(new PaceTracker(), [range(1), range(2), range(3)], [1_000_000, 1_000_000, 10_000], 5);
    expect(flagged).toEqual([[], [], [], [3], []]);
  });

  it("leaves a uniformly slow network alone", () => {
    const flagged = run(new PaceTracker(), [range(1), range(2), range(3)], [10_000, 10_000, 10_000], 8);
    expect(flagged.flat()).toEqual([]);
  });

  it(`leaves a range rescued ${MAX_RESCUES} times to finish where it is`, () => {
    const flagged = run(new PaceTracker(), [range(1), range(2), range(3, MAX_RESCUES)], [1_000_000, 1_000_000, 10_000], 8);
    expect(flagged.flat()).toEqual([]);
  });

  it("does not flag a slow range so close to its end that a new connection would not finish sooner", () => {
    const nearlyDone = range(3);
    // 900 bytes left at 1 KB/s when it could first be flagged: a new connection would not win.
    nearlyDone.end = 3900;
    const flagged = run(new PaceTracker(), [range(1), range(2), nearlyDone], [1_000_000, 1_000_000, 1000], 6);
    expect(flagged.flat()).toEqual([]);
  });
});

import { describe, expect, it } from "vitest";
import { RangePlanner, type Assignment } from "../src/ranges.js";
import { RateSampler } from "../src/rates.js";
import { findStragglers, HEDGE_SMALL_REST_SECONDS, MAX_RESCUES, pickHedge } from "../src/tail.js";

function range(id: number, rescues = 0): Assignment {
  return { id, start: 0, end: 100_000_000, next: 0, rescues };
}

/**
 * Runs `checks` once-a-second rescue checks on fake time, advancing each range by its
 * rate between them; returns what each check flagged.
 */
function run(ranges: Assignment[], bytesPerSecond: number[], checks: number): number[][] {
  const sampler = new RateSampler();
  const slowChecks = new Map<number, number>();
  const flagged: number[][] = [];
  for (let check = 0; check < checks; check++) {
    sampler.sample(check * 1000, ranges, 0);
    flagged.push(findStragglers(ranges, sampler, slowChecks).map((assignment) => assignment.id));
    ranges.forEach((assignment, index) => {
      assignment.next += bytesPerSecond[index] ?? 0;
    });
  }
  return flagged;
}

describe("findStragglers: the rescue of a connection far slower than its peers", () => {
  it("flags a range far below its peers after three slow checks in a row, not before", () => {
    const flagged = run([range(1), range(2), range(3)], [1_000_000, 1_000_000, 10_000], 5);
    expect(flagged).toEqual([[], [], [], [3], []]);
  });

  it("leaves a uniformly slow network alone", () => {
    const flagged = run([range(1), range(2), range(3)], [10_000, 10_000, 10_000], 8);
    expect(flagged.flat()).toEqual([]);
  });

  it(`leaves a range rescued ${MAX_RESCUES} times to finish where it is`, () => {
    const flagged = run([range(1), range(2), range(3, MAX_RESCUES)], [1_000_000, 1_000_000, 10_000], 8);
    expect(flagged.flat()).toEqual([]);
  });

  it("does not flag a slow range so close to its end that a new connection would not finish sooner", () => {
    const nearlyDone = range(3);
    // 900 bytes left at 1 KB/s when it could first be flagged: a new connection would not win.
    nearlyDone.end = 3900;
    const flagged = run([range(1), range(2), nearlyDone], [1_000_000, 1_000_000, 1000], 6);
    expect(flagged.flat()).toEqual([]);
  });

  it("starts counting again after a check at a normal pace", () => {
    const ranges = [range(1), range(2), range(3)];
    const sampler = new RateSampler();
    const slowChecks = new Map<number, number>();
    const flagged: number[] = [];
    // The third range is slow, then normal for one second, then slow again.
    const paces = [10_000, 10_000, 10_000, 10_000, 5_000_000, 10_000, 10_000, 10_000];
    paces.forEach((pace, check) => {
      sampler.sample(check * 1000, ranges, 0);
      flagged.push(...findStragglers(ranges, sampler, slowChecks).map((assignment) => assignment.id));
      ranges[0]!.next += 1_000_000;
      ranges[1]!.next += 1_000_000;
      ranges[2]!.next += pace;
    });
    expect(flagged).toEqual([3]);
  });
});

describe("pickHedge: the endgame race for the range that would finish last", () => {
  it("hedges the slowest range so that both parts end about together", () => {
    const planner = new RangePlanner([[0, 9_999_999]], 2, 1_000_000);
    const slow = planner.next()!;
    const fast = planner.next()!;
    const sampler = new RateSampler();
    sampler.started(slow, 0);
    sampler.started(fast, 0);
    slow.next += 100_000;
    fast.next += 900_000;
    const hedge = pickHedge(planner, sampler, 1000);
    expect(hedge?.hedgeOf).toBe(slow);
    // The victim keeps its rate's share of the rest: 100 kB/s against the typical 900 kB/s.
    const rest = slow.end - slow.next + 1;
    expect((hedge!.start - slow.next) / rest).toBeCloseTo(0.1, 2);
    expect(hedge!.end).toBe(slow.end);
  });

  it("does not hedge a range that ends within a second at its rate", () => {
    const planner = new RangePlanner([[0, 1_999_999]], 1, 1_000_000);
    const only = planner.next()!;
    const sampler = new RateSampler();
    sampler.started(only, 0);
    only.next += 1_900_000;
    expect(pickHedge(planner, sampler, 1000)).toBeUndefined();
  });

  it(`hedges a rest smaller than min-split only when it would take more than ${HEDGE_SMALL_REST_SECONDS} s`, () => {
    // 1.5 MB left of a 4 MB range at 1 MB/s: 1.5 s, under a 2 MB min-split. Not worth a hedge.
    const planner = new RangePlanner([[0, 3_999_999]], 1, 2_000_000);
    const only = planner.next()!;
    const sampler = new RateSampler();
    sampler.started(only, 0);
    only.next += 2_500_000;
    expect(pickHedge(planner, sampler, 2500)).toBeUndefined();
    // The same rest at 250 kB/s: 6 s left. Worth it.
    const slower = new RangePlanner([[0, 3_999_999]], 1, 2_000_000);
    const crawling = slower.next()!;
    const rates = new RateSampler();
    rates.started(crawling, 0);
    crawling.next += 2_500_000;
    expect(pickHedge(slower, rates, 10_000)?.hedgeOf).toBe(crawling);
  });

  it("does not hedge before a rate could be measured", () => {
    const planner = new RangePlanner([[0, 9_999_999]], 1, 1_000_000);
    const only = planner.next()!;
    const sampler = new RateSampler();
    sampler.started(only, 0);
    only.next += 10_000;
    expect(pickHedge(planner, sampler, 100)).toBeUndefined();
    // The same range a second on, its rate measured: now it is hedged, so only the
    // measure held it back.
    only.next += 90_000;
    expect(pickHedge(planner, sampler, 1000)?.hedgeOf).toBe(only);
  });
});

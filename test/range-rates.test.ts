import { describe, expect, it } from "vitest";
import { RangeRates } from "../src/pace.js";
import type { Assignment } from "../src/ranges.js";

function range(id: number, next: number): Assignment {
  return { id, start: next, end: next + 1_000_000, next, rescues: 0 };
}

describe("RangeRates", () => {
  it("measures a range from the start of its request, once long enough to mean something", () => {
    const rates = new RangeRates();
    const a = range(1, 0);
    rates.started(a, 1000);
    a.next = 100;
    expect(rates.rateOf(a, 1100)).toBeUndefined();
    a.next = 5000;
    expect(rates.rateOf(a, 1500)).toBe(10_000);
  });

  it("the typical rate is the median of the other ranges in flight and the recently finished", () => {
    const rates = new RangeRates();
    const slow = range(1, 0);
    const done = range(2, 0);
    const fast = range(3, 0);
    for (const assignment of [slow, done, fast]) rates.started(assignment, 0);
    slow.next = 1000;
    done.next = 20_000;
    fast.next = 30_000;
    rates.finished(done, 1000);
    // The finished range still counts, the one asked about does not.
    expect(rates.typical([slow, fast], slow, 1000)).toBe(25_000);
    // With nothing else in flight, the finished ones are the peers.
    expect(rates.typical([slow], slow, 1000)).toBe(20_000);
    expect(new RangeRates().typical([slow], slow, 1000)).toBeUndefined();
  });

  it("remembers the rates of the last 8 finished ranges only", () => {
    const rates = new RangeRates();
    for (let id = 0; id < 12; id++) {
      const assignment = range(id, 0);
      rates.started(assignment, 0);
      assignment.next = (id + 1) * 1000;
      rates.finished(assignment, 1000);
    }
    const asked = range(99, 0);
    // Rates 5000..12000 remain: their median is 8500.
    expect(rates.typical([asked], asked, 1000)).toBe(8500);
  });
});

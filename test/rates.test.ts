import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Assignment } from "../src/ranges.js";
import { RATE_WINDOW_MS, RateSampler } from "../src/rates.js";

const MiB = 1024 * 1024;

function range(id: number, next = 0): Assignment {
  return { id, start: next, end: next + 100_000_000, next, rescues: 0 };
}

/** Samples the whole download every `everyMs` from `fromMs` to `toMs`, at `bytesPerSecond`; returns the bytes done at the end. */
function steady(sampler: RateSampler, fromMs: number, toMs: number, everyMs: number, bytesPerSecond: number, startBytes = 0): number {
  let bytes = startBytes;
  for (let t = fromMs; t <= toMs; t += everyMs) {
    sampler.sample(t, [], bytes);
    bytes += (bytesPerSecond * everyMs) / 1000;
  }
  return bytes - (bytesPerSecond * everyMs) / 1000;
}

describe("RateSampler: the download's speed, for the progress display", () => {
  it("reads 0 before two samples", () => {
    const sampler = new RateSampler();
    expect(sampler.bytesPerSecond()).toBe(0);
    sampler.sample(1000, [], 5 * MiB);
    expect(sampler.bytesPerSecond()).toBe(0);
  });

  it("measures a steady stream", () => {
    const sampler = new RateSampler();
    steady(sampler, 0, 10_000, 250, 10 * MiB);
    expect(sampler.bytesPerSecond() / (10 * MiB)).toBeCloseTo(1, 5);
  });

  it("does not understate the speed in the first second", () => {
    const sampler = new RateSampler();
    steady(sampler, 0, 500, 250, MiB);
    expect(sampler.bytesPerSecond() / MiB).toBeCloseTo(1, 5);
  });

  it("follows a change of speed within the window", () => {
    const sampler = new RateSampler();
    const bytes = steady(sampler, 0, 10_000, 250, 10 * MiB);
    steady(sampler, 10_250, 20_000, 250, MiB, bytes + MiB / 4);
    expect(sampler.bytesPerSecond() / MiB).toBeCloseTo(1, 5);
  });

  it("falls to 0 once nothing has arrived for a whole window", () => {
    const sampler = new RateSampler();
    const bytes = steady(sampler, 0, 1000, 250, MiB);
    for (let t = 1250; t < 1000 + RATE_WINDOW_MS; t += 250) sampler.sample(t, [], bytes);
    expect(sampler.bytesPerSecond()).toBeGreaterThan(0);
    sampler.sample(1000 + RATE_WINDOW_MS, [], bytes);
    expect(sampler.bytesPerSecond()).toBe(0);
  });

  it("reads any steady stream exactly once a window has passed, whatever the sampling interval", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1_000_000_000 }), fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 3000, max: 8000 }), (rate, everyMs, runMs) => {
        const sampler = new RateSampler();
        steady(sampler, 0, runMs, everyMs, rate);
        expect(sampler.bytesPerSecond() / rate).toBeCloseTo(1, 6);
      }),
    );
  });
});

describe("RateSampler: each range's rates, for the rescue check and the hedge", () => {
  it("measures a range over the last window of samples, with the span it covers", () => {
    const sampler = new RateSampler();
    const a = range(1);
    for (let t = 0; t <= 5000; t += 1000) {
      sampler.sample(t, [a], 0);
      a.next += t < 3000 ? 1000 : 10_000;
    }
    // The samples from 2000 ms to 5000 ms remain: 2000 -> 23000 bytes in 3 s.
    expect(sampler.recentRate(a)).toEqual({ bytesPerSecond: 7000, spanMs: 3000 });
  });

  it("forgets a range once it is no longer in flight", () => {
    const sampler = new RateSampler();
    const a = range(1);
    sampler.sample(0, [a], 0);
    a.next = 1000;
    sampler.sample(1000, [a], 0);
    expect(sampler.recentRate(a)?.bytesPerSecond).toBe(1000);
    sampler.sample(2000, [], 0);
    expect(sampler.recentRate(a)).toBeUndefined();
  });

  it("measures a range from the start of its request, once long enough to mean something", () => {
    const sampler = new RateSampler();
    const a = range(1, 0);
    sampler.started(a, 1000);
    a.next = 100;
    expect(sampler.requestRate(a, 1100)).toBeUndefined();
    a.next = 5000;
    expect(sampler.requestRate(a, 1500)).toBe(10_000);
  });

  it("the typical rate is the median of the other ranges in flight and the recently finished", () => {
    const sampler = new RateSampler();
    const slow = range(1, 0);
    const done = range(2, 0);
    const fast = range(3, 0);
    for (const assignment of [slow, done, fast]) sampler.started(assignment, 0);
    slow.next = 1000;
    done.next = 20_000;
    fast.next = 30_000;
    sampler.finished(done, 1000);
    // The finished range still counts, the one asked about does not.
    expect(sampler.typical([slow, fast], slow, 1000)).toBe(25_000);
    // With nothing else in flight, the finished ones are the peers.
    expect(sampler.typical([slow], slow, 1000)).toBe(20_000);
    expect(new RateSampler().typical([slow], slow, 1000)).toBeUndefined();
  });

  it("remembers the rates of the last 8 finished ranges only", () => {
    const sampler = new RateSampler();
    for (let id = 0; id < 12; id++) {
      const assignment = range(id, 0);
      sampler.started(assignment, 0);
      assignment.next = (id + 1) * 1000;
      sampler.finished(assignment, 1000);
    }
    const asked = range(99, 0);
    // Rates 5000..12000 remain: their median is 8500.
    expect(sampler.typical([asked], asked, 1000)).toBe(8500);
  });
});

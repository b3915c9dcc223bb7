import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HttpStatsRecorder, percentile } from "../src/stats.js";

describe("percentile", () => {
  // The nearest-rank worked example from the literature: 15, 20, 35, 40, 50.
  const values = [15, 20, 35, 40, 50];

  it.each([
    [0, 15],
    [5, 15],
    [30, 20],
    [40, 20],
    [50, 35],
    [95, 50],
    [100, 50],
  ])("p%d of 15, 20, 35, 40, 50 is %d", (p, expected) => {
    expect(percentile(values, p)).toBe(expected);
  });

  it("is null for no values", () => {
    expect(percentile([], 50)).toBeNull();
  });

  it("is the only value of a single observation", () => {
    expect(percentile([7.5], 99)).toBe(7.5);
  });

  it.each([[-1], [101], [Number.NaN]])("refuses the percentile %d", (p) => {
    expect(() => percentile(values, p)).toThrow(RangeError);
  });

  it("is an observed value with at least p% of values at or below it, and fewer than p% below it", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1 }), fc.integer({ min: 1, max: 100 }), (raw, p) => {
        const sorted = [...raw].sort((a, b) => a - b);
        const value = percentile(sorted, p);
        expect(sorted).toContain(value);
        const atOrBelow = sorted.filter((v) => v <= (value ?? 0)).length;
        const below = sorted.filter((v) => v < (value ?? 0)).length;
        expect(atOrBelow * 100).toBeGreaterThanOrEqual(p * sorted.length);
        expect(below * 100).toBeLessThan(p * sorted.length);
      }),
    );
  });

  it("never decreases as p grows", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ noNaN: true }), { minLength: 1 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        (raw, p, q) => {
          const sorted = [...raw].sort((a, b) => a - b);
          const [low, high] = p <= q ? [p, q] : [q, p];
          expect(percentile(sorted, low) ?? 0).toBeLessThanOrEqual(percentile(sorted, high) ?? 0);
        },
      ),
    );
  });
});

describe("HttpStatsRecorder", () => {
  it("reports nothing before the first request", () => {
    expect(new HttpStatsRecorder().snapshot()).toEqual({
      requests: 0,
      statusCounts: {},
      retries: 0,
      rescues: 0,
      hedges: 0,
      origins: {},
      peakConnections: 0,
      latencyMs: { p50: null, p95: null, p99: null },
    });
  });

  it("counts requests, responses by status and retries", () => {
    const stats = new HttpStatsRecorder();
    for (let i = 0; i < 10; i += 1) stats.requestStarted();
    for (let i = 0; i < 8; i += 1) stats.responseReceived(206, 10);
    stats.responseReceived(503, 5);
    stats.retried();
    stats.retried();
    const snapshot = stats.snapshot();
    expect(snapshot.requests).toBe(10);
    expect(snapshot.statusCounts).toEqual({ "206": 8, "503": 1 });
    expect(snapshot.retries).toBe(2);
  });

  it("reports latency percentiles rounded to 0.1 ms", () => {
    const stats = new HttpStatsRecorder();
    for (let ms = 1; ms <= 100; ms += 1) {
      stats.requestStarted();
      stats.responseReceived(206, ms + 0.04321);
    }
    expect(stats.snapshot().latencyMs).toEqual({ p50: 50, p95: 95, p99: 99 });
  });

  it("does not depend on the order responses arrive in", () => {
    const stats = new HttpStatsRecorder();
    for (const ms of [30.26, 10.04, 20.15]) stats.responseReceived(200, ms);
    expect(stats.snapshot().latencyMs).toEqual({ p50: 20.2, p95: 30.3, p99: 30.3 });
  });

  it("gives snapshots that later traffic does not change", () => {
    const stats = new HttpStatsRecorder();
    stats.responseReceived(206, 1);
    const before = stats.snapshot();
    stats.responseReceived(206, 2);
    stats.responseReceived(416, 3);
    expect(before.statusCounts).toEqual({ "206": 1 });
    expect(stats.snapshot().statusCounts).toEqual({ "206": 2, "416": 1 });
  });

  it("serialises as the --json http field", () => {
    const stats = new HttpStatsRecorder();
    stats.requestStarted("http://127.0.0.1:8080");
    stats.responseReceived(206, 12.34);
    stats.bytesFrom("http://127.0.0.1:8080", 1000);
    stats.rescued();
    stats.hedged();
    stats.hedged();
    stats.connectionsInUse(3);
    stats.connectionsInUse(1);
    expect(JSON.parse(JSON.stringify(stats.snapshot()))).toEqual({
      requests: 1,
      statusCounts: { "206": 1 },
      retries: 0,
      rescues: 1,
      hedges: 2,
      origins: { "http://127.0.0.1:8080": { requests: 1, bytes: 1000 } },
      peakConnections: 3,
      latencyMs: { p50: 12.3, p95: 12.3, p99: 12.3 },
    });
  });
});

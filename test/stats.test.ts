import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HttpStatsRecorder, percentile, RateMeter } from "../src/stats.js";

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
    expect(JSON.parse(JSON.stringify(stats.snapshot()))).toEqual({
      requests: 1,
      statusCounts: { "206": 1 },
      retries: 0,
      rescues: 1,
      hedges: 2,
      origins: { "http://127.0.0.1:8080": { requests: 1, bytes: 1000 } },
      latencyMs: { p50: 12.3, p95: 12.3, p99: 12.3 },
    });
  });
});

describe("RateMeter", () => {
  const MiB = 1024 * 1024;

  it("reads 0 before any bytes", () => {
    expect(new RateMeter().bytesPerSecond(1000)).toBe(0);
  });

  it("measures a steady stream", () => {
    const meter = new RateMeter();
    for (let t = 0; t <= 10_000; t += 100) meter.add(MiB, t);
    expect(meter.bytesPerSecond(10_000) / (10 * MiB)).toBeCloseTo(1, 1);
  });

  it("does not understate the speed in the first second", () => {
    const meter = new RateMeter();
    for (let t = 0; t < 500; t += 50) meter.add(MiB / 20, t);
    expect(meter.bytesPerSecond(500) / (MiB * 1)).toBeCloseTo(1, 1);
  });

  it("does not read the very first chunk as an infinite speed", () => {
    const meter = new RateMeter();
    meter.add(MiB, 1000);
    expect(meter.bytesPerSecond(1000)).toBe(4 * MiB);
  });

  it("follows a change of speed within the window", () => {
    const meter = new RateMeter();
    for (let t = 0; t <= 10_000; t += 100) meter.add(MiB, t);
    for (let t = 10_100; t <= 20_000; t += 100) meter.add(MiB / 10, t);
    expect(meter.bytesPerSecond(20_000) / MiB).toBeCloseTo(1, 1);
  });

  it("falls to 0 once nothing has arrived for a whole window", () => {
    const meter = new RateMeter(3000);
    for (let t = 0; t <= 1000; t += 100) meter.add(MiB, t);
    expect(meter.bytesPerSecond(2000)).toBeGreaterThan(0);
    expect(meter.bytesPerSecond(4250)).toBe(0);
    expect(meter.bytesPerSecond(60_000)).toBe(0);
  });

  it("averages over a pause inside the window", () => {
    const meter = new RateMeter(2000);
    meter.add(MiB, 0);
    meter.add(MiB, 1999);
    expect(meter.bytesPerSecond(1999) / MiB).toBeCloseTo(1, 2);
  });

  it("ignores a sample older than the window", () => {
    const meter = new RateMeter(1000);
    meter.add(MiB, 10_000);
    meter.add(100 * MiB, 5000);
    expect(meter.bytesPerSecond(10_000)).toBe(4 * MiB);
  });

  it("refuses a window shorter than one bucket", () => {
    expect(() => new RateMeter(100)).toThrow(RangeError);
    expect(() => new RateMeter(Number.NaN)).toThrow(RangeError);
  });

  it("reads any steady stream within 10% once a window has passed", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.integer({ min: 1, max: 250 }),
        fc.integer({ min: 3000, max: 8000 }),
        (chunk, everyMs, runMs) => {
        const meter = new RateMeter(3000);
        let t = 0;
        for (; t <= runMs; t += everyMs) meter.add(chunk, t);
        const last = t - everyMs;
        const expected = (chunk * 1000) / everyMs;
        const measured = meter.bytesPerSecond(last);
        expect(measured).toBeGreaterThanOrEqual(expected * 0.9);
        expect(measured).toBeLessThanOrEqual(expected * 1.1);
      }),
    );
  });

  it("is never negative and is 0 exactly when the window holds no bytes", () => {
    const events = fc.array(fc.tuple(fc.integer({ min: 0, max: 2000 }), fc.integer({ min: 0, max: 10_000 })), { maxLength: 50 });
    fc.assert(
      fc.property(events, fc.integer({ min: 0, max: 5000 }), (steps, gap) => {
        const meter = new RateMeter(1000);
        let t = 0;
        const added: [number, number][] = [];
        for (const [advance, bytes] of steps) {
          t += advance;
          meter.add(bytes, t);
          added.push([t, bytes]);
        }
        const now = t + gap;
        const rate = meter.bytesPerSecond(now);
        expect(rate).toBeGreaterThanOrEqual(0);
        const oldestBucketStart = (Math.floor(now / 250) - 3) * 250;
        const inWindow = added.filter(([at, bytes]) => at >= oldestBucketStart && bytes > 0).length;
        expect(rate > 0).toBe(inWindow > 0);
      }),
    );
  });
});

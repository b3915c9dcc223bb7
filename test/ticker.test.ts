// The heartbeat on the fake clock: its periods are the job's intervals, not constants.
import { describe, expect, it } from "vitest";
import { DEFAULT_INTERVALS, intervalsWith } from "../src/intervals.js";
import { RateSampler } from "../src/rates.js";
import { startTicker } from "../src/ticker.js";
import type { ProgressEvent } from "../src/types.js";
import { FakeClock } from "./support/fake-clock.js";

function ticking(intervals: { progressMs: number; checkpointMs: number }) {
  const clock = new FakeClock();
  const progress: { at: number; event: ProgressEvent }[] = [];
  const checkpoints: number[] = [];
  const counters = { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 1 };
  const stop = startTicker({
    clock,
    intervals,
    rates: new RateSampler(),
    counters,
    path: "/d/file.bin",
    size: 1000,
    inFlight: () => [],
    onProgress: (event) => progress.push({ at: clock.now(), event }),
    everyCheckpoint: async () => {
      checkpoints.push(clock.now());
    },
  });
  return { clock, progress, checkpoints, counters, stop };
}

describe("startTicker", () => {
  it("reports progress every progressMs and runs the checkpoint every checkpointMs, at the moments they fall due", () => {
    const { clock, progress, checkpoints, counters, stop } = ticking({ progressMs: 50, checkpointMs: 200 });
    counters.bytesAccepted = 400;
    clock.advance(49);
    expect(progress).toEqual([]);
    clock.advance(551);
    expect(progress.map((entry) => entry.at)).toEqual([50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550, 600]);
    expect(progress.at(-1)!.event).toMatchObject({ path: "/d/file.bin", bytesDone: 400, size: 1000, activeConnections: 1 });
    expect(checkpoints).toEqual([200, 400, 600]);
    stop();
    clock.advance(1000);
    expect(progress).toHaveLength(12);
    expect(checkpoints).toEqual([200, 400, 600]);
  });

  it("beats four times a second and checkpoints once a second by default", () => {
    const { clock, progress, checkpoints, stop } = ticking(DEFAULT_INTERVALS);
    clock.advance(3000);
    stop();
    expect(progress).toHaveLength(12);
    expect(checkpoints).toEqual([1000, 2000, 3000]);
  });
});

describe("intervalsWith", () => {
  it("lays the given periods over the defaults", () => {
    expect(intervalsWith(undefined)).toEqual({ progressMs: 250, checkpointMs: 1000, progressEventMs: 1000, plainLineMs: 10_000 });
    expect(intervalsWith({ checkpointMs: 100 })).toEqual({ ...DEFAULT_INTERVALS, checkpointMs: 100 });
  });

  it.each([[0], [-1], [Number.NaN], [Number.POSITIVE_INFINITY]])("refuses a period of %d ms", (ms) => {
    expect(() => intervalsWith({ progressMs: ms })).toThrow(RangeError);
  });
});

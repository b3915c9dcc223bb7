import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RateLimiter } from "../src/rate-limit.js";
import { FakeClock, settle } from "./support/fake-clock.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Tracks whether a promise has settled, without awaiting it. */
function track(promise: Promise<void>): { state: "pending" | "resolved" | "rejected"; reason?: unknown } {
  const status: { state: "pending" | "resolved" | "rejected"; reason?: unknown } = { state: "pending" };
  promise.then(
    () => {
      status.state = "resolved";
    },
    (reason: unknown) => {
      status.state = "rejected";
      status.reason = reason;
    },
  );
  return status;
}

describe("RateLimiter with a fake clock", () => {
  it("paces one taker to the rate", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(MiB, clock);
    const elapsed = await clock.runUntil(
      (async () => {
        for (let i = 0; i < 16; i += 1) await limiter.take(64 * KiB);
      })(),
    );
    // 1 MiB at 1 MiB/s from an empty bucket: a second, each of 16 sleeps rounded up by under 1 ms.
    expect(elapsed).toBeGreaterThanOrEqual(1000);
    expect(elapsed).toBeLessThan(1016);
    expect(clock.slept).toBe(elapsed);
  });

  it("paces a read larger than the bucket instead of refusing it", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(100 * KiB, clock);
    expect(await clock.runUntil(limiter.take(MiB))).toBe(10_240);
  });

  it("allows a burst of only 1/8 s of rate after being idle", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(MiB, clock);
    await clock.advanceSettling(60_000);
    const burst = track(limiter.take(128 * KiB));
    await settle();
    expect(burst.state).toBe("resolved");
    expect(await clock.runUntil(limiter.take(64 * KiB))).toBe(63);
  });

  it("keeps a bucket of at least 16 KiB for a slow rate", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(KiB, clock);
    await clock.advanceSettling(100_000);
    const burst = track(limiter.take(16 * KiB));
    await settle();
    expect(burst.state).toBe("resolved");
    expect(await clock.runUntil(limiter.take(KiB))).toBe(1000);
  });

  it("serves concurrent takers in the order they asked", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(MiB, clock);
    const order: string[] = [];
    const takers = [
      ["big", 512 * KiB],
      ["tiny", 1],
      ["medium", 64 * KiB],
      ["tiny again", 1],
    ] as const;
    const all = Promise.all(takers.map(([name, bytes]) => limiter.take(bytes).then(() => order.push(name))));
    await clock.runUntil(all);
    expect(order).toEqual(["big", "tiny", "medium", "tiny again"]);
  });

  it("resolves a taker as soon as its bytes are paid for, not later", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(MiB, clock);
    const times: number[] = [];
    const all = Promise.all([1, 2, 3].map(() => limiter.take(64 * KiB).then(() => times.push(clock.now()))));
    await clock.runUntil(all);
    expect(times).toEqual([63, 125, 188]);
  });

  it("resolves take(0) at once", async () => {
    const limiter = new RateLimiter(1, new FakeClock());
    const zero = track(limiter.take(0));
    await settle();
    expect(zero.state).toBe("resolved");
  });

  it.each([[Number.NaN], [Number.POSITIVE_INFINITY]])("refuses to take %d bytes, which could never be paid for", async (bytes) => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(MiB, clock);
    await expect(limiter.take(bytes)).rejects.toThrow(RangeError);
    expect(await clock.runUntil(limiter.take(64 * KiB))).toBe(63);
  });

  it.each([[0], [-1], [Number.NaN], [Number.POSITIVE_INFINITY]])("refuses the rate %d", (rate) => {
    expect(() => new RateLimiter(rate, new FakeClock())).toThrow(RangeError);
  });

  it("caps every stretch of time at rate × time + one bucket, however the workers take", async () => {
    const worker = fc.array(fc.tuple(fc.integer({ min: 1, max: 256 * KiB }), fc.integer({ min: 0, max: 500 })), {
      minLength: 1,
      maxLength: 12,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(worker, { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 16 * KiB, max: 4 * MiB }),
        async (workers, rate) => {
          const clock = new FakeClock();
          const limiter = new RateLimiter(rate, clock);
          const grants: { at: number; bytes: number }[] = [];
          const run = Promise.all(
            workers.map(async (steps) => {
              for (const [bytes, thinkMs] of steps) {
                await limiter.take(bytes);
                grants.push({ at: clock.now(), bytes });
                await clock.sleep(thinkMs);
              }
            }),
          );
          await clock.runUntil(run);
          const capacity = Math.max(16 * KiB, rate / 8);
          grants.forEach((first, i) => {
            let bytesAfter = 0;
            for (const grant of grants.slice(i + 1)) {
              bytesAfter += grant.bytes;
              // What the bucket can hold at the first grant, plus what it earns since.
              expect(bytesAfter).toBeLessThanOrEqual(capacity + (rate * (grant.at - first.at)) / 1000 + 0.5);
            }
          });
          // It starts empty, so the whole run is paid for at the rate.
          const total = grants.reduce((sum, grant) => sum + grant.bytes, 0);
          expect(grants.at(-1)?.at ?? 0).toBeGreaterThanOrEqual(((total - 1) * 1000) / rate);
        },
      ),
      { numRuns: 60 },
    );
  });

  describe("abort", () => {
    it("rejects at once with the reason of an already-aborted signal, taking nothing", async () => {
      const clock = new FakeClock();
      const limiter = new RateLimiter(MiB, clock);
      const reason = new Error("stopped");
      await expect(limiter.take(MiB, AbortSignal.abort(reason))).rejects.toBe(reason);
      expect(await clock.runUntil(limiter.take(64 * KiB))).toBe(63);
    });

    it("rejects a waiting taker promptly, without waiting for its timer", async () => {
      const clock = new FakeClock();
      const limiter = new RateLimiter(MiB, clock);
      const controller = new AbortController();
      const waiting = track(limiter.take(MiB, controller.signal));
      await clock.advanceSettling(100);
      expect(waiting.state).toBe("pending");
      const reason = new Error("Ctrl-C");
      controller.abort(reason);
      await settle();
      expect(waiting).toEqual({ state: "rejected", reason });
      expect(clock.now()).toBe(100);
    });

    it("gives an aborted taker's bytes back to the ones behind it", async () => {
      const clock = new FakeClock();
      const limiter = new RateLimiter(MiB, clock);
      const controller = new AbortController();
      const aborted = track(limiter.take(MiB, controller.signal));
      const behind = track(limiter.take(64 * KiB));
      await clock.advanceSettling(100);
      controller.abort();
      await settle();
      expect(aborted.state).toBe("rejected");
      expect(behind.state).toBe("resolved");
      expect(clock.now()).toBe(100);
      expect(clock.pending).toBe(0);
    });

    it("removes an aborted taker from the middle of the queue and keeps the order of the rest", async () => {
      const clock = new FakeClock();
      const limiter = new RateLimiter(MiB, clock);
      const controller = new AbortController();
      const order: string[] = [];
      const first = limiter.take(64 * KiB).then(() => order.push("first"));
      const middle = track(limiter.take(64 * KiB, controller.signal));
      const last = limiter.take(64 * KiB).then(() => order.push("last"));
      controller.abort(new Error("gone"));
      await settle();
      expect(middle.state).toBe("rejected");
      const elapsed = await clock.runUntil(Promise.all([first, last]));
      expect(order).toEqual(["first", "last"]);
      expect(elapsed).toBe(125);
    });

    it("ignores an abort after the taker was served", async () => {
      const clock = new FakeClock();
      const limiter = new RateLimiter(MiB, clock);
      const controller = new AbortController();
      await clock.runUntil(limiter.take(64 * KiB, controller.signal));
      controller.abort();
      await clock.runUntil(limiter.take(64 * KiB));
      expect(clock.now()).toBe(125);
    });
  });
});

describe("RateLimiter shared by workers", () => {
  it("passes 2 MiB at 4 MiB/s, shared by four workers, in half a second of the clock", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(4 * MiB, clock);
    const elapsed = await clock.runUntil(
      Promise.all(
        [0, 1, 2, 3].map(async () => {
          for (let i = 0; i < 8; i += 1) await limiter.take(64 * KiB);
        }),
      ),
    );
    // All the time that passed is the limiter's own sleeps, one after another.
    expect(clock.slept).toBe(elapsed);
    // The bucket starts empty, so every byte is paid for at the rate (500 ms); each
    // sleep is rounded up to a whole millisecond, under 1 ms late for each of 32 takes.
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(500 + 32);
  });

  it("rejects a wait promptly when aborted, and leaves no sleep behind", async () => {
    const clock = new FakeClock();
    const limiter = new RateLimiter(KiB, clock);
    const controller = new AbortController();
    const waiting = track(limiter.take(MiB, controller.signal));
    await clock.advanceSettling(50);
    expect(waiting.state).toBe("pending");
    controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError"));
    await settle();
    expect(waiting.state).toBe("rejected");
    expect(waiting.reason).toMatchObject({ name: "TimeoutError" });
    expect(clock.pending).toBe(0);
  });
});

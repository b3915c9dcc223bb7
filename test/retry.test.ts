import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HttpStatusError } from "../src/errors.js";
import { HostLimitRefusal } from "../src/host-limits.js";
import { isRetryableStatus, MAX_RETRY_AFTER_MS, parseRetryAfter, retryDelay, withRetries } from "../src/retry.js";

describe("isRetryableStatus", () => {
  it.each([408, 429, 500, 502, 503, 504])("retries %d: the condition may pass", (status) => {
    expect(isRetryableStatus(status)).toBe(true);
  });

  it.each([200, 206, 301, 304, 400, 401, 403, 404, 410, 416, 501, 505])(
    "does not retry %d: asking again gets the same answer",
    (status) => {
      expect(isRetryableStatus(status)).toBe(false);
    },
  );
});

describe("parseRetryAfter", () => {
  const now = Date.UTC(2025, 5, 1, 12, 0, 0);

  it.each([
    ["0", 0],
    ["1", 1000],
    ["120", 120_000],
    [" 5 ", 5000],
    ["300", MAX_RETRY_AFTER_MS],
    ["301", MAX_RETRY_AFTER_MS],
    ["86400", MAX_RETRY_AFTER_MS],
    ["9".repeat(400), MAX_RETRY_AFTER_MS],
  ])("reads delay-seconds %j as %d ms, capped at 5 minutes", (header, expected) => {
    expect(parseRetryAfter(header, now)).toBe(expected);
  });

  it("reads an IMF-fixdate as the time until then", () => {
    expect(parseRetryAfter("Sun, 01 Jun 2025 12:00:30 GMT", now)).toBe(30_000);
  });

  it("reads the obsolete RFC 850 and asctime date forms", () => {
    expect(parseRetryAfter("Sunday, 01-Jun-25 12:00:30 GMT", now)).toBe(30_000);
    expect(parseRetryAfter("Sun Jun  1 12:00:30 2025", now)).toBe(30_000);
  });

  it("caps a far-away date at 5 minutes", () => {
    expect(parseRetryAfter("Mon, 02 Jun 2025 12:00:00 GMT", now)).toBe(MAX_RETRY_AFTER_MS);
  });

  it("reads a date in the past as no wait at all", () => {
    expect(parseRetryAfter("Sun, 01 Jun 2025 11:00:00 GMT", now)).toBe(0);
  });

  it.each([[null], [undefined], [""], ["soon"], ["-5"], ["1.5"], ["1e3"], ["0x10"], ["5 seconds"], [
    "2025-06-01T12:00:30Z",
  ]])("ignores the garbage %j", (header) => {
    expect(parseRetryAfter(header, now)).toBeUndefined();
  });

  it("always gives a wait between 0 and 5 minutes, or nothing", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.nat().map(String)), fc.nat(), (header, nowMs) => {
        const delay = parseRetryAfter(header, nowMs);
        if (delay !== undefined) {
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThanOrEqual(MAX_RETRY_AFTER_MS);
        }
      }),
    );
  });
});

describe("retryDelay", () => {
  const top = (): number => 1 - Number.EPSILON;

  it.each([
    [1, 500],
    [2, 1000],
    [3, 2000],
    [4, 4000],
    [6, 16_000],
    [7, 30_000],
    [50, 30_000],
    [5000, 30_000],
  ])("backs off exponentially from 0.5 s to a 30 s cap: attempt %d waits below %d ms", (attempt, cap) => {
    expect(retryDelay(attempt, undefined, () => 0.5)).toBe(cap / 2);
    expect(retryDelay(attempt, undefined, top)).toBeLessThan(cap);
    expect(retryDelay(attempt, undefined, top)).toBeGreaterThan(cap * 0.99);
  });

  it("can wait not at all: full jitter starts at zero", () => {
    expect(retryDelay(3, undefined, () => 0)).toBe(0);
  });

  it("waits as long as Retry-After says, up to 5 minutes", () => {
    expect(retryDelay(1, 12_000, () => 0)).toBe(12_000);
    expect(retryDelay(9, 0, () => 0.9)).toBe(0);
    expect(retryDelay(1, 3_600_000)).toBe(MAX_RETRY_AFTER_MS);
  });

  it("stays within [0, backoff) for any attempt and any random draw", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, draw) => {
          const delay = retryDelay(attempt, undefined, () => draw);
          expect(delay).toBeGreaterThanOrEqual(0);
          expect(delay).toBeLessThan(Math.min(30_000, 500 * 2 ** (attempt - 1)));
        },
      ),
    );
  });

  it("uses Math.random by default", () => {
    const delays = Array.from({ length: 20 }, () => retryDelay(4, undefined));
    expect(new Set(delays).size).toBeGreaterThan(1);
    for (const delay of delays) expect(delay).toBeLessThan(4000);
  });
});

describe("withRetries", () => {
  const instant = { sleep: async () => {} };
  const busy = () => new HttpStatusError("HTTP 503 from http://127.0.0.1/", { status: 503, url: "http://127.0.0.1/" });

  it("gives up after `retries` counted failures in a row", async () => {
    let attempts = 0;
    const loop = { retries: 3, clock: instant, signal: new AbortController().signal };
    const failing = withRetries(loop, async () => {
      attempts++;
      throw busy();
    });
    await expect(failing).rejects.toBeInstanceOf(HttpStatusError);
    expect(attempts).toBe(3);
  });

  it("does not count an uncounted failure (a host's connection limit): the range keeps its attempts", async () => {
    let attempts = 0;
    const limited = new HostLimitRefusal(busy(), 2);
    const loop = {
      retries: 2,
      clock: instant,
      signal: new AbortController().signal,
      uncounted: (error: unknown) => error instanceof HostLimitRefusal,
    };
    const result = await withRetries(loop, async () => {
      attempts++;
      // Ten refusals for the host's limit, then one ordinary failure, then success.
      if (attempts <= 10) throw limited;
      if (attempts === 11) throw busy();
      return "done";
    });
    expect(result).toBe("done");
    expect(attempts).toBe(12);
  });
});

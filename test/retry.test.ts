import fc from "fast-check";
import { describe, expect, it, vi } from "vitest";
import { HttpStatusError, NetworkError } from "../src/errors.js";
import { HostLimitRefusal } from "../src/errors.js";
import { isRetryableStatus, MAX_RETRY_AFTER_MS, parseRetryAfter, retryDelay, withRetries } from "../src/retry.js";
import { FakeClock } from "./support/fake-clock.js";

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
  const URL = "http://127.0.0.1:1/file.bin";
  const reset = () => new NetworkError("connection reset", { url: URL });
  const status = (code: number, retryAfterMs?: number) =>
    new HttpStatusError(`HTTP ${code}`, { status: code, url: URL, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) });

  /** A loop on a clock whose backoffs pass at once, counting its retries. */
  function loop(retries: number, extra: { progress?: () => number; signal?: AbortSignal; clock?: FakeClock } = {}) {
    const clock = extra.clock ?? new FakeClock({ instantUpToMs: Infinity });
    const counted = { retries: 0 };
    const options = {
      retries,
      clock,
      signal: extra.signal ?? new AbortController().signal,
      onRetry: () => counted.retries++,
      ...(extra.progress ? { progress: extra.progress } : {}),
    };
    return { options, clock, counted };
  }

  it("resolves with the first success, numbering the attempts from 1", async () => {
    const { options, counted } = loop(5);
    const seen: number[] = [];
    const value = await withRetries(options, async (attempt) => {
      seen.push(attempt);
      if (attempt < 3) throw reset();
      return "done";
    });
    expect(value).toBe("done");
    expect(seen).toEqual([1, 2, 3]);
    expect(counted.retries).toBe(2);
  });

  it("hands each retried failure to onRetry, so a caller can say why once", async () => {
    const retried: unknown[] = [];
    const failures = [reset(), status(503)];
    const options = { retries: 5, clock: new FakeClock({ instantUpToMs: Infinity }), signal: new AbortController().signal, onRetry: (retry: { error: unknown }) => retried.push(retry.error) };
    await withRetries(options, async (attempt) => {
      if (attempt <= failures.length) throw failures[attempt - 1];
      return "done";
    });
    expect(retried).toEqual(failures);
  });

  it("gives up with the last failure after `retries` failures in a row without progress", async () => {
    const { options, clock, counted } = loop(3);
    const failures: Error[] = [];
    const error = await withRetries(options, async () => {
      failures.push(reset());
      throw failures.at(-1);
    }).catch((caught: unknown) => caught);
    expect(failures).toHaveLength(3);
    expect(error).toBe(failures[2]);
    expect(counted.retries).toBe(2);
    expect(clock.sleeps).toHaveLength(2);
  });

  it("still makes one attempt when retries is 0", async () => {
    const { options } = loop(0);
    let attempts = 0;
    await expect(
      withRetries(options, async () => {
        attempts++;
        throw reset();
      }),
    ).rejects.toBeInstanceOf(NetworkError);
    expect(attempts).toBe(1);
  });

  it("counts a failure that moved the work forward as the first of a new run", async () => {
    let bytes = 0;
    const { options } = loop(3, { progress: () => bytes });
    let attempts = 0;
    await expect(
      withRetries(options, async () => {
        attempts++;
        // The first five attempts each bring new bytes before failing; then nothing does.
        if (attempts <= 5) bytes += 100;
        throw reset();
      }),
    ).rejects.toBeInstanceOf(NetworkError);
    // Five with progress, then two more without: the fifth already counted as the first.
    expect(attempts).toBe(7);
  });

  it("backs off longer with each failure in a row, and from the start again after progress", async () => {
    let bytes = 0;
    const { options, clock } = loop(10, { progress: () => bytes });
    const random = vi.spyOn(Math, "random").mockReturnValue(0.5);
    let attempts = 0;
    await withRetries(options, async () => {
      attempts++;
      if (attempts === 3) bytes += 1;
      if (attempts < 5) throw reset();
    }).finally(() => random.mockRestore());
    // Failures 1 and 2 in a row; the third moved the work, so it is the first of a new run.
    const backoff = (failuresInARow: number) => retryDelay(failuresInARow, undefined, () => 0.5);
    expect(clock.sleeps).toEqual([backoff(1), backoff(2), backoff(1), backoff(2)]);
  });

  it("waits as long as the server's Retry-After asks", async () => {
    const { options, clock } = loop(3);
    let attempts = 0;
    await withRetries(options, async () => {
      attempts++;
      if (attempts === 1) throw status(503, 7000);
      if (attempts === 2) throw status(429, 0);
      return attempts;
    });
    expect(clock.sleeps).toEqual([7000, 0]);
  });

  it.each<[string, () => Error]>([
    ["a 404", () => status(404)],
    ["a 403, even with Retry-After", () => status(403, 1000)],
    ["an untrusted TLS certificate", () => new NetworkError("bad cert", { url: URL, code: "ERR_TLS" })],
    ["a bug (a plain Error)", () => new TypeError("undefined is not a function")],
  ])("throws %s at once, without waiting", async (_name, failure) => {
    const { options, clock, counted } = loop(5);
    const thrown = failure();
    let attempts = 0;
    const error = await withRetries(options, async () => {
      attempts++;
      throw thrown;
    }).catch((caught: unknown) => caught);
    expect(error).toBe(thrown);
    expect(attempts).toBe(1);
    expect(clock.sleeps).toEqual([]);
    expect(counted.retries).toBe(0);
  });

  it("stops a backoff in progress when the signal aborts, with the abort's reason", async () => {
    const abort = new AbortController();
    // Backoffs never pass by themselves here: the loop can only leave its wait by the abort.
    const clock = new FakeClock();
    const { options } = loop(5, { signal: abort.signal, clock });
    let attempts = 0;
    const running = withRetries(options, async () => {
      attempts++;
      throw status(503, 60_000);
    });
    await vi.waitFor(() => expect(clock.pending).toBe(1));
    const reason = new Error("stopped by the user");
    abort.abort(reason);
    await expect(running).rejects.toBe(reason);
    expect(attempts).toBe(1);
  });

  it("throws a failure that comes after the abort as it is, without another attempt", async () => {
    const abort = new AbortController();
    const { options } = loop(5, { signal: abort.signal });
    let attempts = 0;
    const error = await withRetries(options, async () => {
      attempts++;
      abort.abort();
      throw reset();
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NetworkError);
    expect(attempts).toBe(1);
  });

  it("does not count an uncounted failure (a host's connection limit): the range keeps its attempts", async () => {
    let attempts = 0;
    const limited = new HostLimitRefusal(status(503), 2);
    const hostLimited = {
      retries: 2,
      clock: new FakeClock({ instantUpToMs: Infinity }),
      signal: new AbortController().signal,
      uncounted: (error: unknown) => error instanceof HostLimitRefusal,
    };
    const result = await withRetries(hostLimited, async () => {
      attempts++;
      // Ten refusals for the host's limit, then one ordinary failure, then success.
      if (attempts <= 10) throw limited;
      if (attempts === 11) throw status(503);
      return "done";
    });
    expect(result).toBe("done");
    expect(attempts).toBe(12);
  });
});

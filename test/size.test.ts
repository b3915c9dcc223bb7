import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { formatBytes, formatDuration, parseRate, parseSize } from "../src/size.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const TiB = 1024 * GiB;

describe("parseSize", () => {
  it.each([
    ["0", 0],
    ["1048576", 1048576],
    ["512K", 512 * KiB],
    ["4k", 4 * KiB],
    ["4M", 4 * MiB],
    ["1G", GiB],
    ["2T", 2 * TiB],
    ["4MiB", 4 * MiB],
    ["4mib", 4 * MiB],
    ["4MB", 4 * MiB],
    ["4 MB", 4 * MiB],
    ["100B", 100],
    ["100b", 100],
    ["1.5M", 1.5 * MiB],
    ["0.5K", 512],
    [".5K", 512],
    ["1.", 1],
    ["1.0001K", 1024],
    ["  8M  ", 8 * MiB],
    ["9007199254740991", Number.MAX_SAFE_INTEGER],
  ])("reads %j as %d bytes", (text, expected) => {
    expect(parseSize(text)).toBe(expected);
  });

  it("counts KB and MB in powers of 1024, as curl and wget do", () => {
    expect(parseSize("1KB")).toBe(1024);
    expect(parseSize("1MB")).toBe(parseSize("1MiB"));
  });

  it.each([[""], [" "], ["abc"], ["M"], ["-1"], ["-1M"], ["+1M"], ["NaN"], ["Infinity"], ["1e6"], ["0x10"], ["4X"], [
    "4 M B",
  ], ["4iB"], ["4Mi"], ["1,5M"], ["1.2.3"], ["4M4"]])("rejects %j as a usage error", (text) => {
    expect(() => parseSize(text)).toThrow(UsageError);
  });

  it("explains the accepted form in one line, naming what was being read", () => {
    expect(() => parseSize("abc", "min-split")).toThrow(
      'invalid min-split "abc": use a number with an optional K, M, G suffix (e.g. 4M)',
    );
    expect(() => parseSize("bad\nline")).toThrow(/^invalid size "bad\\nline": [^\n]*$/);
  });

  it.each([["9007199254740992"], ["8193T"], ["9".repeat(400)], ["100000P"]])("rejects %j as too large", (text) => {
    expect(() => parseSize(text)).toThrow(/at most 9007199254740991 bytes/);
  });

  it("reads back any byte count written as a number", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (bytes) => {
        expect(parseSize(String(bytes))).toBe(bytes);
      }),
    );
  });

  it("reads every suffix as the same power of 1024, floored", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1000, noNaN: true }),
        fc.constantFrom(["K", KiB], ["M", MiB], ["G", GiB], ["T", TiB]),
        (value, [suffix, factor]) => {
          const text = String(value);
          fc.pre(!text.includes("e"));
          expect(parseSize(`${text}${suffix}`)).toBe(Math.floor(value * factor));
        },
      ),
    );
  });

  it("returns a safe non-negative integer or throws a UsageError, for any input", () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        try {
          const bytes = parseSize(text);
          expect(Number.isSafeInteger(bytes) && bytes >= 0).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(UsageError);
        }
      }),
    );
  });
});

describe("parseRate", () => {
  it.each([
    ["10M", 10 * MiB],
    ["10M/s", 10 * MiB],
    ["512K/s", 512 * KiB],
    ["1MB/S", MiB],
    ["100", 100],
    ["1.5K", 1536],
  ])("reads %j as %d bytes per second", (text, expected) => {
    expect(parseRate(text)).toBe(expected);
  });

  it.each([["0"], ["0K/s"], ["0.5"], ["-1M"], ["fast"], ["10M/h"], ["/s"]])("rejects %j", (text) => {
    expect(() => parseRate(text)).toThrow(UsageError);
  });

  it("quotes the rate as typed", () => {
    expect(() => parseRate("abc/s")).toThrow('invalid rate "abc/s": use a number with an optional K, M, G suffix (e.g. 4M)');
  });

  it("says why a zero rate is refused", () => {
    expect(() => parseRate("0")).toThrow('invalid rate "0": must be at least 1 byte per second (e.g. 10M)');
  });
});

describe("formatBytes", () => {
  it.each([
    [0, "0 B"],
    [1, "1 B"],
    [512, "512 B"],
    [1023, "1023 B"],
    [1024, "1.00 KiB"],
    [1536, "1.50 KiB"],
    [10 * KiB, "10.0 KiB"],
    [999 * KiB, "999 KiB"],
    [1000 * KiB, "0.98 MiB"],
    [MiB - 1, "1.00 MiB"],
    [12.3 * MiB, "12.3 MiB"],
    [GiB, "1.00 GiB"],
    [1.5 * TiB, "1.50 TiB"],
    [Number.MAX_SAFE_INTEGER, "8.00 PiB"],
  ])("writes %d bytes as %j", (bytes, expected) => {
    expect(formatBytes(bytes)).toBe(expected);
  });

  it.each([[Number.NaN], [Number.POSITIVE_INFINITY], [-1]])("writes an unknown amount (%d) as --", (bytes) => {
    expect(formatBytes(bytes)).toBe("--");
  });

  it("always writes at most three digits before the unit, never in exponent form", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (bytes) => {
        const text = formatBytes(bytes);
        expect(text).toMatch(/^(?:[0-9]{1,4} B|[0-9.]{1,4} [KMGTP]iB)$/);
        if (!text.endsWith(" B")) expect(text.replace(".", "").split(" ")[0]).toHaveLength(3);
      }),
    );
  });
});

describe("formatDuration", () => {
  it.each([
    [0, "0s"],
    [0.4, "0s"],
    [5, "5s"],
    [59, "59s"],
    [59.6, "1m00s"],
    [60, "1m00s"],
    [65, "1m05s"],
    [3599, "59m59s"],
    [3600, "1h00m"],
    [2 * 3600 + 3 * 60 + 59, "2h03m"],
    [100 * 3600, "100h00m"],
  ])("writes %d seconds as %j", (seconds, expected) => {
    expect(formatDuration(seconds)).toBe(expected);
  });

  it.each([[Number.NaN], [Number.POSITIVE_INFINITY], [Number.NEGATIVE_INFINITY], [-1]])(
    "writes an unknown duration (%d) as --",
    (seconds) => {
      expect(formatDuration(seconds)).toBe("--");
    },
  );
});

/**
 * Property tests that cut across the pure parsers: round-trips between what rangeget
 * sends and what a server answers, and hostile inputs. The per-module test files hold
 * the table tests and each module's own properties; these are the ones they lack.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { parseContentDisposition } from "../src/filename.js";
import { formatRange, parseContentRange, parseHttpDate, parseUnsatisfiedRange } from "../src/http-headers.js";
import { MAX_RETRY_AFTER_MS, parseRetryAfter, retryDelay } from "../src/retry.js";
import { formatBytes, parseRate, parseSize } from "../src/size.js";

/** start ≤ end < size, all safe integers. */
const satisfiableRange = fc
  .tuple(fc.maxSafeNat(), fc.maxSafeNat(), fc.maxSafeNat())
  .map((values) => values.sort((a, b) => a - b) as [number, number, number])
  .filter(([, end, size]) => end < size);

/** What a server following RFC 9110 14.4 answers to `Range: bytes=start-end` on a file of `size` bytes. */
function contentRangeFor(range: string, size: number): string {
  const match = /^bytes=([0-9]+)-([0-9]+)$/.exec(range);
  if (!match) throw new Error(`not a single byte range: ${range}`);
  const start = Number(match[1]);
  const end = Math.min(Number(match[2]), size - 1);
  return `bytes ${start}-${end}/${size}`;
}

describe("Range and Content-Range", () => {
  it("reads back what a server answers to any range rangeget asks for", () => {
    fc.assert(
      fc.property(satisfiableRange, ([start, end, size]) => {
        const asked = formatRange(start, end);
        expect(parseContentRange(contentRangeFor(asked, size))).toEqual({ start, end, size });
      }),
    );
  });

  it("accepts bytes a-b/n exactly when a ≤ b < n", () => {
    const number = fc.oneof(fc.nat(1000), fc.maxSafeNat());
    fc.assert(
      fc.property(number, number, number, (start, end, size) => {
        const parsed = parseContentRange(`bytes ${start}-${end}/${size}`);
        if (start <= end && end < size) expect(parsed).toEqual({ start, end, size });
        else expect(parsed).toBeUndefined();
      }),
    );
  });

  it("reads the range unit in any case, and ignores whitespace around the value", () => {
    const unit = fc.constantFrom("bytes", "BYTES", "Bytes", "bYtEs");
    const space = fc.constantFrom("", " ", "\t", "  ");
    fc.assert(
      fc.property(satisfiableRange, unit, space, space, ([start, end, size], name, before, after) => {
        expect(parseContentRange(`${before}${name} ${start}-${end}/${size}${after}`)).toEqual({ start, end, size });
      }),
    );
  });

  it("never reads a number past 2^53 - 1, however many digits it has", () => {
    const huge = fc.bigInt({ min: BigInt(Number.MAX_SAFE_INTEGER) + 1n, max: 10n ** 30n }).map(String);
    fc.assert(
      fc.property(huge, fc.nat(), fc.constantFrom(0, 1, 2), (big, small, where) => {
        const parts = [String(small), String(small), "*"];
        parts[where] = big;
        expect(parseContentRange(`bytes ${parts[0]}-${parts[1]}/${parts[2]}`)).toBeUndefined();
        expect(parseUnsatisfiedRange(`bytes */${big}`)).toBeUndefined();
      }),
    );
  });

  it("keeps the satisfied and unsatisfied forms apart", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), satisfiableRange, (total, [start, end, size]) => {
        expect(parseUnsatisfiedRange(`bytes */${total}`)).toBe(total);
        expect(parseContentRange(`bytes */${total}`)).toBeUndefined();
        expect(parseUnsatisfiedRange(`bytes ${start}-${end}/${size}`)).toBeUndefined();
      }),
    );
  });

  it("formats every valid range as one bytes=a-b whose numbers read back", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.maxSafeNat(), (a, b) => {
        const [start, end] = a <= b ? [a, b] : [b, a];
        const match = /^bytes=([0-9]+)-([0-9]+)$/.exec(formatRange(start, end));
        expect(match).not.toBeNull();
        expect([Number(match![1]), Number(match![2])]).toEqual([start, end]);
      }),
    );
  });
});

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const pad = (n: number) => String(n).padStart(2, "0");

/** RFC 9110 5.6.7's three forms of one instant (whole seconds). */
function httpDates(ms: number): { imf: string; rfc850: string; asctime: string } {
  const d = new Date(ms);
  const time = `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const day = d.getUTCDay();
  const month = MONTHS[d.getUTCMonth()];
  return {
    imf: d.toUTCString(),
    rfc850: `${LONG_DAYS[day]}, ${pad(d.getUTCDate())}-${month}-${pad(d.getUTCFullYear() % 100)} ${time} GMT`,
    asctime: `${DAYS[day]} ${month} ${String(d.getUTCDate()).padStart(2, " ")} ${time} ${d.getUTCFullYear()}`,
  };
}

describe("Retry-After", () => {
  const now = fc.integer({ min: Date.UTC(2000, 0, 1), max: Date.UTC(2060, 0, 1) });

  it("reads delay-seconds as that many seconds, capped at 5 minutes, whitespace and all", () => {
    const space = fc.constantFrom("", " ", "\t");
    fc.assert(
      fc.property(fc.nat(100_000), now, space, space, (seconds, nowMs, before, after) => {
        expect(parseRetryAfter(`${before}${seconds}${after}`, nowMs)).toBe(Math.min(seconds * 1000, MAX_RETRY_AFTER_MS));
      }),
    );
  });

  it("caps delay-seconds of any length, even past what a number can hold", () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[1-9][0-9]{3,400}$/), now, (digits, nowMs) => {
        expect(parseRetryAfter(digits, nowMs)).toBe(MAX_RETRY_AFTER_MS);
      }),
    );
  });

  it("reads an HTTP-date in any of its three forms as the time until then, between 0 and 5 minutes", () => {
    fc.assert(
      fc.property(now, fc.integer({ min: -86_400, max: 86_400 }), (nowMs, offsetSeconds) => {
        // RFC 850 years have two digits: keep the date within 50 years of now.
        const at = Math.floor((nowMs + offsetSeconds * 1000) / 1000) * 1000;
        const expected = Math.min(Math.max(at - nowMs, 0), MAX_RETRY_AFTER_MS);
        const forms = httpDates(at);
        expect(parseRetryAfter(forms.imf, nowMs)).toBe(expected);
        expect(parseRetryAfter(forms.rfc850, nowMs)).toBe(expected);
        expect(parseRetryAfter(forms.asctime, nowMs)).toBe(expected);
      }),
    );
  });

  it("three forms of one date are one instant", () => {
    fc.assert(
      fc.property(now, (ms) => {
        const at = Math.floor(ms / 1000) * 1000;
        const forms = httpDates(at);
        expect([parseHttpDate(forms.imf, ms), parseHttpDate(forms.rfc850, ms), parseHttpDate(forms.asctime, ms)]).toEqual([at, at, at]);
      }),
    );
  });

  it("makes the retry wait exactly what the server asked, whatever the attempt and the dice", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1000 }),
        fc.oneof(fc.nat(MAX_RETRY_AFTER_MS * 2), fc.integer({ min: -1000, max: -1 })),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (attempt, retryAfterMs, draw) => {
          expect(retryDelay(attempt, retryAfterMs, () => draw)).toBe(Math.min(Math.max(retryAfterMs, 0), MAX_RETRY_AFTER_MS));
        },
      ),
    );
  });

  it("never gives a wait for something that is neither digits nor a date", () => {
    fc.assert(
      fc.property(fc.string(), now, (text, nowMs) => {
        fc.pre(!/^\s*[0-9]+\s*$/.test(text) && parseHttpDate(text, nowMs) === undefined);
        expect(parseRetryAfter(text, nowMs)).toBeUndefined();
      }),
    );
  });
});

describe("size and rate strings", () => {
  const KiB = 1024;
  const units = [
    ["", 1],
    ["K", KiB],
    ["M", KiB ** 2],
    ["G", KiB ** 3],
    ["T", KiB ** 4],
  ] as const;
  const unit = fc.constantFrom(...units);
  const suffixStyle = fc.constantFrom("", "B", "iB", "b", "ib", "IB");
  const randomCase = (text: string, flips: boolean[]) =>
    [...text].map((char, i) => (flips[i % flips.length] ? char.toLowerCase() : char.toUpperCase())).join("");

  it("reads back what formatBytes writes, within its three significant digits", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (bytes) => {
        const text = formatBytes(bytes);
        // Just under 2^53 the display rounds up to "8.00 PiB", one byte past what a size may be.
        fc.pre(bytes < 7.99 * KiB ** 5);
        const read = parseSize(text);
        // Three significant digits: "100 KiB" stands for anything in [99.5, 100.5) KiB.
        expect(Math.abs(read - bytes)).toBeLessThanOrEqual(bytes * 0.005 + 1);
      }),
    );
  });

  it("reads every spelling of a unit alike: K, k, KB, KiB, kib", () => {
    fc.assert(
      fc.property(fc.nat(100_000), unit, suffixStyle, fc.array(fc.boolean(), { minLength: 1, maxLength: 4 }), (n, [letter, factor], style, flips) => {
        fc.pre(letter !== "" || style === "B" || style === "b" || style === "");
        fc.pre(n * factor <= Number.MAX_SAFE_INTEGER);
        const written = letter === "" ? `${n}${style}` : `${n}${randomCase(letter + style, flips)}`;
        expect(parseSize(written)).toBe(n * factor);
      }),
    );
  });

  it("ignores spaces around the text and between the number and its unit", () => {
    const space = fc.constantFrom("", " ", "  ");
    fc.assert(
      fc.property(fc.nat(100_000), unit, space, space, space, (n, [letter, factor], before, between, after) => {
        fc.pre(n * factor <= Number.MAX_SAFE_INTEGER);
        expect(parseSize(`${before}${n}${between}${letter}${after}`)).toBe(n * factor);
      }),
    );
  });

  it("grows with the number for any one unit", () => {
    // "1234.056": a decimal with up to three fraction digits, as people type them.
    const decimal = fc.tuple(fc.nat(4095), fc.nat(999)).map(([whole, thousandths]) => ({
      text: `${whole}.${String(thousandths).padStart(3, "0")}`,
      value: whole * 1000 + thousandths,
    }));
    fc.assert(
      fc.property(decimal, decimal, unit, (a, b, [letter]) => {
        const [low, high] = a.value <= b.value ? [a, b] : [b, a];
        expect(parseSize(`${low.text}${letter}`)).toBeLessThanOrEqual(parseSize(`${high.text}${letter}`));
      }),
    );
  });

  it("reads a rate as its size, with or without /s", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), unit, fc.constantFrom("", "/s", "/S", " /s"), (n, [letter, factor], per) => {
        fc.pre(n * factor <= Number.MAX_SAFE_INTEGER);
        expect(parseRate(`${n}${letter}${per}`)).toBe(n * factor);
      }),
    );
  });

  it("gives a positive safe rate or a UsageError, for any input", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `${s}/s`)), (text) => {
        try {
          const rate = parseRate(text);
          expect(Number.isSafeInteger(rate) && rate > 0).toBe(true);
        } catch (error) {
          expect(error).toBeInstanceOf(UsageError);
        }
      }),
    );
  });
});

describe("Content-Disposition", () => {
  /** RFC 8187 3.2.1 value-chars for ISO-8859-1 bytes: attr-char as is, the rest %XX. */
  function encodeLatin1(text: string): string {
    return [...Buffer.from(text, "latin1")]
      .map((byte) => {
        const char = String.fromCharCode(byte);
        return /[!#$&+\-.^_`|~0-9A-Za-z]/.test(char) ? char : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
      })
      .join("");
  }
  const latin1Name = fc.string({ unit: fc.integer({ min: 0x20, max: 0xff }).map((code) => String.fromCharCode(code)), minLength: 1 });
  const otherParameter = fc.constantFrom("size=42", 'creation-date="Wed, 12 Feb 1997 16:29:51 -0500"', "x-flag=on", "name=field");

  it("reads back any ISO-8859-1 name sent as filename*, in any charset case and with any language tag", () => {
    fc.assert(
      fc.property(latin1Name, fc.constantFrom("iso-8859-1", "ISO-8859-1", "Iso-8859-1"), fc.constantFrom("", "en", "de-CH"), (name, charset, language) => {
        expect(parseContentDisposition(`attachment; filename*=${charset}'${language}'${encodeLatin1(name)}`)).toBe(name);
      }),
    );
  });

  it("is not swayed by other parameters around the name", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme-ascii", minLength: 1 }),
        fc.array(otherParameter, { maxLength: 2 }),
        fc.array(otherParameter, { maxLength: 2 }),
        (name, before, after) => {
          fc.pre(new Set([...before, ...after].map((p) => p.split("=")[0])).size === before.length + after.length);
          const quoted = `"${name.replace(/["\\]/g, "\\$&")}"`;
          const header = ["attachment", ...before, `filename=${quoted}`, ...after].join("; ");
          expect(parseContentDisposition(header)).toBe(name);
        },
      ),
    );
  });

  it("never throws, whatever the header", () => {
    const piece = fc.constantFrom("attachment", ";", "=", '"', "\\", "'", "%", "%zz", "filename", "filename*", "UTF-8", "''", " ", "\t", "\u0000", "é");
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), fc.array(piece, { maxLength: 20 }).map((parts) => parts.join(""))), (header) => {
        const name = parseContentDisposition(header);
        expect(name === undefined || typeof name === "string").toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

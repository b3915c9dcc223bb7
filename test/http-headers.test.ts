import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  formatRange,
  ifRangeValue,
  isStrongEtag,
  parseContentLength,
  parseContentRange,
  parseHttpDate,
  parseUnsatisfiedRange,
} from "../src/http-headers.js";

describe("parseContentRange", () => {
  it.each([
    ["bytes 0-499/1234", { start: 0, end: 499, size: 1234 }],
    ["bytes 500-1233/1234", { start: 500, end: 1233, size: 1234 }],
    ["bytes 0-0/1", { start: 0, end: 0, size: 1 }],
    ["bytes 42-1233/*", { start: 42, end: 1233, size: undefined }],
    ["BYTES 0-9/10", { start: 0, end: 9, size: 10 }],
    ["Bytes 0-9/10", { start: 0, end: 9, size: 10 }],
    ["  bytes 0-9/10  ", { start: 0, end: 9, size: 10 }],
    // The request's `bytes=` copied into the answer (aria2 #509, swift3 #38): unambiguous.
    ["bytes=0-1048575/8388608", { start: 0, end: 1048575, size: 8388608 }],
    ["Bytes=42-1233/*", { start: 42, end: 1233, size: undefined }],
    ["bytes 9007199254740990-9007199254740990/9007199254740991", {
      start: 9007199254740990,
      end: 9007199254740990,
      size: 9007199254740991,
    }],
  ])("reads %j", (header, expected) => {
    expect(parseContentRange(header)).toEqual(expected);
  });

  it.each([
    [null],
    [undefined],
    [""],
    ["bytes"],
    ["bytes */1234"],
    ["bytes 5-4/10"],
    ["bytes 0-10/10"],
    ["bytes 0-9/0"],
    ["bytes -1-9/10"],
    ["bytes 0-9/-10"],
    ["bytes 0 - 9/10"],
    ["bytes  0-9/10"],
    ["bytes==0-9/10"],
    ["bytes= 0-9/10"],
    ["bytes =0-9/10"],
    ["bytes=0-9"],
    ["bytes=-9/10"],
    ["bytes=5-/10"],
    ["bytes=0-9,20-29/100"],
    ["bytes=0-10/10"],
    ["=0-9/10"],
    ["0-9/10"],
    ["items 0-9/10"],
    ["bytes 0x0-9/10"],
    ["bytes 1.5-9/10"],
    ["bytes 0-9/10, bytes 0-9/10"],
    ["bytes 0-9"],
    ["bytes 0-9/"],
    ["bytes 0-9007199254740992/*"],
    ["bytes 0-9/99999999999999999999"],
  ])("rejects %j", (header) => {
    expect(parseContentRange(header)).toBeUndefined();
  });

  it("round-trips every valid range", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.maxSafeNat(), fc.maxSafeNat(), fc.boolean(), (x, y, z, known) => {
        const [start, end, size] = [x, y, z].sort((a, b) => a - b) as [number, number, number];
        fc.pre(end < size);
        const header = `bytes ${start}-${end}/${known ? size : "*"}`;
        expect(parseContentRange(header)).toEqual({ start, end, size: known ? size : undefined });
      }),
    );
  });

  it("reads `bytes=a-b/N` exactly as `bytes a-b/N`, whatever a, b and N", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.maxSafeNat(), fc.oneof(fc.maxSafeNat().map(String), fc.constant("*")), (start, end, size) => {
        expect(parseContentRange(`bytes=${start}-${end}/${size}`)).toEqual(parseContentRange(`bytes ${start}-${end}/${size}`));
      }),
    );
  });

  it("never returns a range that is empty, backwards or past the size", () => {
    fc.assert(
      fc.property(fc.string(), (header) => {
        const range = parseContentRange(header);
        if (range === undefined) return;
        expect(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end)).toBe(true);
        expect(range.start).toBeLessThanOrEqual(range.end);
        if (range.size !== undefined) expect(range.end).toBeLessThan(range.size);
      }),
    );
  });
});

describe("parseUnsatisfiedRange", () => {
  it.each([
    ["bytes */1234", 1234],
    ["bytes */0", 0],
    ["BYTES */7", 7],
    ["bytes=*/8388608", 8388608],
  ])("reads the complete length from %j", (header, expected) => {
    expect(parseUnsatisfiedRange(header)).toBe(expected);
  });

  it.each([[null], [undefined], [""], ["bytes */*"], ["bytes 0-9/10"], ["bytes */-1"], ["bytes */1e3"], ["bytes==*/10"], ["bytes= */10"], [
    "bytes */99999999999999999999",
  ]])("rejects %j", (header) => {
    expect(parseUnsatisfiedRange(header)).toBeUndefined();
  });
});

describe("formatRange", () => {
  it("writes an inclusive byte range", () => {
    expect(formatRange(0, 499)).toBe("bytes=0-499");
    expect(formatRange(7, 7)).toBe("bytes=7-7");
  });

  it.each([
    [-1, 5],
    [5, 4],
    [0.5, 4],
    [0, Number.POSITIVE_INFINITY],
  ])("refuses the impossible range %d-%d", (start, end) => {
    expect(() => formatRange(start, end)).toThrow(RangeError);
  });

  it("is read back by the Content-Range parser", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), fc.maxSafeNat(), (a, b) => {
        const [start, end] = a <= b ? [a, b] : [b, a];
        const asResponse = formatRange(start, end).replace("bytes=", "bytes ") + "/*";
        expect(parseContentRange(asResponse)).toEqual({ start, end, size: undefined });
      }),
    );
  });
});

describe("isStrongEtag", () => {
  it.each([['"abc"'], ['""'], ['"5f3-1a2b3c"'], ['"caf\u00e9"']])("accepts the strong tag %s", (etag) => {
    expect(isStrongEtag(etag)).toBe(true);
  });

  it.each([[null], [undefined], [""], ['W/"abc"'], ['w/"abc"'], ["abc"], ['"abc'], ['"a"b"'], ['"a b"'], ['"abc" ']])(
    "rejects %j",
    (etag) => {
      expect(isStrongEtag(etag)).toBe(false);
    },
  );
});

describe("ifRangeValue", () => {
  const date = "Sun, 06 Nov 1994 08:49:37 GMT";
  const now = Date.UTC(2025, 0, 1);

  it("prefers a strong ETag", () => {
    expect(ifRangeValue({ etag: '"v1"', lastModified: date }, now)).toBe('"v1"');
  });

  it("falls back to Last-Modified when the ETag is weak, since If-Range forbids weak tags", () => {
    expect(ifRangeValue({ etag: 'W/"v1"', lastModified: date }, now)).toBe(date);
  });

  it("falls back to Last-Modified when there is no ETag", () => {
    expect(ifRangeValue({ etag: null, lastModified: date }, now)).toBe(date);
  });

  it("sends a date only when the answer's Date is a second or more later, reading two-digit years against the clock", () => {
    const modified = "Sunday, 06-Nov-94 08:49:37 GMT";
    expect(ifRangeValue({ etag: null, lastModified: modified, date: "Sunday, 06-Nov-94 08:49:38 GMT" }, now)).toBe(modified);
    expect(ifRangeValue({ etag: null, lastModified: modified, date: "Sunday, 06-Nov-94 08:49:37 GMT" }, now)).toBeUndefined();
    // Read in 2025, "94" is 1994 and "40" is 2040 (RFC 9110 5.6.7): the Date is later, so the date is strong.
    const answered = "Sunday, 01-Jan-40 00:00:00 GMT";
    expect(ifRangeValue({ etag: null, lastModified: modified, date: answered }, now)).toBe(modified);
    // Read in 2080, "94" is 2094, after that Date: not a strong date.
    expect(ifRangeValue({ etag: null, lastModified: modified, date: answered }, Date.UTC(2080, 0, 1))).toBeUndefined();
  });

  it("sends nothing when there is no usable validator", () => {
    expect(ifRangeValue({ etag: 'W/"v1"', lastModified: null }, now)).toBeUndefined();
    expect(ifRangeValue({ etag: null, lastModified: null }, now)).toBeUndefined();
    expect(ifRangeValue({ etag: null, lastModified: "yesterday" }, now)).toBeUndefined();
  });
});

describe("parseContentLength", () => {
  it.each([
    ["0", 0],
    ["1234", 1234],
    [" 1234 ", 1234],
    ["9007199254740991", 9007199254740991],
    ["42, 42", 42],
  ])("reads %j", (header, expected) => {
    expect(parseContentLength(header)).toBe(expected);
  });

  it.each([[null], [undefined], [""], ["-1"], ["1.5"], ["1e3"], ["0x10"], ["12 34"], ["42, 43"], [
    "9007199254740992",
  ]])("rejects %j", (header) => {
    expect(parseContentLength(header)).toBeUndefined();
  });

  it("reads back every safe integer", () => {
    fc.assert(
      fc.property(fc.maxSafeNat(), (n) => {
        expect(parseContentLength(String(n))).toBe(n);
      }),
    );
  });
});

describe("parseHttpDate", () => {
  const expected = Date.UTC(1994, 10, 6, 8, 49, 37);
  const now = Date.UTC(2025, 0, 1);

  it.each([
    ["the IMF-fixdate form", "Sun, 06 Nov 1994 08:49:37 GMT"],
    ["the obsolete RFC 850 form", "Sunday, 06-Nov-94 08:49:37 GMT"],
    ["the obsolete asctime form", "Sun Nov  6 08:49:37 1994"],
  ])("reads %s as UTC", (_form, header) => {
    expect(parseHttpDate(header, now)).toBe(expected);
  });

  it("reads a two-digit year no more than 50 years ahead as this century", () => {
    expect(parseHttpDate("Tuesday, 01-Jan-30 00:00:00 GMT", now)).toBe(Date.UTC(2030, 0, 1));
    expect(parseHttpDate("Monday, 01-Jan-80 00:00:00 GMT", now)).toBe(Date.UTC(1980, 0, 1));
  });

  it.each([
    [""],
    ["yesterday"],
    ["1994-11-06T08:49:37Z"],
    ["Sun, 06 Nov 1994 08:49:37 PST"],
    ["sun, 06 nov 1994 08:49:37 gmt"],
    ["Sun, 31 Feb 1994 08:49:37 GMT"],
    ["Sun, 06 Nov 1994 24:00:00 GMT"],
    ["Sun, 6 Nov 1994 08:49:37 GMT"],
  ])("rejects %j", (header) => {
    expect(parseHttpDate(header, now)).toBeUndefined();
  });

  it("reads back every date it could be given", () => {
    fc.assert(
      fc.property(fc.date({ min: new Date("1970-01-01"), max: new Date("9999-12-31"), noInvalidDate: true }), (date) => {
        const whole = Math.floor(date.getTime() / 1000) * 1000;
        expect(parseHttpDate(new Date(whole).toUTCString(), now)).toBe(whole);
      }),
    );
  });
});

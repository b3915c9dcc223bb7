import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseChecksum } from "../src/checksum.js";
import { UsageError } from "../src/errors.js";
import type { Checksum } from "../src/types.js";

const DIGEST_LENGTHS: [Checksum["algorithm"], number][] = [
  ["sha256", 64],
  ["sha512", 128],
  ["sha1", 40],
  ["md5", 32],
];

describe("parseChecksum", () => {
  it.each(DIGEST_LENGTHS)("reads %s=<%d hex digits>", (algorithm, length) => {
    const hex = "ab".repeat(length / 2);
    expect(parseChecksum(`${algorithm}=${hex}`)).toEqual({ algorithm, hex });
  });

  it("accepts any case and stores the digest in lower case", () => {
    const hex = "0123456789ABCDEF".repeat(4);
    expect(parseChecksum(`SHA256=${hex}`)).toEqual({ algorithm: "sha256", hex: hex.toLowerCase() });
    expect(parseChecksum(`Md5=${"F".repeat(32)}`)).toEqual({ algorithm: "md5", hex: "f".repeat(32) });
  });

  it("ignores surrounding whitespace", () => {
    expect(parseChecksum(`  sha1=${"0".repeat(40)}\n`)).toEqual({ algorithm: "sha1", hex: "0".repeat(40) });
  });

  it.each([
    [""],
    ["sha256"],
    ["sha256="],
    [`=${"a".repeat(64)}`],
    [`sha256:${"a".repeat(64)}`],
    [`sha256 = ${"a".repeat(64)}`],
    [`sha256=${"a".repeat(63)}`],
    [`sha256=${"a".repeat(65)}`],
    [`sha256=${"a".repeat(32)}`],
    [`md5=${"a".repeat(64)}`],
    [`sha256=${"g".repeat(64)}`],
    [`sha384=${"a".repeat(96)}`],
    [`crc32=${"a".repeat(8)}`],
    [`constructor=${"a".repeat(64)}`],
    [`sha256=${"a".repeat(64)}=`],
    ["a".repeat(64)],
  ])("rejects %j as a usage error", (text) => {
    expect(() => parseChecksum(text)).toThrow(UsageError);
  });

  it("names every accepted form in a one-line message", () => {
    expect(() => parseChecksum("sha256=xyz")).toThrow(
      'invalid checksum "sha256=xyz": use sha256=<64 hex digits>, sha512=<128 hex digits>, sha1=<40 hex digits> or md5=<32 hex digits>',
    );
  });

  it("accepts exactly the well-formed digests", () => {
    const wellFormed = fc
      .constantFrom(...DIGEST_LENGTHS)
      .chain(([algorithm, length]) =>
        fc
          .string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), minLength: length, maxLength: length })
          .map((hex) => ({ algorithm, hex })),
      );
    fc.assert(
      fc.property(wellFormed, ({ algorithm, hex }) => {
        expect(parseChecksum(`${algorithm}=${hex}`)).toEqual({ algorithm, hex: hex.toLowerCase() });
      }),
    );
    fc.assert(
      fc.property(fc.string(), (text) => {
        fc.pre(!/^(sha256|sha512|sha1|md5)=[0-9a-f]+$/i.test(text.trim()));
        expect(() => parseChecksum(text)).toThrow(UsageError);
      }),
    );
  });
});

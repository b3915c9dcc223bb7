import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { algorithmOfHexLength, digestMatches, expectedChecksumOf, parseChecksum } from "../src/checksum.js";
import { UsageError } from "../src/errors.js";
import type { Checksum } from "../src/types.js";

const DIGEST_LENGTHS: [Checksum["algorithm"], number][] = [
  ["sha256", 64],
  ["sha384", 96],
  ["sha512", 128],
  ["sha1", 40],
  ["md5", 32],
];

/** The SRI token and the hex digest of `text` under `algorithm`, as `openssl dgst -binary | base64` would give. */
function digestOf(algorithm: Checksum["algorithm"], text: string): { hex: string; sri: string } {
  const bytes = createHash(algorithm).update(text).digest();
  return { hex: bytes.toString("hex"), sri: `${algorithm}-${bytes.toString("base64")}` };
}

describe("parseChecksum", () => {
  it.each(DIGEST_LENGTHS)("reads %s=<%d hex digits>", (algorithm, length) => {
    const hex = "ab".repeat(length / 2);
    expect(parseChecksum(`${algorithm}=${hex}`)).toEqual({ algorithm, hex, accepted: [hex] });
  });

  it.each([
    ["sha-256=", "sha256"],
    ["SHA-256=", "sha256"],
    ["sha256:", "sha256"],
    ["SHA256:", "sha256"],
    ["sha-256:", "sha256"],
    ["SHA256=", "sha256"],
    ["sha-512=", "sha512"],
    ["sha-384=", "sha384"],
    ["sha-1=", "sha1"],
    ["md5:", "md5"],
  ] as const)("reads the spelling %s<hex> (aria2 writes sha-256=, Docker sha256:)", (prefix, algorithm) => {
    const hex = "cd".repeat(algorithmLength(algorithm) / 2);
    expect(parseChecksum(`${prefix}${hex.toUpperCase()}`)).toEqual({ algorithm, hex, accepted: [hex] });
  });

  it("accepts any case and stores the digest in lower case", () => {
    const hex = "0123456789ABCDEF".repeat(4);
    expect(parseChecksum(`SHA256=${hex}`)).toMatchObject({ algorithm: "sha256", hex: hex.toLowerCase() });
    expect(parseChecksum(`Md5=${"F".repeat(32)}`)).toMatchObject({ algorithm: "md5", hex: "f".repeat(32) });
  });

  it("ignores surrounding whitespace", () => {
    expect(parseChecksum(`  sha1=${"0".repeat(40)}\n`)).toMatchObject({ algorithm: "sha1", hex: "0".repeat(40) });
  });

  it.each(["sha256", "sha384", "sha512"] as const)("reads SRI %s-<base64> into its hex digest", (algorithm) => {
    const { hex, sri } = digestOf(algorithm, "hello");
    expect(parseChecksum(sri)).toEqual({ algorithm, hex, accepted: [hex] });
  });

  it("reads SRI with base64url digits, without padding, and with ?options (ignored, as the spec says)", () => {
    const { hex, sri } = digestOf("sha512", "a string whose digest has + and / in base64?");
    const base64 = sri.slice("sha512-".length);
    expect(parseChecksum(`sha512-${base64.replace(/\+/g, "-").replace(/\//g, "_")}`).hex).toBe(hex);
    expect(parseChecksum(`sha512-${base64.replace(/=+$/, "")}`).hex).toBe(hex);
    expect(parseChecksum(`${sri}?ct=application/octet-stream`).hex).toBe(hex);
  });

  it.each([
    ["sha256 and sha512: sha512 decides", ["sha256", "sha512"], "sha512"],
    ["sha512 first, then sha384: sha512 decides", ["sha512", "sha384"], "sha512"],
    ["sha384 and sha256: sha384 decides", ["sha256", "sha384"], "sha384"],
    ["three of them", ["sha384", "sha256", "sha512"], "sha512"],
  ] as const)("several SRI tokens, %s", (_what, algorithms, strongest) => {
    const text = algorithms.map((algorithm) => digestOf(algorithm, "x").sri).join(" ");
    const { hex } = digestOf(strongest, "x");
    expect(parseChecksum(text)).toEqual({ algorithm: strongest, hex, accepted: [hex] });
  });

  it("several digests of the strongest algorithm: any of them passes", () => {
    const one = digestOf("sha512", "one");
    const two = digestOf("sha512", "two");
    const parsed = parseChecksum(`${digestOf("sha256", "one").sri}  ${one.sri}\t${two.sri}`);
    expect(parsed.accepted).toEqual([one.hex, two.hex]);
    expect(digestMatches(parsed, one.hex)).toBe(true);
    expect(digestMatches(parsed, two.hex)).toBe(true);
    expect(digestMatches(parsed, digestOf("sha256", "one").hex)).toBe(false);
  });

  it("mixes hex and SRI tokens: the strongest decides", () => {
    const sha512 = digestOf("sha512", "m");
    expect(parseChecksum(`sha256=${digestOf("sha256", "m").hex} ${sha512.sri}`)).toMatchObject({ algorithm: "sha512", hex: sha512.hex });
    expect(parseChecksum(`${digestOf("sha256", "m").sri} sha512=${sha512.hex}`)).toMatchObject({ algorithm: "sha512", hex: sha512.hex });
  });

  it("ignores an SRI token of an algorithm it does not know when another one is there (SRI's rule)", () => {
    const { hex, sri } = digestOf("sha256", "k");
    expect(parseChecksum(`sha3_256-AAAA ${sri}`)).toMatchObject({ algorithm: "sha256", hex });
    expect(parseChecksum(`sha1-${Buffer.alloc(20).toString("base64")} ${sri}`)).toMatchObject({ algorithm: "sha256", hex });
  });

  it.each([
    [""],
    ["   "],
    ["sha256"],
    ["sha256="],
    [`=${"a".repeat(64)}`],
    [`sha256 = ${"a".repeat(64)}`],
    [`sha256=${"a".repeat(63)}`],
    [`sha256=${"a".repeat(65)}`],
    [`sha256=${"a".repeat(32)}`],
    [`md5=${"a".repeat(64)}`],
    [`sha256=${"g".repeat(64)}`],
    [`sha384=${"a".repeat(64)}`],
    [`crc32=${"a".repeat(8)}`],
    [`constructor=${"a".repeat(64)}`],
    [`__proto__=${"a".repeat(64)}`],
    [`sha256=${"a".repeat(64)}=`],
    ["a".repeat(64)],
    [`sha--256=${"a".repeat(64)}`],
    [`sha256-${"a".repeat(64)}`],
    ["sha256-AAAA"],
    [`sha512-${Buffer.alloc(64).toString("base64")}!`],
    [`sha256-${Buffer.alloc(32).toString("base64")}===`],
    ["sha3_256-AAAA"],
    [`sha1-${Buffer.alloc(20).toString("base64")}`],
    [`sha256=${"a".repeat(64)} sha512=nothex`],
    [`${digestOf("sha512", "x").sri} sha256-short`],
  ])("rejects %j as a usage error", (text) => {
    expect(() => parseChecksum(text)).toThrow(UsageError);
  });

  it("names the accepted forms in a one-line message, and hints at hex given as SRI", () => {
    expect(() => parseChecksum("sha256=xyz")).toThrow(
      'invalid checksum "sha256=xyz" (cannot read "sha256=xyz"): use sha256=<64 hex digits> (also sha384, sha512, sha1, md5; sha-256= and sha256: too) or SRI sha256-<base64> (sha384-, sha512-)',
    );
    expect(() => parseChecksum(`sha256=${"a".repeat(63)}`)).toThrow("a sha256 digest has 64 hex digits, not 63");
    expect(() => parseChecksum(`sha256-${"a".repeat(64)}`)).toThrow("for a hex digest write sha256=<hex>");
  });

  it("accepts exactly the well-formed hex digests", () => {
    const wellFormed = fc
      .constantFrom(...DIGEST_LENGTHS)
      .chain(([algorithm, length]) =>
        fc
          .string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF"), minLength: length, maxLength: length })
          .map((hex) => ({ algorithm, hex })),
      );
    fc.assert(
      fc.property(wellFormed, fc.constantFrom("=", ":"), ({ algorithm, hex }, separator) => {
        expect(parseChecksum(`${algorithm}${separator}${hex}`)).toMatchObject({ algorithm, hex: hex.toLowerCase() });
      }),
    );
    fc.assert(
      fc.property(fc.string(), (text) => {
        fc.pre(!/^(sha-?(256|384|512|1)|md5)[=:][0-9a-f]+$/i.test(text.trim()) && !/^sha(256|384|512)-/i.test(text.trim()));
        expect(() => parseChecksum(text)).toThrow(UsageError);
      }),
    );
  });

  it("reads back every SRI digest of random bytes", () => {
    fc.assert(
      fc.property(fc.constantFrom("sha256", "sha384", "sha512" as const), fc.uint8Array(), (algorithm, bytes) => {
        const digest = createHash(algorithm).update(bytes).digest();
        expect(parseChecksum(`${algorithm}-${digest.toString("base64")}`).hex).toBe(digest.toString("hex"));
      }),
    );
  });
});

describe("expectedChecksumOf (the library's object form)", () => {
  it("lower-cases the digest and checks its length", () => {
    expect(expectedChecksumOf({ algorithm: "sha384", hex: "A".repeat(96) })).toEqual({ algorithm: "sha384", hex: "a".repeat(96), accepted: ["a".repeat(96)] });
    expect(() => expectedChecksumOf({ algorithm: "sha256", hex: "a".repeat(40) })).toThrow(UsageError);
    expect(() => expectedChecksumOf({ algorithm: "crc32" as "md5", hex: "a".repeat(8) })).toThrow(UsageError);
  });
});

describe("algorithmOfHexLength", () => {
  it.each(DIGEST_LENGTHS)("%s digests are %d hex digits", (algorithm, length) => {
    expect(algorithmOfHexLength(length)).toBe(algorithm);
  });
  it("knows no other length", () => {
    expect(algorithmOfHexLength(56)).toBeUndefined();
  });
});

function algorithmLength(algorithm: Checksum["algorithm"]): number {
  return DIGEST_LENGTHS.find(([name]) => name === algorithm)![1];
}

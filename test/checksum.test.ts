import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { hashFile, parseChecksum } from "../src/checksum.js";
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

describe("hashFile", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "rangeget-checksum-"));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it.each([
    ["sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    ["md5", "d41d8cd98f00b204e9800998ecf8427e"],
    ["sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"],
  ] as const)("hashes an empty file with %s to the known digest", async (algorithm, expected) => {
    const file = path.join(dir, `empty-${algorithm}`);
    await writeFile(file, "");
    expect(await hashFile(file, algorithm)).toBe(expected);
  });

  it("hashes a file larger than one read chunk like a one-shot hash of its bytes", async () => {
    const bytes = Buffer.alloc(3 * 1024 * 1024 + 17);
    for (let i = 0; i < bytes.length; i += 1) bytes[i] = (i * 31 + 7) % 251;
    const file = path.join(dir, "large.bin");
    await writeFile(file, bytes);
    for (const [algorithm] of DIGEST_LENGTHS) {
      expect(await hashFile(file, algorithm)).toBe(createHash(algorithm).update(bytes).digest("hex"));
    }
  });

  it("returns a digest that parseChecksum accepts for the same algorithm", async () => {
    const file = path.join(dir, "abc.txt");
    await writeFile(file, "abc");
    const hex = await hashFile(file, "sha512");
    expect(parseChecksum(`sha512=${hex}`)).toEqual({ algorithm: "sha512", hex });
  });

  it("rejects with the file system's error when the file is missing", async () => {
    await expect(hashFile(path.join(dir, "missing"), "sha256")).rejects.toMatchObject({ code: "ENOENT" });
  });
});

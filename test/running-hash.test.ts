import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { open, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { checkDigest, PrefixHasher } from "../src/running-hash.js";
import { assertBuilt } from "./support/run-cli.js";
import { tempDir } from "./support/temp.js";

const MiB = 1024 * 1024;

function pattern(start: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  for (let index = 0; index < length; index++) buffer[index] = ((start + index) * 31 + 7) % 251;
  return buffer;
}

function sha256(buffer: Buffer): string {
  return createHash("sha256").update(buffer).digest("hex");
}

describe("PrefixHasher", () => {
  it("hashes a file written out of order, as its written prefix grows", async () => {
    const dir = await tempDir();
    const path = join(dir, "file.part");
    const size = 13 * MiB + 321;
    const file = await open(path, "w+");
    await file.truncate(size);
    const hasher = new PrefixHasher(path, "sha256");
    // Four connections' ranges, the last ones finishing first, in 256 KiB writes.
    const ranges: [number, number][] = [
      [10 * MiB, size - 1],
      [5 * MiB, 10 * MiB - 1],
      [0, 5 * MiB - 1],
    ];
    for (const [start, end] of ranges) {
      for (let offset = start; offset <= end; offset += 256 * 1024) {
        const length = Math.min(256 * 1024, end - offset + 1);
        await file.write(pattern(offset, length), 0, length, offset);
        hasher.written(offset, offset + length - 1);
      }
    }
    await file.close();
    expect(await hasher.digest(size)).toBe(sha256(pattern(0, size)));
  });

  it("hashes a resumed file's bytes from the earlier run first", async () => {
    const dir = await tempDir();
    const path = join(dir, "resumed.part");
    const size = 6 * MiB;
    await writeFile(path, pattern(0, size));
    const hasher = new PrefixHasher(path, "sha512", [[0, 4 * MiB - 1]]);
    hasher.written(4 * MiB, size - 1);
    expect(await hasher.digest(size)).toBe(createHash("sha512").update(pattern(0, size)).digest("hex"));
  });

  it("gives the digest of an empty file", async () => {
    const dir = await tempDir();
    const path = join(dir, "empty.part");
    await writeFile(path, "");
    expect(await new PrefixHasher(path, "md5").digest(0)).toBe(createHash("md5").digest("hex"));
  });

  it("refuses a digest while a byte before the end is not written", async () => {
    const dir = await tempDir();
    const path = join(dir, "gap.part");
    await writeFile(path, pattern(0, 100));
    const hasher = new PrefixHasher(path, "sha1");
    hasher.written(0, 49);
    hasher.written(60, 99);
    await expect(hasher.digest(100)).rejects.toThrow(/only 50 written in order/);
    await hasher.close();
  });

  it("stops its thread when a digest is refused, so the process can exit", async () => {
    assertBuilt();
    const dir = await tempDir();
    const path = join(dir, "gap.part");
    await writeFile(path, pattern(0, 100));
    const module = new URL("../dist/running-hash.js", import.meta.url).href;
    // A file, not `--input-type=module -e`: the hashing thread would inherit that flag.
    const script = join(dir, "refused-digest.mjs");
    await writeFile(
      script,
      `const { PrefixHasher } = await import(${JSON.stringify(module)});
      const hasher = new PrefixHasher(${JSON.stringify(path)}, "sha1");
      hasher.written(0, 49);
      await hasher.digest(100).catch((error) => console.log(error.message));
      `,
    );
    // A thread left running keeps the child alive until the deadline kills it.
    const child = spawnSync(process.execPath, [script], { encoding: "utf8", timeout: 15_000 });
    expect(child.stdout).toContain("only 50 written in order");
    expect(child.signal).toBeNull();
    expect(child.status).toBe(0);
  });

  it("rejects with the file system's error when the file cannot be read", async () => {
    const dir = await tempDir();
    const hasher = new PrefixHasher(join(dir, "missing.part"), "sha256");
    await expect(hasher.digest(0)).rejects.toMatchObject({ code: "ENOENT" });
  });
});

describe("checkDigest", () => {
  it("accepts the expected digest", () => {
    expect(() => checkDigest({ algorithm: "md5", hex: "ab" }, "ab", "http://x.test/f", "")).not.toThrow();
  });

  it("throws ERR_CHECKSUM naming both digests and what became of the bytes", () => {
    expect(() => checkDigest({ algorithm: "sha1", hex: "aa" }, "bb", "http://x.test/f", "nothing was unpacked")).toThrow(
      expect.objectContaining({
        code: "ERR_CHECKSUM",
        exitCode: 5,
        message: "checksum mismatch for http://x.test/f: sha1 is bb, expected aa; nothing was unpacked",
      }),
    );
  });
});

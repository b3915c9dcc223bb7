import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { exitCodeForErrorCode, FileError } from "../src/errors.js";
import {
  fileTooLarge,
  fileTooLargeOnWrite,
  parseFileSizeLimit,
  refuseTooLarge,
  sizeRefusal,
} from "../src/file-size-limit.js";
import { FAT_LARGEST_FILE, largestFileFor, MSDOS_SUPER_MAGIC } from "../src/platform.js";
import { fileError } from "../src/to-error.js";
import { tempDir } from "./support/temp.js";

const GiB = 1024 ** 3;
const limits = (softLimit: string) => `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             ${softLimit}            unlimited            bytes     
Max data size             unlimited            unlimited            bytes     
`;

describe("parseFileSizeLimit (/proc/self/limits)", () => {
  it("reads the soft limit in bytes, and nothing for unlimited or other text", () => {
    expect(parseFileSizeLimit(limits("524288"))).toBe(524288);
    expect(parseFileSizeLimit(limits("unlimited"))).toBeUndefined();
    expect(parseFileSizeLimit("")).toBeUndefined();
    expect(parseFileSizeLimit(limits("99999999999999999999"))).toBeUndefined();
  });
});

describe("sizeRefusal", () => {
  it("refuses a file larger than the process may write", () => {
    expect(sizeRefusal(2 * GiB, { processLimit: GiB, largestFile: undefined })).toEqual({ kind: "process-limit", limit: GiB });
    expect(sizeRefusal(GiB, { processLimit: GiB, largestFile: undefined })).toBeUndefined();
  });

  it("refuses a file of 4 GiB or more on FAT32, and nothing on other file systems", () => {
    expect(largestFileFor(MSDOS_SUPER_MAGIC, undefined)).toBe(4 * GiB - 1);
    expect(sizeRefusal(4 * GiB, { processLimit: undefined, largestFile: largestFileFor(MSDOS_SUPER_MAGIC, undefined) })).toEqual({
      kind: "file-system",
      limit: 4 * GiB - 1,
    });
    expect(sizeRefusal(4 * GiB - 1, { processLimit: undefined, largestFile: FAT_LARGEST_FILE })).toBeUndefined();
    expect(sizeRefusal(100 * GiB, { processLimit: undefined, largestFile: largestFileFor(0xef53, "ext4") })).toBeUndefined();
  });
});

describe("the error for a file too large", () => {
  it("is its own FileError code, exit 6, and never says no space left", () => {
    for (const error of [
      fileTooLarge("/media/usb/a.iso", 5 * GiB, { kind: "file-system", limit: 4 * GiB - 1 }),
      fileTooLarge("/data/a.iso", 5 * GiB, { kind: "process-limit", limit: GiB }),
      fileTooLargeOnWrite("/data/a.iso.part", "cannot write", new Error("EFBIG")),
      fileError(Object.assign(new Error("file too large"), { code: "EFBIG" }), "/data/a.iso.part", "cannot write"),
    ]) {
      expect(error).toBeInstanceOf(FileError);
      expect(error.code).toBe("ERR_FILE_TOO_LARGE");
      expect(exitCodeForErrorCode(error.code)).toBe(6);
      expect(error.message).toContain("EFBIG");
      expect(error.message).not.toMatch(/no space|free some space/);
    }
    expect(fileTooLarge("/media/usb/a.iso", 5 * GiB, { kind: "file-system", limit: 4 * GiB - 1 }).message).toContain("FAT32");
    expect(fileTooLarge("/data/a.iso", 5 * GiB, { kind: "process-limit", limit: GiB }).message).toContain("ulimit -f");
  });

  it("ENOSPC is still no space left", () => {
    const error = fileError(Object.assign(new Error("no space"), { code: "ENOSPC" }), "/data/a.part", "cannot write");
    expect(error.code).toBe("ERR_NO_SPACE");
  });
});

describe("refuseTooLarge", () => {
  it("lets a file through that this process and volume can hold", async () => {
    await expect(refuseTooLarge(join(await tempDir(), "small.bin.part"), 1024, undefined)).resolves.toBeUndefined();
  });
});

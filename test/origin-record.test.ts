import { readdir, readFile, rename, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { getAttribute } from "@napi-rs/xattr";
import { describe, expect, it } from "vitest";
import {
  finishedFrom,
  loadXattr,
  originSidecar,
  parseRecord,
  readOriginRecord,
  writeOriginRecord,
  type OriginRecord,
  type XattrApi,
} from "../src/origin-record.js";
import { tempDir } from "./support/temp.js";

const record: OriginRecord = { url: "http://127.0.0.1:8080/file.bin", etag: '"v1"', lastModified: "Tue, 02 Jan 2024 03:04:05 GMT", size: 5 };

/** A file system that refuses user attributes, as FAT or some network file systems do. */
const refusing: XattrApi = {
  setAttribute: () => Promise.reject(Object.assign(new Error("Operation not supported"), { code: "ENOTSUP" })),
  getAttribute: () => Promise.reject(Object.assign(new Error("Operation not supported"), { code: "ENOTSUP" })),
};

async function finishedFile(): Promise<{ dir: string; output: string }> {
  const dir = await tempDir();
  const output = join(dir, "file.bin");
  await writeFile(`${output}.part`, "hello");
  return { dir, output };
}

describe("origin record in extended attributes", async () => {
  const xattr = await loadXattr();

  it("is written on the .part, moves with the rename, and names the URL as curl and wget --xattr do", async () => {
    const { dir, output } = await finishedFile();
    const where = await writeOriginRecord(`${output}.part`, { ...record, url: "http://user:secret@127.0.0.1:8080/file.bin" }, { xattr, sidecarFor: output });
    expect(where).toBe("xattr");
    await rename(`${output}.part`, output);
    expect((await getAttribute(output, "user.xdg.origin.url"))?.toString()).toBe("http://127.0.0.1:8080/file.bin");
    expect(await readOriginRecord(output, xattr)).toEqual(record);
    expect(await finishedFrom(output, "http://user:secret@127.0.0.1:8080/file.bin", xattr)).toEqual(record);
    expect(await readdir(dir)).toEqual(["file.bin"]);
  });
});

describe("origin record in a sidecar where the file system has no attributes", () => {
  it("falls back to <output>.origin.json, without credentials", async () => {
    const { output } = await finishedFile();
    const where = await writeOriginRecord(`${output}.part`, { ...record, url: "http://user:secret@127.0.0.1:8080/file.bin" }, { xattr: refusing, sidecarFor: output });
    expect(where).toBe("sidecar");
    await rename(`${output}.part`, output);
    const text = await readFile(originSidecar(output), "utf8");
    expect(text).not.toContain("secret");
    expect(await readOriginRecord(output, refusing)).toEqual(record);
    expect(await readOriginRecord(output, undefined)).toEqual(record);
  });

  it("recognises the file only for the same URL and the recorded size", async () => {
    const { output } = await finishedFile();
    await writeOriginRecord(`${output}.part`, record, { xattr: refusing, sidecarFor: output });
    await rename(`${output}.part`, output);
    expect(await finishedFrom(output, record.url, refusing)).toEqual(record);
    expect(await finishedFrom(output, "http://127.0.0.1:8080/other.bin", refusing)).toBeUndefined();
    await truncate(output, 3);
    expect(await finishedFrom(output, record.url, refusing)).toBeUndefined();
  });

  it("a file with no record, or a record that does not parse, was not finished by us", async () => {
    const { output } = await finishedFile();
    await rename(`${output}.part`, output);
    expect(await finishedFrom(output, record.url, refusing)).toBeUndefined();
    await writeFile(originSidecar(output), "{not json");
    expect(await readOriginRecord(output, refusing)).toBeUndefined();
    expect((await stat(output)).size).toBe(5);
  });
});

describe("parseRecord", () => {
  it.each<[unknown, boolean]>([
    [record, true],
    [{ ...record, etag: null, lastModified: null }, true],
    [{ ...record, url: "not a url" }, false],
    [{ ...record, size: -1 }, false],
    [{ ...record, size: 1.5 }, false],
    [{ ...record, etag: 7 }, false],
    [null, false],
    ["text", false],
  ])("%j is a record: %s", (value, valid) => {
    expect(parseRecord(value) !== undefined).toBe(valid);
  });
});

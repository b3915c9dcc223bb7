import { createHash } from "node:crypto";
import { open, readdir, readFile, stat, symlink, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { etagSidecar } from "../src/claim.js";
import { FileError, IntegrityError } from "../src/errors.js";
import { writeManifest, type Manifest } from "../src/manifest.js";
import { loadXattr, readOriginRecord } from "../src/origin-record.js";
import { adoptPart, createPart, finishPart, openPart } from "../src/part-file.js";
import type { Volume } from "../src/platform.js";
import { Checkpointer } from "../src/part-sink.js";
import { IntervalSet } from "../src/ranges.js";
import { PrefixHasher } from "../src/running-hash.js";
import { closeAfterTest } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { FakeClock } from "./support/fake-clock.js";

/** The clock the files' renames would retry on (Windows only): none of them waits here. */
const clock = new FakeClock();

const URL = "http://127.0.0.1:8080/file.bin";

function manifest(extra: Partial<Manifest> = {}): Manifest {
  return { version: 1, url: URL, finalUrl: URL, size: 1000, etag: '"v1"', lastModified: null, done: [], ...extra };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readManifestFile(path: string): Promise<Manifest> {
  return JSON.parse(await readFile(path, "utf8")) as Manifest;
}

/** A handle whose datasync runs `during` first: what happens while the data is being synced. */
function syncingWith(file: FileHandle, during: () => Promise<void> | void): FileHandle {
  return new Proxy(file, {
    get(target, property) {
      if (property === "datasync") {
        return async () => {
          await during();
          return target.datasync();
        };
      }
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

async function openForTest(path: string): Promise<FileHandle> {
  const file = await open(path, "r+");
  closeAfterTest(() => file.close().catch(() => {}));
  return file;
}

describe("openPart", () => {
  it("reopens a .part of the manifest's length", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(`${path}.part`, Buffer.alloc(1000, 1));
    const warnings: string[] = [];
    const file = await openPart(path, 1000, (message) => warnings.push(message));
    expect(file).toBeDefined();
    await file!.close();
    expect(warnings).toEqual([]);
  });

  it("refuses a .part that is a symbolic link, leaving its target alone, and discards the partial state", async () => {
    const dir = await tempDir();
    const path = join(dir, "file.bin");
    const target = join(dir, "precious.txt");
    await writeFile(target, Buffer.alloc(1000, 9));
    await symlink(target, `${path}.part`);
    await writeManifest(`${path}.part.json`, manifest(), clock);
    const warnings: string[] = [];
    expect(await openPart(path, 1000, (message) => warnings.push(message))).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining("is a symbolic link")]);
    expect(await readFile(target)).toEqual(Buffer.alloc(1000, 9));
    expect((await readdir(dir)).sort()).toEqual(["precious.txt"]);
  });

  it("discards the partial state when the .part is gone", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeManifest(`${path}.part.json`, manifest(), clock);
    const warnings: string[] = [];
    expect(await openPart(path, 1000, (message) => warnings.push(message))).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining("is gone")]);
    expect(await exists(`${path}.part.json`)).toBe(false);
  });

  it.each([999, 1001])("discards a .part of %d bytes when the manifest says 1000: someone else changed it", async (length) => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(`${path}.part`, Buffer.alloc(length));
    await writeManifest(`${path}.part.json`, manifest(), clock);
    const warnings: string[] = [];
    expect(await openPart(path, 1000, (message) => warnings.push(message))).toBeUndefined();
    expect(warnings).toEqual([expect.stringContaining(`has ${length} bytes, not 1000`)]);
    expect(await exists(`${path}.part`)).toBe(false);
    expect(await exists(`${path}.part.json`)).toBe(false);
  });
});

describe("createPart", () => {
  it("creates a .part of the full length", async () => {
    const path = join(await tempDir(), "file.bin");
    const file = await createPart(path, 5_000_000);
    await file.close();
    expect((await stat(`${path}.part`)).size).toBe(5_000_000);
  });

  it("replaces a planted symlink instead of writing through it", async () => {
    const dir = await tempDir();
    const path = join(dir, "file.bin");
    const target = join(dir, "precious.txt");
    await writeFile(target, "keep me");
    await symlink(target, `${path}.part`);
    const file = await createPart(path, 100);
    await file.write(Buffer.alloc(100, 1), 0, 100, 0);
    await file.close();
    expect(await readFile(target, "utf8")).toBe("keep me");
    expect((await stat(`${path}.part`)).isFile()).toBe(true);
  });

  it("refuses a file larger than the free space, before writing anything", async () => {
    const path = join(await tempDir(), "file.bin");
    const error = await createPart(path, Number.MAX_SAFE_INTEGER).catch((caught: unknown) => caught);
    expect((error as FileError).code).toBe("ERR_NO_SPACE");
    expect(await exists(`${path}.part`)).toBe(false);
  });
});

/**
 * Makes every FileHandle's `truncate` fail with EIO (as a failing disk would) while
 * `run` runs, and returns the handles it was called on.
 */
async function withFailingTruncate(run: () => Promise<unknown>): Promise<{ handles: FileHandle[]; error: unknown }> {
  const sample = await open(join(await tempDir(), "sample"), "w");
  const prototype = Object.getPrototypeOf(sample) as FileHandle;
  await sample.close();
  const handles: FileHandle[] = [];
  const truncate = vi.spyOn(prototype, "truncate").mockImplementation(function (this: FileHandle) {
    handles.push(this);
    return Promise.reject(Object.assign(new Error("EIO: i/o error, ftruncate"), { code: "EIO" }));
  });
  try {
    const error = await run().then(
      () => undefined,
      (caught: unknown) => caught,
    );
    return { handles, error };
  } finally {
    truncate.mockRestore();
  }
}

/** A volume with sparse files, given outright: the probe of the real one would meet the failing truncate too. */
const sparseVolume: Volume = { sparse: true, caseInsensitive: false, largestFile: undefined };

describe("a .part that cannot be grown to full length", () => {
  it("createPart closes the file it opened and fails with a FileError", async () => {
    const path = join(await tempDir(), "file.bin");
    const { handles, error } = await withFailingTruncate(() => createPart(path, 1000, sparseVolume));
    expect(error).toBeInstanceOf(FileError);
    expect(handles).toHaveLength(1);
    // A closed FileHandle's descriptor is -1.
    expect(handles[0]!.fd).toBe(-1);
  });

  it("adoptPart closes it and moves the user's file back under its own name, unchanged", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(path, "the first bytes another tool left");
    const { handles, error } = await withFailingTruncate(() => adoptPart(path, 33, 1000, clock, sparseVolume));
    expect(error).toBeInstanceOf(FileError);
    expect(handles[0]!.fd).toBe(-1);
    expect(await readFile(path, "utf8")).toBe("the first bytes another tool left");
    expect(await exists(`${path}.part`)).toBe(false);
  });
});

describe("Checkpointer", () => {
  async function setUp() {
    const path = join(await tempDir(), "file.bin");
    await writeFile(`${path}.part`, Buffer.alloc(1000));
    const file = await openForTest(`${path}.part`);
    return { path, file, manifestPath: `${path}.part.json` };
  }

  it("records the written bytes in the manifest", async () => {
    const { file, manifestPath } = await setUp();
    const checkpoint = new Checkpointer(file, manifestPath, manifest(), new IntervalSet(), async () => {}, clock);
    checkpoint.written(0, 99);
    checkpoint.written(100, 199);
    await checkpoint.save();
    expect(await readManifestFile(manifestPath)).toEqual(manifest({ done: [[0, 199]] }));
  });

  it("never claims bytes written after the data sync began", async () => {
    const { file, manifestPath } = await setUp();
    let checkpoint!: Checkpointer;
    let first = true;
    // Bytes that land while the sync runs were not covered by it.
    const racing = syncingWith(file, () => {
      if (first) checkpoint.written(500, 599);
      first = false;
    });
    checkpoint = new Checkpointer(racing, manifestPath, manifest(), new IntervalSet(), async () => {}, clock);
    checkpoint.written(0, 99);
    await checkpoint.save();
    expect((await readManifestFile(manifestPath)).done).toEqual([[0, 99]]);
    await checkpoint.save();
    expect((await readManifestFile(manifestPath)).done).toEqual([
      [0, 99],
      [500, 599],
    ]);
  });

  it("counts what beforeSave flushes in the same save", async () => {
    const { file, manifestPath } = await setUp();
    let checkpoint!: Checkpointer;
    checkpoint = new Checkpointer(file, manifestPath, manifest(), new IntervalSet(), async () => checkpoint.written(0, 9), clock);
    await checkpoint.save();
    expect((await readManifestFile(manifestPath)).done).toEqual([[0, 9]]);
  });

  it("writes no manifest when nothing new was written", async () => {
    const { file, manifestPath } = await setUp();
    const checkpoint = new Checkpointer(file, manifestPath, manifest(), new IntervalSet(), async () => {}, clock);
    await checkpoint.save();
    expect(await exists(manifestPath)).toBe(false);
  });

  it("fails with a FileError when the sync fails, writes no manifest, and saves the bytes next time", async () => {
    const { file, manifestPath } = await setUp();
    let failures = 1;
    const flaky = syncingWith(file, () => {
      if (failures-- > 0) throw Object.assign(new Error("EIO: i/o error"), { code: "EIO" });
    });
    const checkpoint = new Checkpointer(flaky, manifestPath, manifest(), new IntervalSet(), async () => {}, clock);
    checkpoint.written(0, 99);
    await expect(checkpoint.save()).rejects.toBeInstanceOf(FileError);
    expect(await exists(manifestPath)).toBe(false);
    await checkpoint.save();
    expect((await readManifestFile(manifestPath)).done).toEqual([[0, 99]]);
  });

  it("starts a save asked for during another only once that one is done", async () => {
    const { file, manifestPath } = await setUp();
    let checkpoint!: Checkpointer;
    let running = 0;
    let most = 0;
    let second: Promise<void> | undefined;
    const counted = syncingWith(file, async () => {
      most = Math.max(most, ++running);
      if (!second) {
        checkpoint.written(10, 19);
        second = checkpoint.save();
      }
      for (let turn = 0; turn < 5; turn++) await new Promise((resolve) => setImmediate(resolve));
      running--;
    });
    checkpoint = new Checkpointer(counted, manifestPath, manifest(), new IntervalSet(), async () => {}, clock);
    checkpoint.written(0, 9);
    await checkpoint.save();
    await second;
    expect(most).toBe(1);
    expect((await readManifestFile(manifestPath)).done).toEqual([[0, 19]]);
  });
});

describe("finishPart", () => {
  const data = Buffer.from("the whole file, verified\n");
  const sha256 = createHash("sha256").update(data).digest("hex");

  async function finished(extra: { manifest?: Partial<Manifest>; checksum?: string; ifChanged?: boolean; length?: number } = {}) {
    const path = join(await tempDir(), "file.bin");
    await writeFile(`${path}.part`, extra.length === undefined ? data : Buffer.alloc(extra.length));
    const file = await open(`${path}.part`, "r+");
    const finalManifest = manifest({ size: data.length, ...extra.manifest });
    const bytes = extra.length ?? data.length;
    const options = {
      path,
      url: URL,
      checksum: extra.checksum === undefined ? undefined : { algorithm: "sha256" as const, hex: extra.checksum },
      // The bytes were written before the finish, as a download's hasher would have seen them.
      hasher: extra.checksum === undefined ? undefined : new PrefixHasher(`${path}.part`, "sha256", bytes > 0 ? [[0, bytes - 1]] : []),
      ifChanged: extra.ifChanged ?? false,
      record: { url: URL, etag: finalManifest.etag, lastModified: finalManifest.lastModified, size: finalManifest.size },
      clock,
    };
    return { path, record: options.record, run: () => finishPart(file, finalManifest, options) };
  }

  it("moves the verified .part into place with its origin record, returns the digest and leaves no bookkeeping", async () => {
    const { path, record, run } = await finished({ checksum: sha256 });
    await writeManifest(`${path}.part.json`, manifest({ size: data.length, done: [[0, 9]] }), clock);
    expect(await run()).toEqual({ algorithm: "sha256", hex: sha256 });
    expect(await readFile(path)).toEqual(data);
    expect(await readOriginRecord(path, await loadXattr())).toEqual(record);
    expect((await readdir(join(path, ".."))).sort()).toEqual(["file.bin"]);
  });

  it("returns no digest when none was asked for", async () => {
    const { run } = await finished();
    expect(await run()).toBeNull();
  });

  it("removes the .part on a checksum mismatch and never creates the output", async () => {
    const { path, run } = await finished({ checksum: "0".repeat(64) });
    await writeManifest(`${path}.part.json`, manifest({ size: data.length, done: [[0, data.length - 1]] }), clock);
    const error = await run().catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).code).toBe("ERR_CHECKSUM");
    expect(await readdir(join(path, ".."))).toEqual([]);
  });

  it("refuses a .part of another length than the manifest's, and never creates the output", async () => {
    const { path, run } = await finished({ length: data.length - 1 });
    await expect(run()).rejects.toBeInstanceOf(IntegrityError);
    expect(await exists(path)).toBe(false);
  });

  it("lets a hasher's own failure (a bug, not the disk) through as it is, not as a FileError", async () => {
    const path = join(await tempDir(), "file.bin");
    await writeFile(`${path}.part`, data);
    const file = await open(`${path}.part`, "r+");
    // No byte was reported written to the hasher: asking for the digest is a bug.
    const hasher = new PrefixHasher(`${path}.part`, "sha256");
    const finalManifest = manifest({ size: data.length });
    const record = { url: URL, etag: null, lastModified: null, size: data.length };
    const options = { path, url: URL, checksum: { algorithm: "sha256" as const, hex: sha256 }, hasher, ifChanged: false, record, clock };
    const error = await finishPart(file, finalManifest, options).catch((caught: unknown) => caught);
    expect(error).not.toBeInstanceOf(FileError);
    expect((error as Error).message).toMatch(/^internal error: hashing asked for/);
  });

  it("sets the output's mtime from Last-Modified", async () => {
    const { path, run } = await finished({ manifest: { lastModified: "Tue, 02 Jan 2024 03:04:05 GMT" } });
    await run();
    expect((await stat(path)).mtime.toISOString()).toBe("2024-01-02T03:04:05.000Z");
  });

  it("with ifChanged, keeps the ETag beside the output, or removes a stale one when there is none", async () => {
    const first = await finished({ ifChanged: true, manifest: { etag: 'W/"weak-1"' } });
    await first.run();
    expect(await readFile(etagSidecar(first.path), "utf8")).toBe('W/"weak-1"\n');

    const second = await finished({ ifChanged: true, manifest: { etag: null } });
    await writeFile(etagSidecar(second.path), '"stale"\n');
    await second.run();
    expect(await exists(etagSidecar(second.path))).toBe(false);
  });
});

import { spawn } from "node:child_process";
import { once } from "node:events";
import { link, lstat, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import path from "node:path";
import fc from "fast-check";
import { setTimeout } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { FileError } from "../src/errors.js";
import { acquireLock, type Lock } from "../src/lock.js";
import { parseManifest, readManifest, writeManifest, type Manifest } from "../src/manifest.js";
import { tempDir } from "./support/temp.js";
import { FakeClock } from "./support/fake-clock.js";

/** The clock the files' renames (and a lock's wait) sleep on: none of them waits here. */
const clock = new FakeClock();

/**
 * acquireLock takes no file system to fake, so the race test reaches in here: a hook run
 * before anything is written through a handle opened on a `.part.lock` path (another
 * process, slow to write its pid). Every other call passes straight through.
 */
const lockWriteHook = vi.hoisted(() => ({ current: undefined as (() => Promise<void>) | undefined }));

vi.mock("node:fs/promises", async (importOriginal) => {
  const actual = await importOriginal<typeof import("node:fs/promises")>();
  const open: typeof actual.open = async (file, ...rest) => {
    const handle = await actual.open(file, ...rest);
    if (!String(file).includes(".part.lock")) return handle;
    return new Proxy(handle, {
      get(target, property) {
        const value: unknown = Reflect.get(target, property, target);
        if (typeof value !== "function") return value;
        const method = (value as (...args: unknown[]) => unknown).bind(target);
        if (property !== "writeFile" && property !== "write" && property !== "writev") return method;
        return async (...args: unknown[]) => {
          await lockWriteHook.current?.();
          return method(...args);
        };
      },
    });
  };
  return { ...actual, open, default: { ...actual, open } };
});

const URL = "https://example.com/files/big.iso";

/** The names of this process's owner files, which its locks link to. */
const OWNER_FILE = /^\.rangeget-\d+-[0-9a-f]+-\d+\.owner$/;

const valid: Manifest = {
  version: 1,
  url: URL,
  finalUrl: "https://cdn.example.net/big.iso?sig=abc",
  size: 10_000,
  etag: '"5e1f-abc"',
  lastModified: "Sun, 01 Jun 2025 12:00:00 GMT",
  done: [
    [0, 999],
    [2000, 2999],
    [9000, 9999],
  ],
};

/** Any manifest rangeget could have written: `done` sorted, merged and inside the file. */
const believableManifest = fc
  .record({
    finalUrl: fc.webUrl(),
    etag: fc.option(fc.string(), { nil: null }),
    lastModified: fc.option(fc.string(), { nil: null }),
    size: fc.integer({ min: 0, max: 2 ** 40 }),
    cuts: fc.uniqueArray(fc.integer({ min: 0, max: 2 ** 40 }), { maxLength: 10 }),
  })
  .map(({ size, cuts, ...rest }): Manifest => {
    // Sorted distinct cut points inside the file, paired up with gaps between pairs.
    const points = cuts.filter((cut) => cut < size).sort((a, b) => a - b);
    const done: [number, number][] = [];
    for (let index = 0; index + 1 < points.length; index += 2) {
      const [start, end] = [points[index]!, points[index + 1]!];
      const last = done[done.length - 1];
      if (last && start <= last[1] + 1) continue;
      done.push([start, end]);
    }
    return { version: 1, url: URL, size, done, ...rest };
  });

/** The valid manifest with some fields replaced (or removed, with `undefined`). */
function variant(changes: Record<string, unknown>): string {
  const value: Record<string, unknown> = { ...valid, ...changes };
  for (const key of Object.keys(changes)) if (changes[key] === undefined) delete value[key];
  return JSON.stringify(value);
}

function expectUntrusted(text: string): void {
  const check = parseManifest(text, URL);
  expect(check.trusted).toBe(false);
  if (!check.trusted) expect(check.reason).toMatch(/\w/);
}

/** What every trusted manifest promises: intervals inside the file, sorted and merged. */
function expectBelievable(manifest: Manifest): void {
  expect(Number.isSafeInteger(manifest.size) && manifest.size >= 0).toBe(true);
  let previousEnd = -2;
  for (const [start, end] of manifest.done) {
    expect(Number.isSafeInteger(start) && Number.isSafeInteger(end)).toBe(true);
    expect(start).toBeGreaterThan(previousEnd + 1);
    expect(start).toBeGreaterThanOrEqual(0);
    expect(end).toBeGreaterThanOrEqual(start);
    expect(end).toBeLessThan(manifest.size);
    previousEnd = end;
  }
}

describe("parseManifest", () => {
  it("trusts a valid manifest and returns it unchanged", () => {
    const check = parseManifest(JSON.stringify(valid), URL);
    expect(check).toEqual({ trusted: true, manifest: valid });
  });

  it.each<[string, Record<string, unknown>]>([
    ["without validators", { etag: null, lastModified: null }],
    ["with nothing done yet", { done: [] }],
    ["with every byte done", { done: [[0, 9999]] }],
    ["of an empty file", { size: 0, done: [] }],
    ["of a one-byte file, done", { size: 1, done: [[0, 0]] }],
    ["with single-byte intervals one byte apart", { done: [[0, 0], [2, 2], [4, 4]] }],
    ["of a file larger than 4 GiB", { size: 2 ** 40, done: [[2 ** 32, 2 ** 33]] }],
    ["of the largest safe size", { size: Number.MAX_SAFE_INTEGER, done: [[0, Number.MAX_SAFE_INTEGER - 1]] }],
  ])("trusts a manifest %s", (_name, changes) => {
    const check = parseManifest(variant(changes), URL);
    expect(check.trusted).toBe(true);
    if (check.trusted) expect(check.manifest).toEqual({ ...valid, ...changes });
  });

  it("trusts a pretty-printed manifest: whitespace is not corruption", () => {
    expect(parseManifest(JSON.stringify(valid, null, 2), URL).trusted).toBe(true);
  });

  it.each(["", " ", "hello", "{", "}", "{version: 1}", "[1,", "\u0000", "\uFEFF{}", "undefined", "NaN"])(
    "does not trust %j: it is not JSON",
    (text) => expectUntrusted(text),
  );

  it.each(["null", "42", "true", '"manifest"', "[]", "[1, 2]", "{}"])("does not trust %s: not a manifest object", (text) =>
    expectUntrusted(text),
  );

  it("does not trust any truncation of a valid manifest (a crash mid-write)", () => {
    for (const text of [JSON.stringify(valid), JSON.stringify(valid, null, 2)]) {
      for (let length = 0; length < text.length; length++) expectUntrusted(text.slice(0, length));
    }
  });

  it.each<[string, Record<string, unknown>]>([
    ["version 0", { version: 0 }],
    ["version 2", { version: 2 }],
    ['version "1"', { version: "1" }],
    ["version null", { version: null }],
    ["no version", { version: undefined }],
  ])("does not trust a manifest with %s", (_name, changes) => expectUntrusted(variant(changes)));

  it.each<[string, unknown]>([
    ["another URL", "https://example.com/files/other.iso"],
    ["the same URL with a trailing slash", `${URL}/`],
    ["the same URL in another case", URL.toUpperCase()],
    ["the final URL in place of the URL", valid.finalUrl],
    ["an empty URL", ""],
    ["no URL", undefined],
    ["a URL that is not a string", 42],
  ])("does not trust a manifest for %s", (_name, url) => expectUntrusted(variant({ url })));

  it.each<[string, unknown]>([
    ["negative", -1],
    ["fractional", 10_000.5],
    ["beyond the safe integers", 2 ** 53],
    ["huge", 1e300],
    ["a string", "10000"],
    ["null", null],
    ["missing", undefined],
    ["a list", [10_000]],
  ])("does not trust a size that is %s", (_name, size) => expectUntrusted(variant({ size })));

  it("does not trust an infinite size (1e999 parses to Infinity)", () => {
    expectUntrusted(JSON.stringify(valid).replace('"size":10000', '"size":1e999'));
  });

  it.each<[string, Record<string, unknown>]>([
    ["ending at the size", { done: [[9000, 10_000]] }],
    ["starting at the size", { done: [[10_000, 10_000]] }],
    ["wholly past the end", { done: [[20_000, 30_000]] }],
    ["starting before 0", { done: [[-1, 5]] }],
    ["ending before it starts", { done: [[5, 4]] }],
    ["on an empty file", { size: 0, done: [[0, 0]] }],
  ])("does not trust an interval %s", (_name, changes) => expectUntrusted(variant(changes)));

  it.each<[string, unknown]>([
    ["unsorted", [[50, 60], [0, 10]]],
    ["overlapping", [[0, 10], [5, 20]]],
    ["adjacent but not merged", [[0, 10], [11, 20]]],
    ["duplicated", [[0, 10], [0, 10]]],
    ["nested", [[0, 100], [10, 20]]],
  ])("does not trust intervals that are %s", (_name, done) => expectUntrusted(variant({ done })));

  it.each<[string, Record<string, unknown>]>([
    ["done is an object", { done: { 0: [0, 10] } }],
    ["done is a string", { done: "[[0,10]]" }],
    ["done is null", { done: null }],
    ["done is missing", { done: undefined }],
    ["an interval is not a list", { done: [5] }],
    ["an interval is an object", { done: [{ start: 0, end: 10 }] }],
    ["an interval has one number", { done: [[0]] }],
    ["an interval has three numbers", { done: [[0, 5, 10]] }],
    ["an interval holds strings", { done: [["0", "10"]] }],
    ["an interval holds nulls", { done: [[null, null]] }],
    ["an interval holds fractions", { done: [[0.5, 10]] }],
    ["an interval is empty", { done: [[]] }],
    ["finalUrl is a number", { finalUrl: 42 }],
    ["finalUrl is missing", { finalUrl: undefined }],
    ["etag is a number", { etag: 42 }],
    ["etag is an object", { etag: { value: "x" } }],
    ["etag is missing", { etag: undefined }],
    ["lastModified is a number", { lastModified: 1_717_243_200_000 }],
    ["lastModified is missing", { lastModified: undefined }],
  ])("does not trust a manifest where %s", (_name, changes) => expectUntrusted(variant(changes)));

  it("never throws on random JSON, and anything it trusts stays inside the file", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const check = parseManifest(JSON.stringify(value) ?? "null", URL);
        if (check.trusted) expectBelievable(check.manifest);
      }),
      { numRuns: 500 },
    );
  });

  it("never throws on random strings", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.string({ unit: "grapheme" })), (text) => {
        const check = parseManifest(text, URL);
        if (check.trusted) expectBelievable(check.manifest);
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on a written manifest with one character changed, and trusts only believable results", () => {
    const replacement = fc.constantFrom("0", "9", "-", ".", "e", "1", "]", "[", ",", '"', "}", " ", "x", "\u0000");
    fc.assert(
      fc.property(believableManifest, fc.nat(), replacement, (manifest, where, char) => {
        const text = JSON.stringify(manifest);
        const at = where % text.length;
        const check = parseManifest(text.slice(0, at) + char + text.slice(at + 1), URL);
        if (check.trusted) expectBelievable(check.manifest);
      }),
      { numRuns: 1000 },
    );
  });

  it("never throws when any one field is replaced by random JSON, and trusts only believable results", () => {
    const field = fc.constantFrom("version", "url", "finalUrl", "size", "etag", "lastModified", "done");
    fc.assert(
      fc.property(field, fc.jsonValue(), (key, replacement) => {
        const check = parseManifest(variant({ [key]: replacement }), URL);
        if (check.trusted) expectBelievable(check.manifest);
      }),
      { numRuns: 500 },
    );
  });

  it("trusts a plausible manifest exactly when its size and intervals are believable", () => {
    const number = fc.oneof(
      fc.integer({ min: -5, max: 120 }),
      fc.double({ min: -5, max: 120, noNaN: true }),
      fc.constantFrom(2 ** 53, 1e300, -0),
    );
    const interval = fc.oneof(
      { arbitrary: fc.tuple(number, number), weight: 8 },
      { arbitrary: fc.array(number, { maxLength: 3 }), weight: 1 },
    );
    fc.assert(
      fc.property(number, fc.array(interval, { maxLength: 6 }), (size, done) => {
        const check = parseManifest(variant({ size, done }), URL);
        // Reference: the format's rules, written out naively.
        const sizeOk = Number.isSafeInteger(size) && size >= 0;
        let believable = sizeOk;
        let previousEnd = -2;
        for (const candidate of done) {
          const [start, end] = candidate as number[];
          const ok =
            candidate.length === 2 &&
            Number.isSafeInteger(start) &&
            Number.isSafeInteger(end) &&
            start! >= 0 &&
            end! >= start! &&
            end! < size &&
            start! > previousEnd + 1;
          if (!ok) believable = false;
          previousEnd = end ?? previousEnd;
        }
        expect(check.trusted).toBe(believable);
        if (check.trusted) expectBelievable(check.manifest);
      }),
      { numRuns: 1000 },
    );
  });
});

describe("writeManifest and readManifest", () => {
  let dir: string;

  beforeEach(async () => {
    dir = await tempDir();
  });

  it("round-trips a manifest through the disk", async () => {
    const file = path.join(dir, "big.iso.part.json");
    await writeManifest(file, valid, clock);
    expect(await readManifest(file, URL)).toEqual({ trusted: true, manifest: valid });
  });

  it("round-trips arbitrary believable manifests", async () => {
    const file = path.join(dir, "any.part.json");
    await fc.assert(
      fc.asyncProperty(believableManifest, async (written) => {
        await writeManifest(file, written, clock);
        expect(await readManifest(file, URL)).toEqual({ trusted: true, manifest: written });
      }),
      { numRuns: 30 },
    );
  });

  it("replaces the previous manifest and leaves no temp file behind", async () => {
    const file = path.join(dir, "big.iso.part.json");
    await writeManifest(file, { ...valid, done: [] }, clock);
    await writeManifest(file, valid, clock);
    expect(await readdir(dir)).toEqual(["big.iso.part.json"]);
    expect(await readManifest(file, URL)).toEqual({ trusted: true, manifest: valid });
  });

  it("writes JSON with the documented fields", async () => {
    const file = path.join(dir, "big.iso.part.json");
    await writeManifest(file, valid, clock);
    const onDisk = JSON.parse(await readFile(file, "utf8")) as Record<string, unknown>;
    expect(Object.keys(onDisk).sort()).toEqual(["done", "etag", "finalUrl", "lastModified", "size", "url", "version"]);
    expect(onDisk["done"]).toEqual(valid.done);
  });

  it("reads a missing manifest as undefined: nothing to resume", async () => {
    expect(await readManifest(path.join(dir, "absent.part.json"), URL)).toBeUndefined();
  });

  it("reads a corrupt manifest as untrusted, with a reason", async () => {
    const file = path.join(dir, "big.iso.part.json");
    await writeFile(file, JSON.stringify(valid).slice(0, 40));
    const check = await readManifest(file, URL);
    expect(check?.trusted).toBe(false);
  });

  it("reads another URL's manifest as untrusted", async () => {
    const file = path.join(dir, "big.iso.part.json");
    await writeManifest(file, valid, clock);
    expect((await readManifest(file, "https://example.com/other"))?.trusted).toBe(false);
  });

  it("fails with a FileError naming the path when the manifest cannot be read", async () => {
    const error = await readManifest(dir, URL).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileError);
    expect((error as FileError).message).toContain(dir);
    expect((error as FileError).exitCode).toBe(6);
  });

  it("fails with a FileError naming the path when the directory is gone", async () => {
    const file = path.join(dir, "missing-dir", "big.iso.part.json");
    const error = await writeManifest(file, valid, clock).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileError);
    expect((error as FileError).message).toContain(file);
  });

  it("does not write through a symlink planted at the temp file's name", async () => {
    const file = path.join(dir, "big.iso.part.json");
    const victim = path.join(dir, "victim.txt");
    await writeFile(victim, "keep me");
    await symlink(victim, `${file}.tmp`);
    const error = await writeManifest(file, valid, clock).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileError);
    expect(await readFile(victim, "utf8")).toBe("keep me");
    expect((await lstat(file).catch(() => undefined))?.isSymbolicLink() ?? false).toBe(false);
  });
});

describe("acquireLock", () => {
  let dir: string;
  let lockPath: string;
  let output: string;

  beforeEach(async () => {
    dir = await tempDir();
    output = path.join(dir, "big.iso");
    lockPath = `${output}.part.lock`;
  });

  afterEach(() => {
    lockWriteHook.current = undefined;
  });

  async function lockError(): Promise<FileError> {
    const error = await acquireLock(lockPath, output, { clock }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(FileError);
    return error as FileError;
  }

  /** The pid of a process that has exited (and been reaped). */
  async function deadPid(): Promise<number> {
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    await once(child, "exit");
    expect(child.pid).toBeTypeOf("number");
    return child.pid!;
  }

  /** What this process's locks hold: its pid, host, start time and owner file. */
  function ownLock() {
    return { pid: process.pid, host: hostname(), started: expect.stringMatching(/^\d+$/), file: expect.stringMatching(OWNER_FILE) };
  }

  const ownerFiles = async (): Promise<string[]> => (await readdir(dir)).filter((name) => OWNER_FILE.test(name));

  it("creates the lock file naming this process and host", async () => {
    const lock = await acquireLock(lockPath, output, { clock });
    expect(JSON.parse(await readFile(lockPath, "utf8"))).toEqual(ownLock());
    await lock.release();
  });

  it("refuses a second acquire from the same process with ERR_LOCKED", async () => {
    const lock = await acquireLock(lockPath, output, { clock });
    const error = await lockError();
    expect(error.code).toBe("ERR_LOCKED");
    expect(error.exitCode).toBe(6);
    expect(error.message).toContain(output);
    // The refused attempt must not have disturbed the holder's lock.
    expect(JSON.parse(await readFile(lockPath, "utf8"))).toEqual(ownLock());
    await lock.release();
  });

  it("refuses a lock held by another live process on this host", async () => {
    await writeFile(lockPath, JSON.stringify({ pid: process.ppid, host: hostname() }));
    const error = await lockError();
    expect(error.code).toBe("ERR_LOCKED");
    expect(error.message).toContain(String(process.ppid));
  });

  it("refuses a lock held on another host: its process cannot be checked from here", async () => {
    const pid = await deadPid();
    await writeFile(lockPath, JSON.stringify({ pid, host: `not-${hostname()}` }));
    const error = await lockError();
    expect(error.code).toBe("ERR_LOCKED");
    expect(error.message).toContain(lockPath);
  });

  it("takes over a lock whose process is gone", async () => {
    const pid = await deadPid();
    await writeFile(lockPath, JSON.stringify({ pid, host: hostname() }));
    const lock = await acquireLock(lockPath, output, { clock });
    expect(JSON.parse(await readFile(lockPath, "utf8"))).toEqual(ownLock());
    await lock.release();
  });

  it.each(["", "garbage", "{", "null", "[]", '{"pid":"123","host":"x"}', '{"pid":1.5}', '{"host":"x"}'])(
    "takes over a lock file with unreadable content %j",
    async (content) => {
      await writeFile(lockPath, content);
      const lock = await acquireLock(lockPath, output, { clock });
      expect(JSON.parse(await readFile(lockPath, "utf8"))).toEqual(ownLock());
      await lock.release();
    },
  );

  it("release removes the lock file, and the lock can be taken again", async () => {
    const lock = await acquireLock(lockPath, output, { clock });
    await lock.release();
    expect(await readdir(dir)).toEqual([]);
    const again = await acquireLock(lockPath, output, { clock });
    await again.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it("every lock of this process in a directory is a link to one owner file, which goes with the last lock", async () => {
    const first = await acquireLock(lockPath, output, { clock });
    const second = await acquireLock(path.join(dir, "other.iso.part.lock"), path.join(dir, "other.iso"), { clock });
    const [owner, ...more] = await ownerFiles();
    expect(more).toEqual([]);
    expect((await lstat(path.join(dir, owner!))).nlink).toBe(3);
    expect(JSON.parse(await readFile(lockPath, "utf8"))).toEqual({ ...ownLock(), file: owner });
    await first.release();
    expect(await ownerFiles()).toEqual([owner]);
    await second.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it("taking over a stale lock removes the dead process's owner file, and nothing else the lock names", async () => {
    const pid = await deadPid();
    const staleOwner = `.rangeget-${pid}-0badcafe-1.owner`;
    await writeFile(path.join(dir, staleOwner), JSON.stringify({ pid, host: hostname(), file: staleOwner }));
    await link(path.join(dir, staleOwner), lockPath);
    const lock = await acquireLock(lockPath, output, { clock });
    expect(await ownerFiles()).not.toContain(staleOwner);
    await lock.release();

    await writeFile(path.join(dir, "precious.txt"), "keep me");
    await writeFile(lockPath, JSON.stringify({ pid, host: hostname(), file: "precious.txt" }));
    const again = await acquireLock(lockPath, output, { clock });
    await again.release();
    expect(await readdir(dir)).toEqual(["precious.txt"]);
  });

  it("an owner file removed by someone else is written anew for the next lock", async () => {
    const first = await acquireLock(lockPath, output, { clock });
    const [owner] = await ownerFiles();
    await rm(path.join(dir, owner!));
    const second = await acquireLock(path.join(dir, "other.iso.part.lock"), path.join(dir, "other.iso"), { clock });
    const [renewed, ...more] = await ownerFiles();
    expect(more).toEqual([]);
    expect(renewed).not.toBe(owner);
    await first.release();
    await second.release();
    expect(await readdir(dir)).toEqual([]);
  });

  it("release does not fail when the lock file is already gone", async () => {
    const lock = await acquireLock(lockPath, output, { clock });
    await rm(lockPath);
    await expect(lock.release()).resolves.toBeUndefined();
  });

  it("fails with a FileError when the lock cannot be created", async () => {
    const error = await acquireLock(path.join(dir, "missing-dir", "x.part.lock"), output, { clock }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(FileError);
  });

  it("lets exactly one of two simultaneous acquires win, even while the winner is still writing its pid", async () => {
    // Two processes start on the same output at once. The first has created the lock file
    // but not yet written its pid when the second looks at it: the second must not take it.
    let slowWriterParked!: () => void;
    const parked = new Promise<void>((resolve) => (slowWriterParked = resolve));
    let secondSettled!: () => void;
    const settled = new Promise<void>((resolve) => (secondSettled = resolve));
    let first = true;
    lockWriteHook.current = async () => {
      if (!first) return;
      first = false;
      slowWriterParked();
      await Promise.race([settled, setTimeout(500)]);
    };
    const slow = acquireLock(lockPath, output, { clock });
    await Promise.race([parked, slow.catch(() => {})]);
    const fast = acquireLock(lockPath, output, { clock });
    await fast.catch(() => {});
    secondSettled();
    const results = await Promise.allSettled([slow, fast]);
    const winners = results.filter((result) => result.status === "fulfilled");
    expect(winners, `${winners.length} acquires succeeded`).toHaveLength(1);
    const loser = results.find((result) => result.status === "rejected");
    expect((loser?.reason as FileError | undefined)?.code).toBe("ERR_LOCKED");
    for (const winner of winners) await (winner as PromiseFulfilledResult<Lock>).value.release();
  });
});

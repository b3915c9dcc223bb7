import { spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { constants } from "node:fs";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { loadNetrc } from "../src/cli/access.js";
import { main, type SignalSource } from "../src/cli/main.js";
import { rejectSharedOutputs } from "../src/cli/items.js";
import { FileError, interruptExitCode, UsageError, type InterruptSignal } from "../src/errors.js";
import { acquireLock, EMPTY_LOCK_GRACE_MS, EMPTY_LOCK_POLL_MS } from "../src/lock.js";
import { adoptPart, createPart, freeBytes } from "../src/part-file.js";
import { partPaths } from "../src/part-paths.js";
import {
  FAT_LARGEST_FILE,
  largestFileFor,
  limitUnknownFor,
  mountTypeOf,
  needsLimitProbe,
  probeLargestFile,
  MSDOS_SUPER_MAGIC,
  openNoFollow,
  platformFor,
  renameRetrying,
  volumeOf,
  type LimitProbe,
  type Truncate,
  type Volume,
} from "../src/platform.js";
import { discard } from "../src/http.js";
import { probe } from "../src/probe.js";
import { NOTHING_KNOWN } from "../src/verdict.js";
import { requestContext } from "./support/http-context.js";
import { FakeClock } from "./support/fake-clock.js";
import { makeContent } from "./support/content.js";
import { rangeServer, rawServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { checkpointedBytes } from "./support/checkpoint.js";
import { until } from "./support/until.js";

/** The clock a lock's wait and the renames sleep on in tests that do not look at it. */
const lockClock = new FakeClock();

const GiB = 1024 ** 3;
const windows = platformFor("win32", {});
const macos = platformFor("darwin", { O_NOFOLLOW: constants.O_NOFOLLOW });
const linux = platformFor("linux", constants);

describe("the platform seam", () => {
  it("says what each system offers", () => {
    expect(windows).toMatchObject({ noFollowFlag: undefined, procFs: false, permissionModes: false, sparseFiles: false });
    expect(windows.renameRetryMs).toBeGreaterThan(0);
    expect(windows.interruptSignals).toEqual(expect.arrayContaining(["SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK"]));
    expect(macos).toMatchObject({ procFs: false, permissionModes: true, renameRetryMs: 0, sparseFiles: true });
    expect(macos.interruptSignals).toEqual(["SIGINT", "SIGTERM", "SIGHUP"]);
    expect(linux).toMatchObject({ noFollowFlag: constants.O_NOFOLLOW, procFs: true, renameRetryMs: 0 });
    // Growing a file writes no zeros on Windows and macOS; on Linux only a sparse volume says so.
    expect([windows.growsWithoutWriting, macos.growsWithoutWriting, linux.growsWithoutWriting]).toEqual([true, true, false]);
  });

  it("gives SIGHUP and SIGBREAK their shell exit codes", () => {
    expect(interruptExitCode("SIGHUP")).toBe(129);
    expect(interruptExitCode("SIGBREAK")).toBe(149);
    expect(interruptExitCode("SIGINT")).toBe(130);
  });
});

describe("openNoFollow without O_NOFOLLOW (Windows)", () => {
  it("refuses a symlink with ELOOP instead of silently following it, and opens a plain file", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "victim"), "keep me");
    await symlink(join(dir, "victim"), join(dir, "link"));
    const refused = await openNoFollow(join(dir, "link"), constants.O_RDWR, undefined, windows).catch((error: NodeJS.ErrnoException) => error.code);
    expect(refused).toBe("ELOOP");
    const created = await openNoFollow(join(dir, "new"), constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o666, windows);
    await created.write("fresh");
    await created.close();
    expect(await readFile(join(dir, "new"), "utf8")).toBe("fresh");
    expect(await readFile(join(dir, "victim"), "utf8")).toBe("keep me");
  });
});

describe("renameRetrying", () => {
  const held = (code: string) => Object.assign(new Error(code), { code });

  it("on Windows retries a rename another program holds (EPERM, EBUSY, EACCES) until it goes through", async () => {
    const clock = new FakeClock({ instantUpToMs: 60_000 });
    const codes = ["EPERM", "EBUSY", "EACCES"];
    let calls = 0;
    await renameRetrying("a", "b", {
      platform: windows,
      clock,
      rename: async () => {
        const code = codes[calls++];
        if (code !== undefined) throw held(code);
      },
    });
    expect(calls).toBe(4);
    expect(clock.sleeps).toEqual([10, 20, 40]);
  });

  it("gives up after the bounded time, and never retries other errors or on POSIX", async () => {
    const clock = new FakeClock({ instantUpToMs: 60_000 });
    let calls = 0;
    const always = async () => {
      calls++;
      throw held("EBUSY");
    };
    await expect(renameRetrying("a", "b", { platform: windows, clock, rename: always })).rejects.toMatchObject({ code: "EBUSY" });
    expect(clock.sleeps.reduce((sum, ms) => sum + ms, 0)).toBe(windows.renameRetryMs);
    calls = 0;
    await expect(renameRetrying("a", "b", { platform: linux, clock: new FakeClock({ instantUpToMs: 60_000 }), rename: always })).rejects.toMatchObject({ code: "EBUSY" });
    expect(calls).toBe(1);
    calls = 0;
    const missing = async () => {
      calls++;
      throw held("ENOENT");
    };
    await expect(renameRetrying("a", "b", { platform: windows, clock: new FakeClock({ instantUpToMs: 60_000 }), rename: missing })).rejects.toMatchObject({ code: "ENOENT" });
    expect(calls).toBe(1);
  });
});

describe("the lock without hard links or /proc", () => {
  /** link(2) as exFAT under FUSE answers it. */
  const noLinks = async () => {
    throw Object.assign(new Error("EPERM: operation not permitted, link"), { code: "EPERM" });
  };

  it("falls back to an exclusive create where link(2) is refused, and stays exclusive", async () => {
    const dir = await tempDir();
    const output = join(dir, "big.iso");
    const lock = await acquireLock(partPaths(output).lock, output, { clock: lockClock, link: noLinks });
    expect(JSON.parse(await readFile(partPaths(output).lock, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    const second = await acquireLock(partPaths(output).lock, output, { clock: lockClock, link: noLinks }).catch((error: unknown) => error);
    expect(second).toBeInstanceOf(FileError);
    expect((second as FileError).code).toBe("ERR_LOCKED");
    expect((second as FileError).message).toContain("this same run");
    await lock.release();
    const again = await acquireLock(partPaths(output).lock, output, { clock: lockClock, link: noLinks });
    await again.release();
  });

  it("falls back as well where Windows refuses the link on exFAT or FAT32 (EISDIR, libuv's ERROR_INVALID_FUNCTION)", async () => {
    const dir = await tempDir();
    const output = join(dir, "stick.iso");
    const windowsNoLinks = async () => {
      throw Object.assign(new Error("EISDIR: illegal operation on a directory, link"), { code: "EISDIR" });
    };
    const lock = await acquireLock(partPaths(output).lock, output, { clock: lockClock, platform: windows, link: windowsNoLinks });
    expect(JSON.parse(await readFile(partPaths(output).lock, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    await lock.release();
  });

  /** An exclusively made lock of `output`, empty, its mtime `ageMs` before the clock's wall time. */
  async function emptyLock(output: string, clock: FakeClock, ageMs: number): Promise<void> {
    const { utimes } = await import("node:fs/promises");
    const dir = join(output, "..");
    // Teaches the lock that this directory has no hard links, as a first lock there would.
    await acquireLock(join(dir, "warm.part.lock"), join(dir, "warm"), { clock, link: noLinks }).then((lock) => lock.release());
    await writeFile(partPaths(output).lock, "");
    const mtime = new Date(clock.wall() - ageMs);
    await utimes(partPaths(output).lock, mtime, mtime);
  }

  it("takes over an exclusively made lock left empty by a crash once it is older than the grace period, without waiting", async () => {
    const output = join(await tempDir(), "crashed.iso");
    const clock = new FakeClock({ instantUpToMs: 60_000 });
    await emptyLock(output, clock, EMPTY_LOCK_GRACE_MS + 1000);
    const lock = await acquireLock(partPaths(output).lock, output, { clock, link: noLinks });
    expect(JSON.parse(await readFile(partPaths(output).lock, "utf8"))).toMatchObject({ pid: process.pid });
    await lock.release();
    expect(clock.sleeps).toEqual([]);
  });

  it("waits out the grace period of a lock seen empty just now, then says it is being locked", async () => {
    const output = join(await tempDir(), "racing.iso");
    const clock = new FakeClock({ instantUpToMs: 60_000 });
    await emptyLock(output, clock, 0);
    const error = (await acquireLock(partPaths(output).lock, output, { clock, link: noLinks }).catch((caught: unknown) => caught)) as FileError;
    expect(error).toBeInstanceOf(FileError);
    expect(error.code).toBe("ERR_LOCKED");
    expect(error.message).toContain("is being locked by another rangeget process just now");
    // Read again every poll until the grace period is over, and not a poll longer.
    expect(clock.sleeps).toEqual(Array.from({ length: EMPTY_LOCK_GRACE_MS / EMPTY_LOCK_POLL_MS }, () => EMPTY_LOCK_POLL_MS));
    expect(await readFile(partPaths(output).lock, "utf8")).toBe("");
  });

  it("reads the owner its creator writes during the grace period, and judges the lock by it", async () => {
    const output = join(await tempDir(), "written.iso");
    const clock = new FakeClock();
    await emptyLock(output, clock, 0);
    const taking = acquireLock(partPaths(output).lock, output, { clock, link: noLinks }).catch((caught: unknown) => caught);
    await vi.waitFor(() => expect(clock.pending).toBe(1));
    await writeFile(partPaths(output).lock, JSON.stringify({ pid: process.pid, host: hostname() }));
    clock.advance(EMPTY_LOCK_POLL_MS);
    const error = (await taking) as FileError;
    expect(error.code).toBe("ERR_LOCKED");
    expect(error.message).toContain("this same run");
    expect(clock.sleeps).toEqual([EMPTY_LOCK_POLL_MS]);
  });

  it("without /proc a dead holder is taken over, and a live pid is refused with how to clear it", async () => {
    const dir = await tempDir();
    const output = join(dir, "file.bin");
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    await once(child, "exit");
    await writeFile(partPaths(output).lock, JSON.stringify({ pid: child.pid, host: hostname() }));
    const lock = await acquireLock(partPaths(output).lock, output, { clock: lockClock, platform: macos });
    await lock.release();
    await writeFile(partPaths(output).lock, JSON.stringify({ pid: process.ppid, host: hostname() }));
    const refused = (await acquireLock(partPaths(output).lock, output, { clock: lockClock, platform: windows }).catch((error: unknown) => error)) as FileError;
    expect(refused.code).toBe("ERR_LOCKED");
    expect(refused.message).toContain(`pid ${process.ppid}`);
    expect(refused.message).toContain(`if no rangeget is running, remove ${partPaths(output).lock}`);
  });
});

describe("limits known up front", () => {
  it("reads FAT from statfs, and from the mount type on a FUSE mount where statfs says only fuse", () => {
    expect(largestFileFor(MSDOS_SUPER_MAGIC, undefined)).toBe(FAT_LARGEST_FILE);
    expect(largestFileFor(0x65735546, "fuse.fusefat")).toBe(FAT_LARGEST_FILE);
    expect(largestFileFor(0x65735546, "fuseblk.vfat")).toBe(FAT_LARGEST_FILE);
    expect(largestFileFor(0x65735546, "fuseblk")).toBeUndefined();
    expect(largestFileFor(0xef53, "ext4")).toBeUndefined();
    const mountinfo = [
      "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
      "40 22 7:0 / /media/usb\\040stick rw,relatime shared:2 - fuse.fusefat /dev/loop0 rw",
    ].join("\n");
    expect(mountTypeOf(mountinfo, "/media/usb stick/iso")).toBe("fuse.fusefat");
    expect(mountTypeOf(mountinfo, "/media/usb")).toBe("ext4");
  });

  it("refuses a 5 GiB file to a FAT32 volume before any byte is written, exit 6", async () => {
    const fat32: Volume = { sparse: false, caseInsensitive: true, largestFile: FAT_LARGEST_FILE };
    const path = join(await tempDir(), "big.iso");
    const error = (await createPart(path, 5 * GiB, fat32).catch((caught: unknown) => caught)) as FileError;
    expect(error).toBeInstanceOf(FileError);
    expect(error.code).toBe("ERR_FILE_TOO_LARGE");
    expect(error.exitCode).toBe(6);
    expect(error.message).toContain("FAT32");
    expect(error.message).not.toContain("\n");
    const { existsSync } = await import("node:fs");
    expect(existsSync(partPaths(path).part)).toBe(false);
  });

  it("takes 0 bytes free of 0 in total as unknown, not as a full disk", () => {
    expect(freeBytes({ blocks: 0, bavail: 0, bsize: 4096 })).toBeUndefined();
    expect(freeBytes({ blocks: 100, bavail: 0, bsize: 4096 })).toBe(0);
    expect(freeBytes({ blocks: 100, bavail: 10, bsize: 4096 })).toBe(40960);
  });

  it("a volume without sparse files gets an empty .part that the writes grow", async () => {
    const path = join(await tempDir(), "grow.bin");
    const file = await createPart(path, 10_000_000, { sparse: false, caseInsensitive: true, largestFile: undefined });
    expect((await file.stat()).size).toBe(0);
    await file.close();
  });
});

/** An ftruncate that refuses to grow a file past 4 GiB - 1, as FAT32 does (EFBIG), after counting the call. */
function fat32Truncate(calls: number[] = []): Truncate {
  return async (file, size) => {
    calls.push(size);
    if (size > FAT_LARGEST_FILE) throw Object.assign(new Error("EFBIG: file too large"), { code: "EFBIG" });
    await file.truncate(size);
  };
}

describe("FAT32's limit probed where the mount does not say (macOS, Windows, a bare FUSE mount)", () => {
  const unknown: Volume = { sparse: false, caseInsensitive: true, largestFile: undefined, limitUnknown: true };

  it("knows the limit from the mount on Linux, and not without /proc or from a bare fuse or fuseblk", () => {
    expect(limitUnknownFor(0xef53, "ext4")).toBe(false);
    expect(limitUnknownFor(0x65735546, "fuse.fusefat")).toBe(false);
    expect(limitUnknownFor(MSDOS_SUPER_MAGIC, undefined)).toBe(false);
    expect(limitUnknownFor(0x65735546, "fuseblk")).toBe(true);
    expect(limitUnknownFor(0x65735546, "fuse")).toBe(true);
    expect(limitUnknownFor(0x1badface, undefined)).toBe(true);
  });

  it("probes only a file past FAT's limit, of a volume whose limit is unknown, where growing writes nothing", () => {
    const size = 5 * GiB;
    expect(needsLimitProbe(size, unknown, windows)).toBe(true);
    expect(needsLimitProbe(size, unknown, macos)).toBe(true);
    // Linux, a volume without sparse files (exfat-fuse says only fuseblk): growing would write 5 GiB of zeros.
    expect(needsLimitProbe(size, unknown, linux)).toBe(false);
    expect(needsLimitProbe(size, { ...unknown, sparse: true }, linux)).toBe(true);
    expect(needsLimitProbe(FAT_LARGEST_FILE, unknown, windows)).toBe(false);
    expect(needsLimitProbe(size, { ...unknown, limitUnknown: false }, windows)).toBe(false);
    expect(needsLimitProbe(size, { ...unknown, largestFile: FAT_LARGEST_FILE }, windows)).toBe(false);
  });

  it("asks the volume by growing a probe file, which it removes: FAT32 refuses, a volume without the limit holds it", async () => {
    const dir = await tempDir();
    const calls: number[] = [];
    expect(await probeLargestFile(dir, 5 * GiB, true, { platform: windows, truncate: fat32Truncate(calls) })).toBe(FAT_LARGEST_FILE);
    expect(calls).toEqual([5 * GiB]);
    // This temp dir's own volume (sparse): the real ftruncate grows the probe to 5 GiB at no cost.
    expect(await probeLargestFile(dir, 5 * GiB, true, { platform: linux, truncate: (file, size) => file.truncate(size) })).toBeUndefined();
    // Windows' FAT driver says "disk full" past 4 GiB: the length is refused only when the space is known to do.
    const full: Truncate = async () => {
      throw Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" });
    };
    expect(await probeLargestFile(dir, 5 * GiB, true, { platform: windows, truncate: full })).toBe(FAT_LARGEST_FILE);
    expect(await probeLargestFile(dir, 5 * GiB, false, { platform: windows, truncate: full })).toBeUndefined();
    const { readdir } = await import("node:fs/promises");
    expect(await readdir(dir)).toEqual([]);
  });

  it.each([
    ["Windows", windows],
    ["macOS", macos],
  ])("on %s, a 5 GiB file to FAT32 is refused before any byte, exit 6, with nothing left; 4 GiB - 1 is not", async (_name, platform) => {
    const dir = await tempDir();
    const volume = await volumeOf(dir, platform);
    // Without /proc nothing names the file system: the limit is not known from the mount.
    expect(volume).toMatchObject({ largestFile: undefined, limitUnknown: true });
    const seam: LimitProbe = { platform, truncate: fat32Truncate() };
    const path = join(dir, "big.iso");
    const error = (await createPart(path, 5 * GiB, volume, seam).catch((caught: unknown) => caught)) as FileError;
    expect(error).toBeInstanceOf(FileError);
    expect(error.code).toBe("ERR_FILE_TOO_LARGE");
    expect(error.exitCode).toBe(6);
    expect(error.message).toBe(`${partPaths(path).part} would be ${5 * GiB} bytes, too large (EFBIG): the volume holding it cannot store files larger than ${FAT_LARGEST_FILE} bytes (FAT32); choose another \`dir\` or \`output\``);
    const { readdir } = await import("node:fs/promises");
    expect(await readdir(dir)).toEqual([]);
    // --continue of a partial file: the same refusal, and the user's file stays where it was.
    await writeFile(path, "partial");
    const adopted = (await adoptPart(path, 7, 5 * GiB, lockClock, volume, seam).catch((caught: unknown) => caught)) as FileError;
    expect(adopted.code).toBe("ERR_FILE_TOO_LARGE");
    expect(await readdir(dir)).toEqual(["big.iso"]);
    const fits = await createPart(join(dir, "fits.iso"), FAT_LARGEST_FILE, volume, seam);
    await fits.close();
  });

  it("refuses a 5 GiB file the server reports, through the seam saying FAT32 on Windows, with no body byte past the probe's", async () => {
    const size = 5 * GiB;
    const served: number[] = [];
    const server = await rawServer((socket, request) => {
      const match = /^bytes=(\d+)-(\d+)$/.exec(request?.headers["range"] ?? "");
      const start = Number(match?.[1] ?? 0);
      const end = Math.min(Number(match?.[2] ?? 0), start + 64 * 1024 - 1);
      served.push(end - start + 1);
      const head = [`HTTP/1.1 206 Partial Content`, `Content-Range: bytes ${start}-${end}/${size}`, `Content-Length: ${end - start + 1}`, 'ETag: "five-gib"', "Connection: close"];
      socket.end(Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`, "latin1"), Buffer.alloc(end - start + 1)]));
    });
    const dir = await tempDir();
    const path = join(dir, "big.iso");
    // As file-download.ts does: the probe's answer proves the size, then the .part is made.
    const answer = await probe(requestContext(), { url: server.url("/big.iso"), range: { start: 0, end: 64 * 1024 - 1 }, known: NOTHING_KNOWN, retries: 1 }, new AbortController().signal);
    expect(answer.verdict).toMatchObject({ kind: "bytes", size });
    const volume = await volumeOf(dir, windows);
    const error = (await createPart(path, size, volume, { platform: windows, truncate: fat32Truncate() }).catch((caught: unknown) => caught)) as FileError;
    await discard(answer.response);
    expect(error.exitCode).toBe(6);
    expect(error.message.split("\n")).toHaveLength(1);
    expect(served).toEqual([64 * 1024]);
    const { readdir } = await import("node:fs/promises");
    expect(await readdir(dir)).toEqual([]);
  });
});

describe("names that collide", () => {
  const items = (...entries: [string, string?][]) => entries.map(([url, output]) => (output === undefined ? { url } : { url, output }));

  it("refuses two URLs that give one name, and on a volume that ignores case, A.iso and a.iso", async () => {
    const same = await rejectSharedOutputs(items(["http://a.test/small.bin"], ["http://b.test/small.bin"]), "/tmp/x").catch((error: unknown) => error);
    expect(same).toBeInstanceOf(UsageError);
    expect((same as UsageError).message).toContain("http://a.test/small.bin and http://b.test/small.bin would both be saved as small.bin");
    const folding = { namesFoldCase: async () => true };
    const cased = await rejectSharedOutputs(items(["http://a.test/A.iso"], ["http://a.test/a.iso"]), "/tmp/x", folding).catch((error: unknown) => error);
    expect((cased as UsageError).message).toContain("would be saved as A.iso and a.iso, one file on a volume that ignores case");
    await expect(rejectSharedOutputs(items(["http://a.test/A.iso"], ["http://a.test/a.iso"]), "/tmp/x", { namesFoldCase: async () => false })).resolves.toBeUndefined();
    // Per output directory: the same name in two directories is two files.
    await expect(rejectSharedOutputs(items(["http://a.test/x", "one/A.iso"], ["http://a.test/y", "two/a.iso"]), "/tmp/x", folding)).resolves.toBeUndefined();
  });

  it("asks the file system whether names fold case", async () => {
    const dir = await tempDir();
    await mkdir(join(dir, "sub"));
    expect((await volumeOf(join(dir, "sub"))).caseInsensitive).toBe(false);
  });
});

describe("signals and permissions on other systems", () => {
  it("SIGHUP (and SIGBREAK on Windows) stop a download with its state saved, like Ctrl-C", async () => {
    for (const [platform, signal] of [
      [linux, "SIGHUP"],
      [windows, "SIGBREAK"],
    ] as const) {
      const content = makeContent(4 * 1024 * 1024, 3);
      const server = await rangeServer({ content, bytesPerSecond: 256 * 1024 });
      const dir = await tempDir();
      const output = join(dir, "file.bin");
      const emitter = new EventEmitter();
      const signals: SignalSource = { on: (event, listener) => emitter.on(event, listener), off: (event, listener) => emitter.off(event, listener) };
      const sink = { write: () => true, isTTY: false };
      const exit = main([server.url(), "-o", output, "-q", "--min-split", "256K"], { signals, platform, stdout: sink as never, stderr: sink as never });
      const { existsSync } = await import("node:fs");
      // A state of the client (a checkpoint with bytes), not a moment: under load the
      // .part can exist long before a byte is written into it.
      let before = 0;
      await until(async () => (before = await checkpointedBytes(output)) > 0, "a checkpoint with bytes");
      emitter.emit(signal, signal satisfies InterruptSignal);
      expect(await exit).toBe(interruptExitCode(signal));
      // The state is saved: the manifest is there and keeps at least what it had.
      expect(await checkpointedBytes(output)).toBeGreaterThanOrEqual(before);
      expect(existsSync(partPaths(output).part)).toBe(true);
      expect(existsSync(output)).toBe(false);
    }
  });

  it("no netrc permission warning where file modes mean nothing (Windows reads 0666)", async () => {
    const env = { readTextFile: async () => "machine a.test login u password p\n", fileMode: async () => 0o100666, homeDir: "/home/u" };
    expect((await loadNetrc("/home/u/.netrc", env)).warning).toContain("chmod 600");
    expect((await loadNetrc("/home/u/.netrc", { ...env, platform: windows })).warning).toBeUndefined();
  });
});

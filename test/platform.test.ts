import { spawn } from "node:child_process";
import { EventEmitter, once } from "node:events";
import { constants } from "node:fs";
import { mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadNetrc } from "../src/cli/access.js";
import { main, type SignalSource } from "../src/cli/main.js";
import { rejectSharedOutputs } from "../src/cli/items.js";
import { FileError, interruptExitCode, UsageError, type InterruptSignal } from "../src/errors.js";
import { acquireLock } from "../src/lock.js";
import { createPart, freeBytes } from "../src/part-file.js";
import { partPaths } from "../src/part-paths.js";
import {
  FAT_LARGEST_FILE,
  largestFileFor,
  mountTypeOf,
  MSDOS_SUPER_MAGIC,
  openNoFollow,
  platformFor,
  renameRetrying,
  volumeOf,
  type Volume,
} from "../src/platform.js";
import { FakeClock } from "./support/fake-clock.js";
import { makeContent } from "./support/content.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

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
    const lock = await acquireLock(partPaths(output).lock, output, { link: noLinks });
    expect(JSON.parse(await readFile(partPaths(output).lock, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    const second = await acquireLock(partPaths(output).lock, output, { link: noLinks }).catch((error: unknown) => error);
    expect(second).toBeInstanceOf(FileError);
    expect((second as FileError).code).toBe("ERR_LOCKED");
    expect((second as FileError).message).toContain("this same run");
    await lock.release();
    const again = await acquireLock(partPaths(output).lock, output, { link: noLinks });
    await again.release();
  });

  it("falls back as well where Windows refuses the link on exFAT or FAT32 (EISDIR, libuv's ERROR_INVALID_FUNCTION)", async () => {
    const dir = await tempDir();
    const output = join(dir, "stick.iso");
    const windowsNoLinks = async () => {
      throw Object.assign(new Error("EISDIR: illegal operation on a directory, link"), { code: "EISDIR" });
    };
    const lock = await acquireLock(partPaths(output).lock, output, { platform: windows, link: windowsNoLinks });
    expect(JSON.parse(await readFile(partPaths(output).lock, "utf8"))).toMatchObject({ pid: process.pid, host: hostname() });
    await lock.release();
  });

  it("takes over an exclusively made lock left empty by a crash once it is older than the grace period", async () => {
    const dir = await tempDir();
    const output = join(dir, "crashed.iso");
    const { utimes } = await import("node:fs/promises");
    await acquireLock(join(dir, "warm.part.lock"), join(dir, "warm"), { link: noLinks }).then((lock) => lock.release());
    await writeFile(partPaths(output).lock, "");
    const past = new Date(Date.now() - 60_000);
    await utimes(partPaths(output).lock, past, past);
    const lock = await acquireLock(partPaths(output).lock, output, { link: noLinks });
    expect(JSON.parse(await readFile(partPaths(output).lock, "utf8"))).toMatchObject({ pid: process.pid });
    await lock.release();
  });

  it("without /proc a dead holder is taken over, and a live pid is refused with how to clear it", async () => {
    const dir = await tempDir();
    const output = join(dir, "file.bin");
    const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
    await once(child, "exit");
    await writeFile(partPaths(output).lock, JSON.stringify({ pid: child.pid, host: hostname() }));
    const lock = await acquireLock(partPaths(output).lock, output, { platform: macos });
    await lock.release();
    await writeFile(partPaths(output).lock, JSON.stringify({ pid: process.ppid, host: hostname() }));
    const refused = (await acquireLock(partPaths(output).lock, output, { platform: windows }).catch((error: unknown) => error)) as FileError;
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
      for (let waited = 0; !existsSync(partPaths(output).part) && waited < 5000; waited += 20) await new Promise((resolve) => setTimeout(resolve, 20));
      emitter.emit(signal, signal satisfies InterruptSignal);
      expect(await exit).toBe(interruptExitCode(signal));
      expect(existsSync(partPaths(output).manifest)).toBe(true);
      expect(existsSync(output)).toBe(false);
    }
  });

  it("no netrc permission warning where file modes mean nothing (Windows reads 0666)", async () => {
    const env = { readTextFile: async () => "machine a.test login u password p\n", fileMode: async () => 0o100666, homeDir: "/home/u" };
    expect((await loadNetrc("/home/u/.netrc", env)).warning).toContain("chmod 600");
    expect((await loadNetrc("/home/u/.netrc", { ...env, platform: windows })).warning).toBeUndefined();
  });
});

// Local faults against the CLI (its `main` in this process, run-main.ts; the built CLI as
// a child where a process is the point): a full disk and a file-size limit, permissions,
// an output that is a directory, partial state tampered with between runs, and two
// processes on one output. Each ends in one clear line and exit 6 with the partial
// state kept, or in a correct file; never a crash, a hang or a file with wrong bytes.
import { spawn, spawnSync } from "node:child_process";
import { closeSync, existsSync, openSync, writeSync } from "node:fs";
import { chmod, mkdir, mkdtemp, open, readdir, readFile, rm, stat, truncate, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Manifest } from "../src/manifest.js";
import { IntervalSet, type Interval } from "../src/ranges.js";
import { makeContent, sha256 } from "./support/content.js";
import { defaultEtag, type RangeServer } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { tarArchive } from "./support/tar-archive.js";
import { assertBuilt, lines, runCli, startCli, unprivileged, type CliOptions, type CliRun } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const SERVER_LAST_MODIFIED = "Tue, 02 Jan 2024 03:04:05 GMT";
const closers: Array<() => Promise<void>> = [];
let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await mkdtemp(join(tmpdir(), "rangeget-faults-"));
});

afterEach(async () => {
  // Unmounts first (in reverse), then the directory they lived in; servers.ts closes the servers.
  for (const close of closers.splice(0).reverse()) await close();
  await rm(workDir, { recursive: true, force: true });
});

/** The CLI in this process (run-main.ts); a child where the test needs a process: another user (`as`), a limit (`wrapper`). */
function cli(args: string[], options: Partial<CliOptions> = {}): Promise<CliRun> {
  const run = options.as !== undefined || options.wrapper !== undefined ? runCli : runMain;
  return run(["-q", "--timeout", "5", ...args], { cwd: workDir, timeoutMs: 15_000, ...options });
}

async function readManifest(output: string): Promise<Manifest> {
  return JSON.parse(await readFile(`${output}.part.json`, "utf8")) as Manifest;
}

/**
 * The state an interrupted run leaves (DESIGN.md, "Files on disk"): a full-length
 * `.part` holding the right bytes where `done` says, and its manifest.
 */
async function leavePartial(output: string, source: RangeServer, done: Interval[]): Promise<void> {
  const content = source.content;
  const part = await open(`${output}.part`, "w");
  await part.truncate(content.length);
  for (const [start, end] of done) await part.write(content, start, end - start + 1, start);
  await part.close();
  const manifest: Manifest = {
    version: 1,
    url: source.url(),
    finalUrl: source.url(),
    size: content.length,
    etag: defaultEtag(content),
    lastModified: SERVER_LAST_MODIFIED,
    done,
  };
  await writeFile(`${output}.part.json`, JSON.stringify(manifest));
}

/** The union of the byte ranges requested from request `from` on. */
function askedRanges(source: RangeServer, from: number): Interval[] {
  const asked = new IntervalSet();
  for (const request of source.requests.slice(from)) {
    if (request.range) asked.add(request.range.start, Math.min(request.range.end ?? Infinity, source.content.length - 1));
  }
  return asked.toArray();
}

function expectFileError(run: CliRun, message: RegExp): void {
  expect(run.timedOut, "the CLI hung").toBe(false);
  expect(lines(run.stderr), run.stderr).toEqual([expect.stringMatching(/^rangeget: /)]);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toContain("internal error");
  expect(run.code).toBe(6);
}

// ---------------------------------------------------------------------------------
// A full disk and a file-size limit
// ---------------------------------------------------------------------------------

/** `prlimit --fsize`, or bash's `ulimit -f` with SIGXFSZ ignored (an ignored signal stays ignored across exec). */
function fileSizeLimit(bytes: number): string[] {
  if (spawnSync("prlimit", ["--version"], { stdio: "ignore" }).status === 0) return ["prlimit", `--fsize=${bytes}`, "--"];
  return ["bash", "-c", `trap '' XFSZ; ulimit -f ${Math.floor(bytes / 1024)}; exec "$@"`, "bash"];
}

/** Mounts a tmpfs of `bytes` on a fresh directory; `undefined` where mounting is not allowed (not root, no CAP_SYS_ADMIN). */
async function smallFileSystem(bytes: number, options: { readOnly?: boolean } = {}): Promise<string | undefined> {
  const dir = join(workDir, `fs-${closers.length}`);
  await mkdir(dir);
  const mountOptions = `size=${bytes},mode=0755${options.readOnly ? ",ro" : ""}`;
  if (spawnSync("mount", ["-t", "tmpfs", "-o", mountOptions, "tmpfs", dir], { stdio: "ignore" }).status !== 0) return undefined;
  closers.push(async () => {
    spawnSync("umount", ["-l", dir], { stdio: "ignore" });
  });
  return dir;
}

/** Whether this machine lets the tests mount a tmpfs; the tmpfs tests are skipped (and say why) where it does not. */
const canMount = (() => {
  if (process.platform !== "linux" || process.getuid?.() !== 0) return false;
  const probe = join(tmpdir(), `rangeget-mount-probe-${process.pid}`);
  spawnSync("mkdir", ["-p", probe]);
  const mounted = spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", probe], { stdio: "ignore" }).status === 0;
  if (mounted) spawnSync("umount", [probe]);
  spawnSync("rmdir", [probe]);
  return mounted;
})();

describe("a file-size limit (RLIMIT_FSIZE: EFBIG)", () => {
  it("below the file's size: exit 6 before any byte is written; without the limit the same command downloads it", async () => {
    const source = await rangeServer({ content: makeContent(2 * MiB, 71) });
    const output = join(workDir, "big.bin");
    const limited = await cli(["-c", "2", "--min-split", "256K", "-o", output, source.url()], { wrapper: fileSizeLimit(512 * KiB) });
    expectFileError(limited, /EFBIG/);
    expect(limited.stderr).toContain(`${output}.part`);
    expect(existsSync(output)).toBe(false);

    const again = await cli(["-c", "2", "--min-split", "256K", "-o", output, source.url()]);
    expect(again.code, again.stderr).toBe(0);
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
  });

  it("hit mid-download: exit 6, one line, every durable byte kept; without the limit it resumes to the right bytes", async () => {
    const source = await rangeServer({ content: makeContent(2 * MiB, 72) });
    const output = join(workDir, "big.bin");
    await leavePartial(output, source, [[0, 256 * KiB - 1]]);
    const args = ["--json", "-c", "2", "--min-split", "256K", "-o", output, source.url()];

    const limited = await cli(args, { wrapper: fileSizeLimit(1 * MiB) });
    expectFileError(limited, /EFBIG/);
    expect(JSON.parse(limited.stdout)).toMatchObject({ status: "failed", error: { code: "ERR_FILE_TOO_LARGE" } });
    expect(limited.stderr).not.toContain("no space left");
    expect(existsSync(output)).toBe(false);
    expect((await stat(`${output}.part`)).size).toBe(source.content.length);
    const kept = IntervalSet.from((await readManifest(output)).done);
    expect(kept.bytes).toBeGreaterThanOrEqual(256 * KiB);
    // Nothing past the limit can have been written, so nothing past it may be claimed.
    expect(kept.toArray().every(([, end]) => end < 1 * MiB)).toBe(true);

    const from = source.requests.length;
    const resumed = await cli(args);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "resumed", resumed: true });
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
    expect(askedRanges(source, from)).toEqual(kept.missing(source.content.length));
  });
});

describe.skipIf(!canMount)("a small file system (tmpfs; skipped where mounting is not allowed)", () => {
  it("too small for the file: refused up front by the free-space check, exit 6, nothing allocated", async () => {
    const disk = (await smallFileSystem(2 * MiB))!;
    const source = await rangeServer({ content: makeContent(3 * MiB, 73) });
    const output = join(disk, "big.bin");
    const run = await cli(["--min-split", "256K", "-o", output, source.url()]);
    expectFileError(run, /not enough space/);
    expect(run.stderr).toContain(`${output}.part`);
    expect(await readdir(disk)).toEqual([]);
    expect(source.requests).toHaveLength(1);
  });

  it("filling up mid-download (ENOSPC): exit 6, one line, state kept; once space is freed it resumes to the right bytes", async () => {
    const disk = (await smallFileSystem(4 * MiB))!;
    // Held after 512 KiB of each answer until the disk is full: the rest lands on a full disk.
    const source = await rangeServer({ content: makeContent(3 * MiB, 74), holdAfterBytes: 512 * KiB });
    const output = join(disk, "big.bin");
    const filler = join(disk, "filler");
    const args = ["--json", "-c", "2", "--min-split", "256K", "-o", output, source.url()];

    const running = startCli(["-q", "--timeout", "30", ...args], { cwd: workDir, timeoutMs: 30_000 });
    await until(async () => ((await readManifest(output).catch(() => undefined))?.done.length ?? 0) > 0, "a checkpoint with bytes");
    // Someone else takes every free block of the disk.
    const fd = openSync(filler, "w");
    try {
      const block = Buffer.alloc(64 * KiB, 1);
      for (let written = 0; written < 8 * MiB; written += block.length) writeSync(fd, block);
      throw new Error("the tmpfs never filled up");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
    } finally {
      closeSync(fd);
    }
    source.release();
    const full = await running.done;
    expectFileError(full, /no space left \(ENOSPC\)/);
    expect(JSON.parse(full.stdout)).toMatchObject({ status: "failed", error: { code: "ERR_NO_SPACE" } });
    expect(existsSync(output)).toBe(false);
    const kept = IntervalSet.from((await readManifest(output)).done);
    expect(kept.bytes).toBeGreaterThan(0);

    await unlink(filler);
    const from = source.requests.length;
    const resumed = await cli(args);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "resumed" });
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
    expect(askedRanges(source, from)).toEqual(kept.missing(source.content.length));
  });

  it("--extract of a .tar.gz onto a full disk: exit 6, \"no space left\" naming the directory, a re-run starts over; nothing left behind", async () => {
    const disk = (await smallFileSystem(1 * MiB))!;
    // 6 MiB unpacked from a few KiB: the archive has arrived long before the disk fills.
    const archive = gzipSync(tarArchive([{ path: "zeros.bin", body: Buffer.alloc(6 * MiB) }]));
    const source = await rangeServer({ content: archive });
    const out = join(disk, "out");
    const run = await cli(["-c", "4", "--min-split", "64K", "--extract", out, source.url("/a.tar.gz")]);
    expectFileError(run, /no space left \(ENOSPC\); free some space and run again to start over/);
    expect(run.stderr).toContain(`cannot unpack into ${out}: `);
    expect(run.stderr).not.toContain("bytes arrived");
    expect(await readdir(disk)).toEqual([]);
  });

  it("mounted read-only (EROFS): exit 6, one line, before any request", async () => {
    const disk = (await smallFileSystem(1 * MiB, { readOnly: true }))!;
    const source = await rangeServer({ content: makeContent(100 * KiB, 75) });
    const run = await cli(["-o", join(disk, "out.bin"), source.url()]);
    expectFileError(run, /EROFS/);
    expect(source.requests).toHaveLength(0);
  });
});

// ---------------------------------------------------------------------------------
// Permissions, and an output that is a directory
// ---------------------------------------------------------------------------------

// Root passes every permission check, so these children run as someone who does not.
const identity = unprivileged();

describe.skipIf(identity === undefined)(`permission denied (the CLI runs as ${identity?.describe ?? "nobody: no unprivileged identity available"})`, () => {
  beforeEach(async () => {
    await chmod(workDir, 0o755);
  });

  it("-d a directory the user cannot write: exit 6 naming the path, nothing created", async () => {
    const locked = join(workDir, "locked");
    await mkdir(locked, { mode: 0o555 });
    await chmod(locked, 0o555);
    const source = await rangeServer({ content: makeContent(100 * KiB, 76) });
    const run = await cli(["-d", locked, source.url("/file.bin")], { as: identity! });
    expectFileError(run, /permission denied \(EACCES\)/);
    expect(run.stderr).toContain(`cannot write in the directory ${locked}: `);
    expect(await readdir(locked)).toEqual([]);
  });

  it("-d under a directory the user cannot enter: blamed on the directory, not on the lock file", async () => {
    const secret = join(workDir, "secret");
    await mkdir(join(secret, "sub"), { recursive: true });
    // No one may enter, its owner included: the CLI may run as root without CAP_DAC_OVERRIDE, who owns it.
    await chmod(secret, 0o000);
    const source = await rangeServer({ content: makeContent(100 * KiB, 761) });
    const run = await cli(["-d", join(secret, "sub", "new"), source.url("/file.bin")], { as: identity! });
    expectFileError(run, /permission denied \(EACCES\)/);
    expect(run.stderr).toContain(`cannot create the directory ${join(secret, "sub", "new")}: `);
    expect(run.stderr).not.toContain("lock");
  });

  it("-o inside a directory that cannot be created: exit 6 before any request", async () => {
    const locked = join(workDir, "locked");
    await mkdir(locked, { mode: 0o555 });
    await chmod(locked, 0o555);
    const source = await rangeServer({ content: makeContent(100 * KiB, 77) });
    const run = await cli(["-o", join(locked, "sub", "out.bin"), source.url()], { as: identity! });
    expectFileError(run, /cannot create the directory .*permission denied/);
    expect(source.requests).toHaveLength(0);
  });

  it("a .part the user cannot write: exit 6, and the partial state is left exactly as it was", async () => {
    const shared = join(workDir, "shared");
    await mkdir(shared);
    await chmod(shared, 0o777);
    const source = await rangeServer({ content: makeContent(1 * MiB, 78) });
    const output = join(shared, "out.bin");
    await leavePartial(output, source, [[0, 300 * KiB - 1]]);
    await chmod(`${output}.part`, 0o444);
    const manifestBefore = await readFile(`${output}.part.json`, "utf8");
    const partBefore = sha256(await readFile(`${output}.part`));

    const run = await cli(["-c", "2", "--min-split", "256K", "-o", output, source.url()], { as: identity! });
    expectFileError(run, /permission denied \(EACCES\)/);
    expect(run.stderr).toContain(`${output}.part`);
    expect(await readFile(`${output}.part.json`, "utf8")).toBe(manifestBefore);
    expect(sha256(await readFile(`${output}.part`))).toBe(partBefore);
    expect((await readdir(shared)).sort()).toEqual(["out.bin.part", "out.bin.part.json"]);

    // Its owner runs the same command and resumes.
    const owner = await cli(["--json", "-c", "2", "--min-split", "256K", "-o", output, source.url()]);
    expect(owner.code, owner.stderr).toBe(0);
    expect(JSON.parse(owner.stdout)).toMatchObject({ status: "resumed" });
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
  });
});

describe("an output path that is a directory", () => {
  it("-o naming a directory: exit 6, one line, the directory untouched, no request", async () => {
    const target = join(workDir, "target");
    await mkdir(target);
    await writeFile(join(target, "inside.txt"), "keep");
    const source = await rangeServer({ content: makeContent(100 * KiB, 79) });
    const run = await cli(["-o", target, source.url()]);
    expectFileError(run, /is a directory/);
    expect(await readdir(target)).toEqual(["inside.txt"]);
    expect((await readdir(workDir)).sort()).toEqual(["target"]);
    expect(source.requests).toHaveLength(0);
  });

  it("a server-chosen name that is a directory inside -d: exit 6", async () => {
    await mkdir(join(workDir, "report.pdf"));
    const source = await rangeServer({ content: makeContent(100 * KiB, 80), contentDisposition: 'attachment; filename="report.pdf"' });
    const run = await cli([source.url("/download")]);
    expectFileError(run, /report\.pdf is a directory/);
    expect(await readdir(join(workDir, "report.pdf"))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------
// Partial state tampered with between runs
// ---------------------------------------------------------------------------------

describe("the .part changed by someone else between runs", () => {
  it.each<[string, (part: string) => Promise<void>, RegExp]>([
    ["deleted", (part) => unlink(part), /\.part is gone though its manifest remains; starting over/],
    ["truncated", (part) => truncate(part, 1000), /\.part has 1000 bytes, not 1048576/],
    ["grown", (part) => truncate(part, 2 * MiB), /\.part has 2097152 bytes, not 1048576/],
  ])("%s: detected, one warning, started over, exact bytes", async (_name, tamper, warning) => {
    const source = await rangeServer({ content: makeContent(1 * MiB, 81) });
    const output = join(workDir, "t.bin");
    await leavePartial(output, source, [[0, 512 * KiB - 1]]);
    await tamper(`${output}.part`);
    const run = await cli(["--json", "-c", "2", "--min-split", "256K", "-o", output, source.url()]);
    expect(run.code, run.stderr).toBe(0);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(warning)]);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "downloaded", resumed: false, restartedBecauseChanged: false });
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
    expect(await readdir(workDir)).toEqual(["t.bin"]);
  });

  // The manifest says every byte is done (a run killed just before its rename), the .part
  // is gone. That is our loss, not the server's change: the 416 path must start over
  // without a second warning blaming the server or `restartedBecauseChanged: true`.
  it("deleted when the manifest says every byte was done: one warning about the .part, no claim that the server changed", async () => {
    const source = await rangeServer({ content: makeContent(300 * KiB, 82) });
    const output = join(workDir, "t.bin");
    await leavePartial(output, source, [[0, source.content.length - 1]]);
    await unlink(`${output}.part`);
    const run = await cli(["--json", "-o", output, source.url()]);
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/\.part is gone/)]);
    expect(JSON.parse(run.stdout)).toMatchObject({ restartedBecauseChanged: false });
  });

  it("a .part without its manifest is never trusted: its bytes are fetched again", async () => {
    const source = await rangeServer({ content: makeContent(512 * KiB, 83) });
    const output = join(workDir, "t.bin");
    await writeFile(`${output}.part`, Buffer.alloc(source.content.length, "x"));
    const run = await cli(["-c", "2", "--min-split", "128K", "-o", output, source.url()]);
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
    expect(askedRanges(source, 0)).toEqual([[0, source.content.length - 1]]);
  });
});

// ---------------------------------------------------------------------------------
// Two processes on one output
// ---------------------------------------------------------------------------------

describe("two processes on one output", () => {
  const ARGS = ["-c", "2", "--min-split", "256K"];

  /**
   * 1 MiB whose every answer holds after 64 KiB until the test calls `release()`: the
   * first process is mid-download for as long as the test needs, however loaded the
   * machine (a 256 KiB/s throttle let it finish before the second reached the lock).
   */
  async function heldSource(seed: number): Promise<RangeServer> {
    return rangeServer({ content: makeContent(1 * MiB, seed), holdAfterBytes: 64 * KiB });
  }

  it.each([
    ["the same command", [] as string[]],
    ["the same command with --force", ["-f"]],
  ])("%s in a second process: exit 6 naming the first's pid; the first finishes with exact bytes", async (_name, extra) => {
    const source = await heldSource(84);
    const output = join(workDir, "shared.bin");
    // --timeout 30: its held connections wait on the test, not on the network.
    const first = startCli(["-q", "--timeout", "30", ...ARGS, "-o", output, source.url()], { cwd: workDir, timeoutMs: 30_000 });
    await until(() => existsSync(`${output}.part`) && source.held() > 0, "the first process's .part and a held answer");

    const second = await cli([...ARGS, ...extra, "-o", output, source.url()]);
    expectFileError(second, new RegExp(`being downloaded by another rangeget process \\(pid ${first.child.pid}\\)`));
    // The refusal took nothing from the first: its lock, its .part.
    expect(JSON.parse(await readFile(`${output}.part.lock`, "utf8"))).toMatchObject({ pid: first.child.pid });
    expect((await stat(`${output}.part`)).size).toBe(source.content.length);

    source.release();
    const done = await first.done;
    expect(done.code, done.stderr).toBe(0);
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
    expect(await readdir(workDir)).toEqual(["shared.bin"]);
  });

  /** Starts a download from a held source, waits until its manifest holds some bytes, then SIGKILLs it and releases the source. */
  async function killedMidway(source: RangeServer, output: string): Promise<{ pid: number; kept: IntervalSet }> {
    const victim = startCli(["-q", "--timeout", "30", ...ARGS, "-o", output, source.url()], { cwd: workDir, timeoutMs: 30_000 });
    await until(async () => ((await readManifest(output).catch(() => undefined))?.done.length ?? 0) > 0, "a checkpoint with bytes");
    victim.child.kill("SIGKILL");
    const killed = await victim.done;
    expect(killed.signal).toBe("SIGKILL");
    expect(existsSync(`${output}.part.lock`)).toBe(true);
    source.release();
    return { pid: victim.child.pid!, kept: IntervalSet.from((await readManifest(output)).done) };
  }

  it("a stale lock after SIGKILL is taken over; the next run resumes only the missing bytes", async () => {
    const source = await heldSource(85);
    const output = join(workDir, "killed.bin");
    const { kept } = await killedMidway(source, output);

    const from = source.requests.length;
    const run = await cli(["--json", ...ARGS, "-o", output, source.url()]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "resumed", resumed: true });
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
    expect(askedRanges(source, from)).toEqual(kept.missing(source.content.length));
    expect(await readdir(workDir)).toEqual(["killed.bin"]);
  });

  // After a reboot or a container restart, the dead owner's pid is often reused (in a
  // container rangeget may well get the same low pid as before). A live pid alone does
  // not prove the owner lives, so the lock records the owner's start time too (Linux:
  // /proc/<pid>/stat field 22) and a pid that now belongs to another process is stale.
  it("a stale lock whose pid now belongs to an unrelated live process is taken over", async () => {
    const source = await heldSource(86);
    const output = join(workDir, "reused.bin");
    await killedMidway(source, output);
    const unrelated = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30000)"], { stdio: "ignore" });
    closers.push(async () => {
      unrelated.kill("SIGKILL");
    });
    const lock = JSON.parse(await readFile(`${output}.part.lock`, "utf8")) as Record<string, unknown>;
    await writeFile(`${output}.part.lock`, JSON.stringify({ ...lock, pid: unrelated.pid }));

    const run = await cli([...ARGS, "-o", output, source.url()]);
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(output))).toBe(sha256(source.content));
  });
});

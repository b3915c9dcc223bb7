// The CLI on real volumes mounted by scripts/test-volumes.sh (which .ci/run calls first):
// exFAT and NTFS through FUSE, XFS and btrfs from loop images. On each: download, resume
// after SIGKILL, the lock, a list, --continue, --extract and a re-run that the origin
// record recognises, as on ext4; the .part's allocation as the volume allows (grown front
// to back on exFAT, sparse elsewhere); case-folding names asked of the volume. FAT32
// (fusefat, whose writes cannot be trusted: README "Volumes and platforms") only for
// what happens before the first byte: the 4 GiB limit and colliding names. A volume that
// is not mounted is skipped, and one line names every one skipped. The runs that are
// killed, watched while they write, or refused by another's lock are the built CLI as a
// child process; the rest run its `main` in this process (run-main.ts).
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { probeLargestFile, volumeOf } from "../src/platform.js";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, runCli, startCli } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { checkpointedBytes } from "./support/checkpoint.js";
import { until } from "./support/until.js";
import { rangeServer, rawServer } from "./support/servers.js";
import { tarArchive } from "./support/tar-archive.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** A volume kind: its variable in test-volumes.env, and what it can do. */
interface VolumeKind {
  name: string;
  variable: string;
  /** Files are sparse: the .part is made at full length without allocating it. */
  sparse: boolean;
  /** `A.bin` and `a.bin` are one file (ntfs-3g keeps NTFS's POSIX namespace: case-sensitive). */
  caseInsensitive: boolean;
  /** Downloads may be written onto it (not fusefat's FAT32). */
  writable: boolean;
}

const KINDS: VolumeKind[] = [
  { name: "exFAT", variable: "RANGEGET_TEST_EXFAT", sparse: false, caseInsensitive: true, writable: true },
  { name: "NTFS", variable: "RANGEGET_TEST_NTFS", sparse: true, caseInsensitive: false, writable: true },
  { name: "XFS", variable: "RANGEGET_TEST_XFS", sparse: true, caseInsensitive: false, writable: true },
  { name: "btrfs", variable: "RANGEGET_TEST_BTRFS", sparse: true, caseInsensitive: false, writable: true },
  { name: "FAT32", variable: "RANGEGET_TEST_FAT32", sparse: false, caseInsensitive: true, writable: false },
];

type Mounted = VolumeKind & { root: string };

/** The volumes scripts/test-volumes.sh mounted: from the environment, else from the file it writes. */
function mountedVolumes(): Mounted[] {
  const fromFile = new Map<string, string>();
  const file = process.env.RANGEGET_VOLUMES_FILE ?? fileURLToPath(new URL("../.cache/test-volumes.env", import.meta.url));
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const match = /^(RANGEGET_TEST_\w+)=(.+)$/.exec(line.trim());
      if (match) fromFile.set(match[1]!, match[2]!);
    }
  }
  return KINDS.map((kind) => ({ ...kind, root: process.env[kind.variable] ?? fromFile.get(kind.variable) ?? "" })).filter(
    (volume) => volume.root !== "" && existsSync(volume.root),
  );
}

const volumes = mountedVolumes();
const skipped = KINDS.filter((kind) => !volumes.some((volume) => volume.name === kind.name)).map((kind) => kind.name);
if (skipped.length > 0) {
  process.stderr.write(`volumes.test.ts: no ${skipped.join(", ")} volume mounted (run scripts/test-volumes.sh as root); skipping their tests\n`);
}
const writable = volumes.filter((volume) => volume.writable);

/** A fresh directory on `root`, removed after the test. */
function directories(): (root: string) => Promise<string> {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  return async (root) => {
    assertBuilt();
    const dir = await mkdtemp(join(root, "t-"));
    dirs.push(dir);
    return dir;
  };
}

describe.skipIf(writable.length === 0).each(writable)("on $name", ({ root }) => {
  const inVolume = directories();
  const volumeDir = () => inVolume(root);

  it("downloads a file in parallel, leaving only the finished output", async () => {
    const content = makeContent(12 * MiB, 21);
    const server = await rangeServer({ content });
    const dir = await volumeDir();
    const run = await runMain([server.url("/file.bin"), "-d", dir, "-q", "-c", "4", "--min-split", "1M"], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(dir, "file.bin")))).toBe(sha256(content));
    expect(existsSync(join(dir, "file.bin.part.lock"))).toBe(false);
  });

  it("leaves a finished file alone on a re-run, with no request: its origin record holds on this volume", async () => {
    const content = makeContent(2 * MiB, 30);
    const server = await rangeServer({ content });
    const dir = await volumeDir();
    const args = [server.url("/again.bin"), "-d", dir, "-q", "--json"];
    expect((await runMain(args, { cwd: dir })).code).toBe(0);
    const asked = server.requests.length;
    const again = await runMain(args, { cwd: dir });
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: "up-to-date" });
    expect(server.requests).toHaveLength(asked);
  });

  it("resumes after SIGKILL with exact bytes, and refuses a second process while the first runs", async () => {
    const content = makeContent(8 * MiB, 22);
    // Every answer holds after 256 KiB: the first run is surely still going when the
    // second asks, however fast or loaded the machine.
    const server = await rangeServer({ content, holdAfterBytes: 256 * KiB });
    const dir = await volumeDir();
    const output = join(dir, "big.bin");
    const args = [server.url("/big.bin"), "-o", output, "-q", "-c", "4", "--min-split", "512K"];
    const first = startCli(args, { cwd: dir, timeoutMs: 30_000 });
    await until(async () => (await checkpointedBytes(output)) > 0, "a checkpoint with bytes", 20_000);

    // Two processes: the second is refused by the first one's lock.
    const second = await runCli(args, { cwd: dir });
    expect(first.child.exitCode).toBeNull();
    expect(second.code).toBe(6);
    expect(second.stderr).toContain(`being downloaded by another rangeget process (pid ${first.child.pid})`);

    first.child.kill("SIGKILL");
    await first.done;
    const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: [number, number][] };
    expect(manifest.done.length).toBeGreaterThan(0);
    server.release();
    const served = server.bytesServed();
    const resumed = await runMain([...args, "--json"], { cwd: dir });
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "resumed", resumed: true });
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(server.bytesServed() - served).toBeLessThan(content.length);
  });

  it("downloads a list into one directory", async () => {
    const server = await rangeServer({ content: makeContent(3 * MiB, 23) });
    const dir = await volumeDir();
    await writeFile(join(dir, "list.txt"), `${server.url("/one.bin")}\n${server.url("/two.bin")} second.bin\n`);
    const run = await runMain(["-i", join(dir, "list.txt"), "-d", dir, "-q"], { cwd: dir });
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(dir, "one.bin")))).toBe(sha256(server.content));
    expect(sha256(await readFile(join(dir, "second.bin")))).toBe(sha256(server.content));
  });

  it("--continue finishes a partial file another tool left", async () => {
    const content = makeContent(5 * MiB, 24);
    const server = await rangeServer({ content });
    const dir = await volumeDir();
    const output = join(dir, "half.bin");
    await writeFile(output, content.subarray(0, 2 * MiB));
    const run = await runMain([server.url("/half.bin"), "-o", output, "--continue", "-q"], { cwd: dir });
    expect(run.code).toBe(0);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("--extract unpacks a tar.gz while it downloads", async () => {
    const entries = [
      { path: "a.txt", body: Buffer.from("alpha\n") },
      { path: "sub/", type: "directory" as const },
      { path: "sub/b.bin", body: makeContent(300 * KiB, 25) },
    ];
    const server = await rangeServer({ content: gzipSync(tarArchive(entries)) });
    const dir = await volumeDir();
    const target = join(dir, "out");
    const run = await runMain([server.url("/pack.tar.gz"), "--extract", target, "-q"], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(await readFile(join(target, "a.txt"), "utf8")).toBe("alpha\n");
    expect(sha256(await readFile(join(target, "sub/b.bin")))).toBe(sha256(entries[2]!.body as Buffer));
  });
});

const withoutSparse = writable.filter((volume) => !volume.sparse);
const withSparse = writable.filter((volume) => volume.sparse);

describe.skipIf(withoutSparse.length === 0).each(withoutSparse)("on $name, without sparse files", ({ root }) => {
  const inVolume = directories();

  it("does not zero the whole .part up front: it grows as ranges land, front to back", async () => {
    const content = makeContent(16 * MiB, 26);
    // At most 512 KiB of each answer (ranges are 1 MiB or more, so none ends) until the
    // release: 2 MiB of 16 at the most.
    const server = await rangeServer({ content, holdAfterBytes: 512 * KiB });
    const dir = await inVolume(root);
    const output = join(dir, "grow.bin");
    const running = startCli([server.url("/grow.bin"), "-o", output, "-q", "-c", "4", "--min-split", "1M"], { cwd: dir, timeoutMs: 30_000 });
    await until(async () => (await checkpointedBytes(output)) > 0, "a checkpoint with bytes", 20_000);
    const early = (await stat(`${output}.part`)).size;
    server.release();
    const run = await running.done;
    expect(early).toBeLessThan(content.length / 2);
    expect(run.code).toBe(0);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });
});

describe.skipIf(withSparse.length === 0).each(withSparse)("on $name, with sparse files", ({ root }) => {
  const inVolume = directories();

  it("makes the .part full length at once without allocating it", async () => {
    const content = makeContent(32 * MiB, 28);
    // At most 512 KiB of each answer (ranges are 1 MiB or more, so none ends) until the
    // release: 2 MiB of 32 at the most.
    const server = await rangeServer({ content, holdAfterBytes: 512 * KiB });
    const dir = await inVolume(root);
    const output = join(dir, "sparse.bin");
    const running = startCli([server.url("/sparse.bin"), "-o", output, "-q", "-c", "4", "--min-split", "1M"], { cwd: dir, timeoutMs: 30_000 });
    await until(async () => (await checkpointedBytes(output)) > 0, "a checkpoint with bytes", 20_000);
    const early = await stat(`${output}.part`);
    // The bytes themselves are the other tests' business: here only the allocation.
    running.child.kill("SIGKILL");
    await running.done;
    server.release();
    expect(early.size).toBe(content.length);
    // st_blocks counts 512-byte units (stat(2)): about 1 MiB written of 32.
    expect(early.blocks * 512).toBeLessThan(content.length / 2);
  });
});

const folding = volumes.filter((volume) => volume.caseInsensitive);
const caseSensitive = writable.filter((volume) => !volume.caseInsensitive);

describe.skipIf(folding.length === 0).each(folding)("on $name, which ignores case", ({ root }) => {
  const inVolume = directories();

  it("refuses A.bin and a.bin of one list before any request: one file on this volume", async () => {
    const server = await rangeServer({ content: makeContent(1 * KiB, 27) });
    const dir = await inVolume(root);
    const list = join(await tempDir(), "list.txt");
    await writeFile(list, `${server.url("/A.bin")}\n${server.url("/a.bin")}\n`);
    const run = await runMain(["-i", list, "-d", dir, "-q"], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("would be saved as A.bin and a.bin, one file on a volume that ignores case (line 1 of");
    expect(run.stderr).toContain("and line 2 of");
    expect(server.requests).toHaveLength(0);
  });
});

describe.skipIf(caseSensitive.length === 0).each(caseSensitive)("on $name, which keeps case", ({ root }) => {
  const inVolume = directories();

  it("downloads A.bin and a.bin of one list as two files: the volume is asked, not assumed", async () => {
    const server = await rangeServer({ content: makeContent(1 * KiB, 29) });
    const dir = await inVolume(root);
    const list = join(await tempDir(), "list.txt");
    await writeFile(list, `${server.url("/A.bin")}\n${server.url("/a.bin")}\n`);
    const run = await runMain(["-i", list, "-d", dir, "-q"], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect((await readdir(dir)).filter((name) => name.endsWith(".bin")).sort()).toEqual(["A.bin", "a.bin"]);
  });
});

const ntfs = writable.find((volume) => volume.name === "NTFS");

describe.skipIf(ntfs === undefined)("on NTFS (ntfs-3g from an image: its mount type says only fuse)", () => {
  const inVolume = directories();

  it("asks the volume by trying whether it holds a 5 GiB file, and it does, leaving nothing behind", async () => {
    const dir = await inVolume(ntfs!.root);
    const volume = await volumeOf(dir);
    expect(volume).toMatchObject({ sparse: true, largestFile: undefined, limitUnknown: true });
    expect(await probeLargestFile(dir, 5 * GiB, true)).toBeUndefined();
    expect(await readdir(dir)).toEqual([]);
  });
});

const fat32 = volumes.find((volume) => volume.name === "FAT32");

describe.skipIf(fat32 === undefined)("on FAT32 (fusefat)", () => {
  const inVolume = directories();

  it("refuses a 5 GiB file before the first byte, though statfs says only fuse and the space would do", async () => {
    const size = 5 * GiB;
    // The probe's answer names a 5 GiB file; the refusal comes before any byte of it is kept.
    const server = await rawServer((socket, request) => {
      const match = /^bytes=(\d+)-(\d+)$/.exec(request?.headers["range"] ?? "");
      const start = Number(match?.[1] ?? 0);
      const end = Math.min(Number(match?.[2] ?? 0), start + 64 * KiB - 1);
      const head = [`HTTP/1.1 206 Partial Content`, `Content-Range: bytes ${start}-${end}/${size}`, `Content-Length: ${end - start + 1}`, 'ETag: "five-gib"', "Connection: close"];
      socket.end(Buffer.concat([Buffer.from(`${head.join("\r\n")}\r\n\r\n`, "latin1"), Buffer.alloc(end - start + 1)]));
    });
    const dir = await inVolume(fat32!.root);
    const { statfs } = await import("node:fs/promises");
    const space = await statfs(dir);
    expect(space.bavail * space.bsize).toBeGreaterThan(size);
    const run = await runMain([server.url("/big.iso"), "-d", dir, "--min-split", "64K"], { cwd: dir });
    expect(run.code).toBe(6);
    expect(run.stderr).toContain(`big.iso.part would be ${size} bytes, too large (EFBIG): the volume holding it cannot store files larger than ${4 * GiB - 1} bytes (FAT32)`);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(server.requests).toHaveLength(1);
    expect(await readdir(dir)).toEqual([]);
  });
});

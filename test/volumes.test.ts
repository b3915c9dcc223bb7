// The CLI on real exFAT and NTFS volumes (mounted through FUSE by scripts/test-volumes.sh,
// which .ci/run calls first): download, resume after SIGKILL, the lock, a list,
// --continue and --extract, as on ext4. Without a mounted volume these tests are skipped,
// and one line says so.
import { existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { afterEach, describe, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, runCli, startCli, until } from "./support/run-cli.js";
import { rangeServer } from "./support/servers.js";
import { tarArchive } from "./support/tar-archive.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** The volumes scripts/test-volumes.sh mounted: from the environment, else from the file it writes. */
function mountedVolumes(): { name: string; root: string }[] {
  const fromFile = new Map<string, string>();
  const file = process.env.RANGEGET_VOLUMES_FILE ?? fileURLToPath(new URL("../.cache/test-volumes.env", import.meta.url));
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      const match = /^(RANGEGET_TEST_\w+)=(.+)$/.exec(line.trim());
      if (match) fromFile.set(match[1]!, match[2]!);
    }
  }
  const volumes = [
    { name: "exFAT", root: process.env.RANGEGET_TEST_EXFAT ?? fromFile.get("RANGEGET_TEST_EXFAT") },
    { name: "NTFS", root: process.env.RANGEGET_TEST_NTFS ?? fromFile.get("RANGEGET_TEST_NTFS") },
  ];
  return volumes.filter((volume): volume is { name: string; root: string } => volume.root !== undefined && existsSync(volume.root));
}

const volumes = mountedVolumes();
if (volumes.length === 0) {
  process.stderr.write("volumes.test.ts: no exFAT or NTFS volume mounted (run scripts/test-volumes.sh as root); skipping the volume tests\n");
}

describe.skipIf(volumes.length === 0).each(volumes)("on $name", ({ root }) => {
  const dirs: string[] = [];
  afterEach(async () => {
    for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
  });
  const volumeDir = async () => {
    assertBuilt();
    const dir = await mkdtemp(join(root, "t-"));
    dirs.push(dir);
    return dir;
  };

  it("downloads a file in parallel, leaving only the finished output", async () => {
    const content = makeContent(12 * MiB, 21);
    const server = await rangeServer({ content });
    const dir = await volumeDir();
    const run = await runCli([server.url("/file.bin"), "-d", dir, "-q", "-c", "4", "--min-split", "1M"], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(dir, "file.bin")))).toBe(sha256(content));
    expect(existsSync(join(dir, "file.bin.part.lock"))).toBe(false);
  });

  it("resumes after SIGKILL with exact bytes, and refuses a second process while the first runs", async () => {
    const content = makeContent(8 * MiB, 22);
    const server = await rangeServer({ content, bytesPerSecond: 1 * MiB });
    const dir = await volumeDir();
    const output = join(dir, "big.bin");
    const args = [server.url("/big.bin"), "-o", output, "-q", "-c", "4", "--min-split", "512K"];
    const first = startCli(args, { cwd: dir, timeoutMs: 30_000 });
    await until(() => existsSync(`${output}.part.json`), "the first checkpoint", 20_000);

    const second = await runCli(args, { cwd: dir });
    expect(second.code).toBe(6);
    expect(second.stderr).toContain(`being downloaded by another rangeget process (pid ${first.child.pid})`);

    first.child.kill("SIGKILL");
    await first.done;
    const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: [number, number][] };
    expect(manifest.done.length).toBeGreaterThan(0);
    server.bytesPerSecond = undefined;
    const served = server.bytesServed();
    const resumed = await runCli([...args, "--json"], { cwd: dir });
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ status: "resumed", resumed: true });
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(server.bytesServed() - served).toBeLessThan(content.length);
  });

  it("downloads a list into one directory", async () => {
    const server = await rangeServer({ content: makeContent(3 * MiB, 23) });
    const dir = await volumeDir();
    await writeFile(join(dir, "list.txt"), `${server.url("/one.bin")}\n${server.url("/two.bin")} second.bin\n`);
    const run = await runCli(["-i", join(dir, "list.txt"), "-d", dir, "-q"], { cwd: dir });
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
    const run = await runCli([server.url("/half.bin"), "-o", output, "--continue", "-q"], { cwd: dir });
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
    const run = await runCli([server.url("/pack.tar.gz"), "--extract", target, "-q"], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(await readFile(join(target, "a.txt"), "utf8")).toBe("alpha\n");
    expect(sha256(await readFile(join(target, "sub/b.bin")))).toBe(sha256(entries[2]!.body as Buffer));
  });
});

describe.skipIf(!volumes.some((volume) => volume.name === "exFAT"))("exFAT only", () => {
  const root = volumes.find((volume) => volume.name === "exFAT")?.root ?? "";

  it("does not zero the whole .part up front: it grows as ranges land, front to back", async () => {
    const content = makeContent(16 * MiB, 26);
    const server = await rangeServer({ content, bytesPerSecond: 256 * KiB });
    const dir = await mkdtemp(join(root, "t-"));
    try {
      const output = join(dir, "grow.bin");
      const running = startCli([server.url("/grow.bin"), "-o", output, "-q", "-c", "4", "--min-split", "1M"], { cwd: dir, timeoutMs: 30_000 });
      await until(() => existsSync(`${output}.part.json`), "the first checkpoint", 20_000);
      const early = (await stat(`${output}.part`)).size;
      server.bytesPerSecond = undefined;
      const run = await running.done;
      expect(early).toBeLessThan(content.length / 2);
      expect(run.code).toBe(0);
      expect(sha256(await readFile(output))).toBe(sha256(content));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses A.bin and a.bin of one list before any request: one file on a volume that ignores case", async () => {
    const server = await rangeServer({ content: makeContent(1 * KiB, 27) });
    const dir = await mkdtemp(join(root, "t-"));
    try {
      await writeFile(join(dir, "list.txt"), `${server.url("/A.bin")}\n${server.url("/a.bin")}\n`);
      const run = await runCli(["-i", join(dir, "list.txt"), "-d", dir, "-q"], { cwd: dir });
      expect(run.code).toBe(2);
      expect(run.stderr).toContain("would be saved as A.bin and a.bin, one file on a volume that ignores case (line 1 of");
      expect(run.stderr).toContain("and line 2 of");
      expect(server.requests).toHaveLength(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

// Streams end to end: -o -, --extract, downloadStream and --checksum on the fly, through
// real sockets (the range server on 127.0.0.1). The CLI's -o - runs the built bin in a
// shell pipe (its stdout is bytes into a real pipe); the rest runs its `main` in this
// process (run-main.ts).
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream, existsSync } from "node:fs";
import { access, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";
import { beforeAll, describe, expect, it } from "vitest";
import { download, downloadStream, type DownloadOptions } from "../src/index.js";
import { streamWindow } from "../src/ordered-sink.js";
import { makeContent, sha256 } from "./support/content.js";
import type { RangeServer } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { assertBuilt, BIN, cliEnv } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { tarArchive } from "./support/tar-archive.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Range servers on 127.0.0.1, each closed after its test. */
const serve = rangeServer;

function quick(extra: DownloadOptions = {}): DownloadOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return { minSplit: 256 * KiB, connections: 4, timeout: 30, retries: 3, onWarning: (message) => warnings.push(message), warnings, ...extra };
}

/**
 * Runs `script` under sh with the built CLI as $RANGEGET; stdout as bytes. Children, for
 * what only a process has: -o - writing bytes into a real pipe (a reader that goes away,
 * a full disk behind it).
 */
function shell(script: string, cwd: string, timeoutMs = 30_000): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  const child = spawn("sh", ["-c", script], { cwd, env: cliEnv({ RANGEGET: `${process.execPath} ${BIN}` }), stdio: ["ignore", "pipe", "pipe"] });
  const stdout: Buffer[] = [];
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
  child.stderr.setEncoding("utf8").on("data", (text: string) => (stderr += text));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout: Buffer.concat(stdout), stderr });
    });
  });
}

function gzipTar(files: Record<string, Buffer>): Buffer {
  return gzipSync(tarArchive(Object.entries(files).map(([path, body]) => ({ path, body }))));
}

describe("downloadStream", () => {
  it("gives the file in order over several connections, as a build script would use it", async () => {
    const content = makeContent(5 * MiB + 123, 31);
    const server = await serve({ content });
    const dir = await tempDir();
    const target = join(dir, "model.bin");
    const { body, done } = downloadStream(server.url("/model.bin"), { ...quick(), checksum: `sha256=${sha256(content)}` });
    const [, result] = await Promise.all([pipeline(body, createWriteStream(target)), done]);
    expect(sha256(await readFile(target))).toBe(sha256(content));
    expect(result).toMatchObject({ path: "-", status: "downloaded", size: content.length, checksum: { algorithm: "sha256", hex: sha256(content) } });
    expect(result.http.statusCounts["206"]).toBeGreaterThan(4);
    // No file of its own: nothing but what the script wrote.
    expect(await readdir(dir)).toEqual(["model.bin"]);
  });

  it("asks for no range past the window ahead of a slow reader", async () => {
    const content = makeContent(8 * MiB, 32);
    const server = await serve({ content });
    const options = quick({ streamWindow: 1 * MiB });
    const { windowBytes } = streamWindow(options.connections!, options.minSplit!, options.streamWindow);
    let consumed = 0;
    let furthest = 0;
    server.onRequest = (request) => {
      // The probe is asked before anything is read; every later range must lie within the window.
      if (request.index > 0) furthest = Math.max(furthest, request.range!.end! + 1 - consumed - windowBytes);
      return undefined;
    };
    const { body, done } = downloadStream(server.url(), options);
    const hash = createHash("sha256");
    for await (const chunk of body as AsyncIterable<Buffer>) {
      hash.update(chunk);
      consumed += chunk.length;
      await sleep(2);
    }
    await done;
    expect(hash.digest("hex")).toBe(sha256(content));
    // A range handed out just before a read may end up to one range of the body's own buffer past it.
    expect(furthest).toBeLessThanOrEqual(512 * KiB);
  });

  it("keeps every byte in order through drops, 503s and a crawling range that gets rescued or hedged", async () => {
    const content = makeContent(6 * MiB, 33);
    const server = await serve({ content, bytesPerSecond: 4 * MiB });
    server.onRequest = (request) => {
      if (request.index === 2) return { dropAfterBytes: 100 * KiB };
      if (request.index === 3) return { status: 503, retryAfter: "0" };
      if (request.index === 4) return { bytesPerSecond: 30 * KiB };
      return undefined;
    };
    const { body, done } = downloadStream(server.url(), quick({ streamWindow: 4 * MiB }));
    const hash = createHash("sha256");
    for await (const chunk of body as AsyncIterable<Buffer>) hash.update(chunk);
    const result = await done;
    expect(hash.digest("hex")).toBe(sha256(content));
    expect(result.http.retries).toBeGreaterThanOrEqual(2);
    expect(result.http.rescues + result.http.hedges).toBeGreaterThanOrEqual(1);
  });

  it("streams a server without ranges as one stream, and fails the body on a wrong checksum instead of ending it", async () => {
    const content = makeContent(2 * MiB, 34);
    const server = await serve({ content, acceptRanges: false });
    server.onRequest = () => ({ ignoreRange: true });
    const { body, done } = downloadStream(server.url(), quick({ checksum: `sha256=${"0".repeat(64)}` }));
    const read = (async () => {
      for await (const chunk of body as AsyncIterable<Buffer>) void chunk;
    })();
    await expect(read).rejects.toMatchObject({ code: "ERR_CHECKSUM" });
    await expect(done).rejects.toMatchObject({ code: "ERR_CHECKSUM", exitCode: 5 });
  });

  it("stops every request when the reader destroys the body, and done says so", async () => {
    const content = makeContent(16 * MiB, 35);
    const server = await serve({ content, bytesPerSecond: 1 * MiB });
    const { body, done } = downloadStream(server.url(), quick());
    for await (const chunk of body as AsyncIterable<Buffer>) {
      void chunk;
      break;
    }
    await expect(done).rejects.toMatchObject({ code: "ERR_OUTPUT_CLOSED", exitCode: 6 });
    expect(server.bytesServed()).toBeLessThan(content.length / 2);
  });
});

describe("download(url, { extract })", () => {
  it("unpacks a .tar.gz fetched in parallel and reports the digest it computed", async () => {
    const files = { "data/a.bin": makeContent(3 * MiB, 36), "data/b.txt": Buffer.from("hello\n") };
    const archive = gzipTar(files);
    const server = await serve({ content: archive });
    const out = join(await tempDir(), "out");
    const result = await download(server.url("/a.tar.gz"), { ...quick({ minSplit: 64 * KiB }), extract: out, checksum: `sha256=${sha256(archive)}` });
    expect(result).toMatchObject({ path: out, status: "downloaded", size: archive.length, checksum: { hex: sha256(archive) } });
    expect(sha256(await readFile(join(out, "data/a.bin")))).toBe(sha256(files["data/a.bin"]));
    expect(await readFile(join(out, "data/b.txt"), "utf8")).toBe("hello\n");
  });
});

describe("file mode --checksum on the fly", () => {
  it("hashes a resumed file's earlier bytes first and reports the digest", async () => {
    const content = makeContent(6 * MiB, 37);
    const server = await serve({ content, bytesPerSecond: 512 * KiB });
    const dir = await tempDir();
    const controller = new AbortController();
    const onProgress = (event: { bytesDone: number }) => {
      if (event.bytesDone >= 1 * MiB) controller.abort();
    };
    const first = download(server.url("/f.bin"), { ...quick(), dir, signal: controller.signal, onProgress });
    await expect(first).rejects.toMatchObject({ code: "ERR_ABORTED" });
    server.bytesPerSecond = undefined;
    const result = await download(server.url("/f.bin"), { ...quick(), dir, checksum: `sha256=${sha256(content)}` });
    expect(result).toMatchObject({ resumed: true, checksum: { algorithm: "sha256", hex: sha256(content) } });
    expect(sha256(await readFile(join(dir, "f.bin")))).toBe(sha256(content));
  });
});

describe("the CLI's streams", () => {
  beforeAll(() => assertBuilt());

  it("rangeget -o - URL | sha256sum sees the file's own digest", async () => {
    const content = makeContent(6 * MiB + 7, 38);
    const server = await serve({ content });
    const run = await shell(`$RANGEGET -q -o - -c 4 --min-split 256K ${server.url()} | sha256sum`, await tempDir());
    expect(run.stdout.toString().split(" ")[0]).toBe(sha256(content));
    expect(server.requests.length).toBeGreaterThan(4);
  });

  it("feeds a deliberately slow consumer every byte in order", async () => {
    const content = makeContent(4 * MiB, 39);
    const server = await serve({ content });
    const dir = await tempDir();
    // Reads 64 KiB, then pauses: far slower than the loopback origin.
    const consumer = join(dir, "slow.mjs");
    await writeFile(
      consumer,
      `import { createHash } from "node:crypto";
const hash = createHash("sha256");
process.stdin.on("data", (chunk) => { hash.update(chunk); process.stdin.pause(); setTimeout(() => process.stdin.resume(), 3); });
process.stdin.on("end", () => console.log(hash.digest("hex")));`,
    );
    const run = await shell(`$RANGEGET -q -o - -c 4 --min-split 256K --stream-window 1M ${server.url()} | ${process.execPath} slow.mjs`, dir, 60_000);
    expect(run.stdout.toString().trim()).toBe(sha256(content));
  });

  it("| head -c 100 ends every request at once, quietly, with exit 6", async () => {
    const content = makeContent(32 * MiB, 40);
    const server = await serve({ content, bytesPerSecond: 2 * MiB });
    const dir = await tempDir();
    const run = await shell(`($RANGEGET -q -o - -c 4 --min-split 1M ${server.url()}; echo $? > code) | head -c 100 | wc -c`, dir);
    expect(run.stdout.toString().trim()).toBe("100");
    expect((await readFile(join(dir, "code"), "utf8")).trim()).toBe("6");
    expect(run.stderr).toBe("");
    // Long before the file could have been sent at 2 MiB/s a connection.
    expect(server.bytesServed()).toBeLessThan(content.length / 2);
  });

  it.skipIf(!existsSync("/dev/full"))("-o - into a full disk (/dev/full) says so on stderr, exit 6 (a reader gone, above, stays quiet)", async () => {
    const content = makeContent(4 * MiB, 401);
    const server = await serve({ content });
    const dir = await tempDir();
    const run = await shell(`$RANGEGET -q -o - -c 4 --min-split 256K ${server.url()} > /dev/full`, dir);
    expect(run.code).toBe(6);
    expect(run.stderr.split("\n").filter((line) => line !== "")).toEqual([
      expect.stringMatching(/^rangeget: no space left on the output \(stdout\) \(ENOSPC\); .*free some space/),
    ]);
  });

  it("--extract DIR unpacks a .tar.gz from the range server", async () => {
    const archive = gzipTar({ "pkg/bin/tool": makeContent(2 * MiB, 41), "pkg/README": Buffer.from("read me\n") });
    const server = await serve({ content: archive });
    const dir = await tempDir();
    const run = await runMain(["-q", "--json", "--extract", "out", "-c", "4", "--min-split", "256K", "--checksum", `sha256=${sha256(archive)}`, server.url()], { cwd: dir });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ path: join(dir, "out"), status: "downloaded", checksum: { algorithm: "sha256", hex: sha256(archive) } });
    expect(await readFile(join(dir, "out/pkg/README"), "utf8")).toBe("read me\n");
    expect(await readdir(dir)).toEqual(["out"]);
  });

  it("--extract with a checksum that does not match leaves nothing at DIR and exits 5", async () => {
    const archive = gzipTar({ "x/y": makeContent(1 * MiB, 42) });
    const server = await serve({ content: archive });
    const dir = await tempDir();
    const run = await runMain(["-q", "--extract", "out", "--checksum", `sha256=${"1".repeat(64)}`, server.url()], { cwd: dir });
    expect(run.code).toBe(5);
    expect(run.stderr).toContain("checksum mismatch");
    expect(run.stderr).toContain("nothing was unpacked");
    expect(await readdir(dir)).toEqual([]);
  });

  it("--extract into a DIR that exists and is not empty is one line and exit 6, leaving it as it was", async () => {
    const server = await serve({ content: gzipTar({ "x/y": makeContent(64 * KiB, 44) }) });
    const dir = await tempDir();
    await mkdir(join(dir, "out"));
    await writeFile(join(dir, "out", "mine.txt"), "keep me");
    const run = await runMain(["--extract", "out", server.url()], { cwd: dir });
    expect(run.code).toBe(6);
    expect(run.stderr.trim().split("\n")).toEqual([expect.stringMatching(/^rangeget: .*out already exists and is not empty; use --force/)]);
    expect(await readFile(join(dir, "out", "mine.txt"), "utf8")).toBe("keep me");
  });

  it("--extract of a corrupt archive is exit 5 and leaves nothing", async () => {
    const archive = gzipTar({ "x/y": makeContent(1 * MiB, 43) });
    archive.fill(0x41, 2000, 4000);
    const server = await serve({ content: archive });
    const dir = await tempDir();
    await mkdir(join(dir, "keep"));
    const run = await runMain(["-q", "--extract", "out", server.url()], { cwd: dir });
    expect(run.code).toBe(5);
    expect(run.stderr).not.toMatch(/\n\s+at /);
    expect(await readdir(dir)).toEqual(["keep"]);
    await expect(access(join(dir, "out"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("--json reports the digest computed in file mode", async () => {
    const content = makeContent(3 * MiB, 44);
    const server = await serve({ content });
    const dir = await tempDir();
    const run = await runMain(["-q", "--json", "-c", "4", "--min-split", "256K", "--checksum", `sha256=${sha256(content)}`, server.url("/f.bin")], { cwd: dir });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).checksum).toEqual({ algorithm: "sha256", hex: sha256(content) });
  });
});

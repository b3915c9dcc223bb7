#!/usr/bin/env node
// Benchmark of the streams (issue "Streams"): -o -, --extract and --checksum, against
// small Node origins on 127.0.0.1. Self-contained; run after `npm run build`:
//
//   node bench/streams.mjs            # 256 MiB stream and archive, 1 GiB checksum
//   QUICK=1 node bench/streams.mjs    # 64 MiB and 256 MiB: a quick look
//   ONLY=<regex>                      # rows to run: stdout, extract, checksum
//
// `npm run bench` runs it after bench/run.mjs (files in $BENCH_DIR/streams).
// Rows and goals:
//   stdout   -o - into a hashing consumer vs file mode, -c 8, 16 MiB/s per connection:
//            throughput >= 0.9x file mode; peak RSS (rangeget's) reported beside it
//   extract  --extract of a .tar.gz vs download then `tar xzf`: time <= 1/0.9 of it,
//            peak disk below it
//   checksum --checksum sha256 vs none, fast origin: wall time <= 1.1x
// Files go to BENCH_DIR (default /tmp/rangeget-bench-streams), removed at the end.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream, existsSync, openSync, readSync, closeSync, fstatSync } from "node:fs";
import { mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const MiB = 1024 * 1024;
const here = dirname(fileURLToPath(import.meta.url));
const BIN = join(here, "..", "bin", "rangeget.js");

if (process.argv[2] === "--serve") serve(process.argv[3], Number(process.argv[4]));
else await main();

/** The origin: every path is the file, single ranges, ETag; RATE_MIB per response (0: unthrottled). */
function serve(file, rateMib) {
  const fd = openSync(file, "r");
  const size = fstatSync(fd).size;
  const bytesPerSecond = rateMib * MiB;
  const server = createServer(async (req, res) => {
    let start = 0;
    let end = size - 1;
    const match = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    const headers = { etag: '"bench"', "accept-ranges": "bytes" };
    if (match) {
      start = Number(match[1]);
      end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
      res.writeHead(206, { ...headers, "content-range": `bytes ${start}-${end}/${size}`, "content-length": end - start + 1 });
    } else res.writeHead(200, { ...headers, "content-length": size });
    const began = performance.now();
    let sent = 0;
    for (let at = start; at <= end && !res.destroyed; ) {
      // A fresh buffer per write: the socket may still hold the last one.
      const block = Buffer.allocUnsafe(256 * 1024);
      const read = readSync(fd, block, 0, Math.min(block.length, end - at + 1), at);
      at += read;
      sent += read;
      if (!res.write(block.subarray(0, read))) {
        await new Promise((resolve) => {
          const go = () => {
            res.off("drain", go).off("close", go);
            resolve();
          };
          res.on("drain", go).on("close", go);
        });
      }
      if (bytesPerSecond > 0) {
        const ahead = (sent / bytesPerSecond) * 1000 - (performance.now() - began);
        if (ahead > 0) await sleep(ahead);
      }
    }
    res.end();
  });
  server.listen(0, "127.0.0.1", () => console.log(`listening ${server.address().port}`));
  process.stdin.on("end", () => process.exit(0)).resume();
  process.on("exit", () => closeSync(fd));
}

function startOrigin(file, rateMib) {
  const child = spawn(process.execPath, [fileURLToPath(import.meta.url), "--serve", file, String(rateMib)], { stdio: ["pipe", "pipe", "inherit"] });
  return new Promise((resolve) => {
    child.stdout.setEncoding("utf8").on("data", (text) => {
      const port = /listening (\d+)/.exec(text)?.[1];
      if (port) resolve({ url: (path) => `http://127.0.0.1:${port}/${path}`, stop: () => child.stdin.end() });
    });
  });
}

/** Runs a shell command under /usr/bin/time; wall seconds, peak RSS (KiB) of the timed command, peak bytes under `watchDir`. */
async function measure(command, cwd, watchDir) {
  const child = spawn("sh", ["-c", `/usr/bin/time -f 'RSS %M' -o .time sh -c '${command}'`], { cwd, stdio: ["ignore", "inherit", "inherit"] });
  const started = performance.now();
  let peakDisk = 0;
  let running = true;
  const exited = new Promise((resolve) => child.once("close", (code) => ((running = false), resolve(code))));
  while (running && watchDir) {
    peakDisk = Math.max(peakDisk, await diskUsage(watchDir));
    await sleep(100);
  }
  const code = await exited;
  const seconds = (performance.now() - started) / 1000;
  const { readFile } = await import("node:fs/promises");
  const rssKiB = Number(/RSS (\d+)/.exec(await readFile(join(cwd, ".time"), "utf8"))?.[1] ?? NaN);
  if (code !== 0) throw new Error(`${command} exited ${code}`);
  return { seconds, rssMiB: rssKiB / 1024, peakDiskMiB: peakDisk / MiB };
}

async function diskUsage(dir) {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true }).catch(() => [])) {
    if (entry.isFile()) total += (await stat(join(entry.parentPath ?? entry.path, entry.name)).catch(() => ({ blocks: 0 }))).blocks * 512;
  }
  return total;
}

async function randomFile(path, bytes) {
  if (existsSync(path) && (await stat(path)).size === bytes) return;
  const { randomFillSync } = await import("node:crypto");
  const { open } = await import("node:fs/promises");
  const handle = await open(path, "w");
  const block = Buffer.alloc(8 * MiB);
  for (let at = 0; at < bytes; at += block.length) await handle.write(randomFillSync(block), 0, Math.min(block.length, bytes - at));
  await handle.close();
}

async function sha256(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

async function fresh(dir) {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  return dir;
}

async function main() {
  if (!existsSync(join(here, "..", "dist", "cli", "main.js"))) throw new Error("run `npm run build` first");
  const quick = process.env.QUICK === "1";
  const streamMib = quick ? 64 : 256;
  const checksumMib = quick ? 256 : 1024;
  const base = process.env.BENCH_DIR ?? "/tmp/rangeget-bench-streams";
  await mkdir(base, { recursive: true });
  const rg = `${process.execPath} ${BIN} -q`;
  const hasher = `${process.execPath} -e "const h=require(\\"crypto\\").createHash(\\"sha256\\");process.stdin.on(\\"data\\",c=>h.update(c)).on(\\"end\\",()=>console.log(h.digest(\\"hex\\")))"`;
  const only = new RegExp(process.env.ONLY ?? ".");
  const wanted = ["stdout", "extract", "checksum"].filter((name) => only.test(name));
  if (wanted.length === 0) return;
  const verdict = (holds) => (holds ? "holds" : "**short**");
  const rows = [];
  console.log(`streams bench: ${quick ? "QUICK " : ""}${streamMib} MiB streams, ${checksumMib} MiB checksum; the machine may be shared, so figures are noisy`);

  // 1. -o - into a hashing consumer vs file mode, 16 MiB/s per connection, -c 8.
  if (wanted.includes("stdout")) {
    const blob = join(base, "blob.bin");
    await randomFile(blob, streamMib * MiB);
    const slow = await startOrigin(blob, 16);
    const work = await fresh(join(base, "work"));
    const fileMode = await measure(`${rg} -c 8 -o out.bin ${slow.url("a.bin")}`, work, work);
    await rm(join(work, "out.bin"), { force: true });
    const stdoutMode = await measure(`${rg} -c 8 -o - ${slow.url("a.bin")} | ${hasher} > /dev/null`, work);
    slow.stop();
    rows.push([
      "stdout: -o - into sha256 vs file (-c 8, 16 MiB/s/conn)",
      `${(streamMib / stdoutMode.seconds).toFixed(1)} vs ${(streamMib / fileMode.seconds).toFixed(1)} MiB/s; peak RSS ${stdoutMode.rssMiB.toFixed(0)} vs ${fileMode.rssMiB.toFixed(0)} MiB`,
      `${(fileMode.seconds / stdoutMode.seconds).toFixed(2)}x (goal >= 0.9)`,
      verdict(fileMode.seconds / stdoutMode.seconds >= 0.9),
    ]);
  }

  // 2. --extract of a .tar.gz vs download then tar xzf.
  if (wanted.includes("extract")) {
    const src = await fresh(join(base, "src"));
    await randomFile(join(src, "payload.bin"), streamMib * MiB);
    const archive = join(base, "archive.tar.gz");
    if (!existsSync(archive)) await measure(`tar czf ${archive} -C ${src} payload.bin`, base);
    const archiveOrigin = await startOrigin(archive, 16);
    const w2 = await fresh(join(base, "work2"));
    const thenTar = await measure(`${rg} -c 8 -o a.tar.gz ${archiveOrigin.url("a.tar.gz")} && mkdir x && tar xzf a.tar.gz -C x && rm a.tar.gz`, w2, w2);
    const w3 = await fresh(join(base, "work3"));
    const extract = await measure(`${rg} -c 8 --extract x ${archiveOrigin.url("a.tar.gz")}`, w3, w3);
    archiveOrigin.stop();
    const expected = await sha256(join(src, "payload.bin"));
    if ((await sha256(join(w3, "x", "payload.bin"))) !== expected) throw new Error("--extract unpacked the wrong bytes");
    rows.push([
      "extract: --extract vs download + tar xzf (-c 8, 16 MiB/s/conn)",
      `${extract.seconds.toFixed(1)} s vs ${thenTar.seconds.toFixed(1)} s; peak disk ${extract.peakDiskMiB.toFixed(0)} vs ${thenTar.peakDiskMiB.toFixed(0)} MiB`,
      `${(thenTar.seconds / extract.seconds).toFixed(2)}x (goal >= 0.9), disk ${extract.peakDiskMiB < thenTar.peakDiskMiB ? "less" : "NOT less"}`,
      verdict(thenTar.seconds / extract.seconds >= 0.9 && extract.peakDiskMiB < thenTar.peakDiskMiB),
    ]);
  }

  // 3. --checksum sha256 on the fast origin vs none.
  if (wanted.includes("checksum")) {
    const big = join(base, "big.bin");
    await randomFile(big, checksumMib * MiB);
    const digest = await sha256(big);
    const fast = await startOrigin(big, 0);
    const w4 = await fresh(join(base, "work4"));
    const plain = await measure(`${rg} -c 8 -o b.bin ${fast.url("b.bin")} && rm b.bin`, w4);
    const hashed = await measure(`${rg} -c 8 --checksum sha256=${digest} -o b.bin ${fast.url("b.bin")} && rm b.bin`, w4);
    fast.stop();
    rows.push([
      `checksum: --checksum sha256 vs none (${checksumMib} MiB, fast origin)`,
      `${hashed.seconds.toFixed(2)} s vs ${plain.seconds.toFixed(2)} s`,
      `${(hashed.seconds / plain.seconds).toFixed(2)}x (goal <= 1.1)`,
      verdict(hashed.seconds / plain.seconds <= 1.1),
    ]);
  }

  console.log("\n| scenario | figures | ratio | holds |\n| --- | --- | --- | --- |");
  for (const row of rows) console.log(`| ${row.join(" | ")} |`);
  await writeFile(join(base, "results.md"), rows.map((row) => `| ${row.join(" | ")} |`).join("\n") + "\n");
  for (const dir of ["work", "work2", "work3", "work4", "src"]) await rm(join(base, dir), { recursive: true, force: true });
}

#!/usr/bin/env node
// How long a 1 GiB download takes on each kind of volume, in the same run: tmpfs, the
// host's own disk (ext4 here), and the volumes scripts/test-volumes.sh mounts (exFAT and
// NTFS through FUSE, XFS and btrfs from loop images; FAT32 is left out, fusefat loses
// writes). bench/volumes.sh starts the loopback nginx (bench/setup.sh) and runs this.
//
//   RUNS=3            rounds; each round visits every volume once, in turn, so a noisy
//                     moment of the shared machine falls on all of them alike
//   URL               the file to fetch (default http://127.0.0.1:$BENCH_PORT/big.bin)
//   BENCH_DIR         as in setup.sh (its www/SHA256SUMS names big.bin's SHA-256)
//   VOLUMES           names to run, comma-separated (default: every one at hand)
//   CONNECTIONS=8     rangeget's -c
//
// Per volume and tool: the median wall time of the runs (min–max), CPU seconds, MiB/s,
// and the ratio to the host disk's median in the same run. Tools: rangeget -c 8 and -c 1,
// and curl + fsync (curl -o, then coreutils `sync FILE`): what the volume itself costs a
// plain writer that makes the same promise of durable bytes. Every output's SHA-256 is
// checked (not timed): a fast wrong answer is FAILED. Only 127.0.0.1 is contacted.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { createReadStream, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const MiB = 1024 * 1024;
const root = fileURLToPath(new URL("..", import.meta.url));
const env = process.env;
const benchDir = env.BENCH_DIR ?? "/tmp/rangeget-bench-volumes";
const url = env.URL ?? `http://127.0.0.1:${env.BENCH_PORT ?? 18190}/big.bin`;
const runs = Number(env.RUNS ?? 3);
const connections = String(env.CONNECTIONS ?? 8);

/** The volumes to time: name, directory, and the file system type as mountinfo names it. */
function volumes() {
  const list = [
    { name: "tmpfs", dir: "/dev/shm/rangeget-bench-volumes" },
    { name: "host disk", dir: join(benchDir, "out") },
  ];
  const file = env.RANGEGET_VOLUMES_FILE ?? join(root, ".cache/test-volumes.env");
  const mounted = existsSync(file) ? readFileSync(file, "utf8") : "";
  for (const [variable, name] of [
    ["RANGEGET_TEST_EXFAT", "exFAT (FUSE)"],
    ["RANGEGET_TEST_NTFS", "NTFS (ntfs-3g, FUSE)"],
    ["RANGEGET_TEST_XFS", "XFS (loop)"],
    ["RANGEGET_TEST_BTRFS", "btrfs (loop)"],
  ]) {
    const point = env[variable] ?? new RegExp(`^${variable}=(.+)$`, "m").exec(mounted)?.[1];
    if (point !== undefined && existsSync(point)) list.push({ name, dir: join(point, "bench") });
  }
  const only = env.VOLUMES?.split(",").map((name) => name.trim().toLowerCase());
  return list
    .filter((volume) => only === undefined || only.some((name) => volume.name.toLowerCase().startsWith(name)))
    .map((volume) => {
      mkdirSync(volume.dir, { recursive: true });
      const type = spawnSync("findmnt", ["-n", "-o", "FSTYPE", "-T", volume.dir], { encoding: "utf8" }).stdout.trim().split("\n")[0];
      return { ...volume, type };
    });
}

/** Runs argv under /usr/bin/time; wall and CPU seconds, and what went wrong (null: nothing). */
async function timed(argv) {
  const timeFile = join(benchDir, "volumes-time.txt");
  rmSync(timeFile, { force: true });
  const child = spawn("/usr/bin/time", ["-f", "%e %U %S", "-o", timeFile, ...argv], { cwd: root, stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (text) => (stderr += text));
  const [code] = await once(child, "close");
  const figures = /([\d.]+) ([\d.]+) ([\d.]+)\s*$/.exec(existsSync(timeFile) ? readFileSync(timeFile, "utf8") : "");
  const [wallS, user, sys] = figures === null ? [NaN, NaN, NaN] : figures.slice(1).map(Number);
  return { wallS, cpuS: user + sys, problem: code === 0 ? null : `exit ${code}: ${stderr.trim().split("\n").at(-1) ?? ""}` };
}

async function sha256(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk);
  return hash.digest("hex");
}

function clear(dir) {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  // The previous run's dirty pages are flushed before the next run starts, not during it.
  spawnSync("sync");
}

const tools = {
  [`rangeget -c ${connections}`]: (output) => [process.execPath, "bin/rangeget.js", "-q", "-c", connections, url, "-o", output],
  // One writer: what a volume whose driver is slow at scattered writes (exfat-fuse) costs without them.
  "rangeget -c 1": (output) => [process.execPath, "bin/rangeget.js", "-q", "-c", "1", url, "-o", output],
  "curl + fsync": (output) => ["sh", "-c", 'curl -sSf -o "$1" "$2" && sync "$1"', "curl", output, url],
};

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

const sums = join(benchDir, "www", "SHA256SUMS");
const expected = existsSync(sums) ? /^([0-9a-f]{64})\s+\*?big\.bin$/m.exec(readFileSync(sums, "utf8"))?.[1] : undefined;
const probe = spawnSync("curl", ["-sSfI", url], { encoding: "utf8" });
const size = Number(/^content-length:\s*(\d+)/im.exec(probe.stdout ?? "")?.[1]);
if (probe.status !== 0 || !Number.isFinite(size)) {
  console.error(`bench/volumes: ${url} does not answer (run bench/volumes.sh, which starts nginx)`);
  process.exit(1);
}
const targets = volumes();
console.error(`bench/volumes: ${(size / MiB).toFixed(0)} MiB from ${url}, ${runs} rounds over ${targets.map((volume) => volume.name).join(", ")}`);

/** results[volume][tool] = runs */
const results = new Map(targets.map((volume) => [volume.name, new Map(Object.keys(tools).map((tool) => [tool, []]))]));
for (let round = 1; round <= runs; round++) {
  for (const volume of targets) {
    for (const [tool, argv] of Object.entries(tools)) {
      clear(volume.dir);
      const output = join(volume.dir, "big.bin");
      const run = await timed(argv(output));
      if (run.problem === null && expected !== undefined && (await sha256(output)) !== expected) run.problem = "WRONG: another SHA-256";
      results.get(volume.name).get(tool).push(run);
      console.error(`bench/volumes: round ${round}, ${volume.name}, ${tool}: ${run.problem ?? `${run.wallS.toFixed(2)} s`}`);
    }
    clear(volume.dir);
  }
}
for (const volume of targets) rmSync(volume.dir, { recursive: true, force: true });

const when = new Date().toISOString().replace("T", " ").slice(0, 16);
console.log(`${(size / MiB).toFixed(0)} MiB download per volume, ${when} UTC, ${cpus().length} cores (${cpus()[0]?.model.trim()}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.versions.node}; medians of ${runs} (min–max)\n`);
const tooled = Object.keys(tools);
console.log(`| volume | type | ${tooled.map((tool) => `${tool}: wall s (min–max), CPU s, MiB/s, × host disk`).join(" | ")} |`);
console.log(`| --- | --- | ${tooled.map(() => "---").join(" | ")} |`);
const hostMedian = (tool) => median(results.get("host disk")?.get(tool).map((run) => run.wallS) ?? [NaN]);
for (const volume of targets) {
  const cells = tooled.map((tool) => {
    const done = results.get(volume.name).get(tool);
    const failed = done.filter((run) => run.problem !== null);
    if (failed.length > 0) return `FAILED ${failed.length}/${done.length}: ${failed[0].problem}`;
    const walls = done.map((run) => run.wallS);
    const wall = median(walls);
    return `${wall.toFixed(2)} (${Math.min(...walls).toFixed(2)}–${Math.max(...walls).toFixed(2)}), ${median(done.map((run) => run.cpuS)).toFixed(2)}, ${(size / MiB / wall).toFixed(0)}, ${(wall / hostMedian(tool)).toFixed(2)}×`;
  });
  console.log(`| ${volume.name} | ${volume.type} | ${cells.join(" | ")} |`);
}

#!/usr/bin/env node
// The benchmark behind `npm run bench`: times rangeget and its peers (curl, wget, aria2c,
// axel, lftp, ipull) on the same downloads in the same run, against the loopback origins
// that bench/setup.sh starts, and prints a markdown report: medians per tool, ratios to
// the peers, and each goal of the performance issue with its ratio and "holds" or
// "short". bench/run.sh runs setup first.
//
//   RUNS=3          runs per row (median wall and CPU, peak RSS over the runs)
//   ONLY=<regex>    scenarios to run: big-fast, big-tls, single, mid-throttled,
//                   batch-200x1M, list-5000x4K, start, rss, straggler, mirrors, resume
//   START_NODES     other Nodes for the start rows, ":"-separated (default: the newest
//                   ~/.cache/rangeget-ci/node-v{22,24,26}.*/bin/node at hand)
//   MIRROR_MIB=32   each mirror's uplink in the mirrors scenario
//   BENCH_DIR       as in setup.sh          BENCH_PORT    as in setup.sh (default 18080)
//   TIMEOUT_S=300   a run still going after this is killed and counted as failed
//   KILL_AFTER_S=1.5  when the resume scenario kills the first run (at 8 x 16 MiB/s,
//                   256 MiB takes 2 s, so 1.5 s is past the first checkpoints)
//
// Every output is checked against the SHA-256 of what was served: a fast wrong answer is
// FAILED, never a result. Only 127.0.0.1 is contacted.
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { once } from "node:events";
import { accessSync, closeSync, constants, createReadStream, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, homedir, totalmem } from "node:os";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const MiB = 1024 * 1024;
const root = fileURLToPath(new URL("..", import.meta.url));
const env = process.env;
const benchDir = env.BENCH_DIR ?? "/tmp/rangeget-bench";
const runCount = wholeNumber("RUNS", 3);
const only = new RegExp(env.ONLY ?? ".");
const basePort = wholeNumber("BENCH_PORT", 18080);
const timeoutMs = wholeNumber("TIMEOUT_S", 300) * 1000;
const killAfterMs = Number(env.KILL_AFTER_S ?? 1.5) * 1000;

const www = join(benchDir, "www");
const out = join(benchDir, "out");
const fast = `http://127.0.0.1:${basePort}`;
const throttled = `http://127.0.0.1:${basePort + 1}`;
const logged = `http://127.0.0.1:${basePort + 2}`;
const tls = `https://127.0.0.1:${basePort + 3}`;
const resumeLog = join(benchDir, "nginx", "logs", "resume.log");
const rangeget = [process.execPath, "bin/rangeget.js", "-q"];
const ipull = join(benchDir, "peers", "node_modules", ".bin", "ipull");

function wholeNumber(name, fallback) {
  const value = env[name] === undefined || env[name] === "" ? fallback : Number(env[name]);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a whole number >= 1, not ${env[name]}`);
  return value;
}

function progress(line) {
  process.stderr.write(`bench: ${line}\n`);
}

// ---------- what was served ----------

/** name ("big.bin", "batch/3.bin") → SHA-256 hex, from the list setup.sh wrote. */
const expectedSha = new Map(
  readFileSync(join(www, "SHA256SUMS"), "utf8")
    .trim()
    .split("\n")
    .map((line) => {
      const [hash, name] = line.split(/\s+\*?/);
      return [name, hash];
    }),
);
const sizeOf = (name) => statSync(join(www, name)).size;
const bigBytes = sizeOf("big.bin");
const midBytes = sizeOf("mid.bin");
const batchNames = [...expectedSha.keys()].filter((name) => name.startsWith("batch/"));
const batchList = join(benchDir, "batch-list.txt");
writeFileSync(batchList, batchNames.map((name) => `${fast}/${name}\n`).join(""));
const tinyNames = readdirSync(join(www, "tiny"))
  .filter((name) => name.endsWith(".bin"))
  .sort((a, b) => parseInt(a, 10) - parseInt(b, 10))
  .map((name) => `tiny/${name}`);
/** The first `count` tiny files as an -i list; the 500-file list measures memory against the full one. */
function tinyList(count) {
  const path = join(benchDir, `tiny-list-${count}.txt`);
  writeFileSync(path, tinyNames.slice(0, count).map((name) => `${fast}/${name}\n`).join(""));
  return path;
}
const mib = (bytes) => `${Math.round(bytes / MiB)} MiB`;
const sizeLabel = (bytes) => (bytes >= 1024 * MiB ? `${+(bytes / 1024 / MiB).toFixed(2)} GiB` : mib(bytes));

// ---------- running one command ----------

function onPath(command) {
  if (command.includes("/")) return isExecutable(command);
  return (env.PATH ?? "").split(delimiter).some((dir) => dir !== "" && isExecutable(join(dir, command)));
}

function isExecutable(path) {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs argv under /usr/bin/time in its own process group (so a timeout kills the whole
 * tree) and returns wall seconds, CPU seconds (user + sys), peak RSS, and how it ended.
 */
async function timed(argv, cwd) {
  const timeFile = join(benchDir, "time.txt");
  const stderrFile = join(benchDir, "stderr.txt");
  rmSync(timeFile, { force: true });
  const stderrFd = openSync(stderrFile, "w");
  const child = spawn("/usr/bin/time", ["-f", "%e %U %S %M", "-o", timeFile, ...argv], {
    cwd,
    detached: true,
    stdio: ["ignore", "ignore", stderrFd],
  });
  closeSync(stderrFd);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // The group ended between the timer firing and the kill.
    }
  }, timeoutMs);
  const began = performance.now();
  const [exitCode] = await once(child, "close");
  clearTimeout(timer);
  // GNU time puts "Command exited with non-zero status N" first; the figures are last.
  // A process killed on timeout leaves none: then only our own clock has the wall time.
  const lastLine = existsSync(timeFile) ? (readFileSync(timeFile, "utf8").trim().split("\n").at(-1) ?? "") : "";
  const figures = /^([\d.]+) ([\d.]+) ([\d.]+) (\d+)$/.exec(lastLine);
  const [wall, user, sys, rssKiB] = figures === null ? [(performance.now() - began) / 1000, NaN, NaN, NaN] : figures.slice(1).map(Number);
  const stderr = readFileSync(stderrFile, "utf8").trim();
  let problem = null;
  if (timedOut) problem = `timed out after ${timeoutMs / 1000} s`;
  else if (exitCode !== 0) problem = `exit ${exitCode}${stderr ? `: ${stderr.split("\n").at(-1).slice(0, 200)}` : ""}`;
  return { wallS: wall, cpuS: user + sys, rssMiB: rssKiB / 1024, problem };
}

async function sha256(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 4 * MiB })) hash.update(chunk);
  return hash.digest("hex");
}

/** The served file's SHA-256: from SHA256SUMS, else hashed once here (tiny files, one.bin). */
async function servedSha(name) {
  if (!expectedSha.has(name)) expectedSha.set(name, await sha256(join(www, name)));
  return expectedSha.get(name);
}

/** null when every expected file is in `dir` (by base name) with the served bytes, else what is wrong. */
async function checkOutputs(dir, names) {
  for (const name of names) {
    const path = join(dir, name.replace(/^(batch|tiny)\//, ""));
    if (!existsSync(path)) return `WRONG: ${name} missing`;
    if ((await sha256(path)) !== (await servedSha(name))) return `WRONG: ${name} has another SHA-256`;
  }
  return null;
}

function freshOutputDir() {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  // Flush the previous run's dirty pages so that no run pays for another's writeback.
  spawnSync("sync");
}

// ---------- statistics and formatting ----------

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const fixed = (value, digits) => (Number.isFinite(value) ? value.toFixed(digits) : "—");
const ratio = (value) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : "—");
const table = (header, rows) =>
  [header, header.map(() => "---"), ...rows].map((cells) => `| ${cells.join(" | ")} |`).join("\n");

/** Medians of a row's runs; `ok` only when every run succeeded and was checked. */
function summarize(row) {
  if (row.missing) return { ...row, status: "missing", ok: false };
  const problems = row.runs.map((run) => run.problem).filter((problem) => problem !== null);
  const wallS = median(row.runs.map((run) => run.wallS));
  return {
    ...row,
    ok: problems.length === 0,
    status: problems.length === 0 ? "ok" : `FAILED ${problems.length}/${row.runs.length}: ${problems[0]}`,
    wallS,
    minWallS: Math.min(...row.runs.map((run) => run.wallS)),
    maxWallS: Math.max(...row.runs.map((run) => run.wallS)),
    mibPerS: row.bytes > 0 ? row.bytes / MiB / wallS : NaN,
    cpuS: median(row.runs.map((run) => run.cpuS)),
    rssMiB: Math.max(...row.runs.map((run) => run.rssMiB)),
  };
}

// ---------- scenarios ----------

/**
 * A row of the table: `command(runIndex)` is the argv, run in `cwd` (default: the project
 * root); `files` (names as served) are checked in the output directory after each run.
 */
const peerRow = (tool, program, bytes, files, command, cwd) => ({ tool, bytes, files, command, cwd, missing: !onPath(program) });
const rangegetRow = (tool, bytes, files, args) => ({ tool, bytes, files, command: (runIndex) => [...rangeget, ...args(runIndex)] });

function aria2(connections, name, url, ...extra) {
  return ["aria2c", "-q", `-x${connections}`, `-s${connections}`, "-k4M", "--file-allocation=none", ...extra, "-d", out, "-o", name, url];
}

/** lftp's segmented get; `pget` writes the file itself, like the others. */
function lftpPget(connections, url, file) {
  return ["lftp", "-c", `set ssl:verify-certificate no; pget -n ${connections} '${url}' -o '${file}'`];
}

/**
 * curl, then an fsync of the file (coreutils sync FILE): the durability rangeget promises,
 * so the fair yardstick for a tool that fsyncs before the rename.
 */
function curlFsync(url, file, ...extra) {
  return ["sh", "-c", `curl -fsS ${extra.join(" ")} -o '${file}' '${url}' && sync '${file}'`];
}

function bigFast() {
  const url = `${fast}/big.bin`;
  const file = join(out, "big.bin");
  const files = ["big.bin"];
  return {
    name: "big-fast",
    title: `${sizeLabel(bigBytes)} from the full-speed origin`,
    rows: [
      peerRow("curl", "curl", bigBytes, files, () => ["curl", "-fsS", "-o", file, url]),
      peerRow("curl + fsync", "curl", bigBytes, files, () => curlFsync(url, file)),
      peerRow("wget", "wget", bigBytes, files, () => ["wget", "-q", "-O", file, url]),
      peerRow("aria2c -x8 -s8", "aria2c", bigBytes, files, () => aria2(8, "big.bin", url)),
      peerRow("axel -n8", "axel", bigBytes, files, () => ["axel", "-q", "-n8", "-o", file, url]),
      peerRow("lftp pget -n8", "lftp", bigBytes, files, () => lftpPget(8, url, file)),
      // ipull saves into its working directory, whatever -s says.
      peerRow("ipull -c8", ipull, bigBytes, files, () => [ipull, "-c", "8", "-st", "summary", url], out),
      rangegetRow("rangeget -c8", bigBytes, files, () => ["-c8", "-o", file, url]),
    ],
    compare: { "rangeget -c8": ["curl + fsync", "aria2c -x8 -s8", "axel -n8", "lftp pget -n8"] },
  };
}

/** The same file over HTTPS (self-signed; every client skips the certificate check). */
function bigTls() {
  const url = `${tls}/big.bin`;
  const file = join(out, "big.bin");
  const files = ["big.bin"];
  return {
    name: "big-tls",
    title: `${sizeLabel(bigBytes)} over HTTPS (self-signed), full speed`,
    rows: [
      peerRow("curl", "curl", bigBytes, files, () => ["curl", "-fsSk", "-o", file, url]),
      peerRow("curl + fsync", "curl", bigBytes, files, () => curlFsync(url, file, "-k")),
      peerRow("aria2c -x8 -s8", "aria2c", bigBytes, files, () => aria2(8, "big.bin", url, "--check-certificate=false")),
      peerRow("axel -n8", "axel", bigBytes, files, () => ["axel", "-q", "-k", "-n8", "-o", file, url]),
      rangegetRow("rangeget -c8", bigBytes, files, () => ["-c8", "--insecure", "-o", file, url]),
    ],
    compare: { "rangeget -c8": ["curl + fsync", "aria2c -x8 -s8", "axel -n8"] },
  };
}

/** One connection: by choice (-c1), or because the server ignores Range (nginx max_ranges 0). */
function single() {
  const file = join(out, "big.bin");
  const files = ["big.bin"];
  return {
    name: "single",
    title: `${sizeLabel(bigBytes)} over one connection, full speed`,
    rows: [
      peerRow("curl + fsync", "curl", bigBytes, files, () => curlFsync(`${fast}/big.bin`, file)),
      rangegetRow("rangeget -c1", bigBytes, files, () => ["-c1", "-o", file, `${fast}/big.bin`]),
      rangegetRow("rangeget, no range support", bigBytes, files, () => ["-o", file, `${fast}/noranges/big.bin`]),
    ],
    compare: { "rangeget -c1": ["curl + fsync"], "rangeget, no range support": ["curl + fsync"] },
  };
}

function midThrottled() {
  const url = `${throttled}/mid.bin`;
  const file = join(out, "mid.bin");
  const files = ["mid.bin"];
  return {
    name: "mid-throttled",
    title: `${sizeLabel(midBytes)} at 16 MiB/s per connection`,
    rows: [
      peerRow("curl", "curl", midBytes, files, () => ["curl", "-fsS", "-o", file, url]),
      peerRow("aria2c -x8 -s8", "aria2c", midBytes, files, () => aria2(8, "mid.bin", url)),
      peerRow("aria2c -x16 -s16", "aria2c", midBytes, files, () => aria2(16, "mid.bin", url)),
      peerRow("axel -n8", "axel", midBytes, files, () => ["axel", "-q", "-n8", "-o", file, url]),
      peerRow("lftp pget -n8", "lftp", midBytes, files, () => lftpPget(8, url, file)),
      peerRow("ipull -c8", ipull, midBytes, files, () => [ipull, "-c", "8", "-st", "summary", url], out),
      rangegetRow("rangeget -c8", midBytes, files, () => ["-c8", "-o", file, url]),
      rangegetRow("rangeget -c16", midBytes, files, () => ["-c16", "-o", file, url]),
    ],
    compare: {
      "rangeget -c8": ["curl", "aria2c -x8 -s8", "axel -n8", "lftp pget -n8"],
      "rangeget -c16": ["curl", "aria2c -x16 -s16"],
    },
  };
}

function batch() {
  const bytes = batchNames.reduce((sum, name) => sum + sizeOf(name), 0);
  return {
    name: `batch-${batchNames.length}x1M`,
    title: `${batchNames.length} × 1 MiB from a list`,
    rows: [
      peerRow("wget -i", "wget", bytes, batchNames, () => ["wget", "-q", "-P", out, "-i", batchList]),
      peerRow("aria2c -i -j8", "aria2c", bytes, batchNames, () => ["aria2c", "-q", "-j8", "--file-allocation=none", "-d", out, "-i", batchList]),
      rangegetRow("rangeget -i -j8", bytes, batchNames, () => ["-i", batchList, "-j8", "-d", out]),
    ],
    compare: { "rangeget -i -j8": ["wget -i", "aria2c -i -j8"] },
  };
}

/** A long list of tiny files: per-file cost, and whether memory grows with the list. */
function longList() {
  const all = tinyList(tinyNames.length);
  const tenth = Math.max(1, Math.floor(tinyNames.length / 10));
  const part = tinyList(tenth);
  const bytes = (names) => names.reduce((sum, name) => sum + sizeOf(name), 0);
  return {
    name: `list-${tinyNames.length}x4K`,
    title: `${tinyNames.length} × 4 KiB from a list (and the first ${tenth}, for memory)`,
    rows: [
      peerRow("wget -i", "wget", bytes(tinyNames), tinyNames, () => ["wget", "-q", "-P", out, "-i", all]),
      peerRow("aria2c -i -j8", "aria2c", bytes(tinyNames), tinyNames, () => ["aria2c", "-q", "-j8", "--file-allocation=none", "-d", out, "-i", all]),
      rangegetRow("rangeget -i -j8", bytes(tinyNames), tinyNames, () => ["-i", all, "-j8", "-d", out]),
      rangegetRow(`rangeget -i -j8, ${tenth} files`, bytes(tinyNames.slice(0, tenth)), tinyNames.slice(0, tenth), () => ["-i", part, "-j8", "-d", out]),
    ],
    compare: { "rangeget -i -j8": ["wget -i", "aria2c -i -j8"] },
  };
}

/**
 * The Nodes to time start-up on: this one, and one of each other supported line (22, 24,
 * 26) at hand: START_NODES (paths, separated by ":"), else the newest of each line that
 * .ci/run cached in ~/.cache/rangeget-ci. One per major.
 */
function startNodes() {
  const nodes = [{ label: `Node ${process.versions.node.split(".")[0]}`, path: process.execPath }];
  let others = (env.START_NODES ?? "").split(delimiter).filter((path) => path !== "");
  if (others.length === 0) {
    const cache = join(homedir(), ".cache", "rangeget-ci");
    const cached = existsSync(cache) ? readdirSync(cache).filter((name) => /^node-v\d+\./.test(name)) : [];
    const newest = (line) => cached.filter((name) => name.startsWith(`node-v${line}.`)).sort((a, b) => a.localeCompare(b, "en", { numeric: true })).at(-1);
    others = ["22", "24", "26"].map(newest).filter((name) => name !== undefined).map((name) => join(cache, name, "bin", "node"));
  }
  for (const other of others) {
    if (!isExecutable(other)) continue;
    const version = spawnSync(other, ["--version"], { encoding: "utf8" }).stdout.trim();
    const label = `Node ${version.replace(/^v/, "").split(".")[0]}`;
    if (version !== "" && !nodes.some((node) => node.label === label)) nodes.push({ label, path: other });
  }
  return nodes;
}

/** Start-up: doing nothing, printing the version, and fetching one byte, against `node -e 0`. */
function start() {
  const rows = [];
  const compare = {};
  for (const node of startNodes()) {
    const baseline = `node -e 0 (${node.label})`;
    const version = `rangeget --version (${node.label})`;
    const oneByte = `rangeget, 1-byte file (${node.label})`;
    rows.push(
      { tool: baseline, bytes: 0, files: [], command: () => [node.path, "-e", "0"] },
      { tool: version, bytes: 0, files: [], command: () => [node.path, ...rangeget.slice(1), "--version"] },
      { tool: oneByte, bytes: 1, files: ["one.bin"], command: () => [node.path, ...rangeget.slice(1), "-o", join(out, "one.bin"), `${fast}/one.bin`] },
    );
    compare[version] = [baseline];
    compare[oneByte] = [baseline];
  }
  return { name: "start", title: "start-up, against node itself", rows, compare };
}

function rss() {
  const mid = `rangeget -c16, mid.bin (${sizeLabel(midBytes)})`;
  const big = `rangeget -c16, big.bin (${sizeLabel(bigBytes)})`;
  const aria = `aria2c -x16 -s16, big.bin (${sizeLabel(bigBytes)})`;
  return {
    name: "rss",
    title: "peak memory against file size, full-speed origin",
    rows: [
      // Node with rangeget's modules loaded and no download: the floor for the rows below.
      rangegetRow("rangeget --version", 0, [], () => ["--version"]),
      rangegetRow(mid, midBytes, ["mid.bin"], () => ["-c16", "-o", join(out, "mid.bin"), `${fast}/mid.bin`]),
      rangegetRow(big, bigBytes, ["big.bin"], () => ["-c16", "-o", join(out, "big.bin"), `${fast}/big.bin`]),
      peerRow(aria, "aria2c", bigBytes, ["big.bin"], () => aria2(16, "big.bin", `${fast}/big.bin`)),
    ],
    compare: { [big]: [mid, aria] },
  };
}

function rangeLength(header) {
  const [start, end] = header.replace("bytes=", "").split("-").map(Number);
  return end - start + 1;
}

/** A Node origin (bench/straggler-server.mjs) serving mid.bin, started for a scenario and stopped after it. */
function nodeOrigin(extraEnv = {}) {
  const origin = { port: 0, child: null };
  return Object.assign(origin, {
    async start() {
      const child = spawn(process.execPath, [join(root, "bench", "straggler-server.mjs"), join(www, "mid.bin")], {
        stdio: ["pipe", "pipe", "inherit"],
        env: { ...env, ...extraEnv },
      });
      origin.child = child;
      const lines = createInterface({ input: child.stdout });
      const [line] = await Promise.race([once(lines, "line"), once(child, "exit").then(() => ["exited"])]);
      const match = /^listening (\d+)$/.exec(line);
      if (match === null) throw new Error(`bench origin did not start: ${line}`);
      origin.port = Number(match[1]);
    },
    async stop() {
      origin.child?.stdin.end();
      origin.child?.kill("SIGTERM");
      if (origin.child?.exitCode === null) await once(origin.child, "exit");
    },
  });
}

function straggler() {
  const server = nodeOrigin();
  // Each run of each row is its own run on the server, so each gets its own straggler.
  const runId = (row, runIndex) => `${row}-${runIndex}-${process.pid}`;
  const url = (row, runIndex, withStraggler) =>
    `http://127.0.0.1:${server.port}/mid.bin?run=${runId(row, runIndex)}${withStraggler ? "" : "&straggler=0"}`;
  const file = join(out, "mid.bin");
  const files = ["mid.bin"];
  const describeSlowRange = (row) => async (runIndex) => {
    const response = await fetch(`http://127.0.0.1:${server.port}/_stats?run=${runId(row, runIndex)}`);
    const { requests } = await response.json();
    const slow = requests.find((request) => request.slow);
    return slow === undefined
      ? "no ranged request covered the middle byte: nothing was slowed"
      : `slowed ${slow.range} (${mib(rangeLength(slow.range))}): served ${mib(slow.bytesSent)} of it in ${(slow.ms / 1000).toFixed(1)} s; ${requests.length} requests in all`;
  };
  return {
    name: "straggler",
    title: `${sizeLabel(midBytes)} at 16 MiB/s per connection, one range at 1.6 MiB/s`,
    start: () => server.start(),
    stop: () => server.stop(),
    rows: [
      // aria2c shows what the origin can serve, and what a peer makes of the straggler.
      peerRow("aria2c -x8 -s8, no straggler", "aria2c", midBytes, files, (i) => aria2(8, "mid.bin", url("aria2c-even", i, false))),
      {
        ...peerRow("aria2c -x8 -s8, one straggler", "aria2c", midBytes, files, (i) => aria2(8, "mid.bin", url("aria2c-slow", i, true))),
        afterRun: describeSlowRange("aria2c-slow"),
      },
      rangegetRow("rangeget -c8, no straggler", midBytes, files, (i) => ["-c8", "-o", file, url("rangeget-even", i, false)]),
      {
        ...rangegetRow("rangeget -c8, one straggler", midBytes, files, (i) => ["-c8", "-o", file, url("rangeget-slow", i, true)]),
        afterRun: describeSlowRange("rangeget-slow"),
      },
    ],
    compare: {
      "rangeget -c8, one straggler": ["rangeget -c8, no straggler", "aria2c -x8 -s8, one straggler"],
      "rangeget -c8, no straggler": ["aria2c -x8 -s8, no straggler"],
    },
  };
}

/** Two mirrors, each with a 32 MiB/s uplink shared by all its connections. */
function mirrors() {
  const mirrorMib = wholeNumber("MIRROR_MIB", 32);
  const first = nodeOrigin({ SERVER_MIB: String(mirrorMib) });
  const second = nodeOrigin({ SERVER_MIB: String(mirrorMib) });
  const url = (origin) => `http://127.0.0.1:${origin.port}/mid.bin?straggler=0`;
  const file = join(out, "mid.bin");
  const files = ["mid.bin"];
  return {
    name: "mirrors",
    title: `${sizeLabel(midBytes)} from mirrors capped at ${mirrorMib} MiB/s each`,
    async start() {
      await first.start();
      await second.start();
    },
    async stop() {
      await first.stop();
      await second.stop();
    },
    rows: [
      peerRow("aria2c -x8 -s8, one mirror", "aria2c", midBytes, files, () => aria2(8, "mid.bin", url(first))),
      // aria2c takes several URIs of one file as mirrors.
      peerRow("aria2c -x8 -s8, two mirrors", "aria2c", midBytes, files, () => [...aria2(8, "mid.bin", url(first)), url(second)]),
      rangegetRow("rangeget -c8, one mirror", midBytes, files, () => ["-c8", "-o", file, url(first)]),
      rangegetRow("rangeget -c8, two mirrors", midBytes, files, () => ["-c8", "-o", file, "--mirror", url(second), url(first)]),
    ],
    compare: {
      "rangeget -c8, two mirrors": ["rangeget -c8, one mirror", "aria2c -x8 -s8, two mirrors"],
    },
  };
}

async function runScenario(scenario) {
  const rows = scenario.rows.map((row) => ({ ...row, runs: [], notes: [] }));
  await scenario.start?.();
  try {
    // Runs are interleaved (every row once, then again) so that drift hits all rows alike.
    for (let runIndex = 0; runIndex < runCount; runIndex++) {
      for (const row of rows) {
        if (row.missing) continue;
        freshOutputDir();
        const result = await timed(row.command(runIndex), row.cwd ?? root);
        result.problem ??= await checkOutputs(out, row.files);
        row.runs.push(result);
        if (row.afterRun) row.notes.push(await row.afterRun(runIndex));
        progress(`${scenario.name} ${runIndex + 1}/${runCount} ${row.tool}: ${result.wallS.toFixed(2)} s ${result.problem ?? "ok"}`);
      }
    }
  } finally {
    await scenario.stop?.();
    rmSync(out, { recursive: true, force: true });
  }
  return { ...scenario, rows: rows.map(summarize) };
}

// ---------- resume: kill part-way, re-run, count what nginx served twice ----------

/** Waits until nginx has logged every request the killed process had open. */
async function logSettled() {
  let last = -1;
  for (let attempt = 0; attempt < 50; attempt++) {
    const size = existsSync(resumeLog) ? statSync(resumeLog).size : 0;
    if (size === last) return size;
    last = size;
    await sleep(200);
  }
  return last;
}

/** Bytes of response bodies logged between two offsets of the resume log. */
function bytesServed(from, to) {
  const text = readFileSync(resumeLog).subarray(from, to).toString("utf8");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .reduce((sum, line) => sum + Number(line.split(" ")[0]), 0);
}

function manifestDoneBytes(path) {
  try {
    const manifest = JSON.parse(readFileSync(path, "utf8"));
    return manifest.done.reduce((sum, [start, end]) => sum + end - start + 1, 0);
  } catch {
    return NaN;
  }
}

async function runResume() {
  const file = join(out, "mid.bin");
  const argv = [...rangeget, "-c8", "-o", file, `${logged}/mid.bin`];
  const runs = [];
  for (let runIndex = 0; runIndex < runCount; runIndex++) {
    freshOutputDir();
    const before = await logSettled();
    const child = spawn(argv[0], argv.slice(1), { cwd: root, stdio: "ignore" });
    const began = performance.now();
    const exited = once(child, "exit");
    const finishedFirst = await Promise.race([sleep(killAfterMs).then(() => false), exited.then(() => true)]);
    const firstExitCode = child.exitCode;
    if (!finishedFirst) {
      child.kill("SIGKILL");
      await exited;
    }
    const killedAtS = (performance.now() - began) / 1000;
    const afterKill = await logSettled();
    const doneAtKill = manifestDoneBytes(`${file}.part.json`);
    const rerun = await timed(argv, root);
    rerun.problem ??= await checkOutputs(out, ["mid.bin"]);
    if (finishedFirst) {
      rerun.problem =
        firstExitCode === 0
          ? `first run finished before the kill at ${killAfterMs / 1000} s: lower KILL_AFTER_S`
          : `first run failed with exit ${firstExitCode} before the kill`;
    }
    const afterRerun = await logSettled();
    const servedBeforeKill = bytesServed(before, afterKill);
    const servedToRerun = bytesServed(afterKill, afterRerun);
    const run = { killedAtS, doneAtKill, servedBeforeKill, servedToRerun, refetched: servedBeforeKill + servedToRerun - midBytes, ...rerun };
    runs.push(run);
    progress(`resume ${runIndex + 1}/${runCount}: killed at ${killedAtS.toFixed(2)} s, re-fetched ${mib(run.refetched)} ${run.problem ?? "ok"}`);
  }
  rmSync(out, { recursive: true, force: true });
  return { name: "resume", title: `${sizeLabel(midBytes)} at 16 MiB/s per connection, rangeget -c8 killed after ${killAfterMs / 1000} s, then re-run`, runs };
}

// ---------- the report ----------

function machineLine() {
  const git = spawnSync("git", ["describe", "--always", "--dirty"], { cwd: root, encoding: "utf8" }).stdout?.trim() || "unknown";
  return [
    `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    `${cpus()[0]?.model.trim() ?? "cpu"}, ${cpus().length} cores, ${Math.round(totalmem() / 1024 / MiB)} GiB`,
    `Node ${process.version}`,
    `rangeget ${git}`,
    `RUNS=${runCount}`,
  ].join(" · ");
}

function mainTable(scenarios) {
  const rows = [];
  for (const scenario of scenarios) {
    scenario.rows.forEach((row, index) => {
      const name = index === 0 ? `**${scenario.name}**: ${scenario.title}` : "";
      if (!row.ok && row.runs.length === 0) {
        rows.push([name, row.tool, "—", "—", "—", "—", "—", row.status]);
        return;
      }
      rows.push([
        name,
        row.tool,
        fixed(row.wallS, 2),
        `${fixed(row.minWallS, 2)}–${fixed(row.maxWallS, 2)}`,
        row.ok ? fixed(row.mibPerS, 0) : "—",
        fixed(row.cpuS, 2),
        fixed(row.rssMiB, 0),
        row.status,
      ]);
    });
  }
  return table(["scenario", "tool", "wall s", "min–max s", "MiB/s", "CPU s", "RSS MiB", "check"], rows);
}

function ratioTable(scenarios) {
  const rows = [];
  for (const scenario of scenarios) {
    for (const [mine, peers] of Object.entries(scenario.compare ?? {})) {
      const subject = scenario.rows.find((row) => row.tool === mine);
      for (const peerName of peers) {
        const peer = scenario.rows.find((row) => row.tool === peerName);
        const usable = subject?.ok && peer?.ok;
        rows.push([
          scenario.name,
          mine,
          peerName,
          usable ? ratio(subject.wallS / peer.wallS) : "—",
          usable ? ratio(subject.mibPerS / peer.mibPerS) : "—",
          usable ? ratio(subject.cpuS / peer.cpuS) : "—",
          usable ? ratio(subject.rssMiB / peer.rssMiB) : "—",
          usable ? "" : `${subject?.status ?? "not run"} / ${peer?.status ?? "not run"}`,
        ]);
      }
    }
  }
  return table(["scenario", "rangeget", "vs", "wall", "MiB/s", "CPU", "RSS", "note"], rows);
}

/**
 * The goals of the performance issue (and the straggler, mirrors and resume goals before
 * it), each measured against rows of the same run: the measured figures, the ratio to
 * the limit the goal sets, and "holds" or "short".
 */
function targetTable(scenarios, resume) {
  const row = (scenarioName, tool) => scenarios.find((s) => s.name.startsWith(scenarioName))?.rows.find((r) => r.tool === tool);
  const goals = [];
  // Only the goals of the scenarios that ran: the scenario is the first word of `what`.
  const goal = (what, measured, ratioValue, holds) => {
    if (!only.test(what.split(/[ :]/)[0])) return;
    const known = ratioValue !== undefined && Number.isFinite(ratioValue);
    goals.push([what, known ? measured : "n/a", known ? ratio(ratioValue) : "—", known ? (holds ? "holds" : "**short**") : "n/a"]);
  };
  const seconds = (value) => `${fixed(value, 2)} s`;
  /** Lower is better: `mine` at most `factor` × the peer's figure. */
  const atMost = (what, mine, peer, field, factor = 1, unit = seconds) => {
    const usable = mine?.ok && peer?.ok;
    const value = usable ? mine[field] / (factor * peer[field]) : undefined;
    goal(what, usable ? `${unit(mine[field])} vs ${unit(peer[field])}` : "", value, value <= 1);
  };
  /** Higher is better: `mine` at least the peer's figure. */
  const atLeast = (what, mine, peer, field, unit) => {
    const usable = mine?.ok && peer?.ok;
    const value = usable ? mine[field] / peer[field] : undefined;
    goal(what, usable ? `${unit(mine[field])} vs ${unit(peer[field])}` : "", value, value >= 1);
  };
  const cpu = (value) => `${fixed(value, 2)} CPU s`;
  const mibps = (value) => `${fixed(value, 0)} MiB/s`;
  const mibs = (value) => `${fixed(value, 0)} MiB`;

  // 1 and 2: one big file at full speed, over HTTP and HTTPS.
  for (const scenario of ["big-fast", "big-tls"]) {
    const mine = row(scenario, "rangeget -c8");
    if (scenario === "big-fast") atMost(`${scenario}: -c8 wall ≤ curl + fsync's`, mine, row(scenario, "curl + fsync"), "wallS");
    atMost(`${scenario}: -c8 wall ≤ aria2c -x8's`, mine, row(scenario, "aria2c -x8 -s8"), "wallS");
    atMost(`${scenario}: -c8 wall ≤ axel -n8's`, mine, row(scenario, "axel -n8"), "wallS");
    atMost(`${scenario}: -c8 CPU ≤ aria2c -x8's`, mine, row(scenario, "aria2c -x8 -s8"), "cpuS", 1, cpu);
  }
  // 3: one connection.
  const curlFsyncRow = row("single", "curl + fsync");
  atMost("single: -c1 wall ≤ 1.1 × curl + fsync's", row("single", "rangeget -c1"), curlFsyncRow, "wallS", 1.1);
  atMost("single: no range support, wall ≤ 1.1 × curl + fsync's", row("single", "rangeget, no range support"), curlFsyncRow, "wallS", 1.1);
  // 4: a throttled origin.
  atLeast("mid-throttled: -c8 MiB/s ≥ axel -n8's", row("mid-throttled", "rangeget -c8"), row("mid-throttled", "axel -n8"), "mibPerS", mibps);
  atLeast("mid-throttled: -c16 MiB/s ≥ aria2c -x16's", row("mid-throttled", "rangeget -c16"), row("mid-throttled", "aria2c -x16 -s16"), "mibPerS", mibps);
  // 5: lists.
  atMost(`batch-${batchNames.length}x1M: wall ≤ wget -i's`, row("batch", "rangeget -i -j8"), row("batch", "wget -i"), "wallS");
  const list = scenarios.find((s) => s.name.startsWith("list-"));
  const listName = `list-${tinyNames.length}x4K`;
  atMost(`${listName}: wall ≤ wget -i's`, row("list-", "rangeget -i -j8"), row("list-", "wget -i"), "wallS");
  const partRow = list?.rows.find((r) => r.tool.startsWith("rangeget -i -j8, "));
  atMost(`${listName}: peak RSS ≤ 1.1 × ${partRow?.tool.split(", ")[1] ?? "a tenth of the files"}'s`, row("list-", "rangeget -i -j8"), partRow, "rssMiB", 1.1, mibs);
  // 6: start-up, on every Node the start scenario ran.
  for (const node of startNodes()) {
    const baseline = row("start", `node -e 0 (${node.label})`);
    atMost(`start: --version ≤ 1.6 × node -e 0 (${node.label})`, row("start", `rangeget --version (${node.label})`), baseline, "wallS", 1.6);
    atMost(`start: 1-byte download ≤ 2.5 × node -e 0 (${node.label})`, row("start", `rangeget, 1-byte file (${node.label})`), baseline, "wallS", 2.5);
  }
  // 7: memory of one big download.
  const rssBig = row("rss", `rangeget -c16, big.bin (${sizeLabel(bigBytes)})`);
  const rssMid = row("rss", `rangeget -c16, mid.bin (${sizeLabel(midBytes)})`);
  goal(`rss: peak RSS, ${sizeLabel(bigBytes)} at -c16 ≤ 80 MiB`, rssBig?.ok ? mibs(rssBig.rssMiB) : "", rssBig?.ok ? rssBig.rssMiB / 80 : undefined, rssBig?.rssMiB <= 80);
  const growth = rssBig?.ok && rssMid?.ok ? rssBig.rssMiB - rssMid.rssMiB : undefined;
  goal(
    `rss: flat in file size (${sizeLabel(midBytes)} to ${sizeLabel(bigBytes)}: ≤ 8 MiB more)`,
    growth === undefined ? "" : `${growth >= 0 ? "+" : ""}${fixed(growth, 0)} MiB`,
    growth === undefined ? undefined : rssBig.rssMiB / (rssMid.rssMiB + 8),
    growth <= 8,
  );
  // Earlier issues: a slow range, two mirrors, resume.
  const slow = row("straggler", "rangeget -c8, one straggler");
  const even = row("straggler", "rangeget -c8, no straggler");
  atMost("straggler: wall ≤ 1.3 × the time without", slow, even, "wallS", 1.3);
  const two = row("mirrors", "rangeget -c8, two mirrors");
  const one = row("mirrors", "rangeget -c8, one mirror");
  const speedup = two?.ok && one?.ok ? two.mibPerS / one.mibPerS : undefined;
  goal("mirrors: two mirrors ≥ 1.8 × one mirror's MiB/s", speedup === undefined ? "" : `${mibps(two.mibPerS)} vs ${mibps(one.mibPerS)}`, speedup === undefined ? undefined : speedup / 1.8, speedup >= 1.8);
  if (resume !== undefined) {
    const ok = resume.runs.filter((run) => run.problem === null);
    goal(
      "resume: re-run completes with the right bytes",
      `${ok.length}/${resume.runs.length} runs; median re-fetched ${ok.length ? mib(median(ok.map((run) => run.refetched))) : "n/a"}`,
      ok.length / resume.runs.length,
      ok.length === resume.runs.length,
    );
  }
  return table(["goal", "measured (rangeget vs limit)", "ratio to the limit", "holds"], goals);
}

function resumeTable(resume) {
  const rows = resume.runs.map((run, index) => [
    String(index + 1),
    fixed(run.killedAtS, 2),
    Number.isFinite(run.doneAtKill) ? mib(run.doneAtKill) : "no manifest",
    mib(run.servedBeforeKill),
    mib(run.servedToRerun),
    `${mib(run.refetched)} (${fixed((run.refetched / midBytes) * 100, 1)}%)`,
    // What the re-run asked for beyond the bytes its manifest lacked: 0 when resume is exact.
    Number.isFinite(run.doneAtKill) ? mib(run.servedToRerun - (midBytes - run.doneAtKill)) : "—",
    fixed(run.wallS, 2),
    fixed(run.rssMiB, 0),
    run.problem ?? "ok",
  ]);
  return table(
    ["run", "killed at s", "manifest done", "served before kill", "served to re-run", "re-fetched", "re-run beyond missing", "re-run wall s", "re-run RSS MiB", "check"],
    rows,
  );
}

// ---------- main ----------

const scenarios = [bigFast(), bigTls(), single(), midThrottled(), batch(), longList(), start(), rss(), straggler(), mirrors()].filter((scenario) =>
  only.test(scenario.name),
);
const results = [];
for (const scenario of scenarios) {
  progress(`scenario ${scenario.name}: ${scenario.title}`);
  results.push(await runScenario(scenario));
}
let resume;
if (only.test("resume")) {
  progress("scenario resume");
  resume = await runResume();
}

const sections = [`## rangeget benchmark\n\n${machineLine()}`];
if (results.length > 0) {
  sections.push(`Medians over ${runCount} run${runCount === 1 ? "" : "s"} (min–max: fastest and slowest wall), CPU = user + sys, RSS = peak over the runs; every output's SHA-256 checked.\n\n${mainTable(results)}`);
  sections.push(`### Ratios (rangeget ÷ peer, same run; < 1 is better for wall, CPU, RSS; > 1 for MiB/s)\n\n${ratioTable(results)}`);
  const notes = results.flatMap((scenario) => scenario.rows.flatMap((row) => row.notes?.map((note, index) => `- ${row.tool}, run ${index + 1}: ${note}`) ?? []));
  if (notes.length > 0) sections.push(`### Straggler detail\n\n${notes.join("\n")}`);
}
if (resume !== undefined) {
  sections.push(
    `### Resume: ${resume.title}\n\nBytes counted from nginx's access log; re-fetched = served before the kill + served to the re-run − file size.\n\n${resumeTable(resume)}`,
  );
}
sections.push(`### Goals\n\n${targetTable(results, resume)}`);
const report = `${sections.join("\n\n")}\n`;
writeFileSync(join(benchDir, "results.md"), report);
writeFileSync(join(benchDir, "results.json"), JSON.stringify({ machine: machineLine(), scenarios: results, resume }, null, 2));
process.stdout.write(report);
progress(`report saved in ${join(benchDir, "results.md")} and results.json`);

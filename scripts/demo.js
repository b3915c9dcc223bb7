// `npm start`: a self-contained first run, no internet needed. A local server caps each
// connection (as CDNs do); rangeget downloads the same file with 1 and then 8
// connections through the real command line, and both copies are checked against the
// source's SHA-256.
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startThrottledServer } from "./throttled-server.js";

const MiB = 1024 * 1024;
const FILE_SIZE = 256 * MiB;
const PER_CONNECTION = 20 * MiB;
const CLI = fileURLToPath(new URL("../bin/rangeget.js", import.meta.url));

// Ctrl-C reaches the rangeget child too; it saves its state and exits 130, and the
// demo then cleans up instead of dying with the server and temp files left behind.
process.on("SIGINT", () => {});

const mibPerSecond = (bytes, ms) => (bytes / MiB / (ms / 1000)).toFixed(1);

async function sha256OfFile(path) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk);
  return hash.digest("hex");
}

/** Runs the CLI with progress on our stderr; resolves with its `--json` result. */
function runRangeget(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "--json", ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (text) => (stdout += text));
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (code !== 0) {
        reject(new Error(`rangeget ${args.join(" ")} exited with ${code ?? signal}`));
        return;
      }
      resolve(JSON.parse(stdout.trim().split("\n").pop() ?? "null"));
    });
  });
}

async function downloadAndVerify(label, connections, url, output, expectedSha256) {
  console.log(`\n${label}: rangeget -c ${connections} ${url}`);
  const result = await runRangeget(["-c", String(connections), "-o", output, url]);
  const actual = await sha256OfFile(output);
  const verified = actual === expectedSha256;
  console.log(`  ${mibPerSecond(FILE_SIZE, result.elapsedMs)} MiB/s in ${(result.elapsedMs / 1000).toFixed(1)} s, sha256 ${verified ? "matches the source" : `MISMATCH (${actual})`}`);
  return { elapsedMs: result.elapsedMs, verified };
}

async function demo() {
  console.log(`rangeget demo: generating a ${FILE_SIZE / MiB} MiB file and serving it locally, each connection capped at ${PER_CONNECTION / MiB} MiB/s`);
  const content = randomBytes(FILE_SIZE);
  const expectedSha256 = createHash("sha256").update(content).digest("hex");
  const server = await startThrottledServer(content, PER_CONNECTION);
  const dir = await mkdtemp(join(tmpdir(), "rangeget-demo-"));
  try {
    const single = await downloadAndVerify("1 connection", 1, server.url, join(dir, "one-connection.bin"), expectedSha256);
    const parallel = await downloadAndVerify("8 connections", 8, server.url, join(dir, "eight-connections.bin"), expectedSha256);
    console.log(`\nspeed-up with 8 connections: ${(single.elapsedMs / parallel.elapsedMs).toFixed(1)}x`);
    return single.verified && parallel.verified;
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

try {
  process.exitCode = (await demo()) ? 0 : 1;
} catch (error) {
  console.error(`demo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}

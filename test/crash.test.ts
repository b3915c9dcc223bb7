import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, it } from "vitest";
import { download } from "../src/index.js";
import { IntervalSet } from "../src/ranges.js";
import { checkpointedBytes } from "./support/checkpoint.js";
import { makeContent, sha256 } from "./support/content.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Body bytes each answer of the first run gets before it holds. */
const HOLD = 768 * KiB;
// The child runs the built library, as a user's build script would (`npm test` builds first).
const library = fileURLToPath(new URL("../dist/index.js", import.meta.url));

it("resumes after SIGKILL with exact bytes, asking only for what the manifest lacked", async () => {
  const connections = 4;
  const content = makeContent(6 * MiB, 9);
  // Every answer holds after HOLD bytes until the child is dead: killed mid-transfer, whatever the machine's load.
  const server = await rangeServer({ content, holdAfterBytes: HOLD });
  const output = join(await tempDir(), "crash.bin");
  const script = `
    const { download } = await import(${JSON.stringify(library)});
    await download(process.argv[1], { output: process.argv[2], connections: ${connections}, minSplit: ${256 * KiB}, onWarning() {} });
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, server.url(), output], { stdio: "ignore" });
  const exited = new Promise((resolve) => child.once("exit", resolve));

  // Kill it mid-transfer, after at least one checkpoint.
  await until(() => server.bytesServed() >= 2 * MiB, "2 MiB served", 20_000);
  await until(async () => (await checkpointedBytes(output)) > 0, "a checkpoint with bytes", 5_000);
  child.kill("SIGKILL");
  await exited;
  server.release();

  const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: [number, number][]; size: number };
  const done = IntervalSet.from(manifest.done);
  expect(done.bytes).toBeGreaterThan(0);
  expect(done.bytes).toBeLessThan(content.length);
  const firstRunRequests = server.requests.length;

  const result = await download(server.url(), { output, connections, minSplit: 256 * KiB, onWarning() {} });
  expect(result.status).toBe("resumed");
  expect(sha256(await readFile(output))).toBe(sha256(content));

  // Only the missing bytes were asked for...
  const asked = new IntervalSet();
  for (const request of server.requests.slice(firstRunRequests)) {
    if (request.range) asked.add(request.range.start, Math.min(request.range.end ?? Infinity, content.length - 1));
  }
  expect(asked.toArray()).toEqual(done.missing(content.length));
  // ...and what was fetched twice is at most what the connections had in flight since
  // the last checkpoint: no more than the HOLD bytes each answer got before the kill.
  const refetched = server.bytesServed() - content.length;
  expect(refetched).toBeLessThanOrEqual(connections * HOLD);
});

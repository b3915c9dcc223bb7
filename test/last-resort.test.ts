// What the user sees when an exception escapes every handler (undici 7's parser assert
// once did), and what is left on disk: one line, exit 1, and state that resumes.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { lastResortLine } from "../src/cli/last-resort.js";
import { nodeIsSupported } from "../src/node-version.js";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, BIN, lines, runCli } from "./support/run-cli.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const MiB = 1024 * 1024;
const THROWER = fileURLToPath(new URL("./fixtures/throw-from-a-timer.mjs", import.meta.url));
let workDir: string;

beforeAll(assertBuilt);
beforeEach(async () => {
  workDir = await tempDir();
});

describe("an exception nothing catches", () => {
  it("ends the run with one line and exit 1, and the next run resumes with exact bytes", async () => {
    const content = makeContent(8 * MiB, 77);
    // The first run's answers hold after 512 KiB each: the throw comes mid-download, never after it.
    const server = await rangeServer({ content, holdAfterBytes: 512 * 1024 });
    const args = ["-q", "-c", "4", "--min-split", "1M", "-o", "out.bin", server.url()];
    const crashed = await runCli(args, { cwd: workDir, env: { NODE_OPTIONS: `--import=${THROWER}`, RANGEGET_TEST_THROW_WHEN: join(workDir, "out.bin.part.json") } });
    expect(crashed.code).toBe(1);
    expect(lines(crashed.stderr)).toHaveLength(1);
    expect(crashed.stderr).toMatch(/^rangeget: internal error \(Error: thrown from a dependency's timer .*\); this is a bug in rangeget or a library it uses/);
    expect(crashed.stderr).not.toContain("hunter2");
    expect(crashed.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(join(workDir, "out.bin"))).toBe(false);
    expect(existsSync(join(workDir, "out.bin.part"))).toBe(true);

    server.release();
    const servedBefore = server.bytesServed();
    const resumed = await runCli(args, { cwd: workDir });
    expect({ code: resumed.code, stderr: resumed.stderr }).toEqual({ code: 0, stderr: "" });
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
    // The manifest claimed only durable bytes, and what it claimed was not asked again.
    expect(server.bytesServed() - servedBefore).toBeLessThan(content.length);
  });

  it("shows the stack under DEBUG=rangeget", async () => {
    // Held after 64 KiB: still running when the timer throws, however fast the machine.
    const server = await rangeServer({ content: makeContent(4 * MiB, 78), holdAfterBytes: 64 * 1024 });
    const run = await runCli(["-q", "-o", "out.bin", server.url()], {
      cwd: workDir,
      env: { NODE_OPTIONS: `--import=${THROWER}`, DEBUG: "rangeget" },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/\n\s+at /);
    expect(run.stderr).not.toContain("hunter2");
  });

  it("names no secret from the message", () => {
    expect(lastResortLine(new TypeError("bad https://alice:s3cret@example.com/x"))).not.toContain("s3cret");
  });
});

describe("the Node it needs", () => {
  it("knows the floor: 22.19", () => {
    expect(nodeIsSupported("20.20.2")).toBe(false);
    expect(nodeIsSupported("22.18.9")).toBe(false);
    expect(nodeIsSupported("22.19.0")).toBe(true);
    expect(nodeIsSupported("24.0.0")).toBe(true);
    expect(nodeIsSupported("26.1.0")).toBe(true);
  });

  // The machines here start with Node 20 on PATH outside the project: the installed
  // command run by it must say what it needs, never fail inside undici.
  const olderNode = findOlderNodeOnPath();
  it.skipIf(olderNode === undefined)(`the CLI on an older Node (${olderNode?.version ?? "none on PATH"}) prints one line and exits 2`, () => {
    const run = spawnSync(olderNode!.path, [BIN, "--version"], { encoding: "utf8", timeout: 10_000 });
    expect(run.status).toBe(2);
    expect(run.stderr).toBe(`rangeget: needs Node.js 22.19 or later (22, 24, 26); this is Node.js ${olderNode!.version}\n`);
  });
});

/** A `node` on PATH, outside node_modules, older than 22.19. */
function findOlderNodeOnPath(): { path: string; version: string } | undefined {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "" || dir.includes("node_modules")) continue;
    const candidate = join(dir, "node");
    if (!existsSync(candidate)) continue;
    try {
      const version = execFileSync(candidate, ["--version"], { encoding: "utf8", timeout: 10_000 }).trim();
      if (!nodeIsSupported(version.slice(1))) return { path: candidate, version };
    } catch {
      // Not runnable: look further.
    }
  }
  return undefined;
}

/**
 * Torture: SIGKILL loops, kills during the finish step, a fault soak and remote files
 * changing mid-flight. At CI size here; `npm run torture` runs the same scenarios
 * bigger (TORTURE_KILLS, TORTURE_SOAK, TORTURE_CHANGES, TORTURE_FINISH_KILLS), and
 * TORTURE_SEED replays a run's choices. Each scenario returns the broken promises
 * it saw, each naming its seed and iteration, and the figures for the summary line.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { download } from "../src/index.js";
import { makeContent } from "./support/content.js";
import { defaultEtag, type RangeServer } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { runChangedRemote, type ChangedRemoteReport } from "./torture/changed-remote.js";
import { leftovers } from "./torture/disk-state.js";
import { runFaultSoak, type FaultSoakReport } from "./torture/fault-soak.js";
import { runFinishKills, type FinishKillReport } from "./torture/finish-kill.js";
import { runKillLoop, type KillLoopReport } from "./torture/kill-loop.js";
import { envCount } from "./torture/random.js";

const KiB = 1024;
const seed = envCount("TORTURE_SEED", 20_240_601);
const kills = envCount("TORTURE_KILLS", 20);
const soakDownloads = envCount("TORTURE_SOAK", 100);
const changes = envCount("TORTURE_CHANGES", Math.max(4, Math.round(soakDownloads / 10)));
const finishKills = envCount("TORTURE_FINISH_KILLS", Math.max(6, Math.round(kills / 10)));

const reports: {
  killLoop?: KillLoopReport;
  finish: FinishKillReport[];
  soak?: FaultSoakReport;
  changed?: ChangedRemoteReport;
} = { finish: [] };

afterAll(() => {
  const { killLoop, soak, changed } = reports;
  const finishKillCount = reports.finish.reduce((sum, report) => sum + report.kills, 0);
  const faults = soak ? Object.entries(soak.faults).map(([kind, n]) => `${kind}=${n}`).join(" ") : "-";
  const failed = soak ? Object.entries(soak.failedByCode).map(([code, n]) => `${code}=${n}`).join(" ") || "none" : "-";
  console.log(
    [
      `torture summary (seed ${seed}):`,
      killLoop
        ? `kills=${killLoop.kills} (in transfer ${killLoop.killsInTransfer}, at startup ${killLoop.killsBeforeFirstRequest}) over ${killLoop.runs} runs, ${killLoop.rounds} files finished;` +
          ` re-fetched ${killLoop.refetched} bytes of ${killLoop.fileBytes} (${(killLoop.refetched / Math.max(1, killLoop.killsInTransfer) / KiB).toFixed(0)} KiB per kill; bound ${killLoop.refetchBound});`
        : "kill loop not run;",
      `finish-step kills=${finishKillCount};`,
      soak
        ? `soak downloads=${soak.downloads} ok=${soak.succeeded} failed: ${failed} (finished on re-run ${soak.finishedOnRerun}); requests=${soak.requests}; faults: ${faults}; slowest ${soak.slowestMs} ms;`
        : "soak not run;",
      changed ? `changed remote: ${changed.iterations} (ended new ${changed.endedNew}, whole old ${changed.endedOld})` : "changed remote not run",
    ].join(" "),
  );
});

describe("torture", () => {
  it(
    `kill loop: ${kills} SIGKILLs at random moments, resumed each time: exact bytes, re-fetch within kills × connections × one checkpoint window`,
    async () => {
      const report = await runKillLoop({ kills, seed, dir: await tempDir() });
      reports.killLoop = report;
      expect(report.failures).toEqual([]);
      expect(report.kills).toBeGreaterThanOrEqual(kills);
      expect(report.rounds).toBeGreaterThanOrEqual(1);
    },
    120_000 + kills * 6_000,
  );

  it(
    `SIGKILL during the finish step (${finishKills} times): the output is whole or absent, and the next run completes without fetching again`,
    async () => {
      const report = await runFinishKills({ iterations: finishKills, seed, dir: await tempDir() });
      reports.finish.push(report);
      expect(report.failures).toEqual([]);
    },
    60_000 + finishKills * 8_000,
  );

  it(
    "SIGKILL right after the rename, before the manifest is removed: the next run does not download the file again",
    async () => {
      const report = await runFinishKills({ iterations: 3, seed, dir: await tempDir(), triggers: ["output-appears"], noDelay: true });
      reports.finish.push(report);
      expect(report.failures).toEqual([]);
    },
    90_000,
  );

  it("a complete manifest and its .part left by a kill before the rename: the next run finishes without fetching a byte", async () => {
    const content = makeContent(700 * KiB, seed);
    const server = await rangeServer({ content });
    const output = join(await tempDir(), "almost.bin");
    await writeKilledFinishState(output, server, content, { part: true });
    const warnings: string[] = [];
    const result = await download(server.url(), { output, connections: 4, minSplit: 64 * KiB, onWarning: (message) => warnings.push(message) });
    expect((await readFile(output)).equals(content)).toBe(true);
    expect(result.status).toBe("resumed");
    expect(server.bytesServed()).toBe(0);
    expect(warnings).toEqual([]);
    expect(leftovers(output)).toEqual([]);
  });

  it("a renamed output with its complete manifest still there (killed before the unlink): the next run keeps it without downloading again", async () => {
    const content = makeContent(700 * KiB, seed + 1);
    const server = await rangeServer({ content });
    const output = join(await tempDir(), "renamed.bin");
    await writeKilledFinishState(output, server, content, { part: false });
    const warnings: string[] = [];
    const result = await download(server.url(), { output, connections: 4, minSplit: 64 * KiB, onWarning: (message) => warnings.push(message) });
    expect((await readFile(output)).equals(content)).toBe(true);
    expect(result.restartedBecauseChanged).toBe(false);
    expect(server.bytesServed()).toBe(0);
    expect(leftovers(output)).toEqual([]);
  });

  it(
    `fault soak: ${soakDownloads} downloads through resets, stalls, 503/429, short bodies, wrong ranges, extra bytes and 200s end exact or with a documented error, none hangs`,
    async () => {
      const report = await runFaultSoak({ downloads: soakDownloads, seed, dir: await tempDir() });
      reports.soak = report;
      expect(report.failures).toEqual([]);
      expect(report.succeeded + report.finishedOnRerun).toBe(soakDownloads);
    },
    120_000 + soakDownloads * 3_000,
  );

  it(
    `changed remote mid-flight (${changes} times; same size and new size): one whole version, never a mix`,
    async () => {
      const report = await runChangedRemote({ iterations: changes, seed, dir: await tempDir() });
      reports.changed = report;
      expect(report.failures).toEqual([]);
    },
    60_000 + changes * 10_000,
  );
});

/**
 * What a SIGKILL in the finish step leaves: every byte written and recorded in the
 * manifest, a lock whose process is gone, and the data either still at `.part` (killed
 * before the rename) or already at the output name (killed after it).
 */
async function writeKilledFinishState(output: string, origin: RangeServer, content: Buffer, where: { part: boolean }): Promise<void> {
  const manifest = {
    version: 1,
    url: origin.url(),
    finalUrl: origin.url(),
    size: content.length,
    etag: defaultEtag(content),
    lastModified: "Tue, 02 Jan 2024 03:04:05 GMT",
    done: [[0, content.length - 1]],
  };
  await writeFile(where.part ? `${output}.part` : output, content);
  await writeFile(`${output}.part.json`, JSON.stringify(manifest));
  const gone = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(gone, "exit");
  await writeFile(`${output}.part.lock`, JSON.stringify({ pid: gone.pid, host: hostname() }));
  expect(existsSync(`${output}.part.json`)).toBe(true);
}

import { existsSync, watch } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { download, RangegetError } from "../../src/index.js";
import { makeContent, sha256 } from "../support/content.js";
import { startRangeServer } from "../support/range-server.js";
import { spawnDownload } from "./child.js";
import { brokenPromises, leftovers } from "./disk-state.js";
import { Random, deriveSeed } from "./random.js";

const KiB = 1024;
const MiB = 1024 * KiB;

export type FinishTrigger = "last-byte-served" | "output-appears" | "manifest-removed";

export interface FinishKillOptions {
  iterations: number;
  seed: number;
  dir: string;
  /** Which triggers to choose from; all by default. */
  triggers?: readonly FinishTrigger[];
  /** Kill exactly on the trigger, with no random delay. */
  noDelay?: boolean;
}

export interface FinishKillReport {
  seed: number;
  iterations: number;
  kills: number;
  /** What each kill left, e.g. "part+manifest" or "output+manifest". */
  statesAfterKill: Record<string, number>;
  /** How the next run ended: "resumed", "downloaded", "ERR_EXISTS"... */
  nextRun: Record<string, number>;
  failures: string[];
}

/**
 * SIGKILL aimed at the finish step (fsync, size check, rename, directory fsync, mtime,
 * manifest removal, lock release): the kill follows the last byte leaving the server,
 * the output name appearing, or the manifest disappearing, after a random few ms.
 * Whatever it leaves, the output name holds the whole file or nothing, and the next
 * run finds the complete file or finishes it without fetching again what the
 * manifest already had.
 */
export async function runFinishKills(options: FinishKillOptions): Promise<FinishKillReport> {
  const random = new Random(deriveSeed(options.seed, "finish-kill"));
  const report: FinishKillReport = {
    seed: options.seed,
    iterations: options.iterations,
    kills: 0,
    statesAfterKill: {},
    nextRun: {},
    failures: [],
  };
  const count = (table: Record<string, number>, key: string) => (table[key] = (table[key] ?? 0) + 1);

  for (let iteration = 0; iteration < options.iterations; iteration++) {
    const size = random.int(256 * KiB, 2 * MiB);
    const content = makeContent(size, deriveSeed(options.seed, "finish-kill-content", iteration));
    // Paced so the transfer outlasts the first checkpoint (1 s): there is a manifest to remove.
    const seconds = 1.2 + random.float() * 0.6;
    const server = await startRangeServer({ content, bytesPerSecond: Math.ceil(size / (2 * seconds)) });
    const output = join(options.dir, `finish-${iteration}.bin`);
    const trigger = random.pick<FinishTrigger>(options.triggers ?? ["last-byte-served", "output-appears", "manifest-removed"]);
    // The finish takes a few ms after the last byte arrives: fsync, rename, fsync, utimes, unlink.
    const delayMs = options.noDelay ? 0 : random.int(0, trigger === "last-byte-served" ? 8 : 3);
    const fail = (what: string) =>
      report.failures.push(`finish kill (seed ${options.seed}, iteration ${iteration}, ${trigger} + ${delayMs} ms, ${size} bytes): ${what}`);
    try {
      const run = spawnDownload({ kind: "library", url: server.url(), output, connections: 2, minSplit: 128 * KiB, timeoutSeconds: 20 });
      const fired = await waitForTrigger(trigger, output, () => server.bytesServed() >= size, () => run.done, 30_000);
      if (fired && delayMs > 0) await sleep(delayMs);
      if (!run.done) {
        run.child.kill("SIGKILL");
        report.kills += 1;
      }
      const exit = await run.exited;
      if (exit.signal !== "SIGKILL" && exit.code !== 0) fail(`the first run exited with code ${exit.code}: ${exit.stderr.slice(0, 300)}`);
      for (const broken of await brokenPromises(output, [content])) fail(`after the kill: ${broken}`);
      const state = ["", ".part", ".part.json", ".part.lock"]
        .filter((suffix) => existsSync(`${output}${suffix}`))
        .map((suffix) => (suffix === "" ? "output" : suffix.slice(1)))
        .join("+");
      count(report.statesAfterKill, state || "nothing");
      const manifestHadAll = await manifestIsComplete(`${output}.part.json`, size);

      const servedBefore = server.bytesServed();
      const warnings: string[] = [];
      try {
        const result = await download(server.url(), { output, connections: 2, minSplit: 128 * KiB, timeout: 20, onWarning: (message) => warnings.push(message) });
        count(report.nextRun, result.status);
        const served = server.bytesServed() - servedBefore;
        if (result.restartedBecauseChanged) fail(`state ${state}: the next run said the remote changed (it did not): ${warnings.join(" | ")}`);
        // Every byte was on disk, at the output name or in a `.part` the manifest fully covers.
        if ((state.startsWith("output") || manifestHadAll) && served > 0) {
          const had = state.startsWith("output") ? "the output was complete" : "the manifest had every byte";
          fail(`state ${state}: ${had}${manifestHadAll ? " (complete manifest)" : " (the manifest lacked bytes)"}, yet the next run fetched ${served} bytes again (${result.status}); warnings: ${warnings.join(" | ")}`);
        }
      } catch (error) {
        const code = error instanceof RangegetError ? error.code : String(error);
        count(report.nextRun, code);
        // Killed after the manifest went: the file is complete and is not overwritten.
        if (!(code === "ERR_EXISTS" && state.startsWith("output") && !state.includes("part.json"))) {
          fail(`state ${state}: the next run failed with ${code}: ${error instanceof Error ? error.message : ""}`);
        }
      }
      const bytes = await readFile(output).catch(() => undefined);
      if (bytes === undefined || !bytes.equals(content)) {
        fail(`after the next run the output is ${bytes === undefined ? "missing" : `${bytes.length} bytes, sha256 ${sha256(bytes).slice(0, 16)}`}`);
      }
      const left = leftovers(output);
      if (left.length > 0) fail(`state ${state}: the next run left ${left.map((path) => basename(path)).join(", ")}`);
    } finally {
      await server.close();
      for (const suffix of ["", ".part", ".part.json", ".part.json.tmp", ".part.lock"]) await rm(`${output}${suffix}`, { force: true });
    }
  }
  return report;
}

/** Waits for the trigger; false if the run ended or time ran out first. */
async function waitForTrigger(
  trigger: FinishTrigger,
  output: string,
  lastByteServed: () => boolean,
  ended: () => boolean,
  ms: number,
): Promise<boolean> {
  if (trigger === "last-byte-served") {
    const deadline = Date.now() + ms;
    while (!lastByteServed()) {
      if (ended() || Date.now() > deadline) return false;
      await sleep(1);
    }
    return true;
  }
  // inotify tells us about the rename or the unlink within a fraction of a millisecond.
  const name = basename(trigger === "output-appears" ? output : `${output}.part.json`);
  const path = join(dirname(output), name);
  const happened = () => (trigger === "output-appears" ? existsSync(path) : sawManifest && !existsSync(path));
  let sawManifest = false;
  return new Promise<boolean>((resolve) => {
    const watcher = watch(dirname(output));
    const finish = (value: boolean) => {
      clearInterval(poll);
      watcher.close();
      resolve(value);
    };
    watcher.on("change", (_event, file) => {
      if (String(file) !== name) return;
      if (existsSync(path)) sawManifest = true;
      if (happened()) finish(true);
    });
    watcher.on("error", () => finish(false));
    const deadline = Date.now() + ms;
    // A backstop for events the watcher coalesced, and for the run ending first.
    const poll = setInterval(() => {
      if (existsSync(path)) sawManifest = true;
      if (happened()) finish(true);
      else if (ended() || Date.now() > deadline) finish(false);
    }, 20);
  });
}

async function manifestIsComplete(path: string, size: number): Promise<boolean> {
  try {
    const manifest = JSON.parse(await readFile(path, "utf8")) as { size?: number; done?: [number, number][] };
    const claimed = (manifest.done ?? []).reduce((sum, [start, end]) => sum + end - start + 1, 0);
    return manifest.size === size && claimed === size;
  } catch {
    return false;
  }
}

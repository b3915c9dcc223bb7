import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { makeContent, sha256 } from "../support/content.js";
import { startRangeServer } from "../support/range-server.js";
import { until } from "../support/until.js";
import { spawnDownload, type ChildDownload, type ChildKind } from "./child.js";
import { brokenPromises, leftovers } from "./disk-state.js";
import { Random, deriveSeed } from "./random.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** The engine's checkpoint period (download.ts): bytes older than this are in the manifest. */
export const CHECKPOINT_WINDOW_MS = 1000;

export interface KillLoopOptions {
  kills: number;
  seed: number;
  /** A fresh directory the loop may fill. */
  dir: string;
  connections?: number;
  /** The server paces each response to this rate, so this is the per-connection rate. */
  bytesPerSecond?: number;
  size?: number;
  minSplit?: number;
}

export interface KillLoopReport {
  seed: number;
  kills: number;
  /** Killed before the child had sent a request: lock, manifest, startup. */
  killsBeforeFirstRequest: number;
  /** Killed after the child had sent a request: these may lose unsaved bytes. */
  killsInTransfer: number;
  runs: number;
  /** Files completed: a round ends when a run finishes, and starts over with new content. */
  rounds: number;
  fileBytes: number;
  bytesServed: number;
  /** Bytes served beyond the sizes of the files completed. */
  refetched: number;
  /** The most `refetched` may be: see `refetchAllowancePerKill`. */
  refetchBound: number;
  /** Broken promises, each with enough context to replay it. */
  failures: string[];
}

/**
 * What one SIGKILL may cost each connection: the bytes since the last checkpoint.
 * The engine checkpoints every second, after flushing each connection's gathered
 * bytes, so that is one window at the connection's rate. On top of that:
 * - half a window for the checkpoint itself and the timer running late on a loaded
 *   machine: the snapshot is taken before the fsyncs and the manifest rename, so
 *   bytes arriving while a save runs, or while the 250 ms tick waits for the event
 *   loop, are not in it;
 * - 64 KiB of bytes the server counts as sent that the child never wrote: the
 *   server's 16 KiB pacing slices sitting in socket buffers when the child dies,
 *   and the tail a steal cuts off a range whose request is still streaming.
 */
export function refetchAllowancePerKill(connections: number, bytesPerSecond: number): number {
  return connections * (bytesPerSecond * ((1.5 * CHECKPOINT_WINDOW_MS) / 1000) + 64 * KiB);
}

/**
 * Downloads against a throttled server in child processes (the CLI or the library,
 * at random), SIGKILLed at random moments and resumed, until `kills` kills have
 * happened; then one last run finishes. After every kill the disk must keep the
 * promises (see brokenPromises); every finished file must be exact and tidy.
 */
export async function runKillLoop(options: KillLoopOptions): Promise<KillLoopReport> {
  const connections = options.connections ?? 4;
  const rate = options.bytesPerSecond ?? 256 * KiB;
  const size = options.size ?? 6 * MiB;
  const minSplit = options.minSplit ?? 256 * KiB;
  const random = new Random(deriveSeed(options.seed, "kill-loop"));
  const report: KillLoopReport = {
    seed: options.seed,
    kills: 0,
    killsBeforeFirstRequest: 0,
    killsInTransfer: 0,
    runs: 0,
    rounds: 0,
    fileBytes: 0,
    bytesServed: 0,
    refetched: 0,
    refetchBound: 0,
    failures: [],
  };
  let content = makeContent(size, deriveSeed(options.seed, "kill-loop-content", 0));
  const server = await startRangeServer({ content, bytesPerSecond: rate });
  const output = join(options.dir, "killed.bin");
  let roundServedFrom = 0;
  const fail = (what: string) => report.failures.push(`kill loop (seed ${options.seed}, run ${report.runs}, kill ${report.kills}): ${what}`);

  const endRound = async (how: string): Promise<void> => {
    const bytes = await readFile(output).catch(() => undefined);
    if (bytes === undefined || !bytes.equals(content)) {
      fail(`${how}: the output is ${bytes === undefined ? "missing" : `${bytes.length} bytes, sha256 ${sha256(bytes).slice(0, 16)}`}, not the file`);
    }
    const left = leftovers(output);
    if (left.length > 0 && how === "finished") fail(`finished but left ${left.join(", ")}`);
    const served = server.bytesServed() - roundServedFrom;
    report.fileBytes += content.length;
    report.refetched += served - content.length;
    report.rounds += 1;
    roundServedFrom = server.bytesServed();
    content = makeContent(size, deriveSeed(options.seed, "kill-loop-content", report.rounds));
    server.setContent(content);
    await rm(output, { force: true });
    for (const path of left) await rm(path, { force: true });
  };

  try {
    while (report.kills < options.kills && report.failures.length < 3) {
      const kind: ChildKind = random.chance(0.5) ? "cli" : "library";
      const requestsBefore = server.requests.length;
      const run = spawnDownload({ kind, url: server.url(), output, connections, minSplit, timeoutSeconds: 20 });
      report.runs += 1;
      // Every seventh run, and a few more at random, dies while starting up.
      if (report.runs % 7 === 3 || random.chance(0.05)) {
        // Startup: taking the lock, reading the manifest, opening the .part.
        await raceExit(run, random.int(0, 250));
      } else {
        await until(() => server.requests.length > requestsBefore || run.done, "the child's first request or its exit", 30_000);
        await raceExit(run, random.int(0, 2000));
      }
      const inTransfer = server.requests.length > requestsBefore;
      if (!run.done) {
        run.child.kill("SIGKILL");
        report.kills += 1;
        if (inTransfer) report.killsInTransfer += 1;
        else report.killsBeforeFirstRequest += 1;
      }
      const exit = await run.exited;
      if (exit.signal === "SIGKILL") {
        for (const broken of await brokenPromises(output, [content])) fail(`after SIGKILL (${kind}): ${broken}`);
      } else if (exit.code === 0) {
        await endRound("finished");
      } else if (exit.code === 6 && existsSync(output) && !existsSync(`${output}.part.json`)) {
        // The previous kill landed after the manifest was removed: the file is done.
        await endRound("already complete");
      } else {
        fail(`${kind} run exited with code ${exit.code}: ${exit.stderr.slice(0, 500)}`);
      }
    }

    // The last run, unkilled and faster, to finish the file the kills left.
    server.bytesPerSecond = rate * 8;
    const last = spawnDownload({ kind: "cli", url: server.url(), output, connections, minSplit, timeoutSeconds: 20 });
    report.runs += 1;
    await raceExit(last, 120_000);
    if (!last.done) {
      last.child.kill("SIGKILL");
      fail("the last run did not finish within 120 s");
    }
    const exit = await last.exited;
    if (exit.code === 0) await endRound("finished");
    else if (exit.code === 6 && existsSync(output) && !existsSync(`${output}.part.json`)) await endRound("already complete");
    else fail(`the last run exited with code ${exit.code} (signal ${exit.signal}): ${exit.stderr.slice(0, 500)}`);
  } finally {
    report.bytesServed = server.bytesServed();
    await server.close();
  }
  report.refetchBound = report.killsInTransfer * refetchAllowancePerKill(connections, rate);
  if (report.refetched > report.refetchBound) {
    fail(`re-fetched ${report.refetched} bytes over ${report.killsInTransfer} kills in transfer, more than the bound ${report.refetchBound}`);
  }
  return report;
}

async function raceExit(run: ChildDownload, ms: number): Promise<void> {
  const timer = new AbortController();
  await Promise.race([sleep(ms, undefined, { signal: timer.signal }).catch(() => {}), run.exited]);
  timer.abort();
}


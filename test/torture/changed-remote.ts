import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { download, type DownloadResult } from "../../src/index.js";
import { makeContent } from "../support/content.js";
import { startRangeServer } from "../support/range-server.js";
import { brokenPromises, describeMix, leftovers } from "./disk-state.js";
import { Random, deriveSeed } from "./random.js";
import { startResetProxy } from "./reset-proxy.js";

const KiB = 1024;
const MiB = 1024 * KiB;

export interface ChangeVariant {
  /** The new version's size against the old one's. */
  size: "same" | "larger" | "smaller";
  /** After the change, responses already streaming go on with old bytes, or every connection is reset. */
  inFlight: "continue" | "reset";
  /** How the server identifies versions: If-Range carries the ETag, or the date. */
  validators: "strong-etag" | "last-modified-only";
}

/** The first iterations cover these; later ones are drawn at random. */
const COVERED: ChangeVariant[] = [
  { size: "same", inFlight: "continue", validators: "strong-etag" },
  { size: "larger", inFlight: "reset", validators: "strong-etag" },
  { size: "same", inFlight: "reset", validators: "last-modified-only" },
  { size: "smaller", inFlight: "continue", validators: "last-modified-only" },
];

export interface ChangedRemoteOptions {
  iterations: number;
  seed: number;
  dir: string;
}

export interface ChangedRemoteReport {
  seed: number;
  iterations: number;
  /** Downloads that ended with the new version (restarted), or the whole old one. */
  endedNew: number;
  endedOld: number;
  failures: string[];
}

/**
 * The remote file is replaced while the workers are mid-flight (same size with other
 * bytes, or another size). The result is one whole version, never a mix; when the
 * connections were reset at the change, it must be the new one, and saying so.
 */
export async function runChangedRemote(options: ChangedRemoteOptions): Promise<ChangedRemoteReport> {
  const random = new Random(deriveSeed(options.seed, "changed-remote"));
  const report: ChangedRemoteReport = { seed: options.seed, iterations: options.iterations, endedNew: 0, endedOld: 0, failures: [] };
  for (let iteration = 0; iteration < options.iterations; iteration++) {
    const variant: ChangeVariant = COVERED[iteration] ?? {
      size: random.pick(["same", "larger", "smaller"]),
      inFlight: random.pick(["continue", "reset"]),
      validators: random.pick(["strong-etag", "last-modified-only"]),
    };
    await changeOnce(iteration, variant, random, options, report);
  }
  return report;
}

async function changeOnce(
  iteration: number,
  variant: ChangeVariant,
  random: Random,
  options: ChangedRemoteOptions,
  report: ChangedRemoteReport,
): Promise<void> {
  const oldSize = random.int(1 * MiB, 2 * MiB);
  const delta = random.int(1, 256 * KiB);
  const newSize = variant.size === "same" ? oldSize : variant.size === "larger" ? oldSize + delta : oldSize - delta;
  const oldContent = makeContent(oldSize, deriveSeed(options.seed, "changed-remote-old", iteration));
  const newContent = makeContent(newSize, deriveSeed(options.seed, "changed-remote-new", iteration));
  const changeAt = Math.floor(oldSize * (0.15 + random.float() * 0.45));
  let speedUp = 1;
  const server = await startRangeServer({
    content: oldContent,
    etag: variant.validators === "strong-etag" ? undefined : null,
    // Uneven paces finish ranges at different times, so steals ask for more mid-flight.
    onRequest: () => ({ bytesPerSecond: speedUp * random.int(128, 512) * KiB }),
  });
  const proxy = await startResetProxy({ targetPort: server.port });
  const output = join(options.dir, `changed-${iteration}.bin`);
  const fail = (what: string) =>
    report.failures.push(
      `changed remote (seed ${options.seed}, iteration ${iteration}, ${JSON.stringify(variant)}, ${oldSize} -> ${newSize} bytes after ${changeAt}): ${what}`,
    );
  try {
    const controller = new AbortController();
    const deadline = setTimeout(() => controller.abort(), 60_000);
    const running = download(proxy.url(), {
      output,
      connections: 3,
      minSplit: 64 * KiB,
      timeout: 10,
      signal: controller.signal,
      onWarning() {},
    }).then(
      (result): { result: DownloadResult } => ({ result }),
      (error: unknown) => ({ error }),
    );
    let finished = false;
    void running.then(() => (finished = true));
    while (!finished && server.bytesServed() < changeAt) await sleep(5);
    if (!finished) {
      server.setContent(newContent, variant.validators === "strong-etag" ? {} : { etag: null });
      speedUp = 4;
      if (variant.inFlight === "reset") proxy.resetAll();
    }
    const outcome = await running;
    clearTimeout(deadline);
    if ("error" in outcome) {
      fail(`failed: ${outcome.error instanceof Error ? outcome.error.message : String(outcome.error)}`);
      return;
    }
    const bytes = await readFile(output).catch(() => undefined);
    if (bytes?.equals(newContent)) {
      report.endedNew += 1;
      if (!outcome.result.restartedBecauseChanged) fail("ended with the new version without saying it restarted");
    } else if (bytes?.equals(oldContent)) {
      report.endedOld += 1;
      if (variant.inFlight === "reset") fail("every connection was reset after the change, yet it finished the old version");
      if (outcome.result.restartedBecauseChanged) fail("said it restarted, yet finished the old version");
    } else {
      fail(`the output is no whole version: ${bytes === undefined ? "missing" : describeMix(bytes, [oldContent, newContent])}`);
    }
    for (const broken of await brokenPromises(output, [oldContent, newContent])) fail(broken);
    const left = leftovers(output);
    if (left.length > 0) fail(`finished but left ${left.join(", ")}`);
  } finally {
    await proxy.close();
    await server.close();
    for (const suffix of ["", ".part", ".part.json", ".part.json.tmp", ".part.lock"]) await rm(`${output}${suffix}`, { force: true });
  }
}

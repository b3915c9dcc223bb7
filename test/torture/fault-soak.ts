import { existsSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import pLimit from "p-limit";
import { download, exitCodeForErrorCode, RangegetError, type DownloadResult } from "../../src/index.js";
import { makeContent, sha256 } from "../support/content.js";
import { defaultEtag, startRangeServer, type Behaviour, type RecordedRequest } from "../support/range-server.js";
import { brokenPromises, leftovers } from "./disk-state.js";
import { Random, deriveSeed } from "./random.js";
import { startResetProxy } from "./reset-proxy.js";

const KiB = 1024;
const MiB = 1024 * KiB;

export const FAULT_KINDS = [
  "reset",
  "short-body",
  "stall-body",
  "stall-headers",
  "503",
  "429",
  "wrong-content-range",
  "extra-bytes",
  "200-to-range",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** The failures a download under these faults may end with: exit codes 3, 4 and 5 of README. */
const DOCUMENTED_EXIT_CODES = new Set([3, 4, 5]);

export interface FaultSoakOptions {
  downloads: number;
  seed: number;
  dir: string;
  /** Downloads at once (each has its own server). */
  concurrency?: number;
  /** A download still running after this long has hung. */
  deadlineMs?: number;
  /** The chance that one request meets a fault (resets are per connection). */
  faultRate?: number;
}

export interface FaultSoakReport {
  seed: number;
  downloads: number;
  succeeded: number;
  /** Failed downloads by error code. */
  failedByCode: Record<string, number>;
  /** Failed downloads that a fault-free re-run then finished byte-exact. */
  finishedOnRerun: number;
  faults: Record<FaultKind, number>;
  requests: number;
  bytesServed: number;
  slowestMs: number;
  failures: string[];
}

/**
 * Downloads against servers that, at random (seeded), reset connections, close
 * early, stall, answer 503/429 with Retry-After, send wrong Content-Ranges, send
 * more bytes than asked, or answer a ranged request with the whole file. Every
 * download must end byte-exact or with a documented error (keeping state a fault-free
 * re-run finishes), and none may outlive its deadline.
 */
export async function runFaultSoak(options: FaultSoakOptions): Promise<FaultSoakReport> {
  const report: FaultSoakReport = {
    seed: options.seed,
    downloads: options.downloads,
    succeeded: 0,
    failedByCode: {},
    finishedOnRerun: 0,
    faults: Object.fromEntries(FAULT_KINDS.map((kind) => [kind, 0])) as Record<FaultKind, number>,
    requests: 0,
    bytesServed: 0,
    slowestMs: 0,
    failures: [],
  };
  const limit = pLimit(options.concurrency ?? 6);
  await Promise.all(
    Array.from({ length: options.downloads }, (_, index) => limit(() => soakOne(index, options, report))),
  );
  return report;
}

interface Plan {
  size: number;
  connections: number;
  minSplit: number;
  retries: number;
  validators: "strong-etag" | "last-modified-only" | "weak-etag";
}

function planDownload(random: Random): Plan {
  const sizeClass = random.int(0, 9);
  const size =
    sizeClass === 0 ? random.pick([0, 1, 2]) : sizeClass <= 2 ? random.int(3, 64 * KiB) : random.int(64 * KiB, 3 * MiB);
  return {
    size,
    connections: random.pick([1, 2, 3, 4, 8]),
    minSplit: random.pick([16 * KiB, 64 * KiB, 256 * KiB]),
    retries: random.pick([3, 5, 5, 8]),
    validators: random.pick(["strong-etag", "strong-etag", "strong-etag", "last-modified-only", "weak-etag"]),
  };
}

const WEIGHTED_KINDS: [Exclude<FaultKind, "reset">, number][] = [
  ["short-body", 2],
  ["stall-body", 1],
  ["stall-headers", 1],
  ["503", 1],
  ["429", 1],
  ["wrong-content-range", 1.5],
  ["extra-bytes", 1],
  ["200-to-range", 0.5],
];

function pickKind(random: Random): Exclude<FaultKind, "reset"> {
  const total = WEIGHTED_KINDS.reduce((sum, [, weight]) => sum + weight, 0);
  let draw = random.float() * total;
  for (const [kind, weight] of WEIGHTED_KINDS) {
    draw -= weight;
    if (draw < 0) return kind;
  }
  return "short-body";
}

/** The behaviour that injects `kind` into the answer to `request`. */
function faultBehaviour(kind: Exclude<FaultKind, "reset">, request: RecordedRequest, size: number, random: Random): Behaviour {
  const start = Math.max(0, request.range?.start ?? 0);
  const end = Math.min(request.range?.end ?? size - 1, size - 1);
  const length = Math.max(0, end - start + 1);
  switch (kind) {
    case "short-body":
      return { dropAfterBytes: random.int(0, Math.max(0, length - 1)) };
    case "stall-body":
      return { stallAfterBytes: random.int(0, Math.max(0, length - 1)) };
    case "stall-headers":
      return { stallBeforeHeaders: true };
    case "503":
    case "429":
      return {
        status: Number(kind),
        retryAfter: random.pick(["0", "1", new Date(Date.now() + 1000).toUTCString()]),
      };
    case "wrong-content-range": {
      const variants = [
        end + 1 < size ? `bytes ${start + 1}-${end + 1}/${size}` : `bytes 0-${Math.max(0, end - 1)}/${size}`,
        `bytes ${start}-${end + 1}/${size + 1}`,
        `bytes ${start}-${Math.max(start, end - 1)}/${size}`,
        "bytes garbage",
        `bytes */${size}`,
      ];
      return { contentRange: random.pick(variants) };
    }
    case "extra-bytes":
      return { extraBytes: random.int(1, 64 * KiB) };
    case "200-to-range":
      return { ignoreRange: true };
  }
}

async function soakOne(index: number, options: FaultSoakOptions, report: FaultSoakReport): Promise<void> {
  const random = new Random(deriveSeed(options.seed, "fault-soak", index));
  const plan = planDownload(random);
  const faultRate = options.faultRate ?? 0.25;
  const content = makeContent(plan.size, deriveSeed(options.seed, "fault-soak-content", index));
  let faulty = true;
  const server = await startRangeServer({
    content,
    etag: plan.validators === "strong-etag" ? undefined : plan.validators === "weak-etag" ? `W/${defaultEtag(content)}` : null,
    onRequest: (request) => {
      if (!faulty || !random.chance(faultRate)) return undefined;
      const kind = pickKind(random);
      report.faults[kind] += 1;
      return faultBehaviour(kind, request, plan.size, random);
    },
  });
  const proxy = await startResetProxy({
    targetPort: server.port,
    resetAfter: () => (faulty && random.chance(faultRate / 2) ? random.int(0, 256 * KiB) : undefined),
  });
  const output = join(options.dir, `soak-${index}.bin`);
  const context = `fault soak (seed ${options.seed}, download ${index}, ${JSON.stringify(plan)})`;
  const fail = (what: string) => report.failures.push(`${context}: ${what}`);
  const deadlineMs = options.deadlineMs ?? 60_000;
  try {
    const startedAt = performance.now();
    const first = await boundedDownload(proxy.url(), output, plan, deadlineMs);
    report.slowestMs = Math.max(report.slowestMs, Math.round(performance.now() - startedAt));
    if (first.hung) {
      fail(`still running after ${deadlineMs} ms: ${first.hung}`);
      return;
    }
    if (first.result) {
      report.succeeded += 1;
      await expectExact(output, content, first.result, fail);
      return;
    }
    const error = first.error;
    if (!(error instanceof RangegetError)) {
      fail(`failed with something other than a rangeget error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
      return;
    }
    report.failedByCode[error.code] = (report.failedByCode[error.code] ?? 0) + 1;
    if (!DOCUMENTED_EXIT_CODES.has(error.exitCode) || exitCodeForErrorCode(error.code) !== error.exitCode) {
      fail(`failed with ${error.code} (exit ${error.exitCode}), not a documented network, HTTP or integrity failure: ${error.message}`);
    }
    if (existsSync(output)) fail(`failed with ${error.code}, yet ${output} exists`);
    for (const broken of await brokenPromises(output, [content])) fail(`after failing with ${error.code}: ${broken}`);

    // The state it kept must be good for a re-run against a healthy server.
    faulty = false;
    const rerun = await boundedDownload(proxy.url(), output, plan, deadlineMs);
    if (rerun.result) {
      report.finishedOnRerun += 1;
      await expectExact(output, content, rerun.result, fail);
    } else {
      const detail = rerun.hung ?? (rerun.error instanceof Error ? rerun.error.message : String(rerun.error));
      fail(`after failing with ${error.code}, a re-run against a healthy server did not finish: ${detail}`);
    }
  } finally {
    report.requests += server.requests.length;
    report.bytesServed += server.bytesServed();
    report.faults.reset += proxy.resets;
    await proxy.close();
    await server.close();
    for (const suffix of ["", ".part", ".part.json", ".part.json.tmp", ".part.lock"]) await rm(`${output}${suffix}`, { force: true });
  }
}

async function expectExact(output: string, content: Buffer, result: DownloadResult, fail: (what: string) => void): Promise<void> {
  const bytes = await readFile(output).catch(() => undefined);
  if (bytes === undefined || !bytes.equals(content)) {
    fail(`"${result.status}" but the output is ${bytes === undefined ? "missing" : `${bytes.length} bytes, sha256 ${sha256(bytes).slice(0, 16)}`}, not the ${content.length}-byte file`);
  }
  if (result.size !== content.length) fail(`result.size is ${result.size}, not ${content.length}`);
  const left = leftovers(output);
  if (left.length > 0) fail(`finished but left ${left.join(", ")}`);
}

/** One download with a deadline: a result, an error, or a note that it hung. */
async function boundedDownload(
  url: string,
  output: string,
  plan: Plan,
  deadlineMs: number,
): Promise<{ result?: DownloadResult; error?: unknown; hung?: string }> {
  const controller = new AbortController();
  let hung: string | undefined;
  const deadline = setTimeout(() => {
    hung = "aborted at the deadline";
    controller.abort();
  }, deadlineMs);
  let stuck: NodeJS.Timeout | undefined;
  // If even the abort does not end it, stop waiting: that is a hang too.
  const neverEnds = new Promise<"stuck">((resolve) => {
    stuck = setTimeout(() => resolve("stuck"), deadlineMs + 15_000);
  });
  try {
    const outcome = await Promise.race([
      download(url, {
        output,
        connections: plan.connections,
        minSplit: plan.minSplit,
        retries: plan.retries,
        timeout: 1,
        signal: controller.signal,
        onWarning() {},
      }).then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      ),
      neverEnds,
    ]);
    if (outcome === "stuck") return { hung: "did not stop within 15 s of being aborted" };
    if (hung !== undefined) return { hung };
    return outcome;
  } finally {
    clearTimeout(deadline);
    clearTimeout(stuck);
  }
}

/**
 * The parallel path: the probe's answer becomes the first connection's first range,
 * the planner splits what is missing over `connections` workers, and the ticker
 * rescues stragglers and reports progress until every byte is written. Where the bytes
 * go (the `.part` file, an ordered stream) is the job's `sink`; this module does not
 * know which.
 */
import { setMaxListeners } from "node:events";
import { ifRangeValue, parseContentRange, parseUnsatisfiedRange } from "./http-headers.js";
import { discard, shownUrl, type RequestContext } from "./http.js";
import type { Settings } from "./options.js";
import { probe, type ProbeAnswer } from "./probe.js";
import { IntervalSet, RangePlanner, type Interval, type PlannerOptions } from "./ranges.js";
import { RateSampler } from "./rates.js";
import type { Consumer } from "./sink.js";
import type { HttpStatsRecorder } from "./stats.js";
import { findStragglers, pickHedge } from "./tail.js";
import { startTicker, type TransferCounters } from "./ticker.js";
import type { SizeProof } from "./verdict.js";
import type { Source } from "./sources.js";
import { IdleConnections, runWorker, type TransferContext, type WorkerStop } from "./worker.js";

/**
 * How a parallel transfer ended when it did not throw: complete, or stopped by what an
 * answer said (worker.ts `WorkerStop`: the remote file changed, or the server does not
 * answer ranges usably); next-step.ts says what follows.
 */
export type TransferOutcome = { kind: "complete" } | WorkerStop;

export interface RangedJob {
  settings: Settings;
  http: RequestContext;
  stats: HttpStatsRecorder;
  /** What progress events name: the output path, `-` for stdout, the extract directory. */
  label: string;
  /** The probe's answer, whose body is the first range. */
  answer: ProbeAnswer;
  /** Where that body meets the file (from its verdict). */
  placement: { skip: number; start: number; end: number };
  /** Told every size an answer proves, to be weighed before the file is published. */
  proven: (proof: SizeProof) => void;
  size: number;
  /** The bytes still to fetch (the probe's range among them). */
  missing: readonly Interval[];
  /** The planner's range sizes: none smaller than `minSplit` (but the last), none larger than `maxRange`. */
  split: { minSplit: number; maxRange?: number };
  /** Where the bytes go. */
  sink: Consumer;
  counters: TransferCounters;
  /** The caller's abort: every connection stops, and the transfer rejects with its reason. */
  signal: AbortSignal;
}

/**
 * Fetches every byte of `job.missing` into `job.sink`. Resolves when all are written
 * and the sink ended them `complete`, or with the first connection's stop (`changed`,
 * `ranges-ignored`: the sink was ended `dropped`). Failures are thrown after the sink
 * was ended `kept` (a file
 * saves a last checkpoint, so a re-run resumes).
 */
export async function transferRanges(job: RangedJob): Promise<TransferOutcome> {
  const { settings, answer, placement, size, sink, counters } = job;
  // The transfer's own: aborted by the first failure or stop, stopping every connection.
  const abort = new AbortController();
  const onAbort = () => abort.abort(job.signal.reason);
  if (job.signal.aborted) onAbort();
  job.signal.addEventListener("abort", onAbort, { once: true });
  const probeRange = placement;
  // Every connection listens to it (its request, its backoff): more than the default 10.
  setMaxListeners(0, abort.signal);
  const planner = new RangePlanner(
    withoutRange(IntervalSet.from(job.missing), probeRange.start, probeRange.end),
    settings.connections,
    job.split.minSplit,
    plannerOptions(job, settings),
  );
  planner.limit = sink.limit ?? Number.POSITIVE_INFINITY;
  const probeAssignment = planner.adopt(probeRange.start, probeRange.end);
  const rates = new RateSampler();
  const slowChecks = new Map<number, number>();
  const interrupts = new Map<number, AbortController>();
  // Called as a method: a clock that is a class instance (the tests' fake one) needs its `this`.
  const idle = new IdleConnections((ms, signal) => settings.clock.sleep(ms, signal));
  sink.onRoom?.(() => {
    planner.limit = sink.limit ?? Number.POSITIVE_INFINITY;
    idle.notify();
  });
  // Mirrors join as they answer (below).
  const sources = [primarySource(answer, settings.url, settings.clock.wall())];
  const context: TransferContext = {
    http: job.http,
    sources,
    size,
    retries: settings.retries,
    sink,
    planner,
    signal: abort.signal,
    rateLimiter: settings.rateLimiter,
    proven: job.proven,
    counters,
    answers: { ranged: 0 },
    interrupts,
    idle,
    rates,
    pickHedge: () => {
      if (settings.noHedge) return undefined;
      const hedge = pickHedge(planner, rates, settings.clock.now());
      if (hedge) job.stats.hedged();
      if (hedge) settings.events.hedge(hedge.start, hedge.end);
      return hedge;
    },
    warn: settings.warn,
  };
  const stopTicking = startTicker({
    clock: settings.clock,
    intervals: settings.intervals,
    rates,
    counters,
    path: job.label,
    size,
    inFlight: () => planner.inFlight,
    onProgress: settings.onProgress,
    everyCheckpoint: async () => {
      // A rescue cuts the slow answer short: not with noHedge.
      const stragglers = settings.noHedge ? [] : findStragglers(planner.inFlight, rates, slowChecks);
      for (const straggler of stragglers) {
        settings.events.rescue(straggler.next, straggler.end);
        planner.rescue(straggler);
        interrupts.get(straggler.id)?.abort();
        job.stats.rescued();
        idle.notify();
      }
      await sink.checkpoint?.();
    },
  });
  const first = { response: answer.response, skip: placement.skip, end: placement.end };
  // Mirrors are probed while worker 0 reads the probe's body (which holds its host
  // connection): a slow mirror holds up no range of the URL's, and a mirror on the
  // same host never waits for a connection only that body can give back. Those still
  // unanswered when the URL's own workers are done are of no more use.
  const stopProbing = new AbortController();
  const probeSignal = AbortSignal.any([abort.signal, stopProbing.signal]);
  const mirrors = settings.mirrors.map((url) =>
    probeMirror(job, url, probeSignal).then((mirror) => {
      if (mirror) sources.push(mirror);
      return mirror;
    }),
  );
  const started = [runWorker(context, 0, { assignment: probeAssignment, body: first })];
  const waiting: Promise<WorkerStop | undefined>[] = [];
  // One connection per range, plus one spare to steal or hedge; no more than asked.
  // Connections are dealt over the copies in turn; one dealt to a mirror starts once
  // that mirror answered, on the URL if it was refused.
  const connections = Math.min(settings.connections, planner.unassigned.length + 2);
  settings.events.start(job.label, size, connections);
  for (let index = 1; index < connections; index++) {
    const mirror = mirrors[(index % (mirrors.length + 1)) - 1];
    if (mirror === undefined) started.push(runWorker(context, index));
    else waiting.push(mirror.then((source) => runWorker(context, source ? sources.indexOf(source) : 0)));
  }
  void Promise.allSettled(started).then(() => stopProbing.abort());
  const end = await firstEnd([...started, ...waiting], mirrors, abort);
  job.signal.removeEventListener("abort", onAbort);
  stopTicking();
  if (end.failure !== undefined) {
    await sink.end?.("kept");
    throw end.failure;
  }
  if (end.stop !== undefined) {
    await sink.end?.("dropped");
    return end.stop;
  }
  await sink.end?.("complete");
  return { kind: "complete" };
}

/** The copy `answer` came from; `nowMs` is wall time, for its If-Range date (`ifRangeValue`). */
function primarySource(answer: ProbeAnswer, requestedUrl: string, nowMs: number): Source {
  return {
    url: answer.finalUrl,
    requestedUrl,
    origin: new URL(answer.finalUrl).origin,
    etag: answer.etag,
    lastModified: answer.lastModified,
    ifRange: ifRangeValue(answer, nowMs),
    primary: true,
    failed: false,
  };
}

/**
 * A mirror is probed with a one-byte range judged against the size alone (mirrors
 * rarely share validators). One whose size differs is a different file: refused with
 * a warning, as is one that does not serve ranges or does not answer. Resolves with
 * the mirror as a source, or `undefined` when refused or when `signal` aborted (the
 * transfer is over, or failed for its own reason).
 */
async function probeMirror(job: RangedJob, url: string, signal: AbortSignal): Promise<Source | undefined> {
  const known = { size: job.size, etag: null, lastModified: null, bytesDone: 0 };
  const { warn } = job.settings;
  const shown = shownUrl(job.http, url);
  try {
    const answer = await probe(job.http, { url, range: { start: 0, end: 0 }, known, retries: 1 }, signal);
    await discard(answer.response);
    const { verdict } = answer;
    if (verdict.kind === "bytes") return signal.aborted ? undefined : { ...primarySource(answer, url, job.http.clock.wall()), primary: false };
    warn(
      verdict.kind === "changed"
        ? `ignoring mirror ${shown}: ${anotherFile(answer, job.size, verdict.reason)}`
        : `ignoring mirror ${shown}: it does not serve ranges (${answer.response.status})`,
    );
  } catch (error) {
    if (!signal.aborted) warn(`ignoring mirror ${shown}: ${error instanceof Error ? error.message : String(error)}`);
  }
  return undefined;
}

/** Why a mirror's answer is of another file, said of the mirror: its size beside the file's when it named one. */
function anotherFile(answer: ProbeAnswer, size: number, reason: string): string {
  const header = answer.response.headers["content-range"];
  const total = parseContentRange(header)?.size ?? parseUnsatisfiedRange(header);
  return total !== undefined && total !== size ? `the mirror has ${total} bytes, the file has ${size}` : `it is not the same file (${reason})`;
}

/** Why the transfer's connections were stopped before the end, when they were. */
const STOPPED = new Error("the transfer stopped: an answer said it cannot go on");

/**
 * Runs the workers (and the mirrors' probes) to the end; the first failure or stop
 * stops the rest (their own errors, caused by that, are noise). Resolves with that
 * failure (or the caller's abort reason), or that stop, or neither when every byte is in.
 */
async function firstEnd(workers: Promise<WorkerStop | undefined>[], probes: Promise<unknown>[], abort: AbortController): Promise<{ failure?: unknown; stop?: WorkerStop }> {
  const end: { failure?: unknown; stop?: WorkerStop } = {};
  const failed = (error: unknown) => {
    if (!abort.signal.aborted) {
      end.failure = error;
      abort.abort(error);
    } else if (end.failure === undefined && end.stop === undefined) {
      end.failure = abort.signal.reason ?? error;
    }
  };
  const stopped = (stop: WorkerStop | undefined) => {
    if (stop === undefined || abort.signal.aborted) return;
    end.stop = stop;
    abort.abort(STOPPED);
  };
  await Promise.all([...workers.map((worker) => worker.then(stopped, failed)), ...probes.map((probe) => probe.catch(failed))]);
  return end;
}

/**
 * The planner's limits: the job's own (an ordered stream's window, a volume without
 * sparse files), and with `noHedge` no steals and ranges small enough (a quarter of a
 * connection's share, at least `minSplit`) that idle connections find queued work
 * instead of splitting a range in flight.
 */
function plannerOptions(job: RangedJob, settings: Settings): PlannerOptions {
  if (!settings.noHedge) return job.split.maxRange === undefined ? {} : { maxRange: job.split.maxRange };
  const piece = Math.max(job.split.minSplit, Math.ceil(job.size / (4 * settings.connections)));
  return { maxRange: Math.min(piece, job.split.maxRange ?? piece), noSteal: true };
}

function withoutRange(set: IntervalSet, start: number, end: number): Interval[] {
  const result = new IntervalSet();
  for (const [a, b] of set.toArray()) {
    if (a < start) result.add(a, Math.min(b, start - 1));
    if (b > end) result.add(Math.max(a, end + 1), b);
  }
  return result.toArray();
}

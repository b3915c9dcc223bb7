/**
 * One connection of a parallel transfer: it takes a range from the planner (or steals,
 * or hedges), asks for it, has each answer judged by the verdict, writes what the
 * answer proves through the sink, and retries from its last byte, until no byte is left.
 * Longer than most modules because a range's whole life (its requests, its retries,
 * host limits, a signed URL's refresh, the hedge race) is one loop that reads best whole.
 */
import { changedDuringDownload, dropMirror, pickSource, refreshSource, signedUrlExpired, type GivenBody, type Source } from "./sources.js";
import { HostLimitRefusal, NetworkError, RangegetError, type IntegrityError } from "./errors.js";
import type { HeldConnection } from "./host-lease.js";
import { ifRangeAfterUseless } from "./http-headers.js";
import { shownUrl, STOP, type RequestContext } from "./http.js";
import { askedOf, request, type Ask } from "./request.js";
import { WAKE_UP } from "./clock.js";
import type { Assignment, RangePlanner } from "./ranges.js";
import type { RateLimiter } from "./rate-limit.js";
import type { RateSampler } from "./rates.js";
import { retried, traced } from "./events.js";
import { withRetries, type RetryNotice } from "./retry.js";
import type { Consumer, RangeWriter } from "./sink.js";
import { serverFault, toNetworkError } from "./to-error.js";
import { bodyPlacement, judge, sizeProofOf, type Asked, type Known, type SizeProof } from "./verdict.js";

/** How often an idle connection looks again for a range to hedge while others run. */
const IDLE_POLL_MS = 200;

/**
 * Why a connection stopped before the file was done, when nothing failed: the verdict
 * on an answer says the transfer cannot go on as it is. A value the transfer acts on,
 * not an error: it is never retried.
 * - `changed`: the URL's own copy of the file changed (a new validator or size); the
 *   bytes on disk are of a version that is gone. `reason` is a sentence naming the URL.
 * - `ranges-ignored`: the server does not answer ranges usably (it ignores every range
 *   but the probe's, or answers them as multipart or as a slice in a 200): the file is
 *   to come as one plain stream.
 */
export type WorkerStop = { kind: "changed"; reason: string } | { kind: "ranges-ignored"; reason: string };

/**
 * Where idle connections wait: woken at once when a range is released or rescued
 * (new work, or the end), else after a poll interval (a range may have slowed down
 * enough to hedge).
 */
export class IdleConnections {
  readonly #waiting = new Set<() => void>();
  readonly #sleep: RequestContext["clock"]["sleep"];

  constructor(sleep: RequestContext["clock"]["sleep"]) {
    this.#sleep = sleep;
  }

  async wait(ms: number, signal: AbortSignal): Promise<void> {
    const woken = new AbortController();
    const wake = () => woken.abort(WAKE_UP);
    this.#waiting.add(wake);
    try {
      await this.#sleep(ms, AbortSignal.any([signal, woken.signal]));
    } catch (error) {
      // Woken early or aborted: either way the caller looks at the plan again. Anything
      // else is a bug (a clock's sleep that throws) that would otherwise spin here.
      if (error !== WAKE_UP && !signal.aborted) throw error;
    } finally {
      this.#waiting.delete(wake);
    }
  }

  notify(): void {
    for (const wake of [...this.#waiting]) wake();
  }
}

/** What every connection of one download shares. */
export interface TransferContext {
  http: RequestContext;
  sources: Source[];
  size: number;
  retries: number;
  /** Where the bytes go (the `.part` file, an ordered stream): each range gets a writer from it. */
  sink: Consumer;
  planner: RangePlanner;
  signal: AbortSignal;
  rateLimiter: RateLimiter | undefined;
  /** Told every size an answer proves, to be weighed before the file is published. */
  proven: (proof: SizeProof) => void;
  counters: { bytesTransferred: number; bytesAccepted: number; activeConnections: number };
  /** Answers to the workers' ranges that were ranges (206): while none was, a server ignoring `Range` is not a passing fault. */
  answers: { ranged: number };
  /** Per in-flight assignment id: aborts just that range's request (rescue, lost race). */
  interrupts: Map<number, AbortController>;
  idle: IdleConnections;
  /** Endgame: a hedge of the slowest range for an idle connection, if one is worth it. */
  pickHedge: () => Assignment | undefined;
  /** The download's rate sampler: each range's request is reported to it. */
  rates: RateSampler;
  warn: (message: string) => void;
}

/**
 * One connection's loop: fetch the assigned range, then ask the planner for more
 * (queued ranges, a steal, an endgame hedge), idling while others finish, until
 * every byte is accepted (resolves `undefined`) or an answer says the transfer cannot
 * go on (resolves with that `WorkerStop`). A mirror that changed or ignores ranges is
 * dropped instead, while another copy works.
 * @throws what a range's last failed attempt threw (HttpStatusError, NetworkError,
 *   IntegrityError ERR_BAD_RANGE, FileError), or the transfer's abort reason
 */
export async function runWorker(
  context: TransferContext,
  preferredSource: number,
  first?: { assignment: Assignment; body: GivenBody },
): Promise<WorkerStop | undefined> {
  let assignment: Assignment | undefined = first?.assignment;
  let response = first?.body;
  // The worker's connection to its host, held from range to range: its next request
  // goes on the socket the last one freed, so the host never sees one more than allowed.
  const connection: HeldConnection = { lease: undefined };
  try {
    while (!context.signal.aborted) {
      assignment ??= context.planner.next() ?? context.pickHedge();
      if (!assignment) {
        if (context.planner.finished) return;
        connection.lease?.release();
        connection.lease = undefined;
        await context.idle.wait(IDLE_POLL_MS, context.signal);
        continue;
      }
      const source = pickSource(context.sources, preferredSource);
      try {
        const stop = await fetchRange(context, assignment, source, connection, response);
        // A mirror's own change or range trouble costs the mirror, not the download.
        if (stop && (source.primary || !dropMirror(context, source, stop.reason))) return stop;
      } catch (error) {
        if (context.signal.aborted || !(error instanceof RangegetError) || !dropMirror(context, source, error.message)) throw error;
      } finally {
        context.rates.finished(assignment, context.http.clock.now());
        const idle = context.planner.release(assignment);
        if (idle) context.interrupts.get(idle.id)?.abort();
        context.idle.notify();
      }
      response = undefined;
      assignment = undefined;
    }
    return undefined;
  } finally {
    connection.lease?.release();
  }
}

/**
 * Fetches one range to its (possibly moving) end. A failed attempt resumes from the
 * last accepted byte; the range gives up after `retries` attempts in a row that
 * brought no new byte. An answer that proves less than was asked (a server that caps
 * its answers) is kept, and the rest asked for at once. A refusal because the host
 * allows fewer connections is not counted; a signed URL that expired is fetched
 * afresh from the URL that was given. Resolves with a `WorkerStop` when an answer says
 * the transfer cannot go on; a whole file sent now and then by one node of a CDN is a
 * failed attempt, and becomes `ranges-ignored` only when the retries are spent on it.
 */
async function fetchRange(
  context: TransferContext,
  assignment: Assignment,
  source: Source,
  connection: HeldConnection,
  given?: GivenBody,
): Promise<WorkerStop | undefined> {
  const writer = context.sink.writer();
  const interrupt = new AbortController();
  const signal = AbortSignal.any([context.signal, interrupt.signal]);
  context.interrupts.set(assignment.id, interrupt);
  const startedAt = assignment.next;
  const retryLoop = {
    retries: context.retries,
    clock: context.http.clock,
    signal,
    onRetry: (retry: RetryNotice) => retried(context.http, retry),
    progress: () => assignment.next,
    uncounted: (error: unknown) => error instanceof HostLimitRefusal,
  };
  let next = given;
  const ignored = new WeakSet<object>();
  try {
    return await withRetries(retryLoop, async (): Promise<WorkerStop | undefined> => {
      while (assignment.next <= assignment.end) {
        // What this request asks for; a steal may lower `assignment.end` while it runs.
        const asked = { start: assignment.next, end: assignment.end };
        const body = next;
        next = undefined;
        context.rates.started(assignment, context.http.clock.now());
        let placed: Unplaced | undefined;
        try {
          placed = await receive(context, assignment, source, connection, asked, writer, signal, body);
        } catch (error) {
          // Rescued, stolen to the end, or lost a hedge race: the rest is someone else's.
          if (!context.signal.aborted && assignment.next > assignment.end) return undefined;
          if (!signedUrlExpired(source, error)) throw error;
          const refreshed = await refreshSource(context, source, { start: assignment.next, end: assignment.end }, signal);
          if ("kind" in refreshed) return refreshed;
          next = refreshed;
          continue;
        }
        if (placed === undefined) continue;
        // A better If-Range to try: ask again at once; not a failed attempt (at most twice per copy).
        if (placed.kind === "ask-again") continue;
        if (placed.kind !== "ignored-this-time") return placed;
        ignored.add(placed.fault);
        throw placed.fault;
      }
      return undefined;
    }).catch((error: unknown): WorkerStop | undefined => {
      // Interrupted in a backoff (a rescue, a lost race): the range is no longer ours.
      if (!context.signal.aborted && assignment.next > assignment.end) return undefined;
      // Retried while a node ignored the range now and then, and it still does.
      if (ignored.has(error as object)) return { kind: "ranges-ignored", reason: (error as Error).message };
      throw error;
    });
  } finally {
    if (next) next.response.body.destroy();
    context.interrupts.delete(assignment.id);
    context.http.stats.bytesFrom(source.origin, assignment.next - startedAt);
    await writer.flush();
  }
}

/**
 * One request for `asked`, its body taken in as it arrives, from the first byte the
 * verdict places up to the last it proves. An answer already under way (`given`) is
 * read the same way. Resolves `undefined` when every proven byte arrived (the caller
 * asks again for what the answer did not cover), or with what the verdict said instead
 * of placing the answer (its body was not read); a body that ends sooner is a failed attempt.
 */
async function receive(
  context: TransferContext,
  assignment: Assignment,
  source: Source,
  connection: HeldConnection,
  asked: { start: number; end: number },
  writer: RangeWriter,
  signal: AbortSignal,
  given: GivenBody | undefined,
): Promise<Unplaced | undefined> {
  let skip = given?.skip ?? 0;
  let provenEnd = given?.end ?? asked.end;
  const take = (chunk: Buffer): ReturnType<typeof accept> => {
    if (skip > 0) {
      const dropped = Math.min(skip, chunk.length);
      skip -= dropped;
      context.counters.bytesTransferred += dropped;
      if (dropped === chunk.length) return undefined;
      chunk = chunk.subarray(dropped);
    }
    return accept(context, assignment, writer, chunk, signal);
  };
  let active = false;
  let unplaced: Unplaced | undefined;
  // Counted from when the request holds its host connection: a worker waiting for one is not using one.
  const activate = () => {
    active = true;
    context.counters.activeConnections++;
    context.http.stats.connectionsInUse(context.counters.activeConnections);
  };
  try {
    if (given) {
      activate();
      for await (const chunk of given.response.body as AsyncIterable<Buffer>) {
        const next = take(chunk);
        if (next === STOP) break;
        await next;
      }
    } else {
      const ask: Ask = { url: source.url, range: asked, ifRange: source.ifRange, signal, held: connection, onSending: activate };
      const judged = askedOf(ask);
      await request(context.http, ask, {
        onHeaders: (status, responseHeaders) => {
          const placement = placeAnswer(context, source, judged, { status, headers: responseHeaders }, ask.ifRange);
          if (placement.kind !== "write") {
            unplaced = placement;
            return STOP;
          }
          skip = placement.skip;
          provenEnd = placement.end;
          return undefined;
        },
        onData: take,
      });
    }
  } catch (error) {
    if (error instanceof HostLimitRefusal) throw error;
    throw toNetworkError(error, shownUrl(context.http, source.url), signal);
  } finally {
    if (active) context.counters.activeConnections--;
  }
  if (unplaced) return unplaced;
  if (assignment.next <= Math.min(provenEnd, assignment.end)) {
    const shown = shownUrl(context.http, source.url);
    throw new NetworkError(
      `connection to ${shown} closed after ${assignment.next - asked.start} of ${Math.min(provenEnd, asked.end) - asked.start + 1} bytes`,
      { url: shown },
    );
  }
  return undefined;
}

/**
 * What the verdict said of an answer instead of where to write it: stop (`WorkerStop`);
 * ask again at once with the next If-Range validator (`ask-again`); or a whole file that
 * one node of a CDN sent this time, a failed attempt (`fault`, retried like a wrong range).
 */
type Unplaced = WorkerStop | { kind: "ask-again" } | { kind: "ignored-this-time"; fault: IntegrityError };

/**
 * What a worker's answer may write, by the verdict: where its body meets the range, or
 * why it is not written (pure but for the counts and proofs it records).
 * @throws IntegrityError ERR_BAD_RANGE for an answer that proves nothing usable here
 */
function placeAnswer(
  context: TransferContext,
  source: Source,
  asked: Asked,
  answer: { status: number; headers: Record<string, string | undefined> },
  sentIfRange: string | undefined,
): { kind: "write"; skip: number; end: number } | Unplaced {
  const known: Known = { size: context.size, etag: source.etag, lastModified: source.lastModified, bytesDone: 0 };
  const verdict = traced(context.http.events, source.url, judge(asked, known, answer));
  // The same version, whole, in answer to If-Range: that validator is no use with this
  // server, and every range would cost the whole file again (DESIGN, "What an answer proves").
  if (verdict.kind === "range-ignored" && sentIfRange !== undefined) {
    if (source.ifRange === sentIfRange) source.ifRange = ifRangeAfterUseless(sentIfRange, source, context.http.clock.wall());
    // Reading the whole file up to the range would cost more than asking again without that validator.
    if (bodyPlacement(verdict, asked)!.skip > 0) return { kind: "ask-again" };
  }
  const shown = shownUrl(context.http, source.url);
  if (verdict.kind === "changed") return { kind: "changed", reason: changedDuringDownload(shown, verdict.reason) };
  const range = asked.range!;
  // A multipart/byteranges answer or a 200 slice to a worker's range: this server cannot
  // answer a range honestly, and the whole download gets one plain stream (DESIGN).
  if (verdict.kind === "ranges-unusable") {
    return { kind: "ranges-ignored", reason: `${shown} cannot answer the range bytes ${range.start}-${range.end} usably: ${verdict.reason}` };
  }
  const placement = bodyPlacement(verdict, asked);
  if (placement === undefined || (verdict.kind !== "bytes" && verdict.kind !== "range-ignored")) {
    throw serverFault(shown, `it answered bytes ${range.start}-${range.end} with ${answer.status} (${verdict.kind})`);
  }
  // The range's bytes before the answer's first would be a hole in this connection's range.
  if (placement.start !== range.start) {
    throw serverFault(shown, `it answered bytes ${range.start}-${range.end} from byte ${placement.start}`);
  }
  if (verdict.kind === "bytes") context.answers.ranged++;
  if (verdict.kind === "range-ignored") {
    // Ignored without If-Range by a server that has answered no range of ours: it ignores
    // ranges (all but the probe's). Reading this body up to the range, or asking again,
    // would only cost more than the one plain stream it gets instead; a body that starts
    // at the range is used as it comes.
    const everyTime = sentIfRange === undefined && context.answers.ranged === 0;
    if (placement.skip > 0 && (everyTime || placement.skip > placement.end - placement.start + 1)) {
      const what = `ignored the range bytes ${range.start}-${range.end} and sent the whole file (200)`;
      return everyTime ? { kind: "ranges-ignored", reason: `${shown} ${what}` } : { kind: "ignored-this-time", fault: serverFault(shown, `it ${what}`) };
    }
  }
  const proof = sizeProofOf(verdict);
  if (proof) context.proven(proof);
  return { kind: "write", skip: placement.skip, end: placement.end };
}

/**
 * Takes one body chunk into the range: STOP once the range is complete (a steal, a
 * rescue or a lost race may have moved its end), else a promise when the disk or the
 * rate limit asks us to wait (or the reader of an ordered stream is behind).
 */
function accept(
  context: TransferContext,
  assignment: Assignment,
  writer: RangeWriter,
  chunk: Buffer,
  signal: AbortSignal,
): Promise<void> | typeof STOP | undefined {
  context.counters.bytesTransferred += chunk.length;
  let wait: Promise<void> | undefined;
  let offset = 0;
  while (offset < chunk.length) {
    const hedge = assignment.hedge;
    if (hedge && assignment.next >= hedge.start) {
      const loser = context.planner.settleHedge(assignment);
      if (loser) context.interrupts.get(loser.id)?.abort();
    }
    const limit = assignment.hedge ? assignment.hedge.start - 1 : assignment.end;
    const room = limit - assignment.next + 1;
    if (room <= 0) break;
    const piece = chunk.subarray(offset, offset + Math.min(room, chunk.length - offset));
    const position = assignment.next;
    assignment.next += piece.length;
    offset += piece.length;
    context.counters.bytesAccepted += piece.length;
    const written = writer.write(piece, position);
    if (written) wait = wait ? wait.then(() => written) : written;
  }
  // Charged even for the last chunk, so the next connection waits for it.
  const tokens = context.rateLimiter?.take(chunk.length, signal);
  if (assignment.next > assignment.end) {
    // The bytes are gathered; the writer's flush at the range's end writes them.
    wait?.catch(() => {});
    tokens?.catch(() => {});
    return STOP;
  }
  if (tokens) wait = wait ? Promise.all([wait, tokens]).then(() => {}) : tokens;
  return wait;
}

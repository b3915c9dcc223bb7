import { WAKE_UP } from "./clock.js";
import { NetworkError, RangegetError, RemoteChangedError } from "./errors.js";
import { formatRange, isStrongEtag, parseContentRange, parseUnsatisfiedRange } from "./http-headers.js";
import { STOP, streamGet, type HttpResponse, type RequestContext } from "./http.js";
import type { Assignment, RangePlanner } from "./ranges.js";
import type { RateLimiter } from "./rate-limit.js";
import type { RateSampler } from "./rates.js";
import { withRetries } from "./retry.js";
import type { ByteSink, RangeWriter } from "./sink.js";
import { badRange, toNetworkError } from "./to-error.js";

/** One copy of the file: the URL itself or a mirror. */
export interface Source {
  /** Where ranges are asked for (after redirects). */
  url: string;
  origin: string;
  etag: string | null;
  /** This copy's own validator: mirrors rarely share ETags. */
  ifRange: string | undefined;
  /** The URL the user gave; a change there restarts the download, a mirror's only drops the mirror. */
  primary: boolean;
  failed: boolean;
}

/** How often an idle connection looks again for a range to hedge while others run. */
const IDLE_POLL_MS = 200;

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
    } catch {
      // Woken early or aborted: either way the caller looks at the plan again.
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
  sink: ByteSink;
  planner: RangePlanner;
  signal: AbortSignal;
  rateLimiter: RateLimiter | undefined;
  counters: { bytesTransferred: number; bytesAccepted: number; activeConnections: number };
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
 * every byte is accepted.
 */
export async function runWorker(
  context: TransferContext,
  preferredSource: number,
  first?: { assignment: Assignment; response: HttpResponse },
): Promise<void> {
  let assignment: Assignment | undefined = first?.assignment;
  let response = first?.response;
  while (!context.signal.aborted) {
    assignment ??= context.planner.next() ?? context.pickHedge();
    if (!assignment) {
      if (context.planner.finished) return;
      await context.idle.wait(IDLE_POLL_MS, context.signal);
      continue;
    }
    const source = pickSource(context.sources, preferredSource);
    try {
      await fetchRange(context, assignment, source, response);
    } catch (error) {
      if (!dropMirror(context, source, error)) throw error;
    } finally {
      context.rates.finished(assignment, context.http.clock.now());
      const idle = context.planner.release(assignment);
      if (idle) context.interrupts.get(idle.id)?.abort();
      context.idle.notify();
    }
    response = undefined;
    assignment = undefined;
  }
}

/** The worker's own copy if it still works, else the first that does. */
function pickSource(sources: readonly Source[], preferred: number): Source {
  const own = sources[preferred % sources.length];
  if (own && !own.failed) return own;
  const working = sources.find((source) => !source.failed);
  if (!working) throw new Error("internal error: no working source left");
  return working;
}

/**
 * A mirror that fails for good is dropped, and its ranges go to the other copies.
 * The last working copy's failure is the download's.
 */
function dropMirror(context: TransferContext, source: Source, error: unknown): boolean {
  if (context.signal.aborted || error instanceof RangegetError === false) return false;
  if (error instanceof RemoteChangedError && source.primary) return false;
  const others = context.sources.filter((other) => other !== source && !other.failed);
  if (others.length === 0) return false;
  source.failed = true;
  context.warn(`dropping ${source.url}: ${(error as Error).message}; continuing with the other ${others.length === 1 ? "copy" : "copies"}`);
  return true;
}

/**
 * Fetches one range to its (possibly moving) end. A failed attempt resumes from the
 * last accepted byte; the range gives up after `retries` attempts in a row that
 * brought no new byte.
 */
async function fetchRange(
  context: TransferContext,
  assignment: Assignment,
  source: Source,
  response?: HttpResponse,
): Promise<void> {
  const writer = context.sink.writer();
  const interrupt = new AbortController();
  const signal = AbortSignal.any([context.signal, interrupt.signal]);
  context.interrupts.set(assignment.id, interrupt);
  const startedAt = assignment.next;
  const retryLoop = {
    retries: context.retries,
    clock: context.http.clock,
    signal,
    onRetry: () => context.http.stats.retried(),
    progress: () => assignment.next,
  };
  let firstResponse = response;
  try {
    await withRetries(retryLoop, async () => {
      if (assignment.next > assignment.end) return;
      // What this request asks for; a steal may lower `assignment.end` while it runs.
      const asked = { start: assignment.next, end: assignment.end };
      const probeAnswer = firstResponse;
      firstResponse = undefined;
      context.rates.started(assignment, context.http.clock.now());
      try {
        await receive(context, assignment, source, asked, writer, signal, probeAnswer);
      } catch (error) {
        // Rescued, stolen to the end, or lost a hedge race: the rest is someone else's.
        if (!context.signal.aborted && assignment.next > assignment.end) return;
        throw error;
      }
    }).catch((error: unknown) => {
      // Interrupted in a backoff (a rescue, a lost race): the range is no longer ours.
      if (!context.signal.aborted && assignment.next > assignment.end) return;
      throw error;
    });
  } finally {
    context.interrupts.delete(assignment.id);
    context.http.stats.bytesFrom(source.origin, assignment.next - startedAt);
    await writer.flush();
  }
}

/**
 * One request for `asked`, its body taken in as it arrives. The probe's answer,
 * already under way as a stream, is read the same way.
 */
async function receive(
  context: TransferContext,
  assignment: Assignment,
  source: Source,
  asked: { start: number; end: number },
  writer: RangeWriter,
  signal: AbortSignal,
  response: HttpResponse | undefined,
): Promise<void> {
  context.counters.activeConnections++;
  try {
    if (response) {
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
        const next = accept(context, assignment, writer, chunk, signal);
        if (next === STOP) break;
        await next;
      }
    } else {
      const headers: Record<string, string> = { range: formatRange(asked.start, asked.end) };
      if (source.ifRange !== undefined) headers["if-range"] = source.ifRange;
      await streamGet(context.http, source.url, headers, signal, answersRange, {
        onHeaders: (status, responseHeaders) => checkAnswer(context, source, asked, status, responseHeaders),
        onData: (chunk) => accept(context, assignment, writer, chunk, signal),
      });
    }
  } catch (error) {
    throw toNetworkError(error, source.url, signal);
  } finally {
    context.counters.activeConnections--;
  }
  if (assignment.next <= assignment.end) {
    throw new NetworkError(
      `connection to ${source.url} closed after ${assignment.next - asked.start} of ${asked.end - asked.start + 1} bytes`,
      { url: source.url },
    );
  }
}

/** 206 is what was asked for; 200 and 416 are let through to be judged (checkAnswer); anything else fails. */
function answersRange(status: number): boolean {
  return status === 206 || status === 200 || status === 416;
}

/** A ranged answer is written only if it is exactly the bytes asked, of the same file. */
function checkAnswer(
  context: TransferContext,
  source: Source,
  asked: { start: number; end: number },
  status: number,
  headers: Record<string, string | undefined>,
): void {
  if (status === 200) throw changed(source, "answered a ranged request with the whole file (200)");
  if (status === 416) {
    const size = parseUnsatisfiedRange(headers["content-range"]);
    if (size !== undefined && size !== context.size) throw changed(source, `now has ${size} bytes, not ${context.size}`);
    throw badRange(source.url, formatRange(asked.start, asked.end), headers["content-range"]);
  }
  const contentRange = parseContentRange(headers["content-range"]);
  if (contentRange?.size !== undefined && contentRange.size !== context.size) {
    throw changed(source, `now has ${contentRange.size} bytes, not ${context.size}`);
  }
  const etag = headers["etag"];
  if (isStrongEtag(source.etag) && isStrongEtag(etag) && etag !== source.etag) throw changed(source, `has a new ETag ${etag}`);
  if (contentRange === undefined || contentRange.start !== asked.start || contentRange.end !== asked.end) {
    throw badRange(source.url, formatRange(asked.start, asked.end), headers["content-range"]);
  }
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

function changed(source: Source, what: string): RemoteChangedError {
  return new RemoteChangedError(`the remote file at ${source.url} changed during the download: it ${what}`, {
    url: source.url,
  });
}

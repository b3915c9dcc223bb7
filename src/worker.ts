import type { FileHandle } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { HttpStatusError, NetworkError, RemoteChangedError } from "./errors.js";
import { formatRange, isStrongEtag, parseContentRange, parseUnsatisfiedRange } from "./http-headers.js";
import { discard, get, isRetryableFailure, toNetworkError, type HttpResponse, type RequestContext } from "./http.js";
import { fileError } from "./manifest.js";
import { badRange, statusError } from "./probe.js";
import type { Assignment, RangePlanner } from "./ranges.js";
import type { RateLimiter } from "./rate-limit.js";
import { retryDelay } from "./retry.js";
import { CoalescingWriter } from "./sink.js";

/** What every connection of one download shares. */
export interface TransferContext {
  http: RequestContext;
  /** The URL after redirects: ranges go straight there. */
  url: string;
  size: number;
  etag: string | null;
  /** Sent with every ranged request so a changed file answers 200, not mixed bytes. */
  ifRange: string | undefined;
  retries: number;
  file: FileHandle;
  partPath: string;
  planner: RangePlanner;
  signal: AbortSignal;
  rateLimiter: RateLimiter | undefined;
  /** Called once the bytes `[start, end]` are written to the file (not yet durable). */
  onWritten: (start: number, end: number) => void;
  counters: { bytesTransferred: number; bytesAccepted: number; activeConnections: number };
  /** Writers of the ranges in progress, so a checkpoint can flush what they hold. */
  writers: Set<CoalescingWriter>;
}

/**
 * One connection's loop: fetch the assigned range, then ask the planner for more
 * (queued ranges first, then a steal) until nothing is left.
 */
export async function runWorker(
  context: TransferContext,
  first?: { assignment: Assignment; response: HttpResponse },
): Promise<void> {
  let assignment = first?.assignment ?? context.planner.next();
  let response = first?.response;
  while (assignment && !context.signal.aborted) {
    try {
      await fetchRange(context, assignment, response);
    } finally {
      context.planner.release(assignment);
    }
    response = undefined;
    assignment = context.planner.next();
  }
}

/**
 * Fetches one range to its (possibly moving) end. A failed attempt resumes from the
 * last accepted byte; the range gives up after `retries` attempts in a row that
 * brought no new byte.
 */
async function fetchRange(context: TransferContext, assignment: Assignment, response?: HttpResponse): Promise<void> {
  const writer = new CoalescingWriter(context.file, context.onWritten);
  context.writers.add(writer);
  let failuresWithoutProgress = 0;
  try {
    while (assignment.next <= assignment.end) {
      const before = assignment.next;
      // What this request asks for; a steal may lower `assignment.end` while it runs.
      const asked = { start: assignment.next, end: assignment.end };
      try {
        const answer = response ?? (await requestRange(context, asked));
        response = undefined;
        await receive(context, assignment, asked, answer, writer);
      } catch (error) {
        if (context.signal.aborted || !isRetryableFailure(error)) throw error;
        failuresWithoutProgress = assignment.next > before ? 1 : failuresWithoutProgress + 1;
        if (failuresWithoutProgress >= Math.max(1, context.retries)) throw error;
        context.http.stats.retried();
        const retryAfterMs = error instanceof HttpStatusError ? error.retryAfterMs : undefined;
        await sleep(retryDelay(failuresWithoutProgress, retryAfterMs), undefined, { signal: context.signal });
      }
    }
  } finally {
    context.writers.delete(writer);
    await writer.flush().catch((error: unknown) => {
      throw fileError(error, context.partPath, "cannot write");
    });
  }
}

async function requestRange(context: TransferContext, asked: { start: number; end: number }): Promise<HttpResponse> {
  const headers: Record<string, string> = { range: formatRange(asked.start, asked.end) };
  if (context.ifRange !== undefined) headers["if-range"] = context.ifRange;
  return get(context.http, context.url, headers, context.signal);
}

/** Checks the answer is exactly the bytes asked, of the same file, then streams it in. */
async function receive(
  context: TransferContext,
  assignment: Assignment,
  asked: { start: number; end: number },
  response: HttpResponse,
  writer: CoalescingWriter,
): Promise<void> {
  const { start: askedStart, end: askedEnd } = asked;
  if (response.status === 200) {
    await discard(response);
    throw changed(context, "answered a ranged request with the whole file (200)");
  }
  if (response.status === 416) {
    const size = parseUnsatisfiedRange(response.headers["content-range"]);
    if (size !== undefined && size !== context.size) throw changed(context, `now has ${size} bytes, not ${context.size}`);
    throw badRange(context.url, formatRange(askedStart, askedEnd), response.headers["content-range"]);
  }
  if (response.status !== 206) throw await statusError(response);
  const contentRange = parseContentRange(response.headers["content-range"]);
  if (contentRange?.size !== undefined && contentRange.size !== context.size) {
    await discard(response);
    throw changed(context, `now has ${contentRange.size} bytes, not ${context.size}`);
  }
  const etag = response.headers["etag"];
  if (isStrongEtag(context.etag) && isStrongEtag(etag) && etag !== context.etag) {
    await discard(response);
    throw changed(context, `has a new ETag ${etag}`);
  }
  if (contentRange === undefined || contentRange.start !== askedStart || contentRange.end !== askedEnd) {
    await discard(response);
    throw badRange(context.url, formatRange(askedStart, askedEnd), response.headers["content-range"]);
  }

  context.counters.activeConnections++;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      context.counters.bytesTransferred += chunk.length;
      if (context.rateLimiter) await context.rateLimiter.take(chunk.length, context.signal);
      // Read `end` only now: a steal may have moved it while we waited.
      const room = assignment.end - assignment.next + 1;
      if (room <= 0) break;
      const piece = chunk.length > room ? chunk.subarray(0, room) : chunk;
      const position = assignment.next;
      assignment.next += piece.length;
      context.counters.bytesAccepted += piece.length;
      await writer.write(piece, position).catch((error: unknown) => {
        throw fileError(error, context.partPath, "cannot write");
      });
      if (assignment.next > assignment.end) break;
    }
  } catch (error) {
    throw toNetworkError(error, context.url, context.signal);
  } finally {
    context.counters.activeConnections--;
  }
  if (assignment.next <= assignment.end) {
    throw new NetworkError(
      `connection to ${context.url} closed after ${assignment.next - askedStart} of ${askedEnd - askedStart + 1} bytes`,
      { url: context.url },
    );
  }
}

function changed(context: TransferContext, what: string): RemoteChangedError {
  return new RemoteChangedError(`the remote file at ${context.url} changed during the download: it ${what}`, {
    url: context.url,
  });
}

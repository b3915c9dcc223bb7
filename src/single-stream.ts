/**
 * No range support or no provable size: the file comes as one stream from its first
 * byte. There is nothing to resume, so a retry starts over; where the bytes go (a
 * fresh `.part`, an ordered stream that drops what it already sent) is the job's
 * `Consumer` (sink.ts), the same seam parallel ranges write through. Every answer is
 * judged by the verdict.
 */
import type { HttpResponse, RequestContext } from "./http.js";
import { requestResponse } from "./request.js";
import type { Settings } from "./options.js";
import type { ProbeAnswer } from "./probe.js";
import { RateSampler } from "./rates.js";
import { retried, traced } from "./events.js";
import { withRetries, type RetryNotice } from "./retry.js";
import type { Consumer, RangeWriter } from "./sink.js";
import { startTicker, type TransferCounters } from "./ticker.js";
import { RemoteChangedError } from "./errors.js";
import { serverFault, toNetworkError } from "./to-error.js";
import { judge, NOTHING_KNOWN, sizeProofOf, type Asked, type Known, type SizeProof, type Validators } from "./verdict.js";

export interface StreamJob {
  settings: Settings;
  http: RequestContext;
  /** What progress events name: the output path, `-` for stdout, the extract directory. */
  label: string;
  /** The probe's answer when its body is the whole file (the first attempt's stream); else a plain GET is sent. */
  first: ProbeAnswer | undefined;
  /** Where the bytes go; restarted before each attempt but the first, ended `complete` or `dropped`. */
  target: Consumer;
  /**
   * The version of bytes `target` holds already and cannot take back (an ordered
   * stream fed by parallel ranges before this stream): every answer must be of it.
   */
  kept?: Known | undefined;
  counters: TransferCounters;
  signal: AbortSignal;
  /** Told every size an answer proves, and the clean end's length when no answer gave one. */
  proven: (proof: SizeProof) => void;
}

/** What a plain GET asks: no range, nothing conditional. */
const PLAIN: Asked = { range: undefined, ifRange: false, conditional: false, first: true };

/**
 * Streams the whole file into `job.target` and resolves with the number of bytes
 * written and the answer's URL and validators. A body that ends short of the length
 * its answer proved is a failed attempt; the caller weighs the proofs. A target
 * without `restart` keeps what it was given (an ordered stream passed it on), so a
 * retry must be of the same version as those bytes.
 * @throws IntegrityError when the answers are not the whole file (after retries);
 *   RemoteChangedError when a retry's answer is another version than the bytes a
 *   target without `restart` kept; NetworkError, HttpStatusError, FileError as they
 *   come. The target was ended `dropped` then.
 */
export async function streamWhole(job: StreamJob): Promise<{ size: number; finalUrl: string; validators: Validators }> {
  const { settings } = job;
  const loop = { retries: settings.retries, clock: settings.clock, signal: job.signal, onRetry: (retry: RetryNotice) => retried(job.http, retry) };
  const kept: KeptVersion = { version: job.kept };
  let ended: Awaited<ReturnType<typeof oneAttempt>>;
  try {
    ended = await withRetries(loop, (attempt) => oneAttempt(job, attempt, kept));
  } catch (error) {
    await job.target.end?.("dropped").catch(() => {});
    throw error;
  }
  await job.target.end?.("complete");
  return ended;
}

/** The version of the bytes a target without `restart` holds (`StreamJob.kept`, or an earlier attempt's); unset until it holds some. */
interface KeptVersion {
  version: Known | undefined;
}

/** One attempt of the stream, from byte 0 (the probe's answer, first, when it is the whole file). */
async function oneAttempt(job: StreamJob, attempt: number, kept: KeptVersion): Promise<{ size: number; finalUrl: string; validators: Validators }> {
  const { settings, counters } = job;
  const given = attempt === 1 ? job.first : undefined;
  let writer: RangeWriter;
  try {
    if (attempt > 1) await job.target.restart?.();
    writer = job.target.writer();
  } catch (error) {
    if (given) given.response.body.destroy();
    throw error;
  }
  // Told by the answer's Content-Length, when it has one: progress then has a size and a percentage.
  let announced: number | undefined;
  const stopTicking = startTicker({
    clock: settings.clock,
    intervals: settings.intervals,
    rates: new RateSampler(),
    counters,
    path: job.label,
    size: () => announced,
    inFlight: () => [],
    onProgress: settings.onProgress,
    everyCheckpoint: async () => {},
  });
  let finalUrl = given?.finalUrl ?? settings.url;
  // Held until its body closes: a path that does not read the body must end it.
  let response: HttpResponse | undefined = given?.response;
  try {
    response ??= await plainGet(job);
    finalUrl = response.url;
    const verdict = given?.verdict ?? traced(job.http.events, response.url, judge(PLAIN, kept.version ?? NOTHING_KNOWN, response));
    if (verdict.kind === "changed") {
      throw new RemoteChangedError(`${settings.shownUrl} changed on the server: ${verdict.reason}; the bytes before it were passed on already`, {
        url: settings.shownUrl,
      });
    }
    // Only an answer whose body is the file from its first byte can be one stream.
    const fromStart =
      verdict.kind === "whole" ||
      verdict.kind === "range-ignored" ||
      (verdict.kind === "bytes" && verdict.answered.start === 0 && verdict.answered.end === verdict.size - 1);
    if (!fromStart) {
      throw serverFault(response.url, `it answered a plain GET with ${response.status} that is not the whole file`, "stream");
    }
    const proof = sizeProofOf(verdict);
    if (proof) job.proven(proof);
    announced = proof?.size;
    settings.events.start(job.label, announced, 1);
    counters.bytesAccepted = 0;
    counters.activeConnections = 1;
    job.http.stats.connectionsInUse(1);
    const headers = response.headers;
    const validators: Validators = { etag: headers["etag"] ?? null, lastModified: headers["last-modified"] ?? null };
    let position = 0;
    // Bytes a target cannot take back are of this version: a retry must be too.
    const keepsVersion = job.target.restart === undefined && kept.version === undefined;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      counters.bytesTransferred += chunk.length;
      if (settings.rateLimiter) await settings.rateLimiter.take(chunk.length, job.signal);
      if (keepsVersion && position === 0) kept.version = { size: announced, ...validators, bytesDone: 0 };
      await writer.write(chunk, position);
      position += chunk.length;
      counters.bytesAccepted = position;
    }
    await writer.flush();
    if (announced !== undefined && position !== announced) {
      throw serverFault(response.url, `it sent ${position} bytes, not the ${announced} it announced`, "stream");
    }
    // A length-less stream that ended cleanly proves its own length (DESIGN).
    if (announced === undefined) job.proven({ source: "clean-end", size: position });
    return { size: position, finalUrl, validators };
  } catch (caught) {
    response?.body.destroy();
    throw toNetworkError(caught, finalUrl, job.signal);
  } finally {
    counters.activeConnections = 0;
    stopTicking();
  }
}

/** A GET without `Range`, holding one of its host's connections until the body is done. */
function plainGet(job: StreamJob): Promise<HttpResponse> {
  return requestResponse(job.http, { url: job.settings.url, first: true, signal: job.signal });
}

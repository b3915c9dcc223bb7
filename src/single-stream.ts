/**
 * No range support or no size: the file comes as one stream from its first byte. There
 * is nothing to resume, so a retry starts over; where the bytes go (a fresh `.part`, an
 * ordered stream that drops what it already sent) is the job's `target`.
 */
import { IntegrityError } from "./errors.js";
import { getFollowingRedirects, type HttpResponse, type RequestContext } from "./http.js";
import type { Settings } from "./options.js";
import type { ProbeAnswer } from "./probe.js";
import { RateSampler } from "./rates.js";
import { withRetries } from "./retry.js";
import type { RangeWriter } from "./sink.js";
import { startTicker, type TransferCounters } from "./ticker.js";
import { fileError, toNetworkError } from "./to-error.js";

/** Where one stream's bytes go, attempt by attempt. */
export interface StreamTarget {
  /** A writer for an attempt that starts at byte 0. */
  start(): Promise<RangeWriter>;
  /** The attempt failed: drop what it wrote if a retry cannot keep it. */
  failed(): Promise<void>;
}

export interface StreamJob {
  settings: Settings;
  http: RequestContext;
  /** What progress events name: the output path, `-` for stdout, the extract directory. */
  label: string;
  /** The probe's 200 answer: its body is the first attempt's stream. */
  answer: ProbeAnswer;
  target: StreamTarget;
  counters: TransferCounters;
  signal: AbortSignal;
}

/**
 * Streams the whole file into `job.target` and resolves with the number of bytes
 * written, which equals the announced Content-Length when there was one.
 * @throws IntegrityError when the body's length is not the announced one (after
 *   retries); NetworkError, HttpStatusError, FileError as they come. The target was
 *   told of every failed attempt.
 */
export async function streamWhole(job: StreamJob): Promise<number> {
  const { settings, counters } = job;
  const announced = job.answer.size;
  let firstResponse: HttpResponse | undefined = job.answer.response;
  const loop = { retries: settings.retries, clock: settings.clock, signal: job.signal, onRetry: () => job.http.stats.retried() };
  return withRetries(loop, async () => {
    const response = firstResponse;
    firstResponse = undefined;
    let writer: RangeWriter;
    try {
      writer = await job.target.start();
    } catch (error) {
      if (response) response.body.destroy();
      throw error;
    }
    const stopTicking = startTicker({
      clock: settings.clock,
      rates: new RateSampler(),
      counters,
      path: job.label,
      size: announced,
      inFlight: () => [],
      onProgress: settings.onProgress,
      everySecond: async () => {},
    });
    try {
      const body = (response ?? (await getFollowingRedirects(job.http, settings.url, {}, job.signal, (status) => status === 200))).body;
      counters.bytesAccepted = 0;
      counters.activeConnections = 1;
      let position = 0;
      for await (const chunk of body as AsyncIterable<Buffer>) {
        counters.bytesTransferred += chunk.length;
        if (settings.rateLimiter) await settings.rateLimiter.take(chunk.length, job.signal);
        await writer.write(chunk, position);
        position += chunk.length;
        counters.bytesAccepted = position;
      }
      await writer.flush();
      if (announced !== undefined && position !== announced) {
        throw new IntegrityError(`${job.answer.finalUrl} sent ${position} bytes, not the ${announced} it announced`, {
          code: "ERR_BAD_RANGE",
        });
      }
      return position;
    } catch (caught) {
      await job.target.failed().catch(() => {});
      throw toNetworkError(caught, job.answer.finalUrl, job.signal);
    } finally {
      counters.activeConnections = 0;
      stopTicking();
    }
  });
}

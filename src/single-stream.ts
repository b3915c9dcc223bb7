/**
 * No range support or no size: the file comes as one stream from its first byte into
 * a fresh `.part`. There is nothing to resume, so a retry starts over.
 */
import { IntegrityError } from "./errors.js";
import { getFollowingRedirects, type RequestContext } from "./http.js";
import { removeIfPresent } from "./manifest.js";
import type { Settings } from "./options.js";
import { createPart } from "./part-file.js";
import type { ProbeAnswer } from "./probe.js";
import { RateSampler } from "./rates.js";
import { withRetries } from "./retry.js";
import { CoalescingWriter } from "./sink.js";
import { startTicker, type TransferCounters } from "./ticker.js";
import { fileError, toNetworkError } from "./to-error.js";
import type { FileHandle } from "node:fs/promises";
import type { HttpResponse } from "./http.js";

export interface StreamJob {
  settings: Settings;
  http: RequestContext;
  /** The output path; bytes go to `<path>.part`. */
  path: string;
  /** The probe's 200 answer: its body is the first attempt's stream. */
  answer: ProbeAnswer;
  counters: TransferCounters;
  signal: AbortSignal;
}

/**
 * Streams the whole file into a fresh `<path>.part` and resolves with the open file
 * and the number of bytes written, which equals the announced Content-Length when
 * there was one. The caller finishes the file.
 * @throws IntegrityError when the body's length is not the announced one (after
 *   retries); NetworkError, HttpStatusError, FileError as they come. The `.part` is
 *   removed on failure: it cannot be resumed.
 */
export async function streamWhole(job: StreamJob): Promise<{ file: FileHandle; size: number }> {
  const { settings, counters } = job;
  const partPath = `${job.path}.part`;
  const announced = job.answer.size;
  let firstResponse: HttpResponse | undefined = job.answer.response;
  const loop = { retries: settings.retries, clock: settings.clock, signal: job.signal, onRetry: () => job.http.stats.retried() };
  return withRetries(loop, async () => {
    const response = firstResponse;
    firstResponse = undefined;
    let file: FileHandle;
    try {
      file = await createPart(job.path, 0);
    } catch (error) {
      if (response) response.body.destroy();
      throw error;
    }
    let written = 0;
    const writer = new CoalescingWriter(file, (_start, end) => (written = end + 1));
    const stopTicking = startTicker({
      clock: settings.clock,
      rates: new RateSampler(),
      counters,
      path: job.path,
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
        try {
          await writer.write(chunk, position);
        } catch (error) {
          throw fileError(error, partPath, "cannot write");
        }
        position += chunk.length;
        counters.bytesAccepted = position;
      }
      await writer.flush().catch((error: unknown) => {
        throw fileError(error, partPath, "cannot write");
      });
      if (announced !== undefined && written !== announced) {
        throw new IntegrityError(`${job.answer.finalUrl} sent ${written} bytes, not the ${announced} it announced`, {
          code: "ERR_BAD_RANGE",
        });
      }
      return { file, size: written };
    } catch (caught) {
      await file.close().catch(() => {});
      await removeIfPresent(partPath).catch(() => {});
      throw toNetworkError(caught, job.answer.finalUrl, job.signal);
    } finally {
      counters.activeConnections = 0;
      stopTicking();
    }
  });
}

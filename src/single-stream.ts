/**
 * No range support or no provable size: the file comes as one stream from its first
 * byte into a fresh `.part`. There is nothing to resume, so a retry starts over.
 */
import type { FileHandle } from "node:fs/promises";
import { hostKey } from "./host-limits.js";
import { getFollowingRedirects, type HttpResponse, type RequestContext } from "./http.js";
import { removeIfPresent } from "./manifest.js";
import type { Settings } from "./options.js";
import { createPart } from "./part-file.js";
import type { ProbeAnswer } from "./probe.js";
import { RateSampler } from "./rates.js";
import { withRetries } from "./retry.js";
import { CoalescingWriter } from "./sink.js";
import { startTicker, type TransferCounters } from "./ticker.js";
import { fileError, serverFault, toNetworkError } from "./to-error.js";
import { judge, judgesStatus, NOTHING_KNOWN, sizeProofOf, type Asked, type SizeProof, type Validators } from "./verdict.js";

export interface StreamJob {
  settings: Settings;
  http: RequestContext;
  /** The output path; bytes go to `<path>.part`. */
  path: string;
  /** The probe's answer when its body is the whole file (the first attempt's stream); else a plain GET is sent. */
  first: ProbeAnswer | undefined;
  counters: TransferCounters;
  signal: AbortSignal;
  /** Told every size an answer proves, and the clean end's length when no answer gave one. */
  proven: (proof: SizeProof) => void;
}

/** What a plain GET asks: no range, nothing conditional. */
const PLAIN: Asked = { range: undefined, ifRange: false, conditional: false, first: true };

/**
 * Streams the whole file into a fresh `<path>.part` and resolves with the open file,
 * the number of bytes written, and the answer's URL and validators. Each answer is
 * judged by the verdict; a body that ends short of the length its answer proved is a
 * failed attempt. The caller weighs the proofs and finishes the file.
 * @throws IntegrityError when the answers are not the whole file (after retries);
 *   NetworkError, HttpStatusError, FileError as they come. The `.part` is removed on
 *   failure: it cannot be resumed.
 */
export async function streamWhole(
  job: StreamJob,
): Promise<{ file: FileHandle; size: number; finalUrl: string; validators: Validators }> {
  const { settings, counters } = job;
  const partPath = `${job.path}.part`;
  let firstAnswer = job.first;
  const loop = { retries: settings.retries, clock: settings.clock, signal: job.signal, onRetry: () => job.http.stats.retried() };
  return withRetries(loop, async () => {
    const given = firstAnswer;
    firstAnswer = undefined;
    let file: FileHandle;
    try {
      file = await createPart(job.path, 0);
    } catch (error) {
      if (given) given.response.body.destroy();
      throw error;
    }
    let written = 0;
    const writer = new CoalescingWriter(file, (_start, end) => (written = end + 1));
    let announced: number | undefined;
    const stopTicking = startTicker({
      clock: settings.clock,
      rates: new RateSampler(),
      counters,
      path: job.path,
      size: undefined,
      inFlight: () => [],
      onProgress: settings.onProgress,
      everySecond: async () => {},
    });
    let finalUrl = given?.finalUrl ?? settings.url;
    try {
      const response = given?.response ?? (await plainGet(job));
      finalUrl = response.url;
      const verdict = given?.verdict ?? judge(PLAIN, NOTHING_KNOWN, response);
      // Only an answer whose body is the file from its first byte can be one stream.
      const fromStart =
        verdict.kind === "whole" ||
        verdict.kind === "range-ignored" ||
        (verdict.kind === "bytes" && verdict.answered.start === 0 && verdict.answered.end === verdict.size - 1);
      if (!fromStart) {
        throw serverFault(response.url, `it answered a plain GET with ${response.status} that is not the whole file`);
      }
      const proof = sizeProofOf(verdict);
      if (proof) job.proven(proof);
      announced = proof?.size;
      counters.bytesAccepted = 0;
      counters.activeConnections = 1;
      job.http.stats.connectionsInUse(1);
      let position = 0;
      for await (const chunk of response.body as AsyncIterable<Buffer>) {
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
        throw serverFault(response.url, `it sent ${written} bytes, not the ${announced} it announced`);
      }
      // A length-less stream that ended cleanly proves its own length (DESIGN).
      if (announced === undefined) job.proven({ source: "clean-end", size: written });
      const headers = response.headers;
      return { file, size: written, finalUrl, validators: { etag: headers["etag"] ?? null, lastModified: headers["last-modified"] ?? null } };
    } catch (caught) {
      await file.close().catch(() => {});
      await removeIfPresent(partPath).catch(() => {});
      throw toNetworkError(caught, finalUrl, job.signal);
    } finally {
      counters.activeConnections = 0;
      stopTicking();
    }
  });
}

/** A GET without `Range`, holding one of its host's connections until the body is done. */
async function plainGet(job: StreamJob): Promise<HttpResponse> {
  const lease = await job.settings.hostLimits.acquire(hostKey(job.settings.url), job.signal);
  try {
    const response = await getFollowingRedirects(job.http, job.settings.url, {}, job.signal, (status) => judgesStatus(PLAIN, status));
    response.body.once("close", () => lease.release());
    lease.answered();
    return response;
  } catch (error) {
    lease.release();
    throw error;
  }
}

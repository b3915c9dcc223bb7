/**
 * The library's entry points for one file: `download` (to disk, or unpacked with
 * `extract`) and `downloadStream` (an ordered stream). Each settles the settings and
 * the dispatcher, runs the job (file-download.ts or stream-download.ts) and turns its
 * end into a result.
 */
import type { Readable } from "node:stream";
import { resolve } from "node:path";
import type { Dispatcher } from "undici";
import { createDispatcher } from "./dispatcher.js";
import { AbortError, interruptedError, summarizeError } from "./errors.js";
import { systemClock } from "./clock.js";
import { DownloadEvents } from "./events.js";
import { FileDownload } from "./file-download.js";
import { checksumFileAccess, loadChecksumList } from "./load-checksum-file.js";
import { chooseFileName } from "./filename.js";
import { abortError } from "./job-context.js";
import { DEFAULTS, resolveSettings, type InternalOptions, type Settings } from "./options.js";
import { streamWindow } from "./ordered-sink.js";
import { redactUrl } from "./redact.js";
import { downloadResult } from "./result.js";
import { HttpStatsRecorder } from "./stats.js";
import { OrderedOutput, StreamDownload } from "./stream-download.js";
import type { DownloadOptions, DownloadResult, DownloadStream, DownloadStreamOptions, FinishedDownload } from "./types.js";


/**
 * Downloads one URL to a file (with `extract`, unpacks it into that directory instead).
 * Resolves with what happened; rejects with a typed error (see errors.ts) after saving
 * whatever state makes a re-run resume.
 */
export async function download(url: string | readonly string[], options: DownloadOptions = {}): Promise<FinishedDownload> {
  const { result, error } = await downloadWithResult(url, options);
  if (error !== undefined) throw error;
  return asFinished(result);
}

/** A result that did not fail, typed as such: every way to succeed learns the size. */
function asFinished(result: DownloadResult): FinishedDownload {
  if (result.status === "failed" || result.size === null || result.error !== null) {
    throw new Error(`internal error: the download of ${result.url} ended without failing or learning the size`);
  }
  return { ...result, status: result.status, size: result.size, error: null };
}

/**
 * Downloads `url` as a stream: `body` gives the file's bytes in order while up to
 * `connections` ranges are fetched ahead of the reader; `done` resolves with the
 * result once every byte went into `body`. See `DownloadStream` for the errors.
 * A list of URLs names copies of one file (the rest are mirrors), as for `download`.
 */
export function downloadStream(url: string | readonly string[], options: DownloadStreamOptions = {}): DownloadStream {
  const { body, done } = downloadStreamWithResult(url, options);
  return {
    body,
    done: done.then(({ result, error }) => {
      if (error !== undefined) throw error;
      return result;
    }),
  };
}

/** Like `downloadStream`, but a failure is a result with `status: "failed"`, plus the error (for the CLI). */
export function downloadStreamWithResult(
  url: string | readonly string[],
  options: InternalOptions & DownloadStreamOptions = {},
): { body: Readable; done: Promise<{ result: DownloadResult; error?: unknown }> } {
  // Out-of-range options make a window of no use here; resolveSettings refuses them
  // before any request, and `body` fails with that UsageError.
  const window = streamWindow(options.connections ?? DEFAULTS.connections, options.minSplit ?? DEFAULTS.minSplit, options.streamWindow);
  const output = new OrderedOutput(window);
  const done = downloadWithResult(url, { ...options, streamTo: output, streaming: true }).then((outcome) => {
    if (outcome.error !== undefined) output.sink.abort(outcome.error);
    return outcome;
  });
  return { body: output.body, done };
}

/** `downloadStream`'s own option: the file goes into this ordered stream instead of a file. */
interface StreamInto {
  streamTo?: OrderedOutput;
}

/** Like `download`, but a failure is a result with `status: "failed"`, plus the error. */
export async function downloadWithResult(
  urls: string | readonly string[],
  options: InternalOptions & StreamInto = {},
): Promise<{ result: DownloadResult; error?: unknown }> {
  const [url = "", ...mirrors] = typeof urls === "string" ? [urls] : urls;
  const stats = new HttpStatsRecorder();
  let job: FileDownload | StreamDownload | undefined;
  let dispatcher: Dispatcher | undefined;
  const clock = options.clock ?? systemClock;
  const startedAt = clock.now();
  let settings: Settings | undefined;
  try {
    settings = resolveSettings(url, mirrors, options);
    dispatcher =
      options.dispatcher ??
      createDispatcher({
        connections: settings.connections,
        timeoutMs: settings.timeoutMs,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.insecure ? { insecure: true } : {}),
        proxies: settings.proxies,
      });
    if (options.checksumFile !== undefined && options.checksumList === undefined) {
      const checksumList = await loadChecksumList(options.checksumFile, checksumFileAccess(options, dispatcher, [{ url, headers: options.headers }]));
      settings = resolveSettings(url, mirrors, { ...options, checksumList });
    }
    job = streamJob(settings, dispatcher, stats, options) ?? new FileDownload(settings, dispatcher, stats);
    const result = await job.run();
    settings.events.end(result);
    return { result };
  } catch (caught) {
    const error = options.signal?.aborted ? await leftAfterAbort(abortError(options.signal), job, options) : caught;
    const base = job?.baseResult() ?? emptyResult(url, options, stats, clock.now() - startedAt);
    const result: DownloadResult = { ...base, path: base.path === "" ? plannedPath(url, options) : base.path, status: "failed", error: summarizeError(error) };
    // Options that did not resolve (a bad URL) still end with an `error` event.
    (settings?.events ?? new DownloadEvents({ onEvent: options.onEvent }, redactUrl(url), result.path, clock)).end(result);
    return { result, error };
  } finally {
    if (dispatcher && !options.dispatcher) await dispatcher.destroy();
  }
}

/**
 * The abort as this file's own rejection, saying what a re-run finds: a file's saved
 * state, or nothing (a stream, an unpacking, a plain stream from a server without
 * ranges), or a download that had not started.
 */
async function leftAfterAbort(abort: AbortError, job: FileDownload | StreamDownload | undefined, options: InternalOptions): Promise<AbortError> {
  if (job instanceof FileDownload) return interruptedError(abort, await job.leftOnAbort());
  if (job === undefined || job.baseResult().bytesTransferred === 0) return interruptedError(abort, { kept: "not-started" });
  const why = options.extract === undefined ? "a stream keeps nothing on disk" : "an archive unpacked while it arrives cannot be resumed";
  return interruptedError(abort, { kept: "nothing", why });
}

/** `downloadStream` and `extract` fetch into an ordered stream instead of a file. */
function streamJob(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder, options: InternalOptions & StreamInto): StreamDownload | undefined {
  if (options.streamTo) return new StreamDownload(settings, dispatcher, stats, { kind: "stream", output: options.streamTo }, options.streamWindow);
  if (options.extract === undefined) return undefined;
  const destination = { kind: "extract" as const, dir: resolve(options.extract), force: settings.force };
  return new StreamDownload(settings, dispatcher, stats, destination, options.streamWindow);
}

/**
 * Where a file that failed before any answer named it would have been saved: its
 * `output`, else the URL's own name in `dir` (a server's Content-Disposition could
 * still have named it otherwise); `""` for a URL that does not parse.
 */
function plannedPath(url: string, options: InternalOptions): string {
  if (options.extract !== undefined) return resolve(options.extract);
  if (options.streaming === true || !URL.canParse(url)) return "";
  return resolve(options.dir ?? ".", options.output ?? chooseFileName(undefined, url));
}

function emptyResult(url: string, options: DownloadOptions, stats: HttpStatsRecorder, elapsedMs: number): DownloadResult {
  return downloadResult({ url: redactUrl(url), path: options.output === undefined ? "" : resolve(options.output), elapsedMs, stats, status: "failed" });
}

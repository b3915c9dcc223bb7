/**
 * One file's download: settle the settings, claim the output, probe, take the path the
 * answer calls for (parallel ranges, one stream, already complete, up to date), finish,
 * and start over when the remote file changed under a partial download. The work of
 * each step lives in its own module; this one holds the run and the restart loop.
 */
import { stat, type FileHandle } from "node:fs/promises";
import { resolve } from "node:path";
import type { Dispatcher } from "undici";
import { claimOutput, conditionalHeaders, discardPartial, type ConditionalHeaders, type PartialState } from "./claim.js";
import { AbortError, IntegrityError, RemoteChangedError, summarizeError } from "./errors.js";
import { chooseFileName } from "./filename.js";
import { ifRangeValue, isStrongEtag } from "./http-headers.js";
import { createDispatcher } from "./dispatcher.js";
import { discard, type RequestContext } from "./http.js";
import type { Lock, Manifest } from "./manifest.js";
import { resolveSettings, type InternalOptions, type Settings } from "./options.js";
import { createPart, finishPart, openPart, PartFileSink, PartFileStream } from "./part-file.js";
import { probe, type ProbeAnswer } from "./probe.js";
import { IntervalSet, type Interval } from "./ranges.js";
import { PrefixHasher } from "./running-hash.js";
import { streamWhole } from "./single-stream.js";
import { HttpStatsRecorder } from "./stats.js";
import { StreamDownload } from "./stream-download.js";
import type { TransferCounters } from "./ticker.js";
import { transferRanges } from "./transfer.js";
import type { Checksum, DownloadOptions, DownloadResult, FinishedDownload } from "./types.js";

export { DEFAULTS } from "./options.js";

/** A file that keeps changing under us is not worth chasing forever. */
const MAX_RESTARTS = 3;

/**
 * Downloads one URL to a file (with `extract`, unpacks it into that directory instead). Resolves with what happened; rejects with a typed
 * error (see errors.ts) after saving whatever state makes a re-run resume.
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

/** Like `download`, but a failure is a result with `status: "failed"`, plus the error. */
export async function downloadWithResult(
  urls: string | readonly string[],
  options: InternalOptions = {},
): Promise<{ result: DownloadResult; error?: unknown }> {
  const [url = "", ...mirrors] = typeof urls === "string" ? [urls] : urls;
  const stats = new HttpStatsRecorder();
  let job: FileDownload | StreamDownload | undefined;
  let dispatcher: Dispatcher | undefined;
  const startedAt = performance.now();
  try {
    const settings = resolveSettings(url, mirrors, options);
    dispatcher =
      options.dispatcher ??
      createDispatcher({
        connections: settings.connections,
        timeoutMs: settings.timeoutMs,
        ...(options.ca === undefined ? {} : { ca: options.ca }),
        ...(options.insecure ? { insecure: true } : {}),
      });
    job = streamDownload(settings, dispatcher, stats, options) ?? new FileDownload(settings, dispatcher, stats);
    return { result: await job.run() };
  } catch (caught) {
    const error = options.signal?.aborted && !(caught instanceof AbortError) ? abortError(options.signal) : caught;
    const result: DownloadResult = {
      ...(job?.baseResult() ?? emptyResult(url, options, stats, performance.now() - startedAt)),
      status: "failed",
      error: summarizeError(error),
    };
    return { result, error };
  } finally {
    if (dispatcher && !options.dispatcher) await dispatcher.destroy();
  }
}

function emptyResult(url: string, options: DownloadOptions, stats: HttpStatsRecorder, elapsedMs: number): DownloadResult {
  const dir = resolve(options.dir ?? ".");
  return {
    url,
    path: options.output === undefined ? "" : resolve(dir, options.output),
    status: "failed",
    size: null,
    bytesTransferred: 0,
    elapsedMs: Math.round(elapsedMs),
    resumed: false,
    restartedBecauseChanged: false,
    error: null,
    checksum: null,
    http: stats.snapshot(),
  };
}

/** `downloadStream` and `extract` fetch into an ordered stream instead of a file. */
function streamDownload(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder, options: InternalOptions): StreamDownload | undefined {
  if (options.streamTo) return new StreamDownload(settings, dispatcher, stats, { kind: "stream", output: options.streamTo }, options.streamWindow);
  if (options.extract === undefined) return undefined;
  const destination = { kind: "extract" as const, dir: resolve(options.extract), force: settings.force };
  return new StreamDownload(settings, dispatcher, stats, destination, options.streamWindow);
}

/** What every request of one download shares: the dispatcher, the user's headers and credentials, the clock. */
export function requestContext(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder): RequestContext {
  return {
    dispatcher,
    timeoutMs: settings.timeoutMs,
    stats,
    clock: settings.clock,
    userOrigin: settings.userOrigin,
    userHeaders: settings.headers,
    userAgent: settings.userAgent,
    credentials: settings.credentials,
  };
}

/** The error a download rejects with when the caller's signal stopped it. */
export function abortError(signal: AbortSignal): AbortError {
  if (signal.reason instanceof AbortError) return signal.reason;
  return new AbortError(undefined, { signal: signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT" });
}

/**
 * How one attempt (a probe and what follows it) ended: the download is over, or the
 * remote file changed under a partial download, or our own partial file turned out to
 * be unusable (already said; not a remote change). Either of the last two starts over.
 */
type AttemptOutcome =
  | { kind: "finished"; result: DownloadResult }
  | { kind: "changed"; reason: string }
  | { kind: "lost" };

/** One file's journey: claim the output, probe, transfer, finish; restart on a remote change. */
class FileDownload {
  readonly #settings: Settings;
  readonly #stats: HttpStatsRecorder;
  readonly #http: RequestContext;
  readonly #startedAt: number;
  /** Stops the current attempt's requests; a new one per attempt, so a restart starts clean. */
  #abort = new AbortController();
  #path: string | undefined;
  #lock: Lock | undefined;
  #partial: PartialState | undefined;
  /** Validators of the existing output, for `ifChanged`. */
  #conditional: ConditionalHeaders | undefined;
  #size: number | undefined;
  #resumed = false;
  #restarts = 0;
  /** The digest computed of the bytes, when a checksum was asked for. */
  #digest: Checksum | null = null;
  readonly #counters: TransferCounters = { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 };

  constructor(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder) {
    this.#settings = settings;
    this.#stats = stats;
    this.#startedAt = settings.clock.now();
    this.#http = requestContext(settings, dispatcher, stats);
  }

  baseResult(): DownloadResult {
    return {
      url: this.#settings.url,
      path: this.#path ?? this.#settings.output ?? "",
      status: this.#resumed ? "resumed" : "downloaded",
      size: this.#size ?? null,
      bytesTransferred: this.#counters.bytesTransferred,
      elapsedMs: Math.round(this.#settings.clock.now() - this.#startedAt),
      resumed: this.#resumed,
      restartedBecauseChanged: this.#restarts > 0,
      error: null,
      checksum: this.#digest,
      http: this.#stats.snapshot(),
    };
  }

  async run(): Promise<DownloadResult> {
    const signal = this.#settings.signal;
    const onAbort = () => this.#abort.abort(abortError(signal!));
    if (signal?.aborted) throw abortError(signal);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (this.#settings.output !== undefined && (await this.#claim(this.#settings.output)) === "finished-earlier") {
        return { ...this.baseResult(), status: "up-to-date" };
      }
      for (;;) {
        const outcome = await this.#attempt();
        if (outcome.kind === "finished") return outcome.result;
        if (outcome.kind === "changed") await this.#remoteChanged(outcome.reason);
        else await this.#dropPartial();
      }
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      await this.#lock?.release();
    }
  }

  /**
   * The one place a remote change is acted on (`reason` is a sentence: what changed): say so, flag it, drop the partial data,
   * unless the caller forbids a restart or the file keeps changing.
   * @throws RemoteChangedError
   */
  async #remoteChanged(reason: string): Promise<void> {
    const { url, restartOnChange } = this.#settings;
    if (!restartOnChange || this.#restarts >= MAX_RESTARTS) {
      const times = restartOnChange ? ` (${this.#restarts + 1} times)` : "";
      throw new RemoteChangedError(`${reason}${times}; run again to download the new version`, { url });
    }
    this.#settings.warn(`${reason}; discarding partial data and starting over`);
    this.#restarts++;
    await this.#dropPartial();
  }

  async #dropPartial(): Promise<void> {
    this.#partial = undefined;
    this.#resumed = false;
    if (this.#path !== undefined) await discardPartial(this.#path);
  }

  /** Claims `path` (lock, no clobbering, trusted partial state); says whether an earlier run had finished it. */
  async #claim(path: string): Promise<"claimed" | "finished-earlier"> {
    this.#path = path;
    const { url, force, ifChanged, warn } = this.#settings;
    const claim = await claimOutput(path, { url, force, ifChanged, warn });
    this.#lock = claim.lock;
    if (claim.kind === "finished-earlier") {
      this.#size = claim.size;
      return "finished-earlier";
    }
    this.#partial = claim.partial;
    this.#conditional = claim.conditional;
    return "claimed";
  }

  /** One probe, and the path its answer calls for. */
  async #attempt(): Promise<AttemptOutcome> {
    const { minSplit, retries, url } = this.#settings;
    this.#abort = new AbortController();
    if (this.#settings.signal?.aborted) throw abortError(this.#settings.signal);
    const partial = this.#partial;
    let range = { start: 0, end: minSplit - 1 };
    if (partial) {
      const first = partial.done.missing(partial.manifest.size)[0];
      // Nothing missing: ask past the end; the 416 confirms the size, then we finish.
      range = first
        ? { start: first[0], end: Math.min(first[1], first[0] + minSplit - 1) }
        : { start: partial.manifest.size, end: partial.manifest.size };
    }
    // Without -o the name is known only after the probe; for ifChanged, the URL's
    // name is the best guess of which existing file the condition is about.
    let guessedPath: string | undefined;
    if (this.#path === undefined && this.#settings.ifChanged) {
      guessedPath = resolve(this.#settings.dir, chooseFileName(undefined, url));
      const existing = await stat(guessedPath).catch(() => undefined);
      if (existing?.isFile()) this.#conditional = await conditionalHeaders(guessedPath, existing.mtime);
    }
    const answer = await probe(
      this.#http,
      {
        url,
        range,
        ifRange: partial ? ifRangeValue(partial.manifest) : undefined,
        ifNoneMatch: this.#conditional?.ifNoneMatch,
        ifModifiedSince: this.#conditional?.ifModifiedSince,
        retries,
      },
      this.#abort.signal,
    );
    if (answer.status === 304) {
      this.#path ??= guessedPath;
      return this.#finished({ ...this.baseResult(), status: "up-to-date", size: (await stat(this.#path!)).size });
    }
    if (this.#path === undefined) {
      const claimed = await discardOnFailure(answer, () =>
        this.#claim(resolve(this.#settings.dir, chooseFileName(answer.contentDisposition, url))),
      );
      if (claimed === "finished-earlier") {
        await discard(answer.response);
        return this.#finished({ ...this.baseResult(), status: "up-to-date" });
      }
    }
    // A partial state found only now (claimed after the probe, which therefore carried
    // no If-Range) is judged here; one known before the probe was judged by If-Range.
    const change = this.#partial && this.#partial !== partial ? versionChange(this.#partial.manifest, answer) : undefined;
    if (change !== undefined) await discardOnFailure(answer, () => this.#remoteChanged(changedOnServer(url, change)));
    if (answer.status === 416) return this.#afterUnsatisfiable(answer);
    if (answer.status === 200) {
      if (partial) {
        await discard(answer.response);
        return { kind: "changed", reason: changedOnServer(url, "it answered the resume with the whole file (200)") };
      }
      if (this.#partial) {
        this.#settings.warn(`${answer.finalUrl} no longer supports ranges; starting over`);
        await discardOnFailure(answer, () => this.#dropPartial());
      }
      return this.#singleStream(answer);
    }
    return this.#ranged(answer);
  }

  async #finished(result: DownloadResult): Promise<AttemptOutcome> {
    return { kind: "finished", result };
  }

  async #afterUnsatisfiable(answer: ProbeAnswer): Promise<AttemptOutcome> {
    const partial = this.#partial;
    if (partial) {
      if (answer.size !== partial.manifest.size) {
        const now = `it now has ${answer.size ?? "an unknown number of"} bytes, not ${partial.manifest.size}`;
        return { kind: "changed", reason: changedOnServer(this.#settings.url, now) };
      }
      if (partial.done.bytes === partial.manifest.size) {
        this.#size = partial.manifest.size;
        this.#resumed = true;
        const file = await openPart(this.#path!, partial.manifest.size, this.#settings.warn);
        if (!file) return { kind: "lost" };
        this.#counters.bytesAccepted = partial.manifest.size;
        return this.#finish(file, partial.manifest, this.#hasher(partial.done.toArray()));
      }
    } else if (answer.size === 0) {
      // A range of an empty file is unsatisfiable (RFC 9110 14.1.1): the file is empty.
      this.#size = 0;
      return this.#finish(await createPart(this.#path!, 0), this.#newManifest(answer, 0), this.#hasher());
    }
    throw new IntegrityError(
      `${answer.finalUrl} refused a range inside the file (416, Content-Range ${JSON.stringify(answer.response.headers["content-range"] ?? null)})`,
      { code: "ERR_BAD_RANGE" },
    );
  }

  #newManifest(answer: ProbeAnswer, size: number): Manifest {
    return {
      version: 1,
      url: this.#settings.url,
      finalUrl: answer.finalUrl,
      size,
      etag: answer.etag,
      lastModified: answer.lastModified,
      done: [],
    };
  }

  /** The parallel path: reopen or create the `.part`, transfer, finish. */
  async #ranged(answer: ProbeAnswer): Promise<AttemptOutcome> {
    const size = answer.size!;
    // The probe carried If-Range, so a server that honours it would have said 200;
    // this one did not, but the size or ETag gives it away. Its bytes are the new
    // version's, so keep the answer and drop the old bytes.
    const change = this.#partial ? versionChange(this.#partial.manifest, answer) : undefined;
    if (change !== undefined) await discardOnFailure(answer, () => this.#remoteChanged(changedOnServer(this.#settings.url, change)));
    let file: FileHandle | undefined;
    let manifest = this.#newManifest(answer, size);
    let done = new IntervalSet();
    if (this.#partial) {
      file = await discardOnFailure(answer, () => openPart(this.#path!, size, this.#settings.warn));
      if (file) {
        manifest = { ...this.#partial.manifest, finalUrl: answer.finalUrl };
        done = this.#partial.done;
      }
    }
    if (!file) {
      this.#partial = undefined;
      file = await discardOnFailure(answer, () => createPart(this.#path!, size));
    }
    this.#size = size;
    this.#resumed = done.bytes > 0;
    this.#counters.bytesAccepted = done.bytes;
    // A resumed file's bytes on disk are hashed first, while the rest arrives.
    const hasher = this.#hasher(done.toArray());
    let outcome;
    try {
      outcome = await transferRanges({
        settings: this.#settings,
        http: this.#http,
        stats: this.#stats,
        label: this.#path!,
        answer,
        size,
        missing: done.missing(size),
        split: { minSplit: this.#settings.minSplit },
        sink: new PartFileSink(file, this.#path!, manifest, done, hasher),
        counters: this.#counters,
        abort: this.#abort,
      });
    } catch (error) {
      await hasher?.close();
      throw error;
    }
    if (outcome.kind === "changed") {
      await hasher?.close();
      return { kind: "changed", reason: outcome.error.message };
    }
    return this.#finish(file, manifest, hasher);
  }

  /** With a checksum: a hasher of `<output>.part`, `alreadyDone` (bytes on disk) hashed first. */
  #hasher(alreadyDone: Interval[] = []): PrefixHasher | undefined {
    const algorithm = this.#settings.checksum?.algorithm;
    return algorithm === undefined ? undefined : new PrefixHasher(`${this.#path!}.part`, algorithm, alreadyDone);
  }

  /** No range support or no size: one stream from the start; nothing to resume. */
  async #singleStream(answer: ProbeAnswer): Promise<AttemptOutcome> {
    this.#size = answer.size;
    const target = new PartFileStream(this.#path!, this.#settings.checksum?.algorithm);
    const size = await streamWhole({
      settings: this.#settings,
      http: this.#http,
      label: this.#path!,
      answer,
      target,
      counters: this.#counters,
      signal: this.#abort.signal,
    });
    this.#size = size;
    return this.#finish(target.file, this.#newManifest(answer, size), target.hasher);
  }

  /** The file is whole: fsync, verify (the hasher has the digest), rename into place, report. */
  async #finish(file: FileHandle, manifest: Manifest, hasher: PrefixHasher | undefined): Promise<AttemptOutcome> {
    const path = this.#path!;
    const { url, checksum, ifChanged } = this.#settings;
    this.#digest = await finishPart(file, manifest, { path, url, checksum, hasher, ifChanged });
    this.#size = manifest.size;
    this.#settings.onProgress?.({ path, bytesDone: manifest.size, size: manifest.size, bytesPerSecond: 0, activeConnections: 0 });
    return { kind: "finished", result: this.baseResult() };
  }
}

/**
 * Whether `answer` is of another version than the partial data in `manifest`: its
 * size, else its strong ETag, else its Last-Modified differs. Undefined when it is
 * the same version as far as the server lets us tell.
 */
function versionChange(manifest: Manifest, answer: ProbeAnswer): string | undefined {
  if (answer.size !== manifest.size) return `it now has ${answer.size ?? "an unknown number of"} bytes, not ${manifest.size}`;
  if (isStrongEtag(manifest.etag) || isStrongEtag(answer.etag)) {
    return manifest.etag === answer.etag ? undefined : `its ETag is now ${answer.etag ?? "gone"}`;
  }
  if (manifest.lastModified !== null || answer.lastModified !== null) {
    return manifest.lastModified === answer.lastModified ? undefined : `its Last-Modified is now ${answer.lastModified ?? "gone"}`;
  }
  return undefined;
}

function changedOnServer(url: string, what: string): string {
  return `${url} changed on the server: ${what}`;
}

/** If `step` fails, the probe's body must not keep a socket busy. */
async function discardOnFailure<T>(answer: ProbeAnswer, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    await discard(answer.response);
    throw error;
  }
}

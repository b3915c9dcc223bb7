import { setMaxListeners } from "node:events";
import { constants } from "node:fs";
import { mkdir, open, readFile, rename, stat, statfs, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Dispatcher } from "undici";
import { hashFile, parseChecksum } from "./checksum.js";
import {
  AbortError,
  FileError,
  IntegrityError,
  RangegetError,
  RemoteChangedError,
  UsageError,
  summarizeError,
} from "./errors.js";
import { chooseFileName } from "./filename.js";
import { ifRangeValue, isStrongEtag, parseHttpDate } from "./http-headers.js";
import {
  createDispatcher,
  discard,
  getFollowingRedirects,
  isRetryableFailure,
  type RequestContext,
} from "./http.js";
import {
  acquireLock,
  manifestDone,
  readManifest,
  removeIfPresent,
  writeManifest,
  type Lock,
  type Manifest,
} from "./manifest.js";
import { probe, statusError, type ProbeAnswer } from "./probe.js";
import { PaceTracker, RangeRates } from "./pace.js";
import { IntervalSet, RangePlanner, remaining, type Assignment, type Interval } from "./ranges.js";
import { RateLimiter } from "./rate-limit.js";
import { retryDelay } from "./retry.js";
import { CoalescingWriter } from "./sink.js";
import { HttpStatsRecorder, RateMeter } from "./stats.js";
import { fileError, toNetworkError } from "./to-error.js";
import type { BatchFileOptions, Checksum, DownloadOptions, DownloadResult, FinishedDownload } from "./types.js";
import { IdleConnections, runWorker, type Source, type TransferContext } from "./worker.js";

export const DEFAULTS = {
  connections: 8,
  minSplit: 4 * 1024 * 1024,
  retries: 5,
  timeout: 30,
} as const;

const CHECKPOINT_INTERVAL_MS = 1000;
const PROGRESS_INTERVAL_MS = 250;
/** A file that keeps changing under us is not worth chasing forever. */
const MAX_RESTARTS = 3;

/**
 * Downloads one URL to a file. Resolves with what happened; rejects with a typed
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
  options: BatchFileOptions = {},
): Promise<{ result: DownloadResult; error?: unknown }> {
  const [url = "", ...mirrors] = typeof urls === "string" ? [urls] : urls;
  const startedAt = performance.now();
  const stats = new HttpStatsRecorder();
  let job: FileDownload | undefined;
  let dispatcher: Dispatcher | undefined;
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
    job = new FileDownload(settings, dispatcher, stats, startedAt);
    return { result: await job.run() };
  } catch (caught) {
    const error = options.signal?.aborted && !(caught instanceof AbortError) ? abortError(options.signal) : caught;
    const result: DownloadResult = {
      ...(job?.baseResult() ?? emptyResult(url, options, stats, startedAt)),
      status: "failed",
      error: summarizeError(error),
    };
    return { result, error };
  } finally {
    if (dispatcher && !options.dispatcher) await dispatcher.destroy();
  }
}

interface Settings {
  url: string;
  /** Other copies of the same file. */
  mirrors: string[];
  userOrigin: string;
  dir: string;
  output: string | undefined;
  connections: number;
  minSplit: number;
  retries: number;
  timeoutMs: number;
  checksum: Checksum | undefined;
  ifChanged: boolean;
  force: boolean;
  headers: Record<string, string>;
  restartOnChange: boolean;
  signal: AbortSignal | undefined;
  onProgress: DownloadOptions["onProgress"];
  warn: (message: string) => void;
  rateLimiter: RateLimiter | undefined;
}

function parseHttpUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new UsageError(`not a valid URL: ${JSON.stringify(url)}`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new UsageError(`unsupported URL scheme ${parsed.protocol} in ${url}: only http and https`);
  }
  return parsed;
}

function resolveSettings(url: string, mirrors: readonly string[], options: BatchFileOptions): Settings {
  const parsed = parseHttpUrl(url);
  const integer = (name: string, value: number | undefined, fallback: number, min: number, max: number): number => {
    const chosen = value ?? fallback;
    if (!Number.isInteger(chosen) || chosen < min || chosen > max) {
      throw new UsageError(`${name} must be an integer from ${min} to ${max}, not ${chosen}`);
    }
    return chosen;
  };
  const timeout = options.timeout ?? DEFAULTS.timeout;
  if (!(timeout > 0) || !Number.isFinite(timeout)) throw new UsageError(`timeout must be a positive number of seconds, not ${timeout}`);
  if (options.limitRate !== undefined && !(options.limitRate > 0)) {
    throw new UsageError(`limitRate must be a positive number of bytes per second, not ${options.limitRate}`);
  }
  const dir = resolve(options.dir ?? ".");
  return {
    url: parsed.href,
    mirrors: mirrors.map((mirror) => parseHttpUrl(mirror).href),
    userOrigin: parsed.origin,
    dir,
    output: options.output === undefined ? undefined : resolve(dir, options.output),
    connections: integer("connections", options.connections, DEFAULTS.connections, 1, 64),
    minSplit: integer("minSplit", options.minSplit, DEFAULTS.minSplit, 1, Number.MAX_SAFE_INTEGER),
    retries: integer("retries", options.retries, DEFAULTS.retries, 0, 1000),
    timeoutMs: Math.round(timeout * 1000),
    checksum: typeof options.checksum === "string" ? parseChecksum(options.checksum) : options.checksum,
    ifChanged: options.ifChanged ?? false,
    force: options.force ?? false,
    headers: { ...options.headers },
    restartOnChange: options.restartOnChange ?? true,
    signal: options.signal,
    onProgress: options.onProgress,
    warn: options.onWarning ?? ((message) => process.stderr.write(`rangeget: warning: ${message}\n`)),
    rateLimiter: options.rateLimiter ?? (options.limitRate === undefined ? undefined : new RateLimiter(options.limitRate)),
  };
}

function emptyResult(url: string, options: DownloadOptions, stats: HttpStatsRecorder, startedAt: number): DownloadResult {
  const dir = resolve(options.dir ?? ".");
  return {
    url,
    path: options.output === undefined ? "" : resolve(dir, options.output),
    status: "failed",
    size: null,
    bytesTransferred: 0,
    elapsedMs: Math.round(performance.now() - startedAt),
    resumed: false,
    restartedBecauseChanged: false,
    error: null,
    http: stats.snapshot(),
  };
}

function abortError(signal: AbortSignal): AbortError {
  if (signal.reason instanceof AbortError) return signal.reason;
  return new AbortError(undefined, { signal: signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT" });
}

/** The partial data of an earlier run that we trust and will resume. */
interface PartialState {
  manifest: Manifest;
  done: IntervalSet;
}

/** One file's journey: claim the output, probe, transfer, checkpoint, finish. */
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
  #conditional: { ifNoneMatch?: string; ifModifiedSince?: string } | undefined;
  #size: number | undefined;
  #resumed = false;
  #restartedBecauseChanged = false;
  /** An earlier run had finished the file but died before tidying up. */
  #finishedEarlier = false;
  readonly #counters = { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 };

  constructor(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder, startedAt: number) {
    this.#settings = settings;
    this.#stats = stats;
    this.#startedAt = startedAt;
    this.#http = {
      dispatcher,
      timeoutMs: settings.timeoutMs,
      stats,
      userOrigin: settings.userOrigin,
      userHeaders: settings.headers,
    };
  }

  baseResult(): DownloadResult {
    return {
      url: this.#settings.url,
      path: this.#path ?? this.#settings.output ?? "",
      status: this.#resumed ? "resumed" : "downloaded",
      size: this.#size ?? null,
      bytesTransferred: this.#counters.bytesTransferred,
      elapsedMs: Math.round(performance.now() - this.#startedAt),
      resumed: this.#resumed,
      restartedBecauseChanged: this.#restartedBecauseChanged,
      error: null,
      http: this.#stats.snapshot(),
    };
  }

  async run(): Promise<DownloadResult> {
    const signal = this.#settings.signal;
    const onAbort = () => this.#abort.abort(abortError(signal!));
    if (signal?.aborted) throw abortError(signal);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      if (this.#settings.output !== undefined) await this.#claim(this.#settings.output);
      if (this.#finishedEarlier) return { ...this.baseResult(), status: "up-to-date" };
      for (let restarts = 0; ; restarts++) {
        const outcome = await this.#attempt();
        if (outcome === "lost") {
          // Our own partial file went missing (already warned about): not a remote
          // change. With no partial left, the next attempt cannot lose it again.
          await this.#discardPartial();
          continue;
        }
        if (outcome !== "changed") return outcome;
        if (!this.#settings.restartOnChange || restarts >= MAX_RESTARTS) {
          throw new RemoteChangedError(
            `the remote file at ${this.#settings.url} changed while a partial download existed` +
              (this.#settings.restartOnChange ? ` (${restarts + 1} times)` : "") +
              `; run again to download the new version`,
            { url: this.#settings.url },
          );
        }
        this.#settings.warn(`${this.#settings.url} changed on the server; discarding partial data and starting over`);
        this.#restartedBecauseChanged = true;
        await this.#discardPartial();
      }
    } catch (error) {
      if (signal?.aborted) throw abortError(signal);
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      await this.#lock?.release();
    }
  }

  /** Takes the lock on `path`, refuses to clobber, and loads trusted partial state. */
  async #claim(path: string): Promise<void> {
    this.#path = path;
    const { force, ifChanged } = this.#settings;
    await mkdirFor(path);
    this.#lock = await acquireLock(`${path}.part.lock`, path);
    if (force) await this.#discardPartial();
    const check = await readManifest(`${path}.part.json`, this.#settings.url);
    if (check?.trusted === false) {
      this.#settings.warn(`ignoring ${path}.part.json: ${check.reason}; starting over`);
      await this.#discardPartial();
    } else if (check?.trusted) {
      this.#partial = { manifest: check.manifest, done: manifestDone(check.manifest) };
    }
    const existing = await stat(path).catch(() => undefined);
    if (existing && this.#partial && (await this.#finishedBeforeCrash(existing.size))) return;
    if (existing?.isDirectory()) {
      throw new FileError(`${path} is a directory; choose another output with -o`, { path, code: "ERR_FILE" });
    }
    if (existing && !this.#partial && !force) {
      if (!ifChanged) {
        throw new FileError(
          `${path} already exists; use --force to overwrite it or --if-changed to update it when the server has a newer one`,
          { path, code: "ERR_EXISTS" },
        );
      }
      this.#conditional = await conditionalHeaders(path, existing.mtime);
    }
  }

  /**
   * A crash between the rename and the manifest's removal leaves the finished output
   * beside a complete manifest and no `.part`: the file is whole (it was synced and
   * verified before the rename), so only the bookkeeping is left to tidy.
   */
  async #finishedBeforeCrash(outputSize: number): Promise<boolean> {
    const manifest = this.#partial!.manifest;
    const complete = this.#partial!.done.bytes === manifest.size && outputSize === manifest.size;
    if (!complete || (await stat(`${this.#path}.part`).catch(() => undefined))) return false;
    await removeIfPresent(`${this.#path}.part.json`);
    this.#partial = undefined;
    this.#size = manifest.size;
    this.#finishedEarlier = true;
    return true;
  }

  async #discardPartial(): Promise<void> {
    this.#partial = undefined;
    this.#resumed = false;
    if (this.#path === undefined) return;
    await removeIfPresent(`${this.#path}.part`);
    await removeIfPresent(`${this.#path}.part.json`);
  }

  /**
   * One probe and one transfer; "changed" when the remote file changed under a
   * partial, "lost" when the local partial file turned out to be gone.
   */
  async #attempt(): Promise<DownloadResult | "changed" | "lost"> {
    const { minSplit, retries } = this.#settings;
    this.#abort = new AbortController();
    // Every connection listens to it (its request, its backoff): more than the default 10.
    setMaxListeners(0, this.#abort.signal);
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
      guessedPath = resolve(this.#settings.dir, chooseFileName(undefined, this.#settings.url));
      const existing = await stat(guessedPath).catch(() => undefined);
      if (existing?.isFile()) this.#conditional = await conditionalHeaders(guessedPath, existing.mtime);
    }
    const answer = await probe(
      this.#http,
      {
        url: this.#settings.url,
        range,
        ifRange: partial ? ifRangeValue(partial.manifest) : undefined,
        ifNoneMatch: this.#conditional?.ifNoneMatch,
        ifModifiedSince: this.#conditional?.ifModifiedSince,
        retries,
      },
      this.#abort.signal,
    );
    if (answer.status === 304 && this.#path === undefined && this.#conditional) this.#path = guessedPath;
    if (this.#path === undefined) {
      await discardOnFailure(answer, () =>
        this.#claim(resolve(this.#settings.dir, chooseFileName(answer.contentDisposition, this.#settings.url))),
      );
      if (this.#finishedEarlier) {
        await discard(answer.response);
        return { ...this.baseResult(), status: "up-to-date" };
      }
      // The manifest was read after the probe, which therefore carried no If-Range.
      if (this.#partial && !sameVersion(this.#partial.manifest, answer)) {
        this.#settings.warn(`${this.#path} changed on the server; discarding partial data and starting over`);
        this.#restartedBecauseChanged = true;
        await this.#discardPartial();
      }
    }
    if (answer.status === 304) {
      if (!this.#conditional) throw await statusError(answer.response);
      return { ...this.baseResult(), status: "up-to-date", size: (await stat(this.#path!)).size };
    }
    if (answer.status === 416) return this.#afterUnsatisfiable(answer);
    if (answer.status === 200) {
      if (partial) {
        await discard(answer.response);
        return "changed";
      }
      if (this.#partial) {
        this.#settings.warn(`${answer.finalUrl} no longer supports ranges; starting over`);
        await this.#discardPartial();
      }
      return this.#singleStream(answer);
    }
    return this.#ranged(answer);
  }

  async #afterUnsatisfiable(answer: ProbeAnswer): Promise<DownloadResult | "changed" | "lost"> {
    const partial = this.#partial;
    if (partial) {
      if (answer.size !== partial.manifest.size) return "changed";
      if (partial.done.bytes === partial.manifest.size) {
        this.#size = partial.manifest.size;
        this.#resumed = true;
        const file = await this.#openPart(partial.manifest.size, true);
        return file ? this.#finish(file, partial.manifest) : "lost";
      }
    } else if (answer.size === 0) {
      // A range of an empty file is unsatisfiable (RFC 9110 14.1.1): the file is empty.
      this.#size = 0;
      const manifest = this.#newManifest(answer, 0);
      const file = await this.#createPart(0);
      return this.#finish(file, manifest);
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

  /** The parallel path: the probe's range is the first connection's first range. */
  async #ranged(answer: ProbeAnswer): Promise<DownloadResult | "changed"> {
    const size = answer.size!;
    const probeRange = answer.contentRange!;
    if (this.#partial && !sameVersion(this.#partial.manifest, answer)) {
      // The probe carried If-Range, so a server that honours it would have said 200;
      // this one did not, but the size or ETag gives it away. Its bytes are the new
      // version's, so keep the answer and drop the old bytes.
      this.#restartedBecauseChanged = true;
      this.#settings.warn(`${this.#settings.url} changed on the server; discarding partial data and starting over`);
      await this.#discardPartial();
    }
    let file: FileHandle | undefined;
    let manifest: Manifest;
    let done: IntervalSet;
    if (this.#partial) {
      manifest = { ...this.#partial.manifest, finalUrl: answer.finalUrl };
      done = this.#partial.done;
      file = await discardOnFailure(answer, () => this.#openPart(size, false));
    } else {
      manifest = this.#newManifest(answer, size);
      done = new IntervalSet();
    }
    if (!file) {
      this.#partial = undefined;
      file = await discardOnFailure(answer, () => this.#createPart(size));
      manifest = this.#newManifest(answer, size);
      done = new IntervalSet();
    }
    this.#size = size;
    this.#resumed = done.bytes > 0;
    this.#counters.bytesAccepted = done.bytes;

    const missing = IntervalSet.from(done.missing(size));
    const planner = new RangePlanner(
      withoutRange(missing, probeRange.start, probeRange.end),
      this.#settings.connections,
      this.#settings.minSplit,
    );
    const probeAssignment = planner.adopt(probeRange.start, probeRange.end);
    const writers = new Set<CoalescingWriter>();
    // Bytes a connection still holds in memory are not on disk: flush them first, so
    // a crash loses at most about one checkpoint interval of each connection's bytes.
    const flushWriters = async () => {
      await Promise.all([...writers].map((writer) => writer.flush()));
    };
    const checkpoint = new Checkpointer(file, `${this.#path}.part.json`, manifest, done, flushWriters);
    const pace = new PaceTracker();
    const rates = new RangeRates();
    const interrupts = new Map<number, AbortController>();
    const idle = new IdleConnections();
    const sources = [primarySource(answer), ...(await this.#probeMirrors(size))];
    const context: TransferContext = {
      http: this.#http,
      sources,
      size,
      retries: this.#settings.retries,
      file,
      partPath: `${this.#path}.part`,
      planner,
      signal: this.#abort.signal,
      rateLimiter: this.#settings.rateLimiter,
      onWritten: (start, end) => checkpoint.written(start, end),
      counters: this.#counters,
      writers,
      interrupts,
      idle,
      rates,
      pickHedge: () => {
        const hedge = pickHedgeVictim(planner, rates, performance.now());
        if (hedge) this.#stats.hedged();
        return hedge;
      },
      warn: this.#settings.warn,
    };
    const stopTicking = this.#tick(size, async (elapsedSeconds) => {
      for (const straggler of pace.check(planner.inFlight, elapsedSeconds)) {
        planner.rescue(straggler);
        interrupts.get(straggler.id)?.abort();
        this.#stats.rescued();
        idle.notify();
      }
      await checkpoint.save();
    });
    const workers = [runWorker(context, 0, { assignment: probeAssignment, response: answer.response })];
    // One connection per range, plus one spare to steal or hedge; no more than asked.
    const connections = Math.min(this.#settings.connections, planner.unassigned.length + 2);
    for (let index = 1; index < connections; index++) workers.push(runWorker(context, index));
    const failure = await firstFailure(workers, this.#abort);
    stopTicking();
    if (failure !== undefined) {
      const changed = failure instanceof RemoteChangedError;
      // Save what is durable so a re-run resumes, unless those bytes are of an old version.
      if (!changed) await checkpoint.save().catch(() => {});
      await file.close();
      if (changed) return "changed";
      throw failure;
    }
    await checkpoint.settle();
    if (done.bytes !== size) {
      await checkpoint.save();
      await file.close();
      throw new Error(`internal error: transfer ended with ${size - done.bytes} bytes missing; run again to resume`);
    }
    return this.#finish(file, manifest);
  }

  /** No range support or no size: one stream from the start; nothing to resume. */
  async #singleStream(first: ProbeAnswer): Promise<DownloadResult> {
    const partPath = `${this.#path}.part`;
    let answer: ProbeAnswer | undefined = first;
    this.#size = first.size;
    for (let attempt = 1; ; attempt++) {
      const file = await discardOnFailure(answer, () => this.#createPart(0));
      let written = 0;
      const writer = new CoalescingWriter(file, (_start, end) => (written = end + 1));
      const stopTicking = this.#tick(this.#size, async () => {});
      try {
        const response = answer?.response ?? (await this.#getWhole());
        answer = undefined;
        const size = this.#size;
        this.#counters.bytesAccepted = 0;
        this.#counters.activeConnections = 1;
        let position = 0;
        for await (const chunk of response.body as AsyncIterable<Buffer>) {
          this.#counters.bytesTransferred += chunk.length;
          if (this.#settings.rateLimiter) await this.#settings.rateLimiter.take(chunk.length, this.#abort.signal);
          try {
            await writer.write(chunk, position);
          } catch (error) {
            throw fileError(error, partPath, "cannot write");
          }
          position += chunk.length;
          this.#counters.bytesAccepted = position;
        }
        await writer.flush().catch((error: unknown) => {
          throw fileError(error, partPath, "cannot write");
        });
        if (size !== undefined && written !== size) {
          throw new IntegrityError(`${first.finalUrl} sent ${written} bytes, not the ${size} it announced`, {
            code: "ERR_BAD_RANGE",
          });
        }
        this.#size = written;
        return await this.#finish(file, this.#newManifest(first, written));
      } catch (caught) {
        const error = toNetworkError(caught, first.finalUrl, this.#abort.signal);
        await file.close().catch(() => {});
        if (this.#abort.signal.aborted || !isRetryableFailure(error) || attempt >= Math.max(1, this.#settings.retries)) {
          await removeIfPresent(partPath).catch(() => {});
          throw error;
        }
        this.#stats.retried();
        await sleep(retryDelay(attempt, undefined), undefined, { signal: this.#abort.signal });
      } finally {
        this.#counters.activeConnections = 0;
        stopTicking();
      }
    }
  }

  async #getWhole() {
    const response = await getFollowingRedirects(this.#http, this.#settings.url, {}, this.#abort.signal);
    if (response.status !== 200) throw await statusError(response);
    return response;
  }

  /** Opens the existing `.part` of a resume, or `undefined` if it cannot be trusted. */
  async #openPart(size: number, complete: boolean): Promise<FileHandle | undefined> {
    const partPath = `${this.#path}.part`;
    let file: FileHandle;
    try {
      // Never through a symlink: someone else's file is not our partial download.
      file = await open(partPath, constants.O_RDWR | constants.O_NOFOLLOW);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ELOOP") {
        this.#settings.warn(`${partPath} is a symbolic link, not our partial file; starting over`);
        await this.#discardPartial();
        return undefined;
      }
      if (code !== "ENOENT") throw fileError(error, partPath, "cannot open");
      this.#settings.warn(`${partPath} is gone though its manifest remains; starting over`);
      await removeIfPresent(`${this.#path}.part.json`);
      return undefined;
    }
    const actual = (await file.stat()).size;
    if (actual !== size) {
      await file.close();
      this.#settings.warn(`${partPath} has ${actual} bytes, not ${size}: it was changed by someone else; starting over`);
      await this.#discardPartial();
      return undefined;
    }
    if (complete) this.#counters.bytesAccepted = size;
    return file;
  }

  /** A fresh full-length sparse `.part`, after checking the disk can hold it. */
  async #createPart(size: number): Promise<FileHandle> {
    const partPath = `${this.#path}.part`;
    await ensureSpace(partPath, size);
    // A stray `.part` (even a planted symlink) is replaced, never written through.
    await removeIfPresent(partPath);
    try {
      const file = await open(partPath, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
      if (size > 0) await file.truncate(size);
      return file;
    } catch (error) {
      throw fileError(error, partPath, "cannot create");
    }
  }

  /** fsync, size check, checksum, rename into place, mtime, then the bookkeeping goes. */
  async #finish(file: FileHandle, manifest: Manifest): Promise<DownloadResult> {
    const path = this.#path!;
    const partPath = `${path}.part`;
    const size = manifest.size;
    try {
      await file.datasync();
      const actual = (await file.stat()).size;
      if (actual !== size) {
        throw new IntegrityError(`${partPath} has ${actual} bytes, expected ${size}; run again to fetch it afresh`);
      }
    } catch (error) {
      throw error instanceof RangegetError ? error : fileError(error, partPath, "cannot finish");
    } finally {
      await file.close();
    }
    const checksum = this.#settings.checksum;
    if (checksum) {
      const actual = await hashFile(partPath, checksum.algorithm);
      if (actual !== checksum.hex) {
        // Bytes that hash wrong are no use to a re-run: it must fetch clean ones.
        await removeIfPresent(partPath);
        await removeIfPresent(`${path}.part.json`);
        throw new IntegrityError(
          `checksum mismatch for ${this.#settings.url}: ${checksum.algorithm} is ${actual}, expected ${checksum.hex}; the partial file was removed`,
          { code: "ERR_CHECKSUM" },
        );
      }
    }
    try {
      // A manifest on disk says "complete" before the rename, so a crash just after it
      // leaves an output the next run recognises (#finishedBeforeCrash) instead of a
      // manifest with gaps and no .part, which would mean fetching the file again.
      // Without one (a download shorter than a checkpoint), there is nothing to fix up:
      // skipping the write saves small files an fsync each.
      // No directory fsync: on a crash the journal keeps these renames and unlinks in
      // order, so either the output appeared or the .part and its complete manifest
      // remain, and the next run finishes it. The data itself was synced above.
      const manifestPath = `${path}.part.json`;
      if (size > 0 && (await stat(manifestPath).catch(() => undefined))) {
        await writeManifest(manifestPath, { ...manifest, done: [[0, size - 1]] });
      }
      await rename(partPath, path);
      const modified = parseHttpDate(manifest.lastModified);
      if (modified !== undefined) await utimes(path, new Date(), new Date(modified));
      await removeIfPresent(manifestPath);
      if (this.#settings.ifChanged) {
        // If-None-Match compares weakly (RFC 9110 13.1.2), so a weak ETag serves too.
        if (manifest.etag) await writeFile(etagSidecar(path), `${manifest.etag}\n`);
        else await removeIfPresent(etagSidecar(path));
      }
    } catch (error) {
      throw fileError(error, path, "cannot move the finished download to");
    }
    this.#size = size;
    this.#settings.onProgress?.({
      path,
      bytesDone: size,
      size,
      bytesPerSecond: 0,
      activeConnections: 0,
    });
    return this.baseResult();
  }

  /** Progress a few times a second; once a second, `everySecond` (pace check, checkpoint). */
  #tick(size: number | undefined, everySecond: (elapsedSeconds: number) => Promise<void>): () => void {
    const meter = new RateMeter();
    // Counted from now: the first tick's bytes took a whole tick to arrive.
    let lastSecond = performance.now();
    meter.add(0, lastSecond);
    let lastAccepted = this.#counters.bytesAccepted;
    const timer = setInterval(() => {
      const now = performance.now();
      meter.add(Math.max(0, this.#counters.bytesAccepted - lastAccepted), now);
      lastAccepted = this.#counters.bytesAccepted;
      this.#settings.onProgress?.({
        path: this.#path!,
        bytesDone: this.#counters.bytesAccepted,
        size,
        bytesPerSecond: meter.bytesPerSecond(now),
        activeConnections: this.#counters.activeConnections,
      });
      if (now - lastSecond >= CHECKPOINT_INTERVAL_MS - PROGRESS_INTERVAL_MS / 2) {
        const elapsedSeconds = (now - lastSecond) / 1000;
        lastSecond = now;
        everySecond(elapsedSeconds).catch(() => {});
      }
    }, PROGRESS_INTERVAL_MS);
    timer.unref();
    return () => clearInterval(timer);
  }

  /**
   * Mirrors are probed with a one-byte range for their size and validators. One
   * whose size differs is a different file: refused with a warning, as is one that
   * does not answer.
   */
  async #probeMirrors(size: number): Promise<Source[]> {
    const mirrors: Source[] = [];
    for (const url of this.#settings.mirrors) {
      try {
        const answer = await probe(this.#http, { url, range: { start: 0, end: 0 }, retries: 1 }, this.#abort.signal);
        await discard(answer.response);
        if (answer.status !== 206 || answer.size !== size) {
          this.#settings.warn(
            answer.status === 206
              ? `ignoring mirror ${url}: it has ${answer.size} bytes, not ${size}`
              : `ignoring mirror ${url}: it does not serve ranges (${answer.status})`,
          );
          continue;
        }
        mirrors.push({ ...primarySource(answer), primary: false });
      } catch (error) {
        if (this.#abort.signal.aborted) throw error;
        this.#settings.warn(`ignoring mirror ${url}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    return mirrors;
  }
}

function primarySource(answer: ProbeAnswer): Source {
  return {
    url: answer.finalUrl,
    origin: new URL(answer.finalUrl).origin,
    etag: answer.etag,
    ifRange: ifRangeValue(answer),
    primary: true,
    failed: false,
  };
}

/** Hedging a range that ends within this long is not worth a connection. */
const HEDGE_MIN_SECONDS = 1;
/** Below twice this, a hedge races for the whole rest rather than its back half. */
const HEDGE_MIN_BYTES = 64 * 1024;

/**
 * The in-flight range that will finish last at its rate, if worth racing, hedged so
 * that both parts end about together: the victim at its own rate, the hedge at what
 * the other connections have been doing.
 */
function pickHedgeVictim(planner: RangePlanner, rates: RangeRates, nowMs: number): Assignment | undefined {
  let victim: Assignment | undefined;
  let victimRate = 0;
  let victimSeconds = HEDGE_MIN_SECONDS;
  for (const assignment of planner.inFlight) {
    if (assignment.hedge || assignment.hedgeOf || remaining(assignment) <= 0) continue;
    const rate = rates.rateOf(assignment, nowMs);
    if (rate === undefined) continue;
    const seconds = rate > 0 ? remaining(assignment) / rate : Number.POSITIVE_INFINITY;
    if (seconds > victimSeconds) {
      victim = assignment;
      victimRate = rate;
      victimSeconds = seconds;
    }
  }
  if (!victim) return undefined;
  const typical = rates.typical(planner.inFlight, victim, nowMs);
  const share = typical !== undefined ? victimRate / (victimRate + typical) : 0.5;
  return planner.hedge(victim, HEDGE_MIN_BYTES, share);
}

/**
 * Makes the done record durable: fsync the data, then replace the manifest. The
 * snapshot is taken before the fsync, so the manifest never claims a byte that
 * the fsync did not cover. Saves never overlap.
 */
class Checkpointer {
  readonly #file: FileHandle;
  readonly #path: string;
  readonly #manifest: Manifest;
  readonly #done: IntervalSet;
  readonly #beforeSave: () => Promise<void>;
  #dirty = false;
  #saving: Promise<void> = Promise.resolve();

  constructor(file: FileHandle, path: string, manifest: Manifest, done: IntervalSet, beforeSave: () => Promise<void>) {
    this.#file = file;
    this.#path = path;
    this.#manifest = manifest;
    this.#done = done;
    this.#beforeSave = beforeSave;
  }

  written(start: number, end: number): void {
    this.#done.add(start, end);
    this.#dirty = true;
  }

  save(): Promise<void> {
    this.#saving = this.#saving.catch(() => {}).then(() => this.#saveNow());
    return this.#saving;
  }

  /** Waits for a save in progress; the file may be closed after this. */
  async settle(): Promise<void> {
    await this.#saving.catch(() => {});
  }

  async #saveNow(): Promise<void> {
    await this.#beforeSave();
    if (!this.#dirty) return;
    this.#dirty = false;
    const snapshot = this.#done.toArray();
    try {
      await this.#file.datasync();
    } catch (error) {
      this.#dirty = true;
      throw fileError(error, this.#path, "cannot sync the data of");
    }
    await writeManifest(this.#path, { ...this.#manifest, done: snapshot });
  }
}

/**
 * Runs the workers; the first failure stops the rest (their own errors, caused by
 * that stop, are noise). Resolves with the failure, or the caller's abort reason.
 */
async function firstFailure(workers: Promise<void>[], abort: AbortController): Promise<unknown> {
  let failure: unknown;
  await Promise.all(
    workers.map((worker) =>
      worker.catch((error: unknown) => {
        if (!abort.signal.aborted) {
          failure = error;
          abort.abort(error);
        } else if (failure === undefined) {
          failure = abort.signal.reason ?? error;
        }
      }),
    ),
  );
  return failure;
}

function withoutRange(set: IntervalSet, start: number, end: number): Interval[] {
  const result = new IntervalSet();
  for (const [a, b] of set.toArray()) {
    if (a < start) result.add(a, Math.min(b, start - 1));
    if (b > end) result.add(Math.max(a, end + 1), b);
  }
  return result.toArray();
}

/** Same size and, where the server gave them, the same validators. */
function sameVersion(manifest: Manifest, answer: ProbeAnswer): boolean {
  if (answer.size !== manifest.size) return false;
  if (isStrongEtag(manifest.etag) || isStrongEtag(answer.etag)) return manifest.etag === answer.etag;
  if (manifest.lastModified !== null || answer.lastModified !== null) return manifest.lastModified === answer.lastModified;
  return true;
}

/** If `step` fails, the probe's body must not keep a socket busy. */
async function discardOnFailure<T>(answer: ProbeAnswer | undefined, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (error) {
    if (answer) await discard(answer.response);
    throw error;
  }
}

async function ensureSpace(partPath: string, size: number): Promise<void> {
  if (size === 0) return;
  let free: number;
  try {
    const info = await statfs(dirname(partPath));
    free = info.bavail * info.bsize;
  } catch {
    return;
  }
  if (free < size) {
    throw new FileError(
      `not enough space for ${partPath}: the file needs ${size} bytes and ${free} are free; free some space or choose another --dir`,
      { path: partPath, code: "ERR_NO_SPACE" },
    );
  }
}

/** Like wget and aria2, create the output's directory if it is missing. */
async function mkdirFor(path: string): Promise<void> {
  const directory = dirname(path);
  try {
    await mkdir(directory, { recursive: true });
  } catch (error) {
    throw fileError(error, directory, "cannot create the directory");
  }
}

/** If-None-Match from the sidecar, If-Modified-Since from the output's mtime (set from Last-Modified). */
async function conditionalHeaders(path: string, mtime: Date): Promise<{ ifNoneMatch?: string; ifModifiedSince: string }> {
  const etag = await readFile(etagSidecar(path), "utf8").then(
    (text) => text.trim(),
    () => undefined,
  );
  return { ...(etag ? { ifNoneMatch: etag } : {}), ifModifiedSince: mtime.toUTCString() };
}

/** Where `ifChanged` keeps the ETag the previous download saw. */
export function etagSidecar(path: string): string {
  return `${path}.etag`;
}

/**
 * One file downloaded to disk: claim the output, probe, take the path the answer calls
 * for (parallel ranges, one stream, already complete, up to date), finish, and start
 * over when the remote file changed under a partial download. The work of each step
 * lives in its own module (claim, part-file, transfer, single-stream, verdict); this
 * class holds the attempt and the restart loop, and is long because every path a
 * probe's answer can take starts here.
 */
import { stat, type FileHandle } from "node:fs/promises";
import { basename, resolve } from "node:path";
import type { Dispatcher } from "undici";
import { partSink } from "./appending-sink.js";
import { copyEntry, dropEntry, findEntry, storeEntry, type CacheEntry } from "./cache.js";
import { adoptionWarning, claimOutput, conditionalHeaders, discardPartial, type ConditionalHeaders, type PartialState } from "./claim.js";
import type { ExpectedChecksum } from "./checksum.js";
import { checksumFor } from "./checksum-file.js";
import { FileError, IntegrityError, RemoteChangedError, UsageError } from "./errors.js";
import { digestOfFile } from "./file-digest.js";
import { chooseFileName } from "./filename.js";
import { ifRangeValue } from "./http-headers.js";
import { discard, type RequestContext } from "./http.js";
import { abortError, requestContext } from "./job-context.js";
import type { Lock } from "./lock.js";
import { readManifest, type Manifest } from "./manifest.js";
import type { Settings } from "./options.js";
import { finishedFrom, loadXattr } from "./origin-record.js";
import { adoptPart, createPart, finishPart, openPart, rangePlanning } from "./part-file.js";
import { partPaths } from "./part-paths.js";
import { PartFileStream } from "./part-sink.js";
import { probe, type ProbeAnswer } from "./probe.js";
import { IntervalSet, type Interval } from "./ranges.js";
import { checkDigest, PrefixHasher } from "./running-hash.js";
import { streamWhole } from "./single-stream.js";
import type { HttpStatsRecorder } from "./stats.js";
import type { TransferCounters } from "./ticker.js";
import { fileError } from "./to-error.js";
import { route, type JobState, type Step } from "./next-step.js";
import { downloadResult } from "./result.js";
import { transferRanges } from "./transfer.js";
import type { Checksum, DownloadResult } from "./types.js";
import { bodyPlacement, checkPublish, judge, NOTHING_KNOWN, sizeProofOf, type Known, type SizeProof, type Verdict } from "./verdict.js";

/** A file that keeps changing under us is not worth chasing forever. */
const MAX_RESTARTS = 3;

/**
 * How one attempt (a probe and what follows it) ended: the download is over, or the
 * remote file changed under a partial download, or our own partial file turned out to
 * be unusable (already said; not a remote change). Either of the last two starts over.
 */
type AttemptOutcome =
  | { kind: "finished"; result: DownloadResult }
  | { kind: "changed"; reason: string }
  | { kind: "lost" }
  /** The answer named a file with partial data of its own: probe again, knowing it. */
  | { kind: "again" };

/** One file's journey: claim the output, probe, transfer, finish; restart on a remote change. */
export class FileDownload {
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
  /** With `continue`: the length of an output another tool left, taken as a done prefix once the probe agrees. */
  #adopted: number | undefined;
  /** Every way this attempt learned the file's size, by source and size. */
  readonly #proofs = new Map<string, SizeProof>();
  /** What the bytes must match: the settings', or the checksum file's entry once the output's name is known. */
  #checksum: ExpectedChecksum | undefined;
  /** What the cache did for this file. */
  #cacheOutcome: DownloadResult["cache"] = null;
  /** The digest computed of the bytes, when a checksum was asked for. */
  #digest: Checksum | null = null;
  readonly #counters: TransferCounters = { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 };
  /** Why the file is fetched as one plain stream, which keeps nothing to resume; unset on the parallel path. */
  #oneStreamBecause: string | undefined;

  constructor(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder) {
    this.#settings = settings;
    this.#stats = stats;
    this.#startedAt = settings.clock.now();
    this.#http = requestContext(settings, dispatcher, stats);
    this.#checksum = settings.checksum;
  }

  /** What the result says so far (result.ts); a failure's catcher adds the error. */
  baseResult(): DownloadResult {
    return downloadResult({
      url: this.#settings.shownUrl,
      path: this.#path ?? this.#settings.output ?? "",
      elapsedMs: this.#settings.clock.now() - this.#startedAt,
      stats: this.#stats,
      size: this.#size,
      bytesTransferred: this.#counters.bytesTransferred,
      resumed: this.#resumed,
      restartedBecauseChanged: this.#restarts > 0,
      checksum: this.#digest,
      cache: this.#cacheOutcome,
    });
  }

  /**
   * After an abort: what a re-run finds. A plain stream's `.part` is removed (it cannot
   * be resumed); the parallel path's checkpoint leaves a manifest; an adopted output
   * (`continue`) stays as it was.
   */
  async leftOnAbort(): Promise<{ kept: "state" | "not-started" } | { kept: "nothing"; why: string }> {
    if (this.#oneStreamBecause !== undefined) return { kept: "nothing", why: this.#oneStreamBecause };
    const path = this.#path;
    if (this.#adopted !== undefined) return { kept: "state" };
    if (path !== undefined && (await stat(partPaths(path).manifest).catch(() => undefined))) return { kept: "state" };
    return this.#counters.bytesTransferred > 0 ? { kept: "nothing", why: "no byte had been written yet" } : { kept: "not-started" };
  }

  async run(): Promise<DownloadResult> {
    const signal = this.#settings.signal;
    const onAbort = () => this.#abort.abort(abortError(signal!));
    if (signal?.aborted) throw abortError(signal);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // Without -o, a file this run would name after the URL, finished from this URL or
      // partly downloaded from it, is recognised before any request (a re-run of a list):
      // then the probe asks for the first missing range, with If-Range.
      const known = this.#settings.output ?? (await this.#knownUnderUrlName());
      if (known !== undefined && (await this.#claim(known)) === "finished-earlier") {
        // Awaited here, inside the try: the lock stays held while the file is verified, and
        // a mismatch is not a rejection left unhandled while `finally` releases the lock.
        return await this.#upToDate();
      }
      const cached = await this.#fromCache();
      if (cached !== undefined) return cached;
      for (;;) {
        const outcome = await this.#attempt();
        if (outcome.kind === "finished") return outcome.result;
        if (outcome.kind === "again") continue;
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
    const { shownUrl: url, restartOnChange } = this.#settings;
    this.#settings.events.changed(reason);
    if (!restartOnChange || this.#restarts >= MAX_RESTARTS) {
      const times = restartOnChange ? ` (${this.#restarts + 1} times)` : "";
      // The bytes on disk are of a version that is gone: no .part is left without a manifest to vouch for it.
      await this.#dropPartial();
      throw new RemoteChangedError(`${reason}${times}; run again to download the new version`, { url });
    }
    this.#settings.warn(`${reason}; discarding partial data and starting over`);
    this.#restarts++;
    await this.#dropPartial();
  }

  async #dropPartial(): Promise<void> {
    this.#partial = undefined;
    this.#adopted = undefined;
    this.#resumed = false;
    if (this.#path !== undefined) await discardPartial(this.#path);
  }

  /**
   * The output is whole and up to date (its origin record, or a 304). With a checksum it
   * must still match (DESIGN, "Resume and change detection"): the file is read once;
   * a mismatch leaves it as it is.
   * @throws IntegrityError ERR_CHECKSUM on a mismatch; FileError when it cannot be read.
   */
  async #upToDate(): Promise<DownloadResult> {
    const expected = this.#checksum;
    const path = this.#path!;
    if (expected !== undefined) {
      const { hex } = await digestOfFile(path, expected.algorithm).catch((error: unknown) => {
        throw fileError(error, path, "cannot verify");
      });
      this.#digest = { algorithm: expected.algorithm, hex };
      checkDigest(expected, hex, this.#settings.shownUrl, `${path} is reported up to date but does not match; it was left as it is (--force fetches it again)`);
    }
    return { ...this.baseResult(), status: "up-to-date" };
  }

  /**
   * Claims `path` (lock, no clobbering, trusted partial state); says whether an earlier
   * run had finished it. With a checksum file, its entry for `path` is found first.
   * @throws UsageError when the checksum file has no entry for it (nothing was written).
   */
  async #claim(path: string, namedByServer = false): Promise<"claimed" | "finished-earlier"> {
    this.#checksumFromList(path, namedByServer);
    this.#path = path;
    const { url, force, ifChanged, warn } = this.#settings;
    const claim = await claimOutput(path, { url, force, ifChanged, continue: this.#settings.continue, xattr: await loadXattr(), warn, clock: this.#settings.clock });
    this.#lock = claim.lock;
    if (claim.kind === "finished-earlier") {
      this.#size = claim.size;
      return "finished-earlier";
    }
    this.#partial = claim.partial;
    this.#conditional = claim.conditional;
    this.#adopted = claim.adopted;
    return "claimed";
  }

  /**
   * With a cache and a digest known before any request: the cache's file of that digest,
   * copied to the `.part` and finished as a download is (hashed as it is read, synced,
   * renamed into place), with no request. Without `output` the name is the URL's (there
   * is no answer to name it). An entry that does not match is dropped, with a warning,
   * and the file is fetched. `undefined`: the download goes ahead (no entry, no digest
   * yet, or an existing output to update or adopt).
   */
  async #fromCache(): Promise<DownloadResult | undefined> {
    const { cache, dir, url, checksumList } = this.#settings;
    if (cache === undefined) return undefined;
    const named = this.#path ?? resolve(dir, chooseFileName(undefined, url));
    let expected = this.#checksum;
    if (expected === undefined && checksumList !== undefined) {
      try {
        expected = checksumFor(checksumList, { outputName: basename(named), url });
      } catch {
        // Not under the URL's name: the server's answer may name the file as listed.
        return undefined;
      }
    }
    const entry = expected && (await findEntry(cache, expected.algorithm, expected.accepted));
    if (!expected || !entry) return undefined;
    // Claimed here only for the copy: a download named by the server's answer starts unclaimed.
    const claimedHere = this.#lock === undefined;
    if (claimedHere) {
      // A file of the URL's name that is not ours: the server's answer may name another.
      const claimed = await this.#claim(named).catch((error: unknown) => {
        if (error instanceof FileError && error.code === "ERR_EXISTS") return undefined;
        throw error;
      });
      if (claimed === undefined) {
        await this.#unclaim();
        return undefined;
      }
      if (claimed === "finished-earlier") return this.#upToDate();
    }
    const result = this.#conditional !== undefined || this.#adopted !== undefined ? undefined : await this.#copyFromCache(entry, expected);
    if (result === undefined && claimedHere) await this.#unclaim();
    return result;
  }

  /** Copies `entry` to the claimed output's `.part` and finishes it; `undefined` when it does not match (dropped) or cannot be copied. */
  async #copyFromCache(entry: CacheEntry, expected: ExpectedChecksum): Promise<DownloadResult | undefined> {
    const { url, shownUrl, ifChanged, warn } = this.#settings;
    const path = this.#path!;
    const partPath = partPaths(path).part;
    // The cache's whole file is worth more than an earlier run's partial one.
    await this.#dropPartial();
    let size: number;
    let file: FileHandle | undefined;
    try {
      size = await copyEntry(entry, partPath);
      file = await openPart(path, size, warn);
    } catch (error) {
      warn(`cannot copy ${entry.path} from the cache to ${partPath} (${(error as Error).message}); downloading instead`);
      await discardPartial(path);
      return undefined;
    }
    if (file === undefined) return undefined;
    const hasher = new PrefixHasher(partPath, expected.algorithm, size > 0 ? [[0, size - 1]] : []);
    const manifest: Manifest = { version: 1, url, finalUrl: url, size, etag: null, lastModified: null, done: [] };
    const record = { url, etag: null, lastModified: null, size };
    try {
      this.#digest = await finishPart(file, manifest, { path, url: shownUrl, checksum: expected, hasher, ifChanged, record, clock: this.#settings.clock });
    } catch (error) {
      if (!(error instanceof IntegrityError)) throw error;
      await dropEntry(entry);
      warn(`the cache entry ${entry.path} does not match its digest: dropped it; downloading`);
      return undefined;
    }
    this.#checksum = expected;
    this.#size = size;
    this.#cacheOutcome = "hit";
    this.#settings.onProgress?.({ path, bytesDone: size, size, bytesPerSecond: 0, activeConnections: 0 });
    return this.baseResult();
  }

  /** Lets go of an output claimed only to look in the cache: the download names its own. */
  async #unclaim(): Promise<void> {
    await this.#lock?.release();
    this.#lock = undefined;
    this.#path = undefined;
    this.#partial = undefined;
    this.#conditional = undefined;
    this.#adopted = undefined;
    this.#checksum = this.#settings.checksum;
  }

  /**
   * After a verified download, with a cache: the file enters it. A cache that cannot take
   * it (no space, permission) costs a warning, not the download.
   */
  async #storeInCache(path: string): Promise<void> {
    const { cache } = this.#settings;
    if (cache === undefined || this.#digest === null) return;
    try {
      if (await storeEntry(cache, this.#digest, path)) this.#cacheOutcome = "stored";
    } catch (error) {
      this.#settings.warn(`cannot store ${path} in the cache ${cache}: ${(error as Error).message}`);
    }
  }

  /**
   * The entry of a checksum file for `path`, when the output's name was not known before
   * (it came from the answer, or from the URL for a file finished earlier);
   * `namedByServer` says so in the message.
   * @throws UsageError naming the file and the names looked up.
   */
  #checksumFromList(path: string, namedByServer: boolean): void {
    const list = this.#settings.checksumList;
    if (this.#checksum !== undefined || list === undefined) return;
    try {
      this.#checksum = checksumFor(list, { outputName: basename(path), url: this.#settings.url });
    } catch (error) {
      if (!namedByServer || !(error instanceof UsageError)) throw error;
      throw new UsageError(`${error.message} (the server named the file ${basename(path)}; nothing was written)`);
    }
  }

  /**
   * The path named after the URL, when its origin record says rangeget finished it from
   * this URL, or a trusted manifest there says it is being downloaded from this URL. A
   * name the server gives (Content-Disposition) is known only after the probe.
   */
  async #knownUnderUrlName(): Promise<string | undefined> {
    const { dir, url, force, ifChanged } = this.#settings;
    if (force || ifChanged) return undefined;
    const path = resolve(dir, chooseFileName(undefined, url));
    // A manifest that cannot be read is the claim's to report, with the right words.
    if ((await readManifest(partPaths(path).manifest, url).catch(() => undefined))?.trusted) return path;
    return (await finishedFrom(path, url, await loadXattr())) ? path : undefined;
  }

  /** One probe, and the path its answer calls for. */
  async #attempt(): Promise<AttemptOutcome> {
    const { minSplit, retries, url } = this.#settings;
    this.#abort = new AbortController();
    this.#proofs.clear();
    if (this.#settings.signal?.aborted) throw abortError(this.#settings.signal);
    const partial = this.#partial;
    const adoptedBefore = this.#adopted;
    let range = { start: this.#adopted ?? 0, end: (this.#adopted ?? 0) + minSplit - 1 };
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
        ifRange: partial ? ifRangeValue(partial.manifest, this.#http.clock.wall()) : undefined,
        ifNoneMatch: this.#conditional?.ifNoneMatch,
        ifModifiedSince: this.#conditional?.ifModifiedSince,
        known: partial ? knownOf(partial) : NOTHING_KNOWN,
        retries,
      },
      this.#abort.signal,
    );
    let verdict: Verdict = answer.verdict;
    const state: JobState = { job: "file", onDisk: this.#onDisk(), afterChange: false, restarted: this.#restarts > 0 };
    let step = route({ from: "probe", verdict, asked: answer.asked }, state);
    if (step.kind === "up-to-date") {
      this.#path ??= guessedPath;
      this.#checksumFromList(this.#path!, false);
      this.#size = (await stat(this.#path!)).size;
      return { kind: "finished", result: await this.#upToDate() };
    }
    if (this.#path === undefined) {
      const claimed = await discardOnFailure(answer, () =>
        this.#claim(resolve(this.#settings.dir, chooseFileName(answer.contentDisposition, url)), true),
      );
      if (claimed === "finished-earlier") {
        await discard(answer.response);
        return { kind: "finished", result: await this.#upToDate() };
      }
    }
    // A partial state or an output to adopt found only now, under the name the answer
    // gave: the probe asked without knowing it (from byte 0, without If-Range). Ask again
    // knowing it, so that no byte already on disk is fetched twice. (Otherwise what is on
    // disk is what the probe knew, and the step stands.)
    if ((this.#partial !== undefined && this.#partial !== partial) || (this.#adopted !== undefined && adoptedBefore === undefined)) {
      await discard(answer.response);
      return { kind: "again" };
    }
    if (step.kind === "restart") {
      // The partial data is of an old version; the answer may be the new one's bytes:
      // probed from its first byte, planned, fetched in parallel and checkpointed.
      const reason = changedOnServer(this.#settings.shownUrl, step.reason);
      await discardOnFailure(answer, () => this.#remoteChanged(reason));
      verdict = judge(answer.asked, NOTHING_KNOWN, answer.response);
      step = route({ from: "probe", verdict, asked: answer.asked }, { ...state, onDisk: "none", afterChange: true, restarted: true });
    }
    this.#proven(sizeProofOf(verdict));
    return this.#take(step, answer, verdict);
  }

  /** What is on disk of this file before the probe's answer is acted on. */
  #onDisk(): JobState["onDisk"] {
    if (this.#partial) return "partial";
    return this.#adopted === undefined ? "none" : "adopted";
  }

  /**
   * Carries out the step next-step.ts chose for the probe's answer. Every path that
   * does not read the answer's body discards it.
   * @throws IntegrityError when an adopted output is not the start of the remote file
   */
  async #take(step: Step, answer: ProbeAnswer, verdict: Verdict): Promise<AttemptOutcome> {
    switch (step.kind) {
      case "ranges":
        return this.#ranged(answer, verdict as RangedVerdict, step.size);
      case "stream":
        if (step.body === "fresh") await discard(answer.response);
        if (step.startOver !== undefined) {
          this.#settings.warn(`${answer.finalUrl} ${step.startOver}`);
          await discardOnFailure(answer, () => this.#dropPartial());
        }
        return this.#singleStream(step.body === "probe" ? answer : undefined, step.because);
      case "complete":
        await discard(answer.response);
        return this.#complete(answer, step.size);
      case "empty":
        await discard(answer.response);
        await this.#dropPartial();
        this.#size = 0;
        return this.#finish(await createPart(this.#path!, 0), this.#newManifest(answer, 0), 0, this.#hasher());
      case "probe-again":
        // Only a 206 of the new version is worth keeping; a whole-file 200 (the usual
        // answer to a stale If-Range) would make it one plain, unresumable stream.
        await discard(answer.response);
        return { kind: "again" };
      case "fail":
        await discard(answer.response);
        if (step.error === "not-the-start") {
          throw new IntegrityError(
            `${this.#path} (${this.#adopted} bytes) is not the start of ${this.#settings.shownUrl}: ${step.reason}; it was left as it is`,
          );
        }
        throw new Error(`internal error: ${step.reason}`);
      default:
        await discard(answer.response);
        throw new Error(`internal error: the step ${step.kind} after a probe`);
    }
  }

  /** Every byte of the proven size is on disk already (a 416 to a resume that had nothing missing). */
  async #complete(answer: ProbeAnswer, size: number): Promise<AttemptOutcome> {
    const partial = this.#partial;
    this.#size = size;
    this.#resumed = true;
    let file: FileHandle | undefined;
    if (partial) file = await openPart(this.#path!, size, this.#settings.warn);
    else if (this.#adopted === size) {
      file = await adoptPart(this.#path!, size, size, this.#settings.clock);
      this.#settings.warn(adoptionWarning(this.#path!, size));
    }
    if (!file) return { kind: "lost" };
    this.#counters.bytesAccepted = size;
    const hasher = this.#hasher(partial ? partial.done.toArray() : [[0, size - 1]]);
    return this.#finish(file, partial?.manifest ?? this.#newManifest(answer, size), partial?.done.bytes ?? size, hasher);
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

  /** Records one way the file's size was learned; every one is weighed before publishing. */
  #proven(proof: SizeProof | undefined): void {
    if (proof) this.#proofs.set(`${proof.source}:${proof.size}`, proof);
  }

  /** The parallel path: reopen or create the `.part`, transfer, finish. */
  async #ranged(answer: ProbeAnswer, verdict: RangedVerdict, size: number): Promise<AttemptOutcome> {
    const placement = bodyPlacement(verdict, answer.asked)!;
    let file: FileHandle | undefined;
    let manifest = this.#newManifest(answer, size);
    let done = new IntervalSet();
    if (this.#partial) {
      file = await discardOnFailure(answer, () => openPart(this.#path!, size, this.#settings.warn, this.#partial!.manifest.done));
      if (file) {
        manifest = { ...this.#partial.manifest, finalUrl: answer.finalUrl };
        done = this.#partial.done;
      }
    } else if (this.#adopted !== undefined) {
      const adopted = this.#adopted;
      file = await discardOnFailure(answer, () => adoptPart(this.#path!, adopted, size, this.#settings.clock));
      this.#settings.warn(adoptionWarning(this.#path!, adopted));
      if (adopted > 0) done.add(0, adopted - 1);
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
        placement,
        proven: (proof) => this.#proven(proof),
        size,
        missing: done.missing(size),
        split: await rangePlanning(this.#path!, this.#settings.minSplit),
        sink: await partSink(file, this.#path!, manifest, done, hasher, this.#settings),
        counters: this.#counters,
        signal: this.#abort.signal,
      });
    } catch (error) {
      await hasher?.close();
      throw error;
    }
    if (outcome.kind !== "complete") await hasher?.close();
    const step = route({ from: "transfer", outcome }, { job: "file", onDisk: "partial", afterChange: false, restarted: this.#restarts > 0 });
    switch (step.kind) {
      case "finish":
        return this.#finish(file, manifest, done.bytes, hasher);
      case "restart":
        return { kind: "changed", reason: step.reason };
      case "stream":
        if (step.startOver !== undefined) this.#settings.warn(`${answer.finalUrl} ${step.startOver}`);
        await this.#dropPartial();
        return this.#singleStream(undefined, step.because);
      default:
        throw new Error(`internal error: the step ${step.kind} after a transfer`);
    }
  }

  /** With a checksum: a hasher of `<output>.part`, `alreadyDone` (bytes on disk) hashed first. */
  #hasher(alreadyDone: Interval[] = []): PrefixHasher | undefined {
    const algorithm = this.#checksum?.algorithm;
    return algorithm === undefined ? undefined : new PrefixHasher(partPaths(this.#path!).part, algorithm, alreadyDone);
  }

  /**
   * No range support or no provable size: one stream from the start; nothing to resume.
   * `answer` is the probe's when its body is the whole file, else a plain GET is sent.
   * `because` says why, for an interrupt's message.
   */
  async #singleStream(answer: ProbeAnswer | undefined, because: string): Promise<AttemptOutcome> {
    this.#adopted = undefined;
    this.#oneStreamBecause = because;
    const create = () => PartFileStream.create(this.#path!, this.#checksum?.algorithm);
    const target = answer === undefined ? await create() : await discardOnFailure(answer, create);
    const { size, finalUrl, validators } = await streamWhole({
      settings: this.#settings,
      http: this.#http,
      label: this.#path!,
      first: answer,
      target,
      counters: this.#counters,
      signal: this.#abort.signal,
      proven: (proof) => this.#proven(proof),
    });
    this.#size = size;
    const manifest: Manifest = { version: 1, url: this.#settings.url, finalUrl, size, ...validators, done: [] };
    return this.#finish(target.file, manifest, size, target.hasher);
  }

  /**
   * The file is whole: the bytes on disk must equal every size the answers proved
   * (DESIGN, "What an answer proves"); then fsync, verify, record its origin, rename
   * into place, report.
   * @throws IntegrityError when no size was proven or two proofs disagree (nothing is published).
   */
  async #finish(file: FileHandle, manifest: Manifest, bytesOnDisk: number, hasher: PrefixHasher | undefined): Promise<AttemptOutcome> {
    const path = this.#path!;
    const check = checkPublish([...this.#proofs.values()], bytesOnDisk);
    if (!check.publish) {
      await hasher?.close();
      await file.close().catch(() => {});
      await discardPartial(path);
      throw new IntegrityError(`${this.#settings.shownUrl}: ${check.reason}; nothing was saved as ${path}`);
    }
    const { url, ifChanged } = this.#settings;
    const checksum = this.#checksum;
    const record = { url, etag: manifest.etag, lastModified: manifest.lastModified, size: manifest.size };
    this.#digest = await finishPart(file, manifest, { path, url: this.#settings.shownUrl, checksum, hasher, ifChanged, record, clock: this.#settings.clock });
    this.#size = manifest.size;
    await this.#storeInCache(path);
    this.#settings.onProgress?.({ path, bytesDone: manifest.size, size: manifest.size, bytesPerSecond: 0, activeConnections: 0 });
    return { kind: "finished", result: this.baseResult() };
  }
}

/** A verdict whose answer's body is a range of the file (or the whole file, read up to one). */
type RangedVerdict = Extract<Verdict, { kind: "bytes" | "range-ignored" }>;

/** What a trusted manifest says of the version on disk, for the verdict. */
function knownOf(partial: PartialState): Known {
  const { size, etag, lastModified } = partial.manifest;
  return { size, etag, lastModified, bytesDone: partial.done.bytes };
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

/**
 * The ordered-stream path of `-o -`, `--extract` and `downloadStream`: the file is
 * fetched over parallel ranges (transfer.ts) or as one stream (single-stream.ts) into
 * an `OrderedSink`, whose `body` gives the bytes in file order while later ranges are
 * fetched ahead of it, within a window. Nothing is saved to disk (but what `--extract`
 * unpacks): no claim, lock, `.part`, manifest or resume. A remote change after the
 * first byte left cannot be undone, so it fails the stream instead of restarting it.
 */
import { createHash, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Dispatcher } from "undici";
import { abortError, requestContext } from "./job-context.js";
import { FileError, IntegrityError, RemoteChangedError, UsageError, summarizeError } from "./errors.js";
import { startExtraction } from "./extract.js";
import type { Settings } from "./options.js";
import { MIN_WINDOW_BYTES, OrderedSink, streamWindow, type StreamWindow } from "./ordered-sink.js";
import { discard, type RequestContext } from "./http.js";
import { probe, type ProbeAnswer } from "./probe.js";
import { checkDigest } from "./running-hash.js";
import { route, type JobState, type Step } from "./next-step.js";
import type { Consumer, RangeWriter } from "./sink.js";
import { streamWhole } from "./single-stream.js";
import type { HttpStatsRecorder } from "./stats.js";
import type { TransferCounters } from "./ticker.js";
import { downloadResult } from "./result.js";
import { transferRanges } from "./transfer.js";
import type { Checksum, DownloadResult } from "./types.js";
import { bodyPlacement, checkPublish, NOTHING_KNOWN, sizeProofOf, type Known, type SizeProof, type Verdict } from "./verdict.js";

/**
 * The ordered stream as the consumer of a parallel transfer and of a single stream
 * (whose retry from byte 0 is harmless: bytes already sent are dropped). With a
 * checksum it hashes each chunk as it leaves, and a wrong digest fails `body` instead
 * of ending it. It has no checkpoint and no end of its own: the job ends or fails its
 * `sink` once every size the answers proved agrees.
 */
export class OrderedOutput implements Consumer {
  readonly sink: OrderedSink;
  readonly window: StreamWindow;
  /** Aborted with `FileError` `ERR_OUTPUT_CLOSED` when the reader goes away. */
  readonly gone = new AbortController();
  #hash: Hash | undefined;
  #verify: ((hex: string) => void) | undefined;
  #onRoom: () => void = () => {};
  #roomAt = 0;

  constructor(window: StreamWindow) {
    this.window = window;
    this.sink = new OrderedSink({
      windowBytes: window.windowBytes,
      onChunk: (chunk) => this.#hash?.update(chunk),
      beforeEnd: () => this.#verify?.(this.#hash!.digest("hex")),
      onAdvance: (position) => this.#advanced(position),
      onConsumerGone: (error) => this.gone.abort(error),
    });
  }

  get body(): Readable {
    return this.sink.body;
  }

  /** Hashes every byte that leaves with `algorithm`; `verify` gets the hex digest before `body` ends and throws to fail it. */
  hashWith(algorithm: Checksum["algorithm"], verify: (hex: string) => void): void {
    this.#hash = createHash(algorithm);
    this.#verify = verify;
  }

  get limit(): number {
    return this.sink.limit;
  }

  onRoom(listener: () => void): void {
    this.#onRoom = listener;
  }

  /** One writer for every range and every attempt: what was sent stays sent, and bytes before the sink's position are dropped. */
  writer(): RangeWriter {
    return this.sink;
  }

  /**
   * The planner only hands out whole ranges below the limit, so telling it of room
   * more often than once a range is wasted work.
   */
  #advanced(position: number): void {
    if (position - this.#roomAt < this.window.rangeBytes) return;
    this.#roomAt = position;
    this.#onRoom();
  }
}

/** Where a stream download's bytes end up. */
export type StreamDestination = { kind: "stream"; output: OrderedOutput } | { kind: "extract"; dir: string; force: boolean };

/** One file fetched into an ordered stream: for the caller's reader, or unpacked into a directory. */
export class StreamDownload {
  readonly #settings: Settings;
  readonly #stats: HttpStatsRecorder;
  readonly #http: RequestContext;
  readonly #startedAt: number;
  readonly #destination: StreamDestination;
  readonly #output: OrderedOutput;
  readonly #abort = new AbortController();
  readonly #counters: TransferCounters = { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 };
  #size: number | undefined;
  #digest: Checksum | null = null;

  /** @throws UsageError for a `streamWindow` below 1 MiB. */
  constructor(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder, destination: StreamDestination, windowBytes?: number) {
    if (windowBytes !== undefined && !(Number.isInteger(windowBytes) && windowBytes >= MIN_WINDOW_BYTES)) {
      throw new UsageError(`streamWindow must be a whole number of bytes, at least ${MIN_WINDOW_BYTES} (1 MiB), not ${windowBytes}`);
    }
    this.#settings = settings;
    this.#stats = stats;
    this.#startedAt = settings.clock.now();
    this.#destination = destination;
    this.#output =
      destination.kind === "stream" ? destination.output : new OrderedOutput(streamWindow(settings.connections, settings.minSplit, windowBytes));
    // The unpacker is this body's only reader, and it may not have started (an existing
    // DIR is refused first): a failure is reported by run(), never as an unhandled 'error'.
    if (destination.kind === "extract") this.#output.body.on("error", () => {});
    this.#http = requestContext(settings, dispatcher, stats);
  }

  /** What the result says: `path` is `-` for a stream, the directory for `--extract`. */
  baseResult(): DownloadResult {
    return downloadResult({
      url: this.#settings.shownUrl,
      path: this.#label(),
      elapsedMs: this.#settings.clock.now() - this.#startedAt,
      stats: this.#stats,
      size: this.#size,
      bytesTransferred: this.#counters.bytesTransferred,
      checksum: this.#digest,
    });
  }

  /**
   * Fetches the file into the stream (and, for `--extract`, unpacks it and moves it
   * into place). The stream's `body` fails with the error this rejects with.
   */
  async run(): Promise<DownloadResult> {
    const signal = this.#settings.signal;
    if (signal?.aborted) throw abortError(signal);
    const onAbort = () => this.#abort.abort(abortError(signal!));
    // The reader went away: every request ends at once.
    const onGone = () => this.#abort.abort(this.#output.gone.signal.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.#output.gone.signal.addEventListener("abort", onGone, { once: true });
    try {
      if (this.#destination.kind === "extract") await this.#extract(this.#destination);
      else await this.#fetch("the bytes were already passed on");
      this.#settings.onProgress?.({
        path: this.#label(),
        bytesDone: this.#output.sink.position,
        size: this.#size,
        bytesPerSecond: 0,
        activeConnections: 0,
      });
      return this.baseResult();
    } catch (caught) {
      const error = signal?.aborted ? abortError(signal) : caught;
      this.#output.sink.abort(error);
      throw error;
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#output.gone.signal.removeEventListener("abort", onGone);
    }
  }

  #label(): string {
    return this.#destination.kind === "extract" ? this.#destination.dir : "-";
  }

  /** Unpacks while fetching; DIR appears only after a clean end and a matching checksum. */
  async #extract(destination: { dir: string; force: boolean }): Promise<void> {
    const { shownUrl, warn } = this.#settings;
    const extraction = await startExtraction({ dir: destination.dir, force: destination.force, url: shownUrl, warn });
    const unpacked = pipeline(this.#output.body, extraction.input);
    unpacked.catch(() => {});
    try {
      await this.#fetch("nothing was unpacked");
      await unpacked;
      await extraction.commit();
    } catch (error) {
      this.#output.sink.abort(error);
      const unpackError = await unpacked.then(
        () => undefined,
        (failure: unknown) => failure,
      );
      await extraction.discard();
      // The unpacker broke the pipe: its error (a corrupt archive, a full disk) says
      // why, not "the reader went away". A local write failure (a full disk) is the cause
      // whatever the download saw next, even "bytes arrived, but the file has …" when
      // every byte had arrived and the unpacker dropped what it held.
      const unpackerFailed = summarizeError(error).code === "ERR_OUTPUT_CLOSED" && unpackError !== undefined;
      const local = unpackError instanceof FileError && unpackError.code !== "ERR_OUTPUT_CLOSED";
      throw local || (unpackerFailed && summarizeError(unpackError).code !== "ERR_OUTPUT_CLOSED") ? unpackError : error;
    }
  }

  /**
   * Probe, then what its verdict calls for: parallel ranges, or one stream (a server
   * without ranges, an unknown size, a refused Range), into the ordered sink; ends it
   * once every byte went out and the sizes the answers proved agree with it.
   */
  async #fetch(consequence: string): Promise<void> {
    const { url, shownUrl, retries, checksum } = this.#settings;
    const output = this.#output;
    if (checksum) {
      output.hashWith(checksum.algorithm, (hex) => {
        this.#digest = { algorithm: checksum.algorithm, hex };
        checkDigest(checksum, hex, shownUrl, consequence);
      });
    }
    const proofs: SizeProof[] = [];
    const proven = (proof: SizeProof) => proofs.push(proof);
    const rangeBytes = output.window.rangeBytes;
    const request = { url, range: { start: 0, end: rangeBytes - 1 }, known: NOTHING_KNOWN, retries };
    const answer = await probe(this.#http, request, this.#abort.signal);
    const proof = sizeProofOf(answer.verdict);
    if (proof) proven(proof);
    const state: JobState = { job: "stream", onDisk: "none", afterChange: false, restarted: false };
    await this.#take(route({ from: "probe", verdict: answer.verdict, asked: answer.asked }, state), answer, proven);
    // Every byte is in the sink now: sent to the reader, or held until it reads.
    const check = checkPublish(proofs, output.sink.position + output.sink.bufferedBytes);
    if (!check.publish) throw new IntegrityError(`${this.#settings.shownUrl}: ${check.reason}`);
    await output.sink.end();
  }

  /**
   * Carries out the step next-step.ts chose for the probe's answer, and for the end of a
   * parallel transfer. Every path that does not read the answer's body discards it.
   * @throws RemoteChangedError when the file changed under bytes that already left
   */
  async #take(first: Step, answer: ProbeAnswer, proven: (proof: SizeProof) => void): Promise<void> {
    const sink = this.#output.sink;
    const verdict: Verdict = answer.verdict;
    let step = first;
    if (step.kind !== "ranges" && !(step.kind === "stream" && step.body === "probe")) await discard(answer.response);
    if (step.kind === "ranges") {
      const size = step.size;
      this.#size = size;
      sink.expectSize(size);
      const rangeBytes = this.#output.window.rangeBytes;
      const outcome = await transferRanges({
        settings: this.#settings,
        http: this.#http,
        stats: this.#stats,
        label: this.#label(),
        answer,
        placement: bodyPlacement(verdict, answer.asked)!,
        proven,
        size,
        missing: [[0, size - 1]],
        // Ranges of one size, handed out in file order within the window.
        split: { minSplit: rangeBytes, maxRange: rangeBytes },
        sink: this.#output,
        counters: this.#counters,
        signal: this.#abort.signal,
      });
      step = route({ from: "transfer", outcome }, { job: "stream", onDisk: "none", afterChange: false, restarted: false });
    }
    switch (step.kind) {
      case "finish":
        return;
      case "stream": {
        const body = step.body === "probe" ? answer : undefined;
        if (body && (verdict.kind === "whole" || verdict.kind === "range-ignored") && verdict.size !== undefined) sink.expectSize(verdict.size);
        // After ranges, bytes of the probe's version may have left: the stream must be of it too.
        const kept = first.kind === "ranges" ? { size: this.#size, etag: answer.etag, lastModified: answer.lastModified, bytesDone: 0 } : undefined;
        return this.#stream(body, proven, kept);
      }
      case "empty":
        this.#size = 0;
        sink.expectSize(0);
        return;
      case "fail":
        if (step.error === "changed") throw new RemoteChangedError(step.reason, { url: this.#settings.shownUrl });
        throw new Error(`internal error: ${step.reason}`);
      default:
        throw new Error(`internal error: the step ${step.kind} in a stream`);
    }
  }

  /** One stream from the first byte (the probe's own body when it is the whole file); `kept`: the version of bytes the output gave already. */
  async #stream(answer: ProbeAnswer | undefined, proven: (proof: SizeProof) => void, kept?: Known): Promise<void> {
    const { size } = await streamWhole({
      settings: this.#settings,
      http: this.#http,
      label: this.#label(),
      first: answer,
      target: this.#output,
      kept,
      counters: this.#counters,
      signal: this.#abort.signal,
      proven,
    });
    this.#size = size;
  }
}

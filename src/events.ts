/**
 * What a download tells programs as it goes: the versioned event objects of
 * `onEvent` and `--progress json` (start, progress, retry, rescue, hedge, changed,
 * finish, error), and the trace of `onTrace` and `--verbose` (each request, its answer
 * and the verdict on it). The engine calls one method of `DownloadEvents` where each
 * thing happens (a retry loop, the ticker, the transfer, the restart after a change);
 * this module stamps, throttles, redacts and hands the objects on. Nothing here
 * decides anything about the download.
 */
import type { Clock } from "./clock.js";
import { DEFAULT_INTERVALS } from "./intervals.js";
import { HttpStatusError, RangegetError, summarizeError } from "./errors.js";
import { redactText, redactUrl } from "./redact.js";
import { retryNotice } from "./to-error.js";
import type { RetryNotice } from "./retry.js";
import { EVENT_SCHEMA_VERSION, type DownloadEvent, type DownloadResult, type EventBase, type EventRange, type ProgressEvent, type TraceEvent } from "./types.js";

/** Who listens: the library's callbacks, or the CLI's. */
export interface EventListeners {
  onEvent?: ((event: DownloadEvent) => void) | undefined;
  onTrace?: ((event: TraceEvent) => void) | undefined;
}

/**
 * Request headers traced with their values: what rangeget itself sends. Any other
 * (Authorization, Cookie, and the user's own `-H` headers, which often carry API keys
 * under custom names) is traced by name with `***`.
 */
const SHOWN_REQUEST_HEADERS = new Set(["range", "if-range", "if-none-match", "if-modified-since", "user-agent", "accept-encoding"]);
/** Answer headers worth a line of trace: what the verdict reads, and why a retry waits. */
const TRACED_RESPONSE_HEADERS = ["content-range", "content-length", "content-type", "content-encoding", "etag", "last-modified", "location", "retry-after", "accept-ranges"];

/**
 * One download's events. Made once per download by `resolveSettings`; the engine
 * calls it where things happen. Without listeners every method returns at once.
 */
export class DownloadEvents {
  readonly #listeners: EventListeners;
  readonly #url: string;
  readonly #clock: Pick<Clock, "now" | "wall">;
  readonly #progressEventMs: number;
  #path: string;
  #started = false;
  #lastProgressAt: number | undefined;

  /**
   * @param url the URL as it may be shown (its password already `***`)
   * @param path the output path when known before any answer (`-o`), else `""`
   * @param clock the download's clock: `now` for the progress interval, `wall` for each event's `time`
   * @param progressEventMs `progress` events at most this often, ms (intervals.ts `progressEventMs`)
   */
  constructor(listeners: EventListeners, url: string, path: string, clock: Pick<Clock, "now" | "wall">, progressEventMs = DEFAULT_INTERVALS.progressEventMs) {
    this.#listeners = listeners;
    this.#url = url;
    this.#path = path;
    this.#clock = clock;
    this.#progressEventMs = progressEventMs;
  }

  /** Whether anyone listens to the trace: building its objects costs a little on every request. */
  get tracing(): boolean {
    return this.#listeners.onTrace !== undefined;
  }

  /** The transfer begins at `path`; a second call before the next `changed` is the same transfer (a single stream's retry). */
  start(path: string, size: number | undefined, connections: number): void {
    this.#path = path;
    if (this.#started) return;
    this.#started = true;
    this.#lastProgressAt = this.#clock.now();
    this.#emit({ event: "start", size: size ?? null, connections });
  }

  /** A progress snapshot (the ticker's, a few times a second): passed on at most every `progressEventMs`. */
  progress(snapshot: ProgressEvent): void {
    if (this.#listeners.onEvent === undefined) return;
    const now = this.#clock.now();
    if (this.#lastProgressAt !== undefined && now - this.#lastProgressAt < this.#progressEventMs) return;
    this.#lastProgressAt = now;
    if (snapshot.path !== "") this.#path = snapshot.path;
    const { bytesDone, size, bytesPerSecond, activeConnections } = snapshot;
    const etaSeconds = size === undefined || bytesPerSecond <= 0 ? null : Math.max(0, size - bytesDone) / bytesPerSecond;
    this.#emit({
      event: "progress",
      bytesDone,
      size: size ?? null,
      bytesPerSecond: Math.round(bytesPerSecond),
      etaSeconds: etaSeconds === null ? null : Math.round(etaSeconds * 10) / 10,
      activeConnections,
    });
  }

  /** A retry loop is about to wait `delayMs` before trying again. */
  retry(notice: RetryNotice): void {
    if (this.#listeners.onEvent === undefined) return;
    const { error } = notice;
    // A host's connection limit reached wraps the answer that said so (a 503): its code is that answer's.
    const failure = !(error instanceof RangegetError) && error instanceof Error && error.cause instanceof RangegetError ? error.cause : error;
    const status = failure instanceof HttpStatusError ? failure.status : null;
    this.#emit({
      event: "retry",
      reason: redactText(error instanceof Error ? error.message : String(error)),
      code: summarizeError(failure).code,
      status,
      delayMs: Math.round(notice.delayMs),
      attempt: notice.attempt,
    });
  }

  /** Bytes `start`..`end` were moved off a slow connection. */
  rescue(start: number, end: number): void {
    this.#emit({ event: "rescue", range: { start, end } });
  }

  /** An idle connection races for bytes `start`..`end`. */
  hedge(start: number, end: number): void {
    this.#emit({ event: "hedge", range: { start, end } });
  }

  /** The remote file changed (`reason`, a sentence); the next transfer is a new `start`. */
  changed(reason: string): void {
    this.#started = false;
    this.#emit({ event: "changed", reason: redactText(reason) });
  }

  /** The download's end: `finish`, or `error` for a failed result. */
  end(result: DownloadResult): void {
    if (result.path !== "") this.#path = result.path;
    if (result.error === null) {
      this.#emit({ event: "finish", result });
      return;
    }
    const { code, message, exitCode } = result.error;
    this.#emit({ event: "error", code, message: redactText(message), exit: exitCode, result });
  }

  /** A GET is sent to `url` (shown form) with these headers; all but rangeget's own are traced as `***`. */
  request(url: string, headers: Record<string, string>): void {
    const onTrace = this.#listeners.onTrace;
    if (onTrace === undefined) return;
    const shown: Record<string, string> = {};
    for (const [name, value] of Object.entries(headers)) shown[name] = SHOWN_REQUEST_HEADERS.has(name.toLowerCase()) ? value : "***";
    onTrace({ event: "request", time: this.#clock.wall(), method: "GET", url: redactUrl(url), headers: shown });
  }

  /** The final answer to a request for `url`: its status and the headers that matter to a download. */
  response(url: string, status: number, headers: Record<string, string | undefined>): void {
    const onTrace = this.#listeners.onTrace;
    if (onTrace === undefined) return;
    const shown: Record<string, string> = {};
    for (const name of TRACED_RESPONSE_HEADERS) {
      const value = headers[name];
      if (value !== undefined) shown[name] = name === "location" ? redactText(value) : value;
    }
    onTrace({ event: "response", time: this.#clock.wall(), url: redactUrl(url), status, headers: shown });
  }

  /**
   * What the answer from `url` proved (the verdict's kind, and its range, size or
   * reason in words). Returns `verdict`, so a call site can wrap `judge(…)` in it.
   */
  verdict<V extends { kind: string }>(url: string, verdict: V): V {
    const onTrace = this.#listeners.onTrace;
    if (onTrace !== undefined) onTrace({ event: "verdict", time: this.#clock.wall(), url: redactUrl(url), kind: verdict.kind, detail: describeVerdict(verdict) });
    return verdict;
  }

  #emit(fields: DistributiveOmit<DownloadEvent, keyof EventBase>): void {
    const onEvent = this.#listeners.onEvent;
    if (onEvent === undefined) return;
    onEvent({ v: EVENT_SCHEMA_VERSION, time: this.#clock.wall(), url: this.#url, path: this.#path, ...fields } as DownloadEvent);
  }
}

/** What the retry loops of a request path hold: the download's counts and its events. */
export interface RetryReporting {
  stats: { retried(): void };
  events?: DownloadEvents | undefined;
  /** Where a retry worth a word is said (a refused connection), once per host. */
  warn?: ((message: string) => void) | undefined;
  /** The hosts already said to refuse connections in this download. */
  warned?: Set<string> | undefined;
}

/**
 * A retry loop's `onRetry`: the retry is counted (`--stats`, `--json`) and reported as a
 * `retry` event; a refused connection is said once per host, so seconds of backoff
 * against a server that is down are not silent.
 */
export function retried(context: RetryReporting, retry: RetryNotice): void {
  context.stats.retried();
  context.events?.retry(retry);
  const notice = retryNotice(retry.error);
  if (notice !== undefined && context.warn !== undefined && context.warned !== undefined && !context.warned.has(notice.host)) {
    context.warned.add(notice.host);
    context.warn(notice.message);
  }
}

/** `verdict`, traced (`onTrace`) as the verdict on the answer from `url`: wraps `judge(…)` at a call site. */
export function traced<V extends { kind: string }>(events: DownloadEvents | undefined, url: string, verdict: V): V {
  return events === undefined ? verdict : events.verdict(url, verdict);
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** `bytes 0-1023 of 4096`, `size 4096`, or the verdict's reason: what a trace line says after the kind. */
function describeVerdict(verdict: { kind: string }): string {
  const fields = verdict as { start?: number; end?: number; size?: number; reason?: string; status?: number };
  if (fields.start !== undefined && fields.end !== undefined) return `bytes ${fields.start}-${fields.end} of ${fields.size ?? "?"}`;
  if (fields.reason !== undefined) return redactText(fields.reason);
  if (fields.status !== undefined) return `status ${fields.status}`;
  if (fields.size !== undefined) return `size ${fields.size}`;
  return "";
}

import { basename } from "node:path";
import { redactUrl } from "../redact.js";
import { formatBytes, formatDuration } from "../size.js";
import type { DownloadResult, ProgressEvent } from "../types.js";
import type { BarPayload } from "./progress-bars.js";

/** Where progress goes: stderr in the CLI, a fake stream in tests. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/**
 * Shows progress for a batch of downloads. Everything the CLI writes to stderr while
 * downloads run goes through `log`, so lines never tear through the bars.
 */
export interface ProgressReporter {
  update(index: number, event: ProgressEvent): void;
  fileEnd(index: number, result: DownloadResult): void;
  /** Writes one line, above the bars on a TTY; `-q` does not silence it. */
  log(line: string): void;
  /** Draws the final state and gives the terminal back; call once, at the end. */
  stop(): void;
}

export interface ProgressOptions {
  stream: ProgressStream;
  quiet: boolean;
  /** The URLs of the batch, by index: a file's name until the server names it. */
  urls: readonly string[];
  /** Milliseconds; injected so tests can drive the plain-line throttle. */
  now?: () => number;
}

/** Without a TTY, a log file or CI console wants a line now and then, not a redraw. */
export const PLAIN_LINE_INTERVAL_MS = 10_000;

/**
 * The reporter for this stream: quiet, bars on a TTY, plain lines otherwise. Async
 * because the bars' module (and cli-progress with it) loads only when a TTY needs it.
 */
export async function createProgressReporter(options: ProgressOptions): Promise<ProgressReporter> {
  if (options.quiet) return new QuietReporter(options.stream);
  if (options.stream.isTTY === true) {
    const { BarReporter } = await import("./progress-bars.js");
    return new BarReporter(options.stream, options.urls);
  }
  return new PlainReporter(options.stream, options.urls, options.now ?? Date.now);
}

class QuietReporter implements ProgressReporter {
  constructor(private readonly stream: ProgressStream) {}
  update(): void {}
  fileEnd(): void {}
  log(line: string): void {
    this.stream.write(`${line}\n`);
  }
  stop(): void {}
}

class PlainReporter implements ProgressReporter {
  /** When each file last printed a line (or started): the 10 s clock is per file. */
  private readonly lastLineAt = new Map<number, number>();
  private readonly latest = new Map<number, ProgressEvent>();

  constructor(
    private readonly stream: ProgressStream,
    private readonly urls: readonly string[],
    private readonly now: () => number,
  ) {}

  update(index: number, event: ProgressEvent): void {
    this.latest.set(index, event);
    const now = this.now();
    const last = this.lastLineAt.get(index);
    if (last === undefined) {
      this.lastLineAt.set(index, now);
      return;
    }
    if (now - last < PLAIN_LINE_INTERVAL_MS) return;
    this.lastLineAt.set(index, now);
    this.log(`${fileLabel(this.urls[index] ?? "", event.path)}: ${describeProgress(event)}`);
  }

  fileEnd(index: number, result: DownloadResult): void {
    const line = describeEnd(result, this.latest.get(index));
    if (line !== undefined) this.log(`${fileLabel(result.url, result.path)}: ${line}`);
    // An ended file is never reported again: forget it, so a long list costs no memory.
    this.latest.delete(index);
    this.lastLineAt.delete(index);
  }

  log(line: string): void {
    this.stream.write(`${line}\n`);
  }

  stop(): void {}
}

const LABEL_WIDTH = 24;
const BAR_WIDTH = 20;

/** `name  [#####-----]  45%  115 MiB/256 MiB  12.1 MiB/s  ETA 12s  8 conn` */
export function formatBarLine(payload: BarPayload, maxWidth: number): string {
  const fraction = payload.size === undefined ? undefined : payload.size === 0 ? 1 : Math.min(1, payload.bytesDone / payload.size);
  const filled = fraction === undefined ? 0 : Math.round(fraction * BAR_WIDTH);
  const bar = fraction === undefined ? "?".repeat(BAR_WIDTH) : "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
  const percent = fraction === undefined ? "  ?%" : `${Math.floor(fraction * 100)}%`.padStart(4);
  const bytes = `${formatBytes(payload.bytesDone)}/${payload.size === undefined ? "?" : formatBytes(payload.size)}`;
  const tail = payload.files ?? `${payload.activeConnections} conn`;
  const line = [
    fitLabel(payload.label),
    bar,
    percent,
    bytes.padEnd(19),
    `${formatBytes(payload.bytesPerSecond)}/s`.padEnd(12),
    `ETA ${formatEta(payload)}`.padEnd(10),
    tail,
  ].join(" ");
  return line.length > maxWidth ? line.slice(0, Math.max(0, maxWidth)) : line;
}

function fitLabel(label: string): string {
  return label.length > LABEL_WIDTH ? `${label.slice(0, LABEL_WIDTH - 1)}…` : label.padEnd(LABEL_WIDTH);
}

function formatEta(progress: { bytesDone: number; size: number | undefined; bytesPerSecond: number }): string {
  if (progress.size === undefined || progress.bytesPerSecond <= 0) return "--";
  return formatDuration(Math.max(0, progress.size - progress.bytesDone) / progress.bytesPerSecond);
}

/** `45% (115 MiB of 256 MiB), 12.1 MiB/s, 8 connections, ETA 12s` */
export function describeProgress(event: ProgressEvent): string {
  const speed = `${formatBytes(event.bytesPerSecond)}/s`;
  const connections = `${event.activeConnections} connection${event.activeConnections === 1 ? "" : "s"}`;
  const eta = event.size === undefined ? "" : `, ETA ${formatEta(event)}`;
  return `${describeAmount(event)}, ${speed}, ${connections}${eta}`;
}

/** `45% (115 MiB of 256 MiB)`, or `115 MiB of unknown size`. */
function describeAmount(progress: { bytesDone: number; size: number | undefined }): string {
  if (progress.size === undefined) return `${formatBytes(progress.bytesDone)} of unknown size`;
  const percent = progress.size === 0 ? 100 : Math.floor((progress.bytesDone / progress.size) * 100);
  return `${percent}% (${formatBytes(progress.bytesDone)} of ${formatBytes(progress.size)})`;
}

/**
 * The closing line of one file, or `undefined` for a failure: main reports those as
 * errors, once.
 */
export function describeEnd(result: DownloadResult, last: ProgressEvent | undefined): string | undefined {
  const seconds = result.elapsedMs / 1000;
  const speed = seconds > 0 ? `, ${formatBytes(result.bytesTransferred / seconds)}/s` : "";
  const size = result.size === null ? "" : ` ${formatBytes(result.size)}`;
  switch (result.status) {
    case "downloaded":
      return `downloaded${size} in ${formatDuration(seconds)}${speed}`;
    case "resumed":
      return `resumed and finished${size} in ${formatDuration(seconds)} (${formatBytes(result.bytesTransferred)} fetched this run${speed})`;
    case "up-to-date":
      return "up to date, not downloaded again";
    case "failed":
      if (result.error?.code !== "ERR_ABORTED" || last === undefined) return undefined;
      return `interrupted at ${describeAmount(last)}`;
  }
}

/** The output's base name once known, else the URL's last path segment, else the URL (its password hidden). */
export function fileLabel(url: string, path: string | undefined): string {
  if (path !== undefined && path !== "") return basename(path);
  try {
    const segment = new URL(url).pathname.split("/").pop() ?? "";
    return segment === "" ? redactUrl(url) : decodeURIComponent(segment);
  } catch {
    return redactUrl(url);
  }
}

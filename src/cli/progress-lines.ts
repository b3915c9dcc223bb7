/**
 * What the CLI's progress reporters share (progress.ts makes them; progress-bars.ts
 * draws the bars): the reporter's contract and the text of its lines. Pure: no
 * terminal, no clock.
 */
import { basename } from "node:path";
import { redactUrl } from "../redact.js";
import { formatBytes, formatDuration } from "../size.js";
import type { DownloadEvent, DownloadResult, ProgressEvent } from "../types.js";

/** Where progress goes: stderr in the CLI, a fake stream in tests. */
export type ProgressStream = NodeJS.WritableStream & { isTTY?: boolean; columns?: number };

/**
 * Shows progress for a batch of downloads. Everything the CLI writes to stderr while
 * downloads run goes through `log`, so lines never tear through the bars.
 */
export interface ProgressReporter {
  update(index: number, event: ProgressEvent): void;
  /** One of the file's events (onEvent): what `--progress json` prints. */
  event(index: number, event: DownloadEvent): void;
  fileEnd(index: number, result: DownloadResult): void;
  /** Writes one line, above the bars on a TTY; `-q` does not silence it. */
  log(line: string): void;
  /**
   * Draws the final state and gives the terminal back; call once, at the end. With
   * `keep`, the bars stay on screen as they were (an exit in the middle of the run:
   * the user sees how far each file got), else they are cleared.
   */
  stop(options?: { keep?: boolean }): void;
}

/** What one bar line shows. */
export interface BarPayload {
  label: string;
  bytesDone: number;
  size: number | undefined;
  bytesPerSecond: number;
  activeConnections: number;
  /** The total line's own text, shown instead of a connection count. */
  files?: string;
}

/**
 * The fields of a bar line, most useful first: when the terminal is too narrow for all
 * of them, the last ones go first (as wget's bar gives up its parts one by one). The
 * name and the percentage always stay; the ETA outlives the speed, the speed the byte
 * counts, and the connection count (or a batch's file count) goes first. The bar itself
 * is drawn only in the room the fields leave.
 */
export const BAR_FIELDS = ["percent", "eta", "speed", "bytes", "tail"] as const;
export type BarField = (typeof BAR_FIELDS)[number];
/** Where each field stands on the line, whatever is dropped. */
const DISPLAY_ORDER: readonly BarField[] = ["percent", "bytes", "speed", "eta", "tail"];

/** Widest text of each field, so that the bars of a batch keep their columns. */
const FIELD_WIDTHS: Record<BarField, number> = {
  percent: 4, // "100%"
  bytes: 17, // "1023 MiB/1023 MiB"
  speed: 10, // "12.3 MiB/s"
  eta: 9, // "ETA 1m05s"
  tail: 10, // "8 conn", "12/34 files"
};
/** The name gets this much before the bar gets any room, and grows to NAME_WIDTH after it. */
const NAME_MIN_WIDTH = 12;
const NAME_ROOMY_WIDTH = 16;
const NAME_WIDTH = 24;
const BAR_MIN_WIDTH = 6;
const BAR_WIDTH = 20;

/** Which fields a line of `width` columns shows, and how wide its name and bar are (0: no bar). */
export interface BarLayout {
  fields: readonly BarField[];
  nameWidth: number;
  barWidth: number;
}

/**
 * The layout of a bar line for a terminal `columns` wide. One column is left free: a
 * line that fills the last column makes some terminals wrap when the next line is
 * drawn. Pure, so every width can be tested.
 */
export function layoutBar(columns: number): BarLayout {
  const width = Math.max(1, columns - 1);
  let fields: BarField[] = [...BAR_FIELDS];
  const used = (shown: readonly BarField[]) => shown.reduce((sum, field) => sum + FIELD_WIDTHS[field] + 1, 0);
  while (fields.length > 1 && NAME_MIN_WIDTH + used(fields) > width) fields = fields.slice(0, -1);
  let room = width - used(fields);
  if (room < NAME_MIN_WIDTH) return { fields: DISPLAY_ORDER.filter((field) => fields.includes(field)), nameWidth: Math.max(1, room), barWidth: 0 };
  let nameWidth = Math.min(NAME_ROOMY_WIDTH, room);
  room -= nameWidth;
  const barWidth = room - 1 >= BAR_MIN_WIDTH ? Math.min(BAR_WIDTH, room - 1) : 0;
  if (barWidth > 0) room -= barWidth + 1;
  nameWidth += Math.min(room, NAME_WIDTH - nameWidth);
  return { fields: DISPLAY_ORDER.filter((field) => fields.includes(field)), nameWidth, barWidth };
}

/**
 * `name  [#####-----]  45%  115 MiB/256 MiB  12.1 MiB/s  ETA 12s  8 conn`, laid out by
 * `layoutBar` for a terminal `columns` wide and never wider than `columns - 1`.
 */
export function formatBarLine(payload: BarPayload, columns: number): string {
  const layout = layoutBar(columns);
  const fraction = payload.size === undefined ? undefined : payload.size === 0 ? 1 : Math.min(1, payload.bytesDone / payload.size);
  const filled = fraction === undefined ? 0 : Math.round(fraction * layout.barWidth);
  const text: Record<BarField, string> = {
    percent: fraction === undefined ? "?%" : `${Math.floor(fraction * 100)}%`,
    bytes: `${formatBytes(payload.bytesDone)}/${payload.size === undefined ? "?" : formatBytes(payload.size)}`,
    speed: `${formatBytes(payload.bytesPerSecond)}/s`,
    eta: `ETA ${formatEta(payload)}`,
    tail: payload.files ?? `${payload.activeConnections} conn`,
  };
  const parts = [fitLabel(payload.label, layout.nameWidth)];
  if (layout.barWidth > 0) {
    parts.push(fraction === undefined ? "?".repeat(layout.barWidth) : "█".repeat(filled) + "░".repeat(layout.barWidth - filled));
  }
  for (const field of layout.fields) {
    parts.push(field === "percent" ? text.percent.padStart(FIELD_WIDTHS.percent) : text[field].padEnd(FIELD_WIDTHS[field]));
  }
  const line = parts.join(" ").trimEnd();
  // Only a field wider than its column (a size beyond 1023 TiB) could get here.
  return line.length > columns - 1 ? line.slice(0, Math.max(1, columns - 1)) : line;
}

function fitLabel(label: string, width: number): string {
  return label.length > width ? `${label.slice(0, Math.max(0, width - 1))}…` : label.padEnd(width);
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

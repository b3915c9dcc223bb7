/**
 * `-v, --verbose`: the library's trace (each request, its answer, the verdict on it)
 * and the events a person debugging a download wants beside it (retries with their
 * reason and delay, rescues, hedges, a remote change), one line each, as curl `-v`
 * shows `>` for what is sent and `<` for what comes back. Secrets are already `***`
 * in what the library hands over (events.ts); this module only words the lines.
 */
import type { DownloadEvent, TraceEvent } from "../types.js";
import { fileLabel } from "./progress-lines.js";

/** `rangeget: > GET <url> range: bytes=0-4194303 …`, `rangeget: < 206 content-range: …`, `rangeget: = bytes 0-4194303 of 10485760 (bytes)`. */
export function formatTrace(event: TraceEvent): string {
  switch (event.event) {
    case "request":
      return `rangeget: > GET ${event.url}${headerText(event.headers)}`;
    case "response":
      return `rangeget: < ${event.status} ${event.url}${headerText(event.headers)}`;
    case "verdict":
      return `rangeget: = ${event.kind}${event.detail === "" ? "" : `: ${event.detail}`} (${event.url})`;
  }
}

/** The verbose line for an event, or `undefined` for those the progress display already shows (start, progress, finish, error). */
export function formatVerboseEvent(event: DownloadEvent): string | undefined {
  const name = fileLabel(event.url, event.path);
  switch (event.event) {
    case "retry":
      return `rangeget: ${name}: retry in ${(event.delayMs / 1000).toFixed(1)} s after attempt ${event.attempt} (${event.code}): ${event.reason}`;
    case "rescue":
      return `rangeget: ${name}: bytes ${event.range.start}-${event.range.end} moved off a slow connection onto a fresh one`;
    case "hedge":
      return `rangeget: ${name}: an idle connection races for bytes ${event.range.start}-${event.range.end} of the slowest range`;
    case "changed":
      return `rangeget: ${name}: ${event.reason}`;
    default:
      return undefined;
  }
}

function headerText(headers: Record<string, string>): string {
  return Object.entries(headers)
    .map(([name, value]) => `  ${name}: ${value}`)
    .join("");
}

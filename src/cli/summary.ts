/**
 * A list's closing line ("N files: ... downloaded, ... resumed, ... up to date ..."),
 * counted as files end.
 */
import { formatBytes, formatDuration } from "../size.js";
import type { DownloadResult } from "../types.js";

/**
 * The counts behind a batch's closing line, added up as files end so that a long list
 * keeps no results in memory.
 */
export class BatchTally {
  files = 0;
  downloaded = 0;
  resumed = 0;
  upToDate = 0;
  failed = 0;
  interrupted = 0;
  /** Stopped by the signal before their first request: nothing of them was touched. */
  notStarted = 0;
  /** Bytes fetched this run, all files. */
  bytes = 0;

  add(result: DownloadResult): void {
    this.files += 1;
    this.bytes += result.bytesTransferred;
    if (result.status === "downloaded" || result.status === "resumed") this.downloaded += 1;
    if (result.status === "resumed") this.resumed += 1;
    if (result.status === "up-to-date") this.upToDate += 1;
    if (result.error?.code === "ERR_ABORTED" && result.http.requests === 0) this.notStarted += 1;
    else if (result.error?.code === "ERR_ABORTED") this.interrupted += 1;
    else if (result.status === "failed") this.failed += 1;
  }

  /**
   * The closing line of a batch, as aria2 ends a run with its result table, shortened
   * to one line: `rangeget: 12 files: 9 downloaded (2 resumed), 1 up to date, 2 failed;
   * 1.20 GiB in 34s, 36.1 MiB/s`; after Ctrl-C, files the signal stopped before their
   * first request are "not started", not "interrupted". `elapsedMs` is the batch's wall time, not the sum of
   * the files'. Categories with no file are left out.
   */
  format(elapsedMs: number): string {
    const parts = [
      ...(this.downloaded > 0 ? [`${this.downloaded} downloaded${this.resumed > 0 ? ` (${this.resumed} resumed)` : ""}`] : []),
      ...(this.upToDate > 0 ? [`${this.upToDate} up to date`] : []),
      ...(this.failed > 0 ? [`${this.failed} failed`] : []),
      ...(this.interrupted > 0 ? [`${this.interrupted} interrupted`] : []),
      ...(this.notStarted > 0 ? [`${this.notStarted} not started`] : []),
    ];
    const seconds = elapsedMs / 1000;
    const speed = seconds > 0 && this.bytes > 0 ? `, ${formatBytes(this.bytes / seconds)}/s` : "";
    const files = `${this.files} file${this.files === 1 ? "" : "s"}`;
    return `rangeget: ${files}${parts.length > 0 ? `: ${parts.join(", ")}` : ""}; ${formatBytes(this.bytes)} in ${formatDuration(seconds)}${speed}`;
  }
}

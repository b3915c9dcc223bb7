import { formatBytes, formatDuration } from "../size.js";
import type { DownloadResult } from "../types.js";

/**
 * The closing line of a batch, as aria2 ends a run with its result table, shortened
 * to one line: `rangeget: 12 files: 9 downloaded (2 resumed), 1 up to date, 2 failed;
 * 1.20 GiB in 34s, 36.1 MiB/s`. Bytes are those fetched this run; `elapsedMs` is the
 * batch's wall time, not the sum of the files'. Categories with no file are left out.
 */
export function formatBatchSummary(results: readonly DownloadResult[], elapsedMs: number): string {
  const count = (test: (result: DownloadResult) => boolean) => results.filter(test).length;
  const downloaded = count((result) => result.status === "downloaded" || result.status === "resumed");
  const resumed = count((result) => result.status === "resumed");
  const upToDate = count((result) => result.status === "up-to-date");
  const interrupted = count((result) => result.error?.code === "ERR_ABORTED");
  const failed = count((result) => result.status === "failed") - interrupted;
  const parts = [
    ...(downloaded > 0 ? [`${downloaded} downloaded${resumed > 0 ? ` (${resumed} resumed)` : ""}`] : []),
    ...(upToDate > 0 ? [`${upToDate} up to date`] : []),
    ...(failed > 0 ? [`${failed} failed`] : []),
    ...(interrupted > 0 ? [`${interrupted} interrupted`] : []),
  ];
  const bytes = results.reduce((sum, result) => sum + result.bytesTransferred, 0);
  const seconds = elapsedMs / 1000;
  const speed = seconds > 0 && bytes > 0 ? `, ${formatBytes(bytes / seconds)}/s` : "";
  const files = `${results.length} file${results.length === 1 ? "" : "s"}`;
  return `rangeget: ${files}${parts.length > 0 ? `: ${parts.join(", ")}` : ""}; ${formatBytes(bytes)} in ${formatDuration(seconds)}${speed}`;
}

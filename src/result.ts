/**
 * The one builder of a `DownloadResult` (types.ts), for the file job, the stream job
 * and a download that failed before either started: every field has one default, so
 * the three cannot drift apart in what a result says.
 */
import type { HttpStatsRecorder } from "./stats.js";
import type { Checksum, DownloadResult } from "./types.js";

/** What a job knows of its download; what it leaves out takes the value of "nothing happened". */
export interface ResultFacts {
  /** The URL as shown (credentials redacted). */
  url: string;
  /** The output path; `-` for a stream, the directory for `extract`; `""` when unknown. */
  path: string;
  /** Milliseconds on the job's clock since it started. */
  elapsedMs: number;
  stats: HttpStatsRecorder;
  /** Default `downloaded`, or `resumed` when `resumed` is set. */
  status?: DownloadResult["status"];
  /** Bytes; `null` (default) while no answer proved it. */
  size?: number | undefined;
  bytesTransferred?: number;
  resumed?: boolean;
  restartedBecauseChanged?: boolean;
  checksum?: Checksum | null;
  cache?: DownloadResult["cache"];
}

/** The result of `facts`, `error: null` (a failure's summary is added by its catcher). */
export function downloadResult(facts: ResultFacts): DownloadResult {
  const resumed = facts.resumed ?? false;
  return {
    url: facts.url,
    path: facts.path,
    status: facts.status ?? (resumed ? "resumed" : "downloaded"),
    size: facts.size ?? null,
    bytesTransferred: facts.bytesTransferred ?? 0,
    elapsedMs: Math.round(facts.elapsedMs),
    resumed,
    restartedBecauseChanged: facts.restartedBecauseChanged ?? false,
    error: null,
    checksum: facts.checksum ?? null,
    cache: facts.cache ?? null,
    http: facts.stats.snapshot(),
  };
}

import { describe, expect, it } from "vitest";
import { BatchTally } from "../src/cli/summary.js";
import type { DownloadResult } from "../src/types.js";

const MiB = 1024 * 1024;

function result(status: DownloadResult["status"], bytesTransferred: number, errorCode?: string, requests = 1): DownloadResult {
  return {
    url: "http://a.test/f",
    path: "/d/f",
    status,
    size: null,
    bytesTransferred,
    elapsedMs: 1000,
    resumed: status === "resumed",
    restartedBecauseChanged: false,
    error: errorCode === undefined ? null : { code: errorCode, message: errorCode },
    http: { requests, statusCounts: {}, retries: 0, rescues: 0, hedges: 0, origins: {}, latencyMs: { p50: null, p95: null, p99: null } },
  };
}

/** The closing line for `results`, counted as the CLI counts them: one at a time as each ends. */
function formatBatchSummary(results: DownloadResult[], elapsedMs: number): string {
  const tally = new BatchTally();
  for (const result of results) tally.add(result);
  return tally.format(elapsedMs);
}

describe("BatchTally", () => {
  it("after Ctrl-C counts the files stopped before their first request as not started, not interrupted", () => {
    const results = [result("downloaded", 4 * MiB), result("failed", 1 * MiB, "ERR_ABORTED"), result("failed", 0, "ERR_ABORTED", 0), result("failed", 0, "ERR_ABORTED", 0)];
    expect(formatBatchSummary(results, 1000)).toBe("rangeget: 4 files: 1 downloaded, 1 interrupted, 2 not started; 5.00 MiB in 1s, 5.00 MiB/s");
  });

  it("counts files by outcome, adds this run's bytes, and gives the batch's wall time and rate", () => {
    const results = [
      result("downloaded", 30 * MiB),
      result("resumed", 10 * MiB),
      result("up-to-date", 0),
      result("failed", 0, "ERR_HTTP_STATUS"),
      result("failed", 0, "ERR_ABORTED"),
    ];
    expect(formatBatchSummary(results, 4000)).toBe(
      "rangeget: 5 files: 2 downloaded (1 resumed), 1 up to date, 1 failed, 1 interrupted; 40.0 MiB in 4s, 10.0 MiB/s",
    );
  });

  it("leaves out what did not happen", () => {
    expect(formatBatchSummary([result("up-to-date", 0), result("up-to-date", 0)], 300)).toBe("rangeget: 2 files: 2 up to date; 0 B in 0s");
    expect(formatBatchSummary([], 10)).toBe("rangeget: 0 files; 0 B in 0s");
  });
});

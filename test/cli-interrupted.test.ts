import { describe, expect, it } from "vitest";
import { InterruptedFiles } from "../src/cli/interrupted.js";
import type { KeptOnAbort } from "../src/errors.js";
import type { DownloadResult } from "../src/types.js";

function aborted(kept: KeptOnAbort | undefined, message = "interrupted; nothing was saved (this server does not serve ranges): run again to start over"): DownloadResult {
  return {
    url: "http://127.0.0.1/a.bin",
    path: "/tmp/a.bin",
    status: "failed",
    size: null,
    bytesTransferred: 0,
    elapsedMs: 0,
    resumed: false,
    restartedBecauseChanged: false,
    error: { code: "ERR_ABORTED", message, exitCode: 130, ...(kept === undefined ? {} : { kept }) },
    checksum: null,
    http: { requests: 0, statusCounts: {}, retries: 0, rescues: 0, hedges: 0, origins: {}, peakConnections: 0, latencyMs: { p50: null, p95: null, p99: null } },
  };
}

function linesAfter(results: Array<[DownloadResult, string | undefined]>): string[] {
  const files = new InterruptedFiles();
  for (const [result, label] of results) files.add(result, label);
  return files.lines();
}

describe("what an interrupt says of each file", () => {
  it('says "state saved" only when a file saved its state', () => {
    expect(linesAfter([[aborted("state"), undefined]])).toEqual(["interrupted: state saved; run the same command again to resume"]);
    expect(linesAfter([[aborted("nothing"), undefined]])).toEqual([
      "interrupted; nothing was saved (this server does not serve ranges): run again to start over",
    ]);
  });

  it("names each file of a batch that kept nothing, then says the others' state is saved; unstarted files are not listed", () => {
    expect(
      linesAfter([
        [aborted("state"), "one.bin"],
        [aborted("nothing"), "two.bin"],
        [aborted("not-started"), "three.bin"],
      ]),
    ).toEqual([
      "two.bin: interrupted; nothing was saved (this server does not serve ranges): run again to start over",
      "interrupted: the other files' state is saved; run the same command again to resume them",
    ]);
  });

  it("says that nothing had started when no file had fetched anything", () => {
    expect(linesAfter([[aborted("not-started"), "a.bin"]])).toEqual(["interrupted before anything was fetched; run the same command again to start"]);
  });

  it("ignores files that ended otherwise", () => {
    const finished = { ...aborted(undefined), status: "downloaded" as const, error: null };
    expect(linesAfter([[finished, "a.bin"], [aborted("state"), "b.bin"]])).toEqual(["interrupted: state saved; run the same command again to resume"]);
  });
});

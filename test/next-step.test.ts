/**
 * The next step after the verdict (src/next-step.ts), for both jobs: a table of every
 * verdict the probe hands over and every way a transfer ends, against what is on disk.
 */
import { describe, expect, it } from "vitest";
import { route, type JobState, type Step } from "../src/next-step.js";
import type { TransferOutcome } from "../src/transfer.js";
import type { Asked, Verdict } from "../src/verdict.js";

const validators = { etag: '"v1"', lastModified: null };
const probeAsked: Asked = { range: { start: 0, end: 1023 }, ifRange: false, conditional: false, first: true };
/** A resume that asked for the missing bytes 5000-5999 with If-Range. */
const resumeAsked: Asked = { range: { start: 5000, end: 5999 }, ifRange: true, conditional: false, first: true };

const file = (onDisk: JobState["onDisk"] = "none", extra: Partial<JobState> = {}): JobState => ({ job: "file", onDisk, afterChange: false, restarted: false, ...extra });
const stream: JobState = { job: "stream", onDisk: "none", afterChange: false, restarted: false };

const bytes: Verdict = { kind: "bytes", start: 0, end: 1023, answered: { start: 0, end: 1023 }, size: 10_000, validators };
const whole: Verdict = { kind: "whole", size: 10_000, validators };
const changed: Verdict = { kind: "changed", reason: "its ETag is now \"v2\"" };

function probe(verdict: Verdict, state: JobState, asked: Asked = probeAsked): Step {
  return route({ from: "probe", verdict, asked }, state);
}

function afterTransfer(outcome: TransferOutcome, state: JobState): Step {
  return route({ from: "transfer", outcome }, state);
}

describe("route after the probe", () => {
  it.each<[string, Verdict, JobState, Step]>([
    ["a 206 of a fresh download: parallel ranges", bytes, file(), { kind: "ranges", size: 10_000 }],
    ["a 206 of a resume: parallel ranges", bytes, file("partial"), { kind: "ranges", size: 10_000 }],
    ["a 206 of a stream: parallel ranges into the window", bytes, stream, { kind: "ranges", size: 10_000 }],
    ["a 304 to ifChanged: up to date", { kind: "not-modified" }, file(), { kind: "up-to-date" }],
    ["a 416 with every byte on disk: complete", { kind: "complete", size: 10_000 }, file("partial"), { kind: "complete", size: 10_000 }],
    ["a 0-byte file", { kind: "empty-file", validators }, file(), { kind: "empty" }],
    ["a 0-byte file as a stream", { kind: "empty-file", validators }, stream, { kind: "empty" }],
    ["a change under a partial: restart", changed, file("partial"), { kind: "restart", reason: 'its ETag is now "v2"' }],
    ["a change under an adopted output: refused, the output is not ours", changed, file("adopted"), { kind: "fail", error: "not-the-start", reason: 'its ETag is now "v2"' }],
    ["a change under a stream: bytes left already", changed, stream, { kind: "fail", error: "changed", reason: 'its ETag is now "v2"' }],
    ["a 200 of a fresh download: the probe's body as one stream", whole, file(), { kind: "stream", body: "probe", because: "this server does not serve ranges" }],
    [
      "a 200 to a resume: starting over, the probe's body as one stream",
      whole,
      file("partial"),
      { kind: "stream", body: "probe", because: "this server does not serve ranges", startOver: "does not serve ranges; starting over" },
    ],
    [
      "a 200 after a restart: the new version came as one stream",
      whole,
      file("none", { restarted: true }),
      { kind: "stream", body: "probe", because: "the new version after the remote change came as one stream" },
    ],
    ["a 200 to a stream", whole, stream, { kind: "stream", body: "probe", because: "a stream keeps nothing on disk" }],
    [
      "no size from ranges: a fresh plain GET",
      { kind: "size-unknown", validators },
      file(),
      { kind: "stream", body: "fresh", because: "this server does not tell the file's size" },
    ],
    [
      "a Range refused (400/403/405/501 to the first request): a fresh plain GET, starting over",
      { kind: "retry-without-range", reason: "it answered a ranged request with 416" },
      file("partial"),
      { kind: "stream", body: "fresh", because: "this server refuses ranges", startOver: "cannot resume this file; starting over" },
    ],
    [
      "multipart to one range: a fresh plain GET",
      { kind: "ranges-unusable", reason: "multipart" },
      stream,
      { kind: "stream", body: "fresh", because: "this server refuses ranges" },
    ],
    ["a verdict the probe never hands over", { kind: "server-fault", reason: "x" }, file(), { kind: "fail", error: "internal", reason: "the probe returned the verdict server-fault" }],
    ["a 304 to a stream, which never asks conditionally", { kind: "not-modified" }, stream, { kind: "fail", error: "internal", reason: "the probe returned the verdict not-modified" }],
    ["a 416 'complete' with nothing on disk", { kind: "complete", size: 5 }, file(), { kind: "fail", error: "internal", reason: "the probe returned the verdict complete" }],
  ])("%s", (_name, verdict, state, step) => {
    expect(probe(verdict, state)).toEqual(step);
  });

  it("after a change, only a 206 of the new version is kept: anything else probes again from its first byte", () => {
    const afterChange = file("none", { afterChange: true, restarted: true });
    expect(probe(bytes, afterChange)).toEqual({ kind: "ranges", size: 10_000 });
    for (const verdict of [whole, { kind: "size-unknown", validators } as Verdict, { kind: "empty-file", validators } as Verdict]) {
      expect(probe(verdict, afterChange)).toEqual({ kind: "probe-again" });
    }
  });

  it("a whole file sent to a resume is read up to the missing bytes only when skipping costs no more than they do", () => {
    const ignored: Verdict = { kind: "range-ignored", size: 10_000, validators };
    // Skipping 5000 bytes to reach 1000 missing ones costs more: one plain stream instead.
    expect(probe(ignored, file("partial"), resumeAsked)).toEqual({
      kind: "stream",
      body: "probe",
      because: "the server ignored the range of the resume and sent the whole file as one stream",
      startOver: "ignored the range of the resume; fetching the whole file as one stream",
    });
    const cheap: Asked = { ...resumeAsked, range: { start: 500, end: 5999 } };
    expect(probe(ignored, file("partial"), cheap)).toEqual({ kind: "ranges", size: 10_000 });
    // Without a known size the body cannot be placed as ranges.
    expect(probe({ kind: "range-ignored", size: undefined, validators }, file("partial"), cheap)).toMatchObject({ kind: "stream", body: "probe" });
    // A stream reads it as its one stream.
    expect(probe(ignored, stream)).toEqual({ kind: "stream", body: "probe", because: "a stream keeps nothing on disk" });
  });
});

describe("route after a parallel transfer", () => {
  const reason = "the remote file at http://127.0.0.1/x changed during the download: its ETag is now \"v2\"";
  it.each<[string, TransferOutcome, JobState, Step]>([
    ["every byte written: finish the file", { kind: "complete" }, file("partial"), { kind: "finish" }],
    ["every byte written: finish the stream", { kind: "complete" }, stream, { kind: "finish" }],
    ["the file changed: a file restarts", { kind: "changed", reason }, file("partial"), { kind: "restart", reason }],
    ["the file changed: a stream fails, its bytes left already", { kind: "changed", reason }, stream, { kind: "fail", error: "changed", reason }],
    [
      "ranges ignored: a file drops its partial and takes one fresh plain stream",
      { kind: "ranges-ignored", reason: "multipart" },
      file("partial"),
      { kind: "stream", body: "fresh", because: "this server keeps ignoring ranges", startOver: "keeps ignoring ranges; fetching the whole file as one stream" },
    ],
    [
      "ranges ignored: a stream goes on as one fresh plain stream (the sink skips what it sent)",
      { kind: "ranges-ignored", reason: "multipart" },
      stream,
      { kind: "stream", body: "fresh", because: "a stream keeps nothing on disk" },
    ],
  ])("%s", (_name, outcome, state, step) => {
    expect(afterTransfer(outcome, state)).toEqual(step);
  });
});

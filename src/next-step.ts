/**
 * The next step after the verdict: what a download does once the probe's answer has
 * been judged (verdict.ts) or a parallel transfer has ended (transfer.ts). One pure
 * decision for both jobs, the file on disk (file-download.ts) and the ordered stream
 * (stream-download.ts); each job carries the step out through its `Consumer`
 * (sink.ts). No I/O here: the table of DESIGN's "What an answer proves", its
 * consequences, in one place.
 */
import { bodyPlacement, type Asked, type Verdict } from "./verdict.js";
import type { TransferOutcome } from "./transfer.js";

/** What the job knows when it routes: which job it is, and what is on disk already. */
export interface JobState {
  /**
   * `file`: bytes go to a `.part` that can be resumed and started over; `stream`: bytes
   * leave as they come (`-o -`, `--extract`, `downloadStream`), so nothing restarts.
   */
  job: "file" | "stream";
  /** Bytes of the file on disk before this answer: a trusted partial (its manifest), an output adopted with `continue`, or none. */
  onDisk: "partial" | "adopted" | "none";
  /** The answer is the probe of a new version, just after a remote change: only a range of it (206) is worth keeping. */
  afterChange: boolean;
  /** The download started over after a remote change: an interrupt's message says so. */
  restarted: boolean;
}

/** Where the route starts from: the probe's judged answer, or how a parallel transfer ended. */
export type RouteInput = { from: "probe"; verdict: Verdict; asked: Asked } | { from: "transfer"; outcome: TransferOutcome };

/**
 * The next step:
 * - `up-to-date`: the existing output is current (a 304 to `ifChanged`).
 * - `ranges`: parallel ranges of a `size`-byte file, the probe's body the first of them.
 * - `stream`: one plain stream from byte 0, the probe's own body (`body: "probe"`) or a
 *   fresh GET (`fresh`); `because` says why (an interrupt's message: nothing is kept);
 *   `startOver`, when set, is the warning that the bytes on disk are dropped first.
 * - `complete`: every byte of a `size`-byte file is on disk already (a 416 to a resume).
 * - `empty`: the file is 0 bytes.
 * - `restart`: the remote file changed under the bytes on disk: drop them and probe the
 *   new version (`reason`: a sentence, what changed).
 * - `probe-again`: the answer to the new version's probe is not a range: ask again from its first byte.
 * - `finish`: a transfer ended with every byte written.
 * - `fail`: nothing can follow; `error` says which failure (`changed`: the file changed
 *   under bytes that left already, or under an adopted output; `internal`: a verdict
 *   the probe never hands over).
 */
export type Step =
  | { kind: "up-to-date" }
  | { kind: "ranges"; size: number }
  | { kind: "stream"; body: "probe" | "fresh"; because: string; startOver?: string }
  | { kind: "complete"; size: number }
  | { kind: "empty" }
  | { kind: "restart"; reason: string }
  | { kind: "probe-again" }
  | { kind: "finish" }
  | { kind: "fail"; error: "changed" | "not-the-start" | "internal"; reason: string };

/**
 * What follows `input` for a job in `state`. Pure. Sources of the rules: DESIGN, "What
 * an answer proves" and "Resume and change detection"; a CDN node that ignores the
 * range of a resume (aria2-next #43); servers that answer ranges as multipart or as a
 * 200 slice (issue "Real servers, round 2").
 */
export function route(input: RouteInput, state: JobState): Step {
  if (input.from === "transfer") return afterTransfer(input.outcome, state);
  const { verdict, asked } = input;
  const resuming = state.onDisk !== "none";
  if (state.afterChange && verdict.kind !== "bytes") return { kind: "probe-again" };
  switch (verdict.kind) {
    case "not-modified":
      return state.job === "file" ? { kind: "up-to-date" } : internal(verdict);
    case "changed":
      if (state.job === "stream") return { kind: "fail", error: "changed", reason: verdict.reason };
      // An output another tool left is not ours to throw away.
      if (state.onDisk === "adopted") return { kind: "fail", error: "not-the-start", reason: verdict.reason };
      return { kind: "restart", reason: verdict.reason };
    case "bytes":
      return { kind: "ranges", size: verdict.size };
    case "range-ignored": {
      if (state.job === "stream") return { kind: "stream", body: "probe", because: STREAM_KEEPS_NOTHING };
      // A CDN node ignored the range of the resume: its body is the whole file, worth
      // reading up to the missing bytes when that costs no more than they do.
      const placement = bodyPlacement(verdict, asked)!;
      if (verdict.size !== undefined && placement.skip <= placement.end - placement.start + 1) return { kind: "ranges", size: verdict.size };
      return {
        kind: "stream",
        body: "probe",
        because: "the server ignored the range of the resume and sent the whole file as one stream",
        startOver: "ignored the range of the resume; fetching the whole file as one stream",
      };
    }
    case "whole":
      return {
        kind: "stream",
        body: "probe",
        because: wholeBecause(state),
        ...(resuming ? { startOver: "does not serve ranges; starting over" } : {}),
      };
    case "complete":
      return state.job === "file" && resuming ? { kind: "complete", size: verdict.size } : internal(verdict);
    case "empty-file":
      return { kind: "empty" };
    case "size-unknown":
    case "retry-without-range":
    case "ranges-unusable":
      // No provable size from ranges, ranges refused or answered in a shape that cannot
      // be placed: one plain GET (DESIGN).
      return {
        kind: "stream",
        body: "fresh",
        because: verdict.kind === "size-unknown" ? "this server does not tell the file's size" : "this server refuses ranges",
        ...(resuming ? { startOver: "cannot resume this file; starting over" } : {}),
      };
    default:
      return internal(verdict);
  }
}

function wholeBecause(state: JobState): string {
  if (state.job === "stream") return STREAM_KEEPS_NOTHING;
  return state.restarted ? "the new version after the remote change came as one stream" : "this server does not serve ranges";
}

/** What a stream's interrupt says: it never keeps anything, whichever way the bytes came. */
const STREAM_KEEPS_NOTHING = "a stream keeps nothing on disk";

function afterTransfer(outcome: TransferOutcome, state: JobState): Step {
  switch (outcome.kind) {
    case "complete":
      return { kind: "finish" };
    case "changed":
      // Bytes of the old version have left already: no restart can take them back.
      return state.job === "stream" ? { kind: "fail", error: "changed", reason: outcome.reason } : { kind: "restart", reason: outcome.reason };
    case "ranges-ignored":
      return {
        kind: "stream",
        body: "fresh",
        because: state.job === "stream" ? STREAM_KEEPS_NOTHING : "this server keeps ignoring ranges",
        ...(state.job === "file" ? { startOver: "keeps ignoring ranges; fetching the whole file as one stream" } : {}),
      };
  }
}

function internal(verdict: Verdict): Step {
  return { kind: "fail", error: "internal", reason: `the probe returned the verdict ${verdict.kind}` };
}

/**
 * What a server's answer proves. Every answer to a GET (the probe, a worker's range, the
 * resume probe, the single stream, a mirror) is judged here, and only here, so that
 * "write these bytes", "the file changed" and "this size is proven" are decided once.
 * Pure: no I/O, no clock. The rules are DESIGN's "What an answer proves" and "Resume
 * and change detection"; RFC 9110 sections are cited where a rule comes from the RFC.
 */
import { isStrongEtag, parseContentLength, parseContentRange, parseUnsatisfiedRange } from "./http-headers.js";
import { isRetryableStatus } from "./retry.js";

/** An inclusive byte range, as in `Range: bytes=start-end`. */
export interface ByteSpan {
  start: number;
  /** Inclusive. */
  end: number;
}

/** What the request asked for. */
export interface Asked {
  /** The range asked for; `undefined` for a plain GET (no `Range` header). */
  range: ByteSpan | undefined;
  /** `If-Range` was sent (RFC 9110 13.1.5): a `206` then also says "same version". */
  ifRange: boolean;
  /** `If-None-Match` or `If-Modified-Since` was sent (`ifChanged`), so a `304` is an answer. */
  conditional: boolean;
  /**
   * This request is the first one to this URL in this attempt (the probe, the resume
   * probe, a mirror's probe): a `400`/`403`/`405`/`501` to it may be a refusal of the
   * `Range` header itself, not of the file. A worker's range is never first.
   */
  first: boolean;
}

/** The version being downloaded, as far as it is known (nothing, on a fresh probe). */
export interface Known {
  /** The proven size in bytes, or `undefined` before any answer proved one. */
  size: number | undefined;
  etag: string | null;
  lastModified: string | null;
  /** Bytes of this version already on disk (written, not necessarily durable). */
  bytesDone: number;
}

/** The answer's status line and headers (lower-case names, as undici gives them). */
export interface Answer {
  status: number;
  headers: Readonly<Record<string, string | undefined>>;
}

/** The answer's own validators, to record with what it proves. */
export interface Validators {
  etag: string | null;
  lastModified: string | null;
}

/**
 * What an answer proves, as one value a caller can switch on:
 * - `bytes`: the body carries `answered` (a `206`); only `[start, end]`, the overlap with
 *   what was asked, may be written. Skip `start - answered.start` body bytes first; give
 *   the rest of what was asked back to the planner. `size` is proven.
 * - `whole`: a full representation (`200`, or a `206` of the whole file to a plain GET
 *   is `bytes`): write the body from offset 0. `size` is the proven length when the
 *   answer gives one, else the stream's clean end proves it.
 * - `range-ignored`: a `200` of the same version to a ranged request (a CDN node, a
 *   proxy): not a change. The body is the whole file from offset 0; `size` is its own
 *   Content-Length, if it has one.
 * - `changed`: the remote file is another version; bytes on disk are of the old one.
 * - `complete`: a `416` (or an empty `206`) proving size `size` when every byte before
 *   what was asked is already on disk: finish.
 * - `size-unknown`: `bytes a-b/*` with no other proof of the size: fetch one plain stream.
 * - `ask-within`: a `416 bytes *\/N` to a range that starts inside the file but ends
 *   past it (old aiohttp): size `size` is proven; ask again for `start..size-1`.
 * - `ranges-unusable`: a ranged request answered in a shape that is honest but cannot
 *   be placed as a range (a `multipart/byteranges` 206 to a single range, a `200`
 *   carrying a slice's `Content-Range`): no bytes, no size; fetch one plain stream,
 *   whose own answer is judged. A worker's range answered so places no bytes either
 *   (worker.ts refuses it like any such answer); the probe's routing keeps the file.
 * - `empty-file`: the file has zero bytes (a range of an empty file is unsatisfiable,
 *   RFC 9110 14.1.1).
 * - `retry-without-range`: ask once more without `Range`.
 * - `not-modified`: a `304` to a conditional request.
 * - `server-fault`: an answer that proves nothing usable (retry; after `retries`,
 *   `IntegrityError`).
 * - `error-status`: any other status; `retryable` per DESIGN "Retries".
 */
export type Verdict =
  | { kind: "bytes"; start: number; end: number; answered: ByteSpan; size: number; validators: Validators }
  | { kind: "whole"; size: number | undefined; validators: Validators }
  | { kind: "range-ignored"; size: number | undefined; validators: Validators }
  | { kind: "changed"; reason: string }
  | { kind: "complete"; size: number }
  | { kind: "size-unknown"; validators: Validators }
  | { kind: "ranges-unusable"; reason: string }
  | { kind: "ask-within"; size: number; validators: Validators }
  | { kind: "empty-file"; validators: Validators }
  | { kind: "retry-without-range"; reason: string }
  | { kind: "not-modified" }
  | { kind: "server-fault"; reason: string }
  | { kind: "error-status"; status: number; retryable: boolean };

/** Nothing known yet: a fresh probe, or re-judging an answer as a new version's. */
export const NOTHING_KNOWN: Known = { size: undefined, etag: null, lastModified: null, bytesDone: 0 };

/** Statuses that, to a first ranged request, may refuse the `Range` rather than the file. */
const RANGE_REFUSALS = new Set([400, 403, 405, 501]);

/** Judges one answer. Total: every status and every header value has a verdict. */
export function judge(asked: Asked, known: Known, answer: Answer): Verdict {
  const { status, headers } = answer;
  const validators: Validators = { etag: headers["etag"] ?? null, lastModified: headers["last-modified"] ?? null };
  if (status === 206 || status === 200) {
    // A Content-Encoding (gzip, x-gzip) although identity was asked for is not judged
    // here: the bytes are kept verbatim. They are what the server stores (Apache's
    // `AddEncoding x-gzip .gz` labels a stored .tar.gz so), what a published checksum is
    // of, and what curl, wget and aria2c save; ranges of them are ranges of them.
    return status === 206 ? judgePartial(asked, known, headers, validators) : judgeFull(asked, known, headers, validators);
  }
  if (status === 416) return judgeUnsatisfiable(asked, known, headers);
  if (status === 304 && asked.conditional) return { kind: "not-modified" };
  if (asked.range !== undefined && asked.first && RANGE_REFUSALS.has(status)) {
    return { kind: "retry-without-range", reason: `it answered a ranged request with ${status}` };
  }
  return { kind: "error-status", status, retryable: isRetryableStatus(status) };
}

/**
 * `bytes N-(N-1)/N` (`bytes 0--1/0` for an empty file): an empty 206 some CDNs send past
 * the end; it proves size N. `=` for the space is read as in parseContentRange.
 */
const EMPTY_RANGE = /^bytes[ =]([0-9]+)-(-?[0-9]+)\/([0-9]+)$/i;

function parseEmptyRange(value: string | undefined): number | undefined {
  const match = EMPTY_RANGE.exec(value?.trim() ?? "");
  if (!match) return undefined;
  const [start, end, size] = [Number(match[1]), Number(match[2]), Number(match[3])];
  if (!Number.isSafeInteger(size) || start !== size || end !== size - 1) return undefined;
  return size;
}

/** RFC 9110 14.6: a multi-part answer to ranges; its media type says so, whatever else it carries. */
const MULTIPART_BYTERANGES = /^\s*multipart\/byteranges\s*(;|$)/i;

/**
 * An honest answer to a range that cannot be placed as one: `ranges-unusable` to a
 * ranged request (one plain stream follows, judged on its own), a server fault to a
 * plain GET (nothing to fall back to).
 */
function unusable(asked: Asked, reason: string): Verdict {
  return asked.range === undefined ? { kind: "server-fault", reason } : { kind: "ranges-unusable", reason };
}

function judgePartial(asked: Asked, known: Known, headers: Answer["headers"], validators: Validators): Verdict {
  // A server that answers even one range as multipart/byteranges (HbbTV-Testsuite #16,
  // jetty #3916) is read as "ranges not usable": one plain stream, never a failure.
  if (MULTIPART_BYTERANGES.test(headers["content-type"] ?? "")) {
    return unusable(asked, "it answered a single range with multipart/byteranges");
  }
  const header = headers["content-range"];
  const emptySize = parseEmptyRange(header);
  if (emptySize !== undefined) return judgeProvenSize(asked, known, emptySize, validators, "206");
  const range = parseContentRange(header);
  if (range === undefined) {
    return { kind: "server-fault", reason: `it answered 206 with Content-Range ${JSON.stringify(header ?? null)}` };
  }
  const length = parseContentLength(headers["content-length"]);
  if (length !== undefined && length !== range.end - range.start + 1) {
    return { kind: "server-fault", reason: `its 206 says bytes ${range.start}-${range.end} but carries ${length} bytes` };
  }
  const version = compareVersion(known, validators, range.size);
  if (version.kind === "different") return { kind: "changed", reason: version.reason };
  if (version.kind === "contradiction") return { kind: "server-fault", reason: version.reason };
  let size = range.size;
  if (size === undefined) {
    // `bytes a-b/*`: the size is not proven here (DESIGN); with a size proven earlier
    // and a same-version answer, the range itself is still good.
    if (known.size === undefined || (!asked.ifRange && version.kind !== "same")) return { kind: "size-unknown", validators };
    if (range.end >= known.size) {
      return { kind: "changed", reason: `it sent byte ${range.end}, past the ${known.size} bytes the file had` };
    }
    size = known.size;
  }
  const wanted = asked.range ?? { start: 0, end: size - 1 };
  const start = Math.max(wanted.start, range.start);
  const end = Math.min(wanted.end, range.end);
  if (start > end) {
    return {
      kind: "server-fault",
      reason: `it answered bytes ${wanted.start}-${wanted.end} with Content-Range ${JSON.stringify(header)}, which does not overlap`,
    };
  }
  return { kind: "bytes", start, end, answered: { start: range.start, end: range.end }, size, validators };
}

function judgeFull(asked: Asked, known: Known, headers: Answer["headers"], validators: Validators): Verdict {
  const header = headers["content-range"];
  const length = parseContentLength(headers["content-length"]);
  let size = length;
  if (header !== undefined) {
    // RFC 9110 14.4 gives Content-Range no meaning on a 200; a server that sends one
    // anyway (answering a range with 200) is telling which slice it sent.
    const range = parseContentRange(header);
    const whole = range?.size !== undefined && range.start === 0 && range.end === range.size - 1;
    // A slice sent as 200 (modelscope_hub #50): never the whole file, but the server may
    // still answer a plain GET honestly, as aria2c finds.
    if (!whole) return unusable(asked, `its 200 carries Content-Range ${JSON.stringify(header)}: a slice, not the whole file`);
    if (length !== undefined && length !== range.size) {
      return { kind: "server-fault", reason: `its 200 says ${range.size} bytes in Content-Range but ${length} in Content-Length` };
    }
    size = range.size;
  }
  const nothingKnown = known.size === undefined && known.etag === null && known.lastModified === null;
  if (nothingKnown) return { kind: "whole", size, validators };
  const version = compareVersion(known, validators, size);
  // A plain GET's 200 is the whole file; with a version known (a stream's retry after
  // its bytes left), only a different validator or length makes it another one.
  if (asked.range === undefined) {
    return version.kind === "different" ? { kind: "changed", reason: version.reason } : { kind: "whole", size, validators };
  }
  if (version.kind === "same") return { kind: "range-ignored", size, validators };
  if (version.kind === "contradiction") return { kind: "server-fault", reason: version.reason };
  return {
    kind: "changed",
    reason:
      version.kind === "different"
        ? version.reason
        : "it answered a ranged request with the whole file (200), and nothing proves it is the same version",
  };
}

function judgeUnsatisfiable(asked: Asked, known: Known, headers: Answer["headers"]): Verdict {
  const size = parseUnsatisfiedRange(headers["content-range"]);
  if (size === undefined) {
    if (asked.range === undefined) return { kind: "error-status", status: 416, retryable: false };
    return { kind: "retry-without-range", reason: "it answered 416 without saying the file's size" };
  }
  return judgeProvenSize(asked, known, size, { etag: headers["etag"] ?? null, lastModified: headers["last-modified"] ?? null }, "416");
}

/**
 * An answer that proves the size but carries no bytes (a 416 `bytes *\/N`, an empty
 * 206). Asking from offset N means every byte before N is on disk, so N proves the
 * download complete. A 416 to a range that starts below N but ends at or past it is a
 * server that wants the whole range inside the file (old aiohttp, aiohttp #1588): N is
 * proven, ask again within it. Refusing a range wholly inside the file is a fault.
 */
function judgeProvenSize(asked: Asked, known: Known, size: number, validators: Validators, status: string): Verdict {
  if (known.size !== undefined && size !== known.size) {
    return { kind: "changed", reason: `it now has ${size} bytes, not ${known.size}` };
  }
  const start = asked.range?.start ?? 0;
  if (start > size) {
    return { kind: "changed", reason: `it now has ${size} bytes, fewer than the ${start} already here` };
  }
  if (start < size) {
    if (status === "416" && asked.range !== undefined && asked.range.end >= size) return { kind: "ask-within", size, validators };
    return { kind: "server-fault", reason: `it refused bytes ${start}- of a ${size}-byte file (${status})` };
  }
  return known.size === undefined && size === 0 ? { kind: "empty-file", validators } : { kind: "complete", size };
}

type VersionComparison =
  | { kind: "same" }
  | { kind: "different"; reason: string }
  /** Validators say "same version" while the length says otherwise: no honest server does that. */
  | { kind: "contradiction"; reason: string }
  | { kind: "unproven" };

/**
 * Is the answer of the version being downloaded? A strong ETag decides (RFC 9110
 * 8.8.3.2); with no ETag on either side, Last-Modified and the length do. Only a
 * different validator or a different length proves a change (DESIGN).
 */
function compareVersion(known: Known, answer: Validators, size: number | undefined): VersionComparison {
  const sizeDiffers = size !== undefined && known.size !== undefined && size !== known.size;
  if (known.etag !== null && answer.etag !== null) {
    if (opaqueTag(known.etag) !== opaqueTag(answer.etag)) return { kind: "different", reason: `it has a new ETag ${answer.etag}` };
    if (sizeDiffers) {
      return isStrongEtag(known.etag) && isStrongEtag(answer.etag)
        ? { kind: "contradiction", reason: `it has ${size} bytes under the same strong ETag ${answer.etag} that had ${known.size}` }
        : { kind: "different", reason: `it now has ${size} bytes, not ${known.size}` };
    }
    if (isStrongEtag(known.etag) && isStrongEtag(answer.etag)) return { kind: "same" };
  }
  if (sizeDiffers) return { kind: "different", reason: `it now has ${size} bytes, not ${known.size}` };
  if (known.etag === null && answer.etag === null && known.lastModified !== null && answer.lastModified !== null) {
    if (known.lastModified !== answer.lastModified) {
      return { kind: "different", reason: `it was modified at ${answer.lastModified}, not ${known.lastModified}` };
    }
    if (size !== undefined && size === known.size) return { kind: "same" };
  }
  return { kind: "unproven" };
}

function opaqueTag(etag: string): string {
  return etag.startsWith("W/") ? etag.slice(2) : etag;
}

/** One way the size of a file was learned. */
export type SizeProof =
  | { source: "content-range"; size: number }
  | { source: "content-length"; size: number }
  | { source: "clean-end"; size: number };

/** The proof a verdict gives, if any: what `checkPublish` later weighs. */
export function sizeProofOf(verdict: Verdict): SizeProof | undefined {
  switch (verdict.kind) {
    case "bytes":
    case "complete":
      return { source: "content-range", size: verdict.size };
    case "whole":
    case "range-ignored":
      return verdict.size === undefined ? undefined : { source: "content-length", size: verdict.size };
    case "empty-file":
      return { source: "content-range", size: 0 };
    default:
      return undefined;
  }
}

export type PublishCheck = { publish: true; size: number } | { publish: false; reason: string };

/**
 * A file is published only when the bytes on disk equal a proven size: a
 * Content-Range total, the Content-Length of a 200 without Content-Range (RFC 9110
 * 8.6), or a length-less stream that ended cleanly. Two proofs that disagree prove
 * nothing.
 */
export function checkPublish(proofs: readonly SizeProof[], bytesOnDisk: number): PublishCheck {
  const first = proofs[0];
  if (first === undefined) return { publish: false, reason: "no answer proved the file's size" };
  const other = proofs.find((proof) => proof.size !== first.size);
  if (other !== undefined) {
    return {
      publish: false,
      reason: `the server gave two sizes: ${first.size} bytes (${first.source}) and ${other.size} (${other.source})`,
    };
  }
  if (bytesOnDisk !== first.size) {
    return { publish: false, reason: `${bytesOnDisk} bytes arrived, but the file has ${first.size} (${first.source})` };
  }
  return { publish: true, size: first.size };
}

/**
 * Whether an answer with `status` is judged by its headers and may carry bytes worth
 * reading; `false` means an error status whatever its headers say, whose body is only
 * the server's reason. The senders pass this to the request so that which statuses
 * are errors is decided here too.
 */
export function judgesStatus(asked: Asked, status: number): boolean {
  return judge(asked, NOTHING_KNOWN, { status, headers: {} }).kind !== "error-status";
}

/**
 * Where an answer's body meets the file, for the verdicts that write bytes: skip
 * `skip` body bytes, then the body is bytes `start..end` (inclusive) of the file.
 * `undefined` for verdicts that write nothing. A `range-ignored` or `whole` body
 * starts at offset 0 of the file, so reaching what was asked means skipping to it.
 */
export function bodyPlacement(verdict: Verdict, asked: Asked): { skip: number; start: number; end: number } | undefined {
  switch (verdict.kind) {
    case "bytes":
      return { skip: verdict.start - verdict.answered.start, start: verdict.start, end: verdict.end };
    case "whole":
    case "range-ignored": {
      const start = asked.range?.start ?? 0;
      const last = verdict.size === undefined ? Number.MAX_SAFE_INTEGER : verdict.size - 1;
      return { skip: start, start, end: Math.min(asked.range?.end ?? last, last) };
    }
    default:
      return undefined;
  }
}

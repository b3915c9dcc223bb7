import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseContentLength, parseContentRange, parseUnsatisfiedRange } from "../src/http-headers.js";
import {
  bodyPlacement,
  checkPublish,
  judge,
  judgesStatus,
  NOTHING_KNOWN,
  sizeProofOf,
  type Answer,
  type Asked,
  type Known,
  type SizeProof,
  type Verdict,
} from "../src/verdict.js";

const MiB = 1024 * 1024;
const SIZE = 12 * MiB;
const ETAG = '"v1"';
const LAST_MODIFIED = "Tue, 02 Jan 2024 03:04:05 GMT";

/** The probe of a fresh download: bytes 0..1 MiB, nothing known. */
const probe: Asked = { range: { start: 0, end: MiB - 1 }, ifRange: false, conditional: false, first: true };
/** A worker's range after the probe, with If-Range. */
const worker: Asked = { range: { start: 8 * MiB, end: 12 * MiB - 1 }, ifRange: true, conditional: false, first: false };
const plain: Asked = { range: undefined, ifRange: false, conditional: false, first: false };
const known: Known = { size: SIZE, etag: ETAG, lastModified: LAST_MODIFIED, bytesDone: MiB };
const knownByDate: Known = { size: SIZE, etag: null, lastModified: LAST_MODIFIED, bytesDone: MiB };
const validators = { etag: ETAG, lastModified: LAST_MODIFIED };

function answer(status: number, headers: Record<string, string> = {}): Answer {
  return { status, headers: { etag: ETAG, "last-modified": LAST_MODIFIED, ...headers } };
}

function bare(status: number, headers: Record<string, string> = {}): Answer {
  return { status, headers };
}

interface Row {
  name: string;
  asked: Asked;
  known: Known;
  answer: Answer;
  verdict: Verdict | Verdict["kind"];
}

const rows: Row[] = [
  // 206
  {
    name: "a 206 of exactly what was asked proves those bytes and the size",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": `bytes 0-${MiB - 1}/${SIZE}`, "content-length": String(MiB) }),
    verdict: { kind: "bytes", start: 0, end: MiB - 1, answered: { start: 0, end: MiB - 1 }, size: SIZE, validators },
  },
  {
    name: "a 206 capped at 2 MiB (asked 8-12, sent 8-10) proves 8-10; the rest goes back",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes ${8 * MiB}-${10 * MiB - 1}/${SIZE}` }),
    verdict: { kind: "bytes", start: 8 * MiB, end: 10 * MiB - 1, answered: { start: 8 * MiB, end: 10 * MiB - 1 }, size: SIZE, validators },
  },
  {
    name: "a 206 of the whole file to a small range proves only the overlap",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes 0-${SIZE - 1}/${SIZE}` }),
    verdict: { kind: "bytes", start: 8 * MiB, end: SIZE - 1, answered: { start: 0, end: SIZE - 1 }, size: SIZE, validators },
  },
  {
    name: "a 206 starting later than asked proves its part; the front goes back to the planner",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes ${9 * MiB}-${SIZE - 1}/${SIZE}` }),
    verdict: { kind: "bytes", start: 9 * MiB, end: SIZE - 1, answered: { start: 9 * MiB, end: SIZE - 1 }, size: SIZE, validators },
  },
  {
    name: "a 206 to a plain GET proves its bytes",
    asked: plain,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": `bytes 0-${SIZE - 1}/${SIZE}` }),
    verdict: { kind: "bytes", start: 0, end: SIZE - 1, answered: { start: 0, end: SIZE - 1 }, size: SIZE, validators },
  },
  {
    name: "a 206 that does not overlap what was asked is a server fault",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes 0-99/${SIZE}` }),
    verdict: "server-fault",
  },
  {
    name: "a 206 without Content-Range is a server fault",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206),
    verdict: "server-fault",
  },
  {
    name: "a multipart 206 (never asked for) to the probe: ranges unusable, one plain stream",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-type": "multipart/byteranges; boundary=x" }),
    verdict: "ranges-unusable",
  },
  {
    name: "a 206 whose Content-Length disagrees with its Content-Range is a server fault",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes ${8 * MiB}-${9 * MiB - 1}/${SIZE}`, "content-length": "95" }),
    verdict: "server-fault",
  },
  {
    name: "a 206 whose size is beyond 2^53 is a server fault",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": "bytes 0-99/99999999999999999999" }),
    verdict: "server-fault",
  },
  {
    name: "a 206 with a new ETag means the file changed (a server ignoring If-Range)",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE}`, etag: '"v2"' }),
    verdict: "changed",
  },
  {
    name: "a 206 naming another size, with no ETag to vouch for it, means the file changed",
    asked: worker,
    known: knownByDate,
    answer: bare(206, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE + 1}` }),
    verdict: "changed",
  },
  {
    name: "a 206 naming another size under the same strong ETag is a server fault",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE + 1}` }),
    verdict: "server-fault",
  },
  {
    name: "a 206 with a new Last-Modified and no ETag on either side means the file changed",
    asked: worker,
    known: knownByDate,
    answer: bare(206, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE}`, "last-modified": "Wed, 03 Jan 2024 03:04:05 GMT" }),
    verdict: "changed",
  },
  {
    name: "a 206 that dropped the ETag header is not a change",
    asked: worker,
    known,
    answer: bare(206, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE}` }),
    verdict: "bytes",
  },
  {
    name: "a gzip-encoded 206 (a stored .tar.gz, Apache AddEncoding) is a range of the stored bytes",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": `bytes 0-99/${SIZE}`, "content-encoding": "gzip" }),
    verdict: { kind: "bytes", start: 0, end: 99, answered: { start: 0, end: 99 }, size: SIZE, validators },
  },
  {
    name: "an x-gzip-encoded 200 to a plain GET is the whole stored file",
    asked: plain,
    known: NOTHING_KNOWN,
    answer: answer(200, { "content-length": "100", "content-encoding": "x-gzip" }),
    verdict: { kind: "whole", size: 100, validators },
  },
  {
    name: "Content-Range bytes=a-b/N (the request's '=' copied) is read as bytes a-b/N",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": `bytes=0-${MiB - 1}/${SIZE}`, "content-length": String(MiB) }),
    verdict: { kind: "bytes", start: 0, end: MiB - 1, answered: { start: 0, end: MiB - 1 }, size: SIZE, validators },
  },
  {
    name: "Content-Range bytes=a-b without a length is ambiguous: a server fault",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": `bytes=0-${MiB - 1}` }),
    verdict: "server-fault",
  },
  // bytes a-b/*
  {
    name: "bytes a-b/* on the probe: the size is unknown, fetch one plain stream",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": `bytes 0-${MiB - 1}/*` }),
    verdict: { kind: "size-unknown", validators },
  },
  {
    name: "bytes a-b/* to If-Range, with the size proven before, is still the asked bytes",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/*` }),
    verdict: { kind: "bytes", start: 8 * MiB, end: SIZE - 1, answered: { start: 8 * MiB, end: SIZE - 1 }, size: SIZE, validators },
  },
  {
    name: "bytes a-b/* reaching past the proven size means the file changed",
    asked: worker,
    known,
    answer: answer(206, { "content-range": `bytes ${8 * MiB}-${SIZE}/*` }),
    verdict: "changed",
  },
  // empty 206
  {
    name: "an empty 206 bytes N-(N-1)/N past the end, nothing missing: complete",
    asked: { range: { start: SIZE, end: SIZE }, ifRange: true, conditional: false, first: true },
    known,
    answer: answer(206, { "content-range": `bytes ${SIZE}-${SIZE - 1}/${SIZE}` }),
    verdict: { kind: "complete", size: SIZE },
  },
  {
    name: "an empty 206 bytes 0--1/0 to a fresh probe: an empty file",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": "bytes 0--1/0" }),
    verdict: { kind: "empty-file", validators },
  },
  {
    name: "an empty 206 past the end naming another size: changed",
    asked: { range: { start: SIZE, end: SIZE }, ifRange: true, conditional: false, first: true },
    known,
    answer: answer(206, { "content-range": `bytes ${SIZE + 5}-${SIZE + 4}/${SIZE + 5}` }),
    verdict: "changed",
  },
  {
    name: "an empty 206 to a range inside the file is a server fault",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-range": `bytes ${SIZE}-${SIZE - 1}/${SIZE}` }),
    verdict: "server-fault",
  },
  // 200
  {
    name: "a 200 to the fresh probe is the whole file, sized by Content-Length",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(200, { "content-length": String(SIZE) }),
    verdict: { kind: "whole", size: SIZE, validators },
  },
  {
    name: "a 200 without Content-Length to the fresh probe is the whole file of unknown size",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: bare(200),
    verdict: { kind: "whole", size: undefined, validators: { etag: null, lastModified: null } },
  },
  {
    name: "a 200 to a plain GET is the whole file",
    asked: plain,
    known,
    answer: answer(200, { "content-length": String(SIZE) }),
    verdict: { kind: "whole", size: SIZE, validators },
  },
  {
    name: "a 200 to a plain GET with a new ETag, a version known (a stream's retry after its bytes left), is a change",
    asked: plain,
    known,
    answer: answer(200, { "content-length": String(SIZE), etag: '"v2"' }),
    verdict: { kind: "changed", reason: 'it has a new ETag "v2"' },
  },
  {
    name: "a 200 to a plain GET of another length, nothing to compare but the length, is a change",
    asked: plain,
    known: { ...known, etag: null, lastModified: null },
    answer: bare(200, { "content-length": String(SIZE + 1) }),
    verdict: { kind: "changed", reason: `it now has ${SIZE + 1} bytes, not ${SIZE}` },
  },
  {
    name: "a 200 with the slice's length and a slice Content-Range is never the whole file: ranges unusable, one plain stream (input 1, modelscope_hub #50)",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(200, { "content-length": String(MiB), "content-range": `bytes 0-${MiB - 1}/${SIZE}` }),
    verdict: "ranges-unusable",
  },
  {
    name: "a 200 with a slice Content-Range to a worker's range: ranges unusable (the worker takes it as a range ignored)",
    asked: worker,
    known,
    answer: answer(200, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE}` }),
    verdict: "ranges-unusable",
  },
  {
    name: "a 200 with a slice Content-Range to a plain GET is a server fault: nothing to fall back to",
    asked: plain,
    known: NOTHING_KNOWN,
    answer: answer(200, { "content-length": String(MiB), "content-range": `bytes 0-${MiB - 1}/${SIZE}` }),
    verdict: "server-fault",
  },
  {
    name: "a multipart/byteranges 206 to the single-range probe: ranges unusable, one plain stream (HbbTV-Testsuite #16, jetty #3916)",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-type": "multipart/byteranges; boundary=THIS_STRING_SEPARATES" }),
    verdict: { kind: "ranges-unusable", reason: "it answered a single range with multipart/byteranges" },
  },
  {
    name: "a multipart/byteranges 206 is read by its media type, whatever Content-Range it also carries",
    asked: worker,
    known,
    answer: answer(206, { "content-type": "Multipart/ByteRanges;boundary=x", "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE}` }),
    verdict: "ranges-unusable",
  },
  {
    name: "a multipart/byteranges 206 to a plain GET is a server fault",
    asked: plain,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-type": "multipart/byteranges; boundary=x" }),
    verdict: "server-fault",
  },
  {
    name: "a content type that only starts like multipart/byteranges is not one",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(206, { "content-type": "multipart/byterangesx", "content-range": `bytes 0-${MiB - 1}/${SIZE}` }),
    verdict: "bytes",
  },
  {
    name: "a 200 whose Content-Range covers the whole file is the whole file",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(200, { "content-range": `bytes 0-${SIZE - 1}/${SIZE}` }),
    verdict: { kind: "whole", size: SIZE, validators },
  },
  {
    name: "a 200 whose Content-Range and Content-Length disagree is a server fault",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: answer(200, { "content-range": `bytes 0-${SIZE - 1}/${SIZE}`, "content-length": String(MiB) }),
    verdict: "server-fault",
  },
  {
    name: "a 200 with the same strong ETag to a ranged request: the range was ignored, not a change (input 3)",
    asked: worker,
    known,
    answer: answer(200, { "content-length": String(SIZE) }),
    verdict: { kind: "range-ignored", size: SIZE, validators },
  },
  {
    name: "a 200 with no ETag on either side, the same Last-Modified and length: range ignored",
    asked: worker,
    known: knownByDate,
    answer: bare(200, { "content-length": String(SIZE), "last-modified": LAST_MODIFIED }),
    verdict: { kind: "range-ignored", size: SIZE, validators: { etag: null, lastModified: LAST_MODIFIED } },
  },
  {
    name: "a 200 with a different ETag to a ranged request: changed",
    asked: worker,
    known,
    answer: answer(200, { "content-length": String(SIZE), etag: '"v2"' }),
    verdict: "changed",
  },
  {
    name: "a 200 with the same Last-Modified but another length: changed",
    asked: worker,
    known: knownByDate,
    answer: bare(200, { "content-length": String(SIZE - 1), "last-modified": LAST_MODIFIED }),
    verdict: "changed",
  },
  {
    name: "a 200 with no validators at all to a ranged request: nothing proves the same version, changed",
    asked: worker,
    known: { ...known, etag: null, lastModified: null },
    answer: bare(200, { "content-length": String(SIZE) }),
    verdict: "changed",
  },
  {
    name: "a 200 with a weak ETag equal to ours and no length: not proven the same, changed",
    asked: worker,
    known: { ...known, etag: 'W/"v1"' },
    answer: bare(200, { etag: 'W/"v1"' }),
    verdict: "changed",
  },
  {
    name: "a 200 with the same strong ETag but another length is a server fault",
    asked: worker,
    known,
    answer: answer(200, { "content-length": String(SIZE + 1) }),
    verdict: "server-fault",
  },
  // 416
  {
    name: "a 416 bytes */N, N the known size, asked past the end: complete",
    asked: { range: { start: SIZE, end: SIZE }, ifRange: true, conditional: false, first: true },
    known,
    answer: bare(416, { "content-range": `bytes */${SIZE}` }),
    verdict: { kind: "complete", size: SIZE },
  },
  {
    name: "a 416 bytes=*/N (the request's '=' copied), asked past the end of a complete file: complete",
    asked: { range: { start: SIZE, end: SIZE }, ifRange: true, conditional: false, first: true },
    known,
    answer: bare(416, { "content-range": `bytes=*/${SIZE}` }),
    verdict: { kind: "complete", size: SIZE },
  },
  {
    name: "a 416 naming another size: changed",
    asked: { range: { start: 200 * 1024, end: MiB - 1 }, ifRange: true, conditional: false, first: true },
    known,
    answer: bare(416, { "content-range": "bytes */16384" }),
    verdict: "changed",
  },
  {
    name: "a 416 bytes */N refusing a range inside the file is a server fault",
    asked: worker,
    known,
    answer: bare(416, { "content-range": `bytes */${SIZE}` }),
    verdict: "server-fault",
  },
  {
    name: "a 416 bytes */N to a probe starting inside N but ending past it (old aiohttp): N is proven, ask within it",
    asked: { range: { start: 0, end: 4 * MiB - 1 }, ifRange: false, conditional: false, first: true },
    known: NOTHING_KNOWN,
    answer: bare(416, { "content-range": "bytes */100000" }),
    verdict: { kind: "ask-within", size: 100_000, validators: { etag: null, lastModified: null } },
  },
  {
    name: "a 416 bytes */N to a range wholly inside N stays a server fault (asking within would not help)",
    asked: { range: { start: 0, end: 99_999 }, ifRange: false, conditional: false, first: true },
    known: NOTHING_KNOWN,
    answer: bare(416, { "content-range": "bytes */100000" }),
    verdict: "server-fault",
  },
  {
    name: "an empty 206 bytes N-(N-1)/N to a range inside N stays a server fault: only a 416 asks within",
    asked: { range: { start: 0, end: 4 * MiB - 1 }, ifRange: false, conditional: false, first: true },
    known: NOTHING_KNOWN,
    answer: bare(206, { "content-range": "bytes 100000-99999/100000" }),
    verdict: "server-fault",
  },
  {
    name: "a 416 bytes */0 to a fresh probe: an empty file",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: bare(416, { "content-range": "bytes */0" }),
    verdict: { kind: "empty-file", validators: { etag: null, lastModified: null } },
  },
  {
    name: "a 416 without Content-Range: ask once without Range",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: bare(416),
    verdict: "retry-without-range",
  },
  {
    name: "a 416 without Content-Range to a plain GET is an error status",
    asked: plain,
    known: NOTHING_KNOWN,
    answer: bare(416),
    verdict: { kind: "error-status", status: 416, retryable: false },
  },
  {
    name: "a 416 saying the file is shorter than the bytes adopted (--continue): changed",
    asked: { range: { start: 5000, end: 5000 + MiB }, ifRange: false, conditional: false, first: true },
    known: NOTHING_KNOWN,
    answer: bare(416, { "content-range": "bytes */4000" }),
    verdict: "changed",
  },
  // refusals and other statuses
  ...[400, 403, 405, 501].map(
    (status): Row => ({
      name: `a ${status} to the ranged probe: ask once without Range (input 5)`,
      asked: probe,
      known: NOTHING_KNOWN,
      answer: bare(status),
      verdict: "retry-without-range",
    }),
  ),
  {
    name: "a 403 to a worker's range is an error status (an expired signed URL, not a refused Range)",
    asked: worker,
    known,
    answer: bare(403),
    verdict: { kind: "error-status", status: 403, retryable: false },
  },
  {
    name: "a 403 to a plain GET is an error status",
    asked: plain,
    known: NOTHING_KNOWN,
    answer: bare(403),
    verdict: { kind: "error-status", status: 403, retryable: false },
  },
  ...[408, 429, 500, 502, 503, 504].map(
    (status): Row => ({
      name: `a ${status} is a retryable error status`,
      asked: worker,
      known,
      answer: bare(status),
      verdict: { kind: "error-status", status, retryable: true },
    }),
  ),
  ...[401, 404, 410, 204, 999].map(
    (status): Row => ({
      name: `a ${status} is an error status that is not retried`,
      asked: probe,
      known: NOTHING_KNOWN,
      answer: bare(status),
      verdict: { kind: "error-status", status, retryable: false },
    }),
  ),
  {
    name: "a 304 to a conditional probe: not modified",
    asked: { ...probe, conditional: true },
    known: NOTHING_KNOWN,
    answer: bare(304),
    verdict: { kind: "not-modified" },
  },
  {
    name: "a 304 nobody asked for is an error status",
    asked: probe,
    known: NOTHING_KNOWN,
    answer: bare(304),
    verdict: { kind: "error-status", status: 304, retryable: false },
  },
];

describe("judge: what an answer proves", () => {
  it.each(rows)("$name", ({ asked, known: what, answer: given, verdict }) => {
    const actual = judge(asked, what, given);
    if (typeof verdict === "string") expect(actual.kind).toBe(verdict);
    else expect(actual).toEqual(verdict);
  });

  it("says why in a changed or faulty verdict", () => {
    const changed = judge(worker, known, answer(206, { "content-range": `bytes ${8 * MiB}-${SIZE - 1}/${SIZE}`, etag: '"v2"' }));
    expect(changed).toEqual({ kind: "changed", reason: 'it has a new ETag "v2"' });
    const slice = judge(probe, NOTHING_KNOWN, answer(200, { "content-range": `bytes 0-${MiB - 1}/${SIZE}` }));
    expect(slice).toEqual({ kind: "ranges-unusable", reason: `its 200 carries Content-Range "bytes 0-${MiB - 1}/${SIZE}": a slice, not the whole file` });
  });
});

describe("checkPublish: only a proven size is published", () => {
  it("publishes when the bytes on disk equal the one proven size", () => {
    expect(checkPublish([{ source: "content-range", size: SIZE }], SIZE)).toEqual({ publish: true, size: SIZE });
    expect(checkPublish([{ source: "clean-end", size: 0 }], 0)).toEqual({ publish: true, size: 0 });
  });

  it("publishes nothing without a proof, with fewer bytes, or with two sizes", () => {
    expect(checkPublish([], SIZE)).toMatchObject({ publish: false, reason: "no answer proved the file's size" });
    expect(checkPublish([{ source: "content-range", size: SIZE }], MiB)).toMatchObject({ publish: false });
    const twoSizes: SizeProof[] = [
      { source: "content-length", size: MiB },
      { source: "content-range", size: SIZE },
    ];
    expect(checkPublish(twoSizes, MiB)).toEqual({
      publish: false,
      reason: `the server gave two sizes: ${MiB} bytes (content-length) and ${SIZE} (content-range)`,
    });
  });

  it("takes a verdict's proof from its Content-Range or Content-Length, and none from a size-less one", () => {
    expect(sizeProofOf(judge(probe, NOTHING_KNOWN, answer(206, { "content-range": `bytes 0-9/${SIZE}` })))).toEqual({
      source: "content-range",
      size: SIZE,
    });
    expect(sizeProofOf(judge(probe, NOTHING_KNOWN, answer(200, { "content-length": "10" })))).toEqual({ source: "content-length", size: 10 });
    expect(sizeProofOf(judge(probe, NOTHING_KNOWN, answer(200)))).toBeUndefined();
    expect(sizeProofOf(judge(probe, NOTHING_KNOWN, answer(206, { "content-range": "bytes 0-9/*" })))).toBeUndefined();
    expect(sizeProofOf(judge(worker, known, bare(503)))).toBeUndefined();
  });
});

// ---- properties ----

const smallSize = fc.nat(64);
const span = fc.tuple(fc.nat(70), fc.nat(70)).map(([a, b]) => ({ start: Math.min(a, b), end: Math.max(a, b) }));
const etag = fc.constantFrom(null, '"a"', '"b"', 'W/"a"', 'W/"b"');
const date = fc.constantFrom(null, "Tue, 02 Jan 2024 03:04:05 GMT", "Wed, 03 Jan 2024 03:04:05 GMT");

const askedArb: fc.Arbitrary<Asked> = fc.record({
  range: fc.option(span, { nil: undefined }),
  ifRange: fc.boolean(),
  conditional: fc.boolean(),
  first: fc.boolean(),
});

const knownArb: fc.Arbitrary<Known> = fc.record({
  size: fc.option(smallSize, { nil: undefined }),
  etag,
  lastModified: date,
  bytesDone: fc.nat(64),
});

/** Content-Range values a server may send, honest or not, including raw UTF-8 and garbage. */
const contentRange = fc.oneof(
  fc
    .tuple(fc.constantFrom(" ", "="), fc.nat(70), fc.nat(70), fc.oneof(smallSize.map(String), fc.constant("*")))
    .map(([separator, a, b, n]) => `bytes${separator}${a}-${b}/${n}`),
  fc.constantFrom(" ", "=").chain((separator) => smallSize.map((n) => `bytes${separator}*/${n}`)),
  fc.constantFrom(" ", "=").chain((separator) => smallSize.map((n) => `bytes${separator}${n}-${n - 1}/${n}`)),
  fc.string(),
  fc.constantFrom("bytes 0-5/é", "bytes  0-5/10", "bytes 0-5/10, bytes 6-9/10", "BYTES 0-5/10"),
);

const answerArb: fc.Arbitrary<Answer> = fc.record({
  status: fc.constantFrom(200, 204, 206, 304, 400, 401, 403, 404, 405, 408, 410, 416, 429, 500, 501, 503, 999),
  headers: fc.record(
    {
      "content-range": contentRange,
      "content-length": fc.oneof(smallSize.map(String), fc.string()),
      etag: etag.map((value) => value ?? "\"é\""),
      "last-modified": date.map((value) => value ?? "not a date"),
      "content-encoding": fc.constantFrom("identity", "gzip", ""),
      "content-type": fc.constantFrom("application/octet-stream", "multipart/byteranges; boundary=b", "text/html"),
    },
    { requiredKeys: [] },
  ),
});

describe("judge: properties", () => {
  it("has a verdict for every answer, and never throws", () => {
    fc.assert(fc.property(askedArb, knownArb, answerArb, (asked, what, given) => {
      expect(typeof judge(asked, what, given).kind).toBe("string");
    }));
  });

  it("lets no byte be written that the answer does not prove: bytes only inside both what was asked and what a 206 says it sent", () => {
    fc.assert(
      fc.property(askedArb, knownArb, answerArb, (asked, what, given) => {
        const verdict = judge(asked, what, given);
        if (verdict.kind === "whole" || verdict.kind === "range-ignored") {
          // A full representation: a 200 whose Content-Range, if any, is the whole file.
          expect(given.status).toBe(200);
          const header = given.headers["content-range"];
          if (header !== undefined) {
            const range = parseContentRange(header);
            expect(range?.start).toBe(0);
            expect(range?.end).toBe((range?.size ?? 0) - 1);
          }
        }
        if (verdict.kind !== "bytes") return;
        expect(given.status).toBe(206);
        const sent = parseContentRange(given.headers["content-range"]);
        expect(sent).toBeDefined();
        expect(verdict.answered).toEqual({ start: sent!.start, end: sent!.end });
        expect(verdict.start).toBeGreaterThanOrEqual(sent!.start);
        expect(verdict.end).toBeLessThanOrEqual(sent!.end);
        expect(verdict.start).toBeLessThanOrEqual(verdict.end);
        expect(verdict.end).toBeLessThan(verdict.size);
        if (asked.range) {
          expect(verdict.start).toBeGreaterThanOrEqual(asked.range.start);
          expect(verdict.end).toBeLessThanOrEqual(asked.range.end);
        }
        const length = parseContentLength(given.headers["content-length"]);
        if (length !== undefined) expect(length).toBe(sent!.end - sent!.start + 1);
      }),
    );
  });

  it("says ranges-unusable only to a ranged 200 or 206, and then places no byte and proves no size", () => {
    fc.assert(
      fc.property(askedArb, knownArb, answerArb, (asked, what, given) => {
        const verdict = judge(asked, what, given);
        if (verdict.kind !== "ranges-unusable") return;
        expect(asked.range).toBeDefined();
        expect([200, 206]).toContain(given.status);
        expect(bodyPlacement(verdict, asked)).toBeUndefined();
        expect(sizeProofOf(verdict)).toBeUndefined();
      }),
    );
  });

  it("never reads a multipart/byteranges answer as bytes of the file", () => {
    fc.assert(
      fc.property(askedArb, knownArb, answerArb, (asked, what, given) => {
        fc.pre(given.status === 206 && /^multipart\/byteranges/.test(given.headers["content-type"] ?? ""));
        expect(["ranges-unusable", "server-fault"]).toContain(judge(asked, what, given).kind);
      }),
    );
  });

  it("says ask-within only to a 416 whose size lies inside what was asked, so asking start..N-1 is inside both", () => {
    fc.assert(
      fc.property(askedArb, knownArb, answerArb, (asked, what, given) => {
        const verdict = judge(asked, what, given);
        if (verdict.kind !== "ask-within") return;
        expect(given.status).toBe(416);
        expect(asked.range!.start).toBeLessThan(verdict.size);
        expect(asked.range!.end).toBeGreaterThanOrEqual(verdict.size);
        if (what.size !== undefined) expect(verdict.size).toBe(what.size);
        // Asking again inside the size can never be told to ask within again.
        const within = { ...asked, range: { start: asked.range!.start, end: verdict.size - 1 } };
        expect(judge(within, what, given).kind).not.toBe("ask-within");
      }),
    );
  });

  it("proves no size the answer did not state, and none that contradicts the known size", () => {
    fc.assert(
      fc.property(askedArb, knownArb, answerArb, (asked, what, given) => {
        const verdict = judge(asked, what, given);
        const proof = sizeProofOf(verdict);
        if (proof === undefined) return;
        const header = given.headers["content-range"];
        const stated = [
          parseContentRange(header)?.size,
          parseUnsatisfiedRange(header),
          /^bytes[ =]([0-9]+)-/.exec(header ?? "")?.[1] === undefined ? undefined : Number(/\/([0-9]+)$/.exec(header ?? "")?.[1]),
          header === undefined && given.status === 200 ? parseContentLength(given.headers["content-length"]) : undefined,
        ];
        const fromThisAnswer = stated.includes(proof.size);
        // A `bytes a-b/*` range can only lean on a size proven before.
        expect(fromThisAnswer || proof.size === what.size).toBe(true);
        if (what.size !== undefined && verdict.kind !== "whole") expect(proof.size).toBe(what.size);
      }),
    );
  });

  it("publishes only when every proof agrees with the bytes on disk", () => {
    const proof: fc.Arbitrary<SizeProof> = fc.record({
      source: fc.constantFrom("content-range", "content-length", "clean-end"),
      size: fc.nat(8),
    });
    fc.assert(
      fc.property(fc.array(proof, { maxLength: 4 }), fc.nat(8), (proofs, onDisk) => {
        const check = checkPublish(proofs, onDisk);
        const provenAndEqual = proofs.length > 0 && proofs.every((each) => each.size === onDisk);
        expect(check.publish).toBe(provenAndEqual);
        if (check.publish) expect(check.size).toBe(onDisk);
      }),
    );
  });
});

describe("judgesStatus: which statuses are judged rather than errors", () => {
  const ranged = (first: boolean): Asked => ({ range: { start: 0, end: 99 }, ifRange: false, conditional: false, first });
  const plain: Asked = { range: undefined, ifRange: false, conditional: false, first: true };
  it.each([
    ["200 to a range", ranged(false), 200, true],
    ["206 to a range", ranged(false), 206, true],
    ["416 to a range", ranged(false), 416, true],
    ["403 to the first ranged request (a refused Range)", ranged(true), 403, true],
    ["403 to a worker's range (an error)", ranged(false), 403, false],
    ["503 to anything (an error, retried)", ranged(true), 503, false],
    ["416 to a plain GET (an error)", plain, 416, false],
    ["304 to a request that was not conditional", plain, 304, false],
  ] as const)("%s", (_name, asked, status, judged) => {
    expect(judgesStatus(asked, status)).toBe(judged);
  });
});

describe("bodyPlacement: where a body meets the file", () => {
  const validators = { etag: '"v"', lastModified: null };
  const asked: Asked = { range: { start: 100, end: 199 }, ifRange: true, conditional: false, first: false };
  it("a 206 that starts before the range: skip to it, write the overlap", () => {
    const verdict = judge(asked, { size: 1000, etag: '"v"', lastModified: null, bytesDone: 0 }, {
      status: 206,
      headers: { "content-range": "bytes 50-149/1000", etag: '"v"' },
    });
    expect(bodyPlacement(verdict, asked)).toEqual({ skip: 50, start: 100, end: 149 });
  });

  it("a 200 that ignored the range: the body starts at byte 0, so skip to the range", () => {
    expect(bodyPlacement({ kind: "range-ignored", size: 1000, validators }, asked)).toEqual({ skip: 100, start: 100, end: 199 });
  });

  it("a whole file shorter than the range asked: up to its last byte", () => {
    expect(bodyPlacement({ kind: "whole", size: 150, validators }, asked)).toEqual({ skip: 100, start: 100, end: 149 });
  });

  it("verdicts that write nothing place nothing", () => {
    expect(bodyPlacement({ kind: "changed", reason: "x" }, asked)).toBeUndefined();
    expect(bodyPlacement({ kind: "complete", size: 1000 }, asked)).toBeUndefined();
  });
});

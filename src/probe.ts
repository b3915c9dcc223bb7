/**
 * The first request of an attempt (the probe, the resume probe, a mirror's probe, a
 * signed URL's refresh): a ranged GET whose answer is judged by the verdict.
 */
import { HostLimitRefusal } from "./errors.js";
import { discard, type HttpResponse, type RequestContext } from "./http.js";
import { askedOf, requestResponse, type Ask } from "./request.js";
import { retried, traced } from "./events.js";
import { withRetries, type RetryNotice } from "./retry.js";
import { serverFault } from "./to-error.js";
import { judge, type Asked, type ByteSpan, type Known, type Verdict } from "./verdict.js";

export interface ProbeRequest {
  url: string;
  range: ByteSpan;
  /** Validator of the partial data being resumed (RFC 9110 13.1.5). */
  ifRange?: string | undefined;
  /** For `ifChanged`: the existing output's validators (RFC 9110 13.1.2, 13.1.3). */
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
  /** What is known of the version being fetched: the answer is judged against it. */
  known: Known;
  /** Attempts without progress before the probe fails; 1 for a refresh inside a range's own retry loop. */
  retries: number;
  /**
   * Whether this is the first request to the URL in this attempt (default true): only
   * then may a `400`/`403`/`405`/`501` be a refusal of `Range` itself. A signed URL's
   * refresh is not first: the file is known to serve ranges.
   */
  first?: boolean;
}

/**
 * What the first answer proves. The body is unread when the verdict places bytes
 * (`bytes`, `whole`, `range-ignored`) or says `changed` (the new version's bytes may
 * be kept), gone otherwise. The host connection the probe
 * holds is given back when the body closes, whoever reads it.
 */
export interface ProbeAnswer {
  response: HttpResponse;
  asked: Asked;
  verdict: Verdict;
  finalUrl: string;
  etag: string | null;
  lastModified: string | null;
  /** The answer's `Date`: whether its Last-Modified is strong enough for If-Range (RFC 9110 8.8.2.2). */
  date: string | null;
  contentDisposition: string | undefined;
}

/** Verdicts whose body may be read: bytes of the file, or of a new version (`changed`) that the caller may keep. */
const BODY_VERDICTS = new Set<Verdict["kind"]>(["bytes", "whole", "range-ignored", "changed"]);

/**
 * The first request: a ranged GET, never HEAD (presigned URLs are often signed for
 * GET only, and this body is the first chunk of the file, not wasted). An answer the
 * verdict calls a server fault is retried, then thrown as IntegrityError ERR_BAD_RANGE.
 * A 416 that proves a size the range ended past (`ask-within`) is asked again, once,
 * inside that size: the verdict returned is never `ask-within`.
 * @throws HttpStatusError, NetworkError, IntegrityError, AbortError
 */
export async function probe(context: RequestContext, request: ProbeRequest, signal: AbortSignal): Promise<ProbeAnswer> {
  const loop = {
    retries: request.retries,
    clock: context.clock,
    signal,
    onRetry: (retry: RetryNotice) => retried(context, retry),
    uncounted: (error: unknown) => error instanceof HostLimitRefusal,
  };
  return withRetries(loop, async () => {
    let range = request.range;
    let { asked, response, verdict } = await askOnce(context, request, range, signal);
    // A 416 proving size N to a range that ends past it (old aiohttp): ask once more,
    // inside N. Once only: a second 416 to a range inside the file is the server's fault.
    if (verdict.kind === "ask-within") {
      range = { start: range.start, end: verdict.size - 1 };
      ({ asked, response, verdict } = await askOnce(context, request, range, signal));
      if (verdict.kind === "ask-within") {
        verdict = { kind: "server-fault", reason: `it refused bytes ${range.start}-${range.end} twice, naming another size each time` };
      }
    }
    if (verdict.kind === "server-fault") throw serverFault(response.url, verdict.reason, "probe");
    const headersIn = response.headers;
    return {
      response,
      asked,
      verdict,
      finalUrl: response.url,
      etag: headersIn["etag"] ?? null,
      lastModified: headersIn["last-modified"] ?? null,
      date: headersIn["date"] ?? null,
      contentDisposition: headersIn["content-disposition"],
    };
  });
}

/** One ranged GET of the probe for `range` through the request path, judged; a body the verdict does not read is gone. */
async function askOnce(
  context: RequestContext,
  request: ProbeRequest,
  range: ByteSpan,
  signal: AbortSignal,
): Promise<{ asked: Asked; response: HttpResponse; verdict: Verdict }> {
  const ask: Ask = {
    url: request.url,
    range,
    ifRange: request.ifRange,
    ifNoneMatch: request.ifNoneMatch,
    ifModifiedSince: request.ifModifiedSince,
    first: request.first ?? true,
    signal,
  };
  const asked = askedOf(ask);
  const response = await requestResponse(context, ask);
  const verdict = traced(context.events, response.url, judge(asked, request.known, response));
  if (!BODY_VERDICTS.has(verdict.kind)) await discard(response);
  return { asked, response, verdict };
}

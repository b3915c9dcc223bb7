/**
 * The first request of an attempt (the probe, the resume probe, a mirror's probe, a
 * signed URL's refresh): a ranged GET whose answer is judged by the verdict.
 */
import { HostLimitRefusal } from "./host-limits.js";
import { discard, type HttpResponse, type RequestContext } from "./http.js";
import { askedOf, requestResponse, type Ask } from "./request.js";
import { retried, traced, type RetryNotice } from "./events.js";
import { withRetries } from "./retry.js";
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
 * @throws HttpStatusError, NetworkError, IntegrityError, AbortError
 */
export async function probe(context: RequestContext, request: ProbeRequest, signal: AbortSignal): Promise<ProbeAnswer> {
  const ask: Ask = {
    url: request.url,
    range: request.range,
    ifRange: request.ifRange,
    ifNoneMatch: request.ifNoneMatch,
    ifModifiedSince: request.ifModifiedSince,
    first: request.first ?? true,
    signal,
  };
  const asked = askedOf(ask);
  const loop = {
    retries: request.retries,
    clock: context.clock,
    signal,
    onRetry: (retry: RetryNotice) => retried(context, retry),
    uncounted: (error: unknown) => error instanceof HostLimitRefusal,
  };
  return withRetries(loop, async () => {
    const response = await requestResponse(context, ask);
    const verdict = traced(context.events, response.url, judge(asked, request.known, response));
    if (!BODY_VERDICTS.has(verdict.kind)) await discard(response);
    if (verdict.kind === "server-fault") throw serverFault(response.url, verdict.reason);
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

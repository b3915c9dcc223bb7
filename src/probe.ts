import { parseContentLength, parseContentRange, parseUnsatisfiedRange, type ContentRange } from "./http-headers.js";
import { discard, getFollowingRedirects, type HttpResponse, type RequestContext } from "./http.js";
import { withRetries } from "./retry.js";
import { badRange } from "./to-error.js";

export interface ProbeRequest {
  url: string;
  range: { start: number; end: number };
  /** Validator of the partial data being resumed (RFC 9110 13.1.5). */
  ifRange?: string | undefined;
  /** For `ifChanged`: the existing output's validators (RFC 9110 13.1.2, 13.1.3). */
  ifNoneMatch?: string | undefined;
  ifModifiedSince?: string | undefined;
  retries: number;
}

/** What the first answer taught us. The body is unread for 200 and 206, gone otherwise. */
export interface ProbeAnswer {
  response: HttpResponse;
  status: 200 | 206 | 304 | 416;
  finalUrl: string;
  /** Complete length: Content-Range's on 206 and 416, Content-Length's on 200. */
  size: number | undefined;
  contentRange: ContentRange | undefined;
  etag: string | null;
  lastModified: string | null;
  contentDisposition: string | undefined;
}

/**
 * The first request: a ranged GET, never HEAD (presigned URLs are often signed for
 * GET only, and this body is the first chunk of the file, not wasted).
 */
export async function probe(context: RequestContext, request: ProbeRequest, signal: AbortSignal): Promise<ProbeAnswer> {
  const headers: Record<string, string> = { range: `bytes=${request.range.start}-${request.range.end}` };
  if (request.ifRange !== undefined) headers["if-range"] = request.ifRange;
  if (request.ifNoneMatch !== undefined) headers["if-none-match"] = request.ifNoneMatch;
  if (request.ifModifiedSince !== undefined) headers["if-modified-since"] = request.ifModifiedSince;

  // 304 answers only a conditional request; to any other it is an error status.
  const conditional = request.ifNoneMatch !== undefined || request.ifModifiedSince !== undefined;
  const accepts = (status: number) => status === 200 || status === 206 || status === 416 || (conditional && status === 304);
  const loop = { retries: request.retries, clock: context.clock, signal, onRetry: () => context.stats.retried() };
  return withRetries(loop, async () => {
    const response = await getFollowingRedirects(context, request.url, headers, signal, accepts);
    return readAnswer(response, request.range.start, request.range.end);
  });
}

async function readAnswer(response: HttpResponse, askedStart: number, askedEnd: number): Promise<ProbeAnswer> {
  const status = response.status as ProbeAnswer["status"];
  const headers = response.headers;
  let size: number | undefined;
  let contentRange: ContentRange | undefined;
  if (status === 206) {
    contentRange = parseContentRange(headers["content-range"]);
    size = contentRange?.size;
    if (
      contentRange === undefined ||
      size === undefined ||
      contentRange.start !== askedStart ||
      contentRange.end !== Math.min(askedEnd, size - 1)
    ) {
      await discard(response);
      throw badRange(response.url, `bytes ${askedStart}-${askedEnd}`, headers["content-range"]);
    }
  } else if (status === 416) {
    size = parseUnsatisfiedRange(headers["content-range"]);
    await discard(response);
  } else if (status === 200) {
    size = parseContentLength(headers["content-length"]);
  } else {
    await discard(response);
  }
  return {
    response,
    status,
    finalUrl: response.url,
    size,
    contentRange,
    etag: headers["etag"] ?? null,
    lastModified: headers["last-modified"] ?? null,
    contentDisposition: headers["content-disposition"],
  };
}

/**
 * The one request path. Every GET rangeget sends (the probe, every worker's range, the
 * single stream, a mirror's probe, a signed URL's refresh) goes through the same
 * layers, outermost first: the host lease and what it learns of the host's limit
 * (host-lease.ts), redirects (redirects.ts), the headers of each hop (request-headers.ts),
 * and one GET on the wire with its deadline, counting and the verdict's status gate
 * (http.ts). Like undici's handler decorators, each layer wraps the body handler of
 * the next.
 */
import { asResponse, streamGet, type BodyHandler, type HttpResponse, type RequestContext } from "./http.js";
import { holdingHostConnection, type HeldConnection } from "./host-lease.js";
import { followRedirects } from "./redirects.js";
import { requestHeaders, type AskedHeaders } from "./request-headers.js";
import { judgesStatus, type Asked } from "./verdict.js";

/** One request: where, what is asked of the file, and how it ends. */
export interface Ask extends AskedHeaders {
  /** The URL asked first; redirects are followed from it. */
  url: string;
  /**
   * The first request to this URL in this attempt (the probe, a mirror's probe): only
   * then may a `400`/`403`/`405`/`501` refuse the `Range` itself (verdict.ts). Default false.
   */
  first?: boolean | undefined;
  signal: AbortSignal;
  /** A worker's connection, kept from request to request (host-lease.ts); none: one for this request. */
  held?: HeldConnection | undefined;
  /** Called once the request holds its host connection, just before it is sent (a worker counts its active connections from here). */
  onSending?: (() => void) | undefined;
}

/** What the verdict is told was asked. */
export function askedOf(ask: Ask): Asked {
  return {
    range: ask.range,
    ifRange: ask.ifRange !== undefined,
    conditional: ask.ifNoneMatch !== undefined || ask.ifModifiedSince !== undefined,
    first: ask.first ?? false,
  };
}

/**
 * Sends `ask` through every layer, the final answer's body pushed to `handler` (which
 * sees only statuses the verdict judges; any other fails the request with an
 * HttpStatusError carrying the server's reason).
 * @throws HttpStatusError (a status, a bad redirect, a loop, too many hops),
 *   NetworkError, HostLimitRefusal, the signal's reason, or what `handler` threw
 */
export function request(context: RequestContext, ask: Ask, handler: BodyHandler): Promise<void> {
  const asked = askedOf(ask);
  const accepts = (status: number) => judgesStatus(asked, status);
  return holdingHostConnection(context.hostLimits, ask.url, ask.held, ask.signal, handler, (leased) => {
    ask.onSending?.();
    return followRedirects(ask.url, accepts, leased, (url, acceptsHop, hop) =>
      streamGet(context, url, requestHeaders(context, new URL(url), ask), ask.signal, acceptsHop, hop),
    );
  });
}

/**
 * `request` with the body as a Readable, resolved at the final answer's headers. The
 * request holds its host connection until the body closes, read to its end or
 * destroyed, whoever does it (the body may sit buffered while a worker takes it over):
 * the caller must do one or the other.
 * @throws as `request`, before the headers
 */
export async function requestResponse(context: RequestContext, ask: Ask): Promise<HttpResponse> {
  const held: HeldConnection = { lease: undefined };
  const response = await asResponse((signal, handler) => request(context, { ...ask, signal, held }, handler), ask.signal);
  // A request that failed or was cut gave its lease back itself; one read to its end left it here.
  response.body.once("close", () => {
    held.lease?.release();
    held.lease = undefined;
  });
  return response;
}

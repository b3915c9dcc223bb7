/**
 * Sending a GET: the one request path (header hygiene, counting, the answer deadline,
 * the error body's reason) and redirects followed by our own rules. What undici throws
 * becomes our error in to-error.ts. Longer than most modules because everything a
 * request needs lives in that one path, on purpose: there is no second way to send one.
 */
import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { WAKE_UP, type Clock } from "./clock.js";
import { addCredentialHeaders, type CredentialSource } from "./credentials.js";
import { HttpStatusError, NetworkError } from "./errors.js";
import type { DownloadEvents } from "./events.js";
import { headerText } from "./http-headers.js";
import { hostKey, type HostLimits } from "./host-limits.js";
import type { HttpStatsRecorder } from "./stats.js";
import type { OriginCredentials } from "./url-credentials.js";
import { httpStatusError, toNetworkError } from "./to-error.js";
import { VERSION } from "./version.js";

/** The User-Agent when the caller names none. */
export const USER_AGENT = `rangeget/${VERSION}`;
const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Credentials must not follow a redirect to another origin (RFC 9110 15.4; curl and
// fetch behave the same), and neither must the user's own -H headers, which often
// carry API keys under custom names.
const CREDENTIAL_HEADERS = new Set(["authorization", "cookie", "proxy-authorization"]);

export interface HttpResponse {
  status: number;
  headers: Record<string, string | undefined>;
  /** The body as it arrives; destroying it ends the request. */
  body: Readable;
  /** The URL this response came from, after redirects. */
  url: string;
}

export interface RequestContext {
  dispatcher: Dispatcher;
  timeoutMs: number;
  stats: HttpStatsRecorder;
  clock: Clock;
  /** The origin the user's headers belong to. */
  userOrigin: string;
  userHeaders: Record<string, string>;
  /** Default `rangeget/<version>`; a `User-Agent` among the user's headers wins. */
  userAgent?: string | undefined;
  /** Credentials and cookies per request URL (netrc, cookie jar); told of every final response. */
  credentials?: CredentialSource | undefined;
  /** How the user's credentials are shown in messages (`user:***`), when the URL had some. */
  shownUserinfo?: string | undefined;
  /**
   * Basic auth per origin from the mirrors' `user:password@`, sent to that origin only
   * (after the user's own headers, which win on `userOrigin`).
   */
  originCredentials?: ReadonlyMap<string, OriginCredentials> | undefined;
  /** Told of every request and answer, for `onTrace` / `--verbose` (events.ts). */
  events?: DownloadEvents | undefined;
}

/**
 * `url` as messages show it: a URL of an origin the user gave credentials for (the
 * URL's, a mirror's) carries the user's name and `***` for the password, so a message
 * names the URL the user typed but never the secret.
 */
export function shownUrl(context: Pick<RequestContext, "userOrigin" | "shownUserinfo" | "originCredentials">, url: string): string {
  if (!URL.canParse(url)) return url;
  const parsed = new URL(url);
  if (parsed.username !== "") return url;
  const userinfo =
    (parsed.origin === context.userOrigin ? context.shownUserinfo : undefined) ??
    context.originCredentials?.get(parsed.origin)?.shownUserinfo;
  return userinfo === undefined ? url : parsed.href.replace("//", `//${userinfo}@`);
}

/** Returned by a body handler that has all it wants: the request ends early. */
export const STOP = Symbol("stop");

export interface BodyHandler {
  /** Status and headers of the final answer: throw to refuse it (the request fails with that error). */
  onHeaders(status: number, headers: Record<string, string | undefined>): void;
  /** A body chunk: STOP to end early, a promise to stop reading until it settles. */
  onData(chunk: Buffer): Promise<void> | typeof STOP | undefined;
}

/**
 * The one way rangeget sends a GET. The body is pushed to `handler` straight from
 * undici's parser: no stream, no promise per chunk, and backpressure by pausing the
 * socket (the hot path of every range). Header hygiene, request counting, latency,
 * the fixed deadline for the answer and the error body's reason all live here.
 * A status that `accepts` refuses fails with an HttpStatusError carrying the server's
 * reason (the first 200 characters of its body); `handler` never sees that body.
 */
export function streamGet(
  context: RequestContext,
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  accepts: (status: number) => boolean,
  handler: BodyHandler,
): Promise<void> {
  const target = new URL(url);
  const requestHeaders = headersFor(context, target, headers);
  const { clock } = context;
  const shown = shownUrl(context, url);
  return new Promise<void>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let errorStatus: { status: number; retryAfter: string | undefined; reason: string } | undefined;
    const deadline = new AbortController();
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      deadline.abort(WAKE_UP);
      signal.removeEventListener("abort", onAbort);
      if (error === undefined) resolve();
      else reject(error);
    };
    const fail = (error: unknown) => {
      settle(error);
      controller?.abort(error instanceof Error ? error : new Error(String(error)));
    };
    const onAbort = () => fail(signal.reason);
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    context.stats.requestStarted(target.origin);
    context.events?.request(shown, requestHeaders);
    const startedAt = clock.now();
    // undici's own headersTimeout starts again with every informational 1xx answer, so
    // a server sending them forever would hold a request open for ever; this deadline
    // does not move, and it is the only one for the answer.
    clock.sleep(context.timeoutMs, deadline.signal).then(
      () => fail(answerTimeout(shown, context.timeoutMs)),
      () => {},
    );
    context.dispatcher.dispatch(
      {
        origin: target.origin,
        path: target.pathname + target.search,
        method: "GET",
        headers: requestHeaders,
        headersTimeout: 0,
        bodyTimeout: context.timeoutMs,
      },
      {
        onRequestStart(requestController) {
          controller = requestController;
          if (settled) requestController.abort(new Error("request no longer needed"));
        },
        onResponseStart(_controller, status, rawHeaders) {
          if (status < 200 || settled) return;
          deadline.abort(WAKE_UP);
          context.stats.responseReceived(status, clock.now() - startedAt);
          context.credentials?.onResponse(target, rawHeaders);
          const flat = flattenHeaders(rawHeaders);
          context.events?.response(shown, status, flat);
          if (!accepts(status)) {
            errorStatus = { status, retryAfter: flat["retry-after"], reason: "" };
            return;
          }
          try {
            handler.onHeaders(status, flat);
          } catch (error) {
            fail(error);
          }
        },
        onResponseData(requestController, chunk) {
          // undici hands over an empty chunk on every resume; pausing for it again
          // would spin on microtasks forever.
          if (settled || chunk.length === 0) return;
          if (errorStatus) {
            errorStatus.reason += String(chunk);
            // Enough for the one-line reason: no need to read a large error body.
            if (errorStatus.reason.length >= 200) {
              fail(httpStatusError(errorStatus.status, shown, errorStatus.reason, errorStatus.retryAfter));
            }
            return;
          }
          let next: ReturnType<BodyHandler["onData"]>;
          try {
            next = handler.onData(chunk);
          } catch (error) {
            fail(error);
            return;
          }
          if (next === STOP) {
            settle();
            requestController.abort(new Error("range complete"));
          } else if (next) {
            requestController.pause();
            next.then(
              () => {
                if (!settled) requestController.resume();
              },
              fail,
            );
          }
        },
        onResponseEnd() {
          if (errorStatus) settle(httpStatusError(errorStatus.status, shown, errorStatus.reason, errorStatus.retryAfter));
          else settle();
        },
        onResponseError(_controller, error) {
          settle(toNetworkError(error, shown, signal));
        },
      },
    );
  });
}

/**
 * Bytes a response body may hold in memory before the socket is paused: large enough
 * that a fast single stream is not paused and resumed for every socket read.
 */
const BODY_BUFFER_BYTES = 1024 * 1024;

/**
 * `streamGet` with the body as a Readable, for answers whose reader is decided only
 * after the headers are seen (the probe, redirects, the single stream). Resolves at
 * the headers of a status that `accepts` allows; destroying the body ends the request.
 */
export function get(
  context: RequestContext,
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  accepts: (status: number) => boolean,
): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    let body: Readable | undefined;
    let wake: (() => void) | undefined;
    let ended = false;
    const unwanted = new AbortController();
    const request = streamGet(context, url, headers, AbortSignal.any([signal, unwanted.signal]), accepts, {
      onHeaders(status, responseHeaders) {
        body = new Readable({
          highWaterMark: BODY_BUFFER_BYTES,
          read() {
            const resume = wake;
            wake = undefined;
            resume?.();
          },
          destroy(error, callback) {
            if (!ended) unwanted.abort(new Error("response body no longer needed"));
            callback(error);
          },
        });
        // A failure reaches the body's reader through its iteration; a body nobody reads
        // yet (a probe answer still being judged) must not crash the process with it.
        body.on("error", () => {});
        resolve({ status, headers: responseHeaders, body, url });
      },
      onData(chunk) {
        if (body!.push(chunk)) return undefined;
        return new Promise<void>((resume) => (wake = resume));
      },
    });
    request.then(
      () => {
        ended = true;
        body?.push(null);
      },
      (error: unknown) => {
        ended = true;
        if (body) body.destroy(error instanceof Error ? error : new Error(String(error)));
        else reject(error);
      },
    );
  });
}

/** No final answer within the fixed deadline. */
function answerTimeout(url: string, timeoutMs: number): NetworkError {
  return new NetworkError(`timed out waiting for ${url} to answer (no final response within ${timeoutMs / 1000} s)`, {
    url,
    code: "ERR_TIMEOUT",
  });
}

function headersFor(context: RequestContext, target: URL, headers: Record<string, string>): Record<string, string> {
  const requestHeaders: Record<string, string> = { "user-agent": context.userAgent ?? USER_AGENT };
  if (target.origin === context.userOrigin) {
    for (const [name, value] of Object.entries(context.userHeaders)) requestHeaders[name.toLowerCase()] = value;
  }
  const mirrorCredentials = context.originCredentials?.get(target.origin);
  if (mirrorCredentials && requestHeaders["authorization"] === undefined) requestHeaders["authorization"] = mirrorCredentials.authorization;
  // Asked per request URL, so every redirect hop gets what belongs to its own host.
  if (context.credentials) addCredentialHeaders(requestHeaders, context.credentials.headersFor(target));
  return Object.assign(requestHeaders, headers, { "accept-encoding": "identity" });
}

/**
 * GET that follows redirects itself (not undici's interceptor) so the hop limit, the
 * loop check, the scheme check and credential stripping are ours and tested.
 */
export async function getFollowingRedirects(
  context: RequestContext,
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  accepts: (status: number) => boolean,
): Promise<HttpResponse> {
  const visited = new Set<string>();
  const acceptsOrRedirect = (status: number) => REDIRECT_STATUSES.has(status) || accepts(status);
  let current = url;
  for (let hop = 0; ; hop++) {
    visited.add(current);
    const response = await get(context, current, headers, signal, acceptsOrRedirect);
    if (!REDIRECT_STATUSES.has(response.status)) return response;
    await discard(response);
    const location = response.headers["location"];
    if (location === undefined || !URL.canParse(location, current)) {
      const what = location === undefined ? "without a Location header" : `to ${JSON.stringify(location)}, which is not a URL,`;
      throw new HttpStatusError(`${response.status} redirect ${what} from ${current}`, {
        status: response.status,
        url: current,
        code: "ERR_BAD_REDIRECT",
      });
    }
    const next = new URL(location, current);
    if (next.protocol !== "http:" && next.protocol !== "https:") {
      throw new HttpStatusError(`redirect from ${current} to unsupported scheme ${next.protocol} refused`, {
        status: response.status,
        url: current,
        code: "ERR_BAD_REDIRECT",
      });
    }
    next.hash = "";
    if (visited.has(next.href)) {
      throw new HttpStatusError(`redirect loop: ${current} leads back to ${next.href}`, {
        status: response.status,
        url,
        code: "ERR_REDIRECT_LOOP",
      });
    }
    if (hop >= MAX_REDIRECTS) {
      throw new HttpStatusError(`more than ${MAX_REDIRECTS} redirects starting at ${url}`, {
        status: response.status,
        url,
        code: "ERR_TOO_MANY_REDIRECTS",
      });
    }
    if (next.origin !== new URL(current).origin) headers = withoutCredentials(headers);
    current = next.href;
  }
}

/**
 * `getFollowingRedirects` holding one of `url`'s host connections (`hostLimits`) from
 * before the request until the answer's body closes, whoever ends it: read to its end
 * or destroyed. A 2xx answer tells the lease the host is delivering. The caller must
 * read or destroy the body on every path, or the host's connection is never given back.
 * Waiting for the lease rejects with the signal's reason on abort.
 * @throws as `getFollowingRedirects`; the lease is given back first.
 */
export async function leasedGet(
  context: RequestContext,
  hostLimits: HostLimits,
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  accepts: (status: number) => boolean,
): Promise<HttpResponse> {
  const lease = await hostLimits.acquire(hostKey(url), signal);
  let response: HttpResponse;
  try {
    response = await getFollowingRedirects(context, url, headers, signal, accepts);
  } catch (error) {
    lease.release();
    throw error;
  }
  response.body.once("close", () => lease.release());
  if (response.status >= 200 && response.status < 300) lease.answered();
  return response;
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.has(name.toLowerCase())));
}

/** A body larger than this is not worth reading to keep its socket: the request is ended. */
const DISCARD_LIMIT_BYTES = 64 * 1024;

/** Throws away a body we will not read: a short one is drained so the socket can be reused. */
export async function discard(response: HttpResponse): Promise<void> {
  let bytes = 0;
  try {
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      // Leaving the loop destroys the body, which ends the request.
      if (bytes > DISCARD_LIMIT_BYTES) break;
    }
  } catch {
    // The socket is being torn down anyway; nothing to report.
  }
}

/** Headers whose value is text for us to read (a URL, a file name), not a token to send back as it came. */
const TEXT_HEADERS = new Set(["location", "content-disposition"]);

function flattenHeaders(headers: Dispatcher.ResponseData["headers"]): Record<string, string | undefined> {
  const flat: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    const joined = Array.isArray(value) ? value.join(", ") : value;
    // Validators (ETag) keep their bytes as they came: they are sent back in If-Range.
    flat[name] = joined !== undefined && TEXT_HEADERS.has(name) ? headerText(joined) : joined;
  }
  return flat;
}

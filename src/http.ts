/**
 * One GET on the wire, the innermost layer of the request path (request.ts): the
 * dispatch to undici with the body pushed to a handler, request counting and latency,
 * the fixed deadline for the answer, the status gate and the error body's reason, and
 * `asResponse`, the same answer as a Readable. Redirects, the host lease and the headers are
 * the outer layers (redirects.ts, host-lease.ts, request-headers.ts); callers go through
 * request.ts, not here. What undici throws becomes our error in to-error.ts.
 */
import { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import { WAKE_UP, type Clock } from "./clock.js";
import type { CredentialSource } from "./credentials.js";
import { NetworkError } from "./errors.js";
import type { DownloadEvents } from "./events.js";
import { headerText } from "./http-headers.js";
import type { HostLimits } from "./host-limits.js";
import type { HttpStatsRecorder } from "./stats.js";
import type { OriginCredentials } from "./url-credentials.js";
import { httpStatusError, toNetworkError } from "./to-error.js";

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
  /** The run's connections per host: every request holds one of its host's (host-lease.ts). */
  hostLimits: HostLimits;
  /** Told of every request and answer, for `onTrace` / `--verbose` (events.ts). */
  events?: DownloadEvents | undefined;
  /** Warnings of the download (a refused connection, said once per host in `warned`). */
  warn?: ((message: string) => void) | undefined;
  warned?: Set<string> | undefined;
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
  /**
   * Status and headers of the final answer, and the URL that gave it (after redirects):
   * throw to refuse it (the request fails with that error); STOP when its body is not
   * wanted (the request ends at once, without error, and its connection is closed).
   */
  onHeaders(status: number, headers: Record<string, string | undefined>, url: string): typeof STOP | undefined | void;
  /** A body chunk: STOP to end early, a promise to stop reading until it settles. */
  onData(chunk: Buffer): Promise<void> | typeof STOP | undefined;
}

/**
 * One GET of `url` with exactly `headers` (request-headers.ts built them), no redirect
 * followed. The body is pushed to `handler` straight from undici's parser: no stream,
 * no promise per chunk, and backpressure by pausing the socket (the hot path of every
 * range). A status that `accepts` refuses fails with an HttpStatusError carrying the
 * server's reason (the first 200 characters of its body); `handler` never sees that body.
 * @throws HttpStatusError, NetworkError (ERR_TIMEOUT when no final answer comes within
 *   `timeoutMs`), the signal's reason on abort, or what the handler threw
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
  const { clock } = context;
  const shown = shownUrl(context, url);
  return new Promise<void>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let errorStatus: { status: number; retryAfter: string | undefined; contentType: string | undefined; reason: string } | undefined;
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
    const statusError = (answer: NonNullable<typeof errorStatus>) =>
      httpStatusError(answer.status, shown, answer.reason, answer.retryAfter, answer.contentType, clock.wall());
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    signal.addEventListener("abort", onAbort, { once: true });
    context.stats.requestStarted(target.origin);
    context.events?.request(shown, headers);
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
        headers,
        headersTimeout: 0,
        bodyTimeout: context.timeoutMs,
      },
      {
        onRequestStart(requestController) {
          controller = requestController;
          if (settled) requestController.abort(new Error("request no longer needed"));
        },
        onResponseStart(responseController, status, rawHeaders) {
          if (status < 200 || settled) return;
          deadline.abort(WAKE_UP);
          context.stats.responseReceived(status, clock.now() - startedAt);
          context.credentials?.onResponse(target, rawHeaders);
          const flat = flattenHeaders(rawHeaders);
          context.events?.response(shown, status, flat);
          if (!accepts(status)) {
            errorStatus = { status, retryAfter: flat["retry-after"], contentType: flat["content-type"], reason: "" };
            return;
          }
          try {
            if (handler.onHeaders(status, flat, url) === STOP) {
              settle();
              responseController.abort(new Error("answer not wanted"));
            }
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
              fail(statusError(errorStatus));
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
          if (errorStatus) settle(statusError(errorStatus));
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
 * A request sent through `send` (the layered path, or one `streamGet`) with the body as
 * a Readable, for answers whose reader is decided only after the headers are seen (the
 * probe, the single stream). Resolves at the headers of a status the request accepts;
 * destroying the body ends the request.
 */
export function asResponse(send: (signal: AbortSignal, handler: BodyHandler) => Promise<void>, signal: AbortSignal): Promise<HttpResponse> {
  return new Promise<HttpResponse>((resolve, reject) => {
    let body: Readable | undefined;
    let wake: (() => void) | undefined;
    let ended = false;
    const unwanted = new AbortController();
    const request = send(AbortSignal.any([signal, unwanted.signal]), {
      onHeaders(status, responseHeaders, url) {
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

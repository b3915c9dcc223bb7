import { readFileSync } from "node:fs";
import nodeTls from "node:tls";
import { EnvHttpProxyAgent, type Dispatcher } from "undici";
import { HttpStatusError, IntegrityError, NetworkError } from "./errors.js";
import { isRetryableStatus } from "./retry.js";
import type { HttpStatsRecorder } from "./stats.js";
import { httpStatusError, toNetworkError } from "./to-error.js";

export const USER_AGENT = "rangeget";
const MAX_REDIRECTS = 10;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
// Credentials must not follow a redirect to another origin (RFC 9110 15.4; curl and
// fetch behave the same), and neither must the user's own -H headers, which often
// carry API keys under custom names.
const CREDENTIAL_HEADERS = new Set(["authorization", "cookie", "proxy-authorization"]);

export interface DispatcherOptions {
  connections: number;
  timeoutMs: number;
  ca?: string | Buffer;
  insecure?: boolean;
}

/**
 * One keep-alive dispatcher per download: `connections` sockets per origin, no
 * pipelining (a stalled range must not block the next one on the same socket), and
 * HTTP_PROXY / HTTPS_PROXY / NO_PROXY from the environment.
 */
export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const tls = {
    ...(options.ca === undefined ? {} : { ca: [...defaultCaCertificates(), options.ca] }),
    ...(options.insecure ? { rejectUnauthorized: false } : {}),
  };
  return new EnvHttpProxyAgent({
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: { timeout: options.timeoutMs, ...tls },
    requestTls: tls,
  });
}

/**
 * What Node trusts without `--ca`: Mozilla's roots plus NODE_EXTRA_CA_CERTS. A `ca`
 * option replaces that set, and `--ca` means "also trust", so it is added to this.
 */
function defaultCaCertificates(): string[] {
  const { getCACertificates } = nodeTls as { getCACertificates?: (type: "default") => string[] };
  // Node 22.15+ answers itself; on older Nodes we read NODE_EXTRA_CA_CERTS as Node does.
  if (getCACertificates) return getCACertificates("default");
  const extra = process.env["NODE_EXTRA_CA_CERTS"];
  let extraPem: string[] = [];
  if (extra) {
    try {
      extraPem = readFileSync(extra, "utf8").match(/-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g) ?? [];
    } catch {
      // Node has already warned about an unreadable NODE_EXTRA_CA_CERTS at start-up.
    }
  }
  return [...nodeTls.rootCertificates, ...extraPem];
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | undefined>;
  body: Dispatcher.ResponseData["body"];
  /** The URL this response came from, after redirects. */
  url: string;
}

export interface RequestContext {
  dispatcher: Dispatcher;
  timeoutMs: number;
  stats: HttpStatsRecorder;
  /** The origin the user's headers belong to. */
  userOrigin: string;
  userHeaders: Record<string, string>;
}

/**
 * Sends one GET. Header hygiene lives here: `Accept-Encoding: identity` always (a
 * range of a gzip-encoded representation is not a range of the file), the user's
 * headers only to their own origin.
 */
export async function get(
  context: RequestContext,
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
): Promise<HttpResponse> {
  const target = new URL(url);
  const requestHeaders = headersFor(context, target, headers);
  context.stats.requestStarted(target.origin);
  const startedAt = performance.now();
  let response: Dispatcher.ResponseData;
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(headersTimeout(url, context.timeoutMs)), context.timeoutMs);
  try {
    response = await context.dispatcher.request({
      origin: target.origin,
      path: target.pathname + target.search,
      method: "GET",
      headers: requestHeaders,
      signal: AbortSignal.any([signal, deadline.signal]),
      headersTimeout: context.timeoutMs,
      bodyTimeout: context.timeoutMs,
    });
  } catch (error) {
    throw toNetworkError(error, url, signal);
  } finally {
    clearTimeout(timer);
  }
  context.stats.responseReceived(response.statusCode, performance.now() - startedAt);
  return { status: response.statusCode, headers: flattenHeaders(response.headers), body: response.body, url };
}

/** Returned by a body handler that has all it wants: the request ends early. */
export const STOP = Symbol("stop");

export interface BodyHandler {
  /** Status and headers: throw to refuse the answer (the request fails with that error). */
  onHeaders(status: number, headers: Record<string, string | undefined>): void;
  /** A body chunk: STOP to end early, a promise to stop reading until it settles. */
  onData(chunk: Buffer): Promise<void> | typeof STOP | undefined;
}

/**
 * GET whose body is pushed to `handler` straight from the parser: no stream, no
 * promise per chunk, and backpressure by pausing the socket. The hot path of every
 * range. A status other than `expected` that `onHeaders` lets through fails with an
 * HttpStatusError carrying the server's reason.
 */
export function streamGet(
  context: RequestContext,
  url: string,
  headers: Record<string, string>,
  signal: AbortSignal,
  expected: number,
  handler: BodyHandler,
): Promise<void> {
  const target = new URL(url);
  const requestHeaders = headersFor(context, target, headers);
  return new Promise<void>((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let settled = false;
    let errorStatus: { status: number; retryAfter: string | undefined; reason: string } | undefined;
    const settle = (error?: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
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
    const startedAt = performance.now();
    const timer = setTimeout(() => fail(headersTimeout(url, context.timeoutMs)), context.timeoutMs);
    context.dispatcher.dispatch(
      {
        origin: target.origin,
        path: target.pathname + target.search,
        method: "GET",
        headers: requestHeaders,
        headersTimeout: context.timeoutMs,
        bodyTimeout: context.timeoutMs,
      },
      {
        onRequestStart(requestController) {
          controller = requestController;
          if (settled) requestController.abort(new Error("request no longer needed"));
        },
        onResponseStart(_controller, status, rawHeaders) {
          if (status < 200) return;
          clearTimeout(timer);
          context.stats.responseReceived(status, performance.now() - startedAt);
          const flat = flattenHeaders(rawHeaders);
          try {
            handler.onHeaders(status, flat);
          } catch (error) {
            fail(error);
            return;
          }
          if (status !== expected) errorStatus = { status, retryAfter: flat["retry-after"], reason: "" };
        },
        onResponseData(requestController, chunk) {
          // undici hands over an empty chunk on every resume; pausing for it again
          // would spin on microtasks forever.
          if (settled || chunk.length === 0) return;
          if (errorStatus) {
            errorStatus.reason += String(chunk);
            // Enough for the one-line reason: no need to read a large error body.
            if (errorStatus.reason.length >= 200) {
              fail(httpStatusError(errorStatus.status, url, errorStatus.reason, errorStatus.retryAfter));
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
          if (errorStatus) settle(httpStatusError(errorStatus.status, url, errorStatus.reason, errorStatus.retryAfter));
          else settle();
        },
        onResponseError(_controller, error) {
          settle(toNetworkError(error, url, signal));
        },
      },
    );
  });
}

/**
 * undici's headersTimeout starts again with every informational 1xx answer, so a
 * server sending them forever would hold a request open for ever; this deadline
 * does not move.
 */
function headersTimeout(url: string, timeoutMs: number): NetworkError {
  return new NetworkError(`timed out waiting for ${url} to answer (no final response within ${timeoutMs / 1000} s)`, {
    url,
    code: "ERR_TIMEOUT",
  });
}

function headersFor(context: RequestContext, target: URL, headers: Record<string, string>): Record<string, string> {
  const requestHeaders: Record<string, string> = { "user-agent": USER_AGENT };
  if (target.origin === context.userOrigin) {
    for (const [name, value] of Object.entries(context.userHeaders)) requestHeaders[name.toLowerCase()] = value;
  }
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
): Promise<HttpResponse> {
  const visited = new Set<string>();
  let current = url;
  for (let hop = 0; ; hop++) {
    visited.add(current);
    const response = await get(context, current, headers, signal);
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

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.has(name.toLowerCase())));
}

/** Throws away a body we will not read, so the socket can be reused or closed. */
export async function discard(response: HttpResponse): Promise<void> {
  try {
    await response.body.dump({ limit: 64 * 1024 });
  } catch {
    // The socket is being torn down anyway; nothing to report.
  }
}

function flattenHeaders(headers: Dispatcher.ResponseData["headers"]): Record<string, string | undefined> {
  const flat: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(headers)) {
    flat[name] = Array.isArray(value) ? value.join(", ") : value;
  }
  return flat;
}

/**
 * Whether a failed attempt is worth another: network trouble (but not TLS trust),
 * a retryable status, and a wrong range from the server (a broken cache node may
 * answer right the next time).
 */
export function isRetryableFailure(error: unknown): boolean {
  if (error instanceof NetworkError) return error.code !== "ERR_TLS";
  if (error instanceof HttpStatusError) return isRetryableStatus(error.status) && error.code === "ERR_HTTP_STATUS";
  return error instanceof IntegrityError && error.code === "ERR_BAD_RANGE";
}

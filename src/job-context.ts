/**
 * What the file job (file-download.ts) and the stream job (stream-download.ts) share:
 * the context every request of one download carries, and the error a download stops
 * with when its caller aborts.
 */
import type { Dispatcher } from "undici";
import { AbortError } from "./errors.js";
import type { RequestContext } from "./http.js";
import type { Settings } from "./options.js";
import type { HttpStatsRecorder } from "./stats.js";

/** What every request of one download shares: the dispatcher, the user's headers and credentials, the clock. */
export function requestContext(settings: Settings, dispatcher: Dispatcher, stats: HttpStatsRecorder): RequestContext {
  return {
    dispatcher,
    timeoutMs: settings.timeoutMs,
    stats,
    clock: settings.clock,
    userOrigin: settings.userOrigin,
    userHeaders: settings.headers,
    shownUserinfo: settings.shownUserinfo,
    originCredentials: settings.mirrorCredentials,
    userAgent: settings.userAgent,
    credentials: settings.credentials,
    hostLimits: settings.hostLimits,
    events: settings.events,
    warn: settings.warn,
    warned: new Set(),
  };
}

/** The error a download rejects with when the caller's signal stopped it (SIGINT unless it says SIGTERM). */
export function abortError(signal: AbortSignal): AbortError {
  if (signal.reason instanceof AbortError) return signal.reason;
  return new AbortError(undefined, { signal: signal.reason === "SIGTERM" ? "SIGTERM" : "SIGINT" });
}

/**
 * A download's settings: the caller's options checked once, defaults filled in, and
 * the one URL parser the library and the CLI share. Pure apart from `resolve` of
 * paths against the current directory.
 */
import { resolve } from "node:path";
import { parseChecksum } from "./checksum.js";
import { systemClock, type Clock } from "./clock.js";
import { UsageError } from "./errors.js";
import { HostLimits, maxConnectionsPerHostFor } from "./host-limits.js";
import { checkBound, OPTION_BOUNDS } from "./option-bounds.js";
import { redactText } from "./redact.js";
import { RateLimiter } from "./rate-limit.js";
import { splitUrlCredentials, type OriginCredentials } from "./url-credentials.js";
import type { Checksum, DownloadOptions } from "./types.js";

export const DEFAULTS = {
  connections: 8,
  minSplit: 4 * 1024 * 1024,
  retries: 5,
  timeout: 30,
} as const;

/** What the library passes its own callers beyond the public options. */
export interface InternalOptions extends DownloadOptions {
  /** A rate limiter shared with other downloads (downloadAll shares one across files). */
  rateLimiter?: RateLimiter;
  /** Time for retries, ticks and rates; tests pass a fake one. */
  clock?: Clock;
  /** Connection limits per host shared with other downloads (downloadAll shares one across files). */
  hostLimits?: HostLimits;
}

/** Everything a download reads from its options, checked and with defaults. */
export interface Settings {
  /** The URL without user name and password: what is requested and recorded. */
  url: string;
  /** The URL as it may be shown (`user:***@`): results and messages. */
  shownUrl: string;
  /** `user:***` of the URL, or `undefined` when it has no user name. */
  shownUserinfo: string | undefined;
  /** Other copies of the same file, without user name and password: what is requested. */
  mirrors: string[];
  /**
   * Per origin, the Basic auth of the first mirror URL there with `user:password@`;
   * sent to that origin only. The URL's own credentials (or `-H Authorization`) win
   * on the URL's origin.
   */
  mirrorCredentials: ReadonlyMap<string, OriginCredentials>;
  userOrigin: string;
  dir: string;
  output: string | undefined;
  connections: number;
  minSplit: number;
  retries: number;
  timeoutMs: number;
  checksum: Checksum | undefined;
  ifChanged: boolean;
  force: boolean;
  /** Adopt an existing output as a done prefix. */
  continue: boolean;
  /** The user's headers, plus Basic auth from the URL's credentials; sent to `userOrigin` only. */
  headers: Record<string, string>;
  userAgent: string | undefined;
  credentials: DownloadOptions["credentials"];
  restartOnChange: boolean;
  signal: AbortSignal | undefined;
  onProgress: DownloadOptions["onProgress"];
  warn: (message: string) => void;
  rateLimiter: RateLimiter | undefined;
  hostLimits: HostLimits;
  clock: Clock;
}

/**
 * Checks that `text` is an absolute http or https URL, so a typo fails with exit 2
 * before any connection is made instead of as a network error later.
 * @throws UsageError
 */
export function parseHttpUrl(text: string): URL {
  // curl, wget and aria2c take `host/path` as http://; a download in clear text is not
  // ours to choose, so the user says which. (`localhost:8080/f` would parse as a URL of
  // the scheme `localhost:`.)
  if (/^([a-z0-9-]+\.[a-z0-9.-]+|localhost|\[[0-9a-f:.]+\])(:[0-9]+)?([/?#]|$)/i.test(text)) {
    throw new UsageError(`"${redactText(text)}" has no scheme; add https:// (or http://) in front of it`);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`"${redactText(text)}" is not a URL; give an absolute http:// or https:// URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`"${redactText(text)}" is not an http or https URL (rangeget speaks HTTP only)`);
  }
  return url;
}

/**
 * Checks the limits a batch shares across its files (`downloadAll` builds them once,
 * before any file's settings): `limitRate` a finite positive number of bytes per
 * second, `maxConnectionsPerHost` a whole number from 1.
 * @throws UsageError
 */
export function checkSharedLimits(options: Pick<DownloadOptions, "limitRate" | "maxConnectionsPerHost">): void {
  const { limitRate, maxConnectionsPerHost } = options;
  if (limitRate !== undefined) checkBound(OPTION_BOUNDS.limitRate, limitRate, "option");
  if (maxConnectionsPerHost !== undefined) checkBound(OPTION_BOUNDS.maxConnectionsPerHost, maxConnectionsPerHost, "option");
}

/**
 * Settings for downloading `url` (and its `mirrors`) with `options`.
 * @throws UsageError for a bad URL or an option out of its range.
 */
export function resolveSettings(url: string, mirrors: readonly string[], options: InternalOptions): Settings {
  const parsed = parseHttpUrl(url);
  const timeout = checkBound(OPTION_BOUNDS.timeout, options.timeout ?? DEFAULTS.timeout, "option");
  checkSharedLimits(options);
  const dir = resolve(options.dir ?? ".");
  const credentials = splitUrlCredentials(parsed.href);
  const headers = { ...options.headers };
  // An Authorization given with -H is the user's explicit choice and wins over the URL's.
  const hasAuthorization = Object.keys(headers).some((name) => name.toLowerCase() === "authorization");
  if (credentials.authorization !== undefined && !hasAuthorization) headers["authorization"] = credentials.authorization;
  const connections = checkBound(OPTION_BOUNDS.connections, options.connections ?? DEFAULTS.connections, "option");
  if (options.continue && options.force) throw new UsageError("`continue` keeps a partial output and `force` discards it; give one of them");
  const mirrorUrls = mirrors.map((mirror) => splitUrlCredentials(parseHttpUrl(mirror).href));
  const mirrorCredentials = new Map<string, OriginCredentials>();
  for (const { origin, authorization, shownUserinfo } of mirrorUrls) {
    if (authorization !== undefined && shownUserinfo !== undefined && !mirrorCredentials.has(origin)) {
      mirrorCredentials.set(origin, { authorization, shownUserinfo });
    }
  }
  const maxPerHost = options.maxConnectionsPerHost;
  const clock = options.clock ?? systemClock;
  return {
    url: credentials.url,
    shownUrl: credentials.shown,
    shownUserinfo: credentials.shownUserinfo,
    mirrors: mirrorUrls.map((mirror) => mirror.url),
    mirrorCredentials,
    userOrigin: parsed.origin,
    dir,
    // As given, relative to the current directory: `dir` places only names the server or the URL chose.
    output: options.output === undefined ? undefined : resolve(options.output),
    connections,
    minSplit: checkBound(OPTION_BOUNDS.minSplit, options.minSplit ?? DEFAULTS.minSplit, "option"),
    retries: checkBound(OPTION_BOUNDS.retries, options.retries ?? DEFAULTS.retries, "option"),
    timeoutMs: Math.round(timeout * 1000),
    checksum: typeof options.checksum === "string" ? parseChecksum(options.checksum) : options.checksum,
    ifChanged: options.ifChanged ?? false,
    force: options.force ?? false,
    continue: options.continue ?? false,
    headers,
    userAgent: options.userAgent,
    credentials: options.credentials,
    restartOnChange: options.restartOnChange ?? true,
    signal: options.signal,
    onProgress: options.onProgress,
    // A library user's stderr is a log like any other: no password reaches it.
    warn: options.onWarning ?? ((message) => process.stderr.write(`rangeget: warning: ${redactText(message)}\n`)),
    rateLimiter: options.rateLimiter ?? (options.limitRate === undefined ? undefined : new RateLimiter(options.limitRate, clock)),
    hostLimits: options.hostLimits ?? new HostLimits(maxConnectionsPerHostFor({ connections, ...(maxPerHost === undefined ? {} : { maxConnectionsPerHost: maxPerHost }) })),
    clock,
  };
}

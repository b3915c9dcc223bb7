/**
 * A download's settings: the caller's options checked once, defaults filled in, and
 * the one URL parser the library and the CLI share. Pure apart from `resolve` of
 * paths against the current directory, and the proxy variables and the cache's default
 * directory (`XDG_CACHE_HOME` or the home directory) read from `process.env` and
 * `os.homedir()` unless the caller passes `environment` and `homeDir`.
 */
import { homedir } from "node:os";
import { basename, resolve } from "node:path";
import { cacheDirectory } from "./cache.js";
import { expectedChecksumOf, parseChecksum, type ExpectedChecksum } from "./checksum.js";
import { checksumFor, type ChecksumList } from "./checksum-file.js";
import { systemClock, type Clock } from "./clock.js";
import { UsageError } from "./errors.js";
import { FALLBACK_NAME, fileNameFromUrl } from "./filename.js";
import { DownloadEvents } from "./events.js";
import { intervalsWith, type Intervals } from "./intervals.js";
import { HostLimits, maxConnectionsPerHostFor } from "./host-limits.js";
import { proxyRoutes, type ProxyRoutes } from "./proxy.js";
import { checkBound, OPTION_BOUNDS } from "./option-bounds.js";
import { redactText } from "./redact.js";
import { RateLimiter } from "./rate-limit.js";
import { splitUrlCredentials, type OriginCredentials } from "./url-credentials.js";
import type { DownloadOptions } from "./types.js";

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
  /** The periods of the heartbeat and of what it reports, ms (intervals.ts); tests pass short ones. Default `DEFAULT_INTERVALS`. */
  intervals?: Partial<Intervals>;
  /** Connection limits per host shared with other downloads (downloadAll shares one across files). */
  hostLimits?: HostLimits;
  /** Where the proxy variables (HTTP_PROXY, NO_PROXY...) and `XDG_CACHE_HOME` are read. Default `process.env`. */
  environment?: NodeJS.ProcessEnv;
  /** The home directory of `cache: true`'s default. Default `os.homedir()`. */
  homeDir?: string;
  /** `checksumFile`, already read and parsed (downloadAll reads it once for every item). */
  checksumList?: ChecksumList;
  /** `downloadStream`: the file goes into an ordered stream (download.ts holds it), not to a file. */
  streaming?: boolean;
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
  checksum: ExpectedChecksum | undefined;
  /**
   * The checksum file whose entry for the output is still to be found: set only while
   * `checksum` is not, when the output's name comes from the server's answer.
   */
  checksumList: ChecksumList | undefined;
  /** The cache directory (`cache` resolved), or `undefined` for no cache. */
  cache: string | undefined;
  ifChanged: boolean;
  force: boolean;
  /** Adopt an existing output as a done prefix. */
  continue: boolean;
  /** The user's headers, plus Basic auth from the URL's credentials; sent to `userOrigin` only. */
  headers: Record<string, string>;
  userAgent: string | undefined;
  credentials: DownloadOptions["credentials"];
  restartOnChange: boolean;
  /** See `DownloadOptions.noHedge`. */
  noHedge: boolean;
  signal: AbortSignal | undefined;
  /** The caller's onProgress, and the `progress` events fed from the same snapshots. */
  onProgress: DownloadOptions["onProgress"];
  /** Where the engine reports what happens (events.ts). */
  events: DownloadEvents;
  warn: (message: string) => void;
  rateLimiter: RateLimiter | undefined;
  hostLimits: HostLimits;
  clock: Clock;
  /** How often the ticker beats and checkpoints, and progress events are passed on, ms. */
  intervals: Intervals;
  /** Which proxy each URL goes through, from `proxy`, `noProxy` and the environment. */
  proxies: ProxyRoutes;
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
 * @throws UsageError for a bad URL, an option out of its range, or a proxy URL (the
 *   option's or a proxy variable's) of a scheme rangeget does not speak.
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
  // As given, relative to the current directory: `dir` places only names the server or the URL chose.
  const output = options.output === undefined ? undefined : resolve(options.output);
  if (options.cache !== undefined && (options.streaming === true || options.extract !== undefined)) {
    throw new UsageError("cache keeps finished files; it cannot serve downloadStream or extract");
  }
  if (options.cache !== undefined && options.cache !== true && (typeof options.cache !== "string" || options.cache.trim() === "")) {
    throw new UsageError(`cache must be a directory or true, not ${JSON.stringify(options.cache)}`);
  }
  const checksum = expectedChecksum(options, credentials.url, output);
  const clock = options.clock ?? systemClock;
  const intervals = intervalsWith(options.intervals);
  const environment = options.environment ?? process.env;
  const proxies = proxyRoutes(options, environment);
  const events = new DownloadEvents({ onEvent: options.onEvent, onTrace: options.onTrace }, credentials.shown, output ?? "", clock, intervals.progressEventMs);
  const { onProgress } = options;
  return {
    url: credentials.url,
    shownUrl: credentials.shown,
    shownUserinfo: credentials.shownUserinfo,
    mirrors: mirrorUrls.map((mirror) => mirror.url),
    mirrorCredentials,
    userOrigin: parsed.origin,
    dir,
    output,
    connections,
    minSplit: checkBound(OPTION_BOUNDS.minSplit, options.minSplit ?? DEFAULTS.minSplit, "option"),
    retries: checkBound(OPTION_BOUNDS.retries, options.retries ?? DEFAULTS.retries, "option"),
    // At least 1 ms: a timeout under half a millisecond is still a timeout, and 0 would
    // end every request's deadline at once.
    timeoutMs: Math.max(1, Math.round(timeout * 1000)),
    checksum,
    checksumList: checksum === undefined ? options.checksumList : undefined,
    cache: options.cache === undefined ? undefined : cacheDirectory(options.cache, environment, options.homeDir ?? homedir()),
    ifChanged: options.ifChanged ?? false,
    force: options.force ?? false,
    continue: options.continue ?? false,
    headers,
    userAgent: options.userAgent,
    credentials: options.credentials,
    restartOnChange: options.restartOnChange ?? true,
    noHedge: options.noHedge ?? false,
    signal: options.signal,
    onProgress: options.onEvent === undefined ? onProgress : (progress) => {
      onProgress?.(progress);
      events.progress(progress);
    },
    events,
    // A library user's stderr is a log like any other: no password reaches it.
    warn: options.onWarning ?? ((message) => process.stderr.write(`rangeget: warning: ${redactText(message)}\n`)),
    rateLimiter: options.rateLimiter ?? (options.limitRate === undefined ? undefined : new RateLimiter(options.limitRate, clock)),
    hostLimits: options.hostLimits ?? new HostLimits(maxConnectionsPerHostFor({ connections, ...(maxPerHost === undefined ? {} : { maxConnectionsPerHost: maxPerHost }) })),
    clock,
    intervals,
    proxies,
  };
}

/**
 * The digest to verify: `checksum` as given, else the checksum file's entry for the
 * output when its name is known before any answer (`output`, or a stream named after
 * the URL); `undefined` leaves the lookup to the file download, once the server named
 * the file.
 * @throws UsageError for a malformed checksum, both options at once, or no entry.
 */
function expectedChecksum(options: InternalOptions, url: string, output: string | undefined): ExpectedChecksum | undefined {
  const { checksum, checksumFile, checksumList } = options;
  if (checksum !== undefined && (checksumFile !== undefined || checksumList !== undefined)) {
    throw new UsageError("checksum and checksumFile both give the digest to verify; give one of them");
  }
  if (checksum !== undefined) return typeof checksum === "string" ? parseChecksum(checksum) : expectedChecksumOf(checksum);
  if (checksumList === undefined) return undefined;
  const named = output ?? (options.streaming === true || options.extract !== undefined ? fileNameFromUrl(url) ?? FALLBACK_NAME : undefined);
  return named === undefined ? undefined : checksumFor(checksumList, { outputName: basename(named), url });
}

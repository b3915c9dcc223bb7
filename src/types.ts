/**
 * The library's public types: options, results, progress and event shapes, shared by
 * the library and the CLI. Types only, and the event schema's version number.
 */
import type { Readable } from "node:stream";
import type { Dispatcher } from "undici";
import type { CredentialSource } from "./credentials.js";
import type { ErrorSummary } from "./errors.js";

/** A snapshot of one download's progress, given to `onProgress` a few times a second. */
export interface ProgressEvent {
  /** The output path (absolute), known once the server has answered. */
  path: string;
  /** Bytes of the file written so far, including bytes from an earlier run. */
  bytesDone: number;
  /** Total size in bytes, or `undefined` while the server has not said. */
  size: number | undefined;
  /** Recent throughput, bytes per second, over the last few seconds. */
  bytesPerSecond: number;
  /** Connections currently transferring bytes. */
  activeConnections: number;
}

/** A checksum to verify before the output appears: `{ algorithm: "sha256", hex: "…" }`. */
export interface Checksum {
  algorithm: "sha256" | "sha384" | "sha512" | "sha1" | "md5";
  /** Lower-case hex digest. */
  hex: string;
}

export interface DownloadOptions {
  /** Output path, as given (relative to the current directory, not to `dir`). Default: the server's Content-Disposition name, else the URL's last path segment, else `download`, inside `dir`. */
  output?: string;
  /** Directory for an output named by the server or URL. Default: the current directory. Not applied to `output`, which is a path as given (relative to the current directory). */
  dir?: string;
  /** Parallel connections for this file, 1..64. Default 8. */
  connections?: number;
  /** Smallest range, in bytes, worth its own connection; also the probe's size. Default 4 MiB. */
  minSplit?: number;
  /** Attempts without a new byte before a range fails. Default 5. */
  retries?: number;
  /** Connect timeout, wait for the response headers, and idle-read timeout, in seconds. Default 30. */
  timeout?: number;
  /** Total download rate cap in bytes per second for this file. Default: none. */
  limitRate?: number;
  /**
   * Verify the bytes against this digest before the output (or the `extract` directory)
   * appears. A string is accepted too: `sha256=<hex>` (`sha-256=`, `sha256:` and sha384,
   * sha512, sha1, md5 too) or SRI `sha256-<base64>` (sha384, sha512; several tokens
   * separated by spaces: the strongest algorithm decides). The digest is computed while the bytes
   * arrive (a resumed file first hashes what it already has), never by reading the
   * finished file again; the result's `checksum` reports it.
   */
  checksum?: Checksum | string;
  /**
   * A checksum file (a path, or an http(s) URL fetched once before any download with
   * the same credential rules as `url`): `sha256sum`/`shasum` lines (`<hex>  <name>`,
   * `<hex> *<name>`) or BSD `SHA256 (<name>) = <hex>`. The output's entry is found by
   * its base name, else by the URL's last path segment; the algorithm comes from the
   * tag or the digest's length. No entry is a `UsageError`: before any request when
   * `output` is given, else once the server's answer named the file, before any byte is
   * written. Not with `checksum`. In `downloadAll`, one file serves every item.
   */
  checksumFile?: string;
  /**
   * A cache of finished files by digest: a directory, or `true` for
   * `$XDG_CACHE_HOME/rangeget` (else `~/.cache/rangeget`). When the digest is known
   * before the download (`checksum`, or `checksumFile` with the output's name known), a
   * file of that digest in the cache is copied to the output with no request (a reflink
   * where the volume can; never a hard link) and verified as it is read; one that does
   * not match is dropped and the file fetched. After a verified download the file is
   * stored there (`<dir>/<algorithm>/<hex>`, appearing by rename). Without `output` a
   * file from the cache is named after the URL. Not for `downloadStream` or `extract`.
   * The result's `cache` says what happened. Default: no cache.
   */
  cache?: string | true;
  /**
   * The download is a tar archive (plain, gzip, or zstd where Node's zlib has it: Node
   * 22.15+ or 23.8+), unpacked into this directory while it arrives; no file is saved
   * and nothing resumes. It is unpacked into a temporary sibling and renamed to this
   * path only once the archive ended cleanly and any `checksum` matched. Entries never
   * land outside it: absolute paths are made relative; `..` paths, links leading out
   * and device files are skipped with a warning. An existing non-empty directory is
   * refused (`FileError` `ERR_EXISTS`) unless `force`. A corrupt or cut archive is an
   * `IntegrityError`; bzip2 and xz are refused with a `UsageError`.
   */
  extract?: string;
  /**
   * For `downloadStream` and `extract`: bytes fetched ahead of the write position and
   * held in memory, at least 1 MiB. Default: two ranges of `minSplit` per connection,
   * capped at 64 MiB (8 MiB at 4 connections and a 1 MiB `minSplit`).
   */
  streamWindow?: number;
  /** If the output exists, fetch only when the server says it changed (If-None-Match / If-Modified-Since). Default false. */
  ifChanged?: boolean;
  /** Overwrite an existing output and discard any partial state. Default false. */
  force?: boolean;
  /**
   * Adopt an existing output that another tool (a browser, curl, wget) left partial:
   * its bytes are taken as a done prefix and only the rest is fetched. No validator
   * vouches for that prefix (a warning says so), so `checksum` then matters. Default false.
   */
  continue?: boolean;
  /**
   * Total connections to one host (host and port) across every file of a run; a host
   * that answers 429/503 while other connections deliver gets fewer for the rest of
   * the run. Default 16, or `connections` when that is larger.
   */
  maxConnectionsPerHost?: number;
  /** Extra request headers, sent only to the origin of `url` (never across a redirect to another origin). */
  headers?: Record<string, string>;
  /** User-Agent. Default `rangeget/<version>`. */
  userAgent?: string;
  /**
   * Credentials that belong to hosts rather than to `url` (a netrc, a cookie jar), asked
   * for every request URL, redirect hops included. Headers in `headers` or the URL win.
   */
  credentials?: CredentialSource;
  /** Aborting stops the download cleanly with its state saved where it can be; the call rejects with `AbortError`, whose `kept` says what a re-run finds. */
  signal?: AbortSignal;
  /** Called a few times a second, and once at the end. */
  onProgress?: (progress: ProgressEvent) => void;
  /**
   * The download's events, the objects `--progress json` prints (README, "Progress as
   * JSON events"): `start`, `progress` (once a second), `retry`, `rescue`, `hedge`,
   * `changed`, and last `finish` or `error`. Each has `v` (the schema's version).
   */
  onEvent?: (event: DownloadEvent) => void;
  /** Every request, its answer and the verdict on it, secrets shown as `***` (what `--verbose` prints). Not a versioned schema. */
  onTrace?: (event: TraceEvent) => void;
  /** When the remote file changed under a partial download: start over (default true) or throw `RemoteChangedError`. */
  restartOnChange?: boolean;
  /**
   * Never ask for a byte twice and never cut an answer short, for links paid by the
   * byte: no endgame hedges, no rescue of a slow connection, no steal of a range in
   * flight; the file is planned as ranges of at most `max(minSplit, size / (4 ×
   * connections))` bytes that idle connections take in turn, so the server sends
   * exactly the file's bytes (a connection that breaks resumes from its last byte).
   * The tail may take longer. Default false.
   */
  noHedge?: boolean;
  /** Extra trusted CA certificates (PEM text) for HTTPS. */
  ca?: string | Buffer;
  /** Skip TLS certificate checks. Default false. */
  insecure?: boolean;
  /**
   * The proxy for every request: `http://`, `https://`, `socks5://` (names resolved
   * here) or `socks5h://` (names resolved by the proxy), with `user:password@` if it
   * wants them (never shown: messages say `user:***@`); no scheme means `http://`.
   * `""` means no proxy, whatever the environment says. Default: `HTTPS_PROXY` /
   * `HTTP_PROXY` / `ALL_PROXY` from the environment (README, "Proxies"). `--ca` and
   * `insecure` apply through it. A `UsageError` for a URL of another scheme.
   */
  proxy?: string;
  /**
   * Hosts that bypass any proxy, as curl's `--noproxy`: comma-separated (or a list),
   * `*` for all, a name with its subdomains, an IP address or CIDR block, `host:port`.
   * Replaces `NO_PROXY`; `""` means none. Default: `NO_PROXY` from the environment.
   */
  noProxy?: string | readonly string[];
  /** Receives one-line warnings (untrusted manifest, restart after a change…). Default: `process.stderr`. */
  onWarning?: (message: string) => void;
  /** Use this undici dispatcher instead of creating one (tests, custom proxies). It is not closed. */
  dispatcher?: Dispatcher;
}

/** What one download did: the `--json` result of the CLI. */
export interface DownloadResult {
  url: string;
  /** The output path (absolute). */
  path: string;
  status: "downloaded" | "resumed" | "up-to-date" | "failed";
  /** File size in bytes, `null` if never learned. */
  size: number | null;
  /** Bytes received over the network in this run (body bytes, including any discarded). */
  bytesTransferred: number;
  elapsedMs: number;
  /** True when bytes from an earlier run were kept. */
  resumed: boolean;
  /** True when partial data was discarded because the remote file changed. */
  restartedBecauseChanged: boolean;
  /** Why the download failed; `null` unless `status` is `"failed"`. */
  error: ErrorSummary | null;
  /** The digest computed while the bytes arrived, when a `checksum` was asked for; else `null`. */
  checksum: Checksum | null;
  /** With `cache`: `"hit"` (copied from the cache, no request), `"stored"` (entered it after a verified download), else `null`. */
  cache: "hit" | "stored" | null;
  http: HttpStats;
}

/** What a resolved `download()` returns: it did not fail, so the size is known. */
export interface FinishedDownload extends DownloadResult {
  status: "downloaded" | "resumed" | "up-to-date";
  size: number;
  error: null;
}

/**
 * Options of `downloadStream`: those of `download` that make sense without a file on
 * disk. There is no `.part`, no manifest and no resume.
 */
export type DownloadStreamOptions = Omit<DownloadOptions, "output" | "dir" | "force" | "ifChanged" | "extract" | "restartOnChange">;

/**
 * What `downloadStream(url, options)` returns: the file as a stream, in order, while
 * ranges are fetched over several connections ahead of the reader.
 *
 * - `body`: the file's bytes in order. Reading slowly slows the fetching: at most
 *   `streamWindow` bytes are held. Destroying it (or a pipe whose reader goes away)
 *   stops every request at once and `done` rejects with `FileError`
 *   `ERR_OUTPUT_CLOSED` (exit 6). When the download fails, `body` errors with the same
 *   error `done` rejects with.
 * - `done`: the result, once every byte has been handed to `body`. Rejects with the
 *   typed errors of `download` (`HttpStatusError`, `NetworkError`, `IntegrityError`
 *   for a wrong size or `checksum` — the bytes have already been read by then, so a
 *   consumer must treat its output as void until `done` resolves — `AbortError`).
 *   Handle it even when only `body` is used, as with any promise.
 */
export interface DownloadStream {
  body: Readable;
  done: Promise<DownloadResult>;
}

export interface HttpStats {
  requests: number;
  /** Responses by status code, e.g. `{ "206": 8, "503": 1 }`. */
  statusCounts: Record<string, number>;
  retries: number;
  /** Ranges moved off a connection far slower than its peers, onto a fresh one. */
  rescues: number;
  /** Endgame races: an idle connection fetching the back half of the slowest range. */
  hedges: number;
  /** Per origin (the URL and each mirror): requests sent and body bytes kept. */
  origins: Record<string, { requests: number; bytes: number }>;
  /** The most connections this file held at once. */
  peakConnections: number;
  /** Time to response headers, milliseconds. `null` when no request was answered. */
  latencyMs: { p50: number | null; p95: number | null; p99: number | null };
}

/**
 * One entry for downloadAll: a URL, or a URL with its own options. A list of URLs
 * names copies of one file: the first is the URL, the rest are mirrors.
 */
export type DownloadItem = string | readonly string[] | ({ url: string | readonly string[] } & DownloadOptions);

export interface DownloadAllOptions extends Omit<DownloadOptions, "output" | "signal" | "onProgress" | "onEvent" | "onTrace"> {
  /** Files downloaded at once. Default 4. */
  jobs?: number;
  signal?: AbortSignal;
  /** Progress of each file, tagged with its index in `items`. */
  onProgress?: (index: number, progress: ProgressEvent) => void;
  /** Events of each file (as `download`'s `onEvent`), tagged with its index in `items`. */
  onEvent?: (index: number, event: DownloadEvent) => void;
  /** The trace of each file (as `download`'s `onTrace`), tagged with its index in `items`. */
  onTrace?: (index: number, event: TraceEvent) => void;
  /** Called as each file ends, in completion order, with the same result `downloadAll` returns for it. */
  onFileEnd?: (index: number, result: DownloadResult) => void;
}

/**
 * The schema's version, `v` in every event. It changes when a field changes meaning or
 * goes away; new fields and new events may appear without a change (skip what you do
 * not know).
 */
export const EVENT_SCHEMA_VERSION = 1;

/** What every event carries. */
export interface EventBase {
  v: typeof EVENT_SCHEMA_VERSION;
  /** Wall-clock time, milliseconds since the Unix epoch. */
  time: number;
  /** The URL as given, its password shown as `***`. */
  url: string;
  /** The output path (absolute), `-` for a stream, the directory for `extract`; `""` until known. */
  path: string;
}

/** A byte range, both ends included. */
export interface EventRange {
  start: number;
  end: number;
}

/** One event of `onEvent` / `--progress json`, told apart by `event`. */
export type DownloadEvent =
  /** The transfer begins (after the probe answered); again after a restart for a `changed` file. */
  | (EventBase & { event: "start"; size: number | null; connections: number })
  /** Once a second (never more often) while bytes are fetched. */
  | (EventBase & {
      event: "progress";
      /** Bytes of the file written so far, an earlier run's included. */
      bytesDone: number;
      size: number | null;
      bytesPerSecond: number;
      /** Seconds left at the current rate; `null` when the size or the rate is not known. */
      etaSeconds: number | null;
      activeConnections: number;
    })
  /** A failed request (or a wrong answer) about to be tried again after `delayMs`. */
  | (EventBase & {
      event: "retry";
      /** One line: what failed. */
      reason: string;
      /** The failure's code (`ERR_HTTP_STATUS`, `ERR_NETWORK`, `ERR_TIMEOUT`, `ERR_BAD_RANGE`…). */
      code: string;
      /** The answer's status when the failure was one. */
      status: number | null;
      delayMs: number;
      /** The attempt that failed, from 1. */
      attempt: number;
    })
  /** The rest of a range moved off a connection far slower than its peers. */
  | (EventBase & { event: "rescue"; range: EventRange })
  /** An idle connection racing the slowest range for this part of it. */
  | (EventBase & { event: "hedge"; range: EventRange })
  /** The remote file changed under a partial download: a `start` follows, or an `error`. */
  | (EventBase & { event: "changed"; reason: string })
  /** The download ended well; `result` is what `download` resolves with (the `--json` object). */
  | (EventBase & { event: "finish"; result: DownloadResult })
  /** The download failed (or was interrupted: `ERR_ABORTED`); the last event of that file. */
  | (EventBase & { event: "error"; code: string; message: string; exit: number; result: DownloadResult });

/** An event of `onTrace` / `--verbose`: one request, its answer, what the answer proved. Not part of the versioned schema. */
export type TraceEvent =
  | { event: "request"; time: number; method: "GET"; url: string; headers: Record<string, string> }
  | { event: "response"; time: number; url: string; status: number; headers: Record<string, string> }
  | { event: "verdict"; time: number; url: string; kind: string; detail: string };

/**
 * Getting the text of a `checksumFile`: a local file read, or an http(s) URL fetched
 * with one small plain GET (redirects followed as every request follows them) before
 * any download, under the credential rules of the download itself. Parsing is
 * checksum-file.ts's.
 */
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Dispatcher } from "undici";
import { systemClock, type Clock } from "./clock.js";
import { parseChecksumList, type ChecksumList } from "./checksum-file.js";
import type { CredentialSource } from "./credentials.js";
import { HttpStatusError, UsageError } from "./errors.js";
import { DEFAULT_MAX_CONNECTIONS_PER_HOST, HostLimits } from "./host-limits.js";
import { discard } from "./http.js";
import { requestResponse } from "./request.js";
import { withRetries } from "./retry.js";
import { DEFAULTS, type InternalOptions } from "./options.js";
import { HttpStatsRecorder } from "./stats.js";
import { splitUrlCredentials } from "./url-credentials.js";

/** A checksum file larger than this is not a checksum file (Debian's biggest SHA256SUMS are a few hundred KiB). */
export const MAX_CHECKSUM_FILE_BYTES = 16 * 1024 * 1024;

/** What fetching a checksum file by URL may use: the download's own access settings. */
export interface ChecksumFileAccess {
  dispatcher: Dispatcher;
  timeoutMs: number;
  retries: number;
  signal?: AbortSignal | undefined;
  clock?: Clock | undefined;
  userAgent?: string | undefined;
  /** netrc and cookies, asked per request URL as for every download request. */
  credentials?: CredentialSource | undefined;
  /**
   * The URLs being downloaded with the user's headers (and any `user:password@`): those
   * go with the checksum file's request only when it is on one of these origins, as
   * the user's headers never go to an origin the user did not ask for.
   */
  downloads: readonly { url: string; headers?: Record<string, string> | undefined }[];
}

/**
 * Reads `source` (a path, relative to the current directory, or an http(s) URL) and
 * parses it.
 * @throws UsageError when the file cannot be read, is too large, or holds no checksum
 *   line; HttpStatusError or NetworkError (after `retries`) when the URL cannot be fetched.
 */
export async function loadChecksumList(source: string, access: ChecksumFileAccess): Promise<ChecksumList> {
  if (/^https?:\/\//i.test(source)) {
    const { url, shown, authorization } = splitUrlCredentials(source);
    return parseChecksumList(await fetchText(url, shown, authorization, access), `checksum file ${shown}`);
  }
  const path = resolve(source);
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > MAX_CHECKSUM_FILE_BYTES) throw tooLarge(source);
    text = bytes.toString("utf8");
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : (error as Error).message;
    throw new UsageError(`cannot read the checksum file ${source}: ${why}`);
  }
  return parseChecksumList(text, `checksum file ${source}`);
}

async function fetchText(url: string, shown: string, authorization: string | undefined, access: ChecksumFileAccess): Promise<string> {
  const origin = new URL(url).origin;
  // The user's headers and a download URL's login belong to that URL's origin only.
  const sameOrigin = access.downloads.find((download) => URL.canParse(download.url) && new URL(download.url).origin === origin);
  const headers: Record<string, string> = { ...sameOrigin?.headers };
  const hasAuthorization = Object.keys(headers).some((name) => name.toLowerCase() === "authorization");
  const login = authorization ?? (sameOrigin === undefined ? undefined : splitUrlCredentials(sameOrigin.url).authorization);
  if (login !== undefined && !hasAuthorization) headers["authorization"] = login;
  const clock = access.clock ?? systemClock;
  const signal = access.signal ?? new AbortController().signal;
  const context = {
    dispatcher: access.dispatcher,
    timeoutMs: access.timeoutMs,
    // Its requests are the run's, not any one file's: they are not counted in a result.
    stats: new HttpStatsRecorder(),
    clock,
    userOrigin: origin,
    userHeaders: headers,
    userAgent: access.userAgent,
    credentials: access.credentials,
    // Asked before any download: no other connection of the run to share the host with yet.
    hostLimits: new HostLimits(DEFAULT_MAX_CONNECTIONS_PER_HOST),
  };
  return withRetries({ retries: access.retries, clock, signal }, async () => {
    const response = await requestResponse(context, { url, first: true, signal });
    if (response.status !== 200) {
      await discard(response);
      throw new HttpStatusError(`HTTP ${response.status} from ${shown}: a checksum file is fetched whole (200)`, {
        status: response.status,
        url: shown,
      });
    }
    const chunks: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      // Leaving the loop destroys the body, which ends the request.
      if (bytes > MAX_CHECKSUM_FILE_BYTES) throw tooLarge(shown);
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString("utf8");
  });
}

/** The access of a download (or a batch) with `options`, for its checksum file. */
export function checksumFileAccess(
  options: Pick<InternalOptions, "timeout" | "retries" | "signal" | "clock" | "userAgent" | "credentials">,
  dispatcher: Dispatcher,
  downloads: ChecksumFileAccess["downloads"],
): ChecksumFileAccess {
  return {
    dispatcher,
    timeoutMs: Math.round((options.timeout ?? DEFAULTS.timeout) * 1000),
    retries: options.retries ?? DEFAULTS.retries,
    signal: options.signal,
    clock: options.clock,
    userAgent: options.userAgent,
    credentials: options.credentials,
    downloads,
  };
}

function tooLarge(source: string): UsageError {
  return new UsageError(`the checksum file ${source} is larger than ${MAX_CHECKSUM_FILE_BYTES / 1024 / 1024} MiB; it is not a checksum file`);
}

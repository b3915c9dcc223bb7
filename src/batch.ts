/**
 * Many files: `downloadAll` (every result, in input order) over `forEachDownload`
 * (each result reported as it ends, none kept), `jobs` at a time, with one dispatcher,
 * one rate limit and one set of host limits for the batch.
 */
import { basename } from "node:path";
import { checksumFor, type ChecksumList } from "./checksum-file.js";
import { systemClock } from "./clock.js";
import { downloadWithResult } from "./download.js";
import { checksumFileAccess, loadChecksumList } from "./load-checksum-file.js";
import { checkSharedLimits, DEFAULTS, type InternalOptions } from "./options.js";
import { checkBound, OPTION_BOUNDS } from "./option-bounds.js";
import { createDispatcher } from "./dispatcher.js";
import { HostLimits, maxConnectionsPerHostFor } from "./host-limits.js";
import { proxyRoutes } from "./proxy.js";
import { RateLimiter } from "./rate-limit.js";
import type { DownloadAllOptions, DownloadItem, DownloadOptions, DownloadResult } from "./types.js";

/**
 * Downloads many files, `jobs` at a time, with one rate limit and one set of
 * per-host connection limits shared by all (a limit learned on one file holds for the
 * next). One
 * failure does not stop the others: every item gets a result, in input order.
 */
export async function downloadAll(items: readonly DownloadItem[], options: DownloadAllOptions = {}): Promise<DownloadResult[]> {
  const results: DownloadResult[] = new Array<DownloadResult>(items.length);
  const { onFileEnd } = options;
  await forEachDownload(items, {
    ...options,
    onFileEnd: (index, result) => {
      results[index] = result;
      onFileEnd?.(index, result);
    },
  });
  return results;
}

/**
 * downloadAll without the list of results: each result goes to `onFileEnd` and is
 * not kept, and only `jobs` files are in hand at a time, so memory does not grow with
 * the list (the command line's `-i` with thousands of files). `onFileEnd` is called
 * exactly once per item, with the error of a failed one. With `checksumFile`, the file is read (or fetched) once, before
 * any download, and every item with its own `output` is looked up in it (UsageError when
 * one is missing). Throws UsageError when `jobs` is not a whole number from 1 up
 * (or Infinity), when the shared `limitRate` or `maxConnectionsPerHost` is out of
 * its range, or when the shared `proxy` (or a proxy variable) is not a proxy URL (as
 * `download` would for one file), before any request. `clock` and `intervals` (the
 * internal seams of `InternalOptions`) serve every file and the shared rate limit.
 */
export async function forEachDownload(
  items: readonly DownloadItem[],
  options: DownloadAllOptions &
    Pick<InternalOptions, "clock" | "intervals" | "environment" | "homeDir"> & { onFileEnd: (index: number, result: DownloadResult, error?: unknown) => void },
): Promise<void> {
  const { jobs = 4, onProgress, onEvent, onTrace, onFileEnd, limitRate, ...defaults } = options;
  if (jobs !== Number.POSITIVE_INFINITY) checkBound(OPTION_BOUNDS.jobs, jobs, "option");
  // Built once for the batch, before any file's settings are checked.
  checkSharedLimits(options);
  const rateLimiter = limitRate === undefined ? undefined : new RateLimiter(limitRate, defaults.clock ?? systemClock);
  const hostLimits = new HostLimits(maxConnectionsPerHostFor(defaults));
  // A proxy URL the batch cannot use is refused before any request, as a bad limit is.
  const proxies = proxyRoutes(defaults, defaults.environment ?? process.env);
  // One dispatcher for the whole batch: files from one server reuse its connections.
  const shared =
    defaults.dispatcher ??
    createDispatcher({
      connections: jobs * (defaults.connections ?? DEFAULTS.connections),
      timeoutMs: (defaults.timeout ?? DEFAULTS.timeout) * 1000,
      ...(defaults.ca === undefined ? {} : { ca: defaults.ca }),
      ...(defaults.insecure ? { insecure: true } : {}),
      proxies,
    });

  let checksumList: ChecksumList | undefined;
  const downloadOne = async (item: DownloadItem, index: number): Promise<void> => {
    const { url, ...own } = itemParts(item);
    // An item with TLS or proxy settings of its own needs connections of its own.
    const ownTls = own.ca !== undefined || own.insecure !== undefined || own.proxy !== undefined || own.noProxy !== undefined;
    const { result, error } = await downloadWithResult(url, {
      ...defaults,
      ...(ownTls ? { dispatcher: undefined } : { dispatcher: shared }),
      ...(checksumList === undefined ? {} : { checksumFile: undefined, checksumList }),
      ...own,
      // An item's own digest or checksum file wins over the batch's checksum file.
      ...(own.checksum !== undefined || own.checksumFile !== undefined ? { checksumFile: own.checksumFile, checksumList: undefined } : {}),
      ...(rateLimiter ? { rateLimiter } : {}),
      hostLimits,
      ...(onProgress ? { onProgress: (progress) => onProgress(index, progress) } : {}),
      ...(onEvent ? { onEvent: (event) => onEvent(index, event) } : {}),
      ...(onTrace ? { onTrace: (event) => onTrace(index, event) } : {}),
    });
    onFileEnd(index, result, error);
  };

  // `jobs` lanes take the next item as each finishes: no promise per queued item.
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      await downloadOne(items[index]!, index);
    }
  };
  try {
    if (defaults.checksumFile !== undefined) {
      // Read once for the whole list, and every output named up front looked up in it
      // before any download: a missing entry stops the run before it starts.
      const downloads = items.map((item) => {
        const { url, headers } = itemParts(item);
        return { url: typeof url === "string" ? url : (url[0] ?? ""), headers: headers ?? defaults.headers };
      });
      checksumList = await loadChecksumList(defaults.checksumFile, checksumFileAccess({ ...defaults, signal: options.signal }, shared, downloads));
      for (const item of items) {
        const { url, output, checksum, checksumFile } = itemParts(item);
        if (output === undefined || checksum !== undefined || checksumFile !== undefined) continue;
        checksumFor(checksumList, { outputName: basename(output), url: typeof url === "string" ? url : (url[0] ?? "") });
      }
    }
    await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, lane));
  } finally {
    if (!defaults.dispatcher) await shared.destroy();
  }
}

/** An item as its URL (or copies) and its own options. */
function itemParts(item: DownloadItem): { url: string | readonly string[] } & DownloadOptions {
  return typeof item === "string" || isUrlList(item) ? { url: item } : item;
}

function isUrlList(item: DownloadItem): item is readonly string[] {
  return Array.isArray(item);
}

/**
 * Many files: `downloadAll` (every result, in input order) over `forEachDownload`
 * (each result reported as it ends, none kept), `jobs` at a time, with one dispatcher,
 * one rate limit and one set of host limits for the batch.
 */
import { downloadWithResult } from "./download.js";
import { checkSharedLimits, DEFAULTS } from "./options.js";
import { checkBound, OPTION_BOUNDS } from "./option-bounds.js";
import { createDispatcher } from "./dispatcher.js";
import { HostLimits, maxConnectionsPerHostFor } from "./host-limits.js";
import { RateLimiter } from "./rate-limit.js";
import type { DownloadAllOptions, DownloadItem, DownloadResult } from "./types.js";

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
 * exactly once per item. Throws UsageError when `jobs` is not a whole number from 1 up
 * (or Infinity), or when the shared `limitRate` or `maxConnectionsPerHost` is out of
 * its range (as `download` would for one file), before any request.
 */
export async function forEachDownload(
  items: readonly DownloadItem[],
  options: DownloadAllOptions & { onFileEnd: (index: number, result: DownloadResult) => void },
): Promise<void> {
  const { jobs = 4, onProgress, onFileEnd, limitRate, ...defaults } = options;
  if (jobs !== Number.POSITIVE_INFINITY) checkBound(OPTION_BOUNDS.jobs, jobs, "option");
  // Built once for the batch, before any file's settings are checked.
  checkSharedLimits(options);
  const rateLimiter = limitRate === undefined ? undefined : new RateLimiter(limitRate);
  const hostLimits = new HostLimits(maxConnectionsPerHostFor(defaults));
  // One dispatcher for the whole batch: files from one server reuse its connections.
  const shared =
    defaults.dispatcher ??
    createDispatcher({
      connections: jobs * (defaults.connections ?? DEFAULTS.connections),
      timeoutMs: (defaults.timeout ?? DEFAULTS.timeout) * 1000,
      ...(defaults.ca === undefined ? {} : { ca: defaults.ca }),
      ...(defaults.insecure ? { insecure: true } : {}),
    });

  const downloadOne = async (item: DownloadItem, index: number): Promise<void> => {
    const { url, ...own } = typeof item === "string" || isUrlList(item) ? { url: item } : item;
    // An item with TLS settings of its own needs connections of its own.
    const ownTls = own.ca !== undefined || own.insecure !== undefined;
    const { result } = await downloadWithResult(url, {
      ...defaults,
      ...(ownTls ? { dispatcher: undefined } : { dispatcher: shared }),
      ...own,
      ...(rateLimiter ? { rateLimiter } : {}),
      hostLimits,
      ...(onProgress ? { onProgress: (progress) => onProgress(index, progress) } : {}),
    });
    onFileEnd(index, result);
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
    await Promise.all(Array.from({ length: Math.min(jobs, items.length) }, lane));
  } finally {
    if (!defaults.dispatcher) await shared.destroy();
  }
}

function isUrlList(item: DownloadItem): item is readonly string[] {
  return Array.isArray(item);
}

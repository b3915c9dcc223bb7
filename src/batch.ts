import pLimit from "p-limit";
import { DEFAULTS, downloadWithResult } from "./download.js";
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
  const { jobs = 4, onProgress, onFileEnd, limitRate, ...defaults } = options;
  const limit = pLimit(jobs);
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

  const downloadOne = async (item: DownloadItem, index: number): Promise<DownloadResult> => {
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
    onFileEnd?.(index, result);
    return result;
  };

  try {
    return await Promise.all(items.map((item, index) => limit(() => downloadOne(item, index))));
  } finally {
    if (!defaults.dispatcher) await shared.destroy();
  }
}

function isUrlList(item: DownloadItem): item is readonly string[] {
  return Array.isArray(item);
}

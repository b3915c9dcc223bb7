import pLimit from "p-limit";
import { downloadWithResult } from "./download.js";
import { RateLimiter } from "./rate-limit.js";
import type { DownloadAllOptions, DownloadItem, DownloadResult } from "./types.js";

/**
 * Downloads many files, `jobs` at a time, with one rate limit shared by all. One
 * failure does not stop the others: every item gets a result, in input order.
 */
function isUrlList(item: DownloadItem): item is readonly string[] {
  return Array.isArray(item);
}

export async function downloadAll(items: readonly DownloadItem[], options: DownloadAllOptions = {}): Promise<DownloadResult[]> {
  const { jobs = 4, onProgress, onFileEnd, limitRate, ...defaults } = options;
  const limit = pLimit(jobs);
  const rateLimiter = limitRate === undefined ? undefined : new RateLimiter(limitRate);
  return Promise.all(
    items.map((item, index) =>
      limit(async () => {
        const { url, ...own } = typeof item === "string" || isUrlList(item) ? { url: item } : item;
        const { result } = await downloadWithResult(url, {
          ...defaults,
          ...own,
          ...(rateLimiter ? { rateLimiter } : {}),
          ...(onProgress ? { onProgress: (progress) => onProgress(index, progress) } : {}),
        });
        onFileEnd?.(index, result);
        return result;
      }),
    ),
  );
}

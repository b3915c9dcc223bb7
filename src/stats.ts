/**
 * What `--stats` and `--json` report about HTTP (requests by status, retries,
 * latency percentiles, rescues, hedges, bytes per origin).
 */
import type { HttpStats } from "./types.js";

/**
 * The nearest-rank percentile (`p` in 0..100) of an ascending list: the smallest
 * value with at least p% of the list at or below it. It is always one of the
 * observed values, never an interpolation. Empty → null.
 */
export function percentile(sortedAscending: readonly number[], p: number): number | null {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, got ${p}`);
  if (sortedAscending.length === 0) return null;
  const rank = Math.max(1, Math.ceil((p / 100) * sortedAscending.length));
  return sortedAscending[rank - 1] ?? null;
}

function roundToTenth(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 10) / 10;
}

/** Counts one download's HTTP traffic; `snapshot()` is the `http` field of its result. */
export class HttpStatsRecorder {
  #requests = 0;
  #retries = 0;
  #rescues = 0;
  #hedges = 0;
  #peakConnections = 0;
  readonly #statusCounts = new Map<number, number>();
  readonly #latenciesMs: number[] = [];
  readonly #origins = new Map<string, { requests: number; bytes: number }>();

  requestStarted(origin?: string): void {
    this.#requests += 1;
    if (origin !== undefined) this.#origin(origin).requests += 1;
  }

  /** Body bytes kept from `origin` (added once per range, not per chunk). */
  bytesFrom(origin: string, bytes: number): void {
    this.#origin(origin).bytes += bytes;
  }

  /** A slow connection's range was moved to a fresh connection. */
  rescued(): void {
    this.#rescues += 1;
  }

  /** An idle connection raced the slowest range for its back half. */
  hedged(): void {
    this.#hedges += 1;
  }

  /** `count` connections of this download are in use now (for the peak). */
  connectionsInUse(count: number): void {
    this.#peakConnections = Math.max(this.#peakConnections, count);
  }

  #origin(origin: string): { requests: number; bytes: number } {
    let entry = this.#origins.get(origin);
    if (!entry) {
      entry = { requests: 0, bytes: 0 };
      this.#origins.set(origin, entry);
    }
    return entry;
  }

  /** `latencyMs`: time from sending the request to its response headers. */
  responseReceived(status: number, latencyMs: number): void {
    this.#statusCounts.set(status, (this.#statusCounts.get(status) ?? 0) + 1);
    this.#latenciesMs.push(latencyMs);
  }

  retried(): void {
    this.#retries += 1;
  }

  snapshot(): HttpStats {
    const sorted = [...this.#latenciesMs].sort((a, b) => a - b);
    const statusCounts: Record<string, number> = {};
    for (const [status, count] of [...this.#statusCounts].sort(([a], [b]) => a - b)) {
      statusCounts[String(status)] = count;
    }
    return {
      requests: this.#requests,
      statusCounts,
      retries: this.#retries,
      rescues: this.#rescues,
      hedges: this.#hedges,
      origins: Object.fromEntries([...this.#origins].map(([origin, entry]) => [origin, { ...entry }])),
      peakConnections: this.#peakConnections,
      latencyMs: {
        p50: roundToTenth(percentile(sorted, 50)),
        p95: roundToTenth(percentile(sorted, 95)),
        p99: roundToTenth(percentile(sorted, 99)),
      },
    };
  }
}

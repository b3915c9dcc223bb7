/**
 * What `--stats` and `--json` report about HTTP (requests by status, retries,
 * latency percentiles), and the sliding-window throughput behind progress speed.
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
      latencyMs: {
        p50: roundToTenth(percentile(sorted, 50)),
        p95: roundToTenth(percentile(sorted, 95)),
        p99: roundToTenth(percentile(sorted, 99)),
      },
    };
  }
}

const BUCKET_MS = 250;

/**
 * Bytes per second over the last `windowMs`, kept in a fixed ring of 250 ms buckets
 * so memory does not grow with the number of chunks. Short enough to follow a
 * changing speed, long enough that the ETA does not jitter with every chunk.
 */
export class RateMeter {
  readonly #windowMs: number;
  /** Which 250 ms interval (time / BUCKET_MS) each slot currently holds. */
  readonly #bucketIds: number[];
  readonly #bucketBytes: number[];
  #firstAddMs: number | undefined;

  constructor(windowMs = 3000) {
    if (!(windowMs >= BUCKET_MS) || !Number.isFinite(windowMs)) {
      throw new RangeError(`rate window must be at least ${BUCKET_MS} ms, got ${windowMs}`);
    }
    const buckets = Math.ceil(windowMs / BUCKET_MS);
    this.#windowMs = buckets * BUCKET_MS;
    this.#bucketIds = new Array<number>(buckets).fill(Number.NEGATIVE_INFINITY);
    this.#bucketBytes = new Array<number>(buckets).fill(0);
  }

  add(bytes: number, nowMs: number): void {
    this.#firstAddMs ??= nowMs;
    const bucketId = Math.floor(nowMs / BUCKET_MS);
    const slot = this.#slotOf(bucketId);
    const heldId = this.#bucketIds[slot] ?? Number.NEGATIVE_INFINITY;
    if (heldId === bucketId) {
      this.#bucketBytes[slot] = (this.#bucketBytes[slot] ?? 0) + bytes;
    } else if (heldId < bucketId) {
      this.#bucketIds[slot] = bucketId;
      this.#bucketBytes[slot] = bytes;
    }
    // else: a sample older than the window; it no longer counts.
  }

  bytesPerSecond(nowMs: number): number {
    const currentId = Math.floor(nowMs / BUCKET_MS);
    const oldestId = currentId - this.#bucketIds.length + 1;
    let bytes = 0;
    this.#bucketIds.forEach((id, slot) => {
      if (id >= oldestId && id <= currentId) bytes += this.#bucketBytes[slot] ?? 0;
    });
    if (bytes === 0 || this.#firstAddMs === undefined) return 0;
    // Divide by the time the buckets actually cover: right after the first bytes
    // arrive, dividing by the whole window would understate the speed. At least one
    // bucket, so the very first chunk does not read as an infinite rate.
    const coveredSinceMs = Math.max(this.#firstAddMs, oldestId * BUCKET_MS);
    const elapsedMs = Math.min(this.#windowMs, Math.max(BUCKET_MS, nowMs - coveredSinceMs));
    return (bytes * 1000) / elapsedMs;
  }

  #slotOf(bucketId: number): number {
    const count = this.#bucketIds.length;
    return ((bucketId % count) + count) % count;
  }
}

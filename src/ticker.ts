/**
 * The heartbeat of a transfer: every `progressMs` (a few times a second) it samples
 * rates and reports progress; every `checkpointMs` (about once a second) it runs the
 * slower duties (rescue check, checkpoint). The periods are the job's `Intervals`.
 */
import type { Clock } from "./clock.js";
import type { Intervals } from "./intervals.js";
import type { Assignment } from "./ranges.js";
import type { RateSampler } from "./rates.js";
import type { ProgressEvent } from "./types.js";

/** What every transfer path counts as it goes; read by the ticker and the result. */
export interface TransferCounters {
  /** Body bytes received this run, including any discarded. */
  bytesTransferred: number;
  /** Bytes of the file accepted so far, including an earlier run's. */
  bytesAccepted: number;
  activeConnections: number;
}

export interface TickerOptions {
  clock: Clock;
  /** `progressMs` and `checkpointMs`: the beat and the slower duties' period. */
  intervals: Pick<Intervals, "progressMs" | "checkpointMs">;
  rates: RateSampler;
  counters: TransferCounters;
  path: string;
  /** The file's size, or how to read it when an answer still to come may tell it (a single stream's Content-Length). */
  size: number | undefined | (() => number | undefined);
  /** The ranges in flight now (none for a single stream). */
  inFlight: () => readonly Assignment[];
  onProgress: ((event: ProgressEvent) => void) | undefined;
  /** Every `checkpointMs` (once a second by default); its failure is left for the next tick or the finish to surface. */
  everyCheckpoint: () => Promise<void>;
}

/** Starts ticking; returns the function that stops it. */
export function startTicker(options: TickerOptions): () => void {
  const { clock, rates, counters } = options;
  const { progressMs, checkpointMs } = options.intervals;
  // Counted from now: the first tick's bytes took a whole tick to arrive.
  let lastCheckpoint = clock.now();
  rates.sample(lastCheckpoint, options.inFlight(), counters.bytesAccepted);
  return clock.every(progressMs, () => {
    const now = clock.now();
    rates.sample(now, options.inFlight(), counters.bytesAccepted);
    options.onProgress?.({
      path: options.path,
      bytesDone: counters.bytesAccepted,
      size: typeof options.size === "function" ? options.size() : options.size,
      bytesPerSecond: rates.bytesPerSecond(),
      activeConnections: counters.activeConnections,
    });
    // Half a beat of slack: a timer a little early must not push the duty a whole beat later.
    if (now - lastCheckpoint >= checkpointMs - progressMs / 2) {
      lastCheckpoint = now;
      options.everyCheckpoint().catch(() => {});
    }
  });
}

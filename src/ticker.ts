/**
 * The heartbeat of a transfer: a few times a second it samples rates and reports
 * progress; about once a second it runs the slower duties (rescue check, checkpoint).
 */
import type { Clock } from "./clock.js";
import type { Assignment } from "./ranges.js";
import type { RateSampler } from "./rates.js";
import type { ProgressEvent } from "./types.js";

/** Progress events (and rate samples) this often, milliseconds. */
export const PROGRESS_INTERVAL_MS = 250;
/** Checkpoints and rescue checks this often, milliseconds. */
export const CHECKPOINT_INTERVAL_MS = 1000;

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
  rates: RateSampler;
  counters: TransferCounters;
  path: string;
  /** The file's size, or how to read it when an answer still to come may tell it (a single stream's Content-Length). */
  size: number | undefined | (() => number | undefined);
  /** The ranges in flight now (none for a single stream). */
  inFlight: () => readonly Assignment[];
  onProgress: ((event: ProgressEvent) => void) | undefined;
  /** Once a second; its failure is left for the next tick or the finish to surface. */
  everySecond: () => Promise<void>;
}

/** Starts ticking; returns the function that stops it. */
export function startTicker(options: TickerOptions): () => void {
  const { clock, rates, counters } = options;
  // Counted from now: the first tick's bytes took a whole tick to arrive.
  let lastSecond = clock.now();
  rates.sample(lastSecond, options.inFlight(), counters.bytesAccepted);
  return clock.every(PROGRESS_INTERVAL_MS, () => {
    const now = clock.now();
    rates.sample(now, options.inFlight(), counters.bytesAccepted);
    options.onProgress?.({
      path: options.path,
      bytesDone: counters.bytesAccepted,
      size: typeof options.size === "function" ? options.size() : options.size,
      bytesPerSecond: rates.bytesPerSecond(),
      activeConnections: counters.activeConnections,
    });
    if (now - lastSecond >= CHECKPOINT_INTERVAL_MS - PROGRESS_INTERVAL_MS / 2) {
      lastSecond = now;
      options.everySecond().catch(() => {});
    }
  });
}

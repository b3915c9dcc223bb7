/**
 * How often the periodic duties of a download run: settings, not constants, so a test
 * (or the CLI) can hand in short ones and drive them on its own clock instead of
 * waiting them out in real seconds. Every value is in milliseconds on the job's `Clock`.
 */

/** The periods of a download's heartbeat and of what it reports; all milliseconds. */
export interface Intervals {
  /** The ticker's beat: rate samples and `onProgress` snapshots this often. */
  progressMs: number;
  /**
   * Checkpoints (the manifest written) and the rescue check this often. The rescue
   * policy counts checks (tail.ts SLOW_CHECKS), so it assumes about a second here.
   */
  checkpointMs: number;
  /** `progress` events (onEvent, `--progress json`) at most this often. */
  progressEventMs: number;
  /** The CLI's plain progress line (no terminal) at most this often per file. */
  plainLineMs: number;
}

/**
 * The defaults: progress a few times a second (smooth bars), a checkpoint once a
 * second (DESIGN, "Checkpoint": at most every second, so an interrupt loses at most a
 * second's bytes), events once a second (README's event table), and a plain line every
 * 10 s (a log or a CI console wants a line now and then, not a redraw).
 */
export const DEFAULT_INTERVALS: Readonly<Intervals> = Object.freeze({
  progressMs: 250,
  checkpointMs: 1000,
  progressEventMs: 1000,
  plainLineMs: 10_000,
});

/**
 * `DEFAULT_INTERVALS` with `given` over it.
 * @throws RangeError for a period that is not a finite number above 0 (a programming
 *   error: intervals are an internal seam, never a user's input).
 */
export function intervalsWith(given: Partial<Intervals> | undefined): Intervals {
  const intervals = { ...DEFAULT_INTERVALS, ...given };
  for (const [name, ms] of Object.entries(intervals)) {
    if (!Number.isFinite(ms) || ms <= 0) throw new RangeError(`intervals.${name} must be a number of milliseconds above 0, got ${ms}`);
  }
  return intervals;
}

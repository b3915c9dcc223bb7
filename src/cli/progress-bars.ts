/**
 * The TTY reporter: cli-progress bars, one per running file and a total line for lists,
 * redrawn in place and kept inside the terminal's width (the line text is
 * progress-lines.ts's).
 */
import cliProgress from "cli-progress";
import type { DownloadResult, ProgressEvent } from "../types.js";
import { describeEnd, fileLabel, formatBarLine, type BarPayload, type ProgressReporter, type ProgressStream } from "./progress-lines.js";

/** Live bars, one per running file plus a total line for batches, redrawn in place. */
export class BarReporter implements ProgressReporter {
  private readonly multiBar: cliProgress.MultiBar;
  private readonly bars = new Map<number, cliProgress.SingleBar>();
  /** The last progress of each running file; ended files are folded into the sums below. */
  private readonly latest = new Map<number, ProgressEvent>();
  private readonly ended = new Set<number>();
  private endedCount = 0;
  private endedBytes = 0;
  /** What the ended files weigh in the total: the size of each finished one, the bytes a failed one had. */
  private endedSize = 0;
  private totalBar: cliProgress.SingleBar | undefined;
  private stopped = false;

  /** @param logStream where `log` lines go when not above the bars (beside `--progress-fd`) */
  constructor(
    private readonly stream: ProgressStream,
    private readonly urls: readonly string[],
    private readonly logStream?: ProgressStream,
  ) {
    this.multiBar = new cliProgress.MultiBar({
      stream,
      format: (_options, params, payload: BarPayload) => formatBarLine(payload, params.maxWidth),
      hideCursor: true,
      clearOnComplete: true,
      // cli-progress skips a bar whose text did not change, trusting the terminal to
      // still show it there; a logged line or a removed bar moves every bar below it.
      forceRedraw: true,
      // Signals are main's: it aborts the downloads and then stops the bars itself.
      gracefulExit: false,
    });
    // From the start, so the batch's line is there while its first files are still probed.
    this.updateTotal();
  }

  update(index: number, event: ProgressEvent): void {
    if (this.stopped || this.ended.has(index)) return;
    this.latest.set(index, event);
    const payload: BarPayload = { label: fileLabel(this.urls[index] ?? "", event.path), ...event };
    const bar = this.bars.get(index);
    // Values are carried in the payload: cli-progress's own total cannot be "unknown".
    if (bar === undefined) {
      this.bars.set(index, this.multiBar.create(1, 0, payload));
      // cli-progress draws bars in the order they were made: the total goes back below the new bar.
      if (this.totalBar !== undefined) this.multiBar.remove(this.totalBar);
      this.totalBar = undefined;
    } else {
      bar.update(0, payload);
    }
    this.updateTotal();
  }

  fileEnd(index: number, result: DownloadResult): void {
    if (this.stopped) return;
    this.ended.add(index);
    const bar = this.bars.get(index);
    this.bars.delete(index);
    const last = this.latest.get(index);
    const line = describeEnd(result, last);
    if (line !== undefined) this.multiBar.log(`${fileLabel(result.url, result.path)}: ${line}\n`);
    // Folded into sums, so the total costs the same for the 5,000th file as for the first.
    this.latest.delete(index);
    this.endedCount += 1;
    // A file that ended has nothing left to do: a finished one counts its whole size (an
    // up-to-date file sends no progress at all), a failed one what it had.
    const finished = result.status !== "failed" && result.size !== null;
    const bytesDone = finished ? result.size! : (last?.bytesDone ?? 0);
    this.endedBytes += bytesDone;
    this.endedSize += bytesDone;
    this.updateTotal();
    if (bar !== undefined) this.multiBar.remove(bar);
  }

  event(): void {}

  log(line: string): void {
    if (this.logStream !== undefined) {
      this.logStream.write(`${line}\n`);
      return;
    }
    if (this.stopped) {
      this.stream.write(`${line}\n`);
      return;
    }
    this.multiBar.log(`${line}\n`);
    // Without bars nothing redraws, so nothing would flush the line.
    if (this.bars.size === 0 && this.totalBar === undefined) this.multiBar.update();
  }

  stop(options: { keep?: boolean } = {}): void {
    if (this.stopped) return;
    this.stopped = true;
    // cli-progress reads the option only in stop(); its types do not show it.
    if (options.keep === true) (this.multiBar as unknown as { options: { clearOnComplete: boolean } }).options.clearOnComplete = false;
    // cli-progress's stop() draws bars but drops lines still waiting to be logged.
    this.multiBar.update();
    this.multiBar.stop();
  }

  /** The total line appears for batches only: one file's bar already is the total. */
  private updateTotal(): void {
    if (this.urls.length < 2) return;
    let bytesDone = this.endedBytes;
    let size: number | undefined = this.endedSize;
    let bytesPerSecond = 0;
    let activeConnections = 0;
    for (const event of this.latest.values()) {
      bytesDone += event.bytesDone;
      size = size === undefined || event.size === undefined ? undefined : size + event.size;
      bytesPerSecond += event.bytesPerSecond;
      activeConnections += event.activeConnections;
    }
    // Files not started yet have unknown sizes, so the total's percentage would lie.
    if (this.endedCount + this.latest.size < this.urls.length) size = undefined;
    const payload: BarPayload = {
      label: "total",
      bytesDone,
      size,
      bytesPerSecond,
      activeConnections,
      files: filesDone(this.endedCount, this.urls.length),
    };
    if (this.totalBar === undefined) this.totalBar = this.multiBar.create(1, 0, payload);
    else this.totalBar.update(0, payload);
  }
}

/** `3/11 files`, or `1234/56789` where the word would not fit the line's last column. */
function filesDone(ended: number, total: number): string {
  const text = `${ended}/${total} files`;
  return text.length <= 10 ? text : `${ended}/${total}`;
}

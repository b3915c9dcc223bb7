import cliProgress from "cli-progress";
import type { DownloadResult, ProgressEvent } from "../types.js";
import { describeEnd, fileLabel, formatBarLine, type ProgressReporter, type ProgressStream } from "./progress.js";

export interface BarPayload {
  label: string;
  bytesDone: number;
  size: number | undefined;
  bytesPerSecond: number;
  activeConnections: number;
  /** The total line's own text, shown instead of a connection count. */
  files?: string;
}

/** Live bars, one per running file plus a total line for batches, redrawn in place. */
export class BarReporter implements ProgressReporter {
  private readonly multiBar: cliProgress.MultiBar;
  private readonly bars = new Map<number, cliProgress.SingleBar>();
  /** The last progress of each running file; ended files are folded into the sums below. */
  private readonly latest = new Map<number, ProgressEvent>();
  private readonly ended = new Set<number>();
  private endedCount = 0;
  private endedBytes = 0;
  /** Sum of the ended files' sizes; undefined once one had no known size. */
  private endedSize: number | undefined = 0;
  private totalBar: cliProgress.SingleBar | undefined;
  private stopped = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly urls: readonly string[],
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
    this.endedBytes += last?.bytesDone ?? 0;
    this.endedSize = this.endedSize === undefined || last?.size === undefined ? undefined : this.endedSize + last.size;
    this.updateTotal();
    if (bar !== undefined) this.multiBar.remove(bar);
  }

  log(line: string): void {
    if (this.stopped) {
      this.stream.write(`${line}\n`);
      return;
    }
    this.multiBar.log(`${line}\n`);
    // Without bars nothing redraws, so nothing would flush the line.
    if (this.bars.size === 0 && this.totalBar === undefined) this.multiBar.update();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    // cli-progress's stop() draws bars but drops lines still waiting to be logged.
    this.multiBar.update();
    this.multiBar.stop();
  }

  /** The total line appears for batches only: one file's bar already is the total. */
  private updateTotal(): void {
    if (this.urls.length < 2) return;
    let bytesDone = this.endedBytes;
    let size = this.endedSize;
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
      files: `${this.endedCount}/${this.urls.length} files`,
    };
    if (this.totalBar === undefined) this.totalBar = this.multiBar.create(1, 0, payload);
    else this.totalBar.update(0, payload);
  }
}

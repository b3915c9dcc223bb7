/**
 * Picks the progress reporter for a run: none (`-q`), bars on a TTY, JSON events
 * (`--progress json`), or plain lines every `plainLineMs` elsewhere; and opens
 * `--progress-fd`.
 */
import { createWriteStream, fstatSync } from "node:fs";
import { isatty, WriteStream } from "node:tty";
import type { Clock } from "../clock.js";
import { UsageError } from "../errors.js";
import { DEFAULT_INTERVALS } from "../intervals.js";
import type { DownloadEvent } from "../types.js";
import type { DownloadResult, ProgressEvent } from "../types.js";
import { describeEnd, describeProgress, fileLabel, type ProgressReporter, type ProgressStream } from "./progress-lines.js";

export interface ProgressOptions {
  /** Where progress goes: stderr, or the `--progress-fd` descriptor. */
  stream: ProgressStream;
  /** Where `log` lines go when that is not `stream` (stderr beside `--progress-fd`). Default: `stream`. */
  logStream?: ProgressStream;
  /** `-q` without `--progress`: no progress. */
  quiet: boolean;
  /** `--progress`; `undefined` chooses bars on a terminal, plain lines elsewhere. */
  kind?: "bar" | "plain" | "json" | "none" | undefined;
  /** For `json`: the `--json` object of a result, which `finish` and `error` events carry. */
  resultJson?: (result: DownloadResult) => unknown;
  /** The URLs of the batch, by index: a file's name until the server names it. */
  urls: readonly string[];
  /** The CLI's clock (main.ts `CliIo`): the plain lines' throttle reads its `now`. */
  clock: Pick<Clock, "now">;
  /** Plain lines at most this often per file, ms. Default `DEFAULT_INTERVALS.plainLineMs` (10 s). */
  plainLineMs?: number;
}

/**
 * `--progress-fd N`: a stream writing to descriptor `fd`, a terminal's stream when it is
 * one (bars then draw there). The descriptor is the caller's: it is not closed.
 * @throws UsageError when `fd` is not open.
 */
export function openProgressFd(fd: number): ProgressStream {
  let stats;
  try {
    stats = fstatSync(fd);
  } catch {
    stats = undefined;
  }
  // Node's own descriptors (epoll, eventfd) are open too, but are none of these.
  if (stats === undefined || !(stats.isFile() || stats.isFIFO() || stats.isSocket() || stats.isCharacterDevice())) {
    throw new UsageError(`--progress-fd ${fd}: no such open file descriptor (open it in the shell, e.g. 3>events.jsonl)`);
  }
  return isatty(fd) ? new WriteStream(fd) : createWriteStream("", { fd, autoClose: false });
}

/**
 * The reporter for this stream: quiet, bars on a TTY, plain lines otherwise. Async
 * because the bars' module (and cli-progress with it) loads only when a TTY needs it.
 */
export async function createProgressReporter(options: ProgressOptions): Promise<ProgressReporter> {
  const logStream = options.logStream ?? options.stream;
  const kind = options.kind ?? (options.quiet ? "none" : options.stream.isTTY === true ? "bar" : "plain");
  if (kind === "none") return new QuietReporter(logStream);
  if (kind === "json") return new JsonReporter(options.stream, logStream, options.resultJson ?? ((result) => result));
  // Bars need a terminal to redraw on; elsewhere they would be escape codes in a log.
  if (kind === "bar" && options.stream.isTTY === true) {
    const { BarReporter } = await import("./progress-bars.js");
    return new BarReporter(options.stream, options.urls, logStream === options.stream ? undefined : logStream);
  }
  // Without a TTY, a log file or CI console wants a line now and then, not a redraw.
  return new PlainReporter(options.stream, options.urls, options.clock, options.plainLineMs ?? DEFAULT_INTERVALS.plainLineMs, logStream);
}

class QuietReporter implements ProgressReporter {
  constructor(private readonly stream: ProgressStream) {}
  update(): void {}
  event(): void {}
  fileEnd(): void {}
  log(line: string): void {
    this.stream.write(`${line}\n`);
  }
  stop(): void {}
}

class PlainReporter implements ProgressReporter {
  /** When each file last printed a line (or started): the `plainLineMs` throttle is per file. */
  private readonly lastLineAt = new Map<number, number>();
  private readonly latest = new Map<number, ProgressEvent>();

  constructor(
    private readonly stream: ProgressStream,
    private readonly urls: readonly string[],
    private readonly clock: Pick<Clock, "now">,
    private readonly plainLineMs: number,
    private readonly logStream: ProgressStream = stream,
  ) {}

  event(): void {}

  update(index: number, event: ProgressEvent): void {
    this.latest.set(index, event);
    const now = this.clock.now();
    const last = this.lastLineAt.get(index);
    if (last === undefined) {
      this.lastLineAt.set(index, now);
      return;
    }
    if (now - last < this.plainLineMs) return;
    this.lastLineAt.set(index, now);
    this.stream.write(`${fileLabel(this.urls[index] ?? "", event.path)}: ${describeProgress(event)}\n`);
  }

  fileEnd(index: number, result: DownloadResult): void {
    const line = describeEnd(result, this.latest.get(index));
    if (line !== undefined) this.stream.write(`${fileLabel(result.url, result.path)}: ${line}\n`);
    // An ended file is never reported again: forget it, so a long list costs no memory.
    this.latest.delete(index);
    this.lastLineAt.delete(index);
  }

  log(line: string): void {
    this.logStream.write(`${line}\n`);
  }

  stop(): void {}
}

/**
 * `--progress json`: each event as one line of JSON (README, "Progress as JSON events"),
 * `index` (the file's place in the input) after `v` and `event`; `finish` and `error`
 * carry the `--json` object of the result. Human lines (errors, warnings) go to the
 * log stream, so a `--progress-fd` stream holds nothing but events.
 */
class JsonReporter implements ProgressReporter {
  constructor(
    private readonly stream: ProgressStream,
    private readonly logStream: ProgressStream,
    private readonly resultJson: (result: DownloadResult) => unknown,
  ) {}

  update(): void {}

  event(index: number, event: DownloadEvent): void {
    const { v, event: kind, ...fields } = event;
    const line = "result" in fields ? { ...fields, result: this.resultJson(fields.result) } : fields;
    this.stream.write(`${JSON.stringify({ v, event: kind, index, ...line })}\n`);
  }

  fileEnd(): void {}

  log(line: string): void {
    this.logStream.write(`${line}\n`);
  }

  stop(): void {}
}


/**
 * The command line as a thin shell over the library: parses the flags (args.ts), runs
 * one download, a stream or a list through the library, shows progress, prints the
 * result (`--json`, `--stats`) and maps the outcome to an exit code. Every effect (the
 * streams, signals, the clock, exit) comes in through `CliIo`, so tests run it in process.
 */
import { homedir } from "node:os";
import { resolve } from "node:path";
import { text } from "node:stream/consumers";
import { pipeline } from "node:stream/promises";
import { systemClock, type Clock } from "../clock.js";
import { AbortError, INTERNAL_ERROR_EXIT_CODE, RangegetError, interruptExitCode, type InterruptSignal } from "../errors.js";
import type { Intervals } from "../intervals.js";
import { withFlagNames } from "../option-bounds.js";
import { redactText, redactUrl } from "../redact.js";
import { stdoutWriteFailure } from "../to-error.js";
import { currentPlatform, type Platform } from "../platform.js";
import { formatBytes } from "../size.js";
import type { DownloadEvent, TraceEvent } from "../types.js";
import type { InternalOptions } from "../options.js";
import type { DownloadAllOptions, DownloadOptions, DownloadResult } from "../types.js";
import { parseArgs } from "./args.js";
import type { CliConfig } from "./build-config.js";
import { createProgressReporter, openProgressFd } from "./progress.js";
import { fileLabel, type ProgressReporter, type ProgressStream } from "./progress-lines.js";
import { formatTrace, formatVerboseEvent } from "./verbose.js";
import { debugEnabled } from "./debug.js";
import { InterruptedFiles } from "./interrupted.js";
import { BatchTally } from "./summary.js";

export { installLastResort } from "./last-resort.js";

/** Where the interrupt signals arrive from: the process, or an emitter in tests. */
export interface SignalSource {
  on(event: InterruptSignal, listener: (signal: InterruptSignal) => void): unknown;
  off(event: InterruptSignal, listener: (signal: InterruptSignal) => void): unknown;
}

export interface CliIo {
  stdout: ProgressStream;
  stderr: ProgressStream;
  stdin: NodeJS.ReadableStream;
  /** Where the proxy, `RANGEGET_*`, XDG and DEBUG variables are read, for parsing and for every download. */
  env: NodeJS.ProcessEnv;
  /** `~` of the defaults: the netrc, the config file, the cache. */
  homeDir: string;
  signals: SignalSource;
  /** Which signals stop a download with its state saved (SIGHUP everywhere, SIGBREAK on Windows). */
  platform: Platform;
  /** Ends the process at once: the second Ctrl-C does not wait for anything. */
  exit: (code: number) => void;
  /** The one clock of the run: every download's, the plain progress lines', the batch summary's elapsed time. */
  clock: Clock;
  /** The downloads' and the progress lines' periods (intervals.ts); `undefined` for the defaults. Tests pass short ones. */
  intervals: Partial<Intervals> | undefined;
}

const processIo: CliIo = {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  homeDir: homedir(),
  signals: process,
  platform: currentPlatform,
  exit: (code) => process.exit(code),
  clock: systemClock,
  intervals: undefined,
};

/** Runs the rangeget command line and resolves with the process exit code. */
export async function main(argv: string[], io: Partial<CliIo> = {}): Promise<number> {
  const cli: CliIo = { ...processIo, ...io };
  let config: CliConfig;
  try {
    const command = await parseArgs(argv, {
      readStdin: () => text(cli.stdin),
      variables: cli.env,
      homeDir: cli.homeDir,
      // Piped help has no terminal width; COLUMNS says what the user wants, as for ls.
      columns: cli.stdout.columns ?? columnsFrom(cli.env),
      stdoutIsTTY: cli.stdout.isTTY === true,
    });
    if (command.kind !== "download") {
      cli.stdout.write(`${command.text}\n`);
      return 0;
    }
    config = command.config;
  } catch (error) {
    return reportThrown(error, cli);
  }
  for (const warning of config.warnings) cli.stderr.write(`rangeget: ${warning}\n`);
  if (!config.quiet) for (const note of config.notes) cli.stderr.write(`rangeget: ${note}\n`);

  let reporter: ProgressReporter;
  try {
    reporter = await createProgressReporter({
      stream: config.progressFd === undefined ? cli.stderr : openProgressFd(config.progressFd),
      logStream: cli.stderr,
      quiet: config.quiet,
      kind: config.progress,
      resultJson: jsonResult,
      urls: config.items.map((item) => item.url),
      clock: cli.clock,
      ...(cli.intervals?.plainLineMs === undefined ? {} : { plainLineMs: cli.intervals.plainLineMs }),
    });
  } catch (error) {
    return reportThrown(error, cli);
  }
  const interrupt = watchSignals(cli, reporter, config.stdout);
  const startedAt = cli.clock.now();
  try {
    const stop = interrupt.controller.signal;
    const outcome = config.stdout ? await streamToStdout(config, cli, reporter, stop) : await runDownloads(config, cli, reporter, stop);
    reporter.stop();
    if (config.batch && !config.quiet) cli.stderr.write(`${outcome.tally.format(cli.clock.now() - startedAt)}\n`);
    const signal = interrupt.received();
    // A signal after the last file finished interrupted nothing.
    if (signal !== undefined && outcome.interrupted) {
      // Each says what is true: "state saved" only where a re-run resumes.
      const lines = config.stdout
        ? ["interrupted; a stream to stdout keeps nothing to resume: run the same command again to start over"]
        : outcome.interruptedFiles.lines();
      for (const line of lines) cli.stderr.write(`rangeget: ${shownText(line)}\n`);
      return interruptExitCode(signal);
    }
    return outcome.exitCode;
  } catch (error) {
    reporter.stop();
    return reportThrown(error, cli);
  } finally {
    interrupt.dispose();
  }
}

/** What a run's exit depends on, gathered as files end so no result is kept. */
interface BatchOutcome {
  /** The exit code of the first failure in input order (0 when none failed). */
  exitCode: number;
  /** Some file stopped because of the signal. */
  interrupted: boolean;
  /** What the closing summary line counts. */
  tally: BatchTally;
  /** What each interrupted file left. */
  interruptedFiles: InterruptedFiles;
}

async function runDownloads(config: CliConfig, cli: CliIo, reporter: ProgressReporter, signal: AbortSignal): Promise<BatchOutcome> {
  const batch = new BatchExit();
  const tally = new BatchTally();
  const interruptedFiles = new InterruptedFiles();
  let interrupted = false;
  // Each file is reported once, as soon as it ends, so `--json` streams into pipes.
  const finishFile = (index: number, result: DownloadResult, error?: unknown): void => {
    batch.add(index, result);
    tally.add(result);
    interruptedFiles.add(result, config.batch ? fileLabel(result.url, result.path) : undefined);
    if (result.error?.code === "ERR_ABORTED") interrupted = true;
    reporter.fileEnd(index, result);
    if (result.error !== null && result.error.code !== "ERR_ABORTED") reporter.log(`rangeget: ${shownText(result.error.message)}`);
    logStack(error, cli, reporter);
    if (config.stats) reporter.log(formatStats(result));
    if (config.json) cli.stdout.write(`${JSON.stringify(jsonResult(result))}\n`);
  };
  // The library takes an output as given; on the command line -o and a list's names
  // are inside -d (as aria2's `out` inside `dir`).
  const dir = config.options.dir;
  const items = config.items.map(({ url, mirrors, output }) => ({
    url: mirrors ? [url, ...mirrors] : url,
    ...(output === undefined ? {} : { output: dir === undefined ? output : resolve(dir, output) }),
  }));
  // The engine (undici and all) loads only for a download: --help, --version and usage
  // errors start without it.
  const { forEachDownload } = await import("../batch.js");
  await forEachDownload(items, {
    ...config.options,
    ...ioSeams(cli),
    signal,
    onProgress: (index, event) => reporter.update(index, event),
    ...eventListeners(config, reporter),
    onFileEnd: finishFile,
    onWarning: (message) => reporter.log(`rangeget: warning: ${shownText(message)}`),
  });
  return { exitCode: batch.exitCode(), interrupted, tally, interruptedFiles };
}

/**
 * `-o -`: the file in order on stdout. A reader that goes away (`| head`: EPIPE) is
 * expected, not a failure to explain: every request ends at once, nothing is printed,
 * and the exit code is 6 (ERR_OUTPUT_CLOSED).
 */
async function streamToStdout(config: CliConfig, cli: CliIo, reporter: ProgressReporter, signal: AbortSignal): Promise<BatchOutcome> {
  const { url, mirrors } = config.items[0]!;
  // The engine loads only for a download, as in runDownloads.
  const { downloadStreamWithResult } = await import("../download.js");
  const { body, done } = downloadStreamWithResult(mirrors ? [url, ...mirrors] : url, {
    ...config.options,
    ...ioSeams(cli),
    signal,
    onProgress: (event) => reporter.update(0, event),
    ...oneFile(eventListeners(config, reporter)),
    onWarning: (message) => reporter.log(`rangeget: warning: ${shownText(message)}`),
  });
  // Its failure (EPIPE, ENOSPC) fails the download with ERR_OUTPUT_CLOSED, reported by `done`.
  let writeError: unknown;
  const piped = pipeline(body, cli.stdout).catch((error: unknown) => {
    writeError = error;
  });
  const { result, error } = await done;
  await piped;
  reporter.fileEnd(0, result);
  const code = result.error?.code;
  // A reader gone is quiet; a full disk behind stdout is not.
  const writeFailure = code === "ERR_OUTPUT_CLOSED" ? stdoutWriteFailure(writeError) : undefined;
  if (writeFailure !== undefined) reporter.log(`rangeget: ${writeFailure.message}`);
  else if (code !== undefined && code !== "ERR_ABORTED" && code !== "ERR_OUTPUT_CLOSED") {
    reporter.log(`rangeget: ${shownText(result.error!.message)}`);
    logStack(error, cli, reporter);
  }
  if (config.stats) reporter.log(formatStats(result));
  const tally = new BatchTally();
  tally.add(result);
  return { exitCode: writeFailure?.exitCode ?? result.error?.exitCode ?? 0, interrupted: code === "ERR_ABORTED", tally, interruptedFiles: new InterruptedFiles() };
}

/** What the library takes from the run's io: its clock and intervals, its environment and home directory. */
function ioSeams(cli: CliIo): Pick<InternalOptions, "clock" | "intervals" | "environment" | "homeDir"> {
  return { clock: cli.clock, ...(cli.intervals === undefined ? {} : { intervals: cli.intervals }), environment: cli.env, homeDir: cli.homeDir };
}

/**
 * The listeners `--progress json` and `-v` need, or none: without them the library
 * builds no event objects at all.
 */
function eventListeners(config: CliConfig, reporter: ProgressReporter): Pick<DownloadAllOptions, "onEvent" | "onTrace"> {
  if (config.progress !== "json" && !config.verbose) return {};
  return {
    onEvent: (index, event) => {
      reporter.event(index, event);
      const line = config.verbose ? formatVerboseEvent(event) : undefined;
      if (line !== undefined) reporter.log(line);
    },
    ...(config.verbose ? { onTrace: (_index: number, event: TraceEvent) => reporter.log(formatTrace(event)) } : {}),
  };
}

/** The batch's listeners for the one file of `-o -`. */
function oneFile(listeners: Pick<DownloadAllOptions, "onEvent" | "onTrace">): Pick<DownloadOptions, "onEvent" | "onTrace"> {
  const { onEvent, onTrace } = listeners;
  return {
    ...(onEvent ? { onEvent: (event: DownloadEvent) => onEvent(0, event) } : {}),
    ...(onTrace ? { onTrace: (event: TraceEvent) => onTrace(0, event) } : {}),
  };
}

/** Under `DEBUG=rangeget`, a failed file's stack after its one line (README: Reporting a bug). */
function logStack(error: unknown, cli: CliIo, reporter: ProgressReporter): void {
  if (debugEnabled(cli.env) && error instanceof Error && error.stack !== undefined) reporter.log(redactText(error.stack));
}

/**
 * First signal: abort, so every download checkpoints and returns. Second: the state
 * is already on disk (checkpoints are atomic), so leave at once.
 */
function watchSignals(cli: CliIo, reporter: ProgressReporter, toStdout: boolean) {
  const controller = new AbortController();
  let received: InterruptSignal | undefined;
  const onSignal = (signal: InterruptSignal): void => {
    if (received !== undefined) {
      // The bars stay where they were, and the user is told what is on disk.
      reporter.stop({ keep: true });
      cli.stderr.write(
        toStdout
          ? "rangeget: interrupted again: stopped at once; a stream to stdout keeps nothing to resume\n"
          : "rangeget: interrupted again: stopped at once; the state saved at the last checkpoint (at most a second ago) is kept: run the same command again to resume\n",
      );
      cli.exit(interruptExitCode(signal));
      return;
    }
    received = signal;
    controller.abort(new AbortError(undefined, { signal }));
  };
  for (const signal of cli.platform.interruptSignals) cli.signals.on(signal, onSignal);
  return {
    controller,
    received: () => received,
    dispose: () => {
      for (const signal of cli.platform.interruptSignals) cli.signals.off(signal, onSignal);
    },
  };
}

/**
 * The exit code of the first failure in input order, so `-i` runs are reproducible,
 * from results added in any order; only the earliest failure is kept.
 */
export class BatchExit {
  #firstIndex = Number.POSITIVE_INFINITY;
  #firstCode = 0;

  add(index: number, result: DownloadResult): void {
    if (result.error === null || index >= this.#firstIndex) return;
    this.#firstIndex = index;
    this.#firstCode = result.error.exitCode;
  }

  exitCode(): number {
    return this.#firstCode;
  }
}

function reportThrown(error: unknown, cli: CliIo): number {
  const debug = debugEnabled(cli.env);
  if (error instanceof RangegetError) {
    const hint = error.code === "ERR_USAGE" ? " (see rangeget --help)" : "";
    cli.stderr.write(`rangeget: ${oneLine(shownText(error.message))}${hint}\n`);
    if (debug && error.stack !== undefined) cli.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  cli.stderr.write(`rangeget: internal error: ${oneLine(shownText(message))}; this is a bug, please report it (DEBUG=rangeget shows the stack)\n`);
  if (debug && error instanceof Error && error.stack !== undefined) cli.stderr.write(`${error.stack}\n`);
  return INTERNAL_ERROR_EXIT_CODE;
}

/**
 * A library message as the command line shows it: no password, and each option named
 * by its flag (`force` → `--force`, see option-bounds.ts).
 */
function shownText(message: string): string {
  return withFlagNames(redactText(message));
}

/** `COLUMNS` when it is a sensible width. */
function columnsFrom(env: NodeJS.ProcessEnv): number | undefined {
  const columns = Number(env.COLUMNS);
  return Number.isInteger(columns) && columns >= 20 ? columns : undefined;
}


function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ");
}

/** The `--json` object, built field by field so the documented shape is the contract; no password in it. */
export function jsonResult(result: DownloadResult) {
  return {
    url: redactUrl(result.url),
    path: result.path,
    status: result.status,
    size: result.size,
    bytesTransferred: result.bytesTransferred,
    elapsedMs: result.elapsedMs,
    resumed: result.resumed,
    restartedBecauseChanged: result.restartedBecauseChanged,
    error:
      result.error === null
        ? null
        : { code: result.error.code, message: shownText(result.error.message), exitCode: result.error.exitCode },
    checksum: result.checksum === null ? null : { algorithm: result.checksum.algorithm, hex: result.checksum.hex },
    cache: result.cache,
    http: {
      requests: result.http.requests,
      statusCounts: result.http.statusCounts,
      retries: result.http.retries,
      rescues: result.http.rescues,
      hedges: result.http.hedges,
      origins: result.http.origins,
      peakConnections: result.http.peakConnections,
      latencyMs: { p50: result.http.latencyMs.p50, p95: result.http.latencyMs.p95, p99: result.http.latencyMs.p99 },
    },
  };
}

/**
 * `rangeget: stats big.iso: 9 requests (206: 8, 503: 1), 1 retry, latency p50 12 ms, p95 40 ms, p99 41 ms`,
 * plus rescues, hedges and bytes per origin when there is something to tell.
 */
export function formatStats(result: DownloadResult): string {
  const { requests, statusCounts, retries, rescues, hedges, origins, latencyMs } = result.http;
  const byStatus = Object.entries(statusCounts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([status, count]) => `${status}: ${count}`)
    .join(", ");
  const ms = (value: number | null): string => (value === null ? "n/a" : `${Math.round(value)} ms`);
  const tail = [
    ...(rescues > 0 ? [`${rescues} slow connection${rescues === 1 ? "" : "s"} rescued`] : []),
    ...(hedges > 0 ? [`${hedges} hedge${hedges === 1 ? "" : "s"}`] : []),
  ];
  const perOrigin = Object.entries(origins);
  const originText =
    perOrigin.length > 1 ? `; by origin: ${perOrigin.map(([origin, entry]) => `${origin} ${formatBytes(entry.bytes)}`).join(", ")}` : "";
  return (
    `rangeget: stats ${fileLabel(result.url, result.path)}: ` +
    `${requests} request${requests === 1 ? "" : "s"}${byStatus === "" ? "" : ` (${byStatus})`}, ` +
    `${retries} retr${retries === 1 ? "y" : "ies"}, ` +
    `latency p50 ${ms(latencyMs.p50)}, p95 ${ms(latencyMs.p95)}, p99 ${ms(latencyMs.p99)}` +
    (tail.length > 0 ? `, ${tail.join(", ")}` : "") +
    originText
  );
}

/**
 * One hierarchy for every failure rangeget reports. Each class has a `code` from a
 * closed set (for programs) and the process exit code the CLI ends with, read from
 * the one mapping below (see README, "Exit codes"). The functions that turn what
 * Node, undici or a server threw into these classes live in to-error.ts.
 */
import { constants } from "node:os";

/** `UsageError`: a bad option, URL or input line. */
export type UsageErrorCode = "ERR_USAGE";
/** `HttpStatusError`: an error status, redirects that went wrong, or a proxy that refused our credentials. */
export type HttpStatusErrorCode = "ERR_HTTP_STATUS" | "ERR_TOO_MANY_REDIRECTS" | "ERR_REDIRECT_LOOP" | "ERR_BAD_REDIRECT" | "ERR_PROXY_AUTH";
/** `NetworkError`: the connection failed, timed out, or its TLS certificate is not trusted. */
export type NetworkErrorCode = "ERR_NETWORK" | "ERR_TIMEOUT" | "ERR_TLS";
/** `IntegrityError`: wrong bytes, a wrong size or wrong ranges. */
export type IntegrityErrorCode = "ERR_INTEGRITY" | "ERR_CHECKSUM" | "ERR_BAD_RANGE";
/** `RemoteChangedError`. */
export type RemoteChangedErrorCode = "ERR_REMOTE_CHANGED";
/** `FileError`: the output, its lock, its directory, the disk, or the reader of `-o -`. */
export type FileErrorCode =
  | "ERR_FILE"
  | "ERR_EXISTS"
  | "ERR_LOCKED"
  | "ERR_NO_SPACE"
  | "ERR_FILE_TOO_LARGE"
  | "ERR_PERMISSION"
  | "ERR_OUTPUT_CLOSED";
/** `AbortError`. */
export type AbortErrorCode = "ERR_ABORTED";

/** Every `code` a `RangegetError` can carry. */
export type ErrorCode =
  | UsageErrorCode
  | HttpStatusErrorCode
  | NetworkErrorCode
  | IntegrityErrorCode
  | RemoteChangedErrorCode
  | FileErrorCode
  | AbortErrorCode;

/**
 * The signals the CLI turns into an abort: Ctrl-C, a kill, a closed terminal (SIGHUP),
 * and Ctrl-Break on Windows (SIGBREAK).
 */
export type InterruptSignal = "SIGINT" | "SIGTERM" | "SIGHUP" | "SIGBREAK";

/** Signal numbers where `os.constants.signals` lacks one (SIGBREAK exists only on Windows, as 21). */
const SIGNAL_NUMBERS: Readonly<Record<InterruptSignal, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15, SIGBREAK: 21 };

/**
 * The exit code after an interrupt: 128 + the signal's number, as POSIX shells
 * report a process killed by a signal (129 for SIGHUP, 130 for SIGINT, 143 for
 * SIGTERM; 149 for Windows' SIGBREAK).
 */
export function interruptExitCode(signal: InterruptSignal): number {
  return 128 + ((constants.signals as Partial<Record<InterruptSignal, number>>)[signal] ?? SIGNAL_NUMBERS[signal]);
}

/** Exit code 1: anything that is not one of ours is a bug. */
export const INTERNAL_ERROR_EXIT_CODE = 1;

// The one mapping from code to exit code. An abort's own exit code depends on the
// signal (AbortError takes it from interruptExitCode); its code alone means SIGINT.
const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  ERR_USAGE: 2,
  ERR_HTTP_STATUS: 3,
  ERR_TOO_MANY_REDIRECTS: 3,
  ERR_REDIRECT_LOOP: 3,
  ERR_BAD_REDIRECT: 3,
  ERR_PROXY_AUTH: 3,
  ERR_NETWORK: 4,
  ERR_TIMEOUT: 4,
  ERR_TLS: 4,
  ERR_INTEGRITY: 5,
  ERR_CHECKSUM: 5,
  ERR_BAD_RANGE: 5,
  ERR_REMOTE_CHANGED: 5,
  ERR_FILE: 6,
  ERR_EXISTS: 6,
  ERR_LOCKED: 6,
  ERR_NO_SPACE: 6,
  ERR_FILE_TOO_LARGE: 6,
  ERR_PERMISSION: 6,
  ERR_OUTPUT_CLOSED: 6,
  ERR_ABORTED: interruptExitCode("SIGINT"),
};

/**
 * The exit code for an error `code` as it appears in a result object or `--json`
 * (`error.code`); 1 for `ERR_INTERNAL` and any code that is not ours. A result also
 * carries `error.exitCode`, which alone knows an abort by SIGTERM (143).
 */
export function exitCodeForErrorCode(code: string): number {
  return Object.hasOwn(EXIT_CODES, code) ? EXIT_CODES[code as ErrorCode] : INTERNAL_ERROR_EXIT_CODE;
}

export abstract class RangegetError extends Error {
  readonly code: ErrorCode;
  /** The process exit code the CLI ends with for this error. */
  readonly exitCode: number;

  protected constructor(message: string, code: ErrorCode, options: { cause?: unknown; exitCode?: number } = {}) {
    super(message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.exitCode = options.exitCode ?? EXIT_CODES[code];
  }
}

/** Bad option, bad URL, bad input line: nothing was fetched. Exit 2. */
export class UsageError extends RangegetError {
  declare readonly code: UsageErrorCode;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, "ERR_USAGE", options);
  }
}

/**
 * The server answered with an error status after retries, or redirects went wrong
 * (too many, a loop, a non-http scheme, no usable Location), or a proxy refused the
 * credentials (`ERR_PROXY_AUTH`, status 407, SOCKS5 included). Exit 3.
 */
export class HttpStatusError extends RangegetError {
  declare readonly code: HttpStatusErrorCode;
  readonly status: number;
  readonly url: string;
  /** The delay the server asked for with Retry-After, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: { status: number; url: string; code?: HttpStatusErrorCode; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, details.code ?? "ERR_HTTP_STATUS", { cause: details.cause });
    this.status = details.status;
    this.url = details.url;
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** Connect failure, reset, timeout, truncated body, untrusted TLS certificate: after retries. Exit 4. */
export class NetworkError extends RangegetError {
  declare readonly code: NetworkErrorCode;
  readonly url: string;

  constructor(message: string, details: { url: string; code?: NetworkErrorCode; cause?: unknown }) {
    super(message, details.code ?? "ERR_NETWORK", { cause: details.cause });
    this.url = details.url;
  }
}

/** Checksum mismatch, or a server that keeps sending wrong ranges or sizes. Exit 5. */
export class IntegrityError extends RangegetError {
  declare readonly code: IntegrityErrorCode;

  constructor(message: string, details: { code?: IntegrityErrorCode; cause?: unknown } = {}) {
    super(message, details.code ?? "ERR_INTEGRITY", { cause: details.cause });
  }
}

/**
 * The remote file changed while a partial download existed, and the caller asked
 * not to restart (`restartOnChange: false`) or it kept changing; or it changed under
 * a stream (`-o -`, `--extract`, `downloadStream`), whose bytes already left. Exit 5.
 */
export class RemoteChangedError extends RangegetError {
  declare readonly code: RemoteChangedErrorCode;
  readonly url: string;

  constructor(message: string, details: { url: string; cause?: unknown }) {
    super(message, "ERR_REMOTE_CHANGED", { cause: details.cause });
    this.url = details.url;
  }
}

/** Output exists, locked by another process, disk full, file too large, permission denied, `-o -` reader gone. Exit 6. */
export class FileError extends RangegetError {
  declare readonly code: FileErrorCode;
  readonly path: string;

  constructor(message: string, details: { path: string; code?: FileErrorCode; cause?: unknown }) {
    super(message, details.code ?? "ERR_FILE", { cause: details.cause });
    this.path = details.path;
  }
}

/**
 * What an interrupted download left for a re-run: `state` (its `.part` and manifest, or
 * the adopted output of `continue`: a re-run resumes), `nothing` (bytes had arrived
 * but none are kept, as in one plain stream or an unpacking: a re-run starts over),
 * `not-started` (nothing had been fetched yet).
 */
export type KeptOnAbort = "state" | "nothing" | "not-started";

/**
 * The caller's AbortSignal fired (Ctrl-C, SIGTERM in the CLI). `kept` says what a re-run
 * finds (unknown on the signal's own reason; each download's rejection says it). Exit
 * 130 for SIGINT, 143 for SIGTERM, as shells expect.
 */
export class AbortError extends RangegetError {
  declare readonly code: AbortErrorCode;
  readonly signal: InterruptSignal;
  readonly kept: KeptOnAbort | undefined;

  constructor(message = "download aborted", options: { signal?: InterruptSignal; kept?: KeptOnAbort; cause?: unknown } = {}) {
    const signal = options.signal ?? "SIGINT";
    super(message, "ERR_ABORTED", { cause: options.cause, exitCode: interruptExitCode(signal) });
    this.signal = signal;
    this.kept = options.kept;
  }
}

/**
 * One download's rejection after `abort`: the same signal, and a message that says what
 * is left. `why` (for `nothing`) is the reason no byte is kept ("this server does not
 * serve ranges").
 */
export function interruptedError(abort: AbortError, left: { kept: "state" | "not-started" } | { kept: "nothing"; why: string }): AbortError {
  const message =
    left.kept === "state"
      ? "interrupted; state saved, run again to resume"
      : left.kept === "nothing"
        ? `interrupted; nothing was saved (${left.why}): run again to start over`
        : "interrupted before anything was fetched; run again to start";
  return new AbortError(message, { signal: abort.signal, kept: left.kept, cause: abort });
}

/**
 * A request its host refused because the host allows fewer connections than were
 * open (host-limits.ts `refused` said `host-limit`): not a failure of the range, so the
 * retry loop does not count it. Internal: it never reaches a caller (a file that
 * makes no progress fails with `cause`'s own error). `cause` is the refusal as it came
 * (a 503, a 429, a reset connect).
 */
export class HostLimitRefusal extends Error {
  /** The host's connection count from now on. */
  readonly limit: number;

  constructor(cause: Error, limit: number) {
    super(`${cause.message} (the host allows ${limit} connection${limit === 1 ? "" : "s"} at once)`, { cause });
    this.name = "HostLimitRefusal";
    this.limit = limit;
  }
}

/** A failure as a result object carries it, once the error instance is gone (`--json`, `downloadAll`). */
export interface ErrorSummary {
  /** The error's `code`; `ERR_INTERNAL` for anything that is not a `RangegetError` (a bug). */
  code: ErrorCode | "ERR_INTERNAL";
  /** One line for a person: what failed, where, what to do. */
  message: string;
  /** The exit code the CLI ends with for this failure. */
  exitCode: number;
  /** For `ERR_ABORTED`: what a re-run finds (see `KeptOnAbort`). */
  kept?: KeptOnAbort;
}

/** What a result says about `error`: its code, message and exit code. */
export function summarizeError(error: unknown): ErrorSummary {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof AbortError && error.kept !== undefined) return { code: error.code, message, exitCode: error.exitCode, kept: error.kept };
  if (error instanceof RangegetError) return { code: error.code, message, exitCode: error.exitCode };
  return { code: "ERR_INTERNAL", message, exitCode: INTERNAL_ERROR_EXIT_CODE };
}

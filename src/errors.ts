/**
 * One hierarchy for every failure rangeget reports. Each class has a stable `code`
 * (for programs) and the process exit code the CLI maps it to (see README, "Exit codes").
 */
export abstract class RangegetError extends Error {
  abstract readonly code: string;
  abstract readonly exitCode: number;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad option, bad URL, bad input line: nothing was fetched. Exit 2. */
export class UsageError extends RangegetError {
  readonly code = "ERR_USAGE";
  readonly exitCode = 2;
}

/**
 * The server answered with an error status after retries, or redirects went wrong
 * (too many, a loop, a non-http scheme). Exit 3.
 */
export class HttpStatusError extends RangegetError {
  readonly code: string;
  readonly exitCode = 3;
  readonly status: number;
  readonly url: string;
  /** The delay the server asked for with Retry-After, in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(
    message: string,
    details: { status: number; url: string; code?: string; retryAfterMs?: number; cause?: unknown },
  ) {
    super(message, { cause: details.cause });
    this.status = details.status;
    this.url = details.url;
    this.code = details.code ?? "ERR_HTTP_STATUS";
    this.retryAfterMs = details.retryAfterMs;
  }
}

/** Connect failure, reset, timeout, truncated body: after retries. Exit 4. */
export class NetworkError extends RangegetError {
  readonly code: string;
  readonly exitCode = 4;
  readonly url: string;

  constructor(message: string, details: { url: string; code?: string; cause?: unknown }) {
    super(message, { cause: details.cause });
    this.url = details.url;
    this.code = details.code ?? "ERR_NETWORK";
  }
}

/** Checksum mismatch, or a server that keeps sending wrong ranges or sizes. Exit 5. */
export class IntegrityError extends RangegetError {
  readonly code: string;
  readonly exitCode = 5;

  constructor(message: string, details: { code?: string; cause?: unknown } = {}) {
    super(message, { cause: details.cause });
    this.code = details.code ?? "ERR_INTEGRITY";
  }
}

/**
 * The remote file changed while a partial download existed, and the caller asked
 * not to restart (`restartOnChange: false`) or it kept changing. Exit 5.
 */
export class RemoteChangedError extends RangegetError {
  readonly code = "ERR_REMOTE_CHANGED";
  readonly exitCode = 5;
  readonly url: string;

  constructor(message: string, details: { url: string; cause?: unknown }) {
    super(message, { cause: details.cause });
    this.url = details.url;
  }
}

/** Output exists, locked by another process, disk full, permission denied. Exit 6. */
export class FileError extends RangegetError {
  readonly code: string;
  readonly exitCode = 6;
  readonly path: string;

  constructor(message: string, details: { path: string; code?: string; cause?: unknown }) {
    super(message, { cause: details.cause });
    this.path = details.path;
    this.code = details.code ?? "ERR_FILE";
  }
}

/**
 * The caller's AbortSignal fired (Ctrl-C, SIGTERM in the CLI). State was saved; the
 * same call again resumes. Exit 130 for SIGINT, 143 for SIGTERM, as shells expect.
 */
export class AbortError extends RangegetError {
  readonly code = "ERR_ABORTED";
  readonly exitCode: number;

  constructor(message = "download aborted; state saved, run again to resume", options: { signal?: string; cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.exitCode = options.signal === "SIGTERM" ? 143 : 130;
  }
}

/** Exit code 1: anything that is not one of ours is a bug. */
export const INTERNAL_ERROR_EXIT_CODE = 1;

export function exitCodeOf(error: unknown): number {
  return error instanceof RangegetError ? error.exitCode : INTERNAL_ERROR_EXIT_CODE;
}

export function errorCodeOf(error: unknown): string {
  return error instanceof RangegetError ? error.code : "ERR_INTERNAL";
}

/**
 * The exit code for an error `code` as it appears in a result object (`error.code`),
 * where the error instance itself is gone (downloadAll results, `--json`).
 */
export function exitCodeForErrorCode(code: string): number {
  return EXIT_CODES_BY_ERROR_CODE[code] ?? INTERNAL_ERROR_EXIT_CODE;
}

const EXIT_CODES_BY_ERROR_CODE: Record<string, number> = {
  ERR_USAGE: 2,
  ERR_HTTP_STATUS: 3,
  ERR_TOO_MANY_REDIRECTS: 3,
  ERR_REDIRECT_LOOP: 3,
  ERR_BAD_REDIRECT: 3,
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
  ERR_ABORTED: 130,
};

/**
 * Turns what the file system, undici or a server said into one of our errors, with a
 * message that says what failed, where, and what to do. No I/O: each takes the
 * failure as a value.
 */
import { FileError, HttpStatusError, IntegrityError, NetworkError, RangegetError } from "./errors.js";
import { fileTooLargeOnWrite } from "./file-size-limit.js";
import { isRetryableStatus, parseRetryAfter } from "./retry.js";

/**
 * An fs error as a FileError: EFBIG is `ERR_FILE_TOO_LARGE`; ENOSPC, EDQUOT are
 * `ERR_NO_SPACE`; EACCES, EPERM, EROFS are `ERR_PERMISSION`; anything else is `ERR_FILE`. `what` starts the
 * message ("cannot write"), `path` follows it. A FileError is returned as it is.
 */
export function fileError(error: unknown, path: string, what: string): FileError {
  if (error instanceof FileError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EFBIG") return fileTooLargeOnWrite(path, what, error);
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new FileError(`${what} ${path}: no space left (${code}); free some space and run again to resume`, {
      path,
      code: "ERR_NO_SPACE",
      cause: error,
    });
  }
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new FileError(`${what} ${path}: permission denied (${code}); choose another --dir or -o`, {
      path,
      code: "ERR_PERMISSION",
      cause: error,
    });
  }
  if (code === "EISDIR") {
    return new FileError(`${what} ${path}: it is a directory; choose another -o`, { path, code: "ERR_FILE", cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new FileError(`${what} ${path}: ${detail}`, { path, code: "ERR_FILE", cause: error });
}

/**
 * Which request a server fault answered, for the advice: the first ranged request of
 * an attempt (`probe`), a worker's range (`range`), or the plain GET of one stream
 * (`stream`).
 */
export type FaultedRequest = "probe" | "range" | "stream";

/**
 * What would help, by request. Every attempt starts with the same probe whatever `-c`
 * says, so fewer connections help none of them; a later attempt may reach a cache node
 * that answers right, and another URL of the file (a mirror) is another server.
 */
const FAULT_ADVICE: Record<FaultedRequest, string> = {
  probe:
    "the server cannot answer the first ranged request usably, and every run starts with it; try again later (another cache node may answer right) or another URL of the file",
  range: "the server sends wrong ranges or sizes; try again later (another cache node may answer right) or another URL of the file",
  stream: "the server's answer to a plain GET is not the file; try again later or another URL of the file",
};

/**
 * An answer the verdict calls a server fault (a range that does not overlap what was
 * asked, sizes that disagree): `ERR_BAD_RANGE`, retried (a broken cache node may answer
 * right next time), then exit 5. `reason` says what it did; `request` which request it
 * answered, for advice that would help (default: a worker's range).
 */
export function serverFault(url: string, reason: string, request: FaultedRequest = "range"): IntegrityError {
  return new IntegrityError(`${url}: ${reason}; ${FAULT_ADVICE[request]}`, { code: "ERR_BAD_RANGE" });
}

/**
 * An error status as our error: what failed, where, the server's `reason` (cut to one
 * line of 200 characters), what to do, and the delay its `Retry-After` asks for.
 */
export function httpStatusError(status: number, url: string, reason: string, retryAfter: string | undefined): HttpStatusError {
  const oneLine = reason.replace(/\s+/g, " ").trim().slice(0, 200);
  const advice =
    status === 401 || status === 403
      ? "check the credentials (user:password@ in the URL, --netrc-file, --load-cookies or -H)"
      : status === 404 || status === 410
        ? "check the URL"
        : isRetryableStatus(status)
          ? "the server kept failing; try again later"
          : "check the URL and headers";
  return new HttpStatusError(`HTTP ${status} from ${url}${oneLine ? ` (${oneLine})` : ""}: ${advice}`, {
    status,
    url,
    retryAfterMs: parseRetryAfter(retryAfter, Date.now()),
  });
}

const TLS_CODES = new Set([
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);
const TIMEOUT_CODES = new Set(["UND_ERR_CONNECT_TIMEOUT", "UND_ERR_HEADERS_TIMEOUT", "UND_ERR_BODY_TIMEOUT", "ETIMEDOUT"]);

/**
 * Whatever undici or the socket threw, as one of our errors: an untrusted certificate
 * is `ERR_TLS`, a timeout `ERR_TIMEOUT`, the rest `ERR_NETWORK`. Our own errors pass
 * through, and once `signal` has fired its reason wins: the failure is the abort.
 */
export function toNetworkError(error: unknown, url: string, signal?: AbortSignal): Error {
  if (error instanceof RangegetError) return error;
  if (signal?.aborted) return signal.reason instanceof Error ? signal.reason : new Error(String(signal.reason));
  const code = errorCode(error);
  if (code !== undefined && TLS_CODES.has(code)) {
    return new NetworkError(
      `TLS certificate of ${new URL(url).host} is not trusted (${code}); pass --ca <file> with its CA, or --insecure to skip the check`,
      { url, code: "ERR_TLS", cause: error },
    );
  }
  if (code !== undefined && TIMEOUT_CODES.has(code)) {
    return new NetworkError(`timed out waiting for ${url} (${code})`, { url, code: "ERR_TIMEOUT", cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new NetworkError(`network error on ${url}: ${detail}${code ? ` (${code})` : ""}`, { url, cause: error });
}

/**
 * The most telling `code` in an error's cause chain: undici wraps the socket's error
 * (ECONNRESET, a TLS code) in a generic UND_ERR_SOCKET.
 */
function errorCode(error: unknown): string | undefined {
  for (let current: unknown = error, depth = 0; current && depth < 4; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && code !== "UND_ERR_SOCKET") return code;
    current = (current as { cause?: unknown }).cause;
  }
  return (error as { code?: string } | undefined)?.code;
}

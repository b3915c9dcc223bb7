/**
 * Turns what the file system, undici or a server said into one of our errors, with a
 * message that says what failed, where, and what to do. No I/O: each takes the
 * failure as a value (and the wall time, for a `Retry-After` date, as a number).
 * Messages name the library's options in backquotes (`` `force` ``); the CLI shows
 * them as flags (option-bounds.ts `withFlagNames`).
 */
import { STATUS_CODES } from "node:http";
import { FileError, HttpStatusError, IntegrityError, NetworkError, RangegetError } from "./errors.js";
import { fileTooLargeOnWrite } from "./file-size-limit.js";
import { isRetryableStatus, parseRetryAfter } from "./retry.js";

/**
 * An fs error as a FileError: EFBIG is `ERR_FILE_TOO_LARGE`; ENOSPC, EDQUOT are
 * `ERR_NO_SPACE`; EACCES, EPERM, EROFS are `ERR_PERMISSION`; anything else is `ERR_FILE`. `what` starts the
 * message ("cannot write"), `path` follows it. A FileError is returned as it is.
 * `resumable: false` (an unpacking, which keeps nothing) says a re-run starts over
 * instead of resuming.
 */
export function fileError(error: unknown, path: string, what: string, options: { resumable?: boolean } = {}): FileError {
  if (error instanceof FileError) return error;
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "EFBIG") return fileTooLargeOnWrite(path, what, error);
  if (code === "ENOSPC" || code === "EDQUOT") {
    const again = options.resumable === false ? "run again to start over" : "run again to resume";
    return new FileError(`${what} ${path}: no space left (${code}); free some space and ${again}`, {
      path,
      code: "ERR_NO_SPACE",
      cause: error,
    });
  }
  if (code === "EACCES" || code === "EPERM" || code === "EROFS") {
    return new FileError(`${what} ${path}: permission denied (${code}); choose another \`dir\` or \`output\``, {
      path,
      code: "ERR_PERMISSION",
      cause: error,
    });
  }
  if (code === "EISDIR") {
    return new FileError(`${what} ${path}: it is a directory; choose another \`output\``, { path, code: "ERR_FILE", cause: error });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new FileError(`${what} ${path}: ${detail}`, { path, code: "ERR_FILE", cause: error });
}

/**
 * Why writing the file to stdout (`-o -`) failed, as a line worth printing, or
 * `undefined` when there is nothing to explain: a reader that went away (`| head`:
 * EPIPE, or the stream already torn down) is expected and stays quiet. A full disk
 * (ENOSPC, EDQUOT; `/dev/full`) is `ERR_NO_SPACE`; anything else the write said is
 * `ERR_FILE`. Both exit 6. `error` is what the pipeline into stdout rejected with.
 */
export function stdoutWriteFailure(error: unknown): FileError | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (error === undefined || code === "EPIPE" || code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ERR_STREAM_DESTROYED") return undefined;
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new FileError(`no space left on the output (stdout) (${code}); the bytes written so far are not the whole file: free some space and run the command again`, {
      path: "-",
      code: "ERR_NO_SPACE",
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new FileError(`cannot write the output (stdout): ${detail}`, { path: "-", code: "ERR_FILE", cause: error });
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
 * An error status as our error: `HTTP 404 from <url> (Not Found): check the URL`. The
 * parentheses hold the status's reason phrase (RFC 9110 §15) and, after a colon, what
 * the body says when it says something (see `errorBodyDetail`: never an HTML page);
 * then what to do, and the delay its `Retry-After` asks for. `body` is the start of the
 * error body as text (http.ts reads at most about 200 characters of it), `contentType`
 * its `Content-Type` when known; `now` is the wall time, in ms, a Retry-After date is
 * counted from.
 */
export function httpStatusError(
  status: number,
  url: string,
  body: string,
  retryAfter: string | undefined,
  contentType: string | undefined,
  now: number,
): HttpStatusError {
  const phrase = STATUS_CODES[status];
  const detail = errorBodyDetail(body, contentType);
  const said = detail === undefined || (phrase !== undefined && sameWords(detail, `${status} ${phrase}`)) ? undefined : detail;
  const reason = [phrase, said].filter((part) => part !== undefined).join(": ");
  const advice =
    status === 401 || status === 403
      ? "check the credentials (user:password@ in the URL, `credentials` or `headers`)"
      : status === 404 || status === 410
        ? "check the URL"
        : isRetryableStatus(status)
          ? "the server kept failing; try again later"
          : "check the URL and headers";
  return new HttpStatusError(`HTTP ${status} from ${url}${reason ? ` (${reason})` : ""}: ${advice}`, {
    status,
    url,
    retryAfterMs: parseRetryAfter(retryAfter, now),
  });
}

/** Longest detail quoted from an error body, in characters: one line of a message, not a page. */
const DETAIL_LIMIT = 160;

/**
 * What an error body says that is worth one line of a message, or `undefined`:
 * - an HTML page (nginx's, Apache's, a CDN's) says nothing the status does not;
 * - XML: the `<Message>` of S3, Google Cloud Storage and Azure Blob errors, after its
 *   `<Code>` (`NoSuchKey: The specified key does not exist.`); other XML, nothing;
 * - JSON: its `message`, `error` (a string, or an object with a `message`, as Google's
 *   APIs send), `error_description` (OAuth, RFC 6749 §5.2) or `detail` (RFC 9457);
 * - plain text: itself when short, else its first line when that is short.
 * The type is taken from `contentType` when it names HTML, XML or JSON, else sniffed
 * from the first character. Control characters (a terminal's escapes) become spaces;
 * the result is one line of at most 160 characters. `body` may be cut anywhere.
 */
export function errorBodyDetail(body: string, contentType?: string): string | undefined {
  const text = body.replace(/^\uFEFF/, "").trim();
  if (text === "") return undefined;
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  const isHtml = type === "text/html" || type === "application/xhtml+xml" || /^<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])/i.test(text) || /<html[\s>]/i.test(text.slice(0, 200));
  if (isHtml) return undefined;
  if (type.endsWith("/json") || type.endsWith("+json") || /^[{[]/.test(text)) return oneLine(jsonMessage(text));
  if (type.endsWith("/xml") || type.endsWith("+xml") || text.startsWith("<")) return oneLine(xmlMessage(text));
  const whole = oneLine(text);
  if (whole !== undefined && whole.length <= DETAIL_LIMIT && body.length < 200) return whole;
  const first = oneLine(text.split(/\r?\n/, 1)[0]);
  return first !== undefined && first.length <= DETAIL_LIMIT && first !== whole ? `${first} …` : undefined;
}

/** S3, GCS and Azure Blob: `<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message>…`. */
function xmlMessage(text: string): string | undefined {
  const element = (name: string) => {
    const match = new RegExp(`<${name}>([^<]*)</${name}>`).exec(text);
    return match?.[1] === undefined ? undefined : decodeXmlEntities(match[1]).trim() || undefined;
  };
  const message = element("Message");
  if (message === undefined) return undefined;
  const code = element("Code");
  return code === undefined ? message : `${code}: ${message}`;
}

function decodeXmlEntities(text: string): string {
  const named: Record<string, string> = { lt: "<", gt: ">", amp: "&", quot: '"', apos: "'" };
  return text.replace(/&(lt|gt|amp|quot|apos|#[0-9]+|#x[0-9a-f]+);/gi, (entity, name: string) => {
    if (name[0] !== "#") return named[name.toLowerCase()] ?? entity;
    const point = name[1] === "x" || name[1] === "X" ? Number.parseInt(name.slice(2), 16) : Number(name.slice(1));
    return point <= 0x10ffff ? String.fromCodePoint(point) : entity;
  });
}

/** The message of a JSON error body; from its text when the body was cut before it ended. */
function jsonMessage(text: string): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Cut: the first of the fields below that is complete in the text we have.
    for (const field of ["message", "error", "error_description", "detail"]) {
      const match = new RegExp(`"${field}"\\s*:\\s*("(?:[^"\\\\]|\\\\.)*")`).exec(text);
      if (match?.[1] !== undefined) return JSON.parse(match[1]) as string;
    }
    return undefined;
  }
  if (parsed === null || typeof parsed !== "object") return undefined;
  const object = parsed as Record<string, unknown>;
  const nested = object.error !== null && typeof object.error === "object" ? (object.error as Record<string, unknown>).message : undefined;
  for (const candidate of [object.message, object.error, nested, object.error_description, object.detail]) {
    if (typeof candidate === "string" && candidate.trim() !== "") return candidate;
  }
  return undefined;
}

/** `text` on one line without control characters, at most DETAIL_LIMIT characters; `undefined` when empty. */
function oneLine(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, " ").replace(/\s+/g, " ").trim();
  if (line === "") return undefined;
  return line.length <= DETAIL_LIMIT ? line : `${line.slice(0, DETAIL_LIMIT - 2)} …`;
}

/** "404 Not Found" and "Not Found." say nothing beside the status line. */
function sameWords(detail: string, statusLine: string): boolean {
  const words = (text: string) => text.toLowerCase().replace(/[^a-z0-9]+/g, " ").trim();
  const said = words(detail);
  return said === words(statusLine) || said === words(statusLine.replace(/^\d+ /, ""));
}

/**
 * The one line worth saying while a failure is retried, or `undefined` when a retry
 * needs no word: a refused connection (ECONNREFUSED) is retried for seconds with
 * nothing on the screen otherwise, and the user may have the wrong port. Say it once
 * per host: the caller keeps which hosts were named. `host` is `host:port`.
 */
export function retryNotice(error: unknown): { host: string; message: string } | undefined {
  if (!(error instanceof NetworkError) || errorCode(error.cause) !== "ECONNREFUSED") return undefined;
  let host: string;
  try {
    host = new URL(error.url).host;
  } catch {
    return undefined;
  }
  return { host, message: `connection refused by ${host}, retrying…` };
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
      `TLS certificate of ${new URL(url).host} is not trusted (${code}); pass \`ca\` with its CA, or \`insecure: true\` to skip the check`,
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

import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { STATUS_CODES } from "node:http";
import { errors as undiciErrors } from "undici";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  AbortError,
  interruptedError,
  FileError,
  HttpStatusError,
  IntegrityError,
  NetworkError,
  RangegetError,
  RemoteChangedError,
  UsageError,
  exitCodeForErrorCode,
  interruptExitCode,
  summarizeError,
  type ErrorCode,
} from "../src/errors.js";
import { fileError, httpStatusError, retryNotice, serverFault, stdoutWriteFailure, toNetworkError } from "../src/to-error.js";

const URL = "https://example.com/big.iso";

/** Every error class with every code it can carry, and the exit code README's table gives it. */
const EVERY_CODE: Array<[ErrorCode, number, () => RangegetError]> = [
  ["ERR_USAGE", 2, () => new UsageError("bad option")],
  ["ERR_HTTP_STATUS", 3, () => new HttpStatusError("404", { status: 404, url: URL })],
  ["ERR_TOO_MANY_REDIRECTS", 3, () => new HttpStatusError("loop", { status: 302, url: URL, code: "ERR_TOO_MANY_REDIRECTS" })],
  ["ERR_REDIRECT_LOOP", 3, () => new HttpStatusError("loop", { status: 302, url: URL, code: "ERR_REDIRECT_LOOP" })],
  ["ERR_BAD_REDIRECT", 3, () => new HttpStatusError("no Location", { status: 302, url: URL, code: "ERR_BAD_REDIRECT" })],
  ["ERR_PROXY_AUTH", 3, () => new HttpStatusError("proxy refused", { status: 407, url: URL, code: "ERR_PROXY_AUTH" })],
  ["ERR_NETWORK", 4, () => new NetworkError("reset", { url: URL })],
  ["ERR_TIMEOUT", 4, () => new NetworkError("timeout", { url: URL, code: "ERR_TIMEOUT" })],
  ["ERR_TLS", 4, () => new NetworkError("untrusted", { url: URL, code: "ERR_TLS" })],
  ["ERR_INTEGRITY", 5, () => new IntegrityError("short file")],
  ["ERR_CHECKSUM", 5, () => new IntegrityError("mismatch", { code: "ERR_CHECKSUM" })],
  ["ERR_BAD_RANGE", 5, () => new IntegrityError("wrong range", { code: "ERR_BAD_RANGE" })],
  ["ERR_REMOTE_CHANGED", 5, () => new RemoteChangedError("changed", { url: URL })],
  ["ERR_FILE", 6, () => new FileError("cannot write", { path: "/x" })],
  ["ERR_EXISTS", 6, () => new FileError("exists", { path: "/x", code: "ERR_EXISTS" })],
  ["ERR_LOCKED", 6, () => new FileError("locked", { path: "/x", code: "ERR_LOCKED" })],
  ["ERR_NO_SPACE", 6, () => new FileError("full", { path: "/x", code: "ERR_NO_SPACE" })],
  ["ERR_PERMISSION", 6, () => new FileError("denied", { path: "/x", code: "ERR_PERMISSION" })],
  ["ERR_FILE_TOO_LARGE", 6, () => new FileError("too large", { path: "/x", code: "ERR_FILE_TOO_LARGE" })],
  ["ERR_OUTPUT_CLOSED", 6, () => new FileError("reader gone", { path: "-", code: "ERR_OUTPUT_CLOSED" })],
  ["ERR_ABORTED", 130, () => new AbortError()],
];

describe("error classes and the one mapping from code to exit code", () => {
  it.each(EVERY_CODE)("%s exits %i, from the class and from the code alone", (code, exitCode, create) => {
    const error = create();
    expect(error).toBeInstanceOf(RangegetError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe(code);
    expect(error.exitCode).toBe(exitCode);
    expect(exitCodeForErrorCode(code)).toBe(exitCode);
  });

  it("names each error after its class, for stack traces", () => {
    expect(EVERY_CODE.map(([, , create]) => create().name)).toEqual(
      EVERY_CODE.map(([, , create]) => create().constructor.name),
    );
    expect(new FileError("x", { path: "/x" }).name).toBe("FileError");
  });

  it("gives 1 (a bug) for ERR_INTERNAL and for any code that is not ours, including Object's own keys", () => {
    for (const code of ["ERR_INTERNAL", "ERR_NOPE", "", "toString", "__proto__", "constructor", "hasOwnProperty"]) {
      expect(exitCodeForErrorCode(code)).toBe(1);
    }
  });

  it("exits 130 for SIGINT and 143 for SIGTERM, as shells report 128 + the signal number", () => {
    expect(interruptExitCode("SIGINT")).toBe(130);
    expect(interruptExitCode("SIGTERM")).toBe(143);
    expect(new AbortError(undefined, { signal: "SIGINT" }).exitCode).toBe(130);
    expect(new AbortError(undefined, { signal: "SIGTERM" }).exitCode).toBe(143);
    // The signal's own reason cannot know what a download left: each download's rejection says it.
    expect(new AbortError().message).not.toMatch(/state saved/);
  });

  it("an interrupted download's rejection says what a re-run finds, with the signal's exit code", () => {
    const abort = new AbortError(undefined, { signal: "SIGTERM" });
    expect(interruptedError(abort, { kept: "state" })).toMatchObject({
      message: "interrupted; state saved, run again to resume",
      kept: "state",
      exitCode: 143,
      cause: abort,
    });
    expect(interruptedError(abort, { kept: "nothing", why: "this server does not serve ranges" })).toMatchObject({
      message: "interrupted; nothing was saved (this server does not serve ranges): run again to start over",
      kept: "nothing",
      exitCode: 143,
    });
    expect(interruptedError(new AbortError(), { kept: "not-started" })).toMatchObject({
      message: "interrupted before anything was fetched; run again to start",
      exitCode: 130,
    });
    expect(summarizeError(interruptedError(abort, { kept: "nothing", why: "x" }))).toMatchObject({ kept: "nothing" });
  });

  it("keeps each class's details and the cause", () => {
    const cause = new Error("root");
    const status = new HttpStatusError("503", { status: 503, url: URL, retryAfterMs: 2000, cause });
    expect(status).toMatchObject({ status: 503, url: URL, retryAfterMs: 2000, cause });
    expect(new NetworkError("x", { url: URL, cause })).toMatchObject({ url: URL, cause });
    expect(new FileError("x", { path: "/out", cause })).toMatchObject({ path: "/out", cause });
    expect(new RemoteChangedError("x", { url: URL })).toMatchObject({ url: URL });
  });
});

describe("summarizeError: what a failed result carries", () => {
  it("keeps our error's code, message and exit code, including an abort by SIGTERM", () => {
    expect(summarizeError(new FileError("out exists", { path: "/out", code: "ERR_EXISTS" }))).toEqual({
      code: "ERR_EXISTS",
      message: "out exists",
      exitCode: 6,
    });
    expect(summarizeError(new AbortError("stopped", { signal: "SIGTERM" }))).toEqual({
      code: "ERR_ABORTED",
      message: "stopped",
      exitCode: 143,
    });
  });

  it("calls anything else an internal error, exit 1", () => {
    expect(summarizeError(new TypeError("x is undefined"))).toEqual({ code: "ERR_INTERNAL", message: "x is undefined", exitCode: 1 });
    expect(summarizeError("thrown string")).toEqual({ code: "ERR_INTERNAL", message: "thrown string", exitCode: 1 });
  });
});

/** An error as Node's TLS socket raises it: a message and an OpenSSL-style code. */
function tlsError(code: string): Error {
  return Object.assign(new Error(`certificate problem (${code})`), { code });
}

describe("toNetworkError", () => {
  it.each([
    "DEPTH_ZERO_SELF_SIGNED_CERT",
    "SELF_SIGNED_CERT_IN_CHAIN",
    "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
    "CERT_HAS_EXPIRED",
    "CERT_NOT_YET_VALID",
    "ERR_TLS_CERT_ALTNAME_INVALID",
  ])("maps the TLS failure %s to ERR_TLS with what to do", (code) => {
    const cause = tlsError(code);
    const error = toNetworkError(cause, URL);
    expect(error).toBeInstanceOf(NetworkError);
    expect(error).toMatchObject({ code: "ERR_TLS", exitCode: 4, url: URL, cause });
    expect(error.message).toContain("example.com");
    expect(error.message).toContain(code);
    expect(error.message).toContain("`ca`");
  });

  it("finds the TLS code under undici's generic socket error", () => {
    const socket = new undiciErrors.SocketError("other side closed");
    socket.cause = tlsError("CERT_HAS_EXPIRED");
    expect(toNetworkError(socket, URL)).toMatchObject({ code: "ERR_TLS", message: expect.stringContaining("CERT_HAS_EXPIRED") });
  });

  it.each([
    ["connect", new undiciErrors.ConnectTimeoutError(), "UND_ERR_CONNECT_TIMEOUT"],
    ["headers", new undiciErrors.HeadersTimeoutError(), "UND_ERR_HEADERS_TIMEOUT"],
    ["body", new undiciErrors.BodyTimeoutError(), "UND_ERR_BODY_TIMEOUT"],
    ["socket", Object.assign(new Error("connect ETIMEDOUT"), { code: "ETIMEDOUT" }), "ETIMEDOUT"],
  ])("maps a %s timeout to ERR_TIMEOUT", (_what, cause, code) => {
    const error = toNetworkError(cause, URL);
    expect(error).toMatchObject({ code: "ERR_TIMEOUT", exitCode: 4, url: URL, cause });
    expect(error.message).toBe(`timed out waiting for ${URL} (${code})`);
  });

  it("maps anything else to ERR_NETWORK, naming the most telling code in the cause chain", () => {
    const reset = new undiciErrors.SocketError("other side closed");
    reset.cause = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" });
    expect(toNetworkError(reset, URL)).toMatchObject({
      code: "ERR_NETWORK",
      exitCode: 4,
      message: `network error on ${URL}: other side closed (ECONNRESET)`,
    });
    const bare = new undiciErrors.SocketError("other side closed");
    expect(toNetworkError(bare, URL).message).toBe(`network error on ${URL}: other side closed (UND_ERR_SOCKET)`);
    expect(toNetworkError("odd", URL)).toMatchObject({ code: "ERR_NETWORK", message: `network error on ${URL}: odd` });
  });

  it("passes our own errors through unchanged", () => {
    const ours = new IntegrityError("wrong range", { code: "ERR_BAD_RANGE" });
    expect(toNetworkError(ours, URL)).toBe(ours);
  });

  it("once the signal has fired, the failure is the abort, whatever the socket said", () => {
    const controller = new AbortController();
    const reason = new AbortError(undefined, { signal: "SIGTERM" });
    controller.abort(reason);
    expect(toNetworkError(new undiciErrors.RequestAbortedError(), URL, controller.signal)).toBe(reason);
    const plain = new AbortController();
    plain.abort("stop");
    const error = toNetworkError(new Error("aborted"), URL, plain.signal);
    expect(error).not.toBeInstanceOf(RangegetError);
    expect(error.message).toBe("stop");
  });
});

describe("retryNotice", () => {
  it("names the host of a refused connection, once a caller asks, and nothing else", () => {
    const refused = toNetworkError(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:9"), { code: "ECONNREFUSED" }), "http://127.0.0.1:9/f.bin");
    expect(retryNotice(refused)).toEqual({ host: "127.0.0.1:9", message: "connection refused by 127.0.0.1:9, retrying…" });
    const reset = toNetworkError(Object.assign(new Error("socket hang up"), { code: "ECONNRESET" }), "http://127.0.0.1:9/f.bin");
    expect(retryNotice(reset)).toBeUndefined();
    expect(retryNotice(httpStatusError(503, "http://127.0.0.1:9/f.bin", "", undefined, undefined, 0))).toBeUndefined();
  });
});

describe("stdoutWriteFailure", () => {
  const errno = (code: string) => Object.assign(new Error(`write ${code}`), { code });
  it("stays quiet for a reader that went away", () => {
    for (const error of [undefined, errno("EPIPE"), errno("ERR_STREAM_PREMATURE_CLOSE"), errno("ERR_STREAM_DESTROYED")]) {
      expect(stdoutWriteFailure(error)).toBeUndefined();
    }
  });

  it("says a full disk behind stdout is one (ERR_NO_SPACE, exit 6), and any other write failure what it was", () => {
    expect(stdoutWriteFailure(errno("ENOSPC"))).toMatchObject({ code: "ERR_NO_SPACE", exitCode: 6, path: "-", message: expect.stringMatching(/^no space left on the output \(stdout\) \(ENOSPC\)/) });
    expect(stdoutWriteFailure(errno("EDQUOT"))).toMatchObject({ code: "ERR_NO_SPACE" });
    expect(stdoutWriteFailure(errno("EIO"))).toMatchObject({ code: "ERR_FILE", exitCode: 6, message: "cannot write the output (stdout): write EIO" });
  });
});

describe("httpStatusError", () => {
  it.each([
    [401, "check the credentials (user:password@ in the URL, `credentials` or `headers`)"],
    [403, "check the credentials (user:password@ in the URL, `credentials` or `headers`)"],
    [404, "check the URL"],
    [410, "check the URL"],
    [503, "the server kept failing; try again later"],
    [429, "the server kept failing; try again later"],
    [400, "check the URL and headers"],
    [501, "check the URL and headers"],
  ])("advises what to do after %i", (status, advice) => {
    const error = httpStatusError(status, URL, "", undefined, undefined, 0);
    expect(error).toMatchObject({ code: "ERR_HTTP_STATUS", exitCode: 3, status, url: URL });
    expect(error.message).toBe(`HTTP ${status} from ${URL} (${STATUS_CODES[status]}): ${advice}`);
  });

  const NGINX_404 = '<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx/1.22.1</center>';
  const APACHE_404 = '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n<title>404 Not Found</title>\n</head><body>\n<h1>Not Found</h1>';
  const XHTML_404 = '<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">';
  const S3_403 = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>60</X-Amz-Expires>';
  it.each([
    ["nginx's HTML page", 404, NGINX_404, "text/html", "(Not Found)"],
    ["nginx's HTML page, type unknown", 404, NGINX_404, undefined, "(Not Found)"],
    ["Apache's HTML page", 404, APACHE_404, undefined, "(Not Found)"],
    ["an XHTML page behind an XML declaration (lighttpd)", 404, XHTML_404, undefined, "(Not Found)"],
    ["S3's XML error", 403, S3_403, "application/xml", "(Forbidden: AccessDenied: Request has expired)"],
    ["S3's XML error, type unknown", 403, S3_403, undefined, "(Forbidden: AccessDenied: Request has expired)"],
    ["XML with entities", 404, "<Error><Message>a &lt;b&gt; &amp; &#x41;</Message></Error>", "text/xml", "(Not Found: a <b> & A)"],
    ["XML without a Message", 500, "<error><reason>x</reason></error>", "application/xml", "(Internal Server Error)"],
    ["JSON message", 429, '{"message":"API rate limit exceeded"}', "application/json", "(Too Many Requests: API rate limit exceeded)"],
    ["JSON error string", 401, '{"error":"invalid_token"}', undefined, "(Unauthorized: invalid_token)"],
    ["Google's JSON error object", 404, '{"error":{"code":404,"message":"No such object: b/o"}}', "application/json; charset=UTF-8", "(Not Found: No such object: b/o)"],
    ["RFC 9457 problem detail", 410, '{"type":"about:blank","title":"Gone","detail":"release 1.2 was withdrawn"}', "application/problem+json", "(Gone: release 1.2 was withdrawn)"],
    ["JSON cut before its end", 403, `{"message":"quota exceeded","padding":"${"x".repeat(200)}`, undefined, "(Forbidden: quota exceeded)"],
    ["JSON saying nothing we know", 500, '{"status":500}', "application/json", "(Internal Server Error)"],
    ["short plain text", 403, "bucket is private\n", "text/plain", "(Forbidden: bucket is private)"],
    ["plain text that repeats the status", 404, "404 Not Found\n", "text/plain", "(Not Found)"],
    ["plain text with a terminal escape", 403, "denied\u001b[2J\u001b]0;pwned\u0007", undefined, "(Forbidden: denied [2J ]0;pwned)"],
    ["long plain text: its first line", 404, `NoSuchKey\n  The specified key does not exist. ${"x".repeat(300)}`, undefined, "(Not Found: NoSuchKey …)"],
    ["long plain text on one line", 404, "y".repeat(300), undefined, "(Not Found)"],
    ["an empty body", 404, "", undefined, "(Not Found)"],
  ])("from %s, quotes only what is worth a line", (_what, status, body, contentType, shown) => {
    const error = httpStatusError(status, URL, body, undefined, contentType, 0);
    expect(error.message).toContain(`HTTP ${status} from ${URL} ${shown}: `);
    // eslint-disable-next-line no-control-regex
    expect(error.message).not.toMatch(/[\u0000-\u001f]|DOCTYPE|<html|<\?xml/i);
  });

  it("names no reason phrase for a status that has none", () => {
    expect(httpStatusError(599, URL, "", undefined, undefined, 0).message).toBe(`HTTP 599 from ${URL}: check the URL and headers`);
  });

  it("keeps the delay Retry-After asks for, in milliseconds", () => {
    expect(httpStatusError(503, URL, "", "7", undefined, 0).retryAfterMs).toBe(7000);
    expect(httpStatusError(503, URL, "", undefined, undefined, 0).retryAfterMs).toBeUndefined();
    expect(httpStatusError(503, URL, "", "soon", undefined, 0).retryAfterMs).toBeUndefined();
    const now = Date.parse("2026-01-01T00:00:00Z");
    expect(httpStatusError(503, URL, "", "Thu, 01 Jan 2026 00:00:09 GMT", undefined, now).retryAfterMs).toBe(9000);
  });
});

describe("serverFault", () => {
  it("is ERR_BAD_RANGE, naming the URL and what the answer did", () => {
    const error = serverFault(URL, 'it answered bytes 0-99 with Content-Range "bytes 200-299/1000", which does not overlap');
    expect(error).toBeInstanceOf(IntegrityError);
    expect(error).toMatchObject({ code: "ERR_BAD_RANGE", exitCode: 5 });
    expect(error.message).toBe(
      `${URL}: it answered bytes 0-99 with Content-Range "bytes 200-299/1000", which does not overlap; the server sends wrong ranges or sizes; try again later (another cache node may answer right) or another URL of the file`,
    );
  });

  it.each(["probe", "range", "stream"] as const)("advises what would help after a fault of the %s, never -c 1 (every run sends the same probe)", (request) => {
    const message = serverFault(URL, "it did something odd", request).message;
    expect(message).not.toMatch(/-c 1/);
    expect(message).toMatch(/try again later/);
  });

  it("says of a probe's fault that every run starts with the same request", () => {
    expect(serverFault(URL, "it did something odd", "probe").message).toMatch(/every run starts with it/);
  });
});

/** An fs error as Node raises it. */
function errnoError(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}: something, open '/out'`), { code });
}

describe("fileError", () => {
  it.each([
    ["ENOSPC", "ERR_NO_SPACE", "no space left (ENOSPC); free some space and run again to resume"],
    ["EDQUOT", "ERR_NO_SPACE", "no space left (EDQUOT); free some space and run again to resume"],
    ["EACCES", "ERR_PERMISSION", "permission denied (EACCES); choose another `dir` or `output`"],
    ["EPERM", "ERR_PERMISSION", "permission denied (EPERM); choose another `dir` or `output`"],
    ["EROFS", "ERR_PERMISSION", "permission denied (EROFS); choose another `dir` or `output`"],
    ["EISDIR", "ERR_FILE", "it is a directory; choose another `output`"],
    ["EIO", "ERR_FILE", "EIO: something, open '/out'"],
  ])("maps %s to %s", (errno, code, detail) => {
    const cause = errnoError(errno);
    const error = fileError(cause, "/out.part", "cannot write");
    expect(error).toMatchObject({ code, exitCode: 6, path: "/out.part", cause });
    expect(error.message).toBe(`cannot write /out.part: ${detail}`);
  });

  it("maps EFBIG to ERR_FILE_TOO_LARGE: more space would not help", () => {
    const error = fileError(errnoError("EFBIG"), "/out.part", "cannot write");
    expect(error).toMatchObject({ code: "ERR_FILE_TOO_LARGE", exitCode: 6, path: "/out.part" });
    expect(error.message).toMatch(/^cannot write \/out\.part: .*\(EFBIG\)/);
  });

  it("passes a FileError through unchanged", () => {
    const ours = new FileError("locked", { path: "/out", code: "ERR_LOCKED" });
    expect(fileError(ours, "/other", "cannot write")).toBe(ours);
  });

  describe("with real file system errors", () => {
    let dir: string;
    beforeEach(async () => {
      dir = await mkdtemp(path.join(tmpdir(), "rangeget-errors-"));
    });
    afterEach(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it("says a directory is in the way", async () => {
      const caught = await open(dir, "w").catch((error: unknown) => error);
      expect(fileError(caught, dir, "cannot create")).toMatchObject({
        code: "ERR_FILE",
        message: `cannot create ${dir}: it is a directory; choose another \`output\``,
      });
    });

    it("passes on what Node said about anything else", async () => {
      const missing = path.join(dir, "gone", "out.part");
      const caught = await open(missing, "r").catch((error: unknown) => error);
      const error = fileError(caught, missing, "cannot open");
      expect(error).toMatchObject({ code: "ERR_FILE", exitCode: 6 });
      expect(error.message).toMatch(new RegExp(`^cannot open ${missing}: ENOENT`));
    });
  });
});

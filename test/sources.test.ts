/**
 * src/sources.ts: the copies of one file (the URL and its mirrors), which one a
 * connection uses, dropping a mirror that fails for good, and asking the URL given
 * again when the signed URL it redirected to expired. The refresh runs against real
 * range servers on 127.0.0.1, on a fake clock (a backoff would be recorded, not slept).
 */
import { describe, expect, it } from "vitest";
import { AbortError, HttpStatusError, IntegrityError, NetworkError } from "../src/errors.js";
import { changedDuringDownload, dropMirror, pickSource, refreshSource, signedUrlExpired, type Source } from "../src/sources.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { requestContext } from "./support/http-context.js";
import type { RangeServer } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";

const SIZE = 20_000;
const content = makeContent(SIZE);

function copy(url: string, extra: Partial<Source> = {}): Source {
  return {
    url,
    requestedUrl: url,
    origin: new URL(url).origin,
    etag: null,
    lastModified: null,
    ifRange: undefined,
    primary: false,
    failed: false,
    ...extra,
  };
}

const URL_A = "http://127.0.0.1:8001/f.bin";
const MIRROR_B = "http://127.0.0.1:8002/f.bin";
const MIRROR_C = "http://127.0.0.1:8003/f.bin";

describe("pickSource: a connection's copy", () => {
  it("is its own (preferred modulo the copies) while that works", () => {
    const sources = [copy(URL_A, { primary: true }), copy(MIRROR_B), copy(MIRROR_C)];
    expect(pickSource(sources, 0)).toBe(sources[0]);
    expect(pickSource(sources, 2)).toBe(sources[2]);
    expect(pickSource(sources, 4)).toBe(sources[1]);
  });

  it("is the first working copy once its own failed", () => {
    const sources = [copy(URL_A, { primary: true, failed: true }), copy(MIRROR_B, { failed: true }), copy(MIRROR_C)];
    expect(pickSource(sources, 1)).toBe(sources[2]);
    expect(pickSource(sources, 0)).toBe(sources[2]);
  });

  it("is an internal error when no copy works (the last one's failure ends the download first)", () => {
    expect(() => pickSource([copy(URL_A, { failed: true })], 0)).toThrow("internal error: no working source left");
  });
});

describe("dropMirror: a copy that fails for good", () => {
  function copies(sources: Source[]) {
    const warnings: string[] = [];
    const credentials = new Map([["http://127.0.0.1:8002", { authorization: "Basic x", shownUserinfo: "carol:***" }]]);
    const http = { ...requestContext(), userOrigin: "http://127.0.0.1:8001", originCredentials: credentials };
    return { context: { sources, http, warn: (message: string) => warnings.push(message) }, warnings };
  }
  const refused = () => new NetworkError("connection refused", { url: MIRROR_B }).message;

  it("is dropped with a warning naming it (its user shown, never the password) when another copy works", () => {
    const sources = [copy(URL_A, { primary: true }), copy(MIRROR_B)];
    const { context, warnings } = copies(sources);
    expect(dropMirror(context, sources[1]!, refused())).toBe(true);
    expect(sources[1]!.failed).toBe(true);
    expect(sources[0]!.failed).toBe(false);
    expect(warnings).toEqual(["dropping http://carol:***@127.0.0.1:8002/f.bin: connection refused; continuing with the other copy"]);
  });

  it("counts the other working copies in its warning", () => {
    const sources = [copy(URL_A, { primary: true }), copy(MIRROR_B), copy(MIRROR_C)];
    const { context, warnings } = copies(sources);
    expect(dropMirror(context, sources[2]!, refused())).toBe(true);
    expect(warnings).toEqual(["dropping http://127.0.0.1:8003/f.bin: connection refused; continuing with the other copies"]);
  });

  it("is the URL itself too, for a failure (a change of the URL's file is not one: worker.ts stops the download with it instead)", () => {
    const sources = [copy(URL_A, { primary: true }), copy(MIRROR_B)];
    const { context } = copies(sources);
    expect(dropMirror(context, sources[0]!, refused())).toBe(true);
    expect(sources[0]!.failed).toBe(true);
  });

  it("is a mirror whose file changed: only that mirror goes", () => {
    const sources = [copy(URL_A, { primary: true }), copy(MIRROR_B)];
    const { context, warnings } = copies(sources);
    expect(dropMirror(context, sources[1]!, changedDuringDownload(MIRROR_B, 'its ETag is now "v2"'))).toBe(true);
    expect(warnings).toEqual([`dropping http://carol:***@127.0.0.1:8002/f.bin: the remote file at ${MIRROR_B} changed during the download: its ETag is now "v2"; continuing with the other copy`]);
  });

  it.each([
    ["the last working copy (failed ones do not count)", [copy(URL_A, { primary: true, failed: true }), copy(MIRROR_B)], 1, "reset"],
    ["a single copy", [copy(URL_A, { primary: true })], 0, "reset"],
  ])("is not %s: that failure is the download's", (_name, sources, index, why) => {
    const { context, warnings } = copies(sources);
    const failedBefore = sources.map((source) => source.failed);
    expect(dropMirror(context, sources[index]!, why)).toBe(false);
    expect(sources.map((source) => source.failed)).toEqual(failedBefore);
    expect(warnings).toEqual([]);
  });
});

describe("signedUrlExpired", () => {
  const redirected = copy("http://127.0.0.1:8002/signed?sig=1", { requestedUrl: URL_A, primary: true });
  const status = (code: number) => new HttpStatusError(`HTTP ${code}`, { status: code, url: redirected.url });

  it.each([401, 403, 404, 410])("a %s from the URL a redirect led to is an expired signature", (code) => {
    expect(signedUrlExpired(redirected, status(code))).toBe(true);
  });

  it.each([400, 416, 429, 500, 503])("a %s is not", (code) => {
    expect(signedUrlExpired(redirected, status(code))).toBe(false);
  });

  it("nor a 403 from the URL as given (a refusal of the file), nor a failure without a status", () => {
    expect(signedUrlExpired(copy(URL_A), status(403))).toBe(false);
    expect(signedUrlExpired(redirected, new NetworkError("reset", { url: redirected.url }))).toBe(false);
  });
});

describe("refreshSource: the URL given, asked again for a fresh redirect", () => {
  /**
   * The user's URL `/file.bin` redirects to `/signed/<n>`, a new signature each time
   * (on `target`, or the same server); `/signed/*` serves the file unless `signed` says otherwise.
   */
  async function signedServers(options: { signed?: Parameters<typeof rangeServer>[0]["onRequest"]; otherHost?: boolean } = {}) {
    const target = options.otherHost ? await rangeServer({ content, etag: '"v1"' }) : undefined;
    let signatures = 0;
    const server: RangeServer = await rangeServer({
      content,
      etag: '"v1"',
      onRequest: (request) => {
        if (request.path === "/file.bin") return { redirectTo: `${(target ?? server).origin}/signed/${++signatures}`, status: 302 };
        return options.signed?.(request);
      },
    });
    if (target) target.onRequest = options.signed;
    const clock = new FakeClock({ instantUpToMs: 40_000 });
    const http = requestContext({ clock, timeoutMs: 60_000, userOrigin: server.origin });
    const source = copy(`${(target ?? server).origin}/signed/0`, {
      requestedUrl: server.url(),
      etag: '"v1"',
      ifRange: '"v1"',
      primary: true,
    });
    return { server, target: target ?? server, clock, context: { http, size: SIZE }, source };
  }

  async function bodyOf(response: { body: AsyncIterable<Buffer> }): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for await (const chunk of response.body) chunks.push(chunk);
    return Buffer.concat(chunks);
  }

  it("asks the URL given for the rest of the range with the copy's If-Range, and moves the copy to the fresh URL", async () => {
    const { server, clock, context, source } = await signedServers();
    const given = await refreshSource(context, source, { start: 1000, end: 4999 }, new AbortController().signal);
    expect(given.skip).toBe(0);
    expect(given.end).toBe(4999);
    expect((await bodyOf(given.response)).equals(content.subarray(1000, 5000))).toBe(true);
    expect(server.requests.map((sent) => [sent.path, sent.headers["range"], sent.headers["if-range"]])).toEqual([
      ["/file.bin", "bytes=1000-4999", '"v1"'],
      ["/signed/1", "bytes=1000-4999", '"v1"'],
    ]);
    expect(source).toMatchObject({ url: server.url("/signed/1"), requestedUrl: server.url(), origin: server.origin, failed: false });
    // One answer deadline per GET (the URL's, the fresh URL's), and no backoff.
    expect(clock.sleeps).toEqual([60_000, 60_000]);
  });

  it("moves the copy's origin too when the fresh redirect is to another host", async () => {
    const { server, target, context, source } = await signedServers({ otherHost: true });
    const given = await refreshSource(context, source, { start: 0, end: 999 }, new AbortController().signal);
    await bodyOf(given.response);
    expect(target.origin).not.toBe(server.origin);
    expect(source).toMatchObject({ url: target.url("/signed/1"), origin: target.origin });
  });

  it("proves only what the fresh answer covers: a capped answer ends early and the caller asks for the rest", async () => {
    const { context, source } = await signedServers({ signed: () => ({ capBytes: 500 }) });
    const given = await refreshSource(context, source, { start: 1000, end: 4999 }, new AbortController().signal);
    expect(given.end).toBe(1499);
    expect((await bodyOf(given.response)).equals(content.subarray(1000, 1500))).toBe(true);
  });

  it("resolves `changed` (a value, not an error) when the URL given now serves another version, and keeps the copy where it was", async () => {
    const { server, context, source } = await signedServers();
    server.setContent(makeContent(SIZE, 2), { etag: '"v2"' });
    const before = { ...source };
    const refreshed = await refreshSource(context, source, { start: 1000, end: 4999 }, new AbortController().signal);
    expect(refreshed).toEqual({ kind: "changed", reason: expect.stringMatching(new RegExp(`^the remote file at ${server.url().replace(/[.]/g, "\\.")} changed during the download: `)) });
    expect(source).toEqual(before);
  });

  it("names the URL given, with its user shown, in the change's message", async () => {
    const { server, context, source } = await signedServers();
    server.setContent(makeContent(SIZE, 2), { etag: '"v2"' });
    const shown = { ...context, http: { ...context.http, shownUserinfo: "alice:***" } };
    const refreshed = await refreshSource(shown, source, { start: 1000, end: 4999 }, new AbortController().signal);
    expect(refreshed).toMatchObject({ kind: "changed" });
    expect((refreshed as { reason: string }).reason).toMatch(new RegExp(`^the remote file at http://alice:\\*\\*\\*@127\\.0\\.0\\.1:${server.port}/file\\.bin changed during the download: `));
  });

  it.each([403, 503])("makes one attempt when the fresh URL answers %s too: the range's own retry loop is the only budget", async (status) => {
    const { server, clock, context, source } = await signedServers({ signed: () => ({ status }) });
    const failure = await refreshSource(context, source, { start: 1000, end: 4999 }, new AbortController().signal).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(HttpStatusError);
    expect((failure as HttpStatusError).status).toBe(status);
    expect(server.requests.map((sent) => sent.path)).toEqual(["/file.bin", "/signed/1"]);
    // The two GETs' answer deadlines; no backoff before a second attempt.
    expect(clock.sleeps).toEqual([60_000, 60_000]);
    expect(source.url).toBe(server.url("/signed/0"));
  });

  it("refuses a fresh answer that does not start at the range (a 200 of the whole file): a server fault, the copy kept", async () => {
    const { server, context, source } = await signedServers({ signed: () => ({ ignoreRange: true }) });
    const failure = await refreshSource(context, source, { start: 1000, end: 4999 }, new AbortController().signal).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as IntegrityError).code).toBe("ERR_BAD_RANGE");
    expect((failure as Error).message).toContain(`${server.url()}: its fresh redirect answered bytes 1000-4999 with 200 (range-ignored)`);
    expect(source.url).toBe(server.url("/signed/0"));
  });

  it("stops when its signal aborts", async () => {
    const { context, source } = await signedServers({ signed: () => ({ stallBeforeHeaders: true }) });
    const abort = new AbortController();
    const refreshing = refreshSource(context, source, { start: 0, end: 999 }, abort.signal);
    abort.abort(new AbortError());
    await expect(refreshing).rejects.toBeInstanceOf(AbortError);
  });
});

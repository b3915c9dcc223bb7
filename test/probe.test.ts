import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { HttpStatusError, IntegrityError, NetworkError } from "../src/errors.js";
import { hostKey, HostLimits } from "../src/host-limits.js";
import { discard } from "../src/http.js";
import { probe, type ProbeRequest } from "../src/probe.js";
import { NOTHING_KNOWN } from "../src/verdict.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { requestContext } from "./support/http-context.js";
import { rangeAnswer, sendAndClose } from "./support/raw-server.js";
import { rangeServer, rawServer } from "./support/servers.js";

const content = makeContent(10_000);

/** A context whose backoffs pass at once on a fake clock, its 60 s answer deadline never reached. */
function fastRetries() {
  const clock = new FakeClock({ instantUpToMs: 40_000 });
  return { clock, context: requestContext({ clock, timeoutMs: 60_000 }) };
}

/** A fresh probe: nothing known of the file yet, the default connection cap for its host. */
function request(url: string, extra: Partial<ProbeRequest> = {}): ProbeRequest {
  return { url, range: { start: 0, end: 999 }, known: NOTHING_KNOWN, retries: 3, ...extra };
}

async function probed(url: string, extra: Partial<ProbeRequest> = {}) {
  const answer = await probe(requestContext(), request(url, extra), new AbortController().signal);
  await discard(answer.response);
  return answer;
}

describe("the probe's request", () => {
  it("is a GET for the first range, with no validator when nothing is being resumed", async () => {
    const server = await rangeServer({ content });
    await probed(server.url());
    const [sent] = server.requests;
    expect(sent?.method).toBe("GET");
    expect(sent?.headers["range"]).toBe("bytes=0-999");
    expect(sent?.headers["if-range"]).toBeUndefined();
    expect(sent?.headers["if-none-match"]).toBeUndefined();
    expect(sent?.headers["if-modified-since"]).toBeUndefined();
  });

  it("sends If-Range with the partial data's validator when resuming", async () => {
    const server = await rangeServer({ content, etag: '"v1"' });
    await probed(server.url(), { range: { start: 4000, end: 4999 }, ifRange: '"v1"' });
    expect(server.requests[0]?.headers["range"]).toBe("bytes=4000-4999");
    expect(server.requests[0]?.headers["if-range"]).toBe('"v1"');
  });

  it("sends If-None-Match and If-Modified-Since for an update check", async () => {
    const server = await rangeServer({ content });
    const since = "Tue, 02 Jan 2024 03:04:05 GMT";
    await probed(server.url(), { ifNoneMatch: '"old"', ifModifiedSince: since });
    expect(server.requests[0]?.headers["if-none-match"]).toBe('"old"');
    expect(server.requests[0]?.headers["if-modified-since"]).toBe(since);
  });
});

describe("what the probe learns", () => {
  it("reads the size from Content-Range, the validators and the server's file name from a 206", async () => {
    const lastModified = new Date("2024-05-06T07:08:09Z");
    const server = await rangeServer({ content, etag: '"v7"', lastModified, contentDisposition: 'attachment; filename="report.pdf"' });
    const answer = await probed(server.url());
    expect(answer.response.status).toBe(206);
    expect(answer).toMatchObject({
      verdict: {
        kind: "bytes",
        start: 0,
        end: 999,
        answered: { start: 0, end: 999 },
        size: content.length,
        validators: { etag: '"v7"', lastModified: lastModified.toUTCString() },
      },
      etag: '"v7"',
      lastModified: lastModified.toUTCString(),
      contentDisposition: 'attachment; filename="report.pdf"',
      finalUrl: server.url(),
    });
  });

  it("leaves the body of a 206 unread: it is the first range of the file", async () => {
    const server = await rangeServer({ content });
    const answer = await probe(requestContext(), request(server.url()), new AbortController().signal);
    const chunks: Buffer[] = [];
    for await (const chunk of answer.response.body as AsyncIterable<Buffer>) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(content.subarray(0, 1000))).toBe(true);
  });

  it("reads the size from Content-Length when the server ignores the range (200)", async () => {
    const server = await rangeServer({ content, acceptRanges: false });
    const answer = await probed(server.url());
    expect(answer.response.status).toBe(200);
    // Nothing is known yet, so a 200 is the whole file, not a sign of change; its length is the size.
    expect(answer.verdict).toMatchObject({ kind: "whole", size: content.length });
  });

  it("knows no size for a 200 without Content-Length", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ ignoreRange: true, noLength: true }) });
    expect((await probed(server.url())).verdict).toMatchObject({ kind: "whole", size: undefined });
  });

  it("reads the size of a 416 from its bytes */n", async () => {
    const server = await rangeServer({ content });
    const answer = await probed(server.url(), { range: { start: 10_000, end: 10_999 } });
    expect(answer.response.status).toBe(416);
    // Asking from byte N of an N-byte file: every byte before it is here, so the file is complete.
    expect(answer.verdict).toEqual({ kind: "complete", size: content.length });
  });

  it("accepts a range cut short at the end of a small file", async () => {
    const server = await rangeServer({ content: makeContent(300) });
    const answer = await probed(server.url());
    expect(answer.verdict).toMatchObject({ kind: "bytes", start: 0, end: 299, answered: { start: 0, end: 299 }, size: 300 });
  });

  it("reports the URL it ended at after redirects, and that server's validators", async () => {
    const target = await rangeServer({ content, etag: '"at-the-cdn"' });
    const server = await rangeServer({ content, onRequest: () => ({ redirectTo: target.url("/signed.bin?sig=1"), status: 302 }) });
    const answer = await probed(server.url());
    expect(answer.finalUrl).toBe(target.url("/signed.bin?sig=1"));
    expect(answer.etag).toBe('"at-the-cdn"');
  });

  it("takes a 304 as the answer to an update check", async () => {
    const server = await rangeServer({ content, etag: '"same"' });
    const answer = await probed(server.url(), { ifNoneMatch: '"same"' });
    expect(answer.response.status).toBe(304);
    expect(answer.verdict).toEqual({ kind: "not-modified" });
  });

  it("refuses a 304 to a request that was not conditional", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ status: 304 }) });
    const error = await probed(server.url()).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect((error as HttpStatusError).status).toBe(304);
  });

  it("refuses a 206 for other bytes than those asked for, as a wrong range", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ contentRange: `bytes 5000-5999/${content.length}` }) });
    const { context } = fastRetries();
    const error = await probe(context, request(server.url(), { retries: 2 }), new AbortController().signal).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).code).toBe("ERR_BAD_RANGE");
    // A broken cache node may answer right the next time: it was asked again.
    expect(server.requests).toHaveLength(2);
  });

  it("keeps from a 206 that overlaps what was asked only the overlap: an honest answer, not a wrong range", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ contentRange: `bytes 1-1000/${content.length}` }) });
    const answer = await probed(server.url());
    expect(answer.verdict).toMatchObject({ kind: "bytes", start: 1, end: 999, answered: { start: 1, end: 1000 }, size: content.length });
    expect(server.requests).toHaveLength(1);
  });

  it("judges the answer against what is known: a resume whose file has a new ETag is told of the change, its body unread", async () => {
    const server = await rangeServer({ content, etag: '"v2"' });
    const known = { size: content.length, etag: '"v1"', lastModified: null, bytesDone: 4000 };
    const resume = request(server.url(), { range: { start: 4000, end: 4999 }, ifRange: '"v1"', known });
    const answer = await probe(requestContext(), resume, new AbortController().signal);
    expect(answer.response.status).toBe(200);
    expect(answer.verdict).toMatchObject({ kind: "changed" });
    // The new version's bytes may be kept by the caller: the whole file is still there to read.
    const chunks: Buffer[] = [];
    for await (const chunk of answer.response.body as AsyncIterable<Buffer>) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
  });

  it("holds one of its host's connections until its body is done, whoever reads it", async () => {
    const server = await rangeServer({ content });
    const hostLimits = new HostLimits(16);
    const answer = await probe(requestContext({ hostLimits }), request(server.url()), new AbortController().signal);
    expect(hostLimits.inUse(hostKey(server.url()))).toBe(1);
    await discard(answer.response);
    if (!answer.response.body.closed) await once(answer.response.body, "close");
    expect(hostLimits.inUse(hostKey(server.url()))).toBe(0);
  });
});

describe("the probe's retries", () => {
  it("asks again after a retryable status, waiting what Retry-After says, and counts the retries", async () => {
    const server = await rangeServer({
      content,
      onRequest: (sent) => (sent.index < 2 ? { status: 503, retryAfter: "7" } : undefined),
    });
    const { clock, context } = fastRetries();
    const answer = await probe(context, request(server.url()), new AbortController().signal);
    await discard(answer.response);
    expect(answer.response.status).toBe(206);
    expect(clock.sleeps.filter((ms) => ms === 7000)).toHaveLength(2);
    expect(context.stats.snapshot().retries).toBe(2);
  });

  it("asks again after the connection is cut before an answer", async () => {
    const server = await rawServer((socket, sent) => {
      if (server.requests.length === 1) socket.destroy();
      else sendAndClose(socket, rangeAnswer(content, sent!));
    });
    const { context } = fastRetries();
    const answer = await probe(context, request(server.url()), new AbortController().signal);
    await discard(answer.response);
    expect(answer.response.status).toBe(206);
    expect(server.requests).toHaveLength(2);
  });

  it("gives up with the server's status after `retries` attempts", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ status: 500 }) });
    const { context } = fastRetries();
    const error = await probe(context, request(server.url(), { retries: 4 }), new AbortController().signal).catch(
      (caught: unknown) => caught,
    );
    expect((error as HttpStatusError).status).toBe(500);
    expect(server.requests).toHaveLength(4);
  });

  it("does not ask again after a status that will not change (404)", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ status: 404 }) });
    const { clock, context } = fastRetries();
    const error = await probe(context, request(server.url()), new AbortController().signal).catch((caught: unknown) => caught);
    expect((error as HttpStatusError).status).toBe(404);
    expect(server.requests).toHaveLength(1);
    expect(clock.sleeps.filter((ms) => ms !== 60_000)).toEqual([]);
  });

  it("gives up on a server that never answers, after its deadline on each attempt", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ stallBeforeHeaders: true }) });
    const error = await probe(requestContext({ timeoutMs: 200 }), request(server.url(), { retries: 1 }), new AbortController().signal).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).code).toBe("ERR_TIMEOUT");
  });
});

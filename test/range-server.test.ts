import { connect } from "node:net";
import { gunzipSync } from "node:zlib";
import { Agent, request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import type { RangeServer, RangeServerOptions } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { until } from "./support/until.js";

const SIZE = 100_000;
const content = makeContent(SIZE, 7);
const agent = new Agent();
afterAll(() => agent.close());

/** A range server of `content` unless told otherwise, closed after the test. */
function serve(options: Partial<RangeServerOptions> = {}): Promise<RangeServer> {
  return rangeServer({ content, ...options });
}

async function get(url: string, headers: Record<string, string> = {}, method: "GET" | "HEAD" = "GET") {
  const res = await request(url, { method, headers, dispatcher: agent });
  const body = Buffer.from(await res.body.arrayBuffer());
  return { status: res.statusCode, headers: res.headers, body };
}

/** Reads a body chunk by chunk so a failure still reports what arrived before it. */
async function readUntilError(body: AsyncIterable<Buffer>): Promise<{ received: Buffer; error: unknown }> {
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of body) chunks.push(chunk);
  } catch (error) {
    return { received: Buffer.concat(chunks), error };
  }
  return { received: Buffer.concat(chunks), error: undefined };
}

/** One raw HTTP/1.1 exchange on a fresh socket, returning every byte the server sent. */
function rawGet(port: number, path: string, headers: Record<string, string> = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const lines = [`GET ${path} HTTP/1.1`, "Host: 127.0.0.1", "Connection: close"];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    socket.write(`${lines.join("\r\n")}\r\n\r\n`);
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("end", () => resolve(Buffer.concat(chunks)));
    socket.on("error", reject);
  });
}

function splitHead(raw: Buffer): { head: string; body: Buffer } {
  const at = raw.indexOf("\r\n\r\n");
  return { head: raw.subarray(0, at).toString("latin1"), body: raw.subarray(at + 4) };
}

describe("content", () => {
  it("is deterministic per seed and fast for large sizes", () => {
    expect(makeContent(1000, 3).equals(makeContent(1000, 3))).toBe(true);
    expect(makeContent(1000, 3).equals(makeContent(1000, 4))).toBe(false);
    expect(makeContent(5000, 3).subarray(0, 1000).equals(makeContent(1000, 3))).toBe(true);
    expect(makeContent(0).length).toBe(0);
    const t0 = performance.now();
    expect(makeContent(32 << 20).length).toBe(32 << 20);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(sha256(Buffer.from("abc"))).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  });
});

describe("range server: plain semantics", () => {
  it("serves the whole file with validators", async () => {
    const s = await serve({ contentDisposition: 'attachment; filename="x.bin"' });
    const r = await get(s.url());
    expect(r.status).toBe(200);
    expect(r.body.equals(content)).toBe(true);
    expect(r.headers["content-length"]).toBe(String(SIZE));
    expect(r.headers["accept-ranges"]).toBe("bytes");
    expect(r.headers.etag).toMatch(/^"[0-9a-f]{16}"$/);
    expect(r.headers["last-modified"]).toBe("Tue, 02 Jan 2024 03:04:05 GMT");
    expect(r.headers["content-disposition"]).toBe('attachment; filename="x.bin"');
    expect(s.origin).toBe(`http://127.0.0.1:${s.port}`);
    expect(s.url()).toBe(`${s.origin}/file.bin`);
  });

  it("answers HEAD with headers only", async () => {
    const s = await serve();
    const r = await get(s.url(), { range: "bytes=0-9" }, "HEAD");
    expect(r.status).toBe(200);
    expect(r.headers["content-length"]).toBe(String(SIZE));
    expect(r.body.length).toBe(0);
    expect(s.bytesServed()).toBe(0);
  });

  it("serves a-b, a- and suffix ranges with 206", async () => {
    const s = await serve();
    const ab = await get(s.url(), { range: "bytes=10-19" });
    expect(ab.status).toBe(206);
    expect(ab.headers["content-range"]).toBe(`bytes 10-19/${SIZE}`);
    expect(ab.headers["content-length"]).toBe("10");
    expect(ab.body.equals(content.subarray(10, 20))).toBe(true);

    const open = await get(s.url(), { range: `bytes=${SIZE - 5}-` });
    expect(open.headers["content-range"]).toBe(`bytes ${SIZE - 5}-${SIZE - 1}/${SIZE}`);
    expect(open.body.equals(content.subarray(SIZE - 5))).toBe(true);

    const suffix = await get(s.url(), { range: "bytes=-7" });
    expect(suffix.status).toBe(206);
    expect(suffix.body.equals(content.subarray(SIZE - 7))).toBe(true);

    const clamped = await get(s.url(), { range: `bytes=${SIZE - 3}-${SIZE * 2}` });
    expect(clamped.headers["content-range"]).toBe(`bytes ${SIZE - 3}-${SIZE - 1}/${SIZE}`);
    expect(clamped.body.length).toBe(3);
  });

  it("ignores multi-range and malformed ranges", async () => {
    const s = await serve();
    for (const range of ["bytes=0-1,5-6", "bytes=9-3", "bytes=-", "items=0-1", "bytes=abc"]) {
      const r = await get(s.url(), { range });
      expect(r.status, range).toBe(200);
      expect(r.body.length).toBe(SIZE);
    }
  });

  it("answers 416 for unsatisfiable ranges, including any range on an empty file", async () => {
    const s = await serve();
    const r = await get(s.url(), { range: `bytes=${SIZE}-` });
    expect(r.status).toBe(416);
    expect(r.headers["content-range"]).toBe(`bytes */${SIZE}`);
    expect((await get(s.url(), { range: "bytes=-0" })).status).toBe(416);

    s.setContent(Buffer.alloc(0));
    const empty = await get(s.url(), { range: "bytes=0-" });
    expect(empty.status).toBe(416);
    expect(empty.headers["content-range"]).toBe("bytes */0");
    expect((await get(s.url())).status).toBe(200);
  });

  it("honours If-Range only for an equal strong ETag or the exact Last-Modified date", async () => {
    const s = await serve();
    const { etag, "last-modified": lm } = (await get(s.url(), {}, "HEAD")).headers as Record<string, string>;
    const range = "bytes=0-9";
    expect((await get(s.url(), { range, "if-range": etag! })).status).toBe(206);
    expect((await get(s.url(), { range, "if-range": `W/${etag}` })).status).toBe(200);
    expect((await get(s.url(), { range, "if-range": '"other"' })).status).toBe(200);
    expect((await get(s.url(), { range, "if-range": lm! })).status).toBe(206);
    const other = await get(s.url(), { range, "if-range": "Wed, 03 Jan 2024 03:04:05 GMT" });
    expect(other.status).toBe(200);
    expect(other.body.equals(content)).toBe(true);
  });

  it("answers 304 to If-None-Match and If-Modified-Since", async () => {
    const s = await serve();
    const etag = (await get(s.url(), {}, "HEAD")).headers.etag as string;
    const hit = await get(s.url(), { "if-none-match": `"nope", ${etag}` });
    expect(hit.status).toBe(304);
    expect(hit.headers.etag).toBe(etag);
    expect(hit.headers["last-modified"]).toBe("Tue, 02 Jan 2024 03:04:05 GMT");
    expect(hit.body.length).toBe(0);
    expect((await get(s.url(), { "if-none-match": "*" })).status).toBe(304);
    expect((await get(s.url(), { "if-none-match": '"nope"' })).status).toBe(200);

    expect((await get(s.url(), { "if-modified-since": "Tue, 02 Jan 2024 03:04:05 GMT" })).status).toBe(304);
    expect((await get(s.url(), { "if-modified-since": "Tue, 02 Jan 2024 03:04:04 GMT" })).status).toBe(200);
    // If-None-Match takes precedence: a mismatch there wins over a satisfied If-Modified-Since.
    const both = { "if-none-match": '"nope"', "if-modified-since": "Tue, 02 Jan 2025 00:00:00 GMT" };
    expect((await get(s.url(), both)).status).toBe(200);
  });

  it("supports no ETag, no Last-Modified and no ranges at all", async () => {
    const s = await serve({ etag: null, lastModified: null, acceptRanges: false });
    const r = await get(s.url(), { range: "bytes=0-9" });
    expect(r.status).toBe(200);
    expect(r.body.length).toBe(SIZE);
    expect(r.headers.etag).toBeUndefined();
    expect(r.headers["last-modified"]).toBeUndefined();
    expect(r.headers["accept-ranges"]).toBeUndefined();
  });

  it("setContent changes the ETag, Last-Modified and bytes", async () => {
    const s = await serve();
    const before = await get(s.url(), {}, "HEAD");
    const next = makeContent(SIZE + 10, 8);
    s.setContent(next);
    expect(s.content).toBe(next);
    const after = await get(s.url());
    expect(after.headers.etag).not.toBe(before.headers.etag);
    expect(after.headers["last-modified"]).not.toBe(before.headers["last-modified"]);
    expect(after.body.equals(next)).toBe(true);
    const stale = await get(s.url(), { range: "bytes=0-9", "if-range": before.headers.etag as string });
    expect(stale.status).toBe(200);
    expect(stale.body.equals(next)).toBe(true);

    s.setContent(content, { etag: '"fixed"', lastModified: null });
    const fixed = await get(s.url(), {}, "HEAD");
    expect(fixed.headers.etag).toBe('"fixed"');
    expect(fixed.headers["last-modified"]).toBeUndefined();
  });

  it("records requests with parsed ranges and bytes sent over kept-alive sockets", async () => {
    const s = await serve();
    const first = await get(s.url("/a?x=1"), { range: "bytes=5-9" });
    expect(first.headers.connection).toBe("keep-alive");
    await get(s.url("b"), { range: "bytes=100-" });
    await get(s.url(), { range: "bytes=-3" });
    await get(s.url(), { range: "junk" });
    expect(s.requests.map((r) => [r.index, r.method, r.path, r.range, r.status, r.bytesSent])).toEqual([
      [0, "GET", "/a?x=1", { start: 5, end: 9 }, 206, 5],
      [1, "GET", "/b", { start: 100, end: undefined }, 206, SIZE - 100],
      [2, "GET", "/file.bin", { start: -3, end: undefined }, 206, 3],
      [3, "GET", "/file.bin", undefined, 200, SIZE],
    ]);
    expect(s.requests[0]!.headers.range).toBe("bytes=5-9");
    expect(s.bytesServed()).toBe(5 + SIZE - 100 + 3 + SIZE);
  });
});

describe("range server: faults", () => {
  it("redirects", async () => {
    const s = await serve({ onRequest: (r) => (r.path === "/old" ? { redirectTo: "/file.bin" } : undefined) });
    const r = await get(s.url("/old"));
    expect(r.status).toBe(302);
    expect(r.headers.location).toBe("/file.bin");
    const followed = await fetch(s.url("/old"));
    expect(followed.status).toBe(200);
    expect(Buffer.from(await followed.arrayBuffer()).equals(content)).toBe(true);
    const perm = await serve({ onRequest: () => ({ redirectTo: "http://127.0.0.1:1/x", status: 307 }) });
    expect((await get(perm.url())).status).toBe(307);
  });

  it("answers an injected status with Retry-After and extra headers", async () => {
    const s = await serve({
      onRequest: (r) => (r.index === 0 ? { status: 503, retryAfter: "2", headers: { "x-why": "busy" } } : undefined),
    });
    const r = await get(s.url());
    expect(r.status).toBe(503);
    expect(r.headers["retry-after"]).toBe("2");
    expect(r.headers["x-why"]).toBe("busy");
    expect(r.body.toString()).toContain("Service Unavailable");
    expect((await get(s.url())).status).toBe(200);
    expect(s.requests.map((q) => q.status)).toEqual([503, 200]);
  });

  it("ignores the Range when told to", async () => {
    const s = await serve({ onRequest: () => ({ ignoreRange: true }) });
    const r = await get(s.url(), { range: "bytes=10-19" });
    expect(r.status).toBe(200);
    expect(r.body.equals(content)).toBe(true);
  });

  it("omits Content-Length (chunked) when told to", async () => {
    const s = await serve({ onRequest: () => ({ noLength: true }) });
    const { head, body } = splitHead(await rawGet(s.port, "/file.bin", { range: "bytes=0-99" }));
    expect(head).toMatch(/^HTTP\/1\.1 206/);
    expect(head.toLowerCase()).not.toContain("content-length");
    expect(head.toLowerCase()).toContain("transfer-encoding: chunked");
    expect(body.toString("latin1").endsWith("0\r\n\r\n")).toBe(true);
    const viaClient = await get(s.url(), { range: "bytes=0-99" });
    expect(viaClient.body.equals(content.subarray(0, 100))).toBe(true);
  });

  it("sends a wrong Content-Range when told to, with the asked bytes", async () => {
    const s = await serve({ onRequest: () => ({ contentRange: "bytes 50-59/999" }) });
    const r = await get(s.url(), { range: "bytes=0-9" });
    expect(r.status).toBe(206);
    expect(r.headers["content-range"]).toBe("bytes 50-59/999");
    expect(r.body.equals(content.subarray(0, 10))).toBe(true);
  });

  it("writes extra garbage after the declared length", async () => {
    const s = await serve({ onRequest: () => ({ extraBytes: 50 }) });
    const { head, body } = splitHead(await rawGet(s.port, "/file.bin", { range: "bytes=0-9" }));
    expect(head.toLowerCase()).toContain("content-length: 10");
    expect(body.length).toBe(60);
    expect(body.subarray(0, 10).equals(content.subarray(0, 10))).toBe(true);
    expect(s.requests[0]!.bytesSent).toBe(60);
  });

  it("drops the connection after N body bytes", async () => {
    const s = await serve({ onRequest: (r) => (r.index === 0 ? { dropAfterBytes: 30_000 } : undefined) });
    const res = await request(s.url(), { dispatcher: agent });
    expect(res.statusCode).toBe(200);
    const { received, error } = await readUntilError(res.body);
    expect(error).toBeInstanceOf(Error);
    expect(received.length).toBe(30_000);
    expect(received.equals(content.subarray(0, 30_000))).toBe(true);
    expect(s.requests[0]!.bytesSent).toBe(30_000);
    expect((await get(s.url())).body.equals(content)).toBe(true);
  });

  it("drops right after the headers with dropAfterBytes: 0", async () => {
    const s = await serve({ onRequest: () => ({ dropAfterBytes: 0 }) });
    const res = await request(s.url(), { dispatcher: agent, headers: { range: "bytes=0-99" } });
    expect(res.statusCode).toBe(206);
    const { received, error } = await readUntilError(res.body);
    expect(error).toBeInstanceOf(Error);
    expect(received.length).toBe(0);
  });

  it("holds every answer after N body bytes until release(), then sends the rest; later answers are not held", async () => {
    const s = await serve({ holdAfterBytes: 30_000 });
    const first = await request(s.url(), { dispatcher: agent });
    const second = await request(s.url(), { dispatcher: agent, headers: { range: "bytes=50000-" } });
    const chunks: Buffer[] = [];
    first.body.on("data", (chunk: Buffer) => chunks.push(chunk));
    await until(() => s.held() === 2 && Buffer.concat(chunks).length === 30_000, "both answers held, 30,000 bytes of the first read");
    expect(s.requests.map((r) => r.bytesSent)).toEqual([30_000, 30_000]);
    s.release();
    const rest = Buffer.from(await second.body.arrayBuffer());
    await new Promise((resolve) => first.body.once("end", resolve));
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
    expect(rest.equals(content.subarray(50_000))).toBe(true);
    expect(s.held()).toBe(0);
    expect((await get(s.url())).body.equals(content)).toBe(true);
  });

  it("a Behaviour's holdAfterBytes holds that answer alone; a client leaving a held answer frees it", async () => {
    const s = await serve({ onRequest: (r) => (r.index === 0 ? { holdAfterBytes: 0 } : undefined) });
    const held = await request(s.url(), { dispatcher: agent });
    expect(held.statusCode).toBe(200);
    await until(() => s.held() === 1, "the first answer held before its first byte");
    expect((await get(s.url())).body.equals(content)).toBe(true);
    held.body.destroy();
    await until(() => s.held() === 0, "the held answer freed by its client leaving");
    expect(s.requests[0]!.bytesSent).toBe(0);
  });

  it("stalls after N body bytes until the client gives up", async () => {
    const s = await serve({ onRequest: () => ({ stallAfterBytes: 1000 }) });
    const impatient = new Agent({ bodyTimeout: 200 });
    try {
      const t0 = performance.now();
      const res = await request(s.url(), { dispatcher: impatient });
      const { received, error } = await readUntilError(res.body);
      expect(error).toBeInstanceOf(Error);
      expect(received.length).toBe(1000);
      expect(performance.now() - t0).toBeLessThan(3000);
    } finally {
      await impatient.destroy();
    }
  });

  it("can stall before sending headers", async () => {
    const s = await serve({ onRequest: () => ({ stallBeforeHeaders: true }) });
    const impatient = new Agent({ headersTimeout: 200 });
    try {
      await expect(request(s.url(), { dispatcher: impatient })).rejects.toThrow();
      expect(s.requests).toHaveLength(1);
      expect(s.requests[0]!.status).toBeUndefined();
    } finally {
      await impatient.destroy();
    }
  });

  it("throttles responses, per request or server-wide", async () => {
    const s = await serve({ onRequest: (r) => (r.index === 0 ? { bytesPerSecond: 1 << 20 } : undefined) });
    s.setContent(makeContent(256 * 1024));
    let t0 = performance.now();
    expect((await get(s.url())).body.length).toBe(256 * 1024);
    expect(performance.now() - t0).toBeGreaterThan(150);

    s.bytesPerSecond = 2 << 20;
    t0 = performance.now();
    await get(s.url(), { range: "bytes=0-524287" });
    expect(performance.now() - t0).toBeGreaterThan(75);

    s.bytesPerSecond = undefined;
    t0 = performance.now();
    await get(s.url());
    expect(performance.now() - t0).toBeLessThan(150);
  });

  it("serves a per-request body under the current validators", async () => {
    const other = makeContent(SIZE, 99);
    const s = await serve({ onRequest: (r) => (r.index === 1 ? { body: other } : undefined) });
    const first = await get(s.url(), {}, "HEAD");
    const r = await get(s.url(), { range: "bytes=0-9" });
    expect(r.headers.etag).toBe(first.headers.etag);
    expect(r.body.equals(other.subarray(0, 10))).toBe(true);
  });

  it("gzips when asked and accepted, with ranges over the gzipped bytes", async () => {
    const s = await serve({ onRequest: () => ({ gzip: true }) });
    const whole = await get(s.url(), { "accept-encoding": "gzip" });
    expect(whole.headers["content-encoding"]).toBe("gzip");
    expect(gunzipSync(whole.body).equals(content)).toBe(true);
    const part = await get(s.url(), { "accept-encoding": "gzip", range: "bytes=0-99" });
    expect(part.status).toBe(206);
    expect(part.body.equals(whole.body.subarray(0, 100))).toBe(true);
    expect(part.headers.etag).not.toBe((await get(s.url(), {}, "HEAD")).headers.etag);
    const identity = await get(s.url(), { "accept-encoding": "gzip;q=0, identity" });
    expect(identity.headers["content-encoding"]).toBeUndefined();
    expect(identity.body.equals(content)).toBe(true);
  });

  it("closes promptly with a stalled response open", async () => {
    const s = await serve({ onRequest: () => ({ stallAfterBytes: 10 }) });
    const res = await request(s.url(), { dispatcher: agent });
    const reading = readUntilError(res.body);
    const t0 = performance.now();
    await s.close();
    expect(performance.now() - t0).toBeLessThan(1000);
    const { received, error } = await reading;
    expect(error).toBeInstanceOf(Error);
    expect(received.length).toBe(10);
  });

  it("stops writing quietly when the client goes away mid-body", async () => {
    const s = await serve({ content: makeContent(8 << 20), bytesPerSecond: 4 << 20 });
    const ac = new AbortController();
    const res = await request(s.url(), { dispatcher: agent, signal: ac.signal });
    setTimeout(() => ac.abort(), 100);
    const { error } = await readUntilError(res.body);
    expect(error).toBeInstanceOf(Error);
    await new Promise((r) => setTimeout(r, 100));
    const sent = s.bytesServed();
    expect(sent).toBeLessThan(8 << 20);
    await new Promise((r) => setTimeout(r, 200));
    expect(s.bytesServed()).toBe(sent);
  });
});

describe("faults of servers seen in the wild", () => {
  it("answers a range with 200 and the slice's Content-Range and Content-Length (partialStatus)", async () => {
    const s = await serve({ onRequest: () => ({ partialStatus: 200 }) });
    const r = await get(s.url(), { range: "bytes=0-99" });
    expect(r.status).toBe(200);
    expect(r.headers["content-range"]).toBe(`bytes 0-99/${SIZE}`);
    expect(r.headers["content-length"]).toBe("100");
    expect(r.body.equals(content.subarray(0, 100))).toBe(true);
  });

  it("caps every 206 at N bytes with an honest Content-Range (capBytes)", async () => {
    const s = await serve({ onRequest: () => ({ capBytes: 1000 }) });
    const r = await get(s.url(), { range: "bytes=5000-9999" });
    expect(r.status).toBe(206);
    expect(r.headers["content-range"]).toBe(`bytes 5000-5999/${SIZE}`);
    expect(r.body.equals(content.subarray(5000, 6000))).toBe(true);
  });

  it("says bytes a-b/* on ranged answers while a plain GET is a normal 200 (unknownTotal)", async () => {
    const s = await serve({ onRequest: () => ({ unknownTotal: true }) });
    const ranged = await get(s.url(), { range: "bytes=0-99" });
    expect(ranged.headers["content-range"]).toBe("bytes 0-99/*");
    const plain = await get(s.url());
    expect(plain.status).toBe(200);
    expect(plain.headers["content-length"]).toBe(String(SIZE));
  });

  it("sends a status with a body of its own (text)", async () => {
    const s = await serve({ onRequest: () => ({ status: 403, text: "<Error>Request has expired</Error>", headers: { "content-type": "application/xml" } }) });
    const r = await get(s.url());
    expect(r.status).toBe(403);
    expect(r.headers["content-type"]).toBe("application/xml");
    expect(r.body.toString()).toBe("<Error>Request has expired</Error>");
  });

  it("serves at most maxConcurrent requests at once and answers 503 without Retry-After to the rest", async () => {
    // The two it serves hold until all four have been answered: none can end before the others arrive.
    const s = await serve({ maxConcurrent: 2, holdAfterBytes: 0 });
    const pending = Promise.all([0, 1, 2, 3].map(() => get(s.url(), { range: "bytes=0-39999" })));
    await until(() => s.requests.length === 4 && s.held() === 2, "four requests, two of them served and held");
    s.release();
    const results = await pending;
    expect(results.map((r) => r.status).sort()).toEqual([206, 206, 503, 503]);
    expect(results.every((r) => r.headers["retry-after"] === undefined)).toBe(true);
    expect(s.peakConcurrent()).toBe(2);
    // Once they are done (the server sees the close a moment after the client), the next one is served.
    await until(() => s.servingNow() === 0, "the server to see both answers closed");
    expect((await get(s.url(), { range: "bytes=0-9" })).status).toBe(206);
  });
});

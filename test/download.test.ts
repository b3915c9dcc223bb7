import { readFile, readdir, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  AbortError,
  download,
  downloadAll,
  FileError,
  HttpStatusError,
  IntegrityError,
  NetworkError,
  RemoteChangedError,
  type DownloadOptions,
} from "../src/index.js";
import type { InternalOptions } from "../src/options.js";
import { IntervalSet, type Interval } from "../src/ranges.js";
import { checkpointedBytes } from "./support/checkpoint.js";
import { makeContent, sha256 } from "./support/content.js";
import { defaultEtag, type RangeServer } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Range servers on 127.0.0.1, each closed after its test. */
const serve = rangeServer;

/** Options that keep tests quick: small ranges, short timeouts, warnings collected. */
function quick(extra: DownloadOptions = {}): DownloadOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return { minSplit: 64 * KiB, timeout: 2, retries: 3, onWarning: (message) => warnings.push(message), warnings, ...extra };
}

/** The union of the byte ranges asked for, from request `from` on. */
function askedRanges(server: RangeServer, size: number, from = 0): Interval[] {
  const asked = new IntervalSet();
  for (const request of server.requests.slice(from)) {
    if (request.range) asked.add(request.range.start, Math.min(request.range.end ?? size - 1, size - 1));
  }
  return asked.toArray();
}

/**
 * Checkpoints ten times a second, not once: the interrupted run is stopped as soon as one
 * holds bytes. download() hands its options to the engine, which takes `intervals`.
 */
const CHECKPOINT_OFTEN: Pick<InternalOptions, "intervals"> = { intervals: { progressMs: 50, checkpointMs: 100 } };

/**
 * Starts a download from `server`, whose answers hold after `bytes` (`holdAfterBytes`),
 * and aborts it once the manifest records some of them; then releases the server. The
 * hold, not a throttle and a fixed sleep, keeps the download unfinished until then.
 */
async function interruptAfter(server: RangeServer, output: string, bytes: number, options: DownloadOptions = {}) {
  const controller = new AbortController();
  const pending = download(server.url(), { ...quick(options), output, signal: controller.signal, ...CHECKPOINT_OFTEN } as DownloadOptions);
  await until(() => server.bytesServed() >= bytes && server.held() > 0, `${bytes} bytes served and an answer held`);
  await until(async () => (await checkpointedBytes(output)) > 0, "a checkpoint with bytes");
  controller.abort();
  await expect(pending).rejects.toBeInstanceOf(AbortError);
  server.release();
  const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: [number, number][] };
  return manifest;
}

describe("a fresh download", () => {
  it("fetches the file with parallel 206 ranges into a sparse .part, then renames it into place", async () => {
    const content = makeContent(3 * MiB + 17);
    const server = await serve({ content, bytesPerSecond: 2 * MiB });
    const dir = await tempDir();
    const pending = download(server.url(), { ...quick({ connections: 4, minSplit: 256 * KiB }), dir });
    await until(() => server.bytesServed() > 512 * KiB, "512 KiB served");
    const partWhileRunning = await stat(join(dir, "file.bin.part"));
    const result = await pending;
    expect(partWhileRunning.size).toBe(content.length);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(await readdir(dir)).toEqual(["file.bin"]);
    const ranged = server.requests.filter((request) => request.status === 206);
    expect(ranged.length).toBeGreaterThanOrEqual(4);
    expect(new Set(ranged.map((request) => request.range?.start)).size).toBe(ranged.length);
    expect((await stat(result.path)).mtime.toISOString()).toBe("2024-01-02T03:04:05.000Z");
    expect(result).toMatchObject({
      url: server.url(),
      path: join(dir, "file.bin"),
      status: "downloaded",
      size: content.length,
      resumed: false,
      restartedBecauseChanged: false,
      error: null,
    });
    expect(result.elapsedMs).toBeGreaterThan(0);
    // At least the file; a little more when a steal cut a response short.
    expect(result.bytesTransferred).toBeGreaterThanOrEqual(content.length);
    expect(result.bytesTransferred).toBeLessThan(content.length * 1.2);
    expect(result.http.requests).toBe(server.requests.length);
    expect(result.http.statusCounts).toEqual({ "206": ranged.length });
    expect(result.http.latencyMs.p50).toBeGreaterThan(0);
  });

  it("probes with a ranged GET, never HEAD, asking for identity encoding, and keeps the probe's body", async () => {
    const content = makeContent(1 * MiB);
    const server = await serve({ content, contentDisposition: 'attachment; filename="report.pdf"' });
    const dir = await tempDir();
    const result = await download(server.url("/download?id=7"), { ...quick({ connections: 4, minSplit: 128 * KiB }), dir });
    const [probe, ...rest] = server.requests;
    expect(probe?.method).toBe("GET");
    expect(probe?.range).toEqual({ start: 0, end: 128 * KiB - 1 });
    expect(server.requests.every((request) => request.headers["accept-encoding"] === "identity")).toBe(true);
    expect(server.requests.every((request) => request.method === "GET")).toBe(true);
    // Nobody asks again for the probe's bytes.
    expect(rest.every((request) => (request.range?.start ?? 0) >= 128 * KiB)).toBe(true);
    expect(result.path).toBe(join(dir, "report.pdf"));
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("needs no second request when the file is smaller than min-split", async () => {
    const content = makeContent(10 * KiB);
    const server = await serve({ content });
    const result = await download(server.url(), { ...quick(), dir: await tempDir() });
    expect(server.requests).toHaveLength(1);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("sends If-Range with the strong ETag on every request after the probe", async () => {
    const content = makeContent(1 * MiB);
    const server = await serve({ content });
    await download(server.url(), { ...quick({ connections: 4 }), dir: await tempDir() });
    const [probe, ...rest] = server.requests;
    expect(probe?.headers["if-range"]).toBeUndefined();
    expect(rest.length).toBeGreaterThan(0);
    expect(rest.every((request) => request.headers["if-range"] === defaultEtag(content))).toBe(true);
  });

  it("falls back to Last-Modified for If-Range when the ETag is weak", async () => {
    const content = makeContent(1 * MiB);
    const server = await serve({ content, etag: 'W/"weak"' });
    await download(server.url(), { ...quick({ connections: 4 }), dir: await tempDir() });
    const rest = server.requests.slice(1);
    expect(rest.every((request) => request.headers["if-range"] === "Tue, 02 Jan 2024 03:04:05 GMT")).toBe(true);
  });

  it("follows redirects and fetches the ranges from the final URL", async () => {
    const content = makeContent(512 * KiB);
    const origin = await serve({ content });
    const front = await serve({
      content: Buffer.alloc(0),
      onRequest: () => ({ redirectTo: origin.url("/real.bin"), status: 302 }),
    });
    const result = await download(front.url("/latest"), { ...quick({ connections: 4 }), dir: await tempDir() });
    expect(front.requests).toHaveLength(1);
    expect(origin.requests.every((request) => request.path === "/real.bin")).toBe(true);
    expect(result.path.endsWith("latest")).toBe(true);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });
});

describe("redirect rules", () => {
  it("drops Authorization, Cookie and the user's headers when a redirect changes origin", async () => {
    const content = makeContent(100 * KiB);
    const other = await serve({ content });
    const first = await serve({ content, onRequest: () => ({ redirectTo: other.url(), status: 307 }) });
    await download(first.url(), {
      ...quick(),
      dir: await tempDir(),
      headers: { Authorization: "Bearer secret", Cookie: "a=b", "X-Api-Key": "k" },
    });
    expect(first.requests[0]?.headers["authorization"]).toBe("Bearer secret");
    expect(first.requests[0]?.headers["x-api-key"]).toBe("k");
    for (const request of other.requests) {
      expect(request.headers["authorization"]).toBeUndefined();
      expect(request.headers["cookie"]).toBeUndefined();
      expect(request.headers["x-api-key"]).toBeUndefined();
    }
  });

  it("keeps the user's headers on a same-origin redirect", async () => {
    const content = makeContent(100 * KiB);
    const server = await serve({
      content,
      onRequest: (request) => (request.path === "/a" ? { redirectTo: "/b", status: 301 } : undefined),
    });
    await download(server.url("/a"), { ...quick(), dir: await tempDir(), headers: { Authorization: "Bearer s" } });
    expect(server.requests.length).toBeGreaterThan(1);
    expect(server.requests.every((request) => request.headers["authorization"] === "Bearer s")).toBe(true);
  });

  it("fails clearly on a redirect loop", async () => {
    const server = await serve({
      content: Buffer.alloc(10),
      onRequest: (request) => ({ redirectTo: request.path === "/a" ? "/b" : "/a", status: 302 }),
    });
    const failure = download(server.url("/a"), { ...quick(), dir: await tempDir() });
    await expect(failure).rejects.toBeInstanceOf(HttpStatusError);
    await expect(failure).rejects.toMatchObject({ code: "ERR_REDIRECT_LOOP", exitCode: 3 });
  });

  it("gives up after 10 redirects", async () => {
    const server = await serve({
      content: Buffer.alloc(10),
      onRequest: (request) => ({ redirectTo: `/hop${request.index + 1}`, status: 302 }),
    });
    await expect(download(server.url("/hop0"), { ...quick(), dir: await tempDir() })).rejects.toMatchObject({
      code: "ERR_TOO_MANY_REDIRECTS",
    });
    expect(server.requests).toHaveLength(11);
  });

  it("refuses a redirect to a scheme other than http or https", async () => {
    const server = await serve({ content: Buffer.alloc(10), onRequest: () => ({ redirectTo: "file:///etc/passwd" }) });
    await expect(download(server.url(), { ...quick(), dir: await tempDir() })).rejects.toMatchObject({
      code: "ERR_BAD_REDIRECT",
    });
  });
});

describe("servers without ranges or length", () => {
  it("fetches the whole file as one stream when the server ignores ranges", async () => {
    const content = makeContent(300 * KiB);
    const server = await serve({ content, acceptRanges: false });
    const result = await download(server.url(), { ...quick({ connections: 8 }), dir: await tempDir() });
    expect(server.requests).toHaveLength(1);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("fetches a body without Content-Length as one stream", async () => {
    const content = makeContent(200 * KiB);
    const server = await serve({ content, onRequest: () => ({ ignoreRange: true, noLength: true }) });
    const result = await download(server.url(), { ...quick(), dir: await tempDir() });
    expect(result.size).toBe(content.length);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("downloads a zero-length file", async () => {
    const server = await serve({ content: Buffer.alloc(0) });
    const result = await download(server.url(), { ...quick(), dir: await tempDir() });
    expect(result.size).toBe(0);
    expect((await stat(result.path)).size).toBe(0);
  });

  it("retries a single stream from the start after a broken connection", async () => {
    const content = makeContent(200 * KiB);
    const server = await serve({
      content,
      acceptRanges: false,
      onRequest: (request) => (request.index === 0 ? { dropAfterBytes: 50 * KiB } : undefined),
    });
    const result = await download(server.url(), { ...quick(), dir: await tempDir() });
    expect(server.requests).toHaveLength(2);
    expect(result.http.retries).toBe(1);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });
});

describe("a server that refuses Range (400) and answers a plain GET with a slice (bytes 0-99/1000)", () => {
  const content = makeContent(1000);
  const sliceServer = () =>
    serve({
      content,
      onRequest: (request) =>
        request.range ? { status: 400 } : { body: content.subarray(0, 100), contentRange: `bytes 0-99/${content.length}` },
    });
  // A leaked host connection would leave a request waiting for ever: the abort bounds the wait.
  const bounded = () => AbortSignal.timeout(15_000);

  it("gives its host connection back after each refused answer, so every retry is sent", async () => {
    const server = await sliceServer();
    const pending = download(server.url(), { ...quick({ retries: 3, maxConnectionsPerHost: 1 }), dir: await tempDir(), signal: bounded() });
    await expect(pending).rejects.toMatchObject({ code: "ERR_BAD_RANGE" });
    expect(server.requests.filter((request) => request.range === undefined)).toHaveLength(3);
  });

  it("leaves the host's one connection free for the next file of a batch", async () => {
    const server = await sliceServer();
    const urls = [server.url("/a"), server.url("/b"), server.url("/c")];
    const results = await downloadAll(urls, { ...quick({ retries: 0, maxConnectionsPerHost: 1 }), jobs: 1, dir: await tempDir(), signal: bounded() });
    expect(results.map((result) => result.error?.code)).toEqual(["ERR_BAD_RANGE", "ERR_BAD_RANGE", "ERR_BAD_RANGE"]);
  });
});

describe("checkpoints and resume", () => {
  it("never lists a byte in the manifest that is not in the .part file", async () => {
    const content = makeContent(2 * MiB);
    const server = await serve({ content, holdAfterBytes: 300 * KiB });
    const output = join(await tempDir(), "big.bin");
    const manifest = await interruptAfter(server, output, 300 * KiB, { connections: 4 });
    expect(manifest.done.length).toBeGreaterThan(0);
    const part = await readFile(`${output}.part`);
    expect(part.length).toBe(content.length);
    for (const [start, end] of manifest.done) {
      expect(part.subarray(start, end + 1).equals(content.subarray(start, end + 1))).toBe(true);
    }
    expect(await readdir(join(output, ".."))).not.toContain("big.bin.part.lock");
  });

  it("resumes by asking only for the bytes the manifest lacks", async () => {
    const content = makeContent(2 * MiB);
    const server = await serve({ content, holdAfterBytes: 300 * KiB });
    const output = join(await tempDir(), "big.bin");
    const manifest = await interruptAfter(server, output, 300 * KiB, { connections: 4 });
    const done = IntervalSet.from(manifest.done);
    const before = server.requests.length;
    const result = await download(server.url(), { ...quick({ connections: 4 }), output });
    expect(result.status).toBe("resumed");
    expect(result.resumed).toBe(true);
    expect(askedRanges(server, content.length, before)).toEqual(done.missing(content.length));
    expect(server.requests[before]?.headers["if-range"]).toBe(defaultEtag(content));
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("resumes without -o the same way: once the answer names the file, it asks again for only the missing bytes, with If-Range", async () => {
    const content = makeContent(2 * MiB);
    const server = await serve({ content, holdAfterBytes: 300 * KiB });
    const dir = await tempDir();
    const named = join(dir, basename(new URL(server.url()).pathname));
    const manifest = await interruptAfter(server, named, 300 * KiB, { connections: 4 });
    const missing = IntervalSet.from(manifest.done).missing(content.length);
    // Bytes on disk that were fetched again would now show: the server's copy of them
    // differs (same validators, so only a second fetch could bring these bytes in).
    const marked = Buffer.from(content);
    for (const [start, end] of manifest.done) marked.fill(0x21, start, end + 1);
    server.setContent(marked, { etag: defaultEtag(content) });
    const before = server.requests.length;
    const result = await download(server.url(), { ...quick({ connections: 4 }), dir });
    expect(result.path).toBe(named);
    expect(result.status).toBe("resumed");
    // The name from the URL holds a partial state for this URL: the first probe knows it,
    // and every request, that probe's too, asks only for missing bytes.
    expect(askedRanges(server, content.length, before)).toEqual(missing);
    expect(server.requests[before]?.headers["if-range"]).toBe(defaultEtag(content));
    expect(sha256(await readFile(named))).toBe(sha256(content));
  });

  it("continues a broken connection from its last byte, not from the start of its range", async () => {
    const content = makeContent(1 * MiB);
    const server = await serve({
      content,
      // Paced, so the client has read every byte before the connection closes.
      onRequest: (request) => (request.index === 1 ? { dropAfterBytes: 40 * KiB, bytesPerSecond: 512 * KiB } : undefined),
    });
    const result = await download(server.url(), { ...quick({ connections: 1, minSplit: 128 * KiB }), dir: await tempDir() });
    expect(server.requests[1]?.range?.start).toBe(128 * KiB);
    expect(server.requests[2]?.range?.start).toBe(128 * KiB + 40 * KiB);
    expect(result.http.retries).toBe(1);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("finishes without fetching when the manifest already has every byte (416 past the end)", async () => {
    const content = makeContent(300 * KiB);
    const server = await serve({ content });
    const output = join(await tempDir(), "done.bin");
    await writeFile(`${output}.part`, content);
    await writeFile(
      `${output}.part.json`,
      JSON.stringify({
        version: 1,
        url: server.url(),
        finalUrl: server.url(),
        size: content.length,
        etag: defaultEtag(content),
        lastModified: "Tue, 02 Jan 2024 03:04:05 GMT",
        done: [[0, content.length - 1]],
      }),
    );
    const result = await download(server.url(), { ...quick(), output });
    expect(server.requests.map((request) => request.status)).toEqual([416]);
    expect(result.status).toBe("resumed");
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("warns about a corrupt manifest and starts over", async () => {
    const content = makeContent(300 * KiB);
    const server = await serve({ content });
    const output = join(await tempDir(), "x.bin");
    await writeFile(`${output}.part`, Buffer.alloc(content.length, 0x55));
    await writeFile(`${output}.part.json`, '{"version":1,"url":');
    const options = quick();
    const result = await download(server.url(), { ...options, output });
    expect(options.warnings.join("\n")).toMatch(/not valid JSON.*starting over/);
    expect(result.resumed).toBe(false);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("does not trust a manifest of another URL or with bytes outside the file", async () => {
    const content = makeContent(300 * KiB);
    const server = await serve({ content });
    const output = join(await tempDir(), "x.bin");
    for (const manifest of [
      { url: "http://127.0.0.1:1/other", size: content.length, done: [[0, 99]] },
      { url: server.url(), size: content.length, done: [[0, content.length + 5]] },
    ]) {
      await writeFile(`${output}.part`, Buffer.alloc(content.length, 0x55));
      await writeFile(
        `${output}.part.json`,
        JSON.stringify({ version: 1, finalUrl: server.url(), etag: null, lastModified: null, ...manifest }),
      );
      const options = quick({ force: false });
      await download(server.url(), { ...options, output });
      expect(options.warnings).toHaveLength(1);
      expect(sha256(await readFile(output))).toBe(sha256(content));
      await writeFile(output, "");
      await import("node:fs/promises").then((fs) => fs.unlink(output));
    }
  });

  it("starts over when the .part was truncated by someone else", async () => {
    const content = makeContent(1 * MiB);
    const server = await serve({ content, holdAfterBytes: 200 * KiB });
    const output = join(await tempDir(), "t.bin");
    await interruptAfter(server, output, 200 * KiB, { connections: 2 });
    await writeFile(`${output}.part`, Buffer.alloc(10));
    const options = quick();
    const result = await download(server.url(), { ...options, output });
    expect(options.warnings.join("\n")).toMatch(/changed by someone else/);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });
});

describe("change detection", () => {
  it("restarts from scratch when the file changed (same size, new bytes) between runs", async () => {
    const content = makeContent(1 * MiB, 1);
    const server = await serve({ content, holdAfterBytes: 200 * KiB });
    const output = join(await tempDir(), "c.bin");
    await interruptAfter(server, output, 200 * KiB, { connections: 2 });
    const next = makeContent(1 * MiB, 2);
    server.setContent(next);
    const options = quick();
    const result = await download(server.url(), { ...options, output });
    expect(result.restartedBecauseChanged).toBe(true);
    expect(result.resumed).toBe(false);
    expect(result.status).toBe("downloaded");
    expect(options.warnings.join("\n")).toMatch(/changed/);
    expect(sha256(await readFile(output))).toBe(sha256(next));
  });

  it("restarts when a 416 reports a size that disagrees with the manifest", async () => {
    const content = makeContent(1 * MiB, 1);
    const server = await serve({ content, holdAfterBytes: 200 * KiB });
    const output = join(await tempDir(), "c.bin");
    await interruptAfter(server, output, 200 * KiB, { connections: 1 });
    // A server whose validators did not move with the file: only the 416's size tells.
    const smaller = makeContent(16 * KiB, 3);
    server.setContent(smaller, { etag: defaultEtag(content), lastModified: new Date("2024-01-02T03:04:05Z") });
    const before = server.requests.length;
    const result = await download(server.url(), { ...quick(), output });
    expect(server.requests[before]?.status).toBe(416);
    expect(result.restartedBecauseChanged).toBe(true);
    expect(sha256(await readFile(output))).toBe(sha256(smaller));
  });

  it("restarts when the file changes while workers are mid-flight, never mixing versions", async () => {
    const content = makeContent(2 * MiB, 1);
    const next = makeContent(2 * MiB, 4);
    const server = await serve({ content, bytesPerSecond: 1 * MiB });
    // Each old-version range breaks after 200 KiB, so every worker must ask again; the
    // file changes once the workers are under way (past the 128 KiB probe), before any
    // of them can reach that break, however slow the machine.
    let changed = false;
    server.onRequest = (request) => (!changed && request.range && request.range.start > 0 ? { dropAfterBytes: 200 * KiB } : undefined);
    const watch = setInterval(() => {
      if (server.bytesServed() > 160 * KiB) {
        clearInterval(watch);
        changed = true;
        server.setContent(next);
      }
    }, 5);
    const result = await download(server.url(), { ...quick({ connections: 4, minSplit: 128 * KiB }), dir: await tempDir() }).finally(() =>
      clearInterval(watch),
    );
    expect(result.restartedBecauseChanged).toBe(true);
    expect(sha256(await readFile(result.path))).toBe(sha256(next));
  });

  it("throws RemoteChangedError instead of restarting when asked to", async () => {
    const content = makeContent(1 * MiB, 1);
    const server = await serve({ content, holdAfterBytes: 200 * KiB });
    const output = join(await tempDir(), "c.bin");
    await interruptAfter(server, output, 200 * KiB, { connections: 2 });
    server.setContent(makeContent(1 * MiB, 2));
    await expect(download(server.url(), { ...quick(), output, restartOnChange: false })).rejects.toBeInstanceOf(
      RemoteChangedError,
    );
  });

  it("detects a server that ignores If-Range by the changed ETag on a 206", async () => {
    const content = makeContent(1 * MiB, 1);
    const server = await serve({ content });
    const next = makeContent(1 * MiB, 5);
    server.onRequest = (request) => {
      // Lies: serves the new bytes under a new ETag even though If-Range named the old one.
      if (request.index === 1) return { body: next, headers: { etag: '"new"' } };
      return undefined;
    };
    const result = await download(server.url(), { ...quick({ connections: 2, minSplit: 128 * KiB }), dir: await tempDir() });
    expect(result.restartedBecauseChanged).toBe(true);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });
});

describe("retries", () => {
  it("honours Retry-After on 503 and then succeeds", async () => {
    const content = makeContent(50 * KiB);
    const server = await serve({
      content,
      onRequest: (request) => (request.index === 0 ? { status: 503, retryAfter: "1" } : undefined),
    });
    const started = Date.now();
    const result = await download(server.url(), { ...quick(), dir: await tempDir() });
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(result.http.retries).toBe(1);
    expect(result.http.statusCounts).toEqual({ "503": 1, "206": 1 });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("retries 429, 500, 502, 504 and 408 on a range request", async () => {
    const content = makeContent(512 * KiB);
    const statuses = [429, 500, 502, 504, 408];
    const server = await serve({
      content,
      onRequest: (request) => {
        const status = statuses[request.index - 1];
        return status ? { status, retryAfter: "0" } : undefined;
      },
    });
    const result = await download(server.url(), { ...quick({ connections: 1, minSplit: 128 * KiB, retries: 6 }), dir: await tempDir() });
    expect(result.http.retries).toBe(5);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("fails at once on 404 with the status, the URL and the server's reason", async () => {
    const server = await serve({ content: Buffer.alloc(10), onRequest: () => ({ status: 404 }) });
    const failure = download(server.url(), { ...quick(), dir: await tempDir() });
    await expect(failure).rejects.toBeInstanceOf(HttpStatusError);
    await expect(failure).rejects.toMatchObject({ status: 404, exitCode: 3 });
    await expect(failure).rejects.toThrow(new RegExp(`HTTP 404 from ${server.url()}.*Not Found`));
    expect(server.requests).toHaveLength(1);
  });

  it("keeps the partial state when a later range answers 403", async () => {
    const content = makeContent(1 * MiB);
    const server = await serve({ content, bytesPerSecond: 512 * KiB });
    // The probe and the second connection's first range are served; every later range is refused.
    server.onRequest = (request) => (request.index >= 2 ? { status: 403 } : undefined);
    const output = join(await tempDir(), "f.bin");
    await expect(download(server.url(), { ...quick({ connections: 2, minSplit: 128 * KiB }), output })).rejects.toMatchObject({
      status: 403,
    });
    const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: unknown[] };
    expect(manifest.done.length).toBeGreaterThan(0);
    server.onRequest = undefined;
    server.bytesPerSecond = undefined;
    const result = await download(server.url(), { ...quick({ connections: 2 }), output });
    expect(result.resumed).toBe(true);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("gives up on a range after `retries` attempts that brought no byte", async () => {
    const server = await serve({ content: makeContent(512 * KiB), onRequest: (r) => (r.index > 0 ? { status: 503 } : undefined) });
    const failure = download(server.url(), { ...quick({ connections: 1, minSplit: 128 * KiB, retries: 3 }), dir: await tempDir() });
    await expect(failure).rejects.toMatchObject({ status: 503 });
    expect(server.requests).toHaveLength(4);
  });

  it("resets the count when an attempt made progress", async () => {
    const content = makeContent(512 * KiB);
    const server = await serve({
      content,
      onRequest: (request) => (request.index > 0 && request.index <= 6 ? { dropAfterBytes: 16 * KiB } : undefined),
    });
    const result = await download(server.url(), { ...quick({ connections: 1, minSplit: 128 * KiB, retries: 2 }), dir: await tempDir() });
    expect(result.http.retries).toBe(6);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("does not write a 206 whose Content-Range is not what was asked, and gives up with IntegrityError", async () => {
    const content = makeContent(512 * KiB);
    const server = await serve({
      content,
      onRequest: (request) => (request.index > 0 ? { contentRange: `bytes 0-99/${content.length}` } : undefined),
    });
    const output = join(await tempDir(), "w.bin");
    const failure = download(server.url(), { ...quick({ connections: 1, minSplit: 128 * KiB, retries: 2 }), output });
    await expect(failure).rejects.toBeInstanceOf(IntegrityError);
    await expect(failure).rejects.toMatchObject({ exitCode: 5, code: "ERR_BAD_RANGE" });
    const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: [number, number][] };
    expect(manifest.done).toEqual([[0, 128 * KiB - 1]]);
  });

  it("recovers from a wrong Content-Range once", async () => {
    const content = makeContent(512 * KiB);
    const server = await serve({
      content,
      onRequest: (request) => (request.index === 1 ? { contentRange: `bytes 5-99/${content.length}` } : undefined),
    });
    const result = await download(server.url(), { ...quick({ connections: 1, minSplit: 128 * KiB }), dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("never hangs on a server that sends headers and then nothing", async () => {
    const content = makeContent(512 * KiB);
    const server = await serve({
      content,
      onRequest: (request) => (request.index === 1 ? { stallAfterBytes: 1000 } : undefined),
    });
    const result = await download(server.url(), { ...quick({ connections: 1, minSplit: 128 * KiB, timeout: 0.5 }), dir: await tempDir() });
    expect(result.http.retries).toBe(1);
    expect(server.requests[2]?.range?.start).toBe(128 * KiB + 1000);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("fails with NetworkError when the server never answers", async () => {
    const server = await serve({ content: Buffer.alloc(10), onRequest: () => ({ stallBeforeHeaders: true }) });
    const started = Date.now();
    const failure = download(server.url(), { ...quick({ timeout: 0.3, retries: 2 }), dir: await tempDir() });
    await expect(failure).rejects.toBeInstanceOf(NetworkError);
    await expect(failure).rejects.toMatchObject({ exitCode: 4, code: "ERR_TIMEOUT" });
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it("fails with NetworkError when nothing listens", async () => {
    const server = await serve({ content: Buffer.alloc(10) });
    const url = server.url();
    await server.close();
    await expect(download(url, { ...quick({ retries: 2 }), dir: await tempDir() })).rejects.toMatchObject({ exitCode: 4 });
  });
});

describe("the output and its lock", () => {
  it("refuses to overwrite an existing output unless forced", async () => {
    const content = makeContent(10 * KiB);
    const server = await serve({ content });
    const output = join(await tempDir(), "exists.bin");
    await writeFile(output, "mine");
    await expect(download(server.url(), { ...quick(), output })).rejects.toMatchObject({ code: "ERR_EXISTS", exitCode: 6 });
    expect(server.requests).toHaveLength(0);
    expect(await readFile(output, "utf8")).toBe("mine");
    await download(server.url(), { ...quick(), output, force: true });
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("refuses a second download of the same output while the first runs", async () => {
    // Held after 16 KiB, less than any range of the first's (8 connections, 64 KiB each): it cannot finish first.
    const server = await serve({ content: makeContent(512 * KiB), holdAfterBytes: 16 * KiB });
    const output = join(await tempDir(), "one.bin");
    const controller = new AbortController();
    const first = download(server.url(), { ...quick(), output, signal: controller.signal });
    await until(() => server.held() > 0, "the first download's answer held");
    const second = download(server.url(), { ...quick(), output });
    await expect(second).rejects.toBeInstanceOf(FileError);
    await expect(second).rejects.toMatchObject({ code: "ERR_LOCKED", exitCode: 6 });
    controller.abort();
    await expect(first).rejects.toBeInstanceOf(AbortError);
  });

  it("takes over a lock left by a process that is gone", async () => {
    const content = makeContent(10 * KiB);
    const server = await serve({ content });
    const output = join(await tempDir(), "stale.bin");
    const { execFileSync } = await import("node:child_process");
    const deadPid = Number(execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]));
    const { hostname } = await import("node:os");
    await writeFile(`${output}.part.lock`, JSON.stringify({ pid: deadPid, host: hostname() }));
    await download(server.url(), { ...quick(), output });
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(await readdir(join(output, ".."))).toEqual(["stale.bin"]);
  });

  it("names the output after the URL's last segment, or `download`", async () => {
    const server = await serve({ content: makeContent(1 * KiB) });
    const dir = await tempDir();
    expect((await download(server.url("/a/b/My%20File.tar.gz?x=1"), { ...quick(), dir })).path).toBe(join(dir, "My File.tar.gz"));
    expect((await download(server.url("/"), { ...quick(), dir })).path).toBe(join(dir, "download"));
  });
});

describe("output and dir", () => {
  it("takes an output as given, relative to the current directory; dir places only names from the server or the URL", async () => {
    const content = makeContent(10 * KiB);
    const server = await serve({ content });
    const cwd = await tempDir();
    const dir = join(cwd, "downloads");
    const previous = process.cwd();
    process.chdir(cwd);
    try {
      const given = await download(server.url("/a.bin"), { ...quick(), dir, output: "mine.bin" });
      expect(given.path).toBe(join(cwd, "mine.bin"));
      const named = await download(server.url("/b.bin"), { ...quick(), dir });
      expect(named.path).toBe(join(dir, "b.bin"));
    } finally {
      process.chdir(previous);
    }
    expect(sha256(await readFile(join(cwd, "mine.bin")))).toBe(sha256(content));
  });
});

describe("abort", () => {
  it("stops cleanly with state saved, rejects with AbortError, and the next call resumes", async () => {
    const content = makeContent(1 * MiB);
    const server = await serve({ content, holdAfterBytes: 128 * KiB });
    const output = join(await tempDir(), "a.bin");
    const controller = new AbortController();
    let bytesDone = 0;
    const pending = download(server.url(), { ...quick({ connections: 2 }), output, signal: controller.signal, onProgress: (progress) => (bytesDone = progress.bytesDone) });
    await until(() => bytesDone > 100 * KiB && server.held() > 0, "100 KiB taken in and an answer held");
    controller.abort();
    const error = await pending.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AbortError);
    expect((error as AbortError).exitCode).toBe(130);
    expect(error).toMatchObject({ kept: "state", message: "interrupted; state saved, run again to resume" });
    const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: [number, number][] };
    // The final checkpoint holds even bytes received after the last periodic one.
    expect(manifest.done.reduce((sum, [start, end]) => sum + end - start + 1, 0)).toBeGreaterThan(0);
    expect(await readdir(join(output, ".."))).toEqual(["a.bin.part", "a.bin.part.json"]);
    server.release();
    const result = await download(server.url(), { ...quick({ connections: 2 }), output });
    expect(result.resumed).toBe(true);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("from a server without ranges, rejects saying nothing was saved, and leaves no .part", async () => {
    const server = await serve({ content: makeContent(1 * MiB), holdAfterBytes: 128 * KiB, acceptRanges: false });
    const dir = await tempDir();
    const controller = new AbortController();
    let bytesDone = 0;
    const pending = download(server.url("/plain.bin"), { ...quick(), dir, signal: controller.signal, onProgress: (progress) => (bytesDone = progress.bytesDone) });
    await until(() => bytesDone > 100 * KiB && server.held() > 0, "100 KiB taken in and the answer held");
    controller.abort();
    const error = await pending.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AbortError);
    expect(error).toMatchObject({
      kept: "nothing",
      message: "interrupted; nothing was saved (this server does not serve ranges): run again to start over",
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it("rejects at once when the signal is already aborted", async () => {
    const server = await serve({ content: makeContent(1 * KiB) });
    await expect(download(server.url(), { ...quick(), dir: await tempDir(), signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: "AbortError",
      kept: "not-started",
    });
    expect(server.requests).toHaveLength(0);
  });
});

describe("verification and conditional updates", () => {
  it("verifies a checksum before the output appears", async () => {
    const content = makeContent(300 * KiB);
    const server = await serve({ content });
    const result = await download(server.url(), { ...quick(), dir: await tempDir(), checksum: `sha256=${sha256(content)}` });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });

  it("on a checksum mismatch leaves no output and removes the .part so a re-run fetches clean bytes", async () => {
    const content = makeContent(300 * KiB);
    const server = await serve({ content });
    const dir = await tempDir();
    const failure = download(server.url(), { ...quick(), dir, checksum: `sha256=${"0".repeat(64)}` });
    await expect(failure).rejects.toBeInstanceOf(IntegrityError);
    await expect(failure).rejects.toMatchObject({ code: "ERR_CHECKSUM", exitCode: 5 });
    expect(await readdir(dir)).toEqual([]);
  });

  it("with ifChanged, answers up-to-date on 304 and leaves the file untouched", async () => {
    const content = makeContent(100 * KiB);
    const server = await serve({ content });
    const dir = await tempDir();
    const first = await download(server.url(), { ...quick(), dir, ifChanged: true });
    expect(await readFile(`${first.path}.etag`, "utf8")).toBe(`${defaultEtag(content)}\n`);
    const before = server.requests.length;
    const second = await download(server.url(), { ...quick(), dir, ifChanged: true });
    expect(second.status).toBe("up-to-date");
    expect(server.requests[before]?.headers["if-none-match"]).toBe(defaultEtag(content));
    expect(server.requests[before]?.headers["if-modified-since"]).toBe("Tue, 02 Jan 2024 03:04:05 GMT");
    expect(server.requests[before]?.status).toBe(304);
  });

  it("with ifChanged, replaces the file only once the new version is complete", async () => {
    const content = makeContent(100 * KiB, 1);
    const server = await serve({ content });
    const dir = await tempDir();
    const first = await download(server.url(), { ...quick(), dir, ifChanged: true });
    const next = makeContent(150 * KiB, 2);
    server.setContent(next);
    const second = await download(server.url(), { ...quick(), dir, ifChanged: true });
    expect(second.status).toBe("downloaded");
    expect(second.path).toBe(first.path);
    expect(sha256(await readFile(second.path))).toBe(sha256(next));
  });

  it("keeps the total rate under limitRate", async () => {
    const content = makeContent(1536 * KiB);
    const server = await serve({ content });
    const started = Date.now();
    await download(server.url(), { ...quick({ connections: 4, minSplit: 128 * KiB }), dir: await tempDir(), limitRate: 1 * MiB });
    // 1.5 MiB at 1 MiB/s cannot take less than about 1.4 s (the bucket starts empty).
    expect(Date.now() - started).toBeGreaterThanOrEqual(1300);
  });
});

describe("a crash during the finish step", () => {
  it("finds the finished file when the crash came after the rename, and only tidies up", async () => {
    const content = makeContent(300 * KiB);
    const server = await serve({ content });
    const output = join(await tempDir(), "f.bin");
    await writeFile(output, content);
    await writeFile(
      `${output}.part.json`,
      JSON.stringify({
        version: 1,
        url: server.url(),
        finalUrl: server.url(),
        size: content.length,
        etag: defaultEtag(content),
        lastModified: null,
        done: [[0, content.length - 1]],
      }),
    );
    const result = await download(server.url(), { ...quick(), output });
    expect(result.status).toBe("up-to-date");
    expect(server.requests).toHaveLength(0);
    expect(await readdir(join(output, ".."))).toEqual(["f.bin"]);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });
});

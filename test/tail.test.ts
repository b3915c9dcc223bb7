import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, onTestFinished } from "vitest";
import { AbortError, download, type DownloadOptions } from "../src/index.js";
import type { InternalOptions } from "../src/options.js";
import { RATE_WINDOW_MS } from "../src/rates.js";
import { SLOW_CHECKS } from "../src/tail.js";
import { makeContent, sha256 } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { rangeServer as serve } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;
function quick(extra: DownloadOptions = {}): DownloadOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return { minSplit: 256 * KiB, timeout: 30, retries: 3, onWarning: (message) => warnings.push(message), warnings, ...extra };
}

/**
 * `quick` on a fake clock flowing at ten times real time for the test, bytes still
 * arriving in real time: the rescue's three-second measure and its once-a-second
 * checks, the hedge's and the backoffs pass in tenths of real seconds, and an answer
 * deadline of an hour on that clock is never reached.
 */
function flowing(extra: DownloadOptions = {}): InternalOptions & { warnings: string[]; clock: FakeClock } {
  const clock = new FakeClock();
  onTestFinished(clock.flow({ speed: 10 }));
  return { ...quick({ timeout: 3600, ...extra }), clock };
}

describe("never stuck at 99%", () => {
  it("moves a range served at 1/20 of its peers' speed off its connection", async () => {
    const content = makeContent(3 * MiB, 11);
    const server = await serve({ content, bytesPerSecond: 1 * MiB });
    // The first range after the probe crawls; a fresh request for the same bytes does not.
    server.onRequest = (request) => (request.index === 1 ? { bytesPerSecond: 50 * KiB } : undefined);
    const result = await download(server.url(), { ...flowing({ connections: 4 }), dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(result.http.rescues + result.http.hedges).toBeGreaterThanOrEqual(1);
    const slow = server.requests[1]!;
    // It was abandoned long before it could finish its range.
    expect(slow.bytesSent).toBeLessThan((slow.range!.end! - slow.range!.start + 1) / 2);
  });

  it("catches a connection that trickles a few bytes a second, which no idle timeout would", async () => {
    const content = makeContent(4 * MiB, 12);
    const server = await serve({ content, bytesPerSecond: 2 * MiB });
    server.onRequest = (request) => (request.index === 2 ? { bytesPerSecond: 64 } : undefined);
    const result = await download(server.url(), { ...flowing({ connections: 4 }), dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(result.http.rescues + result.http.hedges).toBeGreaterThanOrEqual(1);
    expect(server.requests[2]!.bytesSent).toBeLessThan(4 * KiB);
  });

  it("leaves a uniformly slow network alone", async () => {
    const content = makeContent(1536 * KiB, 13);
    const server = await serve({ content, bytesPerSecond: 256 * KiB });
    const options = flowing({ connections: 4 });
    const result = await download(server.url(), { ...options, dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    // Long enough for a rescue: a whole rate window measured, then the checks in a row it takes.
    expect(options.clock.now()).toBeGreaterThan(RATE_WINDOW_MS + SLOW_CHECKS * 1000);
    expect(result.http.rescues).toBe(0);
  });

  it("hedges the slowest range at the end: the first writer wins and no byte is lost", async () => {
    const content = makeContent(2 * MiB, 14);
    // The first range ends in about a second of the flowing clock, before the crawling
    // one could be measured for a rescue (tail.ts: a whole rate window, then three checks).
    const server = await serve({ content, bytesPerSecond: 8 * MiB });
    // The second range crawls from the start, below the size a steal would split.
    server.onRequest = (request) => (request.index === 1 ? { bytesPerSecond: 16 * KiB } : undefined);
    const result = await download(server.url(), { ...flowing({ connections: 2, minSplit: 1 * MiB }), dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(result.http.hedges).toBeGreaterThanOrEqual(1);
  });
});

describe("mirrors", () => {
  it("spreads ranges over two copies by their speed", async () => {
    const content = makeContent(8 * MiB, 15);
    const fast = await serve({ content, bytesPerSecond: 2 * MiB });
    const slow = await serve({ content, bytesPerSecond: 512 * KiB });
    const result = await download([slow.url(), fast.url()], { ...quick({ connections: 4 }), dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    const bytesFast = result.http.origins[fast.origin]!.bytes;
    const bytesSlow = result.http.origins[slow.origin]!.bytes;
    expect(bytesFast + bytesSlow).toBe(content.length);
    expect(bytesFast).toBeGreaterThan(2 * bytesSlow);
  });

  it("drops a mirror that dies part-way and finishes from the others", async () => {
    const content = makeContent(4 * MiB, 16);
    const primary = await serve({ content, bytesPerSecond: 1 * MiB });
    const mirror = await serve({ content, bytesPerSecond: 1 * MiB });
    mirror.onRequest = (request) => (request.index === 0 ? undefined : request.index === 1 ? { dropAfterBytes: 100 * KiB } : { status: 503 });
    const options = flowing({ connections: 4, retries: 2 });
    const result = await download([primary.url(), mirror.url()], { ...options, dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(options.warnings.join("\n")).toMatch(/dropping .*127\.0\.0\.1:\d+.*continuing with the other copy/);
  });

  it("refuses a mirror whose size differs, with a warning", async () => {
    const content = makeContent(1 * MiB, 17);
    // Mirrors answer while the transfer runs: a slow one keeps it going until they have.
    const primary = await serve({ content, bytesPerSecond: 2 * MiB });
    const other = await serve({ content: makeContent(1 * MiB + 1, 17) });
    const options = quick({ connections: 4 });
    const result = await download([primary.url(), other.url()], { ...options, dir: await tempDir() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(options.warnings).toEqual([`ignoring mirror ${other.url()}: the mirror has ${content.length + 1} bytes, the file has ${content.length}`]);
    expect(other.requests).toHaveLength(1);
  });

  it("sends each copy its own validator in If-Range", async () => {
    const content = makeContent(2 * MiB, 18);
    const primary = await serve({ content, etag: '"a"', bytesPerSecond: 2 * MiB });
    const mirror = await serve({ content, etag: '"b"', bytesPerSecond: 2 * MiB });
    await download([primary.url(), mirror.url()], { ...quick({ connections: 4 }), dir: await tempDir() });
    expect(primary.requests.slice(1).every((request) => request.headers["if-range"] === '"a"')).toBe(true);
    expect(mirror.requests.slice(1).every((request) => request.headers["if-range"] === '"b"')).toBe(true);
    expect(mirror.requests.length).toBeGreaterThan(1);
  });
});

describe("mirrors join while the transfer runs", () => {
  // A stuck request would wait for ever: the abort bounds the wait.
  const bounded = () => AbortSignal.timeout(20_000);

  it("a mirror on the URL's own host with one connection per host: the probe's body is read while the mirror waits, and the download finishes", async () => {
    const content = makeContent(1 * MiB, 19);
    const server = await serve({ content });
    const options = quick({ connections: 4, maxConnectionsPerHost: 1 });
    const result = await download([server.url("/file"), server.url("/copy")], { ...options, dir: await tempDir(), signal: bounded() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(server.peakConcurrent()).toBe(1);
  });

  it("a mirror that never answers holds up no range: the download finishes from the URL without it", async () => {
    const content = makeContent(1 * MiB, 20);
    const primary = await serve({ content });
    const silent = await serve({ content, onRequest: () => ({ stallBeforeHeaders: true }) });
    const options = quick({ connections: 4, timeout: 60 });
    const result = await download([primary.url(), silent.url()], { ...options, dir: await tempDir(), signal: bounded() });
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(result.http.origins[primary.origin]!.bytes).toBe(content.length);
    expect(options.warnings).toEqual([]);
  });

  it("an abort while a mirror has not answered keeps the bytes already fetched for a resume", async () => {
    const content = makeContent(4 * MiB, 21);
    const primary = await serve({ content, bytesPerSecond: 1 * MiB });
    const silent = await serve({ content, onRequest: () => ({ stallBeforeHeaders: true }) });
    const output = join(await tempDir(), "file.bin");
    const controller = new AbortController();
    const pending = download([primary.url(), silent.url()], { ...quick({ connections: 4, timeout: 60 }), output, signal: controller.signal });
    await until(() => silent.requests.length > 0 && primary.bytesServed() >= 512 * KiB, "the silent range asked and 512 KiB served");
    controller.abort();
    await expect(pending).rejects.toBeInstanceOf(AbortError);
    const manifest = JSON.parse(await readFile(`${output}.part.json`, "utf8")) as { done: [number, number][] };
    expect(manifest.done.length).toBeGreaterThan(0);
  });
});

describe("mirrors on the command line", () => {
  it("--mirror spreads one file over copies; --json and --stats report bytes per origin", async () => {
    const { execFile } = await import("node:child_process");
    const { promisify } = await import("node:util");
    const { join } = await import("node:path");
    const content = makeContent(2 * MiB, 19);
    const first = await serve({ content, bytesPerSecond: 1 * MiB });
    const second = await serve({ content, bytesPerSecond: 1 * MiB });
    const dir = await tempDir();
    const bin = new URL("../bin/rangeget.js", import.meta.url).pathname;
    const { stdout, stderr } = await promisify(execFile)(
      process.execPath,
      [bin, "-q", "--json", "--stats", "-c", "4", "--min-split", "256K", "-d", dir, first.url(), "--mirror", second.url()],
      { timeout: 30_000 },
    );
    const result = JSON.parse(stdout) as { status: string; http: { origins: Record<string, { bytes: number }> } };
    expect(result.status).toBe("downloaded");
    expect(result.http.origins[first.origin]!.bytes + result.http.origins[second.origin]!.bytes).toBe(content.length);
    expect(result.http.origins[second.origin]!.bytes).toBeGreaterThan(0);
    expect(stderr).toMatch(new RegExp(`by origin: ${first.origin} .*, ${second.origin} `));
    expect(sha256(await readFile(join(dir, "file.bin")))).toBe(sha256(content));
  });
});

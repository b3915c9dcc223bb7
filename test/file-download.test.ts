/**
 * src/file-download.ts `FileDownload`, driven directly: a loopback range server, real
 * files in a temp directory, and a partial state written by hand where a test needs
 * one (a `.part` and its manifest), so what is on disk and what is asked of the server
 * are exact. Time runs on a fake clock: a backoff passes at once; an answer deadline
 * (60 s) and the once-a-second checkpoint never come unless a test moves the clock.
 */
import { existsSync, statSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { Agent } from "undici";
import { AbortError, FileError, IntegrityError, RemoteChangedError } from "../src/errors.js";
import { FileDownload } from "../src/file-download.js";
import { resolveSettings, type InternalOptions } from "../src/options.js";
import { partPaths } from "../src/part-paths.js";
import { IntervalSet, type Interval } from "../src/ranges.js";
import { HttpStatsRecorder } from "../src/stats.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import type { RangeServer, RangeServerOptions, RecordedRequest } from "./support/range-server.js";
import { closeAfterTest, rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { checkpointedBytes } from "./support/checkpoint.js";
import { until } from "./support/until.js";

const KiB = 1024;
const RANGE = 64 * KiB;
/** 16 whole ranges and a short last one. */
const SIZE = 16 * RANGE + 1000;
const HALF = 8 * RANGE;
const content = makeContent(SIZE);
const LAST_MODIFIED = new Date("2024-01-02T03:04:05Z");
const TIMEOUT_MS = 60_000;
/** How long an idle connection sleeps before it looks at the plan again (worker.ts). */
const IDLE_POLL_MS = 200;

afterEach(() => {
  vi.restoreAllMocks();
});

interface Setup {
  server?: Partial<RangeServerOptions>;
  options?: InternalOptions;
  /** The output's name in the test's directory. */
  name?: string;
}

/** A server of `content` (ETag "v1") and the output path a download of it writes. */
async function place(setup: Setup = {}) {
  const server = await rangeServer({ content, etag: '"v1"', lastModified: LAST_MODIFIED, ...setup.server });
  const output = join(await tempDir(), setup.name ?? "file.bin");
  return { server, output, paths: partPaths(output) };
}

/**
 * A FileDownload of `url` to `output` (none: named by the answer, in `options.dir`): -c 4,
 * min-split 64 KiB, no hedges, on a fake clock, with its own dispatcher.
 */
function fileDownload(url: string, output: string | undefined, options: InternalOptions = {}) {
  const clock = new FakeClock({ instantUpToMs: 40_000 });
  const warnings: string[] = [];
  const settings = resolveSettings(url, [], {
    ...(output === undefined ? {} : { output }),
    connections: 4,
    minSplit: RANGE,
    retries: 3,
    timeout: TIMEOUT_MS / 1000,
    noHedge: true,
    clock,
    environment: {},
    onWarning: (message) => warnings.push(message),
    ...options,
  });
  const dispatcher = new Agent({ connections: 8, pipelining: 1 });
  closeAfterTest(() => dispatcher.destroy());
  const stats = new HttpStatsRecorder();
  return { job: new FileDownload(settings, dispatcher, stats), clock, warnings, stats };
}

/** A partial download on disk, as an earlier run's checkpoint leaves it: the `.part` (full length) and its manifest. */
async function writePartial(output: string, url: string, part: Buffer, done: Interval[], etag = '"v1"'): Promise<void> {
  const paths = partPaths(output);
  await writeFile(paths.part, part);
  const manifest = { version: 1, url, finalUrl: url, size: part.length, etag, lastModified: LAST_MODIFIED.toUTCString(), done };
  await writeFile(paths.manifest, JSON.stringify(manifest));
}

/** The union of the byte ranges asked from request `from` on. */
function askedRanges(server: RangeServer, from = 0): Interval[] {
  const asked = new IntervalSet();
  for (const request of server.requests.slice(from)) {
    if (request.range) asked.add(request.range.start, Math.min(request.range.end ?? SIZE - 1, SIZE - 1));
  }
  return asked.toArray();
}

/** Every request's Range and If-Range, as the server saw them. */
function asks(server: RangeServer): { range: string | undefined; ifRange: string | undefined }[] {
  return server.requests.map((request) => ({ range: request.headers.range, ifRange: request.headers["if-range"] as string | undefined }));
}

describe("FileDownload: a fresh download", () => {
  it("writes a full-length .part under a lock, then renames it into place with the server's mtime, leaving nothing beside it", async () => {
    const { server, output, paths } = await place();
    const seen: { part: number | undefined; output: boolean; lock: boolean }[] = [];
    server.onRequest = (request) => {
      // While the ranges are fetched: the .part is there at its full length; the output is not.
      if (request.index !== 1) return undefined;
      seen.push({ part: existsSync(paths.part) ? statSync(paths.part).size : undefined, output: existsSync(output), lock: existsSync(paths.lock) });
      return undefined;
    };
    const { job, clock } = fileDownload(server.url(), output);
    const result = await job.run();
    expect(seen).toEqual([{ part: SIZE, output: false, lock: true }]);
    expect(result).toMatchObject({ path: output, status: "downloaded", size: SIZE, bytesTransferred: SIZE });
    expect(result).toMatchObject({ resumed: false, restartedBecauseChanged: false });
    expect((await readFile(output)).equals(content)).toBe(true);
    expect((await stat(output)).mtime.getTime()).toBe(LAST_MODIFIED.getTime());
    expect([existsSync(paths.part), existsSync(paths.manifest), existsSync(paths.lock)]).toEqual([false, false, false]);
    // The probe asks the first range; the rest asks each byte once.
    expect(server.requests[0]!.range).toEqual({ start: 0, end: RANGE - 1 });
    expect(askedRanges(server)).toEqual([[0, SIZE - 1]]);
    expect(server.bytesServed()).toBe(SIZE);
    // No backoff: every sleep is an answer deadline or an idle connection's poll.
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT_MS && ms !== IDLE_POLL_MS)).toEqual([]);
  });

  it("writes an empty file for a 0-byte remote file after one request", async () => {
    const { server, output, paths } = await place({ server: { content: Buffer.alloc(0) } });
    const { job } = fileDownload(server.url(), output);
    await expect(job.run()).resolves.toMatchObject({ size: 0, status: "downloaded" });
    expect((await readFile(output)).length).toBe(0);
    expect(server.requests.map((request) => request.status)).toEqual([416]);
    expect(existsSync(paths.part)).toBe(false);
  });

  it("fetches from a server without ranges as one plain stream: the probe's 200 is the file, one request", async () => {
    const { server, output } = await place({ server: { acceptRanges: false } });
    const { job } = fileDownload(server.url(), output);
    await expect(job.run()).resolves.toMatchObject({ size: SIZE, resumed: false });
    expect(server.requests).toHaveLength(1);
    expect((await readFile(output)).equals(content)).toBe(true);
  });

  it("starts a plain stream's .part over after a cut body, after one backoff, and publishes the retry's version", async () => {
    vi.spyOn(Math, "random").mockReturnValue(0.5);
    const next = makeContent(SIZE, 2);
    const { server, output } = await place({ server: { acceptRanges: false } });
    server.onRequest = (request) => {
      if (request.index === 0) return { dropAfterBytes: 1000 };
      // The file is replaced before the retry: a .part that starts over takes the new version whole.
      server.setContent(next, { etag: '"v2"' });
      return undefined;
    };
    const { job, clock } = fileDownload(server.url(), output, { ifChanged: true });
    await expect(job.run()).resolves.toMatchObject({ size: SIZE });
    expect(server.requests.map((request) => request.range === undefined)).toEqual([false, true]);
    // Full jitter of the first retry's 500 ms at Math.random() = 0.5.
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT_MS)).toEqual([250]);
    expect((await readFile(output)).equals(next)).toBe(true);
    // The record kept for ifChanged is the new version's.
    expect(await readFile(`${output}.etag`, "utf8").catch(() => "(none)")).toBe('"v2"\n');
  });

  it("drops the .part and fetches one plain stream when the workers' ranges are ignored every time", async () => {
    // The probe's range is answered; every later range gets the whole file (200).
    const workersIgnored = (request: RecordedRequest) => (request.index > 0 && request.range ? { ignoreRange: true } : undefined);
    const { server, output, paths } = await place({ server: { onRequest: workersIgnored } });
    const { job, warnings } = fileDownload(server.url(), output);
    await expect(job.run()).resolves.toMatchObject({ size: SIZE, resumed: false });
    expect((await readFile(output)).equals(content)).toBe(true);
    expect(server.requests.at(-1)!.range).toBeUndefined();
    expect(server.requests.filter((request) => request.range === undefined)).toHaveLength(1);
    expect(warnings).toEqual([`${server.url()} keeps ignoring ranges; fetching the whole file as one stream`]);
    expect(existsSync(paths.manifest)).toBe(false);
  });
});

describe("FileDownload: an output that is already there", () => {
  it("is up to date by its origin record: a second run sends no request and leaves the file as it was", async () => {
    const { server, output } = await place();
    await fileDownload(server.url(), output).job.run();
    const before = server.requests.length;
    const mtime = (await stat(output)).mtimeMs;
    const result = await fileDownload(server.url(), output).job.run();
    expect(result).toMatchObject({ status: "up-to-date", size: SIZE, path: output });
    expect(server.requests.length).toBe(before);
    expect((await stat(output)).mtimeMs).toBe(mtime);
  });

  it("with ifChanged, asks once with If-None-Match and If-Modified-Since, and a 304 leaves it up to date", async () => {
    const { server, output } = await place();
    await fileDownload(server.url(), output, { ifChanged: true }).job.run();
    const before = server.requests.length;
    const result = await fileDownload(server.url(), output, { ifChanged: true }).job.run();
    expect(result).toMatchObject({ status: "up-to-date", size: SIZE });
    expect(server.requests.length).toBe(before + 1);
    const probe = server.requests[before]!;
    expect(probe.status).toBe(304);
    expect(probe.headers["if-none-match"]).toBe('"v1"');
    expect(probe.headers["if-modified-since"]).toBe(LAST_MODIFIED.toUTCString());
    expect((await readFile(output)).equals(content)).toBe(true);
  });

  it("refuses a second job on the same output while the first holds its lock, before any request", async () => {
    const { server, output, paths } = await place({ server: { bytesPerSecond: 256 * KiB } });
    const first = fileDownload(server.url(), output).job.run();
    // The lock is taken after the probe's answer: wait for it, not for the request.
    await until(() => existsSync(paths.lock), "the first job's lock");
    // The second job asks another path of the server, so that any request of its own would show.
    const second = await fileDownload(server.url("/second.bin"), output).job.run().catch((error: unknown) => error);
    expect(second).toBeInstanceOf(FileError);
    expect(second).toMatchObject({ code: "ERR_LOCKED" });
    expect(server.requests.filter((request) => request.path === "/second.bin")).toEqual([]);
    server.bytesPerSecond = undefined;
    await expect(first).resolves.toMatchObject({ size: SIZE });
    expect((await readFile(output)).equals(content)).toBe(true);
  });
});

describe("FileDownload: resume", () => {
  it("asks only the bytes its manifest lacks, the first of them with If-Range, and keeps the bytes on disk", async () => {
    const { server, output, paths } = await place();
    // Bytes on disk that differ from the server's: a second fetch of them would show.
    const part = Buffer.alloc(SIZE);
    part.fill(0x21, 0, HALF);
    await writePartial(output, server.url(), part, [[0, HALF - 1]]);
    const { job } = fileDownload(server.url(), output);
    const result = await job.run();
    expect(result).toMatchObject({ status: "resumed", resumed: true, size: SIZE, bytesTransferred: SIZE - HALF });
    expect(asks(server)[0]).toEqual({ range: `bytes=${HALF}-${HALF + RANGE - 1}`, ifRange: '"v1"' });
    expect(askedRanges(server)).toEqual([[HALF, SIZE - 1]]);
    expect(server.bytesServed()).toBe(SIZE - HALF);
    const written = await readFile(output);
    expect(written.subarray(0, HALF).equals(part.subarray(0, HALF))).toBe(true);
    expect(written.subarray(HALF).equals(content.subarray(HALF))).toBe(true);
    expect(existsSync(paths.manifest)).toBe(false);
  });

  it("finishes a manifest that has every byte after one request past the end (416), with If-Range", async () => {
    const { server, output } = await place();
    await writePartial(output, server.url(), content, [[0, SIZE - 1]]);
    const result = await fileDownload(server.url(), output).job.run();
    expect(result).toMatchObject({ status: "resumed", size: SIZE, bytesTransferred: 0 });
    expect(asks(server)).toEqual([{ range: `bytes=${SIZE}-${SIZE}`, ifRange: '"v1"' }]);
    expect(server.requests[0]!.status).toBe(416);
    expect((await readFile(output)).equals(content)).toBe(true);
  });

  it("drops the partial and takes the whole file as one stream when the resume's range is ignored far before the missing bytes", async () => {
    const { server, output } = await place({ server: { acceptRanges: false } });
    await writePartial(output, server.url(), Buffer.alloc(SIZE, 0x21), [[0, HALF - 1]]);
    const { job, warnings } = fileDownload(server.url(), output);
    await expect(job.run()).resolves.toMatchObject({ resumed: false, size: SIZE });
    // The probe's 200 (same ETag) is the stream: reading it up to byte HALF would cost more than the range.
    expect(server.requests).toHaveLength(1);
    expect(warnings).toEqual([`${server.url()} ignored the range of the resume; fetching the whole file as one stream`]);
    expect((await readFile(output)).equals(content)).toBe(true);
  });

  it("reads a resume's ignored range from the same version's 200 up to the missing bytes when that costs no more than they do (a CDN node)", async () => {
    const { server, output } = await place({ server: { onRequest: (request) => (request.index === 0 ? { ignoreRange: true } : undefined) } });
    const kept = RANGE / 2;
    await writePartial(output, server.url(), Buffer.alloc(SIZE, 0x21), [[0, kept - 1]]);
    const { job, warnings } = fileDownload(server.url(), output);
    await expect(job.run()).resolves.toMatchObject({ resumed: true, size: SIZE });
    expect(server.requests[0]!.status).toBe(200);
    // The probe's body gave bytes kept..kept+RANGE-1; the workers asked only what came after.
    expect(askedRanges(server, 1)).toEqual([[kept + RANGE, SIZE - 1]]);
    const written = await readFile(output);
    expect(written.subarray(0, kept).equals(Buffer.alloc(kept, 0x21))).toBe(true);
    expect(written.subarray(kept).equals(content.subarray(kept))).toBe(true);
    expect(warnings).toEqual([]);
  });

  it("with continue, leaves an output longer than the remote file as it was: it is not the start of it", async () => {
    const { server, output } = await place();
    const mine = Buffer.alloc(SIZE + 10, 0x33);
    await writeFile(output, mine);
    const failure = await fileDownload(server.url(), output, { continue: true }).job.run().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect((failure as Error).message).toContain(`(${SIZE + 10} bytes) is not the start of ${server.url()}`);
    expect(asks(server)).toEqual([{ range: `bytes=${SIZE + 10}-${SIZE + 10 + RANGE - 1}`, ifRange: undefined }]);
    expect((await readFile(output)).equals(mine)).toBe(true);
  });
});

describe("FileDownload: without an output, named by the answer", () => {
  const contentDisposition = 'attachment; filename="named.bin"';

  it("claims the name the probe's answer gives and keeps the probe's body as the first range", async () => {
    const server = await rangeServer({ content, etag: '"v1"', contentDisposition });
    const dir = await tempDir();
    const { job } = fileDownload(server.url(), undefined, { dir });
    const result = await job.run();
    expect(result).toMatchObject({ path: join(dir, "named.bin"), status: "downloaded", size: SIZE });
    expect((await readFile(join(dir, "named.bin"))).equals(content)).toBe(true);
    expect(server.bytesServed()).toBe(SIZE);
    expect(askedRanges(server)).toEqual([[0, SIZE - 1]]);
  });

  it("probes again, from the first missing byte with If-Range, when a partial is found only under that name", async () => {
    const server = await rangeServer({ content, etag: '"v1"', lastModified: LAST_MODIFIED, contentDisposition });
    const dir = await tempDir();
    const named = join(dir, "named.bin");
    await writePartial(named, server.url(), Buffer.concat([content.subarray(0, HALF), Buffer.alloc(SIZE - HALF)]), [[0, HALF - 1]]);
    const { job } = fileDownload(server.url(), undefined, { dir });
    const result = await job.run();
    expect(result).toMatchObject({ path: named, status: "resumed", size: SIZE });
    // The first probe knew nothing (its body is ended unread); the second asks what is missing.
    expect(asks(server).slice(0, 2)).toEqual([
      { range: `bytes=0-${RANGE - 1}`, ifRange: undefined },
      { range: `bytes=${HALF}-${HALF + RANGE - 1}`, ifRange: '"v1"' },
    ]);
    expect(askedRanges(server, 1)).toEqual([[HALF, SIZE - 1]]);
    expect((await readFile(named)).equals(content)).toBe(true);
  });
});

describe("FileDownload: a remote change", () => {
  it("restarts on the new version: the resume probe's 200 of another ETag, then a probe from byte 0 without If-Range", async () => {
    const { server, output } = await place();
    // The bytes on disk are of an older version, "v0".
    await writePartial(output, server.url(), Buffer.alloc(SIZE, 0x21), [[0, HALF - 1]], '"v0"');
    const { job, warnings } = fileDownload(server.url(), output);
    const result = await job.run();
    expect(result).toMatchObject({ restartedBecauseChanged: true, resumed: false, size: SIZE });
    expect((await readFile(output)).equals(content)).toBe(true);
    expect(asks(server).slice(0, 2)).toEqual([
      { range: `bytes=${HALF}-${HALF + RANGE - 1}`, ifRange: '"v0"' },
      { range: `bytes=0-${RANGE - 1}`, ifRange: undefined },
    ]);
    expect(server.requests[0]!.status).toBe(200);
    // The new version's ranges go with its own validator, and tile the file once.
    for (const request of server.requests.slice(2)) expect(request.headers["if-range"]).toBe('"v1"');
    expect(askedRanges(server, 1)).toEqual([[0, SIZE - 1]]);
    expect(warnings).toEqual([`${server.url()} changed on the server: it has a new ETag "v1"; discarding partial data and starting over`]);
  });

  it("with restartOnChange false, fails with RemoteChangedError after one request and leaves no .part or manifest", async () => {
    const { server, output, paths } = await place();
    await writePartial(output, server.url(), Buffer.alloc(SIZE, 0x21), [[0, HALF - 1]], '"v0"');
    const { job } = fileDownload(server.url(), output, { restartOnChange: false });
    const failure = await job.run().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RemoteChangedError);
    expect((failure as Error).message).toContain("run again to download the new version");
    expect(server.requests).toHaveLength(1);
    expect([existsSync(paths.part), existsSync(paths.manifest), existsSync(paths.lock), existsSync(output)]).toEqual([false, false, false, false]);
  });

  it("gives up on a file that keeps changing under its workers after 3 restarts, saying how many times", async () => {
    const { server, output, paths } = await place();
    let version = 1;
    server.onRequest = (request) => {
      // Each attempt's probe is answered; its first worker's range finds a new version.
      if (request.headers["if-range"] === `"v${version}"`) {
        version++;
        server.setContent(makeContent(SIZE, version), { etag: `"v${version}"` });
      }
      return undefined;
    };
    const { job, warnings } = fileDownload(server.url(), output);
    const failure = await job.run().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RemoteChangedError);
    expect((failure as Error).message).toMatch(/\(4 times\); run again to download the new version$/);
    expect(warnings.filter((warning) => warning.endsWith("discarding partial data and starting over"))).toHaveLength(3);
    // Four probes without If-Range: the first attempt's and three restarts'.
    expect(server.requests.filter((request) => request.headers["if-range"] === undefined)).toHaveLength(4);
    expect([existsSync(paths.part), existsSync(paths.manifest), existsSync(output)]).toEqual([false, false, false]);
  });
});

describe("FileDownload: an abort", () => {
  it("saves a manifest of what was written and says a re-run finds state", async () => {
    // Every answer holds after half a range, so none ends and the job is surely running.
    const { server, output, paths } = await place({ server: { holdAfterBytes: RANGE / 2 } });
    const abort = new AbortController();
    const { job, clock } = fileDownload(server.url(), output, { signal: abort.signal });
    const running = job.run().catch((error: unknown) => error);
    // Bytes the job wrote, not only bytes the server sent (they may wait in a socket
    // buffer): the checkpoint runs on the job's fake clock, a second per look.
    await until(async () => {
      clock.advance(1000);
      return (await checkpointedBytes(output)) > 0;
    }, "a checkpoint with bytes");
    abort.abort();
    expect(await running).toBeInstanceOf(AbortError);
    expect(await job.leftOnAbort()).toEqual({ kept: "state" });
    const manifest = JSON.parse(await readFile(paths.manifest, "utf8")) as { size: number; etag: string; done: Interval[] };
    expect(manifest).toMatchObject({ size: SIZE, etag: '"v1"' });
    expect(IntervalSet.from(manifest.done).bytes).toBeGreaterThan(0);
    // Every byte the manifest claims is in the .part.
    const part = await readFile(paths.part);
    expect(part.length).toBe(SIZE);
    for (const [start, end] of manifest.done) expect(part.subarray(start, end + 1).equals(content.subarray(start, end + 1))).toBe(true);
    expect(existsSync(paths.lock)).toBe(false);
  });

  it("from one plain stream, removes the .part and says why nothing was kept", async () => {
    const { server, output, paths } = await place({ server: { acceptRanges: false, bytesPerSecond: 256 * KiB } });
    const abort = new AbortController();
    const { job } = fileDownload(server.url(), output, { signal: abort.signal });
    const running = job.run().catch((error: unknown) => error);
    // A state of the client, not of the server: bytes the server sent may still be in a
    // socket buffer while the job has not yet chosen the plain stream.
    await until(() => (statSync(paths.part, { throwIfNoEntry: false })?.size ?? 0) > 0, "the plain stream's first bytes in its .part");
    abort.abort();
    expect(await running).toBeInstanceOf(AbortError);
    expect(await job.leftOnAbort()).toEqual({ kept: "nothing", why: "this server does not serve ranges" });
    expect([existsSync(paths.part), existsSync(paths.manifest), existsSync(output)]).toEqual([false, false, false]);
  });
});

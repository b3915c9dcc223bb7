/**
 * src/stream-download.ts, driven directly: `OrderedOutput` (the ordered consumer of
 * `-o -`, `--extract` and `downloadStream`) given writes by hand, and `StreamDownload`
 * run against a loopback range server (a raw one for answers node:http will not send),
 * its body read in memory, on a fake clock (a backoff passes at once; an answer
 * deadline never comes). Each route step of a stream (next-step.ts) is one test, with
 * the requests it costs counted.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { Agent } from "undici";
import { AbortError, FileError, RemoteChangedError, UsageError } from "../src/errors.js";
import { resolveSettings } from "../src/options.js";
import { streamWindow } from "../src/ordered-sink.js";
import { HttpStatsRecorder } from "../src/stats.js";
import { OrderedOutput, StreamDownload, type StreamDestination } from "../src/stream-download.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { rangeAnswer, sendAndClose } from "./support/raw-server.js";
import type { RangeServer, RangeServerOptions, RecordedRequest } from "./support/range-server.js";
import { closeAfterTest, rangeServer, rawServer } from "./support/servers.js";
import { tarArchive } from "./support/tar-archive.js";
import { tempDir } from "./support/temp.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** At -c 4 and min-split 64 KiB: a window of 1 MiB, ranges of 64 KiB (ordered-sink.ts `streamWindow`). */
const CONNECTIONS = 4;
const RANGE = 64 * KiB;
const WINDOW = streamWindow(CONNECTIONS, RANGE);
/** 16 whole ranges and a short last one. */
const SIZE = 16 * RANGE + 1000;
const content = makeContent(SIZE);
const TIMEOUT_MS = 60_000;
/** How long an idle connection sleeps before it looks at the plan again (worker.ts). */
const IDLE_POLL_MS = 200;

describe("OrderedOutput", () => {
  /** An output and everything its body gave, as it came. */
  function output() {
    const out = new OrderedOutput(WINDOW);
    const chunks: Buffer[] = [];
    out.body.on("data", (chunk: Buffer) => chunks.push(chunk));
    out.body.on("error", () => {});
    return { out, given: () => Buffer.concat(chunks) };
  }

  it("gives ranges written out of order in file order, and holds a range past a gap until it is filled", async () => {
    const { out, given } = output();
    const writer = out.writer();
    expect(writer.write(content.subarray(2 * RANGE, 3 * RANGE), 2 * RANGE)).toBeUndefined();
    expect(writer.write(content.subarray(RANGE, 2 * RANGE), RANGE)).toBeUndefined();
    await new Promise((resolve) => setImmediate(resolve));
    expect(given().length).toBe(0);
    expect(out.sink.bufferedBytes).toBe(2 * RANGE);
    writer.write(content.subarray(0, RANGE), 0);
    await new Promise((resolve) => setImmediate(resolve));
    expect(given().equals(content.subarray(0, 3 * RANGE))).toBe(true);
    expect(out.sink.bufferedBytes).toBe(0);
  });

  it("moves its limit a window ahead of the bytes given, and tells onRoom once per range of progress, not per chunk", async () => {
    const { out } = output();
    let rooms = 0;
    out.onRoom(() => rooms++);
    expect(out.limit).toBe(WINDOW.windowBytes);
    const writer = out.writer();
    // Four writes of a quarter range each: only the fourth completes a range of progress.
    for (let i = 0; i < 4; i++) writer.write(content.subarray((i * RANGE) / 4, ((i + 1) * RANGE) / 4), (i * RANGE) / 4);
    expect(rooms).toBe(1);
    expect(out.limit).toBe(RANGE + WINDOW.windowBytes);
    writer.write(content.subarray(RANGE, RANGE + RANGE / 2), RANGE);
    expect(rooms).toBe(1);
    writer.write(content.subarray(RANGE + RANGE / 2, 3 * RANGE), RANGE + RANGE / 2);
    expect(rooms).toBe(2);
  });

  it("makes a write past the window wait until the reader makes room, and stops the limit while the reader does not read", async () => {
    const out = new OrderedOutput(WINDOW);
    const writer = out.writer();
    // The reader is paused: the body's own buffer (256 KiB) fills and the position stops there.
    writer.write(content.subarray(0, 4 * RANGE), 0);
    const stuck = out.sink.position;
    expect(stuck).toBe(4 * RANGE);
    const far = Buffer.alloc(RANGE, 7);
    const waiting = writer.write(far, stuck + WINDOW.windowBytes);
    expect(waiting).toBeInstanceOf(Promise);
    let released = false;
    void waiting!.then(() => (released = true));
    writer.write(content.subarray(4 * RANGE, 5 * RANGE), 4 * RANGE);
    await new Promise((resolve) => setImmediate(resolve));
    // Held, not given: the limit stayed where the reader left it.
    expect(out.sink.position).toBe(stuck);
    expect(out.limit).toBe(stuck + WINDOW.windowBytes);
    expect(released).toBe(false);
    // The reader takes what the body holds: the bytes held move on, the window with them.
    for (let read = 0; read < 2 * RANGE; ) read += (out.body.read() as Buffer | null)?.length ?? Number.POSITIVE_INFINITY;
    await new Promise((resolve) => setImmediate(resolve));
    expect(out.sink.position).toBe(5 * RANGE);
    expect(released).toBe(true);
  });

  it("hashes every byte that leaves and fails the body instead of ending it when the digest is refused", async () => {
    const { out, given } = output();
    let seen = "";
    const refusal = new Error("wrong digest");
    out.hashWith("sha256", (hex) => {
      seen = hex;
      throw refusal;
    });
    const failed = new Promise((resolve) => out.body.once("error", resolve));
    out.writer().write(content.subarray(0, 1000), 0);
    await expect(out.sink.end()).rejects.toBe(refusal);
    expect(await failed).toBe(refusal);
    expect(seen).toBe(createHash("sha256").update(content.subarray(0, 1000)).digest("hex"));
    expect(given().length).toBe(1000);
  });

  it("aborts `gone` with FileError ERR_OUTPUT_CLOSED when the reader destroys the body", () => {
    const { out } = output();
    out.body.destroy();
    expect(out.gone.signal.aborted).toBe(true);
    expect(out.gone.signal.reason).toBeInstanceOf(FileError);
    expect(out.gone.signal.reason).toMatchObject({ code: "ERR_OUTPUT_CLOSED" });
  });
});

interface Setup {
  server?: Partial<RangeServerOptions>;
  url?: string;
  /** Default: the ordered output the test reads. */
  destination?: StreamDestination;
  retries?: number;
  signal?: AbortSignal;
  checksum?: string;
}

/**
 * A StreamDownload of `SIZE` bytes into an ordered output read as it comes, -c 4,
 * min-split 64 KiB, no hedges, on a fake clock, with its own dispatcher.
 */
async function streamDownload(setup: Setup = {}) {
  const server = setup.url === undefined ? await rangeServer({ content, etag: '"v1"', ...setup.server }) : undefined;
  const url = setup.url ?? server!.url();
  const clock = new FakeClock({ instantUpToMs: 40_000 });
  const warnings: string[] = [];
  const settings = resolveSettings(url, [], {
    connections: CONNECTIONS,
    minSplit: RANGE,
    retries: setup.retries ?? 3,
    timeout: TIMEOUT_MS / 1000,
    noHedge: true,
    clock,
    environment: {},
    streaming: true,
    onWarning: (message) => warnings.push(message),
    ...(setup.signal === undefined ? {} : { signal: setup.signal }),
    ...(setup.checksum === undefined ? {} : { checksum: setup.checksum }),
  });
  const dispatcher = new Agent({ connections: 8, pipelining: 1 });
  closeAfterTest(() => dispatcher.destroy());
  const stats = new HttpStatsRecorder();
  const output = new OrderedOutput(WINDOW);
  const chunks: Buffer[] = [];
  const read = new Promise<Buffer>((resolve, reject) => {
    output.body.on("data", (chunk: Buffer) => chunks.push(chunk));
    output.body.once("end", () => resolve(Buffer.concat(chunks)));
    output.body.once("error", reject);
  });
  read.catch(() => {});
  const destination = setup.destination ?? { kind: "stream", output };
  const job = new StreamDownload(settings, dispatcher, stats, destination);
  return { server: server as RangeServer, job, output, read, given: () => Buffer.concat(chunks), clock, stats, warnings };
}

/** The ranges asked, in order of asking: `a-b`, or `-` for a plain GET. */
function asked(server: RangeServer): string[] {
  return server.requests.map((request) => (request.range === undefined ? "-" : `${request.range.start}-${request.range.end ?? ""}`));
}

/** How the ranges asked tile the file: holes or overlaps between them, the longest, where the last ends (exclusive). */
function tiling(server: RangeServer): { holesOrOverlaps: number; longest: number; end: number } {
  const ranges = server.requests.map((request) => request.range!).sort((a, b) => a.start - b.start);
  let next = 0;
  let holesOrOverlaps = 0;
  let longest = 0;
  for (const range of ranges) {
    if (range.start !== next) holesOrOverlaps++;
    longest = Math.max(longest, range.end! - range.start + 1);
    next = range.end! + 1;
  }
  return { holesOrOverlaps, longest, end: next };
}

describe("StreamDownload: the route's steps", () => {
  it("ranges: asks each window-sized range once, the probe's the first, and gives every byte in order", async () => {
    const { server, job, read, clock } = await streamDownload();
    const result = await job.run();
    expect((await read).equals(content)).toBe(true);
    expect(asked(server)[0]).toBe(`0-${RANGE - 1}`);
    expect(tiling(server)).toEqual({ holesOrOverlaps: 0, longest: RANGE, end: SIZE });
    expect(server.bytesServed()).toBe(SIZE);
    for (const request of server.requests.slice(1)) expect(request.headers["if-range"]).toBe('"v1"');
    expect(result).toMatchObject({ path: "-", status: "downloaded", size: SIZE, bytesTransferred: SIZE });
    // No backoff: every sleep is an answer deadline or an idle connection's poll.
    expect(clock.sleeps.filter((ms) => ms !== TIMEOUT_MS && ms !== IDLE_POLL_MS)).toEqual([]);
  });

  it("stream from the probe: a server without ranges costs one request, its 200 read as the stream", async () => {
    const { server, job, read } = await streamDownload({ server: { acceptRanges: false } });
    const result = await job.run();
    expect((await read).equals(content)).toBe(true);
    expect(asked(server)).toEqual([`0-${RANGE - 1}`]);
    expect(result).toMatchObject({ size: SIZE, bytesTransferred: SIZE });
  });

  it("stream, fresh: an unknown total (bytes 0-65535/*) ends the probe's body and asks once without Range", async () => {
    const { server, job, read } = await streamDownload({ server: { onRequest: (request) => (request.range ? { unknownTotal: true } : undefined) } });
    const result = await job.run();
    expect((await read).equals(content)).toBe(true);
    expect(asked(server)).toEqual([`0-${RANGE - 1}`, "-"]);
    expect(result).toMatchObject({ size: SIZE });
  });

  it("stream, fresh: a Range refused (400) to the probe, one plain GET answered", async () => {
    const { server, job, read } = await streamDownload({ server: { onRequest: (request) => (request.range ? { status: 400 } : undefined) } });
    await job.run();
    expect((await read).equals(content)).toBe(true);
    expect(asked(server)).toEqual([`0-${RANGE - 1}`, "-"]);
  });

  it("stream after ranges: workers whose ranges are ignored end in one plain stream that adds only the bytes not given yet", async () => {
    // The probe's range is answered; every later range gets the whole file (200).
    const workersIgnored = (request: RecordedRequest) => (request.index > 0 && request.range ? { ignoreRange: true } : undefined);
    const { server, job, read } = await streamDownload({ server: { onRequest: workersIgnored } });
    await job.run();
    const out = await read;
    expect(out.length).toBe(SIZE);
    expect(out.equals(content)).toBe(true);
    // The last request is the plain stream; no range was asked after it.
    expect(asked(server).at(-1)).toBe("-");
    expect(asked(server).filter((range) => range === "-")).toHaveLength(1);
  });

  it("stream after ranges: a new version answering the plain stream fails with RemoteChangedError, its bytes not added to the old one's", async () => {
    const next = makeContent(SIZE, 2);
    const { server, job, read, given } = await streamDownload();
    server.onRequest = (request) => {
      if (request.index > 0 && request.range) return { ignoreRange: true };
      if (request.range === undefined) server.setContent(next, { etag: '"v2"' });
      return undefined;
    };
    const failure = await job.run().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RemoteChangedError);
    expect((failure as Error).message).toContain('"v2"');
    await expect(read).rejects.toBe(failure);
    expect(asked(server).at(-1)).toBe("-");
    expect(given().length).toBeGreaterThan(0);
    expect(given().equals(content.subarray(0, given().length))).toBe(true);
  });

  it("empty: a 0-byte file (416 bytes */0) ends the body at once, one request", async () => {
    const { server, job, read } = await streamDownload({ server: { content: Buffer.alloc(0) } });
    const result = await job.run();
    expect((await read).length).toBe(0);
    expect(asked(server)).toEqual([`0-${RANGE - 1}`]);
    expect(result).toMatchObject({ size: 0, status: "downloaded" });
  });

  it("fail: the file changing under ranges after bytes left fails with RemoteChangedError, the body with it, no byte of the new version given", async () => {
    const next = makeContent(SIZE, 2);
    const { server, job, read, given } = await streamDownload();
    server.onRequest = (request) => {
      if (request.index === 1) server.setContent(next, { etag: '"v2"' });
      return undefined;
    };
    const failure = await job.run().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RemoteChangedError);
    await expect(read).rejects.toBe(failure);
    // Only the probe's bytes, of the old version, went out.
    expect(content.subarray(0, given().length).equals(given())).toBe(true);
    expect(given().length).toBeLessThanOrEqual(RANGE);
  });

  it("stream, fresh: a multipart answer to the probe's one range (ranges unusable) is ended, and one plain GET asked", async () => {
    const raw = await rawServer((socket, request) => {
      if (request?.headers["range"]) {
        const part = `--x\r\nContent-Range: bytes 0-99/${SIZE}\r\n\r\n${"x".repeat(100)}\r\n--x--\r\n`;
        const head = `HTTP/1.1 206 Partial Content\r\nContent-Type: multipart/byteranges; boundary=x\r\nContent-Length: ${part.length}\r\nConnection: close\r\n\r\n`;
        sendAndClose(socket, head + part);
        return;
      }
      sendAndClose(socket, rangeAnswer(content, request!));
    });
    const { job, read } = await streamDownload({ url: raw.url() });
    await expect(job.run()).resolves.toMatchObject({ size: SIZE });
    expect((await read).equals(content)).toBe(true);
    expect(raw.requests.map((request) => request.headers["range"])).toEqual([`bytes=0-${RANGE - 1}`, undefined]);
  });
});

describe("StreamDownload: stops", () => {
  it("rejects with AbortError when the caller's signal aborts mid-stream, and the body fails with it", async () => {
    const abort = new AbortController();
    const { job, read, given } = await streamDownload({ server: { bytesPerSecond: 256 * KiB }, signal: abort.signal });
    const running = job.run().catch((error: unknown) => error);
    await until(() => given().length > 0, "the first bytes given");
    abort.abort();
    const failure = await running;
    expect(failure).toBeInstanceOf(AbortError);
    await expect(read).rejects.toBe(failure);
    expect(given().length).toBeLessThan(SIZE);
  });

  it("refuses a window under 1 MiB with UsageError before any request", async () => {
    const { server } = await streamDownload();
    const settings = resolveSettings(server.url(), [], { environment: {} });
    const output = new OrderedOutput(WINDOW);
    expect(() => new StreamDownload(settings, new Agent(), new HttpStatsRecorder(), { kind: "stream", output }, MiB - 1)).toThrow(UsageError);
    expect(server.requests).toHaveLength(0);
  });
});

describe("StreamDownload: --extract", () => {
  const files = { "a.txt": Buffer.from("alpha\n"), "dir/b.bin": makeContent(300 * KiB, 9) };
  const archive = gzipSync(tarArchive(Object.entries(files).map(([path, body]) => ({ path, body }))));

  it("unpacks the archive fetched in ranges into DIR, which the result names", async () => {
    const dir = join(await tempDir(), "out");
    const { server, job } = await streamDownload({ server: { content: archive }, destination: { kind: "extract", dir, force: false } });
    const result = await job.run();
    expect(result).toMatchObject({ path: dir, size: archive.length, status: "downloaded" });
    expect(await readFile(join(dir, "a.txt"))).toEqual(files["a.txt"]);
    expect((await readFile(join(dir, "dir/b.bin"))).equals(files["dir/b.bin"])).toBe(true);
    expect(server.requests.length).toBeGreaterThan(1);
    expect(server.bytesServed()).toBe(archive.length);
  });

  it("refuses a DIR that is not empty before any request, leaving it as it was", async () => {
    const dir = join(await tempDir(), "out");
    await mkdir(dir);
    await writeFile(join(dir, "keep.txt"), "mine");
    const { server, job } = await streamDownload({ server: { content: archive }, destination: { kind: "extract", dir, force: false } });
    await expect(job.run()).rejects.toMatchObject({ code: "ERR_EXISTS" });
    expect(server.requests).toHaveLength(0);
    expect(await readdir(dir)).toEqual(["keep.txt"]);
  });

  it("leaves nothing at DIR when the checksum of the archive does not match", async () => {
    const dir = join(await tempDir(), "out");
    const { job } = await streamDownload({
      server: { content: archive },
      destination: { kind: "extract", dir, force: false },
      checksum: `sha256=${"0".repeat(64)}`,
    });
    await expect(job.run()).rejects.toMatchObject({ code: "ERR_CHECKSUM" });
    expect(existsSync(dir)).toBe(false);
  });
});

/**
 * src/single-stream.ts `streamWhole`, driven directly: a loopback range server (a raw
 * one for answers node:http will not send), the probe through src/probe.ts where the
 * stream takes the probe's own body, and an in-memory Consumer that records every
 * write, restart and end in order (or, where a consumer cannot start over, the ordered
 * stream of `-o -`, stream-download.ts `OrderedOutput`). Time runs on a fake clock: a
 * backoff passes at once and is recorded; an answer deadline (60 s) never comes.
 * `Math.random` is pinned, so a backoff's full jitter is an exact number of milliseconds.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Agent } from "undici";
import { HttpStatusError, IntegrityError, NetworkError, RemoteChangedError } from "../src/errors.js";
import { requestContext } from "../src/job-context.js";
import { resolveSettings } from "../src/options.js";
import { streamWindow } from "../src/ordered-sink.js";
import { probe } from "../src/probe.js";
import type { Consumer, ConsumerEnd, RangeWriter } from "../src/sink.js";
import { streamWhole, type StreamJob } from "../src/single-stream.js";
import { HttpStatsRecorder } from "../src/stats.js";
import { OrderedOutput } from "../src/stream-download.js";
import type { SizeProof } from "../src/verdict.js";
import { NOTHING_KNOWN } from "../src/verdict.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { sendAndClose } from "./support/raw-server.js";
import type { RangeServerOptions } from "./support/range-server.js";
import { closeAfterTest, rangeServer, rawServer } from "./support/servers.js";
import { until } from "./support/until.js";

const SIZE = 256 * 1024;
const content = makeContent(SIZE);
const TIMEOUT_MS = 60_000;
/** `Math.random` pinned here: a backoff is half of its cap (retry.ts `retryDelay`). */
const RANDOM = 0.5;
/** The backoffs of retries 1, 2 with full jitter at RANDOM: half of 500 ms, half of 1 s. */
const BACKOFF_1 = 250;
const BACKOFF_2 = 500;

type Call = { kind: "writer" } | { kind: "write"; position: number; length: number } | { kind: "restart" } | { kind: "end"; how: ConsumerEnd };

/** A Consumer in memory: every call in order, the bytes of the current attempt. */
class RecordingTarget implements Consumer {
  readonly calls: Call[] = [];
  /** The bytes written since the last restart, at their positions. */
  #bytes: Buffer[] = [];
  writer(): RangeWriter {
    this.calls.push({ kind: "writer" });
    return {
      write: (chunk, position) => {
        const length = this.#bytes.reduce((sum, b) => sum + b.length, 0);
        if (position !== length) throw new Error(`a write at ${position}, not at the end (${length})`);
        this.calls.push({ kind: "write", position, length: chunk.length });
        this.#bytes.push(Buffer.from(chunk));
        return undefined;
      },
      flush: async () => {},
    };
  }

  async restart(): Promise<void> {
    this.calls.push({ kind: "restart" });
    this.#bytes = [];
  }

  async end(how: ConsumerEnd): Promise<void> {
    this.calls.push({ kind: "end", how });
  }

  get bytes(): Buffer {
    return Buffer.concat(this.#bytes);
  }

  /** What happened, writes folded into the byte span each attempt wrote: `write 0-1023`. */
  story(): string[] {
    const lines: string[] = [];
    for (const call of this.calls) {
      if (call.kind !== "write") {
        lines.push(call.kind === "end" ? `end ${call.how}` : call.kind);
        continue;
      }
      const last = lines.at(-1);
      const match = last === undefined ? null : /^write (\d+)-(\d+)$/.exec(last);
      if (match && Number(match[2]) + 1 === call.position) lines[lines.length - 1] = `write ${match[1]}-${call.position + call.length - 1}`;
      else lines.push(`write ${call.position}-${call.position + call.length - 1}`);
    }
    return lines;
  }
}

beforeEach(() => {
  vi.spyOn(Math, "random").mockReturnValue(RANDOM);
});

afterEach(() => {
  vi.restoreAllMocks();
});

interface Setup {
  url: string;
  target?: RecordingTarget;
  retries?: number;
  /** Bytes per second, through a rate limiter on the job's fake clock. */
  limitRate?: number;
}

/** The job streamWhole is given by a file or stream job, on a fake clock, with its own dispatcher. */
function streamJob(setup: Setup) {
  const clock = new FakeClock({ instantUpToMs: 40_000 });
  const warnings: string[] = [];
  const settings = resolveSettings(setup.url, [], {
    retries: setup.retries ?? 3,
    timeout: TIMEOUT_MS / 1000,
    clock,
    ...(setup.limitRate === undefined ? {} : { limitRate: setup.limitRate }),
    environment: {},
    onWarning: (message) => warnings.push(message),
  });
  const dispatcher = new Agent({ connections: 4, pipelining: 1 });
  closeAfterTest(() => dispatcher.destroy());
  const stats = new HttpStatsRecorder();
  const http = requestContext(settings, dispatcher, stats);
  const target = setup.target ?? new RecordingTarget();
  const proofs: SizeProof[] = [];
  const counters = { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 };
  const abort = new AbortController();
  const job: StreamJob = {
    settings,
    http,
    label: "test",
    first: undefined,
    target,
    counters,
    signal: abort.signal,
    proven: (proof) => proofs.push(proof),
  };
  return { job, clock, stats, target, proofs, counters, abort, warnings };
}

/** The sleeps that are not an answer deadline (one per GET sent): backoffs. */
function backoffs(clock: FakeClock): number[] {
  return clock.sleeps.filter((ms) => ms !== TIMEOUT_MS);
}

async function server(options: Partial<RangeServerOptions> = {}) {
  return rangeServer({ content, etag: '"v1"', ...options });
}

describe("streamWhole: one plain GET", () => {
  it("asks without Range or If-Range and puts every byte into the consumer once, in order, from byte 0", async () => {
    const origin = await server();
    const { job, clock, target, proofs, counters, stats } = streamJob({ url: origin.url() });
    const ended = await streamWhole(job);
    expect(ended).toEqual({ size: SIZE, finalUrl: origin.url(), validators: { etag: '"v1"', lastModified: "Tue, 02 Jan 2024 03:04:05 GMT" } });
    expect(origin.requests).toHaveLength(1);
    expect(origin.requests[0]!.headers.range).toBeUndefined();
    expect(origin.requests[0]!.headers["if-range"]).toBeUndefined();
    expect(target.story()).toEqual(["writer", `write 0-${SIZE - 1}`, "end complete"]);
    expect(target.bytes.equals(content)).toBe(true);
    expect(proofs).toEqual([{ source: "content-length", size: SIZE }]);
    expect(counters).toEqual({ bytesTransferred: SIZE, bytesAccepted: SIZE, activeConnections: 0 });
    expect(stats.snapshot().requests).toBe(1);
    expect(backoffs(clock)).toEqual([]);
  });

  it("reads the probe's own body when it is the whole file, and sends no second request", async () => {
    const marked = Buffer.from(content);
    marked.fill(0x5a, 0, 1000);
    // Ranges ignored: the probe's 200 is the whole file. Its body is marked, so only it can have written these bytes.
    const origin = await server({ acceptRanges: false, onRequest: (request) => (request.index === 0 ? { body: marked } : undefined) });
    const { job, target, proofs } = streamJob({ url: origin.url() });
    job.first = await probe(job.http, { url: origin.url(), range: { start: 0, end: 65_535 }, known: NOTHING_KNOWN, retries: 3 }, job.signal);
    expect(job.first.verdict.kind).toBe("whole");
    await streamWhole(job);
    expect(origin.requests).toHaveLength(1);
    expect(origin.requests[0]!.range).toEqual({ start: 0, end: 65_535 });
    expect(target.bytes.equals(marked)).toBe(true);
    expect(target.story()).toEqual(["writer", `write 0-${SIZE - 1}`, "end complete"]);
    // The probe's verdict proved the length; streamWhole reports it again, as its own.
    expect(proofs).toEqual([{ source: "content-length", size: SIZE }]);
  });

  it("proves a length-less body's size by its clean end", async () => {
    const origin = await server({ onRequest: () => ({ noLength: true }) });
    const { job, target, proofs } = streamJob({ url: origin.url() });
    await expect(streamWhole(job)).resolves.toMatchObject({ size: SIZE });
    expect(proofs).toEqual([{ source: "clean-end", size: SIZE }]);
    expect(target.bytes.equals(content)).toBe(true);
  });

  it("returns an empty file's 0 bytes, proven by its Content-Length", async () => {
    const origin = await rangeServer({ content: Buffer.alloc(0), etag: '"e"' });
    const { job, target, proofs } = streamJob({ url: origin.url() });
    await expect(streamWhole(job)).resolves.toMatchObject({ size: 0 });
    expect(proofs).toEqual([{ source: "content-length", size: 0 }]);
    expect(target.story()).toEqual(["writer", "end complete"]);
  });
  it("takes every byte from the rate limiter: its waits on the clock add up to the size over the rate", async () => {
    const origin = await server();
    // SIZE bytes at SIZE bytes per second: one second of waiting in all, the bucket starting empty.
    const { job, clock, target } = streamJob({ url: origin.url(), limitRate: SIZE });
    await streamWhole(job);
    expect(target.bytes.equals(content)).toBe(true);
    const waited = backoffs(clock).reduce((sum, ms) => sum + ms, 0);
    // Each sleep is rounded up to a whole ms and the bucket earns the overshoot back, so
    // only the last sleep's rounding can be left over: 1000 ms, or 1001.
    expect(waited).toBeGreaterThanOrEqual(1000);
    expect(waited).toBeLessThanOrEqual(1001);
  });
});

describe("streamWhole: retries", () => {
  it("restarts the consumer after a cut body and streams again from byte 0, after one backoff", async () => {
    const origin = await server({ onRequest: (request) => (request.index === 0 ? { dropAfterBytes: 1000 } : undefined) });
    const { job, clock, target, counters, stats } = streamJob({ url: origin.url() });
    await expect(streamWhole(job)).resolves.toMatchObject({ size: SIZE });
    expect(target.story()).toEqual(["writer", "write 0-999", "restart", "writer", `write 0-${SIZE - 1}`, "end complete"]);
    expect(target.bytes.equals(content)).toBe(true);
    expect(origin.requests.map((request) => request.headers.range)).toEqual([undefined, undefined]);
    expect(backoffs(clock)).toEqual([BACKOFF_1]);
    expect(stats.snapshot().retries).toBe(1);
    // Every byte that came counts as transferred; accepted is this attempt's.
    expect(counters).toEqual({ bytesTransferred: 1000 + SIZE, bytesAccepted: SIZE, activeConnections: 0 });
  });

  it("gives up after `retries` cut attempts in a row with NetworkError, the consumer dropped", async () => {
    const origin = await server({ onRequest: () => ({ dropAfterBytes: 1000 }) });
    const { job, clock, target, stats } = streamJob({ url: origin.url(), retries: 3 });
    const failure = await streamWhole(job).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(NetworkError);
    expect(failure).toMatchObject({ code: "ERR_NETWORK" });
    expect(origin.requests).toHaveLength(3);
    expect(backoffs(clock)).toEqual([BACKOFF_1, BACKOFF_2]);
    expect(stats.snapshot().retries).toBe(2);
    expect(target.story()).toEqual(["writer", "write 0-999", "restart", "writer", "write 0-999", "restart", "writer", "write 0-999", "end dropped"]);
  });

  it("waits exactly what a 503's Retry-After asks, then streams", async () => {
    const origin = await server({ onRequest: (request) => (request.index === 0 ? { status: 503, retryAfter: "7" } : undefined) });
    const { job, clock, target } = streamJob({ url: origin.url() });
    await streamWhole(job);
    expect(backoffs(clock)).toEqual([7000]);
    expect(origin.requests).toHaveLength(2);
    // The consumer is restarted before every attempt but the first, though the first wrote nothing.
    expect(target.story()).toEqual(["writer", "restart", "writer", `write 0-${SIZE - 1}`, "end complete"]);
  });

  it("fails at once on a 404 with HttpStatusError, no backoff, the consumer dropped", async () => {
    const origin = await server({ onRequest: () => ({ status: 404 }) });
    const { job, clock, target } = streamJob({ url: origin.url() });
    const failure = await streamWhole(job).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(HttpStatusError);
    expect(failure).toMatchObject({ code: "ERR_HTTP_STATUS", status: 404, url: origin.url() });
    expect(origin.requests).toHaveLength(1);
    expect(backoffs(clock)).toEqual([]);
    expect(target.story()).toEqual(["writer", "end dropped"]);
  });

  it("retries a plain GET answered with a slice (206 bytes 0-99/1000), then fails with IntegrityError ERR_BAD_RANGE", async () => {
    const slice = Buffer.alloc(100, 1);
    const origin = await rawServer((socket) =>
      sendAndClose(
        socket,
        Buffer.concat([Buffer.from("HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/1000\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"), slice]),
      ),
    );
    const { job, clock, target } = streamJob({ url: origin.url(), retries: 2 });
    const failure = await streamWhole(job).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect(failure).toMatchObject({ code: "ERR_BAD_RANGE" });
    expect((failure as Error).message).toContain("is not the whole file");
    expect(origin.requests).toHaveLength(2);
    expect(backoffs(clock)).toEqual([BACKOFF_1]);
    // Not one byte of a slice is written.
    expect(target.story()).toEqual(["writer", "restart", "writer", "end dropped"]);
  });

  it("fails an answer that ends short of its Content-Length and retries it", async () => {
    // Content-Length says SIZE; the connection closes after half: a cut, not a clean end.
    const origin = await rawServer((socket) =>
      sendAndClose(
        socket,
        Buffer.concat([Buffer.from(`HTTP/1.1 200 OK\r\nContent-Length: ${SIZE}\r\nETag: "v1"\r\nConnection: close\r\n\r\n`), content.subarray(0, SIZE / 2)]),
      ),
    );
    const { job, clock, target, proofs } = streamJob({ url: origin.url(), retries: 2 });
    await expect(streamWhole(job)).rejects.toBeInstanceOf(NetworkError);
    expect(origin.requests).toHaveLength(2);
    expect(backoffs(clock)).toEqual([BACKOFF_1]);
    expect(target.calls.at(-1)).toEqual({ kind: "end", how: "dropped" });
    expect(proofs).toEqual([
      { source: "content-length", size: SIZE },
      { source: "content-length", size: SIZE },
    ]);
  });
});

describe("streamWhole: a stop", () => {
  it("stops at once when its signal aborts mid-body: the abort's reason, no retry, the consumer dropped", async () => {
    const origin = await server({ bytesPerSecond: 64 * 1024 });
    const { job, clock, target, abort } = streamJob({ url: origin.url() });
    const streaming = streamWhole(job).catch((error: unknown) => error);
    await until(() => target.calls.some((call) => call.kind === "write"), "the first write");
    const reason = new Error("stopped by the test");
    abort.abort(reason);
    expect(await streaming).toBe(reason);
    expect(origin.requests).toHaveLength(1);
    expect(backoffs(clock)).toEqual([]);
    expect(target.calls.at(-1)).toEqual({ kind: "end", how: "dropped" });
    expect(target.bytes.length).toBeLessThan(SIZE);
    await until(() => origin.servingNow() === 0, "the cut answer closed");
  });
  it("stops a backoff when its signal aborts: no second request, the consumer dropped", async () => {
    // A Retry-After longer than the fake clock passes at once: the backoff waits until the abort.
    const origin = await server({ onRequest: () => ({ status: 503, retryAfter: "50" }) });
    const { job, clock, target, abort } = streamJob({ url: origin.url() });
    const streaming = streamWhole(job).catch((error: unknown) => error);
    await until(() => backoffs(clock).length > 0, "the backoff");
    expect(backoffs(clock)).toEqual([50_000]);
    const reason = new Error("stopped by the test");
    abort.abort(reason);
    expect(await streaming).toBe(reason);
    expect(origin.requests).toHaveLength(1);
    expect(target.story()).toEqual(["writer", "end dropped"]);
  });
});

describe("streamWhole: a new version on a retry", () => {
  const v2 = makeContent(SIZE, 2);

  /** The first answer is cut after 1000 bytes; the second is of `next` (the file was replaced in between). */
  function replacedAfterCut(origin: Awaited<ReturnType<typeof server>>, next: Buffer, etag: string | null) {
    origin.onRequest = (request) => {
      if (request.index === 0) return { dropAfterBytes: 1000 };
      if (request.index === 1) origin.setContent(next, { etag });
      return undefined;
    };
  }

  /** An ordered stream (the consumer of -o -) whose reader keeps everything it was given. */
  function orderedOutput() {
    const output = new OrderedOutput(streamWindow(4, 1024 * 1024));
    const given: Buffer[] = [];
    output.body.on("data", (chunk: Buffer) => given.push(chunk));
    output.body.on("error", () => {});
    return { output, given: () => Buffer.concat(given) };
  }

  it("restarts a consumer that can start over on the new version, whose validators it returns", async () => {
    const origin = await server();
    replacedAfterCut(origin, v2, '"v2"');
    const { job, target } = streamJob({ url: origin.url() });
    await expect(streamWhole(job)).resolves.toMatchObject({ size: SIZE, validators: { etag: '"v2"' } });
    expect(target.bytes.equals(v2)).toBe(true);
    expect(target.story()).toEqual(["writer", "write 0-999", "restart", "writer", `write 0-${SIZE - 1}`, "end complete"]);
  });

  it("goes on after the bytes that left an ordered stream when the retry is of the same version", async () => {
    const origin = await server({ onRequest: (request) => (request.index === 0 ? { dropAfterBytes: 1000 } : undefined) });
    const { output, given } = orderedOutput();
    const { job } = streamJob({ url: origin.url() });
    job.target = output;
    await expect(streamWhole(job)).resolves.toMatchObject({ size: SIZE });
    await output.sink.end();
    expect(given().equals(content)).toBe(true);
  });

  it("fails with RemoteChangedError when the retry's ETag differs from that of the bytes that left an ordered stream, adding none of the new version", async () => {
    const origin = await server();
    replacedAfterCut(origin, v2, '"v2"');
    const { output, given } = orderedOutput();
    const { job } = streamJob({ url: origin.url() });
    job.target = output;
    const failure = await streamWhole(job).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RemoteChangedError);
    expect((failure as Error).message).toContain('"v2"');
    expect(origin.requests).toHaveLength(2);
    expect(given().equals(content.subarray(0, 1000))).toBe(true);
  });

  it("fails with RemoteChangedError when the retry's length differs, with no validator on either answer", async () => {
    const origin = await rangeServer({ content, etag: null, lastModified: null });
    replacedAfterCut(origin, makeContent(SIZE + 1000, 2), null);
    const { output, given } = orderedOutput();
    const { job } = streamJob({ url: origin.url() });
    job.target = output;
    const failure = await streamWhole(job).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(RemoteChangedError);
    expect((failure as Error).message).toContain(`${SIZE + 1000} bytes, not ${SIZE}`);
    expect(given().equals(content.subarray(0, 1000))).toBe(true);
  });
});

/**
 * src/transfer.ts `transferRanges`, driven directly: a loopback range server, the
 * probe through src/probe.ts, and an in-memory Consumer that records every write and
 * the limit in force when it came. Time runs on a fake clock: a backoff or an idle
 * poll passes at once and is recorded; an answer deadline (60 s) never comes.
 */
import { describe, expect, it } from "vitest";
import { AbortError } from "../src/errors.js";
import { resolveSettings } from "../src/options.js";
import { probe } from "../src/probe.js";
import type { Consumer, ConsumerEnd, RangeWriter } from "../src/sink.js";
import { HttpStatsRecorder } from "../src/stats.js";
import { transferRanges, type RangedJob } from "../src/transfer.js";
import type { ProgressEvent } from "../src/types.js";
import { bodyPlacement, NOTHING_KNOWN } from "../src/verdict.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { requestContext } from "./support/http-context.js";
import type { RangeServer, RangeServerOptions } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { until } from "./support/until.js";

const RANGE = 64 * 1024;
const SIZE = 16 * RANGE;
const content = makeContent(SIZE);
const TIMEOUT_MS = 60_000;
/** How long an idle connection sleeps before it looks at the plan again (worker.ts). */
const IDLE_POLL_MS = 200;

interface Write {
  position: number;
  bytes: Buffer;
  /** `sink.limit` when the write came. */
  limit: number;
}

/** A Consumer in memory: every write recorded, a limit the test moves, no backpressure. */
class RecordingSink implements Consumer {
  readonly writes: Write[] = [];
  /** How the transfer ended it, in order: `complete`, `kept` (failed) or `dropped` (stopped). */
  readonly ends: ConsumerEnd[] = [];
  ticks = 0;
  #limit: number;
  readonly #listeners: (() => void)[] = [];

  constructor(limit = Number.POSITIVE_INFINITY) {
    this.#limit = limit;
  }

  get limit(): number {
    return this.#limit;
  }

  /** Moves the limit and tells the transfer, as an ordered stream does when its reader takes bytes. */
  setLimit(limit: number): void {
    this.#limit = limit;
    for (const listener of this.#listeners) listener();
  }

  onRoom(listener: () => void): void {
    this.#listeners.push(listener);
  }

  writer(): RangeWriter {
    return {
      write: (chunk, position) => {
        this.writes.push({ position, bytes: Buffer.from(chunk), limit: this.#limit });
        return undefined;
      },
      flush: async () => {},
    };
  }

  async checkpoint(): Promise<void> {
    this.ticks++;
  }

  async end(how: ConsumerEnd): Promise<void> {
    this.ends.push(how);
  }

  get bytesWritten(): number {
    return this.writes.reduce((sum, write) => sum + write.bytes.length, 0);
  }

  /** The writes in file order, and whether they cover [0, size) exactly once. */
  assembled(size: number): { overlaps: number; holes: number; bytes: Buffer } {
    const sorted = [...this.writes].sort((a, b) => a.position - b.position);
    let next = 0;
    let overlaps = 0;
    let holes = 0;
    for (const write of sorted) {
      if (write.position < next) overlaps++;
      if (write.position > next) holes++;
      next = Math.max(next, write.position + write.bytes.length);
    }
    if (next < size) holes++;
    const bytes = Buffer.alloc(size);
    for (const write of sorted) write.bytes.copy(bytes, write.position);
    return { overlaps, holes, bytes };
  }
}

interface Setup {
  connections?: number;
  sink?: RecordingSink;
  server?: Partial<RangeServerOptions>;
  noHedge?: boolean;
  mirrors?: string[];
  onProgress?: (event: ProgressEvent) => void;
}

/**
 * A server, the probe of its first range, and the job that hands the rest to
 * transferRanges: ranges of `RANGE` bytes (as the ordered stream plans them), 4
 * connections, on a fake clock.
 */
async function rangedJob(setup: Setup = {}) {
  const server: RangeServer = await rangeServer({ content, etag: '"v1"', ...setup.server });
  const clock = new FakeClock({ instantUpToMs: 40_000 });
  const warnings: string[] = [];
  const settings = resolveSettings(server.url(), setup.mirrors ?? [], {
    connections: setup.connections ?? 4,
    minSplit: RANGE,
    retries: 3,
    timeout: TIMEOUT_MS / 1000,
    noHedge: setup.noHedge ?? false,
    clock,
    environment: {},
    onWarning: (message) => warnings.push(message),
    ...(setup.onProgress === undefined ? {} : { onProgress: setup.onProgress }),
  });
  const stats = new HttpStatsRecorder();
  const http = requestContext({ clock, timeoutMs: TIMEOUT_MS, stats, hostLimits: settings.hostLimits, userOrigin: settings.userOrigin });
  const abort = new AbortController();
  const answer = await probe(http, { url: settings.url, range: { start: 0, end: RANGE - 1 }, known: NOTHING_KNOWN, retries: 3 }, abort.signal);
  if (answer.verdict.kind !== "bytes") throw new Error(`the probe's verdict is ${answer.verdict.kind}`);
  const sink = setup.sink ?? new RecordingSink();
  const counters = { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 };
  const job: RangedJob = {
    settings,
    http,
    stats,
    label: "test",
    answer,
    placement: bodyPlacement(answer.verdict, answer.asked)!,
    proven: () => {},
    size: answer.verdict.size,
    missing: [[0, SIZE - 1]],
    split: { minSplit: RANGE, maxRange: RANGE },
    sink,
    counters,
    signal: abort.signal,
  };
  return { server, clock, sink, job, counters, warnings, abort };
}

/** The sleeps that are neither an answer deadline nor an idle connection's poll: backoffs. */
function backoffs(clock: FakeClock): number[] {
  return clock.sleeps.filter((ms) => ms !== TIMEOUT_MS && ms !== IDLE_POLL_MS);
}

/** Every sleep is an answer deadline (one per GET sent) or an idle connection's poll: no backoff. */
function expectNoBackoff(clock: FakeClock, stats: HttpStatsRecorder): void {
  expect(clock.sleeps.filter((ms) => ms === TIMEOUT_MS)).toHaveLength(stats.snapshot().requests);
  expect(backoffs(clock)).toEqual([]);
}

describe("transferRanges", () => {
  it("writes every byte exactly once at its offset, then completes the sink", async () => {
    const { server, clock, sink, job, counters } = await rangedJob();
    await expect(transferRanges(job)).resolves.toEqual({ kind: "complete" });
    const { overlaps, holes, bytes } = sink.assembled(SIZE);
    expect({ overlaps, holes }).toEqual({ overlaps: 0, holes: 0 });
    expect(bytes.equals(content)).toBe(true);
    expect(sink.bytesWritten).toBe(SIZE);
    expect(sink.ends).toEqual(["complete"]);
    expect(counters).toMatchObject({ bytesAccepted: SIZE, activeConnections: 0 });
    expect(server.peakConcurrent()).toBeLessThanOrEqual(4);
    expectNoBackoff(clock, job.stats);
  });

  it("asks the server for no byte twice (noHedge) and for no byte of the probe's range again", async () => {
    const { server, sink, job } = await rangedJob({ noHedge: true });
    await transferRanges(job);
    expect(server.bytesServed()).toBe(SIZE);
    expect(server.requests[0]?.range).toEqual({ start: 0, end: RANGE - 1 });
    for (const sent of server.requests.slice(1)) expect(sent.range!.start).toBeGreaterThanOrEqual(RANGE);
    expect(sink.ends).toEqual(["complete"]);
  });

  it("writes the probe's own body as the first range", async () => {
    // The probe's answer carries bytes no later answer has: the sink must hold those.
    const marked = Buffer.from(content);
    marked.fill(0x5a, 0, RANGE);
    const { sink, job } = await rangedJob({ server: { onRequest: (request) => (request.index === 0 ? { body: marked } : undefined) } });
    await transferRanges(job);
    const { overlaps, holes, bytes } = sink.assembled(SIZE);
    expect({ overlaps, holes }).toEqual({ overlaps: 0, holes: 0 });
    expect(bytes.equals(marked)).toBe(true);
  });

  it("hands out no byte at or past sink.limit until onRoom says it moved", async () => {
    const sink = new RecordingSink(4 * RANGE);
    // What the limit was when each range was asked for.
    const asked: { start: number; end: number; limit: number }[] = [];
    const { server, clock, job, counters } = await rangedJob({
      sink,
      server: { onRequest: (request) => void asked.push({ start: request.range!.start, end: request.range!.end!, limit: sink.limit }) },
    });
    const transfer = transferRanges(job);
    const idlePolls = () => clock.sleeps.filter((ms) => ms === IDLE_POLL_MS).length;
    const writtenEnd = () => Math.max(...sink.writes.map((write) => write.position + write.bytes.length));
    for (const [limit, next] of [[4 * RANGE, 9 * RANGE + 100], [9 * RANGE + 100, Number.POSITIVE_INFINITY]] as const) {
      // The window is used (a piece cut short by the limit waits until it is a range long:
      // ranges.ts) and no range is in flight...
      await until(() => sink.bytesWritten > limit - RANGE && counters.activeConnections === 0, "the window full and every connection idle");
      // ...and every connection has looked at the plan again, several times, and found nothing.
      const polls = idlePolls();
      await until(() => idlePolls() >= polls + 3 * 4 || writtenEnd() > limit, "three more polls of each idle connection, or a write past the window");
      expect(writtenEnd()).toBeLessThanOrEqual(limit);
      expect(counters.activeConnections).toBe(0);
      sink.setLimit(next);
    }
    await expect(transfer).resolves.toEqual({ kind: "complete" });
    for (const write of sink.writes) expect(write.position + write.bytes.length).toBeLessThanOrEqual(write.limit);
    for (const range of asked) expect(range.end).toBeLessThan(range.limit);
    expect(asked.some((range) => range.end >= 9 * RANGE + 100)).toBe(true);
    const { overlaps, holes, bytes } = sink.assembled(SIZE);
    expect({ overlaps, holes }).toEqual({ overlaps: 0, holes: 0 });
    expect(bytes.equals(content)).toBe(true);
    expect(server.requests.length).toBe(asked.length);
  });

  it("returns `changed` as a value when the server's validator changes mid-transfer, after ending the sink `dropped`", async () => {
    // The file is rewritten as the second worker's request arrives: that answer, and every later one, is of "v2".
    const { server, clock, sink, job, abort } = await rangedJob({
      server: {
        onRequest: (request) => {
          if (request.index === 2) server.setContent(makeContent(SIZE, 2), { etag: '"v2"' });
          return undefined;
        },
      },
    });
    const outcome = await transferRanges(job);
    expect(outcome.kind).toBe("changed");
    const { reason } = outcome as Extract<typeof outcome, { kind: "changed" }>;
    expect(reason).toMatch(new RegExp(`^the remote file at ${server.url().replace(/[.]/g, "\\.")} changed during the download: `));
    expect(sink.ends).toEqual(["dropped"]);
    // The first stop stops every other connection; the caller's signal is the caller's own.
    await until(() => server.servingNow() === 0, "the server serving no answer");
    expect(abort.signal.aborted).toBe(false);
    // Bytes of the old version only: none of the new one was written.
    for (const write of sink.writes) expect(write.bytes.equals(content.subarray(write.position, write.position + write.bytes.length))).toBe(true);
    expectNoBackoff(clock, job.stats);
  });

  it("returns `ranges-ignored` as a value when the server ignores every range after the probe's", async () => {
    const { server, sink, job, abort } = await rangedJob({
      server: { onRequest: (request) => (request.index === 0 ? undefined : { ignoreRange: true }) },
    });
    await expect(transferRanges(job)).resolves.toEqual({ kind: "ranges-ignored", reason: expect.stringContaining("ignored the range bytes") });
    expect(sink.ends).toEqual(["dropped"]);
    expect(abort.signal.aborted).toBe(false);
    // Every answer after the probe's was a 200 of the whole file.
    expect(server.requests.slice(1).map((sent) => sent.status)).not.toContain(206);
    expect(server.requests.length).toBeGreaterThan(1);
    await until(() => server.servingNow() === 0, "the server serving no answer");
  });

  it("stops every connection when the caller's signal aborts, and rejects with the reason after ending the sink `kept`", async () => {
    // Every answer stalls after its first 1000 bytes: the connections stay open until stopped.
    const { server, sink, job, counters, abort } = await rangedJob({ server: { onRequest: () => ({ stallAfterBytes: 1000 }) } });
    const transfer = transferRanges(job);
    await until(() => server.servingNow() === 4 && counters.activeConnections === 4, "four answers in flight on four connections");
    const reason = new AbortError();
    abort.abort(reason);
    await expect(transfer).rejects.toBe(reason);
    expect(sink.ends).toEqual(["kept"]);
    expect(counters.activeConnections).toBe(0);
    const requests = server.requests.length;
    await until(() => server.servingNow() === 0, "the server serving no answer");
    expect(server.requests.length).toBe(requests);
  });

  it("resumes a range cut mid-answer from its last byte, after one backoff of at most the first retry's 500 ms", async () => {
    const { server, clock, sink, job } = await rangedJob({
      noHedge: true,
      server: { onRequest: (request) => (request.index === 2 ? { dropAfterBytes: 10_000 } : undefined) },
    });
    await expect(transferRanges(job)).resolves.toEqual({ kind: "complete" });
    const cut = server.requests[2]!.range!;
    expect(server.requests.some((sent) => sent.index > 2 && sent.range?.start === cut.start + 10_000)).toBe(true);
    const { overlaps, holes, bytes } = sink.assembled(SIZE);
    expect({ overlaps, holes }).toEqual({ overlaps: 0, holes: 0 });
    expect(bytes.equals(content)).toBe(true);
    expect(server.bytesServed()).toBe(SIZE);
    expect(backoffs(clock)).toHaveLength(1);
    expect(backoffs(clock)[0]).toBeGreaterThanOrEqual(0);
    expect(backoffs(clock)[0]).toBeLessThanOrEqual(500);
  });

  it("deals connections to a mirror once its one-byte probe proved the same size", async () => {
    const mirror = await rangeServer({ content, etag: '"mirror-tag"' });
    const { server, sink, job, warnings } = await rangedJob({ mirrors: [mirror.url("/copy.bin")], noHedge: true });
    await expect(transferRanges(job)).resolves.toEqual({ kind: "complete" });
    expect(mirror.requests[0]?.range).toEqual({ start: 0, end: 0 });
    expect(mirror.requests.length).toBeGreaterThan(1);
    // Each byte once, from one copy or the other; the mirror's probe byte is not written.
    expect(server.bytesServed() + mirror.bytesServed()).toBe(SIZE + 1);
    const { overlaps, holes, bytes } = sink.assembled(SIZE);
    expect({ overlaps, holes }).toEqual({ overlaps: 0, holes: 0 });
    expect(bytes.equals(content)).toBe(true);
    expect(warnings).toEqual([]);
  });

  it("ignores a mirror of another size with a warning, and fetches everything from the URL", async () => {
    const mirror = await rangeServer({ content: makeContent(SIZE - 1) });
    const { server, sink, job, warnings } = await rangedJob({ mirrors: [mirror.url()] });
    await expect(transferRanges(job)).resolves.toEqual({ kind: "complete" });
    expect(mirror.requests.map((sent) => sent.range)).toEqual([{ start: 0, end: 0 }]);
    expect(warnings).toEqual([`ignoring mirror ${mirror.url()}: the mirror has ${SIZE - 1} bytes, the file has ${SIZE}`]);
    expect(sink.assembled(SIZE).bytes.equals(content)).toBe(true);
    expect(server.requests.length).toBeGreaterThan(1);
  });

  it("reports progress every 250 ms and ticks the sink once a second, on the job's clock", async () => {
    const progress: ProgressEvent[] = [];
    const { server, clock, sink, job, counters, abort } = await rangedJob({
      noHedge: true,
      onProgress: (event) => progress.push(event),
      server: { onRequest: () => ({ stallAfterBytes: 1000 }) },
    });
    const transfer = transferRanges(job);
    await until(() => server.servingNow() === 4 && counters.activeConnections === 4 && counters.bytesAccepted === 4 * 1000, "four connections with 1000 bytes accepted each");
    // Nothing has moved the clock yet: no tick is due.
    expect(clock.now()).toBe(0);
    expect({ progress: progress.length, ticks: sink.ticks }).toEqual({ progress: 0, ticks: 0 });
    for (let step = 1; step <= 4; step++) clock.advance(250);
    await until(() => sink.ticks === 1, "the first tick");
    expect(progress).toHaveLength(4);
    expect(progress.at(-1)).toMatchObject({ path: "test", bytesDone: 4000, size: SIZE, activeConnections: 4 });
    // (A tick sees the clock's time after the whole advance: a quarter second at a time, as it runs.)
    for (let step = 1; step <= 3; step++) clock.advance(250);
    expect(progress).toHaveLength(7);
    expect(sink.ticks).toBe(1);
    clock.advance(250);
    await until(() => sink.ticks === 2, "the second tick");
    expect(progress).toHaveLength(8);
    abort.abort(new AbortError());
    await expect(transfer).rejects.toBeInstanceOf(AbortError);
    // The ticker stopped with the transfer.
    clock.advance(5000);
    expect(progress).toHaveLength(8);
    expect(sink.ticks).toBe(2);
  });
});

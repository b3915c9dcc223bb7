import { open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { HttpStatusError, NetworkError } from "../src/errors.js";
import { hostKey, HostLimits } from "../src/host-limits.js";
import { requestResponse } from "../src/request.js";
import { IntervalSet, RangePlanner, type Interval } from "../src/ranges.js";
import { RateSampler } from "../src/rates.js";
import { PartFileSink } from "../src/part-sink.js";
import type { SizeProof } from "../src/verdict.js";
import type { Source } from "../src/sources.js";
import { IdleConnections, runWorker, type TransferContext } from "../src/worker.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { requestContext } from "./support/http-context.js";
import type { RangeServer } from "./support/range-server.js";
import { closeAfterTest, rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const SIZE = 64 * 1024;
const content = makeContent(SIZE);

function source(server: RangeServer, extra: Partial<Source> = {}): Source {
  return {
    url: server.url(),
    requestedUrl: server.url(),
    origin: server.origin,
    etag: null,
    lastModified: null,
    ifRange: undefined,
    primary: true,
    failed: false,
    ...extra,
  };
}

/**
 * What runWorker shares with the other connections of one download: a real sparse
 * `.part` in a temp dir, a planner over `missing`, the default connection cap per host,
 * the sizes answers prove (`proofs`), and a fake clock on which backoffs and idle waits
 * pass at once (the 60 s answer deadline never comes).
 */
async function transfer(sources: Source[], options: { retries?: number; missing?: Interval[]; minSplit?: number } = {}) {
  const path = join(await tempDir(), "file.bin");
  const partPath = `${path}.part`;
  const file = await open(partPath, "w+");
  closeAfterTest(() => file.close());
  await file.truncate(SIZE);
  const clock = new FakeClock({ instantUpToMs: 40_000 });
  const done = new IntervalSet();
  const warnings: string[] = [];
  const proofs: SizeProof[] = [];
  const hostLimits = new HostLimits(16);
  const context: TransferContext = {
    http: requestContext({ clock, timeoutMs: 60_000, hostLimits }),
    sources,
    size: SIZE,
    retries: options.retries ?? 3,
    sink: new PartFileSink(file, path, { version: 1, url: "", finalUrl: "", size: SIZE, etag: null, lastModified: null, done: [] }, done, clock),
    planner: new RangePlanner(options.missing ?? [[0, SIZE - 1]], 1, options.minSplit ?? 8 * 1024),
    signal: new AbortController().signal,
    rateLimiter: undefined,
    proven: (proof) => proofs.push(proof),
    counters: { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 },
    answers: { ranged: 0 },
    interrupts: new Map(),
    idle: new IdleConnections((ms, signal) => clock.sleep(ms, signal)),
    pickHedge: () => undefined,
    rates: new RateSampler(),
    warn: (message) => warnings.push(message),
  };
  return { context, done, warnings, proofs, partPath };
}

describe("runWorker", () => {
  it("fetches its range into the .part with If-Range, and ends when every byte is written", async () => {
    const server = await rangeServer({ content, etag: '"v1"' });
    const { context, done, proofs, partPath } = await transfer([source(server, { etag: '"v1"', ifRange: '"v1"' })]);
    await runWorker(context, 0);
    expect(server.requests.map((sent) => sent.range)).toEqual([{ start: 0, end: SIZE - 1 }]);
    expect(server.requests[0]?.headers["if-range"]).toBe('"v1"');
    expect(done.toArray()).toEqual([[0, SIZE - 1]]);
    expect((await readFile(partPath)).equals(content)).toBe(true);
    expect(context.planner.finished).toBe(true);
    expect(context.counters).toMatchObject({ bytesAccepted: SIZE, activeConnections: 0 });
    // The 206's Content-Range proved the size, to be weighed before the file is published.
    expect(proofs).toEqual([{ source: "content-range", size: SIZE }]);
    // The worker's connection to its host is given back when it ends.
    expect(context.http.hostLimits.inUse(hostKey(server.url()))).toBe(0);
  });

  it("fetches only the missing pieces it is given", async () => {
    const server = await rangeServer({ content });
    const { context, done } = await transfer([source(server)], { missing: [[1000, 1999], [5000, 5999]], minSplit: 512 });
    await runWorker(context, 0);
    expect(server.requests.map((sent) => sent.range)).toEqual([
      { start: 1000, end: 1999 },
      { start: 5000, end: 5999 },
    ]);
    expect(done.toArray()).toEqual([
      [1000, 1999],
      [5000, 5999],
    ]);
  });

  it("resumes from the first byte it does not have after the connection drops mid-body", async () => {
    const server = await rangeServer({ content, onRequest: (sent) => (sent.index === 0 ? { dropAfterBytes: 3000 } : undefined) });
    const { context, partPath } = await transfer([source(server)]);
    await runWorker(context, 0);
    expect(server.requests.map((sent) => sent.range)).toEqual([
      { start: 0, end: SIZE - 1 },
      { start: 3000, end: SIZE - 1 },
    ]);
    expect((await readFile(partPath)).equals(content)).toBe(true);
    expect(context.http.stats.snapshot().retries).toBe(1);
  });

  it("keeps going while each attempt brings new bytes, however many attempts that takes", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ dropAfterBytes: 8 * 1024 }) });
    const { context, partPath } = await transfer([source(server)], { retries: 2 });
    await runWorker(context, 0);
    expect(server.requests).toHaveLength(SIZE / (8 * 1024));
    expect((await readFile(partPath)).equals(content)).toBe(true);
  });

  it("gives up after `retries` attempts in a row without a new byte, handing the range back", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ status: 503 }) });
    const { context } = await transfer([source(server)], { retries: 3 });
    const error = await runWorker(context, 0).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect(server.requests).toHaveLength(3);
    expect(context.planner.unassigned).toEqual([[0, SIZE - 1]]);
  });

  it("gives up with a NetworkError when every attempt is cut before the first byte", async () => {
    const server = await rangeServer({ content, onRequest: () => ({ dropAfterBytes: 0 }) });
    const { context } = await transfer([source(server)], { retries: 2 });
    const error = await runWorker(context, 0).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(NetworkError);
    expect(server.requests).toHaveLength(2);
  });

  it("steals the back half of a range another connection is still fetching", async () => {
    const server = await rangeServer({ content });
    const { context, partPath } = await transfer([source(server)], { missing: [] });
    // The first connection's range is the probe's: already under way when the second starts.
    const first = context.planner.adopt(0, SIZE - 1);
    const response = await requestResponse(context.http, { url: server.url(), range: { start: 0, end: SIZE - 1 }, signal: context.signal });
    const workers = [runWorker(context, 0, { assignment: first, body: { response, skip: 0, end: SIZE - 1 } }), runWorker(context, 1)];
    expect(first.end).toBe(SIZE / 2 - 1);
    await Promise.all(workers);
    expect(server.requests[1]?.range).toEqual({ start: SIZE / 2, end: SIZE - 1 });
    expect((await readFile(partPath)).equals(content)).toBe(true);
  });

  it("drops a mirror that fails and fetches its range from the URL instead, with a warning", async () => {
    const primary = await rangeServer({ content });
    const mirror = await rangeServer({ content, onRequest: () => ({ status: 404 }) });
    const sources = [source(primary), source(mirror, { primary: false })];
    const { context, warnings, partPath } = await transfer(sources);
    await runWorker(context, 1);
    expect(sources[1]?.failed).toBe(true);
    expect(mirror.requests).toHaveLength(1);
    expect(primary.requests.map((sent) => sent.range)).toEqual([{ start: 0, end: SIZE - 1 }]);
    expect(warnings).toEqual([expect.stringContaining(`dropping ${mirror.url()}`)]);
    expect((await readFile(partPath)).equals(content)).toBe(true);
  });

  it("drops a mirror whose copy changed, but stops with `changed` when the URL's own file changed", async () => {
    const changed = makeContent(SIZE + 1, 2);
    const primary = await rangeServer({ content: changed });
    const mirror = await rangeServer({ content });
    const sources = [source(primary), source(mirror, { primary: false })];
    const { context, warnings } = await transfer(sources);
    // A value, not an error: the transfer acts on it (next-step.ts), nothing retries it.
    expect(await runWorker(context, 0)).toEqual({ kind: "changed", reason: expect.stringContaining(`the remote file at ${primary.url()} changed during the download`) });
    expect(primary.requests).toHaveLength(1);
    expect(sources[0]?.failed).toBe(false);
    expect(warnings).toEqual([]);

    const { context: mirrored, warnings: mirrorWarnings } = await transfer([source(mirror), source(primary, { primary: false })]);
    await runWorker(mirrored, 1);
    expect(mirrorWarnings).toEqual([expect.stringContaining("changed during the download")]);
  });

  it("fails when the last working copy fails: there is nothing left to drop it for", async () => {
    const primary = await rangeServer({ content, onRequest: () => ({ status: 404 }) });
    const mirror = await rangeServer({ content, onRequest: () => ({ status: 410 }) });
    const sources = [source(primary), source(mirror, { primary: false })];
    const { context } = await transfer(sources);
    const error = await runWorker(context, 1).catch((caught: unknown) => caught);
    expect((error as HttpStatusError).status).toBe(404);
    expect(sources.map((copy) => copy.failed)).toEqual([false, true]);
  });

  it.each<[string, string, Record<string, unknown>]>([
    // A weak ETag cannot prove the same bytes (RFC 9110 8.8.3.2), so nothing proves the same version.
    ["the whole file (200) to a ranged request, with only a weak ETag to compare", 'W/"v1"', { partialStatus: 200 }],
    ["a new strong ETag", '"v1"', { headers: { etag: '"v2"' } }],
  ])("takes %s as a change of the file", async (_name, etag, behaviour) => {
    const server = await rangeServer({ content, etag, onRequest: () => behaviour });
    const { context } = await transfer([source(server, { etag })]);
    expect(await runWorker(context, 0)).toEqual({ kind: "changed", reason: expect.stringContaining("changed during the download") });
    expect(server.requests).toHaveLength(1);
  });

  it("takes the whole file (200) under the same strong ETag as a range the server ignored, not a change, and writes it", async () => {
    const server = await rangeServer({ content, etag: '"v1"', onRequest: () => ({ partialStatus: 200 }) });
    const { context, partPath } = await transfer([source(server, { etag: '"v1"' })]);
    await runWorker(context, 0);
    expect(server.requests).toHaveLength(1);
    expect((await readFile(partPath)).equals(content)).toBe(true);
  });
});

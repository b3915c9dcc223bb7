// The `.part` on a volume without sparse files (exFAT, FAT32, NTFS under Windows), through
// a Volume value that says so (this temp dir's own volume has sparse files): bytes reach
// the file only in file order, appended at its end, whatever order the parallel ranges
// deliver them in; and the disk a kill leaves mid-transfer resumes to exact bytes.
import { copyFile, open, readFile, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { AppendingSink, appendWindowBytes, partSink } from "../src/appending-sink.js";
import { createDispatcher } from "../src/dispatcher.js";
import { FileError } from "../src/errors.js";
import { requestContext } from "../src/job-context.js";
import { readManifest, type Manifest } from "../src/manifest.js";
import { resolveSettings } from "../src/options.js";
import { writesInFileOrder } from "../src/part-file.js";
import { PartFileSink } from "../src/part-sink.js";
import type { Volume } from "../src/platform.js";
import { probe } from "../src/probe.js";
import { IntervalSet, type Interval } from "../src/ranges.js";
import type { Consumer } from "../src/sink.js";
import { HttpStatsRecorder } from "../src/stats.js";
import { transferRanges } from "../src/transfer.js";
import { bodyPlacement, NOTHING_KNOWN } from "../src/verdict.js";
import { makeContent, sha256 } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { closeAfterTest, rangeServer } from "./support/servers.js";
import { spyOn, type WritevCall } from "./support/file-spy.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;
const MiB = 1024 * KiB;

const NOT_SPARSE: Volume = { sparse: false, caseInsensitive: true, largestFile: undefined };
const SPARSE: Volume = { sparse: true, caseInsensitive: false, largestFile: undefined };

/** Every write starts where the one before ended, from `start`: the file only ever grew at its end. */
function expectAppended(calls: WritevCall[], start: number, end: number): void {
  let position = start;
  for (const call of calls) {
    expect(call.position).toBe(position);
    position += call.bytes;
  }
  expect(position).toBe(end);
}

function manifestOf(size: number, done: readonly Interval[] = []): Manifest {
  return { version: 1, url: "http://127.0.0.1/file.bin", finalUrl: "http://127.0.0.1/file.bin", size, etag: null, lastModified: null, done: [...done] };
}

/** A file's content and where its output goes, in a fresh temp dir. */
async function fresh(name: string, size: number, seed: number): Promise<{ content: Buffer; path: string }> {
  return { content: makeContent(size, seed), path: join(await tempDir(), name) };
}

describe("appendWindowBytes", () => {
  it("is two ranges per connection up to 64 MiB, and never fewer than two ranges", () => {
    expect(appendWindowBytes(8, 4 * MiB)).toBe(64 * MiB);
    expect(appendWindowBytes(4, 1 * MiB)).toBe(8 * MiB);
    expect(appendWindowBytes(32, 4 * MiB)).toBe(64 * MiB);
    // --min-split 64M: the planner hands out only whole 64 MiB ranges, so two must fit.
    expect(appendWindowBytes(8, 64 * MiB)).toBe(128 * MiB);
  });
});

describe("the sink of a .part", () => {
  it("appends in file order where the volume has no sparse files, and writes at each range's offsets where it has", async () => {
    const dir = await tempDir();
    const file = await open(join(dir, "f.bin.part"), "w+");
    closeAfterTest(() => file.close().catch(() => {}));
    const args = [file, join(dir, "f.bin"), manifestOf(1 * MiB), new IntervalSet(), undefined, { connections: 4, minSplit: 64 * KiB, clock: new FakeClock() }] as const;
    expect(await partSink(...args, NOT_SPARSE)).toBeInstanceOf(AppendingSink);
    expect(await partSink(...args, SPARSE)).toBeInstanceOf(PartFileSink);
    expect(await writesInFileOrder(dir, NOT_SPARSE)).toBe(true);
    expect(await writesInFileOrder(dir, SPARSE)).toBe(false);
  });
});

describe("AppendingSink", () => {
  it("appends bytes in file order whatever order the ranges deliver them in, and holds none past its window", async () => {
    const size = 256 * KiB;
    const { content, path } = await fresh("order.bin", size, 41);
    const real = await open(`${path}.part`, "w+");
    const { file, calls } = spyOn(real);
    const done = new IntervalSet();
    const sink = new AppendingSink(file, { path, manifest: manifestOf(size), done, windowBytes: 128 * KiB, rangeBytes: 32 * KiB, clock: new FakeClock() });
    expect(sink.limit).toBe(128 * KiB);
    // Four ranges of 32 KiB fill the window: the last three first, 4 KiB at a time, interleaved.
    const chunksOf = (start: number) => [0, 1, 2, 3, 4, 5, 6, 7].map((chunk) => start + chunk * 4 * KiB);
    const deliver = (position: number) => sink.writer().write(content.subarray(position, position + 4 * KiB), position);
    for (let chunk = 0; chunk < 8; chunk++) {
      for (const start of [96 * KiB, 64 * KiB, 32 * KiB]) expect(deliver(start + chunk * 4 * KiB)).toBeUndefined();
    }
    // Nothing is on disk yet (the first range is missing), and bytes past the window wait.
    const beyond = sink.writer().write(content.subarray(128 * KiB, 160 * KiB), 128 * KiB);
    expect(beyond).toBeInstanceOf(Promise);
    expect(calls).toEqual([]);
    // The first range, back to front: the written end moves, and the window with it.
    for (const position of chunksOf(0).reverse()) expect(deliver(position)).toBeUndefined();
    await beyond;
    expect(sink.limit).toBeGreaterThanOrEqual(256 * KiB);
    expect(sink.writer().write(content.subarray(160 * KiB), 160 * KiB)).toBeUndefined();
    await sink.end("complete");
    expectAppended(calls, 0, size);
    expect(calls.length).toBeGreaterThan(1);
    expect(done.toArray()).toEqual([[0, size - 1]]);
    await real.close();
    expect((await readFile(`${path}.part`)).equals(content)).toBe(true);
  });

  it("resumes at the written end, and reads back bytes an earlier run left past a gap instead of leaving them out", async () => {
    const size = 192 * KiB;
    const { content, path } = await fresh("gap.bin", size, 42);
    // An earlier run left [0, 64K) and [96K, 128K) on disk, the gap zero, the file short of the end.
    const left = Buffer.concat([content.subarray(0, 64 * KiB), Buffer.alloc(32 * KiB), content.subarray(96 * KiB, 128 * KiB)]);
    await writeFile(`${path}.part`, left);
    const real = await open(`${path}.part`, "r+");
    const { file, calls } = spyOn(real);
    const onDisk: Interval[] = [
      [0, 64 * KiB - 1],
      [96 * KiB, 128 * KiB - 1],
    ];
    const done = IntervalSet.from(onDisk);
    const sink = new AppendingSink(file, { path, manifest: manifestOf(size, onDisk), done, windowBytes: 256 * KiB, rangeBytes: 32 * KiB, clock: new FakeClock() });
    // Only the missing bytes are handed in, as the planner would.
    for (const [start, end] of done.missing(size)) sink.writer().write(content.subarray(start, end + 1), start);
    await sink.end("complete");
    expectAppended(calls, 64 * KiB, size);
    await real.close();
    expect((await readFile(`${path}.part`)).equals(content)).toBe(true);
  });

  it("fails every connection with the file's error when an append fails, keeping what was written", async () => {
    const size = 128 * KiB;
    const { content, path } = await fresh("full.bin", size, 43);
    const real = await open(`${path}.part`, "w+");
    closeAfterTest(() => real.close().catch(() => {}));
    const { file, calls } = spyOn(real, (writev, buffers, position) =>
      calls.length === 1 ? writev(buffers, position) : Promise.reject(Object.assign(new Error("ENOSPC: no space left on device"), { code: "ENOSPC" })),
    );
    const done = new IntervalSet();
    const sink = new AppendingSink(file, { path, manifest: manifestOf(size), done, windowBytes: 256 * KiB, rangeBytes: 32 * KiB, clock: new FakeClock() });
    const writer = sink.writer();
    writer.write(content.subarray(0, 16 * KiB), 0);
    const failure = await (async () => {
      for (let position = 16 * KiB; position < size; position += 16 * KiB) {
        await writer.write(content.subarray(position, position + 16 * KiB), position);
        await new Promise((resolve) => setImmediate(resolve));
      }
      return sink.end("complete");
    })().catch((error: unknown) => error);
    // As the transfer does when a connection fails.
    await sink.end("kept");
    expect(failure).toBeInstanceOf(FileError);
    expect((failure as FileError).code).toBe("ERR_NO_SPACE");
    expect(done.toArray()).toEqual([[0, 16 * KiB - 1]]);
    // The last checkpoint names what was written, for a re-run to resume.
    expect((await readManifest(`${path}.part.json`, manifestOf(size).url))).toMatchObject({ trusted: true, manifest: { done: [[0, 16 * KiB - 1]] } });
  });
});

/**
 * A parallel transfer of `server`'s file into `path`'s `.part` on a volume without sparse
 * files, as file-download.ts runs it: a probe for the first missing range, the planner
 * over what is missing, the sink `partSink` picks. `onTick` runs after each checkpoint.
 */
async function transferWithoutSparse(url: string, size: number, path: string, done: IntervalSet, file: FileHandle, onTick?: () => Promise<void>) {
  const settings = resolveSettings(url, [], { connections: 4, minSplit: 64 * KiB, retries: 2 });
  const dispatcher = createDispatcher({ connections: 4, timeoutMs: settings.timeoutMs });
  closeAfterTest(() => dispatcher.close());
  const stats = new HttpStatsRecorder();
  const http = requestContext(settings, dispatcher, stats);
  const missing = done.missing(size);
  const first = missing[0]!;
  const abort = new AbortController();
  const answer = await probe(http, { url, range: { start: first[0], end: Math.min(first[1], first[0] + 64 * KiB - 1) }, known: NOTHING_KNOWN, retries: 2 }, abort.signal);
  if (answer.verdict.kind !== "bytes") throw new Error(`the probe said ${answer.verdict.kind}`);
  const manifest = manifestOf(size, done.toArray());
  const sink = await partSink(file, path, manifest, done, undefined, settings, NOT_SPARSE);
  // The sink as it is, but for a look at the disk after each checkpoint.
  const watched: Consumer = {
    get limit() {
      return sink.limit;
    },
    onRoom: (listener) => sink.onRoom?.(listener),
    writer: () => sink.writer(),
    checkpoint: async () => {
      await sink.checkpoint?.();
      await onTick?.();
    },
    end: (how) => sink.end!(how),
  };
  return transferRanges({
    settings,
    http,
    stats,
    label: path,
    answer,
    placement: bodyPlacement(answer.verdict, answer.asked)!,
    proven: () => {},
    size,
    missing,
    split: { minSplit: 64 * KiB, maxRange: 64 * KiB },
    sink: watched,
    counters: { bytesTransferred: 0, bytesAccepted: 0, activeConnections: 0 },
    signal: abort.signal,
  });
}

describe("a parallel download onto a volume without sparse files", () => {
  it("appends in order over four connections, and the disk a kill leaves mid-transfer resumes to exact bytes", async () => {
    const size = 2 * MiB;
    const content = makeContent(size, 44);
    // 256 KiB/s a connection: about two seconds, so a checkpoint comes while ranges are in flight.
    const server = await rangeServer({ content, bytesPerSecond: 256 * KiB });
    const dir = await tempDir();
    const path = join(dir, "big.bin");
    const crashed = join(dir, "crashed.bin");
    const real = await open(`${path}.part`, "w+");
    const { file, calls } = spyOn(real);
    // The disk as a SIGKILL leaves it: the manifest of a checkpoint, then the .part as it
    // is a moment later (appends only ever add after what the manifest names).
    let copied = false;
    const takeCopy = async () => {
      if (copied) return;
      copied = true;
      await copyFile(`${path}.part.json`, `${crashed}.part.json`);
      await copyFile(`${path}.part`, `${crashed}.part`);
    };
    const outcome = await transferWithoutSparse(server.url("/big.bin"), size, path, new IntervalSet(), file, takeCopy);
    expect(outcome).toEqual({ kind: "complete" });
    expectAppended(calls, 0, size);
    expect(new Set(server.requests.map((request) => request.range?.start)).size).toBeGreaterThan(4);
    await real.close();
    expect(sha256(await readFile(`${path}.part`))).toBe(sha256(content));

    // The resume: from the crashed copy's manifest, only what it does not name is fetched.
    expect(copied).toBe(true);
    const check = await readManifest(`${crashed}.part.json`, manifestOf(size).url);
    if (!check?.trusted) throw new Error("the crashed copy's manifest is not trusted");
    const done = IntervalSet.from(check.manifest.done);
    const kept = done.bytes;
    expect(kept).toBeGreaterThan(0);
    expect(kept).toBeLessThan(size);
    expect(check.manifest.done).toEqual([[0, kept - 1]]);
    server.bytesPerSecond = undefined;
    const served = server.bytesServed();
    const resumedReal = await open(`${crashed}.part`, "r+");
    const resumed = spyOn(resumedReal);
    expect(await transferWithoutSparse(server.url("/big.bin"), size, crashed, done, resumed.file)).toEqual({ kind: "complete" });
    expectAppended(resumed.calls, kept, size);
    await resumedReal.close();
    expect(sha256(await readFile(`${crashed}.part`))).toBe(sha256(content));
    expect(server.bytesServed() - served).toBeLessThan(size);
  });
});

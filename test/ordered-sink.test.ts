import { createHash } from "node:crypto";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FileError } from "../src/errors.js";
import { MAX_DEFAULT_WINDOW_BYTES, OrderedSink, streamWindow } from "../src/ordered-sink.js";
import { RangePlanner, type Assignment } from "../src/ranges.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** Deterministic, position-dependent content, so a byte in the wrong place shows. */
function pattern(start: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  for (let index = 0; index < length; index++) buffer[index] = ((start + index) * 31 + 7) % 251;
  return buffer;
}

async function collect(sink: OrderedSink): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of sink.body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Resolves with "pending" if `promise` has not settled after the microtask queue drained. */
async function state(promise: Promise<unknown> | undefined): Promise<"none" | "pending" | "resolved" | "rejected"> {
  if (promise === undefined) return "none";
  let settled: "resolved" | "rejected" | undefined;
  promise.then(
    () => (settled = "resolved"),
    () => (settled = "rejected"),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return settled ?? "pending";
}

describe("streamWindow", () => {
  it.each<[string, number, number, number | undefined, { windowBytes: number; rangeBytes: number }]>([
    ["two ranges per connection: -c 4 --min-split 1M", 4, 1 * MiB, undefined, { windowBytes: 8 * MiB, rangeBytes: 1 * MiB }],
    ["the defaults: -c 8, 4 MiB", 8, 4 * MiB, undefined, { windowBytes: 64 * MiB, rangeBytes: 4 * MiB }],
    ["capped at 64 MiB, with smaller ranges so each connection has two", 64, 4 * MiB, undefined, { windowBytes: 64 * MiB, rangeBytes: 512 * KiB }],
    ["never below 1 MiB", 1, 64 * KiB, undefined, { windowBytes: 1 * MiB, rangeBytes: 64 * KiB }],
    ["a window the user gave", 8, 4 * MiB, 16 * MiB, { windowBytes: 16 * MiB, rangeBytes: 1 * MiB }],
    ["ranges never below 64 KiB", 64, 4 * MiB, 1 * MiB, { windowBytes: 1 * MiB, rangeBytes: 64 * KiB }],
  ])("%s", (_name, connections, minSplit, window, expected) => {
    expect(streamWindow(connections, minSplit, window)).toEqual(expected);
  });

  it("keeps at least two ranges inside the window and never exceeds the cap by default", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.integer({ min: 1, max: 2 ** 32 }), (connections, minSplit) => {
        const { windowBytes, rangeBytes } = streamWindow(connections, minSplit);
        expect(windowBytes).toBeLessThanOrEqual(MAX_DEFAULT_WINDOW_BYTES);
        expect(2 * rangeBytes).toBeLessThanOrEqual(windowBytes);
      }),
    );
  });
});

describe("OrderedSink", () => {
  it("emits bytes written in any order, in file order, each exactly once", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 300 }), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        async (lengths, seed) => {
          const size = lengths.reduce((sum, length) => sum + length, 0);
          const sink = new OrderedSink({ windowBytes: size + 1, size });
          const chunks: [number, Buffer][] = [];
          let offset = 0;
          for (const length of lengths) {
            chunks.push([offset, pattern(offset, length)]);
            offset += length;
          }
          // A seeded shuffle: the order connections happen to deliver in.
          let random = seed;
          for (let index = chunks.length - 1; index > 0; index--) {
            random = (random * 1103515245 + 12345) % 2 ** 31;
            const other = random % (index + 1);
            [chunks[index], chunks[other]] = [chunks[other]!, chunks[index]!];
          }
          const output = collect(sink);
          for (const [position, chunk] of chunks) await sink.write(chunk, position);
          await sink.end();
          expect((await output).equals(pattern(0, size))).toBe(true);
        },
      ),
      { numRuns: 50 },
    );
  });

  it("drops bytes that already left when a retry or hedge delivers them again", async () => {
    const sink = new OrderedSink({ windowBytes: MiB, size: 300 });
    const output = collect(sink);
    sink.write(pattern(0, 200), 0);
    // A hedge that re-sends 100-199 and brings 200-249; then a retry of 0-49.
    sink.write(pattern(100, 150), 100);
    sink.write(pattern(0, 50), 0);
    sink.write(pattern(250, 50), 250);
    await sink.end();
    expect((await output).equals(pattern(0, 300))).toBe(true);
  });

  it("keeps overlapping deliveries ahead of the position apart: each byte leaves once", async () => {
    const sink = new OrderedSink({ windowBytes: MiB, size: 300 });
    const output = collect(sink);
    sink.write(pattern(100, 200), 100);
    sink.write(pattern(150, 100), 150);
    sink.write(pattern(0, 120), 0);
    await sink.end();
    expect((await output).equals(pattern(0, 300))).toBe(true);
  });

  it("makes a write past the window wait until the position comes within reach, then takes it", async () => {
    const sink = new OrderedSink({ windowBytes: 1000 });
    const output = collect(sink);
    const far = sink.write(pattern(900, 200), 900);
    expect(await state(far)).toBe("pending");
    expect(sink.limit).toBe(1000);
    expect(await state(sink.write(pattern(0, 50), 0))).toBe("none");
    expect(await state(far)).toBe("pending");
    sink.write(pattern(50, 50), 50);
    expect(await state(far)).toBe("resolved");
    sink.write(pattern(100, 800), 100);
    await sink.end();
    expect((await output).equals(pattern(0, 1100))).toBe(true);
  });

  it("holds bytes while the reader is slow, without asking in-window writers to wait, and hands them over when it reads", async () => {
    const sink = new OrderedSink({ windowBytes: 4 * MiB, size: 3 * MiB });
    // Nobody reads yet: body fills to its high-water mark, the rest stays in the sink.
    for (let offset = 0; offset < 3 * MiB; offset += 64 * KiB) {
      expect(sink.write(pattern(offset, 64 * KiB), offset)).toBeUndefined();
    }
    expect(sink.bufferedBytes).toBeGreaterThan(2 * MiB);
    expect(sink.position).toBeLessThan(MiB);
    const ended = sink.end();
    expect(await state(ended)).toBe("pending");
    const output = collect(sink);
    await ended;
    expect((await output).equals(pattern(0, 3 * MiB))).toBe(true);
    expect(sink.bufferedBytes).toBe(0);
  });

  it("tells the download once, with ERR_OUTPUT_CLOSED, when the reader goes away, and fails every waiting write", async () => {
    const gone: FileError[] = [];
    const sink = new OrderedSink({ windowBytes: 100, onConsumerGone: (error) => gone.push(error) });
    const waiting = sink.write(pattern(150, 50), 150);
    sink.body.destroy();
    expect(await state(waiting)).toBe("rejected");
    await expect(sink.write(pattern(0, 10), 0)).rejects.toMatchObject({ code: "ERR_OUTPUT_CLOSED", exitCode: 6 });
    await expect(sink.flush()).rejects.toBeInstanceOf(FileError);
    expect(gone).toHaveLength(1);
    expect(gone[0]).toMatchObject({ code: "ERR_OUTPUT_CLOSED" });
  });

  it("reports a reader that errors (EPIPE) as gone, through a pipeline", async () => {
    let goneError: FileError | undefined;
    const sink = new OrderedSink({ windowBytes: MiB, onConsumerGone: (error) => (goneError = error) });
    let received = 0;
    const reader = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        received += chunk.length;
        callback(Object.assign(new Error("write EPIPE"), { code: "EPIPE" }));
      },
    });
    const piped = pipeline(sink.body, reader);
    sink.write(pattern(0, 100), 0);
    await expect(piped).rejects.toMatchObject({ code: "EPIPE" });
    expect(received).toBe(100);
    expect(goneError?.message).toContain("closed it before the end");
  });

  it("does not call a reader that finished after the end gone", async () => {
    let gone = false;
    const sink = new OrderedSink({ windowBytes: MiB, size: 10, onConsumerGone: () => (gone = true) });
    const output = collect(sink);
    sink.write(pattern(0, 10), 0);
    await sink.end();
    await output;
    expect(sink.body.destroyed).toBe(true);
    expect(gone).toBe(false);
  });

  it("errors the body with the download's failure on abort", async () => {
    const sink = new OrderedSink({ windowBytes: MiB });
    sink.write(pattern(0, 10), 0);
    const failure = new Error("the server went away");
    const output = collect(sink);
    sink.abort(failure);
    await expect(output).rejects.toBe(failure);
    await expect(sink.write(pattern(10, 10), 10)).rejects.toBe(failure);
  });

  it("refuses to end with a byte missing", async () => {
    const sink = new OrderedSink({ windowBytes: MiB, size: 30 });
    const output = collect(sink).catch((error: unknown) => error);
    sink.write(pattern(0, 10), 0);
    sink.write(pattern(20, 10), 20);
    await expect(sink.end()).rejects.toThrow(/ended at byte 10 of 30/);
    expect(await output).toBeInstanceOf(Error);
  });

  it("shows each chunk to onChunk in order, so a running hash sees the file", async () => {
    const hash = createHash("sha256");
    const sink = new OrderedSink({ windowBytes: MiB, size: 3000, onChunk: (chunk) => hash.update(chunk) });
    const output = collect(sink);
    sink.write(pattern(2000, 1000), 2000);
    sink.write(pattern(1000, 1000), 1000);
    sink.write(pattern(0, 1000), 0);
    await sink.end();
    await output;
    expect(hash.digest("hex")).toBe(createHash("sha256").update(pattern(0, 3000)).digest("hex"));
  });
});

describe("OrderedSink with a RangePlanner limited to its window", () => {
  /**
   * Connections fetch ranges as the planner hands them out, one 16 KiB chunk per
   * turn, in a scrambled order; a slow reader takes a chunk every few turns. Memory
   * stays within the window however far the reader lags.
   */
  it("keeps what it holds within the window while a slow reader lags, and delivers the file", async () => {
    const size = 3 * MiB + 12_345;
    const { windowBytes, rangeBytes } = streamWindow(4, 128 * KiB, 512 * KiB);
    const planner = new RangePlanner([[0, size - 1]], 4, rangeBytes, { maxRange: rangeBytes });
    const sink = new OrderedSink({ windowBytes, size, onAdvance: () => (planner.limit = sink.limit) });
    planner.limit = sink.limit;
    let peak = 0;
    const received: Buffer[] = [];
    let turnsUntilRead = 0;
    let readerTurn = 0;
    const reader = new Writable({
      highWaterMark: 16 * KiB,
      write(chunk: Buffer, _encoding, callback) {
        received.push(chunk);
        // The reader is slow: it finishes a write only after a few connection turns.
        turnsUntilRead = 3;
        readerTurn = 0;
        pendingCallback = callback;
      },
    });
    let pendingCallback: (() => void) | undefined;
    const piped = pipeline(sink.body, reader);
    const connections: (Assignment | undefined)[] = [undefined, undefined, undefined, undefined];
    const waits: (Promise<void> | undefined)[] = [undefined, undefined, undefined, undefined];
    for (let turn = 0; !planner.finished && turn < 1_000_000; turn++) {
      const index = (turn * 7) % connections.length;
      if (pendingCallback && ++readerTurn >= turnsUntilRead) {
        const callback = pendingCallback;
        pendingCallback = undefined;
        callback();
      }
      await new Promise((resolve) => setImmediate(resolve));
      if (waits[index] && (await state(waits[index])) === "pending") continue;
      waits[index] = undefined;
      let assignment = connections[index];
      assignment ??= connections[index] = planner.next();
      if (!assignment) continue;
      const length = Math.min(16 * KiB, assignment.end - assignment.next + 1);
      const position = assignment.next;
      expect(position + length).toBeLessThanOrEqual(sink.limit);
      assignment.next += length;
      waits[index] = sink.write(pattern(position, length), position);
      peak = Math.max(peak, sink.bufferedBytes);
      if (assignment.next > assignment.end) {
        planner.release(assignment);
        connections[index] = undefined;
      }
    }
    expect(planner.finished).toBe(true);
    const ended = sink.end();
    while (pendingCallback || (await state(ended)) === "pending") {
      const callback = pendingCallback;
      pendingCallback = undefined;
      callback?.();
      await new Promise((resolve) => setImmediate(resolve));
    }
    await ended;
    reader.end();
    await piped;
    expect(Buffer.concat(received).equals(pattern(0, size))).toBe(true);
    expect(peak).toBeLessThanOrEqual(windowBytes);
    expect(peak).toBeGreaterThan(windowBytes / 4);
  });
});

import { readFileSync } from "node:fs";
import { mkdtemp, open, readFile, rm, writeFile, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout } from "node:timers/promises";
import fc from "fast-check";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { COALESCE_BYTES, CoalescingWriter, writeAt } from "../src/sink.js";
import { spyOn } from "./support/file-spy.js";

const KiB = 1024;

/** The first `bytes` bytes of a list of buffers. */
function prefix(buffers: Buffer[], bytes: number): Buffer[] {
  const out: Buffer[] = [];
  let left = bytes;
  for (const buffer of buffers) {
    if (left <= 0) break;
    out.push(buffer.subarray(0, Math.min(left, buffer.length)));
    left -= buffer.length;
  }
  return out;
}

/** Deterministic, position-dependent content, so a byte in the wrong place shows. */
function pattern(start: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  for (let index = 0; index < length; index++) buffer[index] = ((start + index) * 31 + 7) % 251;
  return buffer;
}

/** Byte-for-byte comparison that stays fast on megabytes and names the first difference. */
function expectSameBytes(actual: Buffer, expected: Buffer): void {
  if (actual.equals(expected)) return;
  let index = 0;
  while (index < Math.min(actual.length, expected.length) && actual[index] === expected[index]) index++;
  expect.fail(`lengths ${actual.length} vs ${expected.length}; first difference at byte ${index}`);
}

/** Counts, per byte, how many times it was reported written. */
function reportCounter(size: number) {
  const counts = new Uint8Array(size);
  const reports: [number, number][] = [];
  const onWritten = (start: number, end: number) => {
    reports.push([start, end]);
    for (let byte = start; byte <= end; byte++) counts[byte]!++;
  };
  return { counts, reports, onWritten };
}

let dir: string;
let filePath: string;
let handle: FileHandle;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "rangeget-sink-"));
  filePath = path.join(dir, "out.part");
  handle = await open(filePath, "w+");
});

afterEach(async () => {
  await handle.close().catch(() => {});
  await rm(dir, { recursive: true, force: true });
});

describe("writeAt", () => {
  it("writes all buffers, in order, at the position", async () => {
    await handle.truncate(20);
    await writeAt(handle, [Buffer.from("abc"), Buffer.from("defg")], 5);
    const expected = Buffer.alloc(20);
    expected.write("abcdefg", 5);
    expectSameBytes(await readFile(filePath), expected);
  });

  it("does nothing for an empty list", async () => {
    const { file, calls } = spyOn(handle);
    await writeAt(file, [], 0);
    expect(calls.length).toBeLessThanOrEqual(1);
    expect((await readFile(filePath)).length).toBe(0);
  });

  it("finishes a partial write: the rest goes after what was written", async () => {
    let first = true;
    const { file, calls } = spyOn(handle, async (real, buffers, position) => {
      if (!first) return real(buffers, position);
      first = false;
      // pwritev wrote only 5 bytes, ending inside the second buffer.
      const { bytesWritten } = await real(prefix(buffers, 5), position);
      return { bytesWritten, buffers };
    });
    await writeAt(file, [Buffer.from("abc"), Buffer.from("defg"), Buffer.from("hij")], 100);
    expect(calls).toEqual([
      { position: 100, bytes: 10, buffers: 3 },
      { position: 105, bytes: 5, buffers: 2 },
    ]);
    expect((await readFile(filePath)).subarray(100).toString()).toBe("abcdefghij");
  });

  it("finishes a partial write that ends exactly on a buffer boundary", async () => {
    let first = true;
    const { file, calls } = spyOn(handle, async (real, buffers, position) => {
      if (!first) return real(buffers, position);
      first = false;
      const { bytesWritten } = await real(prefix(buffers, 3), position);
      return { bytesWritten, buffers };
    });
    await writeAt(file, [Buffer.from("abc"), Buffer.from("defg")], 0);
    expect(calls.map((call) => [call.position, call.bytes, call.buffers])).toEqual([
      [0, 7, 2],
      [3, 4, 1],
    ]);
    expect((await readFile(filePath)).toString()).toBe("abcdefg");
  });

  it("keeps going through any sequence of short writes until every byte is down", async () => {
    const arbitrary = fc.record({
      lengths: fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 8 }),
      shortWrites: fc.array(fc.integer({ min: 1, max: 30 }), { maxLength: 10 }),
      position: fc.integer({ min: 0, max: 500 }),
    });
    await fc.assert(
      fc.asyncProperty(arbitrary, async ({ lengths, shortWrites, position }) => {
        await handle.truncate(0);
        const total = lengths.reduce((sum, length) => sum + length, 0);
        const data = pattern(position, total);
        const buffers: Buffer[] = [];
        let offset = 0;
        for (const length of lengths) {
          buffers.push(data.subarray(offset, offset + length));
          offset += length;
        }
        const limits = [...shortWrites];
        const { file } = spyOn(handle, async (real, pending, at) => {
          const limit = limits.shift();
          if (limit === undefined) return real(pending, at);
          const { bytesWritten } = await real(prefix(pending, limit), at);
          return { bytesWritten, buffers: pending };
        });
        await writeAt(file, buffers, position);
        const onDisk = await readFile(filePath);
        expect(onDisk.length).toBe(position + total);
        expectSameBytes(onDisk.subarray(position), data);
      }),
      { numRuns: 40 },
    );
  });

  it("rejects with the file system's error", async () => {
    const readOnly = await open(filePath, "r");
    try {
      await expect(writeAt(readOnly, [Buffer.from("x")], 0)).rejects.toMatchObject({ code: "EBADF" });
    } finally {
      await readOnly.close();
    }
  });
});

describe("CoalescingWriter", () => {
  it("writes chunks at their own offsets, in any order, into a sparse file", async () => {
    await handle.truncate(1000);
    const { counts, onWritten } = reportCounter(1000);
    const writer = new CoalescingWriter(handle, onWritten);
    await writer.write(pattern(600, 100), 600);
    await writer.write(pattern(0, 50), 0);
    await writer.write(pattern(900, 100), 900);
    await writer.write(pattern(50, 50), 50);
    await writer.flush();
    const expected = Buffer.alloc(1000);
    pattern(0, 100).copy(expected, 0);
    pattern(600, 100).copy(expected, 600);
    pattern(900, 100).copy(expected, 900);
    expectSameBytes(await readFile(filePath), expected);
    for (let byte = 0; byte < 1000; byte++) {
      const written = byte < 100 || (byte >= 600 && byte < 700) || byte >= 900;
      if (counts[byte] !== (written ? 1 : 0)) expect.fail(`byte ${byte} reported ${counts[byte]} times`);
    }
  });

  it("coalesces 16 contiguous 16 KiB chunks into at most 2 writes", async () => {
    expect(COALESCE_BYTES).toBe(256 * KiB);
    const { file, calls } = spyOn(handle);
    const { reports, onWritten } = reportCounter(256 * KiB);
    const writer = new CoalescingWriter(file, onWritten);
    const data = pattern(0, 256 * KiB);
    for (let index = 0; index < 16; index++) {
      await writer.write(data.subarray(index * 16 * KiB, (index + 1) * 16 * KiB), index * 16 * KiB);
    }
    await writer.flush();
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls.length).toBeLessThanOrEqual(2);
    expect(calls.reduce((sum, call) => sum + call.bytes, 0)).toBe(256 * KiB);
    expect(reports.reduce((sum, [start, end]) => sum + end - start + 1, 0)).toBe(256 * KiB);
    expectSameBytes(await readFile(filePath), data);
  });

  it("writes about 256 KiB at a time: a 768 KiB stream takes about three writes", async () => {
    const { file, calls } = spyOn(handle);
    const writer = new CoalescingWriter(file, () => {});
    const data = pattern(0, 768 * KiB);
    for (let offset = 0; offset < data.length; offset += 16 * KiB) {
      await writer.write(data.subarray(offset, offset + 16 * KiB), offset);
    }
    await writer.flush();
    expect(calls.length).toBeGreaterThanOrEqual(3);
    expect(calls.length).toBeLessThanOrEqual(4);
    for (const call of calls) expect(call.bytes).toBeLessThanOrEqual(256 * KiB + 16 * KiB);
    expectSameBytes(await readFile(filePath), data);
  });

  it("writes thousands of tiny chunks correctly", async () => {
    const data = pattern(0, 5000);
    const writer = new CoalescingWriter(handle, () => {});
    for (let offset = 0; offset < data.length; offset++) await writer.write(data.subarray(offset, offset + 1), offset);
    await writer.flush();
    expectSameBytes(await readFile(filePath), data);
  });

  it("starts writing what it gathered as soon as a chunk arrives at a non-contiguous position", async () => {
    await handle.truncate(2000);
    const { file, calls } = spyOn(handle);
    const { reports, onWritten } = reportCounter(2000);
    const writer = new CoalescingWriter(file, onWritten);
    await writer.write(pattern(0, 60), 0);
    await writer.write(pattern(60, 40), 60);
    expect(calls).toEqual([]);
    await writer.write(pattern(1000, 100), 1000);
    expect(calls).toEqual([{ position: 0, bytes: 100, buffers: 2 }]);
    await writer.flush();
    expect(calls).toEqual([
      { position: 0, bytes: 100, buffers: 2 },
      { position: 1000, bytes: 100, buffers: 1 },
    ]);
    expect(reports).toEqual([
      [0, 99],
      [1000, 1099],
    ]);
  });

  it("flushes a chunk that jumps backwards, too", async () => {
    await handle.truncate(200);
    const { file, calls } = spyOn(handle);
    const writer = new CoalescingWriter(file, () => {});
    await writer.write(pattern(100, 50), 100);
    await writer.write(pattern(0, 50), 0);
    await writer.flush();
    expect(calls.map((call) => call.position)).toEqual([100, 0]);
    const onDisk = await readFile(filePath);
    expectSameBytes(onDisk.subarray(0, 50), pattern(0, 50));
    expectSameBytes(onDisk.subarray(100, 150), pattern(100, 50));
  });

  it("reports every written byte exactly once, and only written bytes", async () => {
    // A file cut into pieces, written in a random order with random chunking and a
    // small coalescing size, so runs, jumps and size-triggered writes all happen.
    const arbitrary = fc.record({
      size: fc.integer({ min: 1, max: 3000 }),
      cuts: fc.array(fc.integer({ min: 1, max: 2999 }), { maxLength: 30 }),
      coalesceBytes: fc.integer({ min: 1, max: 700 }),
      order: fc.array(fc.nat(), { maxLength: 40 }),
      skip: fc.array(fc.boolean(), { maxLength: 40 }),
    });
    await fc.assert(
      fc.asyncProperty(arbitrary, async ({ size, cuts, coalesceBytes, order, skip }) => {
        await handle.truncate(0);
        await handle.truncate(size);
        const points = [...new Set([0, ...cuts.filter((cut) => cut < size), size])].sort((a, b) => a - b);
        const pieces = points.slice(0, -1).map((start, index) => [start, points[index + 1]!] as const);
        // Shuffle runs of pieces: keep some neighbours together so coalescing has work to do.
        const shuffled = [...pieces];
        order.forEach((swap, index) => {
          const a = index % shuffled.length;
          const b = swap % shuffled.length;
          [shuffled[a], shuffled[b]] = [shuffled[b]!, shuffled[a]!];
        });
        const chosen = shuffled.filter((_piece, index) => !skip[index]);
        const { counts, onWritten } = reportCounter(size);
        const writer = new CoalescingWriter(handle, onWritten, coalesceBytes);
        const expected = Buffer.alloc(size);
        for (const [start, end] of chosen) {
          const data = pattern(start, end - start);
          data.copy(expected, start);
          await writer.write(data, start);
        }
        await writer.flush();
        const written = new Uint8Array(size);
        for (const [start, end] of chosen) written.fill(1, start, end);
        expect(Buffer.from(counts)).toEqual(Buffer.from(written));
        expectSameBytes(await readFile(filePath), expected);
      }),
      { numRuns: 60 },
    );
  });

  it("a checkpoint's flush racing the connection's writes loses, duplicates and misreports nothing", async () => {
    const arbitrary = fc.record({
      size: fc.integer({ min: 1, max: 3000 }),
      cuts: fc.array(fc.integer({ min: 1, max: 2999 }), { maxLength: 30 }),
      swaps: fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 6 }),
      coalesceBytes: fc.integer({ min: 1, max: 800 }),
      flushes: fc.array(fc.constantFrom("none", "before", "during"), { maxLength: 40 }),
      delays: fc.array(fc.constantFrom(0, 0, 1, 2), { maxLength: 40 }),
    });
    await fc.assert(
      fc.asyncProperty(arbitrary, async ({ size, cuts, swaps, coalesceBytes, flushes, delays }) => {
        await handle.truncate(0);
        await handle.truncate(size);
        const points = [...new Set([0, ...cuts.filter((cut) => cut < size), size])].sort((a, b) => a - b);
        const pieces = points.slice(0, -1).map((start, index) => [start, points[index + 1]!] as const);
        for (const [a, b] of swaps) {
          const [i, j] = [a % pieces.length, b % pieces.length];
          [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
        }
        let inFlight = 0;
        let mostInFlight = 0;
        const pendingDelays = [...delays];
        const { file } = spyOn(handle, async (real, buffers, position) => {
          inFlight++;
          mostInFlight = Math.max(mostInFlight, inFlight);
          try {
            const delay = pendingDelays.shift() ?? 0;
            if (delay > 0) await setTimeout(delay);
            return await real(buffers, position);
          } finally {
            inFlight--;
          }
        });
        const { counts, onWritten } = reportCounter(size);
        const writer = new CoalescingWriter(file, onWritten, coalesceBytes);
        const accepted = new Uint8Array(size);
        const checkpoints: Promise<void>[] = [];
        // A checkpoint flushes, then records what was reported: everything the connection
        // had handed over before the flush began must be among it.
        const checkpoint = () => {
          const handedOver = accepted.slice();
          checkpoints.push(
            writer.flush().then(() => {
              const missed = handedOver.findIndex((isHanded, byte) => isHanded === 1 && counts[byte] === 0);
              expect(missed, `byte ${missed} was handed over before the flush but not written by its end`).toBe(-1);
            }),
          );
        };
        for (const [index, [start, end]] of pieces.entries()) {
          const mode = flushes[index] ?? "none";
          if (mode === "before") checkpoint();
          const writing = writer.write(pattern(start, end - start), start);
          if (mode === "during") checkpoint();
          await writing;
          accepted.fill(1, start, end);
        }
        checkpoint();
        await Promise.all(checkpoints);
        expect(mostInFlight).toBeLessThanOrEqual(1);
        expect(Buffer.from(counts)).toEqual(Buffer.alloc(size, 1));
        expectSameBytes(await readFile(filePath), pattern(0, size));
      }),
      { numRuns: 40 },
    );
  });

  it("reports an interval only once its bytes are in the file", async () => {
    const checked: boolean[] = [];
    const data = pattern(0, 4000);
    const writer = new CoalescingWriter(
      handle,
      (start, end) => {
        const onDisk = readFileSync(filePath);
        checked.push(onDisk.subarray(start, end + 1).equals(data.subarray(start, end + 1)));
      },
      1000,
    );
    for (let offset = 0; offset < data.length; offset += 250) await writer.write(data.subarray(offset, offset + 250), offset);
    await writer.flush();
    expect(checked.length).toBeGreaterThanOrEqual(4);
    expect(checked.every(Boolean)).toBe(true);
  });

  it("keeps at most one write in flight, so a slow disk holds the writer back", async () => {
    let inFlight = 0;
    let mostInFlight = 0;
    const { file, calls } = spyOn(handle, async (real, buffers, position) => {
      inFlight++;
      mostInFlight = Math.max(mostInFlight, inFlight);
      await setTimeout(2);
      try {
        return await real(buffers, position);
      } finally {
        inFlight--;
      }
    });
    const writer = new CoalescingWriter(file, () => {}, 100);
    const data = pattern(0, 2000);
    for (let offset = 0; offset < data.length; offset += 100) await writer.write(data.subarray(offset, offset + 100), offset);
    await writer.flush();
    expect(calls.length).toBe(20);
    expect(mostInFlight).toBe(1);
    expectSameBytes(await readFile(filePath), data);
  });

  it("flush waits for the write in flight", async () => {
    let finished = false;
    const { file } = spyOn(handle, async (real, buffers, position) => {
      await setTimeout(20);
      const result = await real(buffers, position);
      finished = true;
      return result;
    });
    const writer = new CoalescingWriter(file, () => {}, 10);
    await writer.write(pattern(0, 10), 0);
    expect(finished).toBe(false);
    await writer.flush();
    expect(finished).toBe(true);
  });

  it("does not write or report an empty chunk", async () => {
    const { file, calls } = spyOn(handle);
    const { reports, onWritten } = reportCounter(10);
    const writer = new CoalescingWriter(file, onWritten);
    await writer.write(Buffer.alloc(0), 5);
    await writer.flush();
    expect(calls).toEqual([]);
    expect(reports).toEqual([]);
  });

  it("flush with nothing gathered writes nothing", async () => {
    const { file, calls } = spyOn(handle);
    const writer = new CoalescingWriter(file, () => {});
    await writer.flush();
    await writer.flush();
    expect(calls).toEqual([]);
  });

  describe("when the disk refuses the write", () => {
    let readOnly: FileHandle;
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);

    beforeEach(async () => {
      await writeFile(filePath, "existing");
      readOnly = await open(filePath, "r");
      unhandled.length = 0;
      process.on("unhandledRejection", onUnhandled);
    });

    afterEach(async () => {
      // Give a stray rejection the turns it needs to be reported before we look.
      await setTimeout(10);
      process.off("unhandledRejection", onUnhandled);
      await readOnly.close();
      expect(unhandled).toEqual([]);
    });

    it("flush rejects with the error (EBADF on a read-only handle)", async () => {
      const { counts, onWritten } = reportCounter(100);
      const writer = new CoalescingWriter(readOnly, onWritten);
      await writer.write(Buffer.from("hello"), 0);
      await expect(writer.flush()).rejects.toMatchObject({ code: "EBADF" });
      expect(counts.every((count) => count === 0)).toBe(true);
    });

    it("the next write rejects with the error of a write started earlier", async () => {
      const { reports, onWritten } = reportCounter(100);
      const writer = new CoalescingWriter(readOnly, onWritten, 4);
      // Reaches the coalescing size: the write starts in the background.
      await writer.write(Buffer.from("hello"), 0);
      await expect(writer.write(Buffer.from("world"), 5)).rejects.toMatchObject({ code: "EBADF" });
      expect(reports).toEqual([]);
    });

    it("a failure is not forgotten: flush after a failed write still rejects", async () => {
      const writer = new CoalescingWriter(readOnly, () => {}, 4);
      await writer.write(Buffer.from("hello"), 0);
      await expect(writer.write(Buffer.from("world"), 5)).rejects.toMatchObject({ code: "EBADF" });
      await expect(writer.flush()).rejects.toMatchObject({ code: "EBADF" });
    });

    it("a failing background write that nobody awaits yet is not an unhandled rejection", async () => {
      const writer = new CoalescingWriter(readOnly, () => {}, 4);
      await writer.write(Buffer.from("hello"), 0);
      await setTimeout(20);
      await expect(writer.flush()).rejects.toMatchObject({ code: "EBADF" });
    });
  });
});

/**
 * Where a download's bytes go: the `Consumer` seam (the `.part` file, an ordered
 * stream), the same for parallel ranges and for one plain stream, and the coalescing
 * positional writer the `.part` uses.
 */
import type { FileHandle } from "node:fs/promises";

/**
 * About 256 KiB per write: large enough that syscalls are not the cost (4,096 writes
 * per GiB), small enough to bound memory per connection. Measured at -c 16 on 1 GiB:
 * 1 MiB writes peaked at 185-192 MB RSS, 256 KiB at 125-130 MB, with no more CPU.
 */
export const COALESCE_BYTES = 256 * 1024;

/**
 * Positional writes into the `.part` file. Bytes are written at their own offsets,
 * so connections never wait for each other and a sparse file fills in any order.
 */
export async function writeAt(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let pending = buffers;
  let offset = position;
  // pwritev may write less than asked (a signal, a quota); finish the rest ourselves.
  for (;;) {
    const { bytesWritten } = await file.writev(pending, offset);
    const total = pending.reduce((sum, buffer) => sum + buffer.length, 0);
    if (bytesWritten >= total) return;
    if (bytesWritten === 0) throw Object.assign(new Error(`no progress writing at offset ${offset}`), { code: "EIO" });
    offset += bytesWritten;
    pending = dropPrefix(pending, bytesWritten);
  }
}

function dropPrefix(buffers: Buffer[], bytes: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = bytes;
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}

/**
 * One connection's writer: gathers contiguous chunks (without copying them) into
 * writes of about `COALESCE_BYTES`, keeps at most one write in flight, and reports
 * each written interval. `write` resolves when the caller may send more, which is
 * how a slow disk pushes back on the socket instead of filling memory.
 */
export class CoalescingWriter {
  readonly #file: FileHandle;
  readonly #onWritten: (start: number, end: number) => void;
  readonly #coalesceBytes: number;
  #chunks: Buffer[] = [];
  #chunksStart = 0;
  #chunksBytes = 0;
  #inFlight: Promise<void> = Promise.resolve();

  constructor(file: FileHandle, onWritten: (start: number, end: number) => void, coalesceBytes = COALESCE_BYTES) {
    this.#file = file;
    this.#onWritten = onWritten;
    this.#coalesceBytes = coalesceBytes;
  }

  /**
   * Gathers `chunk`; returns a promise only when the caller must wait before giving
   * more (a batch is full and the previous write has not finished).
   */
  write(chunk: Buffer, position: number): Promise<void> | undefined {
    if (this.#chunksBytes > 0 && position !== this.#chunksStart + this.#chunksBytes) {
      return this.#startWrite().then(() => this.write(chunk, position));
    }
    if (this.#chunksBytes === 0) this.#chunksStart = position;
    this.#chunks.push(chunk);
    this.#chunksBytes += chunk.length;
    return this.#chunksBytes >= this.#coalesceBytes ? this.#startWrite() : undefined;
  }

  /** Writes everything gathered so far and waits for it. Safe to call while `write` runs. */
  async flush(): Promise<void> {
    if (this.#chunksBytes > 0) await this.#startWrite();
    await this.#inFlight;
  }

  async #startWrite(): Promise<void> {
    // At most one write in flight: wait until none is (surfacing its error). A flush
    // from the checkpoint may race the connection's own write, so look again.
    for (let current = this.#inFlight; ; current = this.#inFlight) {
      await current;
      if (current === this.#inFlight) break;
    }
    if (this.#chunksBytes === 0) return;
    const chunks = this.#chunks;
    const start = this.#chunksStart;
    const end = start + this.#chunksBytes - 1;
    this.#chunks = [];
    this.#chunksBytes = 0;
    const written = writeAt(this.#file, chunks, start).then(() => this.#onWritten(start, end));
    // Marked handled here; the next write or flush awaits it and sees the error.
    written.catch(() => {});
    this.#inFlight = written;
  }
}

/**
 * One range's writer: positional writes, as `CoalescingWriter` and `OrderedSink` take
 * them. `write` returns a promise only when the caller must wait before giving more
 * (the disk, or the reader of an ordered stream, is behind); `flush` waits until every
 * byte given is where it goes.
 */
export interface RangeWriter {
  write(chunk: Buffer, position: number): Promise<void> | undefined;
  flush(): Promise<void>;
}

/**
 * How a transfer into a consumer ended: every byte written (`complete`); failed, with
 * what was written worth keeping for a re-run (`kept`: a file saves its checkpoint);
 * or over with what was written of no use (`dropped`: a version that is gone, a plain
 * stream that gave up, a server whose ranges cannot be used).
 */
export type ConsumerEnd = "complete" | "kept" | "dropped";

/**
 * Where a download's bytes go, whichever way they come (parallel ranges, transfer.ts;
 * one plain stream, single-stream.ts): the `.part` file of a parallel transfer
 * (part-sink.ts `PartFileSink`), the `.part` of one stream (`PartFileStream`), or the
 * ordered stream of `-o -`, `--extract` and `downloadStream` (stream-download.ts
 * `OrderedOutput`). The fetching side hands bytes to writers from here and does not
 * know which consumer it feeds (pget's Consumer seam: write, end, fail). Only `writer`
 * is required: each consumer has the hooks its medium needs and no empty ones.
 */
export interface Consumer {
  /** A writer for one range in flight, or for the current attempt of a plain stream; its bytes are flushed when the range ends. */
  writer(): RangeWriter;
  /**
   * The planner hands out no byte at or past this offset: the ordered stream's window
   * ahead of its reader. Absent: no limit (a file). `onRoom` is called when it moved.
   */
  readonly limit?: number;
  onRoom?(listener: () => void): void;
  /** About once a second while bytes arrive: a file's checkpoint makes what was written durable. */
  checkpoint?(): Promise<void>;
  /** A plain stream's attempt failed and the next starts again from byte 0: what was written is dropped (or, by an ordered stream, skipped as already sent). */
  restart?(): Promise<void>;
  /** The transfer into it is over, and how (`ConsumerEnd`). */
  end?(how: ConsumerEnd): Promise<void>;
}

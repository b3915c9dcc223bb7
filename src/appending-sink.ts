/**
 * The `.part` on a volume without sparse files (exFAT, FAT32, NTFS under Windows): bytes
 * reach it only in file order, appended at its end. Parallel ranges are put in order by
 * an `OrderedSink` (the orderer of `-o -`), whose window ahead of the written end bounds
 * what the connections may fetch ahead and hold in memory; the planner hands out no range
 * past it (`limit`). A write past a file's end makes such a volume zero the gap first
 * (exfat-fuse also walks the file's cluster chain from its start for every write that
 * lands before the one it served last), so scattered writes cost 5 to 8 times the
 * download; appends cost what one stream costs. The checkpoint's `done` is the written
 * prefix (and bytes a resumed `.part` already held past it), so a resume after SIGKILL
 * starts at the written end.
 */
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Clock } from "./clock.js";
import type { Manifest } from "./manifest.js";
import { OrderedSink, streamWindow } from "./ordered-sink.js";
import { writesInFileOrder } from "./part-file.js";
import { partPaths } from "./part-paths.js";
import { Checkpointer, PartFileSink } from "./part-sink.js";
import type { Volume } from "./platform.js";
import type { IntervalSet } from "./ranges.js";
import type { PrefixHasher } from "./running-hash.js";
import { COALESCE_BYTES, writeAt, type Consumer, type ConsumerEnd, type RangeWriter } from "./sink.js";
import { fileError } from "./to-error.js";

/** Bytes a resumed `.part` already holds past its first gap are read back in pieces of this size. */
const READ_BACK_BYTES = 1024 * 1024;

/**
 * How far past the written end the connections may fetch, in bytes: two ranges per
 * connection up to 64 MiB, as an ordered stream's (`streamWindow`), and never fewer than
 * two ranges, because here the ranges are `minSplit` long (`rangePlanning`) and the
 * planner hands out none that does not fit. Pure.
 */
export function appendWindowBytes(connections: number, minSplit: number): number {
  return Math.max(2 * minSplit, streamWindow(connections, minSplit).windowBytes);
}

/** What an `AppendingSink` needs besides the file: the planner's sizes, for its window. */
export interface AppendingSinkOptions {
  /** The output path; bytes go to `<path>.part`, the manifest to `<path>.part.json`. */
  path: string;
  manifest: Manifest;
  /** Bytes already on disk (a resume); grows as bytes are appended. */
  done: IntervalSet;
  hasher?: PrefixHasher | undefined;
  /** Bytes past the written end that may be fetched and held (`appendWindowBytes`). */
  windowBytes: number;
  /** The planner's range size: the planner is told of room once per range, not per chunk. */
  rangeBytes: number;
  /** The job's clock, for the checkpoints' rename retries. */
  clock: Pick<Clock, "now" | "sleep">;
}

/**
 * The `.part` as the sink of a parallel transfer, written strictly in file order. Each
 * range writes into the shared `OrderedSink`; its bytes leave in order into one writer
 * that appends them (coalesced, as `CoalescingWriter` does) and reports each appended
 * interval to the checkpoint and the prefix hasher. A failure saves a last checkpoint
 * (unless the bytes are of an old version) and closes the file; on success the caller
 * finishes it (`finishPart`). A write error fails every connection with the
 * `FileError` "cannot write".
 */
export class AppendingSink implements Consumer {
  readonly #file: FileHandle;
  readonly #partPath: string;
  readonly #size: number;
  readonly #done: IntervalSet;
  readonly #hasher: PrefixHasher | undefined;
  readonly #checkpoint: Checkpointer;
  readonly #ordered: OrderedSink;
  readonly #rangeBytes: number;
  /** The ordered bytes going to disk; settles when they all went, or the sink failed. */
  readonly #draining: Promise<void>;
  /** Bytes a resumed `.part` held past its first gap, read back into the order. */
  readonly #readingBack: Promise<void>;
  /** The offset of the next append: the end of what is written in order. */
  #end: number;
  #appending: Promise<void> = Promise.resolve();
  #onRoom: () => void = () => {};
  #roomAt: number;

  constructor(file: FileHandle, options: AppendingSinkOptions) {
    const paths = partPaths(options.path);
    this.#file = file;
    this.#partPath = paths.part;
    this.#size = options.manifest.size;
    this.#done = options.done;
    this.#hasher = options.hasher;
    this.#rangeBytes = options.rangeBytes;
    // Appends land in order, and only completed ones reach `done`: nothing to flush first.
    this.#checkpoint = new Checkpointer(file, paths.manifest, options.manifest, options.done, async () => {}, options.clock);
    const start = options.done.missing(this.#size)[0]?.[0] ?? this.#size;
    this.#end = start;
    this.#roomAt = start;
    this.#ordered = new OrderedSink({
      windowBytes: options.windowBytes,
      size: this.#size,
      start,
      onAdvance: (position) => this.#advanced(position),
    });
    const disk = new Writable({
      highWaterMark: COALESCE_BYTES,
      writev: (chunks, callback) => {
        this.#appending = this.#append(chunks.map(({ chunk }) => chunk as Buffer));
        this.#appending.then(() => callback(), callback);
      },
    });
    this.#draining = pipeline(this.#ordered.body, disk);
    this.#readingBack = this.#readBack(start);
    // Both are awaited by complete() or fail(); until then a failure waits there.
    this.#draining.catch(() => {});
    this.#readingBack.catch(() => {});
  }

  /** The planner hands out no byte at or past this offset: the window past the ordered position. */
  get limit(): number {
    return this.#ordered.limit;
  }

  onRoom(listener: () => void): void {
    this.#onRoom = listener;
  }

  writer(): RangeWriter {
    return this.#ordered;
  }

  checkpoint(): Promise<void> {
    return this.#checkpoint.save();
  }

  /**
   * `complete`: every range was handed over; waits until the last byte is appended.
   * `kept`: the appends stop and a last checkpoint is saved, so a re-run resumes;
   * `dropped`: they stop. Either way but `complete` the file is closed.
   * @throws FileError when an append failed (after a last checkpoint, with the file closed).
   */
  async end(how: ConsumerEnd): Promise<void> {
    if (how === "complete") {
      try {
        await this.#readingBack;
        await Promise.all([this.#ordered.end(), this.#draining]);
      } catch (error) {
        await this.#stop(error, true);
        throw error;
      }
      return this.#checkpoint.complete(this.#size);
    }
    await this.#stop(new Error("the transfer ended before the last byte"), how === "kept");
  }

  async #stop(reason: unknown, keep: boolean): Promise<void> {
    this.#ordered.abort(reason);
    await Promise.allSettled([this.#draining, this.#readingBack, this.#appending]);
    // Save what is durable so a re-run resumes, unless those bytes are of no use.
    if (keep) await this.#checkpoint.save().catch(() => {});
    await this.#file.close().catch(() => {});
  }

  /** Appends `buffers` at the written end; a failure fails the order (and so every connection). */
  async #append(buffers: Buffer[]): Promise<void> {
    const start = this.#end;
    const bytes = buffers.reduce((sum, buffer) => sum + buffer.length, 0);
    try {
      await writeAt(this.#file, buffers, start);
    } catch (error) {
      const failure = fileError(error, this.#partPath, "cannot write");
      this.#ordered.abort(failure);
      throw failure;
    }
    this.#end = start + bytes;
    this.#checkpoint.written(start, this.#end - 1);
    this.#hasher?.written(start, this.#end - 1);
  }

  /**
   * A `.part` of an earlier run may hold bytes past its first gap (they are in `done`, so
   * no range fetches them): they are read back from the file and go through the order
   * like fetched bytes, one piece at a time as the window reaches them.
   */
  async #readBack(start: number): Promise<void> {
    for (const [first, last] of this.#done.toArray()) {
      for (let offset = Math.max(first, start); offset <= last; offset += READ_BACK_BYTES) {
        const length = Math.min(READ_BACK_BYTES, last - offset + 1);
        let piece: Buffer;
        try {
          piece = await readAt(this.#file, offset, length);
        } catch (error) {
          const failure = fileError(error, this.#partPath, "cannot read");
          this.#ordered.abort(failure);
          throw failure;
        }
        await this.#ordered.write(piece, offset);
      }
    }
  }

  /** The planner only hands out whole ranges below the limit: telling it of less room is wasted work. */
  #advanced(position: number): void {
    if (position - this.#roomAt < this.#rangeBytes) return;
    this.#roomAt = position;
    this.#onRoom();
  }
}

/** `length` bytes of `file` at `position`, reading again after a short read. */
async function readAt(file: FileHandle, position: number, length: number): Promise<Buffer> {
  const buffer = Buffer.allocUnsafe(length);
  for (let got = 0; got < length; ) {
    const { bytesRead } = await file.read(buffer, got, length - got, position + got);
    if (bytesRead === 0) throw Object.assign(new Error(`the file ends at byte ${position + got}, before ${position + length}`), { code: "EIO" });
    got += bytesRead;
  }
  return buffer;
}

/**
 * The sink of the `.part` of `path`: appended in file order where its volume has no sparse
 * files (`writesInFileOrder`), written at each range's own offsets elsewhere. `planning`
 * is the planner's (`connections`, `minSplit`), for the window, with the job's `clock`
 * (the checkpoints' renames retry on it). `volume` is asked of the file system unless
 * given (tests give one without sparse files).
 */
export async function partSink(
  file: FileHandle,
  path: string,
  manifest: Manifest,
  done: IntervalSet,
  hasher: PrefixHasher | undefined,
  planning: { connections: number; minSplit: number; clock: Pick<Clock, "now" | "sleep"> },
  volume?: Volume,
): Promise<Consumer> {
  if (!(await writesInFileOrder(dirname(partPaths(path).part), volume))) return new PartFileSink(file, path, manifest, done, planning.clock, hasher);
  const windowBytes = appendWindowBytes(planning.connections, planning.minSplit);
  return new AppendingSink(file, { path, manifest, done, hasher, windowBytes, rangeBytes: planning.minSplit, clock: planning.clock });
}

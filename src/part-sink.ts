/**
 * The `.part` file as a `Consumer` (sink.ts) while bytes arrive: for parallel ranges
 * (`PartFileSink`: coalesced positional writes, checkpoints, the prefix hash) and for
 * one plain stream (`PartFileStream`: a fresh `.part` per attempt). The checkpoint
 * makes the record of done bytes durable: data fsync, then the manifest.
 */
import type { FileHandle } from "node:fs/promises";
import type { Clock } from "./clock.js";
import { removeIfPresent, writeManifest, type Manifest } from "./manifest.js";
import { createPart } from "./part-file.js";
import { partPaths } from "./part-paths.js";
import type { IntervalSet } from "./ranges.js";
import { PrefixHasher } from "./running-hash.js";
import { CoalescingWriter, type Consumer, type ConsumerEnd, type RangeWriter } from "./sink.js";
import { fileError } from "./to-error.js";
import type { Checksum } from "./types.js";

/**
 * Makes the done record durable: fsync the data, then replace the manifest. The
 * snapshot is taken before the fsync, so the manifest never claims a byte that
 * the fsync did not cover. Saves never overlap.
 */
export class Checkpointer {
  readonly #file: FileHandle;
  readonly #path: string;
  readonly #manifest: Manifest;
  readonly #done: IntervalSet;
  readonly #beforeSave: () => Promise<void>;
  readonly #clock: Pick<Clock, "now" | "sleep">;
  #dirty = false;
  #saving: Promise<void> = Promise.resolve();

  /**
   * @param path the manifest's path (`<output>.part.json`)
   * @param beforeSave flushes bytes still held in memory, so they count in this save
   * @param clock the job's, for the manifest's rename retries
   */
  constructor(file: FileHandle, path: string, manifest: Manifest, done: IntervalSet, beforeSave: () => Promise<void>, clock: Pick<Clock, "now" | "sleep">) {
    this.#file = file;
    this.#path = path;
    this.#manifest = manifest;
    this.#done = done;
    this.#beforeSave = beforeSave;
    this.#clock = clock;
  }

  /** The bytes `[start, end]` are written (not yet durable). */
  written(start: number, end: number): void {
    this.#done.add(start, end);
    this.#dirty = true;
  }

  save(): Promise<void> {
    this.#saving = this.#saving.catch(() => {}).then(() => this.#saveNow());
    return this.#saving;
  }

  /** Waits for a save in progress; the file may be closed after this. */
  async settle(): Promise<void> {
    await this.#saving.catch(() => {});
  }

  /**
   * The transfer says every byte of the `size`-byte file is written: waits for a save in
   * progress and checks the record agrees.
   * @throws Error (an internal error) when bytes are missing, after a last save, with the file closed.
   */
  async complete(size: number): Promise<void> {
    await this.settle();
    if (this.#done.bytes !== size) {
      await this.save();
      await this.#file.close();
      throw new Error(`internal error: transfer ended with ${size - this.#done.bytes} bytes missing; run again to resume`);
    }
  }

  async #saveNow(): Promise<void> {
    await this.#beforeSave();
    if (!this.#dirty) return;
    this.#dirty = false;
    const snapshot = this.#done.toArray();
    try {
      await this.#file.datasync();
    } catch (error) {
      this.#dirty = true;
      throw fileError(error, this.#path, "cannot sync the data of");
    }
    await writeManifest(this.#path, { ...this.#manifest, done: snapshot }, this.#clock);
  }
}

/**
 * The `.part` file as the consumer of a parallel transfer: each range writes through
 * its own `CoalescingWriter`; every written interval goes to the checkpoint and, when
 * a checksum was asked for, to the prefix hasher. A failure saves a last checkpoint
 * (unless the bytes are of no use) and closes the file; on success the caller
 * finishes it (`finishPart`).
 */
export class PartFileSink implements Consumer {
  readonly #file: FileHandle;
  readonly #partPath: string;
  readonly #size: number;
  readonly #hasher: PrefixHasher | undefined;
  readonly #checkpoint: Checkpointer;
  /** Writers of the ranges in progress, so a checkpoint can flush what they hold. */
  readonly #writers = new Set<CoalescingWriter>();

  /**
   * @param path the output path; bytes go to `<path>.part`, the manifest to `<path>.part.json`
   * @param done bytes already on disk (a resume); grows as ranges are written
   * @param clock the job's, for the checkpoints' rename retries
   */
  constructor(file: FileHandle, path: string, manifest: Manifest, done: IntervalSet, clock: Pick<Clock, "now" | "sleep">, hasher?: PrefixHasher) {
    const paths = partPaths(path);
    this.#file = file;
    this.#partPath = paths.part;
    this.#size = manifest.size;
    this.#hasher = hasher;
    // Bytes a connection still holds in memory are not on disk: flush them first, so
    // a crash loses at most about one checkpoint interval of each connection's bytes.
    const flushWriters = async () => {
      await Promise.all([...this.#writers].map((writer) => writer.flush()));
    };
    this.#checkpoint = new Checkpointer(file, paths.manifest, manifest, done, flushWriters, clock);
  }

  writer(): RangeWriter {
    const writer = new CoalescingWriter(this.#file, (start, end) => {
      this.#checkpoint.written(start, end);
      this.#hasher?.written(start, end);
    });
    this.#writers.add(writer);
    const cannotWrite = (error: unknown): never => {
      throw fileError(error, this.#partPath, "cannot write");
    };
    return {
      write: (chunk, position) => writer.write(chunk, position)?.catch(cannotWrite),
      flush: async () => {
        this.#writers.delete(writer);
        await writer.flush().catch(cannotWrite);
      },
    };
  }

  checkpoint(): Promise<void> {
    return this.#checkpoint.save();
  }

  /**
   * `complete`: every byte must be written (the file stays open for `finishPart`);
   * `kept`: a last checkpoint, so a re-run resumes; either way but `complete` the file is closed.
   * @throws Error (internal) when a complete transfer left bytes missing
   */
  async end(how: ConsumerEnd): Promise<void> {
    if (how === "complete") return this.#checkpoint.complete(this.#size);
    if (how === "kept") await this.#checkpoint.save().catch(() => {});
    await this.#file.close();
  }
}

/**
 * The `.part` of a single stream: a fresh one for each attempt (a retry starts over),
 * hashed as it is written when a checksum was asked for. After `streamWhole` resolved,
 * `file` and `hasher` are the successful attempt's, for `finishPart`; when it gave up,
 * the `.part` is gone (nothing in it can be resumed).
 */
export class PartFileStream implements Consumer {
  readonly #path: string;
  readonly #partPath: string;
  readonly #algorithm: Checksum["algorithm"] | undefined;
  #file: FileHandle;
  #hasher: PrefixHasher | undefined;

  private constructor(path: string, algorithm: Checksum["algorithm"] | undefined, file: FileHandle) {
    this.#path = path;
    this.#partPath = partPaths(path).part;
    this.#algorithm = algorithm;
    this.#file = file;
    this.#hasher = algorithm === undefined ? undefined : new PrefixHasher(this.#partPath, algorithm);
  }

  /**
   * A fresh, empty `<path>.part` for the stream's first attempt.
   * @throws FileError as `createPart`
   */
  static async create(path: string, algorithm: Checksum["algorithm"] | undefined): Promise<PartFileStream> {
    return new PartFileStream(path, algorithm, await createPart(path, 0));
  }

  get file(): FileHandle {
    return this.#file;
  }

  get hasher(): PrefixHasher | undefined {
    return this.#hasher;
  }

  writer(): RangeWriter {
    const hasher = this.#hasher;
    const writer = new CoalescingWriter(this.#file, (start, end) => hasher?.written(start, end));
    const cannotWrite = (error: unknown): never => {
      throw fileError(error, this.#partPath, "cannot write");
    };
    return {
      write: (chunk, position) => writer.write(chunk, position)?.catch(cannotWrite),
      flush: () => writer.flush().catch(cannotWrite),
    };
  }

  /** The attempt's `.part` and hash are dropped, and a fresh `.part` made for the next. */
  async restart(): Promise<void> {
    await this.#drop();
    this.#file = await createPart(this.#path, 0);
    this.#hasher = this.#algorithm === undefined ? undefined : new PrefixHasher(this.#partPath, this.#algorithm);
  }

  /** Anything but `complete` removes the `.part`: one stream cannot be resumed. */
  async end(how: ConsumerEnd): Promise<void> {
    if (how !== "complete") await this.#drop();
  }

  async #drop(): Promise<void> {
    await this.#hasher?.close();
    await this.#file.close().catch(() => {});
    await removeIfPresent(this.#partPath);
  }
}


/**
 * Writing into the `.part` file while a transfer runs: as the parallel path's sink
 * (`PartFileSink`: coalesced positional writes, checkpoints, the prefix hash) and as
 * a single stream's target (`PartFileStream`: a fresh `.part` per attempt). The
 * checkpoint makes the record of done bytes durable: data fsync, then the manifest.
 */
import type { FileHandle } from "node:fs/promises";
import { removeIfPresent, writeManifest, type Manifest } from "./manifest.js";
import { createPart } from "./part-file.js";
import { partPaths } from "./part-paths.js";
import type { IntervalSet } from "./ranges.js";
import { PrefixHasher } from "./running-hash.js";
import type { StreamTarget } from "./single-stream.js";
import { CoalescingWriter, type ByteSink, type RangeWriter } from "./sink.js";
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
  #dirty = false;
  #saving: Promise<void> = Promise.resolve();

  /**
   * @param path the manifest's path (`<output>.part.json`)
   * @param beforeSave flushes bytes still held in memory, so they count in this save
   */
  constructor(file: FileHandle, path: string, manifest: Manifest, done: IntervalSet, beforeSave: () => Promise<void>) {
    this.#file = file;
    this.#path = path;
    this.#manifest = manifest;
    this.#done = done;
    this.#beforeSave = beforeSave;
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
    await writeManifest(this.#path, { ...this.#manifest, done: snapshot });
  }
}

/**
 * The `.part` file as the sink of a parallel transfer: each range writes through its
 * own `CoalescingWriter`; every written interval goes to the checkpoint and, when a
 * checksum was asked for, to the prefix hasher. A failure saves a last checkpoint
 * (unless the bytes are of an old version) and closes the file; on success the caller
 * finishes it (`finishPart`).
 */
export class PartFileSink implements ByteSink {
  readonly limit = Number.POSITIVE_INFINITY;
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
   */
  constructor(file: FileHandle, path: string, manifest: Manifest, done: IntervalSet, hasher?: PrefixHasher) {
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
    this.#checkpoint = new Checkpointer(file, paths.manifest, manifest, done, flushWriters);
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

  /** A file has no window: nothing ever makes room. */
  onRoom(): void {}

  tick(): Promise<void> {
    return this.#checkpoint.save();
  }

  complete(): Promise<void> {
    return this.#checkpoint.complete(this.#size);
  }

  async fail(_error: unknown, changed: boolean): Promise<void> {
    // Save what is durable so a re-run resumes, unless those bytes are of an old version.
    if (!changed) await this.#checkpoint.save().catch(() => {});
    await this.#file.close();
  }
}

/**
 * The `.part` of a single stream: a fresh one for each attempt (a retry starts over),
 * hashed as it is written when a checksum was asked for. After `streamWhole` resolved,
 * `file` and `hasher` are the successful attempt's, for `finishPart`.
 */
export class PartFileStream implements StreamTarget {
  readonly #path: string;
  readonly #algorithm: Checksum["algorithm"] | undefined;
  #file: FileHandle | undefined;
  #hasher: PrefixHasher | undefined;

  /** @param path the output path; bytes go to `<path>.part` */
  constructor(path: string, algorithm: Checksum["algorithm"] | undefined) {
    this.#path = path;
    this.#algorithm = algorithm;
  }

  get file(): FileHandle {
    if (!this.#file) throw new Error("internal error: no attempt of the stream has started");
    return this.#file;
  }

  get hasher(): PrefixHasher | undefined {
    return this.#hasher;
  }

  async start(): Promise<RangeWriter> {
    const partPath = partPaths(this.#path).part;
    const file = await createPart(this.#path, 0);
    this.#file = file;
    const hasher = this.#algorithm === undefined ? undefined : new PrefixHasher(partPath, this.#algorithm);
    this.#hasher = hasher;
    const writer = new CoalescingWriter(file, (start, end) => hasher?.written(start, end));
    const cannotWrite = (error: unknown): never => {
      throw fileError(error, partPath, "cannot write");
    };
    return {
      write: (chunk, position) => writer.write(chunk, position)?.catch(cannotWrite),
      flush: () => writer.flush().catch(cannotWrite),
    };
  }

  async failed(): Promise<void> {
    await this.#hasher?.close();
    await this.#file?.close().catch(() => {});
    await removeIfPresent(partPaths(this.#path).part);
  }
}


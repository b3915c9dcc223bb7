/**
 * The `.part` file's life: created at full length (sparse) after a space check, or
 * reopened for a resume when it can be trusted; made durable by checkpoints (data
 * fsync, then the manifest); and finished (fsync, size check, checksum, rename into
 * place, mtime). The output name only ever holds a complete, verified file. As a
 * transfer's sink (`PartFileSink`), it takes each range's bytes at their offsets.
 */
import { constants } from "node:fs";
import { open, rename, stat, statfs, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { discardPartial, etagSidecar } from "./claim.js";
import { FileError, IntegrityError, RangegetError } from "./errors.js";
import { parseHttpDate } from "./http-headers.js";
import { removeIfPresent, writeManifest, type Manifest } from "./manifest.js";
import type { IntervalSet } from "./ranges.js";
import { checkDigest, PrefixHasher } from "./running-hash.js";
import type { StreamTarget } from "./single-stream.js";
import { CoalescingWriter, type ByteSink, type RangeWriter } from "./sink.js";
import { fileError } from "./to-error.js";
import type { Checksum } from "./types.js";

/**
 * Opens the existing `.part` of a resume, or `undefined` when it cannot be trusted (a
 * symlink, gone, or not the manifest's length): then the partial state is discarded,
 * with a warning, and the caller starts over. None of these is a change on the server.
 * @throws FileError when the file exists but cannot be opened.
 */
export async function openPart(path: string, size: number, warn: (message: string) => void): Promise<FileHandle | undefined> {
  const partPath = `${path}.part`;
  let file: FileHandle;
  try {
    // Never through a symlink: someone else's file is not our partial download.
    file = await open(partPath, constants.O_RDWR | constants.O_NOFOLLOW);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ELOOP" && code !== "ENOENT") throw fileError(error, partPath, "cannot open");
    warn(
      code === "ELOOP"
        ? `${partPath} is a symbolic link, not our partial file; starting over`
        : `${partPath} is gone though its manifest remains; starting over`,
    );
    await discardPartial(path);
    return undefined;
  }
  const actual = (await file.stat()).size;
  if (actual !== size) {
    await file.close();
    warn(`${partPath} has ${actual} bytes, not ${size}: it was changed by someone else; starting over`);
    await discardPartial(path);
    return undefined;
  }
  return file;
}

/**
 * A fresh full-length sparse `.part`, after checking the disk can hold it. A stray
 * `.part` (even a planted symlink) is replaced, never written through.
 * @throws FileError: not enough space (ERR_NO_SPACE), permission, or other file system errors.
 */
export async function createPart(path: string, size: number): Promise<FileHandle> {
  const partPath = `${path}.part`;
  await ensureSpace(partPath, size);
  try {
    const file = await openExclusive(partPath).catch(async (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      await removeIfPresent(partPath);
      return openExclusive(partPath);
    });
    if (size > 0) await file.truncate(size);
    return file;
  } catch (error) {
    throw fileError(error, partPath, "cannot create");
  }
}

/**
 * A new file at `path`; EEXIST if anything is there, a symlink included (O_EXCL does
 * not follow links), so a stray `.part` is removed only when there is one.
 */
function openExclusive(path: string): Promise<FileHandle> {
  return open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o666);
}

async function ensureSpace(partPath: string, size: number): Promise<void> {
  if (size === 0) return;
  let free: number;
  try {
    const info = await statfs(dirname(partPath));
    free = info.bavail * info.bsize;
  } catch {
    return;
  }
  if (free < size) {
    throw new FileError(
      `not enough space for ${partPath}: the file needs ${size} bytes and ${free} are free; free some space or choose another --dir`,
      { path: partPath, code: "ERR_NO_SPACE" },
    );
  }
}

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
  readonly #done: IntervalSet;
  readonly #hasher: PrefixHasher | undefined;
  readonly #checkpoint: Checkpointer;
  /** Writers of the ranges in progress, so a checkpoint can flush what they hold. */
  readonly #writers = new Set<CoalescingWriter>();

  /**
   * @param path the output path; bytes go to `<path>.part`, the manifest to `<path>.part.json`
   * @param done bytes already on disk (a resume); grows as ranges are written
   */
  constructor(file: FileHandle, path: string, manifest: Manifest, done: IntervalSet, hasher?: PrefixHasher) {
    this.#file = file;
    this.#partPath = `${path}.part`;
    this.#size = manifest.size;
    this.#done = done;
    this.#hasher = hasher;
    // Bytes a connection still holds in memory are not on disk: flush them first, so
    // a crash loses at most about one checkpoint interval of each connection's bytes.
    const flushWriters = async () => {
      await Promise.all([...this.#writers].map((writer) => writer.flush()));
    };
    this.#checkpoint = new Checkpointer(file, `${path}.part.json`, manifest, done, flushWriters);
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

  async complete(): Promise<void> {
    await this.#checkpoint.settle();
    if (this.#done.bytes !== this.#size) {
      await this.#checkpoint.save();
      await this.#file.close();
      throw new Error(`internal error: transfer ended with ${this.#size - this.#done.bytes} bytes missing; run again to resume`);
    }
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
    const partPath = `${this.#path}.part`;
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
    await removeIfPresent(`${this.#path}.part`);
  }
}

export interface FinishOptions {
  /** The output path; the data is at `<path>.part`. */
  path: string;
  /** The URL, for messages. */
  url: string;
  checksum: Checksum | undefined;
  /** Hashes the bytes as they were written; given exactly when `checksum` is. Closed here. */
  hasher: PrefixHasher | undefined;
  /** Keep the ETag beside the output for the next `ifChanged` run. */
  ifChanged: boolean;
}

/**
 * fsync, size check, checksum (the hasher's digest: the file is not read again),
 * rename into place, mtime from Last-Modified, then the bookkeeping goes. Closes
 * `file` and the hasher. Resolves with the digest computed when a checksum was asked
 * for, else null.
 * @throws IntegrityError on a size or checksum mismatch (a mismatching `.part` is removed:
 *   its bytes are no use to a re-run); FileError when the file system refuses.
 */
export async function finishPart(file: FileHandle, manifest: Manifest, options: FinishOptions): Promise<Checksum | null> {
  const { path } = options;
  const partPath = `${path}.part`;
  const size = manifest.size;
  try {
    await file.datasync();
    const actual = (await file.stat()).size;
    if (actual !== size) {
      throw new IntegrityError(`${partPath} has ${actual} bytes, expected ${size}; run again to fetch it afresh`);
    }
  } catch (error) {
    await options.hasher?.close();
    throw error instanceof RangegetError ? error : fileError(error, partPath, "cannot finish");
  } finally {
    await file.close();
  }
  const { checksum, hasher } = options;
  let digest: Checksum | null = null;
  if (checksum && hasher) {
    let actual: string;
    try {
      actual = await hasher.digest(size);
    } catch (error) {
      throw fileError(error, partPath, "cannot hash");
    }
    digest = { algorithm: checksum.algorithm, hex: actual };
    if (actual !== checksum.hex) await discardPartial(path);
    checkDigest(checksum, actual, options.url, "the partial file was removed");
  }
  try {
    // A manifest on disk says "complete" before the rename, so a crash just after it
    // leaves an output the next run recognises (claim.ts, finishedBeforeCrash) instead
    // of a manifest with gaps and no .part, which would mean fetching the file again.
    // Without one (a download shorter than a checkpoint), there is nothing to fix up:
    // skipping the write saves small files an fsync each.
    // No directory fsync: on a crash the journal keeps these renames and unlinks in
    // order, so either the output appeared or the .part and its complete manifest
    // remain, and the next run finishes it. The data itself was synced above.
    // We hold the lock, so a manifest absent now stays absent: no removal to attempt.
    const manifestPath = `${path}.part.json`;
    const manifestOnDisk = (await stat(manifestPath).catch(() => undefined)) !== undefined;
    if (size > 0 && manifestOnDisk) await writeManifest(manifestPath, { ...manifest, done: [[0, size - 1]] });
    await rename(partPath, path);
    const modified = parseHttpDate(manifest.lastModified);
    if (modified !== undefined) await utimes(path, new Date(), new Date(modified));
    if (manifestOnDisk) await removeIfPresent(manifestPath);
    if (options.ifChanged) {
      // If-None-Match compares weakly (RFC 9110 13.1.2), so a weak ETag serves too.
      if (manifest.etag) await writeFile(etagSidecar(path), `${manifest.etag}\n`);
      else await removeIfPresent(etagSidecar(path));
    }
  } catch (error) {
    throw fileError(error, path, "cannot move the finished download to");
  }
  return digest;
}

/**
 * The `.part` file's life: created at full length (sparse) after a space check, or
 * reopened for a resume when it can be trusted; made durable by checkpoints (data
 * fsync, then the manifest); and finished (fsync, size check, checksum, rename into
 * place, mtime). The output name only ever holds a complete, verified file. Writing
 * into it while a transfer runs is part-sink.ts's.
 */
import { constants } from "node:fs";
import { open, rename, stat, statfs, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { discardPartial, etagSidecar } from "./claim.js";
import { FileError, IntegrityError, RangegetError } from "./errors.js";
import { refuseTooLarge } from "./file-size-limit.js";
import { parseHttpDate } from "./http-headers.js";
import { removeIfPresent, writeManifest, type Manifest } from "./manifest.js";
import { loadXattr, writeOriginRecord, type OriginRecord } from "./origin-record.js";
import { checkDigest, type PrefixHasher } from "./running-hash.js";
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
 * @throws FileError: too large for this process or volume (ERR_FILE_TOO_LARGE), not
 *   enough space (ERR_NO_SPACE), permission, or other file system errors.
 */
export async function createPart(path: string, size: number): Promise<FileHandle> {
  const partPath = `${path}.part`;
  await refuseTooLarge(partPath, size);
  await ensureSpace(partPath, size);
  let file: FileHandle;
  try {
    file = await openExclusive(partPath).catch(async (error: unknown) => {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      await removeIfPresent(partPath);
      return openExclusive(partPath);
    });
  } catch (error) {
    throw fileError(error, partPath, "cannot create");
  }
  try {
    if (size > 0) await file.truncate(size);
    return file;
  } catch (error) {
    await file.close().catch(() => {});
    throw fileError(error, partPath, "cannot create");
  }
}

/**
 * Adopts an output another tool left partial (`continue`): `<path>` becomes `<path>.part`
 * and grows, sparse, to `size`; its `prefix` bytes are kept. Called once the probe
 * proved the size, so a file that is not a prefix of the remote one stays untouched.
 * If it cannot be opened or grown once moved, it is moved back: the user's file is
 * never lost.
 * @throws FileError when it cannot be moved, grown, or does not fit.
 */
export async function adoptPart(path: string, prefix: number, size: number): Promise<FileHandle> {
  const partPath = `${path}.part`;
  await refuseTooLarge(partPath, size);
  await ensureSpace(partPath, size - prefix);
  try {
    await removeIfPresent(partPath);
    await rename(path, partPath);
  } catch (error) {
    throw fileError(error, partPath, "cannot continue");
  }
  let file: FileHandle | undefined;
  try {
    file = await open(partPath, constants.O_RDWR | constants.O_NOFOLLOW);
    if (size > prefix) await file.truncate(size);
    return file;
  } catch (error) {
    await file?.close().catch(() => {});
    await rename(partPath, path).catch(() => {});
    throw fileError(error, partPath, "cannot continue");
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
  /** Where the file came from, kept with the output so that a re-run recognises it. */
  record: OriginRecord;
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
      // The file system's refusal is the user's to fix; anything else is a bug, shown as one.
      throw typeof (error as NodeJS.ErrnoException).code === "string" ? fileError(error, partPath, "cannot hash") : error;
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
    // On the .part, before the rename: attributes move with the file, so the output
    // never appears without its record.
    await writeOriginRecord(partPath, options.record, { xattr: await loadXattr(), sidecarFor: path });
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

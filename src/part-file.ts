/**
 * The `.part` file's life: created after a space and size check (at full length where
 * the volume has sparse files, empty and grown by the writes where it has not), or
 * reopened for a resume when it can be trusted; made durable by checkpoints (data
 * fsync, then the manifest); and finished (fsync, size check, checksum, rename into
 * place, mtime). The output name only ever holds a complete, verified file. Writing
 * into it while a transfer runs is part-sink.ts's.
 */
import { constants } from "node:fs";
import { stat, statfs, utimes, writeFile, type FileHandle } from "node:fs/promises";
import { dirname } from "node:path";
import { discardPartial, etagSidecar } from "./claim.js";
import type { Clock } from "./clock.js";
import { FileError, IntegrityError, RangegetError } from "./errors.js";
import { fileTooLarge, refuseTooLarge } from "./file-size-limit.js";
import { parseHttpDate } from "./http-headers.js";
import { needsLimitProbe, openNoFollow, probeLargestFile, renameRetrying, systemLimitProbe, volumeOf, type LimitProbe, type Volume } from "./platform.js";
import type { Interval } from "./ranges.js";
import { removeIfPresent, writeManifest, type Manifest } from "./manifest.js";
import { partPaths } from "./part-paths.js";
import { loadXattr, writeOriginRecord, type OriginRecord } from "./origin-record.js";
import { checkDigest, type PrefixHasher } from "./running-hash.js";
import { digestMatches, type ExpectedChecksum } from "./checksum.js";
import { fileError } from "./to-error.js";
import type { Checksum } from "./types.js";

/**
 * Opens the existing `.part` of a resume, or `undefined` when it cannot be trusted (a
 * symlink, gone, or not the manifest's length): then the partial state is discarded,
 * with a warning, and the caller starts over. None of these is a change on the server.
 * A `.part` on a volume without sparse files grows as ranges land, so it may be
 * shorter than `size` as long as it holds every byte of `done`.
 * @throws FileError when the file exists but cannot be opened.
 */
export async function openPart(
  path: string,
  size: number,
  warn: (message: string) => void,
  done: readonly Interval[] = [],
): Promise<FileHandle | undefined> {
  const partPath = partPaths(path).part;
  let file: FileHandle;
  try {
    // Never through a symlink: someone else's file is not our partial download.
    file = await openNoFollow(partPath, constants.O_RDWR, undefined);
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
  // Only a volume without sparse files leaves a .part shorter than the file (createPart).
  const holdsDone =
    actual === size || (actual < size && (done.at(-1)?.[1] ?? -1) < actual && !(await volumeOf(dirname(partPath))).sparse);
  if (!holdsDone) {
    await file.close();
    warn(`${partPath} has ${actual} bytes, not ${size}: it was changed by someone else; starting over`);
    await discardPartial(path);
    return undefined;
  }
  return file;
}

/**
 * A fresh `.part`, after checking the volume can hold it: full-length and sparse where
 * the volume has sparse files; empty elsewhere (exFAT, FAT, NTFS on Windows), because
 * growing it there would zero every byte before the first one arrives: the writes
 * grow it instead, appended in file order (`writesInFileOrder`). A stray `.part` (even a
 * planted symlink) is replaced, never written through. `volume` is asked of the file
 * system unless given (tests give a FAT32 one); `probe` asks it by trying where its limit
 * is not known (`checkRoom`; tests give Windows' platform and a FAT32 ftruncate).
 * @throws FileError: too large for this process or volume (ERR_FILE_TOO_LARGE), not
 *   enough space (ERR_NO_SPACE), permission, or other file system errors.
 */
export async function createPart(path: string, size: number, volume?: Volume, probe?: LimitProbe): Promise<FileHandle> {
  const partPath = partPaths(path).part;
  const { sparse } = await checkRoom(partPath, size, size, volume, probe);
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
    if (size > 0 && sparse) await file.truncate(size);
    return file;
  } catch (error) {
    await file.close().catch(() => {});
    throw fileError(error, partPath, "cannot create");
  }
}

/**
 * Whether the `.part` files of `directory` are written strictly in file order, appended at
 * their end (appending-sink.ts): where the volume has no sparse files, a write past the
 * end would make it zero the gap first. `volume` is asked of the file system unless given.
 */
export async function writesInFileOrder(directory: string, volume?: Volume): Promise<boolean> {
  return !(volume ?? (await volumeOf(directory))).sparse;
}

/**
 * How the planner cuts ranges for the `.part` of `path`: as it likes on a volume with
 * sparse files; elsewhere in `minSplit` pieces, handed out front to back within the
 * window of the sink that appends them in order (`writesInFileOrder`), so no range is
 * fetched far ahead of the written end (aria2 `--file-allocation=none` with in-order
 * piece selection; aria2 #1708, #657).
 */
export async function rangePlanning(path: string, minSplit: number): Promise<{ minSplit: number; maxRange?: number }> {
  return (await writesInFileOrder(dirname(partPaths(path).part))) ? { minSplit, maxRange: minSplit } : { minSplit };
}

/**
 * Adopts an output another tool left partial (`continue`): `<path>` becomes `<path>.part`
 * and grows, sparse, to `size`; its `prefix` bytes are kept. Called once the probe
 * proved the size, so a file that is not a prefix of the remote one stays untouched.
 * If it cannot be opened or grown once moved, it is moved back: the user's file is
 * never lost. Where the volume has no sparse files it is not grown: the writes grow it.
 * `volume` and `probe` as for `createPart`; `clock` is the job's, for the renames' retries.
 * @throws FileError when it cannot be moved, grown, or does not fit.
 */
export async function adoptPart(
  path: string,
  prefix: number,
  size: number,
  clock: Pick<Clock, "now" | "sleep">,
  volume?: Volume,
  probe?: LimitProbe,
): Promise<FileHandle> {
  const partPath = partPaths(path).part;
  const { sparse } = await checkRoom(partPath, size, size - prefix, volume, probe);
  try {
    await removeIfPresent(partPath);
    await renameRetrying(path, partPath, { clock });
  } catch (error) {
    throw fileError(error, partPath, "cannot continue");
  }
  let file: FileHandle | undefined;
  try {
    file = await openNoFollow(partPath, constants.O_RDWR, undefined);
    if (size > prefix && sparse) await file.truncate(size);
    return file;
  } catch (error) {
    await file?.close().catch(() => {});
    await renameRetrying(partPath, path, { clock }).catch(() => {});
    throw fileError(error, partPath, "cannot continue");
  }
}

/**
 * A new file at `path`; EEXIST if anything is there, a symlink included (O_EXCL does
 * not follow links), so a stray `.part` is removed only when there is one.
 */
function openExclusive(path: string): Promise<FileHandle> {
  return openNoFollow(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o666);
}

/**
 * The bytes free for us on a volume whose statfs(2) says `info`, or `undefined` when it
 * does not know: a volume that reports 0 blocks in total (Debian's fusefat, some
 * network mounts) reports 0 free too, and that means "unknown", not "full". Pure.
 */
export function freeBytes(info: { blocks: number; bavail: number; bsize: number }): number | undefined {
  if (info.blocks === 0) return undefined;
  return info.bavail * info.bsize;
}

/**
 * Refuses a `size`-byte `.part` that the process or its volume cannot hold, or whose
 * `needed` new bytes do not fit the free space; answers the volume (asked unless given).
 * Where the volume's limit is not known from the mount and the file is larger than
 * FAT's, the volume is asked by trying (`probeLargestFile`), once the space is known to do.
 * @throws FileError ERR_FILE_TOO_LARGE, ERR_NO_SPACE
 */
async function checkRoom(partPath: string, size: number, needed: number, volume: Volume | undefined, probe = systemLimitProbe): Promise<Volume> {
  const directory = dirname(partPath);
  const known = volume ?? (await volumeOf(directory));
  await refuseTooLarge(partPath, size, known.largestFile);
  const free = await ensureSpace(partPath, needed);
  if (needsLimitProbe(size, known, probe.platform)) {
    const largest = await probeLargestFile(directory, size, free !== undefined && free >= size, probe);
    if (largest !== undefined && size > largest) throw fileTooLarge(partPath, size, { kind: "file-system", limit: largest });
  }
  return known;
}

/** The bytes free for `partPath` (`undefined`: not known). @throws FileError ERR_NO_SPACE when `size` do not fit. */
async function ensureSpace(partPath: string, size: number): Promise<number | undefined> {
  if (size === 0) return undefined;
  const free = await statfs(dirname(partPath)).then(freeBytes, () => undefined);
  if (free !== undefined && free < size) {
    throw new FileError(
      `not enough space for ${partPath}: the file needs ${size} bytes and ${free} are free; free some space or choose another \`dir\``,
      { path: partPath, code: "ERR_NO_SPACE" },
    );
  }
  return free;
}

export interface FinishOptions {
  /** The output path; the data is at `<path>.part`. */
  path: string;
  /** The URL, for messages. */
  url: string;
  checksum: Checksum | ExpectedChecksum | undefined;
  /** Hashes the bytes as they were written; given exactly when `checksum` is. Closed here. */
  hasher: PrefixHasher | undefined;
  /** Keep the ETag beside the output for the next `ifChanged` run. */
  ifChanged: boolean;
  /** Where the file came from, kept with the output so that a re-run recognises it. */
  record: OriginRecord;
  /** The job's clock: the rename's retries sleep on it, and `wall` dates Last-Modified's two-digit years. */
  clock: Pick<Clock, "now" | "sleep" | "wall">;
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
  const partPath = partPaths(path).part;
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
    if (!digestMatches(checksum, actual)) await discardPartial(path);
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
    const manifestPath = partPaths(path).manifest;
    const manifestOnDisk = (await stat(manifestPath).catch(() => undefined)) !== undefined;
    if (size > 0 && manifestOnDisk) await writeManifest(manifestPath, { ...manifest, done: [[0, size - 1]] }, options.clock);
    // On the .part, before the rename: attributes move with the file, so the output
    // never appears without its record.
    await writeOriginRecord(partPath, options.record, { xattr: await loadXattr(), sidecarFor: path });
    await renameRetrying(partPath, path, { clock: options.clock });
    const modified = parseHttpDate(manifest.lastModified, options.clock.wall());
    if (modified !== undefined) await utimes(path, new Date(options.clock.wall()), new Date(modified));
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

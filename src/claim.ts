/**
 * Claiming an output path before anything is fetched into it: the lock, the refusal
 * to clobber a file that is not ours, the partial state of an earlier run that can be
 * trusted, and the tidy-up of a run that finished but died before cleaning up.
 */
import { mkdir, readFile, stat } from "node:fs/promises";
import { dirname } from "node:path";
import { FileError } from "./errors.js";
import { acquireLock, type Lock, type LockEnvironment } from "./lock.js";
import { manifestDone, readManifest, removeIfPresent, type Manifest } from "./manifest.js";
import { partPaths } from "./part-paths.js";
import { finishedFrom, type XattrApi } from "./origin-record.js";
import type { IntervalSet } from "./ranges.js";
import { fileError } from "./to-error.js";

/** The partial data of an earlier run that we trust and will resume. */
export interface PartialState {
  manifest: Manifest;
  done: IntervalSet;
}

/** Validators of an existing output, for `ifChanged` (RFC 9110 13.1.2, 13.1.3). */
export interface ConditionalHeaders {
  ifNoneMatch?: string;
  ifModifiedSince: string;
}

/** What claiming an output found; the lock is held in every case. */
export type Claim =
  /**
   * An earlier run had finished the file: its origin record names this URL, or it died
   * between the rename and tidying up. It is whole.
   */
  | { kind: "finished-earlier"; lock: Lock; size: number }
  | {
      kind: "claimed";
      lock: Lock;
      partial: PartialState | undefined;
      conditional: ConditionalHeaders | undefined;
      /** With `continue`: the length of the existing output, to be taken as a done prefix. */
      adopted: number | undefined;
    };

export interface ClaimOptions {
  /** The URL the manifest must belong to. */
  url: string;
  force: boolean;
  ifChanged: boolean;
  /** Adopt an existing output that has no partial state as a done prefix. */
  continue: boolean;
  /** Extended attributes, where the origin record is read from. */
  xattr: XattrApi | undefined;
  warn: (message: string) => void;
  /** The job's clock: a lock seen empty is waited for on it (lock.ts). */
  clock: LockEnvironment["clock"];
}

/**
 * Takes the lock on `path` (creating its directory, as wget and aria2 do), refuses to
 * clobber an existing file unless `force`, `ifChanged` or `continue`, recognises a file
 * rangeget finished from this URL by its origin record (DESIGN, "Files on disk"), and
 * loads the partial state of an earlier run when its manifest can be trusted (an
 * untrusted one is discarded with a warning: never guess).
 * @throws FileError: locked by another process (ERR_LOCKED), output exists (ERR_EXISTS),
 *   output is a directory, or the file system refuses.
 */
export async function claimOutput(path: string, options: ClaimOptions): Promise<Claim> {
  const lock = await lockCreatingDirectory(path, options.clock);
  try {
    if (options.force) await discardPartial(path);
    let partial: PartialState | undefined;
    const manifestPath = partPaths(path).manifest;
    const check = await readManifest(manifestPath, options.url);
    if (check?.trusted === false) {
      options.warn(`ignoring ${manifestPath}: ${check.reason}; starting over`);
      await discardPartial(path);
    } else if (check?.trusted) {
      partial = { manifest: check.manifest, done: manifestDone(check.manifest) };
    }
    const existing = await stat(path).catch(() => undefined);
    if (existing && partial && (await finishedBeforeCrash(path, partial, existing.size))) {
      return { kind: "finished-earlier", lock, size: partial.manifest.size };
    }
    if (existing?.isDirectory()) {
      throw new FileError(`${path} is a directory; choose another \`output\``, { path, code: "ERR_FILE" });
    }
    let conditional: ConditionalHeaders | undefined;
    let adopted: number | undefined;
    if (existing && !partial && !options.force) {
      if (options.ifChanged) {
        conditional = await conditionalHeaders(path, existing.mtime);
      } else if (await finishedFrom(path, options.url, options.xattr)) {
        return { kind: "finished-earlier", lock, size: existing.size };
      } else if (options.continue) {
        // Said by the download once the server's answer allows it (adoptionWarning): a
        // file longer than the remote one is refused instead.
        adopted = existing.size;
      } else {
        throw new FileError(
          `${path} already exists; use \`force\` to overwrite it, \`ifChanged\` to update it when the server has a newer one, or \`continue\` to finish it`,
          { path, code: "ERR_EXISTS" },
        );
      }
    }
    return { kind: "claimed", lock, partial, conditional, adopted };
  } catch (error) {
    await lock.release().catch(() => {});
    throw error;
  }
}

/**
 * A crash between the rename and the manifest's removal leaves the finished output
 * beside a complete manifest and no `.part`: the file is whole (it was synced and
 * verified before the rename), so only the bookkeeping is left to tidy.
 */
async function finishedBeforeCrash(path: string, partial: PartialState, outputSize: number): Promise<boolean> {
  const size = partial.manifest.size;
  const complete = partial.done.bytes === size && outputSize === size;
  const paths = partPaths(path);
  if (!complete || (await stat(paths.part).catch(() => undefined))) return false;
  await removeIfPresent(paths.manifest);
  return true;
}

/** Removes the `.part` and its manifest: the partial data is of no further use. */
export async function discardPartial(path: string): Promise<void> {
  const paths = partPaths(path);
  await removeIfPresent(paths.part);
  await removeIfPresent(paths.manifest);
}

/**
 * Takes the lock of `path`, creating the output's directory if it is missing (as wget
 * and aria2 do). The directory is made only when the lock finds none: a list of small
 * files into one directory would otherwise pay a mkdir and a stat per file.
 */
async function lockCreatingDirectory(path: string, clock: LockEnvironment["clock"]): Promise<Lock> {
  const lockPath = partPaths(path).lock;
  try {
    return await acquireLock(lockPath, path, { clock });
  } catch (error) {
    const cause = (error as FileError).cause as NodeJS.ErrnoException | undefined;
    const code = cause?.code;
    // The lock is the first file made there: a refusal is the directory's, not the lock's.
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw await directoryRefusal(dirname(path), cause);
    if (code !== "ENOENT" && code !== "ENOTDIR") throw error;
  }
  await mkdirFor(path);
  return acquireLock(lockPath, path, { clock });
}

async function mkdirFor(path: string): Promise<void> {
  const directory = dirname(path);
  try {
    await mkdir(directory, { recursive: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // EEXIST, ENOTDIR: the directory, or one above it, is a file (`-d afile`).
    const file = code === "EEXIST" || code === "ENOTDIR" ? await firstNonDirectory(directory) : undefined;
    if (file === undefined) throw fileError(error, directory, "cannot create the directory");
    const where = file === directory ? "" : `, so ${directory} cannot be made in it`;
    throw new FileError(`${file} is not a directory${where}; choose another directory for the output`, { path: directory, code: "ERR_FILE", cause: error });
  }
}

/**
 * Why nothing can be made in `directory`: it exists and refuses writes, or it cannot be
 * reached or created (a parent without search or write permission).
 */
async function directoryRefusal(directory: string, cause: unknown): Promise<FileError> {
  const found = await stat(directory).then(
    (stats) => stats,
    (error: unknown) => error,
  );
  if (found instanceof Error) {
    const unreachable = (found as NodeJS.ErrnoException).code === "EACCES" ? found : cause;
    return fileError(unreachable, directory, "cannot create the directory");
  }
  return fileError(cause, directory, "cannot write in the directory");
}

/** The first of `directory` and its parents that exists and is not a directory. */
async function firstNonDirectory(directory: string): Promise<string | undefined> {
  for (let current = directory; ; current = dirname(current)) {
    const found = await stat(current).catch(() => undefined);
    if (found !== undefined) return found.isDirectory() ? undefined : current;
    if (dirname(current) === current) return undefined;
  }
}

/** If-None-Match from the sidecar, If-Modified-Since from the output's mtime (set from Last-Modified). */
export async function conditionalHeaders(path: string, mtime: Date): Promise<ConditionalHeaders> {
  const etag = await readFile(etagSidecar(path), "utf8").then(
    (text) => text.trim(),
    () => undefined,
  );
  return { ...(etag ? { ifNoneMatch: etag } : {}), ifModifiedSince: mtime.toUTCString() };
}

/** Where `ifChanged` keeps the ETag the previous download saw. */
export function etagSidecar(path: string): string {
  return `${path}.etag`;
}

/** What adopting `bytes` of `path` as a done prefix (`continue`) leaves unproven, said once the server's answer allows it. */
export function adoptionWarning(path: string, bytes: number): string {
  return `taking the ${bytes} bytes of ${path} as the start of the file: nothing vouches that they are of the same version (pass a \`checksum\` to be sure)`;
}

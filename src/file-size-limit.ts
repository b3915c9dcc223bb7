/**
 * Files larger than the system allows. Two limits are common and neither is "no space
 * left": the process's RLIMIT_FSIZE (`ulimit -f`, a batch scheduler's limit), and a
 * file system's largest file (FAT32: 4 GiB - 1 bytes, USB sticks and SD cards). Both
 * make a write past the limit fail with EFBIG; the remedy is another volume or a
 * raised limit, not freeing space. Where the limit is known up front, a file that
 * cannot fit is refused before any byte is fetched.
 */
import { readFile } from "node:fs/promises";
import { FileError } from "./errors.js";
import { currentPlatform, type Platform } from "./platform.js";

/**
 * The soft "Max file size" of `/proc/self/limits` (Linux, proc(5)) in bytes, or
 * `undefined` for `unlimited` or text that does not say.
 */
export function parseFileSizeLimit(procLimits: string): number | undefined {
  const match = /^Max file size\s+(\S+)\s+\S+\s+bytes\s*$/m.exec(procLimits);
  if (!match || match[1] === "unlimited") return undefined;
  const value = Number(match[1]);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** Why a file of some size cannot be written here. */
export type SizeRefusal = { kind: "process-limit"; limit: number } | { kind: "file-system"; limit: number };

/**
 * The limit that a file of `size` bytes would break, if any. `largestFile` is the
 * volume's (platform.ts `Volume.largestFile`: FAT32 4 GiB - 1). Pure.
 */
export function sizeRefusal(size: number, limits: { processLimit: number | undefined; largestFile: number | undefined }): SizeRefusal | undefined {
  if (limits.processLimit !== undefined && size > limits.processLimit) return { kind: "process-limit", limit: limits.processLimit };
  if (limits.largestFile !== undefined && size > limits.largestFile) return { kind: "file-system", limit: limits.largestFile };
  return undefined;
}

/** The FileError for a file too large for this process or volume: what the limit is and what to do. */
export function fileTooLarge(path: string, size: number, refusal: SizeRefusal, cause?: unknown): FileError {
  const what =
    refusal.kind === "process-limit"
      ? `this process may not write files larger than ${refusal.limit} bytes (RLIMIT_FSIZE, ulimit -f); raise the limit`
      : `the volume holding it cannot store files larger than ${refusal.limit} bytes (FAT32); choose another \`dir\` or \`output\``;
  return new FileError(`${path} would be ${size} bytes, too large (EFBIG): ${what}`, { path, code: "ERR_FILE_TOO_LARGE", cause });
}

/**
 * The EFBIG of a write that ran into a limit nobody could see up front (a limit of
 * another kind, a FAT volume behind a network file system).
 */
export function fileTooLargeOnWrite(path: string, what: string, cause: unknown): FileError {
  return new FileError(
    `${what} ${path}: the file is larger than this process or volume allows (EFBIG); raise the file-size limit (ulimit -f) or choose another volume with \`dir\` or \`output\`, then run again to resume`,
    { path, code: "ERR_FILE_TOO_LARGE", cause },
  );
}

/**
 * Refuses up front a `size`-byte file at `path` that the process limit or the volume
 * (whose largest file is `largestFile`) cannot hold. A limit that cannot be read
 * (no /proc) refuses nothing: the write's own EFBIG still tells.
 * @throws FileError ERR_FILE_TOO_LARGE
 */
export async function refuseTooLarge(path: string, size: number, largestFile: number | undefined, platform: Platform = currentPlatform): Promise<void> {
  const processLimit = platform.procFs ? await readFile("/proc/self/limits", "utf8").then(parseFileSizeLimit, () => undefined) : undefined;
  const refusal = sizeRefusal(size, { processLimit, largestFile });
  if (refusal) throw fileTooLarge(path, size, refusal);
}

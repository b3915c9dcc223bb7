/**
 * The platform seam: what this operating system and this volume can do, asked in one
 * place so the rest of the code never tests `process.platform` or assumes Linux.
 * A `Platform` is a plain value (tests build the Windows or macOS one and drive each
 * path here); `volumeOf` asks a directory's file system by trying, not by its name
 * (a FUSE mount says only "fuse" to statfs).
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { lstat, open, readFile, rename, stat, statfs, unlink, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Clock } from "./clock.js";
import type { InterruptSignal } from "./errors.js";

/** What the operating system offers (not the volume: see `Volume`). */
export interface Platform {
  readonly os: NodeJS.Platform;
  /**
   * The open(2) flag that refuses a final symlink, or `undefined` where there is none
   * (Windows: `fs.constants.O_NOFOLLOW` is undefined there, and `flags | undefined`
   * silently drops it). `openNoFollow` checks by lstat and fstat instead.
   */
  readonly noFollowFlag: number | undefined;
  /** `/proc/<pid>/stat` tells a process's start time (Linux), so a reused pid is told apart. */
  readonly procFs: boolean;
  /** File modes say who may read a file (POSIX); on Windows they always read 0666. */
  readonly permissionModes: boolean;
  /** The signals that stop a download with its state saved: SIGHUP (terminal closed), SIGBREAK (Ctrl-Break, Windows). */
  readonly interruptSignals: readonly InterruptSignal[];
  /**
   * How long a rename that meets EPERM/EBUSY/EACCES is retried, in ms: on Windows an
   * antivirus or the indexer holds a fresh file open for a moment (graceful-fs retries
   * for up to a minute); elsewhere those errors are real and 0 means no retry.
   */
  readonly renameRetryMs: number;
  /** Files can be sparse at all: Node never marks a file sparse on NTFS (FSCTL_SET_SPARSE), so Windows zero-fills. */
  readonly sparseFiles: boolean;
  /**
   * ftruncate(2) grows a file without writing zeros even where it is not sparse: Windows'
   * NTFS, exFAT and FAT drivers and macOS's set the file's length and leave its valid data
   * length behind (reasoned, not run). On Linux a volume without sparse files may write
   * every zero (exfat-fuse does).
   */
  readonly growsWithoutWriting: boolean;
}

/** The platform of `os` with open(2) flags `fsConstants` (pure: tests pass "win32" and Windows' constants). */
export function platformFor(os: NodeJS.Platform, fsConstants: { O_NOFOLLOW?: number }): Platform {
  const windows = os === "win32";
  return {
    os,
    noFollowFlag: fsConstants.O_NOFOLLOW,
    procFs: os === "linux" || os === "android",
    permissionModes: !windows,
    interruptSignals: windows ? ["SIGINT", "SIGTERM", "SIGBREAK", "SIGHUP"] : ["SIGINT", "SIGTERM", "SIGHUP"],
    renameRetryMs: windows ? 10_000 : 0,
    sparseFiles: !windows,
    growsWithoutWriting: windows || os === "darwin",
  };
}

/** The platform this process runs on. */
export const currentPlatform: Platform = platformFor(process.platform, constants);

/**
 * Opens `path` with `flags` (no O_NOFOLLOW in them), refusing a symlink with ELOOP as
 * O_NOFOLLOW would. Without the flag: lstat first, then the opened file must be the
 * one lstat saw (same device and inode), so a link swapped in between is caught too.
 * @throws the open's own errors (ENOENT, EEXIST...), or ELOOP for a symlink.
 */
export async function openNoFollow(path: string, flags: number, mode: number | undefined, platform: Platform = currentPlatform): Promise<FileHandle> {
  if (platform.noFollowFlag !== undefined) return open(path, flags | platform.noFollowFlag, mode);
  const creating = (flags & constants.O_CREAT) !== 0;
  const before = await lstat(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT" && creating) return undefined;
    throw error;
  });
  if (before?.isSymbolicLink()) throw symlinkRefused(path);
  const file = await open(path, flags, mode);
  const after = await file.stat();
  const seen = before ?? (await lstat(path));
  if (seen.isSymbolicLink() || seen.ino !== after.ino || seen.dev !== after.dev) {
    await file.close();
    throw symlinkRefused(path);
  }
  return file;
}

function symlinkRefused(path: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`ELOOP: ${path} is a symbolic link`), { code: "ELOOP", path });
}

/** The errors a rename meets on Windows while another program holds the file. */
const HELD_BY_ANOTHER_PROGRAM = new Set(["EPERM", "EBUSY", "EACCES"]);

/**
 * rename(2), retried with backoff (10 ms doubling to 1 s) for at most
 * `platform.renameRetryMs` while the error says another program holds the file; any
 * other error, or the time used up, is thrown as it came.
 */
export async function renameRetrying(
  from: string,
  to: string,
  options: { platform?: Platform; clock: Pick<Clock, "now" | "sleep">; rename?: (from: string, to: string) => Promise<void> },
): Promise<void> {
  const platform = options.platform ?? currentPlatform;
  const doRename = options.rename ?? rename;
  const started = options.clock.now();
  for (let delay = 10; ; delay = Math.min(delay * 2, 1000)) {
    try {
      await doRename(from, to);
      return;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? "";
      const left = platform.renameRetryMs - (options.clock.now() - started);
      if (!HELD_BY_ANOTHER_PROGRAM.has(code) || left <= 0) throw error;
      await options.clock.sleep(Math.min(delay, left));
    }
  }
}

/** What a directory's file system can do, found by trying (see `volumeOf`). */
export interface Volume {
  /** A file grown by truncate takes no space until written (ext4, XFS, btrfs, APFS, NTFS under ntfs-3g); not exFAT or FAT. */
  sparse: boolean;
  /** `A.iso` and `a.iso` are one file (NTFS, APFS by default, FAT, exFAT). */
  caseInsensitive: boolean;
  /** The largest file it can hold, in bytes, where one is known (FAT32: 4 GiB - 1). */
  largestFile: number | undefined;
  /**
   * True where nothing named the file system (no /proc: macOS, Windows; a FUSE mount that
   * says only `fuse` or `fuseblk`), so an undefined `largestFile` means "not known", not
   * "no limit": a file larger than FAT's is then asked of the volume (`probeLargestFile`).
   * Absent or false: `largestFile` is what the mount says.
   */
  limitUnknown?: boolean;
}

/** statfs(2) `f_type` of FAT (vfat, msdos): linux/magic.h MSDOS_SUPER_MAGIC. */
export const MSDOS_SUPER_MAGIC = 0x4d44;
/** FAT stores a file's size in 32 bits. */
export const FAT_LARGEST_FILE = 2 ** 32 - 1;
/** The probe's length: enough blocks that a file system which allocates on truncate shows it. */
const SPARSE_PROBE_BYTES = 1024 * 1024;

/**
 * The largest file a volume holds, from its statfs type and its mount type as
 * /proc/self/mountinfo names it (`vfat`, `msdos`, `fuse.fusefat`, `fuseblk` with a FAT
 * source type): statfs says only "fuse" for a FUSE mount. `undefined`: no limit known.
 */
export function largestFileFor(statfsType: number | undefined, mountType: string | undefined): number | undefined {
  if (statfsType === MSDOS_SUPER_MAGIC) return FAT_LARGEST_FILE;
  if (mountType !== undefined && /^(?:fuse(?:blk)?\.)?(?:vfat|msdos|fat|fusefat|fat32)$/i.test(mountType)) return FAT_LARGEST_FILE;
  return undefined;
}

/**
 * Whether the statfs type and the mount type leave the file system unnamed: no mount
 * type (no /proc), or a bare FUSE one (`fuse`, `fuseblk`: exfat-fuse and ntfs-3g from a
 * device say only that), unless statfs itself says FAT. Pure.
 */
export function limitUnknownFor(statfsType: number | undefined, mountType: string | undefined): boolean {
  if (statfsType === MSDOS_SUPER_MAGIC) return false;
  return mountType === undefined || mountType === "fuse" || mountType === "fuseblk";
}

/** The ftruncate(2) a limit probe grows its file with: tests pass one that fails as FAT32 does. */
export type Truncate = (file: FileHandle, size: number) => Promise<void>;

/** How `probeLargestFile` asks a volume: the platform (can growing write nothing?) and its ftruncate. */
export interface LimitProbe {
  platform: Platform;
  truncate: Truncate;
}

/** This system's probe: its platform and the real ftruncate. */
export const systemLimitProbe: LimitProbe = { platform: currentPlatform, truncate: (file, size) => file.truncate(size) };

/** The errors with which a volume refuses a file of some length: FAT's EFBIG (ERROR_FILE_TOO_LARGE on Windows), EINVAL. */
const REFUSES_THE_LENGTH = new Set(["EFBIG", "EINVAL"]);

/**
 * Whether a `size`-byte file to `volume` must be asked of the volume before any byte: its
 * limit is not known from the mount, the file is larger than FAT's largest, and growing a
 * probe file to `size` costs nothing (the volume has sparse files, or the platform grows
 * files without writing). Elsewhere the write's own EFBIG still tells. Pure.
 */
export function needsLimitProbe(size: number, volume: Volume, platform: Platform): boolean {
  return volume.limitUnknown === true && volume.largestFile === undefined && size > FAT_LARGEST_FILE && (volume.sparse || platform.growsWithoutWriting);
}

/**
 * Asks the volume of `directory` whether it holds a `size`-byte file ("probe the limit, do
 * not trust the statfs type alone"): a fresh probe file is grown to `size` with ftruncate
 * and removed. FAT refuses at once (EFBIG, or EINVAL); then the answer is FAT's largest
 * file, else `undefined` (held, or the probe could not tell: the write's EFBIG still will).
 * `enoughSpace`: the free space is known to hold `size`, so ENOSPC too refuses the length
 * (Windows' FAT driver answers a file past 4 GiB with ERROR_DISK_FULL, which libuv makes
 * ENOSPC; reasoned). Call it only where `needsLimitProbe` says so: elsewhere growing may
 * write every byte.
 */
export async function probeLargestFile(directory: string, size: number, enoughSpace: boolean, probe: LimitProbe = systemLimitProbe): Promise<number | undefined> {
  const path = join(directory, `.rangeget-limit-${process.pid}-${randomBytes(4).toString("hex")}`);
  let file: FileHandle;
  try {
    file = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch {
    return undefined;
  }
  try {
    await probe.truncate(file, size);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    return REFUSES_THE_LENGTH.has(code) || (enoughSpace && code === "ENOSPC") ? FAT_LARGEST_FILE : undefined;
  } finally {
    await file.close().catch(() => {});
    await unlink(path).catch(() => {});
  }
}

/**
 * The file system type /proc/self/mountinfo (proc(5)) gives the mount holding `path`:
 * the longest mount point that is a prefix of it. `undefined` where it cannot be read.
 */
export function mountTypeOf(mountinfo: string, path: string): string | undefined {
  let best: { point: string; type: string } | undefined;
  for (const line of mountinfo.split("\n")) {
    const [before, after] = line.split(" - ");
    if (before === undefined || after === undefined) continue;
    const point = unescapeMount(before.split(" ")[4] ?? "");
    const type = after.split(" ")[0] ?? "";
    const inside = point === "/" || path === point || path.startsWith(`${point}/`);
    if (inside && (best === undefined || point.length >= best.point.length)) best = { point, type };
  }
  return best?.type;
}

/** mountinfo escapes spaces, tabs, newlines and backslashes as octal (`\040`). */
function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
}

const volumes = new Map<string, Promise<Volume>>();

/**
 * What the file system holding `directory` (which must exist) can do, asked once per
 * directory per process: a small probe file is made, grown, looked up by another case,
 * and removed. Where the probe cannot be made (read-only, no permission) the answer is
 * the cautious one: not sparse, case-insensitive.
 */
export function volumeOf(directory: string, platform: Platform = currentPlatform): Promise<Volume> {
  let volume = volumes.get(directory);
  if (!volume) {
    volume = probeVolume(directory, platform);
    volumes.set(directory, volume);
  }
  return volume;
}

async function probeVolume(directory: string, platform: Platform): Promise<Volume> {
  const statfsType = await statfs(directory).then((info) => info.type, () => undefined);
  const mountType = platform.procFs ? await readFile("/proc/self/mountinfo", "utf8").then((text) => mountTypeOf(text, directory), () => undefined) : undefined;
  const largestFile = largestFileFor(statfsType, mountType);
  const limitUnknown = limitUnknownFor(statfsType, mountType);
  const name = `.rangeget-probe-${process.pid}-${randomBytes(4).toString("hex")}`;
  const path = join(directory, name);
  let file: FileHandle;
  try {
    file = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch {
    return { sparse: false, caseInsensitive: true, largestFile, limitUnknown };
  }
  try {
    let sparse = platform.sparseFiles;
    if (sparse) {
      await file.truncate(SPARSE_PROBE_BYTES);
      const { blocks } = await file.stat();
      // st_blocks counts 512-byte units (stat(2)); a sparse file has (almost) none.
      sparse = blocks * 512 < SPARSE_PROBE_BYTES / 2;
    }
    // The name is fresh and random, so its upper-case twin exists only as the same file.
    // Not compared by inode: exFAT under FUSE gives each spelling its own.
    const caseInsensitive = (await stat(join(directory, name.toUpperCase())).catch(() => undefined)) !== undefined;
    return { sparse, caseInsensitive, largestFile, limitUnknown };
  } catch {
    return { sparse: false, caseInsensitive: true, largestFile, limitUnknown };
  } finally {
    await file.close().catch(() => {});
    await unlink(path).catch(() => {});
  }
}

/** `path` if it is a directory, else its nearest ancestor that is: where a directory still to be made will live. */
export async function nearestExistingDirectory(path: string): Promise<string> {
  for (let current = path; ; current = dirname(current)) {
    const info = await stat(current).catch(() => undefined);
    if (info?.isDirectory() || dirname(current) === current) return current;
  }
}

import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, open, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { FileError } from "./errors.js";
import { IntervalSet, type Interval } from "./ranges.js";
import { fileError } from "./to-error.js";

/** `<output>.part.json`: the serialised record of durable bytes, nothing more. */
export interface Manifest {
  version: 1;
  url: string;
  finalUrl: string;
  size: number;
  etag: string | null;
  lastModified: string | null;
  done: Interval[];
}

export type ManifestCheck = { trusted: true; manifest: Manifest } | { trusted: false; reason: string };

/**
 * Validates a manifest's text. Anything unexpected makes it untrusted: a manifest
 * that cannot be fully believed is worth less than the bytes it would put at risk.
 */
export function parseManifest(text: string, url: string): ManifestCheck {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { trusted: false, reason: "it is not valid JSON" };
  }
  if (typeof value !== "object" || value === null) return { trusted: false, reason: "it is not a JSON object" };
  const m = value as Record<string, unknown>;
  if (m["version"] !== 1) return { trusted: false, reason: `it has version ${JSON.stringify(m["version"])}, not 1` };
  if (m["url"] !== url) return { trusted: false, reason: "it belongs to another URL" };
  if (typeof m["finalUrl"] !== "string") return { trusted: false, reason: "finalUrl is missing" };
  const size = m["size"];
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
    return { trusted: false, reason: "size is not a non-negative integer" };
  }
  const etag = m["etag"];
  const lastModified = m["lastModified"];
  if (etag !== null && typeof etag !== "string") return { trusted: false, reason: "etag is malformed" };
  if (lastModified !== null && typeof lastModified !== "string") {
    return { trusted: false, reason: "lastModified is malformed" };
  }
  const done = m["done"];
  if (!Array.isArray(done)) return { trusted: false, reason: "done is not a list" };
  let previousEnd = -2;
  for (const interval of done) {
    if (
      !Array.isArray(interval) ||
      interval.length !== 2 ||
      !Number.isSafeInteger(interval[0]) ||
      !Number.isSafeInteger(interval[1])
    ) {
      return { trusted: false, reason: "done holds a malformed interval" };
    }
    const [start, end] = interval as [number, number];
    if (start < 0 || end < start || end >= size) return { trusted: false, reason: "done reaches outside the file" };
    // Sorted and merged is part of the format: anything else was not written by us.
    if (start <= previousEnd + 1) return { trusted: false, reason: "done is not sorted and merged" };
    previousEnd = end;
  }
  return {
    trusted: true,
    manifest: {
      version: 1,
      url,
      finalUrl: m["finalUrl"] as string,
      size,
      etag: etag as string | null,
      lastModified: lastModified as string | null,
      done: (done as [number, number][]).map(([start, end]) => [start, end] as const),
    },
  };
}

/** Reads the manifest at `path`; `undefined` when there is none. */
export async function readManifest(path: string, url: string): Promise<ManifestCheck | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw fileError(error, path, "cannot read the download manifest");
  }
  return parseManifest(text, url);
}

export function manifestDone(manifest: Manifest): IntervalSet {
  return IntervalSet.from(manifest.done);
}

/** Temp file, fsync, rename: a crash leaves the old manifest or the new one, never half of one. */
export async function writeManifest(path: string, manifest: Manifest): Promise<void> {
  const temp = `${path}.tmp`;
  try {
    // Like the .part: a symlink planted at the temp name must not redirect the write.
    const handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o666);
    try {
      await handle.writeFile(JSON.stringify(manifest));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw fileError(error, path, "cannot write the download manifest");
  }
}

export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw fileError(error, path, "cannot remove");
  }
}

/** `<output>.part.lock`: one process per output. */
export interface Lock {
  release(): Promise<void>;
}

/**
 * Takes the lock with O_EXCL. A lock whose process is gone (SIGKILL, power loss) is
 * taken over; a live one, including our own process's, is refused.
 */
export async function acquireLock(path: string, output: string): Promise<Lock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    // Written in full under a private name, then linked into place: the lock file is
    // never visible without its owner, so unreadable content really means stale.
    const temp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      const owner: LockOwner = { pid: process.pid, host: hostname(), started: await ownStartTime() };
      await writeFile(temp, JSON.stringify(owner), { flag: "wx" });
      await link(temp, path);
      return { release: () => removeIfPresent(path) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw fileError(error, path, "cannot create the lock file");
    } finally {
      await unlink(temp).catch(() => {});
    }
    const owner = await readLockOwner(path);
    if (owner !== undefined && owner.host === hostname() && (await isStillRunning(owner))) {
      throw new FileError(
        `${output} is being downloaded by another rangeget process (pid ${owner.pid}); wait for it, or stop it first`,
        { path: output, code: "ERR_LOCKED" },
      );
    }
    if (owner !== undefined && owner.host !== hostname()) {
      throw new FileError(`${output} is locked by a rangeget process on host ${owner.host}; remove ${path} if it is gone`, {
        path: output,
        code: "ERR_LOCKED",
      });
    }
    await removeIfPresent(path);
  }
  throw new FileError(`cannot take the lock ${path}: another process keeps taking it`, { path: output, code: "ERR_LOCKED" });
}

interface LockOwner {
  pid: number;
  host: string;
  /** When the process started, where the system tells (Linux): pids are reused. */
  started: string | undefined;
}

async function readLockOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const value = JSON.parse(await readFile(path, "utf8")) as { pid?: unknown; host?: unknown; started?: unknown };
    if (Number.isSafeInteger(value.pid) && typeof value.host === "string") {
      return { pid: value.pid as number, host: value.host, started: typeof value.started === "string" ? value.started : undefined };
    }
  } catch {
    // Unreadable or half-written by a process that died while writing it: stale.
  }
  return undefined;
}

/** The lock's process is alive, and is the same process, not a later one given its pid. */
async function isStillRunning(owner: LockOwner): Promise<boolean> {
  if (!isAlive(owner.pid)) return false;
  if (owner.started === undefined) return true;
  const started = await startTimeOf(owner.pid);
  return started === undefined || started === owner.started;
}

/**
 * This process's start time, read once: it never changes, and a list of small files
 * takes a lock per file (five file system round trips each time).
 */
let ownStart: Promise<string | undefined> | undefined;
function ownStartTime(): Promise<string | undefined> {
  ownStart ??= startTimeOf(process.pid);
  return ownStart;
}

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); undefined off Linux. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses; fields 3.. follow its last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

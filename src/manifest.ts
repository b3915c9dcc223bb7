import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, open, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
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
 * Takes the lock: a hard link at `path` to this process's owner file in that directory
 * (`ownerFiles`), which fails with EEXIST when the lock is held. A lock whose process
 * is gone (SIGKILL, power loss) is taken over, and that process's owner file removed;
 * a live one, including our own process's, is refused.
 */
export async function acquireLock(path: string, output: string): Promise<Lock> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const owner = ownerFiles.take(dirname(path));
    let ownerPath: string;
    try {
      ownerPath = await owner.ready;
    } catch (error) {
      // ENOENT here: no directory, which the caller may make.
      await ownerFiles.put(owner, { broken: true });
      throw fileError(error, path, "cannot create the lock file");
    }
    try {
      await link(ownerPath, path);
      return { release: () => removeIfPresent(path).finally(() => ownerFiles.put(owner)) };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      await ownerFiles.put(owner, { broken: code !== "EEXIST" });
      // Someone removed the owner file: the next attempt writes a new one.
      if (code === "ENOENT") continue;
      if (code !== "EEXIST") throw fileError(error, path, "cannot create the lock file");
    }
    const holder = await readLockOwner(path);
    if (holder !== undefined && holder.host === hostname() && (await isStillRunning(holder))) {
      throw new FileError(
        `${output} is being downloaded by another rangeget process (pid ${holder.pid}); wait for it, or stop it first`,
        { path: output, code: "ERR_LOCKED" },
      );
    }
    if (holder !== undefined && holder.host !== hostname()) {
      throw new FileError(`${output} is locked by a rangeget process on host ${holder.host}; remove ${path} if it is gone`, {
        path: output,
        code: "ERR_LOCKED",
      });
    }
    if (holder?.file !== undefined) await removeIfPresent(join(dirname(path), holder.file));
    await removeIfPresent(path);
  }
  throw new FileError(`cannot take the lock ${path}: another process keeps taking it`, { path: output, code: "ERR_LOCKED" });
}

interface LockOwner {
  pid: number;
  host: string;
  /** When the process started, where the system tells (Linux): pids are reused. */
  started: string | undefined;
  /** The owner file's name in the lock's directory, removed when a stale lock is taken over. */
  file?: string;
}

/** The names `OwnerFiles` gives: nothing else is ever removed on a stale lock's word. */
const OWNER_FILE_NAME = /^\.rangeget-\d+-[0-9a-f]+-\d+\.owner$/;

async function readLockOwner(path: string): Promise<LockOwner | undefined> {
  try {
    const value = JSON.parse(await readFile(path, "utf8")) as { pid?: unknown; host?: unknown; started?: unknown; file?: unknown };
    if (Number.isSafeInteger(value.pid) && typeof value.host === "string") {
      return {
        pid: value.pid as number,
        host: value.host,
        started: typeof value.started === "string" ? value.started : undefined,
        ...(typeof value.file === "string" && OWNER_FILE_NAME.test(value.file) ? { file: value.file } : {}),
      };
    }
  } catch {
    // Unreadable: not a lock this version wrote in full, so stale.
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

/** One owner file and the locks linked to it. */
interface OwnerFile {
  directory: string;
  /** Resolves with the file's path once it is written in full; rejects if it could not be. */
  ready: Promise<string>;
  users: number;
}

/**
 * This process's owner files, one per directory it holds locks in:
 * `.rangeget-<pid>-<nonce>-<n>.owner`, holding the pid, host and start time, written in
 * full before any lock links to it, so a lock is never visible without its owner and
 * unreadable content really means stale. Every lock is one link and one unlink: no new
 * inode per file of a list (on ext4 without a journal each new inode is checked against
 * every recently deleted one, so a temp file per lock made a list slower the longer it
 * was). The file goes when its last lock is released. The nonce tells this process
 * from an earlier one given the same pid, `n` one owner file from the next.
 */
class OwnerFiles {
  readonly #nonce = randomBytes(4).toString("hex");
  readonly #byDirectory = new Map<string, OwnerFile>();
  #made = 0;
  #content: Promise<Omit<LockOwner, "file">> | undefined;

  /** The owner file of `directory`, written if there is none; `put` it back when done. */
  take(directory: string): OwnerFile {
    let owner = this.#byDirectory.get(directory);
    if (!owner) {
      const name = `.rangeget-${process.pid}-${this.#nonce}-${++this.#made}.owner`;
      const path = join(directory, name);
      this.#content ??= startTimeOf(process.pid).then((started) => ({ pid: process.pid, host: hostname(), started }));
      const ready = this.#content.then(async (content) => {
        await writeFile(path, JSON.stringify({ ...content, file: name }), { flag: "wx" });
        return path;
      });
      owner = { directory, ready, users: 0 };
      this.#byDirectory.set(directory, owner);
    }
    owner.users++;
    return owner;
  }

  /**
   * Gives `owner` back; the last user removes the file. A `broken` one (not written, or
   * gone) is given to no one else: the next `take` writes a new one.
   */
  async put(owner: OwnerFile, { broken = false } = {}): Promise<void> {
    const current = this.#byDirectory.get(owner.directory) === owner;
    if (--owner.users > 0 && !broken) return;
    if (current) this.#byDirectory.delete(owner.directory);
    if (owner.users > 0) return;
    const path = await owner.ready.catch(() => undefined);
    // A stray owner file is clutter, not harm: no download fails for it.
    if (path !== undefined) await removeIfPresent(path).catch(() => {});
  }
}

const ownerFiles = new OwnerFiles();

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

/**
 * `<output>.part.lock`: one process per output, on every volume. Where hard links
 * exist the lock is a link to this process's owner file (it appears complete, in one
 * step); where they do not (FAT32, exFAT: link(2) fails with EPERM or ENOTSUP) it is
 * an exclusive create (O_EXCL) with the owner written inside at once. Either way a
 * lock whose process is gone is taken over, and a live one is refused.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, open, readFile, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, join } from "node:path";
import type { Clock } from "./clock.js";
import { FileError } from "./errors.js";
import { removeIfPresent } from "./manifest.js";
import { currentPlatform, type Platform } from "./platform.js";
import { fileError } from "./to-error.js";

/** A held lock. */
export interface Lock {
  release(): Promise<void>;
}

/** What taking a lock uses: the job's clock, and for tests the platform (is there /proc?) and link(2). */
export interface LockEnvironment {
  /** `now` and `sleep` wait out a lock seen empty; `wall` is compared with its mtime (EMPTY_LOCK_GRACE_MS). */
  clock: Pick<Clock, "now" | "wall" | "sleep">;
  platform?: Platform;
  link?: (existing: string, created: string) => Promise<void>;
}

/**
 * link(2) errors that mean "this volume has no hard links": exFAT under FUSE says EPERM,
 * others ENOTSUP or ENOSYS. On Windows, CreateHardLinkW on exFAT and FAT32 fails with
 * ERROR_INVALID_FUNCTION, which libuv turns into EISDIR (src/win/error.c); our owner file
 * is never a directory, so EISDIR can mean only that.
 */
const NO_HARD_LINKS = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "ENOSYS", "EISDIR"]);
/**
 * How long an exclusively created lock may be seen empty before it counts as stale:
 * its creator writes the owner in the next call, so only a crash in between leaves
 * it empty for longer (measured: under 1 ms on exFAT under FUSE).
 */
export const EMPTY_LOCK_GRACE_MS = 2000;
/** How often a lock seen empty is read again while its grace period runs, ms. */
export const EMPTY_LOCK_POLL_MS = 20;
/** Directories whose volume refused a hard link: their locks are exclusive creates from then on. */
const withoutHardLinks = new Set<string>();

/**
 * Takes the lock at `path` for `output` (named in messages). A lock whose process is
 * gone (SIGKILL, power loss) is taken over, and that process's owner file removed; a
 * live one, including our own process's (two items of one list that got one name), is
 * refused. Without /proc (macOS, Windows) a reused pid cannot be told from the
 * original, so a lock whose pid is alive is refused and the message says how to clear it.
 * @throws FileError ERR_LOCKED when held; ERR_FILE (cause ENOENT when the directory is missing) when it cannot be made.
 */
export async function acquireLock(path: string, output: string, environment: LockEnvironment): Promise<Lock> {
  const platform = environment.platform ?? currentPlatform;
  const makeLink = environment.link ?? link;
  const directory = dirname(path);
  for (let attempt = 0; attempt < 3; attempt++) {
    const taken = withoutHardLinks.has(directory)
      ? await createExclusively(path, platform)
      : await linkToOwnerFile(path, directory, platform, makeLink);
    if (taken === "no-hard-links") {
      withoutHardLinks.add(directory);
      attempt--;
      continue;
    }
    if (taken === "retry") continue;
    if (taken !== "held") return taken;
    const holder = await readHolder(path, withoutHardLinks.has(directory), environment.clock);
    if (holder === "being-written") {
      throw new FileError(`${output} is being locked by another rangeget process just now; wait for it, or stop it first`, {
        path: output,
        code: "ERR_LOCKED",
      });
    }
    if (holder !== undefined) refuseLive(holder, path, output, await isStillRunning(holder, platform));
    if (holder?.file !== undefined) await removeIfPresent(join(directory, holder.file));
    await removeIfPresent(path);
  }
  throw new FileError(`cannot take the lock ${path}: another process keeps taking it`, { path: output, code: "ERR_LOCKED" });
}

/** Throws ERR_LOCKED for a holder that is alive here, or on another host (which cannot be checked from here). */
function refuseLive(holder: LockOwner, path: string, output: string, running: boolean): void {
  if (holder.host !== hostname()) {
    throw new FileError(`${output} is locked by a rangeget process on host ${holder.host}; remove ${path} if it is gone`, {
      path: output,
      code: "ERR_LOCKED",
    });
  }
  if (!running) return;
  if (holder.pid === process.pid) {
    throw new FileError(
      `${output} is already being downloaded by this same run: two URLs got that name (from their servers or their paths); give each its own output name`,
      { path: output, code: "ERR_LOCKED" },
    );
  }
  const clear = holder.started === undefined ? `; if no rangeget is running, remove ${path}` : "";
  throw new FileError(`${output} is being downloaded by another rangeget process (pid ${holder.pid}); wait for it, or stop it first${clear}`, {
    path: output,
    code: "ERR_LOCKED",
  });
}

type Attempt = Lock | "held" | "retry" | "no-hard-links";

/** The lock as a hard link to this process's owner file in `directory`. */
async function linkToOwnerFile(path: string, directory: string, platform: Platform, makeLink: NonNullable<LockEnvironment["link"]>): Promise<Attempt> {
  const owner = ownerFiles.take(directory, platform);
  let ownerPath: string;
  try {
    ownerPath = await owner.ready;
  } catch (error) {
    // ENOENT here: no directory, which the caller may make.
    await ownerFiles.put(owner, { broken: true });
    throw fileError(error, path, "cannot create the lock file");
  }
  try {
    await makeLink(ownerPath, path);
    return { release: () => removeIfPresent(path).finally(() => ownerFiles.put(owner)) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? "";
    await ownerFiles.put(owner, { broken: code !== "EEXIST" });
    if (NO_HARD_LINKS.has(code)) return "no-hard-links";
    // Someone removed the owner file: the next attempt writes a new one.
    if (code === "ENOENT") return "retry";
    if (code !== "EEXIST") throw fileError(error, path, "cannot create the lock file");
    return "held";
  }
}

/**
 * The lock as a new file (O_EXCL: exactly one creator wins, on every volume) with the
 * owner written in the same breath. No fsync: after a power loss its process is gone
 * anyway, and an empty lock past the grace period is stale.
 */
async function createExclusively(path: string, platform: Platform): Promise<Attempt> {
  let handle;
  try {
    handle = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o666);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return "held";
    throw fileError(error, path, "cannot create the lock file");
  }
  try {
    await handle.writeFile(JSON.stringify(await ownerContent(platform)));
  } catch (error) {
    await handle.close().catch(() => {});
    await removeIfPresent(path).catch(() => {});
    throw fileError(error, path, "cannot create the lock file");
  }
  await handle.close();
  return { release: () => removeIfPresent(path) };
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

/**
 * The lock's owner; `undefined` when it is stale by its content. An exclusively made
 * lock (`created`) read empty is "being-written" while it is younger than the grace
 * period (its age is `clock.wall()` less its mtime, both wall time), waited for on
 * `clock`; a hard-linked one is never seen incomplete, so unreadable means stale.
 */
async function readHolder(path: string, created: boolean, clock: LockEnvironment["clock"]): Promise<LockOwner | "being-written" | undefined> {
  const deadline = clock.now() + EMPTY_LOCK_GRACE_MS;
  for (;;) {
    const owner = await readLockOwner(path);
    if (owner !== undefined || !created) return owner;
    const info = await stat(path).catch(() => undefined);
    if (info === undefined) return undefined;
    if (info.size > 0 || clock.wall() - info.mtimeMs > EMPTY_LOCK_GRACE_MS) return undefined;
    if (clock.now() >= deadline) return "being-written";
    await clock.sleep(EMPTY_LOCK_POLL_MS);
  }
}

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

/** The lock's process is alive, and is the same process, not a later one given its pid (where /proc tells). */
async function isStillRunning(owner: LockOwner, platform: Platform): Promise<boolean> {
  if (!isAlive(owner.pid)) return false;
  if (owner.started === undefined) return true;
  const started = await startTimeOf(owner.pid, platform);
  return started === undefined || started === owner.started;
}

/** What every lock of this process says: pid, host, start time (where /proc tells). */
let ownerContentOnce: Promise<Omit<LockOwner, "file">> | undefined;
function ownerContent(platform: Platform): Promise<Omit<LockOwner, "file">> {
  ownerContentOnce ??= startTimeOf(process.pid, platform).then((started) => ({ pid: process.pid, host: hostname(), started }));
  return ownerContentOnce;
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

  /** The owner file of `directory`, written if there is none; `put` it back when done. */
  take(directory: string, platform: Platform): OwnerFile {
    let owner = this.#byDirectory.get(directory);
    if (!owner) {
      const name = `.rangeget-${process.pid}-${this.#nonce}-${++this.#made}.owner`;
      const path = join(directory, name);
      const ready = ownerContent(platform).then(async (content) => {
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

/** Field 22 of /proc/<pid>/stat (start time in clock ticks since boot); `undefined` without /proc. */
async function startTimeOf(pid: number, platform: Platform): Promise<string | undefined> {
  if (!platform.procFs) return undefined;
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses; fields 3.. follow its last ")".
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/** Signal 0 asks whether the pid exists (kill(2)); EPERM: it does, as another user's. Works on Windows too. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * `--cache`: finished files kept by digest, `<dir>/<algorithm>/<hex>`, so a file whose
 * checksum is known before the download is placed with no request at all (Bazel's
 * repository cache and npm's content-addressed cache work the same way). Keyed by digest
 * only: the same bytes from another URL or mirror are the same entry.
 *
 * An entry only ever appears by rename, after its bytes were copied, synced and
 * verified, so neither a crash nor two runs storing at once can leave a wrong or partial
 * entry (a crash leaves at most a `.tmp` file beside the entries). Entries are copied
 * out, never hard-linked (an edit of the output would edit the entry), with a reflink
 * where the volume offers one (`COPYFILE_FICLONE`: btrfs, XFS, APFS), and the copy is
 * verified as it is read, so an entry damaged on disk is dropped and the file fetched.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { copyFile, mkdir, open, rename, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { digestOfFile } from "./file-digest.js";
import { removeIfPresent } from "./manifest.js";
import type { Checksum } from "./types.js";

/**
 * The cache directory for the `cache` option: the path given (relative to the current
 * directory), or for `true` `$XDG_CACHE_HOME/rangeget`, else `~/.cache/rangeget` (XDG
 * Base Directory Specification: a relative `XDG_CACHE_HOME` is invalid and ignored).
 */
export function cacheDirectory(option: string | true, env: NodeJS.ProcessEnv = process.env, home: string = homedir()): string {
  if (option !== true) return resolve(option);
  const xdg = env["XDG_CACHE_HOME"];
  return join(xdg !== undefined && isAbsolute(xdg) ? xdg : join(home, ".cache"), "rangeget");
}

/** Where the entry of `hex` (lower-case) under `algorithm` lives. */
export function entryPath(dir: string, algorithm: Checksum["algorithm"], hex: string): string {
  return join(dir, algorithm, hex);
}

/** An entry found in the cache: where, and what it was when found (to drop it only if unchanged). */
export interface CacheEntry {
  path: string;
  identity: EntryIdentity;
}

/** What tells one file at an entry's path from another stored there since. */
interface EntryIdentity {
  ino: number;
  mtimeMs: number;
  size: number;
}

/** The first entry present among `hexes` (the digests that would pass), or `undefined`. */
export async function findEntry(dir: string, algorithm: Checksum["algorithm"], hexes: readonly string[]): Promise<CacheEntry | undefined> {
  for (const hex of hexes) {
    const path = entryPath(dir, algorithm, hex);
    const found = await stat(path).catch(() => undefined);
    if (found?.isFile()) return { path, identity: { ino: found.ino, mtimeMs: found.mtimeMs, size: found.size } };
  }
  return undefined;
}

/**
 * Copies `entry` to `destination`, replacing it; reflinked where the volume can. Not
 * verified here: the caller hashes the copy as it finishes the file. Resolves the
 * copy's size.
 * @throws the file system's error.
 */
export async function copyEntry(entry: CacheEntry, destination: string): Promise<number> {
  await copyFile(entry.path, destination, constants.COPYFILE_FICLONE);
  return (await stat(destination)).size;
}

/**
 * Removes an entry whose bytes did not match its digest, unless another run has stored
 * a new file there since it was copied (that one was verified before its rename).
 */
export async function dropEntry(entry: CacheEntry): Promise<void> {
  const now = await stat(entry.path).catch(() => undefined);
  if (now === undefined) return;
  const { ino, mtimeMs, size } = entry.identity;
  if (now.ino === ino && now.mtimeMs === mtimeMs && now.size === size) await removeIfPresent(entry.path);
}

/**
 * Stores the verified file `source` as the entry of `digest`: copied (reflinked where
 * possible) to a temporary name in the entry's directory, synced, hashed again (the
 * copy is what will be served), then renamed into place. Resolves `false`, storing
 * nothing, when the entry is already there, or when the copy does not match (`source`
 * changed under us); `true` when it was stored.
 * @throws the file system's error (no space, permission); the temporary file is removed first.
 */
export async function storeEntry(dir: string, digest: Checksum, source: string): Promise<boolean> {
  const target = entryPath(dir, digest.algorithm, digest.hex);
  if (await stat(target).then((found) => found.isFile(), () => false)) return false;
  await mkdir(join(dir, digest.algorithm), { recursive: true });
  const temporary = join(dir, digest.algorithm, `.${digest.hex}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
  try {
    await copyFile(source, temporary, constants.COPYFILE_FICLONE);
    const handle = await open(temporary, "r+");
    try {
      await handle.datasync();
    } finally {
      await handle.close();
    }
    if ((await digestOfFile(temporary, digest.algorithm)).hex !== digest.hex) return false;
    // Two runs storing the same digest rename the same bytes: the last rename wins, harmlessly.
    await rename(temporary, target);
    return true;
  } finally {
    await removeIfPresent(temporary);
  }
}

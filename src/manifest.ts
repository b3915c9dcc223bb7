/**
 * `<output>.part.json`, the manifest: the record of the `.part`'s durable bytes and of
 * the version they belong to (URL, validators, size). Parsed strictly (a manifest that
 * does not hold together is not trusted: claim.ts discards it with a warning), written
 * atomically (temp file, fsync, rename).
 */
import { constants } from "node:fs";
import { readFile, unlink } from "node:fs/promises";
import type { Clock } from "./clock.js";
import { openNoFollow, renameRetrying } from "./platform.js";
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
  if (m["url"] !== url) {
    const other = typeof m["url"] === "string" ? ` (${m["url"]})` : "";
    // The same file from another host or port is a copy only the user can vouch for: as a mirror of its own URL.
    return { trusted: false, reason: `it belongs to another URL${other}, and a partial download resumes only from its own (give that URL, with this one as a mirror)` };
  }
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

/**
 * Temp file, fsync, rename: a crash leaves the old manifest or the new one, never half of
 * one. `clock` is the job's: the rename's retries (platform.ts `renameRetrying`) sleep on it.
 * @throws FileError when the file system refuses.
 */
export async function writeManifest(path: string, manifest: Manifest, clock: Pick<Clock, "now" | "sleep">): Promise<void> {
  const temp = `${path}.tmp`;
  try {
    // Like the .part: a symlink planted at the temp name must not redirect the write.
    const handle = await openNoFollow(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC, 0o666);
    try {
      await handle.writeFile(JSON.stringify(manifest));
      await handle.sync();
    } finally {
      await handle.close();
    }
    await renameRetrying(temp, path, { clock });
  } catch (error) {
    await unlink(temp).catch(() => {});
    throw fileError(error, path, "cannot write the download manifest");
  }
}

/** Removes `path`; a file already gone is fine. @throws FileError for any other refusal. */
export async function removeIfPresent(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw fileError(error, path, "cannot remove");
  }
}

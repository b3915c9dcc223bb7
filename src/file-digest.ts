/**
 * The digest of a file already on disk, read once from start to end: an output
 * reported up to date that a checksum must vouch for, and a copy about to enter the
 * cache. (Bytes that arrive over the network are hashed as they arrive: running-hash.ts.)
 */
import { createReadStream } from "node:fs";
import { createHash } from "node:crypto";
import type { Checksum } from "./types.js";

/**
 * Lower-case hex digest of the whole file at `path`, with the size read.
 * @throws the file system's error (ENOENT, EACCES…) as Node gives it; callers name the path.
 */
export async function digestOfFile(path: string, algorithm: Checksum["algorithm"]): Promise<{ hex: string; size: number }> {
  const hash = createHash(algorithm);
  let size = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { hex: hash.digest("hex"), size };
}

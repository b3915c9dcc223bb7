/**
 * `--checksum algo=hex`: parse the user's expected digest, and hash the finished
 * file to compare against it before the output name appears.
 */
import { createReadStream } from "node:fs";
import { UsageError } from "./errors.js";
import type { Checksum } from "./types.js";

const HEX_DIGITS: Record<Checksum["algorithm"], number> = { sha256: 64, sha512: 128, sha1: 40, md5: 32 };

const ACCEPTED_FORMS = "use sha256=<64 hex digits>, sha512=<128 hex digits>, sha1=<40 hex digits> or md5=<32 hex digits>";

function isAlgorithm(name: string): name is Checksum["algorithm"] {
  return Object.hasOwn(HEX_DIGITS, name);
}

/** `sha256=<hex>` (or sha512, sha1, md5), any case, to `{ algorithm, hex }` with lower-case hex. */
export function parseChecksum(text: string): Checksum {
  const match = /^([a-z0-9]+)=([0-9a-f]+)$/i.exec(text.trim());
  const algorithm = (match?.[1] ?? "").toLowerCase();
  const hex = (match?.[2] ?? "").toLowerCase();
  if (!isAlgorithm(algorithm) || hex.length !== HEX_DIGITS[algorithm]) {
    throw new UsageError(`invalid checksum ${JSON.stringify(text)}: ${ACCEPTED_FORMS}`);
  }
  return { algorithm, hex };
}

/**
 * The lower-case hex digest of the file at `path`, read as a stream so a file of any
 * size hashes in constant memory. File system errors (ENOENT, EACCES) are rethrown
 * as they are, for the caller to report with its own context.
 */
export async function hashFile(path: string, algorithm: Checksum["algorithm"]): Promise<string> {
  // node:crypto takes ~10 ms to load; the command line parses --checksum on every start
  // but hashes only when one was given.
  const { createHash } = await import("node:crypto");
  const hash = createHash(algorithm);
  for await (const chunk of createReadStream(path)) {
    hash.update(chunk as Buffer);
  }
  return hash.digest("hex");
}

/**
 * `--checksum algo=hex`: parse the user's expected digest. The digest of the bytes
 * is computed while they arrive (running-hash.ts).
 */
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

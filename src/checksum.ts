/**
 * `--checksum`: the user's expected digest, in the spellings people paste. The digest of
 * the bytes is computed while they arrive (running-hash.ts).
 *
 * Accepted, any case: `sha256=<hex>` (also `sha-256=` as aria2 writes it, and
 * `sha256:<hex>` as Docker and npm's `integrity` tools print it), and Subresource
 * Integrity (`sha256-<base64>`, `sha384-`, `sha512-`, as `package-lock.json` and
 * `<script integrity>` carry). Several tokens separated by white space: the strongest
 * algorithm among them decides, and any of its digests passes (W3C SRI, "Do bytes match
 * metadataList?": the strongest set; a token of an algorithm we do not know is ignored).
 */
import { UsageError } from "./errors.js";
import type { Checksum } from "./types.js";

/** The digest algorithms rangeget verifies. */
export type ChecksumAlgorithm = Checksum["algorithm"];

/** A digest's length in bytes, by algorithm; also the list of algorithms, weakest first. */
const DIGEST_BYTES: Readonly<Record<ChecksumAlgorithm, number>> = { md5: 16, sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

/** Weakest first: the last one present among a checksum's tokens decides. */
const STRENGTH: readonly ChecksumAlgorithm[] = ["md5", "sha1", "sha256", "sha384", "sha512"];

/** The algorithms SRI defines (W3C SRI §3.2): md5 and sha1 are not among them. */
const SRI_ALGORITHMS: ReadonlySet<ChecksumAlgorithm> = new Set(["sha256", "sha384", "sha512"]);

const ACCEPTED_FORMS =
  "use sha256=<64 hex digits> (also sha384, sha512, sha1, md5; sha-256= and sha256: too) or SRI sha256-<base64> (sha384-, sha512-)";

/**
 * What a download is verified against: `hex` is the first accepted digest, `accepted`
 * every digest that passes (several only when SRI lists more than one of the strongest
 * algorithm), all lower-case hex of `algorithm`.
 */
export interface ExpectedChecksum extends Checksum {
  accepted: readonly string[];
}

/** Whether `name` (lower case) is an algorithm rangeget verifies. */
export function isChecksumAlgorithm(name: string): name is ChecksumAlgorithm {
  return Object.hasOwn(DIGEST_BYTES, name);
}

/** The algorithm whose digests are `hexDigits` long (32 md5, 40 sha1, 64 sha256, 96 sha384, 128 sha512), else `undefined`. */
export function algorithmOfHexLength(hexDigits: number): ChecksumAlgorithm | undefined {
  return STRENGTH.find((algorithm) => DIGEST_BYTES[algorithm] * 2 === hexDigits);
}

/** Whether `hex` is a well-formed digest of `algorithm` (hex digits of the right length, any case). */
export function isDigestOf(algorithm: ChecksumAlgorithm, hex: string): boolean {
  return hex.length === DIGEST_BYTES[algorithm] * 2 && /^[0-9a-f]+$/i.test(hex);
}

/**
 * Parses `--checksum` (or the library's string `checksum`): one token or several
 * separated by white space, each `algo=hex`, `algo:hex`, `sha-N=hex` or SRI
 * `shaN-<base64>` (base64url too; SRI's `?options` are ignored). The strongest
 * algorithm present decides.
 * @throws UsageError naming the token that cannot be read and the accepted forms.
 */
export function parseChecksum(text: string): ExpectedChecksum {
  const tokens = text.trim().split(/\s+/).filter((token) => token !== "");
  const digests: Checksum[] = [];
  for (const token of tokens) {
    const digest = parseToken(token, text);
    if (digest !== undefined) digests.push(digest);
  }
  const strongest = STRENGTH.findLast((algorithm) => digests.some((digest) => digest.algorithm === algorithm));
  if (strongest === undefined) throw invalid(text, tokens.length === 0 ? "" : "no token of an algorithm rangeget verifies");
  const accepted = [...new Set(digests.filter((digest) => digest.algorithm === strongest).map((digest) => digest.hex))];
  return { algorithm: strongest, hex: accepted[0]!, accepted };
}

/**
 * A library caller's `{ algorithm, hex }`, checked and with the hex in lower case.
 * @throws UsageError for an unknown algorithm or a digest of the wrong length.
 */
export function expectedChecksumOf(checksum: Checksum): ExpectedChecksum {
  const algorithm = String(checksum.algorithm).toLowerCase();
  const hex = String(checksum.hex);
  if (!isChecksumAlgorithm(algorithm) || !isDigestOf(algorithm, hex)) {
    throw new UsageError(`invalid checksum ${JSON.stringify(checksum)}: give { algorithm: "sha256", hex: "<64 hex digits>" } (sha384, sha512, sha1, md5 too)`);
  }
  return { algorithm, hex: hex.toLowerCase(), accepted: [hex.toLowerCase()] };
}

/** Whether `actualHex` (lower case) is one of the digests `expected` accepts. */
export function digestMatches(expected: Checksum | ExpectedChecksum, actualHex: string): boolean {
  return "accepted" in expected ? expected.accepted.includes(actualHex) : expected.hex === actualHex;
}

/** A digest of one token, `undefined` for an SRI token of an algorithm we do not know (SRI ignores those). */
function parseToken(token: string, text: string): Checksum | undefined {
  const sri = /^([a-z0-9_]+)-([A-Za-z0-9+/_-]+={0,2})(?:\?.*)?$/i.exec(token);
  if (sri) {
    const algorithm = sri[1]!.toLowerCase();
    if (!isChecksumAlgorithm(algorithm) || !SRI_ALGORITHMS.has(algorithm)) return undefined;
    return { algorithm, hex: sriDigest(algorithm, sri[2]!, text) };
  }
  const hexForm = /^([a-z0-9-]+)[=:]([0-9a-f]+)$/i.exec(token);
  const algorithm = (hexForm?.[1] ?? "").toLowerCase().replace(/^sha-/, "sha");
  const hex = hexForm?.[2] ?? "";
  if (!isChecksumAlgorithm(algorithm)) throw invalid(text, hexForm ? `unknown algorithm ${JSON.stringify(hexForm[1])}` : `cannot read ${JSON.stringify(token)}`);
  if (!isDigestOf(algorithm, hex)) {
    throw invalid(text, `a ${algorithm} digest has ${DIGEST_BYTES[algorithm] * 2} hex digits, not ${hex.length}`);
  }
  return { algorithm, hex: hex.toLowerCase() };
}

/** The hex of an SRI base64 digest, checked to be canonical base64 of the algorithm's length. */
function sriDigest(algorithm: ChecksumAlgorithm, base64: string, text: string): string {
  const standard = base64.replace(/-/g, "+").replace(/_/g, "/").replace(/=+$/, "");
  const bytes = Buffer.from(standard, "base64");
  // Buffer.from skips what is not base64; reading it back shows whether anything was skipped.
  if (bytes.toString("base64").replace(/=+$/, "") !== standard || bytes.length !== DIGEST_BYTES[algorithm]) {
    const hint = /^[0-9a-f]+$/i.test(base64) && base64.length === DIGEST_BYTES[algorithm] * 2 ? `; for a hex digest write ${algorithm}=<hex>` : "";
    throw invalid(text, `an SRI ${algorithm} digest is ${DIGEST_BYTES[algorithm]} bytes of base64${hint}`);
  }
  return bytes.toString("hex");
}

function invalid(text: string, why: string): UsageError {
  return new UsageError(`invalid checksum ${JSON.stringify(text)}${why === "" ? "" : ` (${why})`}: ${ACCEPTED_FORMS}`);
}

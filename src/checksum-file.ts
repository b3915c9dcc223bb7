/**
 * `--checksum-file`: the `SHA256SUMS` / `SHASUMS256.txt` that releases publish, read
 * into entries, and the entry of one output found in it. Pure: the text is given.
 *
 * Lines understood (any other line is skipped, so a PGP clear-signed file such as
 * Node's `SHASUMS256.txt.asc` reads as its signed body):
 * - GNU coreutils `sha256sum` (and md5sum, sha1sum, sha384sum, sha512sum, busybox):
 *   `<hex>  <name>` (text mode), `<hex> *<name>` (binary mode); a leading `\` marks a
 *   name with `\\` and `\n` escaped (coreutils `--help`, "digest --check").
 * - Perl `shasum -a N`: the same, plus `^` for its universal mode.
 * - BSD and `sha256sum --tag`: `SHA256 (<name>) = <hex>`; OpenSSL's `SHA2-256(<name>)= <hex>`.
 * The algorithm comes from the BSD tag, else from the digest's length.
 */
import { algorithmOfHexLength, isChecksumAlgorithm, isDigestOf, type ChecksumAlgorithm, type ExpectedChecksum } from "./checksum.js";
import { UsageError } from "./errors.js";

/** One line of a checksum file. */
export interface ChecksumEntry {
  /** The name as listed (escapes undone, a leading `./` dropped). */
  name: string;
  /** `undefined` for a digest rangeget does not verify (BLAKE2, SHA3, sha224…): found, but refused. */
  algorithm: ChecksumAlgorithm | undefined;
  /** Lower-case hex. */
  hex: string;
  /** 1-based line number, for messages. */
  line: number;
}

/** A parsed checksum file: where it came from (a path, or a URL without credentials) and its entries. */
export interface ChecksumList {
  source: string;
  entries: readonly ChecksumEntry[];
}

/** What an output is looked up by. */
export interface ChecksumLookup {
  /** The output's base name. */
  outputName: string;
  /** The URL the file is fetched from (its last path segment, and its path for listed names with directories). */
  url: string;
}

const GNU_LINE = /^(\\?)([0-9a-fA-F]+) ([ *^]?)(.+)$/;
const BSD_LINE = /^(\\?)([A-Za-z0-9-]+) ?\((.*)\) ?= ?([0-9a-fA-F]+)$/;

/**
 * Every checksum line of `text` (CRLF or LF line ends). `source` names the file in messages.
 * @throws UsageError when no line is a checksum line, or a BSD line's digest does not fit its tag.
 */
export function parseChecksumList(text: string, source: string): ChecksumList {
  const entries: ChecksumEntry[] = [];
  const rows = text.split("\n");
  for (let index = 0; index < rows.length; index++) {
    const row = rows[index]!.replace(/\r$/, "");
    const line = index + 1;
    const bsd = BSD_LINE.exec(row);
    if (bsd) {
      const algorithm = algorithmOfTag(bsd[2]!);
      const hex = bsd[4]!.toLowerCase();
      if (algorithm !== undefined && !isDigestOf(algorithm, hex)) {
        throw new UsageError(`${source} line ${line}: a ${bsd[2]} digest has ${algorithmHexLength(algorithm)} hex digits, not ${hex.length}`);
      }
      entries.push({ name: cleanName(bsd[3]!, bsd[1] === "\\"), algorithm, hex, line });
      continue;
    }
    const gnu = GNU_LINE.exec(row);
    // A digest shorter than md5's is no digest (and keeps prose such as "ab cd" out).
    if (gnu && gnu[2]!.length >= 32 && gnu[2]!.length % 2 === 0) {
      const hex = gnu[2]!.toLowerCase();
      entries.push({ name: cleanName(gnu[4]!, gnu[1] === "\\"), algorithm: algorithmOfHexLength(hex.length), hex, line });
    }
  }
  if (entries.length === 0) {
    throw new UsageError(`${source} holds no checksum line ("<hex>  <name>" as sha256sum writes, or "SHA256 (<name>) = <hex>")`);
  }
  return { source, entries };
}

/**
 * The expected digest of one output, looked up in this order, the first that lists it
 * winning: the output's base name; the URL's last path segment (so `-o renamed.iso`
 * still finds `ubuntu.iso`), or a listed name with directories that ends the URL's path
 * (`win-x64/node.exe`); a listed name with directories whose base name is one of those
 * two. Among several entries found at one step the strongest algorithm decides, and its
 * digests must agree.
 * @throws UsageError when nothing is listed under those names (naming the file and the
 *   names), when the entries found disagree, or when only an algorithm rangeget does not
 *   verify is given for it.
 */
export function checksumFor(list: ChecksumList, lookup: ChecksumLookup): ExpectedChecksum {
  const { outputName } = lookup;
  const urlName = lastSegment(lookup.url);
  const urlPath = decodedPath(lookup.url);
  const names = [...new Set([outputName, ...(urlName === undefined ? [] : [urlName])])];
  const steps: ((entry: ChecksumEntry) => boolean)[] = [
    (entry) => entry.name === outputName,
    (entry) => entry.name === urlName || (entry.name.includes("/") && urlPath !== undefined && urlPath.endsWith(`/${entry.name}`)),
    (entry) => entry.name.includes("/") && names.includes(entry.name.slice(entry.name.lastIndexOf("/") + 1)),
  ];
  for (const matches of steps) {
    const found = list.entries.filter(matches);
    if (found.length > 0) return chooseAmong(found, list.source);
  }
  const what = names.map((name) => JSON.stringify(name)).join(" or ");
  throw new UsageError(`${list.source} has no checksum for ${what}; name the output as the file lists it (-o), or check the file`);
}

/** The strongest algorithm's digest among entries found for one output; they must agree. */
function chooseAmong(found: readonly ChecksumEntry[], source: string): ExpectedChecksum {
  const known = found.filter((entry): entry is ChecksumEntry & { algorithm: ChecksumAlgorithm } => entry.algorithm !== undefined);
  if (known.length === 0) {
    throw new UsageError(
      `${source} line ${found[0]!.line} gives ${JSON.stringify(found[0]!.name)} only a digest rangeget does not verify; it verifies md5, sha1, sha256, sha384 and sha512`,
    );
  }
  const strongest = known.reduce((best, entry) => (algorithmHexLength(entry.algorithm) > algorithmHexLength(best.algorithm) ? entry : best));
  const same = known.filter((entry) => entry.algorithm === strongest.algorithm);
  const other = same.find((entry) => entry.hex !== strongest.hex);
  if (other !== undefined) {
    throw new UsageError(
      `${source} lists different ${strongest.algorithm} digests for ${JSON.stringify(strongest.name)} (line ${strongest.line}) and ${JSON.stringify(other.name)} (line ${other.line}); name the output as the file lists it (-o)`,
    );
  }
  return { algorithm: strongest.algorithm, hex: strongest.hex, accepted: [strongest.hex] };
}

/** `SHA256`, `SHA-256`, `SHA2-256` (OpenSSL 3), `MD5`… to our name; `undefined` for one we do not verify. */
function algorithmOfTag(tag: string): ChecksumAlgorithm | undefined {
  const name = tag.toLowerCase().replace(/^sha2-/, "sha").replace(/^sha-/, "sha");
  return isChecksumAlgorithm(name) ? name : undefined;
}

function algorithmHexLength(algorithm: ChecksumAlgorithm): number {
  return { md5: 32, sha1: 40, sha256: 64, sha384: 96, sha512: 128 }[algorithm];
}

/** Undoes coreutils' escapes (`\\`, `\n`, `\r`) when the line starts with `\`, and drops a leading `./`. */
function cleanName(name: string, escaped: boolean): string {
  const unescaped = escaped ? name.replace(/\\(\\|n|r)/g, (_all, char: string) => (char === "n" ? "\n" : char === "r" ? "\r" : "\\")) : name;
  return unescaped.replace(/^(\.\/)+/, "");
}

function decodedPath(url: string): string | undefined {
  if (!URL.canParse(url)) return undefined;
  const path = new URL(url).pathname;
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/** The URL's last non-empty path segment, percent-decoded. */
function lastSegment(url: string): string | undefined {
  const segment = decodedPath(url)?.split("/").filter((part) => part !== "").at(-1);
  return segment;
}

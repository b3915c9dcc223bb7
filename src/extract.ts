/**
 * `--extract DIR`: the download is a tar archive, unpacked while it arrives.
 *
 * The archive's bytes come in order (the ordered sink) into `input`. Its first bytes
 * tell the compression (gzip, zstd where Node's zlib has it, or none); node-tar (the
 * tar npm itself uses) unpacks into a temporary sibling of DIR, and `commit` renames
 * it to DIR once the archive ended cleanly and any checksum matched. On failure
 * `discard` leaves nothing behind.
 *
 * Entries never land outside DIR. node-tar strips a leading `/` from paths and link
 * targets, skips paths with `..`, links whose target leaves the directory, device
 * files and FIFOs, and never writes through a symbolic link; each skip is a warning.
 * With `unlink`, an entry replaces whatever an earlier entry put at its path instead
 * of writing into it (a hard link to an outside file, for one). A hard link to an
 * absolute path, or to a file the archive has not unpacked before it, is skipped with a
 * warning, as bsdtar skips them; setuid and setgid bits are never restored (bsdtar
 * restores them only with `-p`), even as root. No message names the temporary sibling:
 * paths in it are shown as paths in DIR. What a chain of
 * links can do that no single entry shows (`a -> .` then `b -> a/..`) is checked on
 * the unpacked tree before the rename: a symbolic link that resolves outside, or a
 * file with links outside the tree, is removed with a warning.
 */
import { chmod, lstat, mkdir, mkdtemp, readdir, readlink, realpath, rename, rm, rmdir } from "node:fs/promises";
import { basename, dirname, isAbsolute, join, posix, relative, resolve, sep, win32 } from "node:path";
import { Writable } from "node:stream";
import zlib from "node:zlib";
import { Unpack, type ReadEntry } from "tar";
import { FileError, IntegrityError, UsageError } from "./errors.js";
import { fileError } from "./to-error.js";

/** What the first bytes of an archive say about its compression. */
export type Compression = "gzip" | "zstd" | "bzip2" | "xz" | "none";

/** Enough leading bytes to tell every format in `detectCompression` apart. */
export const MAGIC_BYTES = 6;

/**
 * The compression of an archive from its first bytes (RFC 1952 2.3.1 for gzip, RFC
 * 8878 3.1.1 for zstd, the bzip2 "BZh" and xz `FD 37 7A 58 5A 00` headers); "none" is a
 * plain tar, or not an archive at all, which unpacking then reports.
 */
export function detectCompression(head: Buffer): Compression {
  const startsWith = (bytes: number[]) => bytes.every((byte, index) => head[index] === byte);
  if (startsWith([0x1f, 0x8b])) return "gzip";
  if (startsWith([0x28, 0xb5, 0x2f, 0xfd])) return "zstd";
  if (startsWith([0x42, 0x5a, 0x68])) return "bzip2";
  if (startsWith([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) return "xz";
  return "none";
}

type ZstdZlib = typeof zlib & { createZstdDecompress?: (options?: zlib.ZlibOptions) => zlib.Gunzip };

const INFLATED_CHUNK_BYTES = 1024 * 1024;

/** Node 22.15+ and 23.8+ decode zstd in zlib; older ones do not. */
export function zstdAvailable(): boolean {
  return typeof (zlib as ZstdZlib).createZstdDecompress === "function";
}

/** Options of `startExtraction`. */
export interface ExtractionOptions {
  /** Where the archive's entries appear, once it is complete. */
  dir: string;
  /** Replace an existing non-empty DIR. Default false. */
  force?: boolean;
  /** The URL, for messages. */
  url: string;
  /** One-line warnings: each entry skipped or removed, and why. */
  warn: (message: string) => void;
}

/**
 * Claims DIR and makes its temporary sibling. DIR may be missing or an empty
 * directory; anything else is refused with `FileError` `ERR_EXISTS` (exit 6) unless
 * `force`, exactly like an existing output file.
 */
export async function startExtraction(options: ExtractionOptions): Promise<Extraction> {
  const dir = resolve(options.dir);
  await refuseExisting(dir, options.force ?? false);
  const parent = dirname(dir);
  try {
    await mkdir(parent, { recursive: true });
    const temp = await mkdtemp(join(parent, `.${basename(dir)}.extract-`));
    return new Extraction(dir, await realpath(temp), options);
  } catch (error) {
    throw fileError(error, parent, "cannot create a directory in", { resumable: false });
  }
}

async function refuseExisting(dir: string, force: boolean): Promise<void> {
  const existing = await lstat(dir).catch(() => undefined);
  if (!existing || force) return;
  if (existing.isDirectory() && (await readdir(dir)).length === 0) return;
  throw new FileError(`${dir} already exists${existing.isDirectory() ? " and is not empty" : ""}; use \`force\` to replace it`, {
    path: dir,
    code: "ERR_EXISTS",
  });
}

/** tar warnings that mean the archive itself is damaged, not one entry refused. */
const CORRUPT_ARCHIVE = new Set(["TAR_BAD_ARCHIVE", "TAR_ABORT", "TAR_ENTRY_INVALID"]);

/** An unpacking in progress into a temporary directory; see the module comment. */
export class Extraction {
  /** The archive's bytes, in order; end it after the last byte. */
  readonly input: Writable;
  /** The temporary sibling of `dir` being unpacked into. */
  readonly tempDir: string;
  readonly #dir: string;
  readonly #options: ExtractionOptions;
  readonly #finished: Promise<void>;
  #settle!: { resolve: () => void; reject: (error: unknown) => void };
  #target: { write(chunk: Buffer): boolean; end(): void; once(event: "drain", listener: () => void): unknown } | undefined;
  #head: Buffer[] = [];
  #headBytes = 0;
  #failure: unknown;
  #sawEndMarker = false;

  constructor(dir: string, tempDir: string, options: ExtractionOptions) {
    this.#dir = dir;
    this.tempDir = tempDir;
    this.#options = options;
    this.#finished = new Promise((resolve, reject) => (this.#settle = { resolve, reject }));
    this.#finished.catch(() => {});
    this.input = new Writable({
      write: (chunk: Buffer, _encoding, callback) => this.#take(chunk, callback),
      final: (callback) => this.#end(callback),
    });
  }

  /**
   * Resolves once the whole archive is unpacked (after `input` ended). Rejects with
   * `IntegrityError` (exit 5) for a corrupt or truncated archive or compressed stream,
   * `UsageError` (exit 2) for a compression rangeget cannot decode, `FileError` (exit
   * 6) when an entry cannot be written (disk full, permission).
   */
  finished(): Promise<void> {
    return this.#finished;
  }

  /** Moves the unpacked tree to DIR (checked again: it may have appeared meanwhile). */
  async commit(): Promise<void> {
    await this.#finished;
    await removeEscapes(this.tempDir, this.#dir, this.#options.warn);
    await refuseExisting(this.#dir, this.#options.force ?? false);
    const existing = await lstat(this.#dir).catch(() => undefined);
    const aside = `${this.tempDir}.old`;
    try {
      if (existing?.isDirectory() && (await readdir(this.#dir)).length === 0) await rmdir(this.#dir);
      else if (existing) await rename(this.#dir, aside);
      // mkdtemp made it 0700; DIR gets the mode any new directory would.
      await chmod(this.tempDir, 0o777 & ~process.umask());
      await rename(this.tempDir, this.#dir);
      if (existing) await rm(aside, { recursive: true, force: true });
    } catch (error) {
      throw fileError(error, this.#dir, "cannot move the unpacked archive to", { resumable: false });
    }
  }

  /** Removes the temporary directory and everything unpacked so far. */
  async discard(): Promise<void> {
    this.input.destroy();
    // node-tar may still be finishing an entry's writes (ENOTEMPTY while rm walks):
    // rm retries, with 100 ms more wait each time.
    await rm(this.tempDir, { recursive: true, force: true, maxRetries: 5 });
  }

  #take(chunk: Buffer, callback: (error?: Error | null) => void): void {
    if (this.#failure !== undefined) return callback(this.#failure as Error);
    if (!this.#target) {
      this.#head.push(chunk);
      this.#headBytes += chunk.length;
      if (this.#headBytes < MAGIC_BYTES) return callback();
      try {
        this.#startUnpacking();
      } catch (error) {
        return callback(error as Error);
      }
      return this.#forward(Buffer.concat(this.#head), callback);
    }
    this.#forward(chunk, callback);
  }

  #end(callback: (error?: Error | null) => void): void {
    try {
      if (!this.#target) {
        this.#startUnpacking();
        this.#target!.write(Buffer.concat(this.#head));
      }
    } catch (error) {
      return callback(error as Error);
    }
    this.#target!.end();
    this.#finished.then(
      () => callback(),
      (error: unknown) => callback(error as Error),
    );
  }

  #forward(chunk: Buffer, callback: (error?: Error | null) => void): void {
    if (this.#target!.write(chunk)) callback();
    else this.#target!.once("drain", () => callback());
  }

  #startUnpacking(): void {
    const compression = detectCompression(Buffer.concat(this.#head));
    const url = this.#options.url;
    if (compression === "bzip2" || compression === "xz") {
      throw this.#fail(
        new UsageError(
          `\`extract\`: ${url} is a ${compression}-compressed archive, which rangeget cannot decode; ` +
            `use rangeget -o - ${url} | tar x${compression === "xz" ? "J" : "j"}`,
        ),
      );
    }
    if (compression === "zstd" && !zstdAvailable()) {
      throw this.#fail(
        new UsageError(
          `\`extract\`: ${url} is a zstd-compressed archive, which this Node (${process.version}) cannot decode: ` +
            `use Node 22.15 or later, or rangeget -o - ${url} | zstd -d | tar x`,
        ),
      );
    }
    const unpack = new Unpack({
      cwd: this.tempDir,
      unlink: true,
      preserveOwner: false,
      // The decompression is ours; node-tar must take the bytes as a plain tar.
      zstd: false,
      brotli: false,
      filter: (_path, entry) => this.#admit(entry as ReadEntry),
      onwarn: (code, message, data) => this.#onTarProblem(code, message, data as { code?: string; path?: string; entry?: { path?: string } }),
    });
    unpack.on("error", (error: Error & { tarCode?: string; code?: string; path?: string }) => {
      this.#onTarProblem(error.tarCode ?? "", error.message, error);
    });
    // POSIX ends a tar with two zero blocks; an archive cut between two entries (or
    // inside a header) shows no other sign. One zero block is accepted, as GNU tar does.
    unpack.on("nullBlock", () => (this.#sawEndMarker = true));
    unpack.on("close", () => this.#done());
    if (compression === "none") {
      this.#target = unpack;
      return;
    }
    const decoder = compression === "gzip" ? zlib.createGunzip({ chunkSize: INFLATED_CHUNK_BYTES }) : (zlib as ZstdZlib).createZstdDecompress!({ chunkSize: INFLATED_CHUNK_BYTES });
    decoder.on("error", (error) => {
      this.#fail(new IntegrityError(`\`extract\`: the ${compression} stream from ${url} is corrupt: ${error.message}; nothing was unpacked`, { cause: error }));
    });
    decoder.pipe(unpack);
    this.#target = decoder;
  }

  /**
   * Whether node-tar may unpack `entry`, and with which mode. A hard link to an absolute
   * path is skipped (node-tar would strip the `/` and link to whatever the archive put
   * there, or fail the archive when nothing is there); setuid and setgid bits are dropped.
   */
  #admit(entry: ReadEntry): boolean {
    const linkpath = entry.linkpath ?? "";
    if (entry.type === "Link" && (posix.isAbsolute(linkpath) || win32.isAbsolute(linkpath))) {
      this.#options.warn(`--extract: skipped ${entry.path}: a hard link to the absolute path ${linkpath}`);
      return false;
    }
    if (typeof entry.mode === "number") entry.mode &= ~0o6000;
    return true;
  }

  /** `text` with the temporary sibling shown as DIR: that name is ours, not the user's. */
  #shown(text: string): string {
    return text.split(this.tempDir).join(this.#dir);
  }

  /** A corrupt archive fails, a local write error fails, a refused entry is a warning. */
  #onTarProblem(code: string, message: string, data: { code?: string; path?: string; entry?: { path?: string; type?: string; linkpath?: string } }): void {
    const text = this.#shown(message.replace(/^TAR_[A-Z_]+: /, ""));
    const entry = data.entry;
    // A hard link to a name nothing in the archive has unpacked yet: the entry is
    // skipped, as bsdtar and GNU tar skip it (with a warning), not the whole archive.
    if (data.code === "ENOENT" && entry?.type === "Link") {
      this.#options.warn(`--extract: skipped ${entry.path}: a hard link to ${entry.linkpath}, which the archive does not hold before it`);
      return;
    }
    // An errno (ENOSPC, EACCES) is the local disk's problem, not the archive's.
    if (data.code !== undefined && /^E[A-Z]+$/.test(data.code)) {
      const where = this.#shown(data.path ?? this.#dir);
      this.#fail(fileError(Object.assign(new Error(text), { code: data.code }), where, "cannot unpack into", { resumable: false }));
    } else if (CORRUPT_ARCHIVE.has(code) || code === "") {
      this.#fail(
        new IntegrityError(`\`extract\`: the archive from ${this.#options.url} is not a valid tar archive: ${text}; nothing was unpacked`, {
          code: "ERR_INTEGRITY",
        }),
      );
    } else {
      const name = entry?.path ?? (data.path === undefined ? undefined : this.#shown(data.path));
      this.#options.warn(`\`extract\`: ${name === undefined ? "" : `${name}: `}${text}`);
    }
  }

  #done(): void {
    if (this.#failure !== undefined) return;
    if (this.#sawEndMarker) this.#settle.resolve();
    else this.#onTarProblem("TAR_BAD_ARCHIVE", "it ends without the end-of-archive blocks (cut short)", {});
  }

  #fail(error: unknown): unknown {
    if (this.#failure !== undefined) return this.#failure;
    this.#failure = error;
    this.#settle.reject(error);
    this.input.destroy(error as Error);
    return error;
  }
}

/** Link hops followed before a chain is taken for a loop, as Linux's ELOOP (40). */
const MAX_LINK_HOPS = 40;

/**
 * Removes from the unpacked tree each symbolic link that, followed the way the kernel
 * would (through other links), leads outside it, and each file that has links outside
 * it (more links than the tree holds).
 */
async function removeEscapes(root: string, dir: string, warn: (message: string) => void): Promise<void> {
  const links = new Map<number, { count: number; nlink: number; paths: string[] }>();
  const walk = async (directory: string): Promise<void> => {
    for (const entry of await readdir(directory, { withFileTypes: true })) {
      const path = join(directory, entry.name);
      if (entry.isDirectory()) {
        await walk(path);
      } else if (entry.isSymbolicLink()) {
        if (await leavesRoot(root, path)) {
          await rm(path, { force: true });
          warn(`\`extract\`: removed ${relative(root, path)}: a symbolic link that leads outside ${dir}`);
        }
      } else {
        const info = await lstat(path);
        if (info.nlink < 2) continue;
        const seen = links.get(info.ino) ?? { count: 0, nlink: info.nlink, paths: [] };
        seen.count++;
        seen.paths.push(path);
        links.set(info.ino, seen);
      }
    }
  };
  await walk(root);
  for (const { count, nlink, paths } of links.values()) {
    if (count >= nlink) continue;
    for (const path of paths) {
      await rm(path, { force: true });
      warn(`\`extract\`: removed ${relative(root, path)}: a hard link to a file outside ${dir}`);
    }
  }
}

/** Follows `path` component by component from `root`, through links, and says whether it ever leaves `root`. */
async function leavesRoot(root: string, path: string): Promise<boolean> {
  const inside = (candidate: string) => candidate === root || candidate.startsWith(root + sep);
  let pending = relative(root, path).split(sep);
  let current = root;
  let hops = 0;
  while (pending.length > 0) {
    const part = pending.shift()!;
    if (part === "" || part === ".") continue;
    if (part === "..") {
      current = dirname(current);
      if (!inside(current)) return true;
      continue;
    }
    const next = join(current, part);
    let target: string;
    try {
      target = await readlink(next);
    } catch {
      // Not a link, or not there: a name that does not exist cannot redirect the walk.
      current = next;
      continue;
    }
    if (++hops > MAX_LINK_HOPS || isAbsolute(target)) return true;
    pending = [...target.split("/"), ...pending];
  }
  return !inside(current);
}


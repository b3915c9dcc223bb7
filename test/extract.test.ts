import { lstat, mkdir, readdir, readFile, readlink, realpath, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import { FileError, IntegrityError, UsageError } from "../src/errors.js";
import { detectCompression, startExtraction, zstdAvailable, type Extraction } from "../src/extract.js";
import { tarArchive, type TarEntry } from "./support/tar-archive.js";
import { tempDir } from "./support/temp.js";

const URL = "http://127.0.0.1:1/archive";

/** Feeds `bytes` in small chunks, as the ordered stream would, then waits for the unpacking. */
async function feed(extraction: Extraction, bytes: Buffer, chunk = 700): Promise<void> {
  const chunks: Buffer[] = [];
  for (let offset = 0; offset < bytes.length; offset += chunk) chunks.push(bytes.subarray(offset, offset + chunk));
  await pipeline(Readable.from(chunks), extraction.input);
  await extraction.finished();
}

/** Unpacks `archive` into `<parent>/out` and returns what was warned. */
async function unpack(archive: Buffer, parent: string): Promise<{ dir: string; warnings: string[] }> {
  const dir = join(parent, "out");
  const warnings: string[] = [];
  const extraction = await startExtraction({ dir, url: URL, warn: (message) => warnings.push(message) });
  await feed(extraction, archive);
  await extraction.commit();
  return { dir, warnings };
}

/** Every path under `dir`, relative, sorted. */
async function tree(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.map(String).sort();
}

const FILES: TarEntry[] = [
  { path: "data/", type: "directory" },
  { path: "data/a.txt", body: "alpha\n" },
  { path: "data/big.bin", body: Buffer.alloc(100_000, 7) },
  { path: "data/link", type: "symlink", linkpath: "a.txt" },
];

describe("detectCompression", () => {
  it.each<[string, number[], string]>([
    ["gzip", [0x1f, 0x8b, 0x08, 0, 0, 0], "gzip"],
    ["zstd", [0x28, 0xb5, 0x2f, 0xfd, 0x04, 0], "zstd"],
    ["bzip2", [0x42, 0x5a, 0x68, 0x39, 0x31, 0x41], "bzip2"],
    ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], "xz"],
    ["a plain tar (a file name first)", [...Buffer.from("data/a")], "none"],
    ["too short to tell", [0x1f], "none"],
  ])("%s", (_name, bytes, expected) => {
    expect(detectCompression(Buffer.from(bytes))).toBe(expected);
  });
});

describe("startExtraction: unpacking", () => {
  it.each<[string, (tar: Buffer) => Buffer]>([
    ["a plain tar", (tar) => tar],
    ["a gzip tar", (tar) => zlib.gzipSync(tar)],
    ["a gzip tar of several members (as pigz -i and cat a.gz b.gz make)", (tar) => Buffer.concat([zlib.gzipSync(tar.subarray(0, 5000)), zlib.gzipSync(tar.subarray(5000))])],
  ])("unpacks %s into DIR, and DIR appears only at commit", async (_name, compress) => {
    const parent = await tempDir();
    const dir = join(parent, "out");
    const extraction = await startExtraction({ dir, url: URL, warn: () => {} });
    await feed(extraction, compress(tarArchive(FILES)));
    expect(await lstat(dir).catch(() => undefined)).toBeUndefined();
    await extraction.commit();
    expect(await tree(dir)).toEqual(["data", "data/a.txt", "data/big.bin", "data/link"]);
    expect(await readFile(join(dir, "data/a.txt"), "utf8")).toBe("alpha\n");
    expect((await readFile(join(dir, "data/big.bin"))).equals(Buffer.alloc(100_000, 7))).toBe(true);
    expect(await readlink(join(dir, "data/link"))).toBe("a.txt");
    expect(await readdir(parent)).toEqual(["out"]);
  });

  it("unpacks a zstd tar where Node decodes zstd, and otherwise refuses it naming the Node version", async () => {
    const parent = await tempDir();
    const extraction = await startExtraction({ dir: join(parent, "out"), url: URL, warn: () => {} });
    const zstd = zlib as typeof zlib & { zstdCompressSync?: (buffer: Buffer) => Buffer };
    if (zstdAvailable()) {
      await feed(extraction, zstd.zstdCompressSync!(tarArchive(FILES)));
      await extraction.commit();
      expect(await tree(join(parent, "out"))).toContain("data/a.txt");
    } else {
      const zstdFrame = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x00, 0x00, 0x00]);
      await expect(feed(extraction, zstdFrame)).rejects.toThrow(new RegExp(`zstd-compressed.*${process.version}`));
      await expect(extraction.finished()).rejects.toBeInstanceOf(UsageError);
    }
  });

  it.each<[string, number[], RegExp]>([
    ["bzip2", [0x42, 0x5a, 0x68, 0x39, 0x31, 0x41, 0x59, 0x26], /bzip2-compressed archive.*tar xj/],
    ["xz", [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04], /xz-compressed archive.*tar xJ/],
  ])("refuses %s with a usage error that says how to unpack it instead", async (_name, bytes, message) => {
    const parent = await tempDir();
    const extraction = await startExtraction({ dir: join(parent, "out"), url: URL, warn: () => {} });
    await expect(feed(extraction, Buffer.from(bytes))).rejects.toThrow(message);
    await expect(extraction.finished()).rejects.toBeInstanceOf(UsageError);
    await extraction.discard();
    expect(await readdir(parent)).toEqual([]);
  });

  it.each<[string, () => Buffer]>([
    ["a gzip stream with flipped bytes", () => {
      const gzip = zlib.gzipSync(tarArchive(FILES));
      for (let index = 40; index < 60; index++) gzip[index] = gzip[index]! ^ 0xff;
      return gzip;
    }],
    ["a gzip stream cut before its end", () => {
      const gzip = zlib.gzipSync(tarArchive(FILES));
      return gzip.subarray(0, gzip.length - 12);
    }],
    ["a tar cut inside an entry's body", () => tarArchive(FILES).subarray(0, 512 * 4 + 100)],
    ["a tar cut inside a header", () => tarArchive(FILES).subarray(0, 512 * 3 + 100)],
    ["a tar cut between two entries", () => tarArchive(FILES).subarray(0, 512 * 3)],
    ["a tar header with a bad checksum", () => {
      const tar = tarArchive(FILES);
      // The second entry's name, in its header after the directory's.
      tar[512 + 5] = 0x41;
      return tar;
    }],
    ["text that is no archive at all", () => Buffer.from("<html>404 not found</html>\n".repeat(40))],
    ["an empty body", () => Buffer.alloc(0)],
  ])("fails with IntegrityError (exit 5) on %s, and leaves nothing behind", async (_name, archive) => {
    const parent = await tempDir();
    const extraction = await startExtraction({ dir: join(parent, "out"), url: URL, warn: () => {} });
    await feed(extraction, archive()).catch(() => {});
    const error: unknown = await extraction.finished().catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as IntegrityError).exitCode).toBe(5);
    expect((error as Error).message).toContain("nothing was unpacked");
    await extraction.discard();
    expect(await readdir(parent)).toEqual([]);
  });
});

describe("startExtraction: DIR that exists", () => {
  it("refuses a non-empty DIR with ERR_EXISTS (exit 6) before anything is fetched", async () => {
    const parent = await tempDir();
    await mkdir(join(parent, "out"));
    await writeFile(join(parent, "out", "keep.txt"), "mine");
    const error: unknown = await startExtraction({ dir: join(parent, "out"), url: URL, warn: () => {} }).catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(FileError);
    expect(error).toMatchObject({ code: "ERR_EXISTS", exitCode: 6 });
    expect(await readdir(parent)).toEqual(["out"]);
  });

  it("refuses a file at DIR", async () => {
    const parent = await tempDir();
    await writeFile(join(parent, "out"), "a file");
    await expect(startExtraction({ dir: join(parent, "out"), url: URL, warn: () => {} })).rejects.toMatchObject({ code: "ERR_EXISTS" });
  });

  it("takes the place of an empty DIR (mkdir out && rangeget --extract out URL)", async () => {
    const parent = await tempDir();
    await mkdir(join(parent, "out"));
    const { dir } = await unpack(tarArchive(FILES), parent);
    expect(await tree(dir)).toContain("data/a.txt");
  });

  it("replaces a non-empty DIR with --force, and only once the archive is complete", async () => {
    const parent = await tempDir();
    await mkdir(join(parent, "out"));
    await writeFile(join(parent, "out", "old.txt"), "old");
    const dir = join(parent, "out");
    const extraction = await startExtraction({ dir, url: URL, force: true, warn: () => {} });
    await feed(extraction, tarArchive(FILES));
    expect(await readdir(dir)).toEqual(["old.txt"]);
    await extraction.commit();
    expect(await tree(dir)).toEqual(["data", "data/a.txt", "data/big.bin", "data/link"]);
    expect(await readdir(parent)).toEqual(["out"]);
  });
});

describe("startExtraction: hostile archives never write outside DIR", () => {
  /** A file beside DIR that a hostile archive would like to reach. */
  async function victim(parent: string): Promise<string> {
    const path = join(parent, "victim.txt");
    await writeFile(path, "untouched");
    return path;
  }

  async function expectUntouched(parent: string, victimPath: string): Promise<void> {
    expect((await readdir(parent)).sort()).toEqual(["out", "victim.txt"]);
    expect(await readFile(victimPath, "utf8")).toBe("untouched");
  }

  it("neutralises an absolute path: the entry lands inside DIR, with a warning", async () => {
    const parent = await tempDir();
    const target = await victim(parent);
    const { dir, warnings } = await unpack(tarArchive([{ path: `${target}`, body: "overwritten" }]), parent);
    await expectUntouched(parent, target);
    expect(await readFile(join(dir, target.slice(1)), "utf8")).toBe("overwritten");
    expect(warnings.join("\n")).toMatch(/stripping \/ from absolute path/);
  });

  it("skips a path with '..', with a warning", async () => {
    const parent = await tempDir();
    const target = await victim(parent);
    const { dir, warnings } = await unpack(tarArchive([{ path: "../victim.txt", body: "overwritten" }, { path: "ok.txt", body: "fine" }]), parent);
    await expectUntouched(parent, target);
    expect(await tree(dir)).toEqual(["ok.txt"]);
    expect(warnings.join("\n")).toMatch(/\.\.\/victim\.txt: path contains '\.\.'/);
  });

  it("keeps an absolute symlink inside DIR and never writes through a link", async () => {
    const parent = await tempDir();
    const target = await victim(parent);
    const { dir } = await unpack(
      tarArchive([
        { path: "escape", type: "symlink", linkpath: parent },
        { path: "escape/victim.txt", body: "overwritten" },
      ]),
      parent,
    );
    await expectUntouched(parent, target);
    const resolved = await realpath(join(dir, "escape")).catch(() => join(dir, "escape"));
    expect(resolved.startsWith(await realpath(dir))).toBe(true);
  });

  it("skips a symlink whose relative target leaves DIR, and what would be written through it", async () => {
    const parent = await tempDir();
    const target = await victim(parent);
    const { dir, warnings } = await unpack(
      tarArchive([
        { path: "up", type: "symlink", linkpath: ".." },
        { path: "up/victim.txt", body: "overwritten" },
        { path: "deep/up2", type: "symlink", linkpath: "../../victim.txt" },
      ]),
      parent,
    );
    await expectUntouched(parent, target);
    expect(await tree(dir)).not.toContain("deep/up2");
    expect(warnings.join("\n")).toMatch(/escapes extraction directory/);
  });

  it("skips a hard link to a file outside DIR, so a later entry cannot write into it", async () => {
    const parent = await tempDir();
    const target = await victim(parent);
    const { dir, warnings } = await unpack(
      tarArchive([
        { path: "hard", type: "hardlink", linkpath: "../victim.txt" },
        { path: "hard", body: "overwritten" },
      ]),
      parent,
    );
    await expectUntouched(parent, target);
    expect(await readFile(join(dir, "hard"), "utf8")).toBe("overwritten");
    expect(warnings.join("\n")).toMatch(/linkpath contains '\.\.'/);
  });

  it("skips a hard link to an absolute path (hard -> /tmp/.../canary) with one warning naming the member, as bsdtar does; never a temp path", async () => {
    const parent = await tempDir();
    const target = await victim(parent);
    const { dir, warnings } = await unpack(
      tarArchive([
        { path: "hard", type: "hardlink", linkpath: target },
        { path: "kept.txt", body: "kept" },
        { path: "hard", body: "overwritten" },
      ]),
      parent,
    );
    await expectUntouched(parent, target);
    expect(await readFile(join(dir, "kept.txt"), "utf8")).toBe("kept");
    const aboutHard = warnings.filter((warning) => warning.includes("hard"));
    expect(aboutHard).toEqual([`--extract: skipped hard: a hard link to the absolute path ${target}`]);
    expect(warnings.join("\n")).not.toMatch(/\.out\.extract-/);
  });

  it("skips a hard link to a file the archive does not hold, with a warning and no temp path, instead of failing the whole archive", async () => {
    const parent = await tempDir();
    const { dir, warnings } = await unpack(
      tarArchive([
        { path: "orphan", type: "hardlink", linkpath: "not/in/the/archive" },
        { path: "kept.txt", body: "kept" },
      ]),
      parent,
    );
    expect(await tree(dir)).toEqual(["kept.txt"]);
    expect(warnings).toEqual([expect.stringMatching(/^--extract: skipped orphan: a hard link to not\/in\/the\/archive, which the archive does not hold before it/)]);
    expect(warnings.join("\n")).not.toMatch(/\.out\.extract-/);
  });

  it("never restores setuid or setgid bits (bsdtar restores them only with -p), even as root", async () => {
    const parent = await tempDir();
    const { dir } = await unpack(
      tarArchive([
        { path: "bin/", type: "directory", mode: 0o2755 },
        { path: "bin/suid", body: "#!/bin/sh\n", mode: 0o4755 },
        { path: "bin/sgid", body: "", mode: 0o2711 },
        { path: "bin/both", body: "x", mode: 0o6777 },
      ]),
      parent,
    );
    for (const name of ["bin", "bin/suid", "bin/sgid", "bin/both"]) {
      expect((await lstat(join(dir, name))).mode & 0o6000, name).toBe(0);
    }
    // The rest of the mode is kept (less the umask).
    expect((await lstat(join(dir, "bin/suid"))).mode & 0o111).toBe(0o111);
  });

  it("removes a chain of links that leaves DIR though no single link does (a -> ., b -> a/..)", async () => {
    const parent = await tempDir();
    const target = await victim(parent);
    const { dir, warnings } = await unpack(
      tarArchive([
        { path: "b", type: "symlink", linkpath: "a/.." },
        { path: "a", type: "symlink", linkpath: "." },
      ]),
      parent,
    );
    await expectUntouched(parent, target);
    // Not a recursive listing: `a -> .` would make it loop.
    expect((await readdir(dir)).sort()).toEqual(["a"]);
    expect(warnings.join("\n")).toMatch(/removed b: a symbolic link that leads outside/);
  });

  it("skips device files and FIFOs, with a warning each", async () => {
    const parent = await tempDir();
    const { dir, warnings } = await unpack(
      tarArchive([
        { path: "null", type: "character-device" },
        { path: "pipe", type: "fifo" },
        { path: "ok.txt", body: "fine" },
      ]),
      parent,
    );
    expect(await tree(dir)).toEqual(["ok.txt"]);
    expect(warnings.filter((warning) => /unsupported entry type/.test(warning))).toHaveLength(2);
  });
});

// --cache end to end: files kept by digest and placed with no request, through the
// CLI and the library against servers on 127.0.0.1 that count what they serve. The
// CLI's `main` runs in this process (run-main.ts); one repair of a bad entry runs the
// built `bin/rangeget.js` as a child, so the binary still downloads into a cache.
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { download } from "../src/download.js";
import type { DownloadOptions } from "../src/types.js";
import { makeContent, sha256 } from "./support/content.js";
import { lines, runCli } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;

function quick(extra: DownloadOptions = {}): DownloadOptions & { warnings: string[] } {
  const warnings: string[] = [];
  return { minSplit: 64 * KiB, timeout: 5, retries: 2, onWarning: (message) => warnings.push(message), warnings, ...extra };
}

describe("--cache", () => {
  it("stores a verified download; a second run with the same checksum makes no request and the output's sha256 is right", async () => {
    const content = makeContent(700 * KiB, 1);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const cache = join(dir, "cache");
    const checksum = `sha256=${sha256(content)}`;
    const first = await runMain(["-q", "--json", "-c", "4", "--cache", cache, "--checksum", checksum, "-o", "one.bin", server.url("/f.bin")], { cwd: dir });
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ status: "downloaded", cache: "stored" });
    expect(sha256(await readFile(join(cache, "sha256", sha256(content))))).toBe(sha256(content));
    const served = server.requests.length;
    expect(served).toBeGreaterThan(0);

    const second = await runMain(["-q", "--json", "--cache", cache, "--checksum", checksum, "-o", "two.bin", server.url("/f.bin")], { cwd: dir });
    expect(second.stderr).toBe("");
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ status: "downloaded", cache: "hit", bytesTransferred: 0, size: content.length, checksum: { hex: sha256(content) } });
    expect(server.requests.length).toBe(served);
    expect(sha256(await readFile(join(dir, "two.bin")))).toBe(sha256(content));
    // A copy, never a hard link: editing the output leaves the entry whole.
    expect((await stat(join(dir, "two.bin"))).nlink).toBe(1);
    await writeFile(join(dir, "two.bin"), "edited");
    expect(sha256(await readFile(join(cache, "sha256", sha256(content))))).toBe(sha256(content));
    // No temporary file is left beside the entries.
    expect(await readdir(join(cache, "sha256"))).toEqual([sha256(content)]);
  });

  it("the same digest from another URL hits: the second server gets no request", async () => {
    const content = makeContent(300 * KiB, 2);
    const first = await rangeServer({ content });
    const second = await rangeServer({ content });
    const dir = await tempDir();
    const cache = join(dir, "cache");
    const checksum = `sha512-${Buffer.from(await import("node:crypto").then(({ createHash }) => createHash("sha512").update(content).digest())).toString("base64")}`;
    expect((await runMain(["-q", "--cache", cache, "--checksum", checksum, "-o", "a.bin", first.url("/a.bin")], { cwd: dir })).code).toBe(0);
    const run = await runMain(["-q", "--json", "--cache", cache, "--checksum", checksum, "-o", "b.bin", second.url("/mirror/b.bin")], { cwd: dir });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).cache).toBe("hit");
    expect(second.requests).toEqual([]);
    expect(sha256(await readFile(join(dir, "b.bin")))).toBe(sha256(content));
  });

  // A child: the file's one run of the built command, a download stored into the cache.
  it("an entry whose bytes do not match is dropped, with a warning, and the file fetched and stored again", async () => {
    const content = makeContent(200 * KiB, 3);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const cache = join(dir, "cache");
    const entry = join(cache, "sha256", sha256(content));
    await mkdir(join(cache, "sha256"), { recursive: true });
    const corrupt = Buffer.from(content);
    corrupt[1000] ^= 0xff;
    await writeFile(entry, corrupt);
    const run = await runCli(["--json", "--cache", cache, "--checksum", `sha256=${sha256(content)}`, "-o", "f.bin", server.url()], { cwd: dir });
    expect(run.code).toBe(0);
    expect(lines(run.stderr)).toContain(`rangeget: warning: the cache entry ${entry} does not match its digest: dropped it; downloading`);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "downloaded", cache: "stored" });
    expect(server.requests.length).toBeGreaterThan(0);
    expect(sha256(await readFile(join(dir, "f.bin")))).toBe(sha256(content));
    expect(sha256(await readFile(entry))).toBe(sha256(content));
  });

  it("a bare --cache uses $XDG_CACHE_HOME/rangeget, and the URL after it stays the URL", async () => {
    const content = makeContent(50 * KiB, 4);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const xdg = join(dir, "xdg");
    const run = await runMain(["-q", "--json", "--checksum", `sha256=${sha256(content)}`, "--cache", server.url("/x.bin")], { cwd: dir, env: { XDG_CACHE_HOME: xdg } });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).cache).toBe("stored");
    expect(existsSync(join(xdg, "rangeget", "sha256", sha256(content)))).toBe(true);
    expect(existsSync(join(dir, "x.bin"))).toBe(true);
  });

  it("without -o, a hit is saved under the URL's name; with --checksum-file the entry is looked up by it", async () => {
    const content = makeContent(80 * KiB, 5);
    const server = await rangeServer({ content, contentDisposition: 'attachment; filename="server-name.bin"' });
    const dir = await tempDir();
    const cache = join(dir, "cache");
    await writeFile(join(dir, "SUMS"), `${sha256(content)}  pkg.tgz\n`);
    const first = await runMain(["-q", "--json", "--cache", cache, "--checksum-file", "SUMS", "-o", "first.tgz", server.url("/dl/pkg.tgz")], { cwd: dir });
    expect(first.code).toBe(0);
    const served = server.requests.length;
    await mkdir(join(dir, "out"));
    const run = await runMain(["-q", "--json", "--cache", cache, "--checksum-file", "SUMS", "-d", "out", server.url("/dl/pkg.tgz")], { cwd: dir });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ cache: "hit", path: join(dir, "out", "pkg.tgz") });
    expect(server.requests.length).toBe(served);
    expect(sha256(await readFile(join(dir, "out", "pkg.tgz")))).toBe(sha256(content));
  });

  it("without a checksum the cache does nothing: null, nothing stored", async () => {
    const content = makeContent(40 * KiB, 6);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const run = await runMain(["-q", "--json", "--cache", join(dir, "cache"), "-o", "f.bin", server.url()], { cwd: dir });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).cache).toBeNull();
    expect(existsSync(join(dir, "cache"))).toBe(false);
  });

  it("--cache with -o - is a usage error", async () => {
    const dir = await tempDir();
    const run = await runMain(["-q", "--cache", "c", "-o", "-", "http://127.0.0.1:9/a"], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--cache keeps finished files; it cannot serve -o -");
  });

  it("the library: two downloads storing one digest at once leave one right entry; the next one hits with no request", async () => {
    const content = makeContent(500 * KiB, 7);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const cache = join(dir, "cache");
    const checksum = { algorithm: "sha256" as const, hex: sha256(content) };
    const both = await Promise.all(["a.bin", "b.bin"].map((name) => download(server.url(`/${name}`), quick({ dir, cache, checksum }))));
    expect(both.map((result) => result.cache).sort()).toEqual(expect.arrayContaining(["stored"]));
    expect(await readdir(join(cache, "sha256"))).toEqual([sha256(content)]);
    expect(sha256(await readFile(join(cache, "sha256", sha256(content))))).toBe(sha256(content));
    const served = server.requests.length;
    const third = await download(server.url("/c.bin"), quick({ dir, cache, checksum }));
    expect(third).toMatchObject({ status: "downloaded", cache: "hit", bytesTransferred: 0 });
    expect(server.requests.length).toBe(served);
    expect(sha256(await readFile(join(dir, "c.bin")))).toBe(sha256(content));
  });
});

describe("cacheDirectory", () => {
  it.each([
    ["a directory given", "/var/cache/x", {}, "/var/cache/x"],
    ["true with XDG_CACHE_HOME", true, { XDG_CACHE_HOME: "/xdg" }, "/xdg/rangeget"],
    ["true without it", true, {}, "/home/u/.cache/rangeget"],
    ["true with a relative XDG_CACHE_HOME (ignored, as the XDG spec says)", true, { XDG_CACHE_HOME: "rel" }, "/home/u/.cache/rangeget"],
  ] as const)("%s", async (_what, option, env, expected) => {
    const { cacheDirectory } = await import("../src/cache.js");
    expect(cacheDirectory(option, env, "/home/u")).toBe(expected);
  });
});

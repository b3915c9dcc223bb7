// Checksums end to end: the spellings and SRI of --checksum, --checksum-file (a file
// or a URL, one for a whole list), and the check of an output reported up to date,
// through the library and the CLI against real servers on 127.0.0.1. The CLI's `main`
// runs in this process (run-main.ts); one mismatch runs the built `bin/rangeget.js` as
// a child, so the binary's exit 5 is still checked.
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { download } from "../src/download.js";
import { IntegrityError } from "../src/errors.js";
import type { DownloadOptions } from "../src/types.js";
import { makeContent, sha256 } from "./support/content.js";
import { lines, runCli } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;

function quick(extra: DownloadOptions = {}): DownloadOptions {
  return { minSplit: 64 * KiB, timeout: 5, retries: 2, onWarning: () => {}, ...extra };
}

function sri(algorithm: "sha256" | "sha384" | "sha512", content: Buffer): string {
  return `${algorithm}-${createHash(algorithm).update(content).digest("base64")}`;
}

function hexOf(algorithm: string, content: Buffer): string {
  return createHash(algorithm).update(content).digest("hex");
}

describe("--checksum spellings and SRI", () => {
  it("the library verifies an SRI string with several tokens against the strongest (sha384 beside a wrong sha256)", async () => {
    const content = makeContent(200 * KiB, 1);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    // The sha256 token is wrong: SRI checks only the strongest algorithm given.
    const checksum = `sha256-${Buffer.alloc(32).toString("base64")} ${sri("sha384", content)}`;
    const result = await download(server.url("/a.bin"), quick({ dir, checksum }));
    expect(result.checksum).toEqual({ algorithm: "sha384", hex: hexOf("sha384", content) });
    expect(sha256(await readFile(join(dir, "a.bin")))).toBe(sha256(content));
  });

  it("the library refuses the file when the strongest SRI token does not match, naming what it expected", async () => {
    const content = makeContent(100 * KiB, 2);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const wrong = Buffer.alloc(64, 1);
    const failure = download(server.url("/b.bin"), quick({ dir, checksum: `${sri("sha256", content)} sha512-${wrong.toString("base64")}` }));
    await expect(failure).rejects.toThrow(IntegrityError);
    await expect(failure).rejects.toThrow(`sha512 is ${hexOf("sha512", content)}, expected ${wrong.toString("hex")}`);
    expect(existsSync(join(dir, "b.bin"))).toBe(false);
  });

  const SPELLINGS: Array<[string, (content: Buffer) => string, string]> = [
    ["sha-256=<hex> (aria2)", (content) => `sha-256=${hexOf("sha256", content)}`, "sha256"],
    ["sha256:<hex>", (content) => `sha256:${hexOf("sha256", content)}`, "sha256"],
    ["SHA256=<HEX>", (content) => `SHA256=${hexOf("sha256", content).toUpperCase()}`, "sha256"],
    ["sha384=<hex>", (content) => `sha384=${hexOf("sha384", content)}`, "sha384"],
    ["sha512-<base64> (SRI)", (content) => sri("sha512", content), "sha512"],
  ];

  // Every spelling through a whole download, in process: the CLI hands --checksum's text
  // to the same parseChecksum, so two of them (a hex and an SRI one) prove it does.
  it.each(SPELLINGS)("the library takes checksum %s and reports the digest", async (_what, checksumOf, algorithm) => {
    const content = makeContent(150 * KiB, 3);
    const server = await rangeServer({ content });
    const result = await download(server.url(), quick({ dir: await tempDir(), checksum: checksumOf(content) }));
    expect(result.checksum).toEqual({ algorithm, hex: hexOf(algorithm, content) });
  });

  it.each(SPELLINGS.filter(([what]) => what.includes("aria2") || what.includes("SRI")))("the CLI takes --checksum %s and reports the digest in --json", async (_what, checksumOf, algorithm) => {
    const content = makeContent(150 * KiB, 3);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const run = await runMain(["-q", "--json", "--checksum", checksumOf(content), "-o", "f.bin", server.url()], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).checksum).toEqual({ algorithm, hex: hexOf(algorithm, content) });
  });

  // A child: the file's one run of the built command, whose process exits 5.
  it("the CLI exits 5 when an SRI digest does not match, with no output left", async () => {
    const content = makeContent(150 * KiB, 4);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const run = await runCli(["-q", "--checksum", sri("sha256", makeContent(10, 5)), "-o", "f.bin", server.url()], { cwd: dir });
    expect(run.code).toBe(5);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: checksum mismatch for .*: sha256 is [0-9a-f]{64}, expected [0-9a-f]{64}; the partial file was removed$/)]);
    expect(existsSync(join(dir, "f.bin"))).toBe(false);
  });
});

describe("an output reported up to date is verified against a checksum (issue 22, item 1)", () => {
  it("the CLI: a re-run with a wrong --checksum exits 5 and leaves the file as it is; the right one reports the digest, with no request", async () => {
    const content = makeContent(120 * KiB, 6);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    expect((await runMain(["-q", "-o", "f.bin", server.url("/f.bin")], { cwd: dir })).code).toBe(0);
    const before = await stat(join(dir, "f.bin"));
    const requests = server.requests.length;

    const wrong = await runMain(["-q", "--json", "--checksum", `sha256=${"0".repeat(64)}`, "-o", "f.bin", server.url("/f.bin")], { cwd: dir });
    expect(wrong.code).toBe(5);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ status: "failed", checksum: { algorithm: "sha256", hex: sha256(content) }, error: { code: "ERR_CHECKSUM" } });
    expect(lines(wrong.stderr)).toEqual([
      `rangeget: checksum mismatch for ${server.url("/f.bin")}: sha256 is ${sha256(content)}, expected ${"0".repeat(64)}; ${join(dir, "f.bin")} is reported up to date but does not match; it was left as it is (--force fetches it again)`,
    ]);
    const after = await stat(join(dir, "f.bin"));
    expect(after.mtimeMs).toBe(before.mtimeMs);
    expect(sha256(await readFile(join(dir, "f.bin")))).toBe(sha256(content));

    const right = await runMain(["-q", "--json", "--checksum", sri("sha512", content), "-o", "f.bin", server.url("/f.bin")], { cwd: dir });
    expect(right.code).toBe(0);
    expect(JSON.parse(right.stdout)).toMatchObject({ status: "up-to-date", checksum: { algorithm: "sha512", hex: hexOf("sha512", content) } });
    expect(server.requests.length).toBe(requests);
  });

  it("the CLI: without -o, a file finished under the URL's name is verified too", async () => {
    const content = makeContent(50 * KiB, 7);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    expect((await runMain(["-q", server.url("/named.bin")], { cwd: dir })).code).toBe(0);
    const run = await runMain(["-q", "--checksum", `md5=${"1".repeat(32)}`, server.url("/named.bin")], { cwd: dir });
    expect(run.code).toBe(5);
    expect(run.stderr).toContain("is reported up to date but does not match; it was left as it is");
    expect(sha256(await readFile(join(dir, "named.bin")))).toBe(sha256(content));
  });

  it("the CLI: --if-changed answered 304 is verified too", async () => {
    const content = makeContent(80 * KiB, 8);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    // The first download is only the setup: in process.
    await download(server.url(), quick({ output: join(dir, "f.bin") }));
    const wrong = await runMain(["-q", "--if-changed", "--checksum", `sha1=${"0".repeat(40)}`, "-o", "f.bin", server.url()], { cwd: dir });
    expect(server.requests.at(-1)?.status).toBe(304);
    expect(wrong.code).toBe(5);
    expect(wrong.stderr).toContain(`sha1 is ${hexOf("sha1", content)}`);
    const right = await runMain(["-q", "--json", "--if-changed", "--checksum", `sha1=${hexOf("sha1", content)}`, "-o", "f.bin", server.url()], { cwd: dir });
    expect(right.code).toBe(0);
    expect(JSON.parse(right.stdout)).toMatchObject({ status: "up-to-date", checksum: { algorithm: "sha1", hex: hexOf("sha1", content) } });
  });

  it("the library resolves up-to-date with the digest, or rejects with IntegrityError and leaves the file", async () => {
    const content = makeContent(60 * KiB, 9);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await download(server.url("/l.bin"), quick({ dir }));
    const right = await download(server.url("/l.bin"), quick({ dir, checksum: `sha256=${sha256(content)}` }));
    expect(right).toMatchObject({ status: "up-to-date", checksum: { algorithm: "sha256", hex: sha256(content) } });
    await expect(download(server.url("/l.bin"), quick({ dir, checksum: { algorithm: "sha256", hex: "a".repeat(64) } }))).rejects.toThrow(IntegrityError);
    expect(sha256(await readFile(join(dir, "l.bin")))).toBe(sha256(content));
  });
});

/** A server of `content` at every path, and of `sums` at /SHA256SUMS. */
async function serverWithSums(content: Buffer, sums: (content: Buffer) => string, extra: { contentDisposition?: string } = {}) {
  const text = Buffer.from(sums(content));
  return rangeServer({ content, ...extra, onRequest: (request) => (request.path === "/SHA256SUMS" ? { body: text } : undefined) });
}

describe("--checksum-file", () => {
  it("verifies against a local sha256sum file, found by the output's name; --json carries the digest", async () => {
    const content = makeContent(200 * KiB, 10);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await writeFile(join(dir, "SHA256SUMS"), `${sha256(makeContent(10, 1))}  other.iso\n${sha256(content)} *ubuntu.iso\n`);
    const run = await runMain(["-q", "--json", "--checksum-file", "SHA256SUMS", "-o", "ubuntu.iso", server.url("/download?id=7")], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).checksum).toEqual({ algorithm: "sha256", hex: sha256(content) });
  });

  it("takes the algorithm from a BSD tag, and the entry by the URL's last segment when -o renames the file", async () => {
    const content = makeContent(100 * KiB, 11);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `SHA512 (release-1.2.tar.gz) = ${hexOf("sha512", content)}\n`);
    const run = await runMain(["-q", "--json", "--checksum-file", "SUMS", "-o", "latest.tar.gz", server.url("/files/release-1.2.tar.gz")], { cwd: dir });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).checksum).toEqual({ algorithm: "sha512", hex: hexOf("sha512", content) });
  });

  it("exits 5 when the listed digest does not match, leaving no output", async () => {
    const content = makeContent(100 * KiB, 12);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `${"0".repeat(64)}  f.bin\n`);
    const run = await runMain(["-q", "--checksum-file", "SUMS", server.url("/f.bin")], { cwd: dir });
    expect(run.code).toBe(5);
    expect(run.stderr).toContain(`sha256 is ${sha256(content)}, expected ${"0".repeat(64)}`);
    expect(existsSync(join(dir, "f.bin"))).toBe(false);
  });

  it("a name missing from the file is exit 2 before any request, naming the file and the name", async () => {
    const content = makeContent(10 * KiB, 13);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `${sha256(content)}  listed.bin\n`);
    const run = await runMain(["-q", "--checksum-file", "SUMS", "-o", "mine.bin", server.url("/unlisted.bin")], { cwd: dir });
    expect(run.code).toBe(2);
    expect(lines(run.stderr)).toEqual([
      `rangeget: checksum file SUMS has no checksum for "mine.bin" or "unlisted.bin"; name the output as the file lists it (-o), or check the file (see rangeget --help)`,
    ]);
    expect(server.requests).toEqual([]);
  });

  it("without -o, a name the server gives that the file does not list fails after the probe, before any byte is written", async () => {
    const content = makeContent(300 * KiB, 14);
    const server = await rangeServer({ content, contentDisposition: 'attachment; filename="named-by-server.bin"' });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `${sha256(content)}  something-else.bin\n`);
    const run = await runMain(["-q", "--checksum-file", "SUMS", server.url("/get")], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('has no checksum for "named-by-server.bin" or "get"');
    expect(run.stderr).toContain("(the server named the file named-by-server.bin; nothing was written)");
    expect(server.requests).toHaveLength(1);
    expect(existsSync(join(dir, "named-by-server.bin"))).toBe(false);
    expect(existsSync(join(dir, "named-by-server.bin.part"))).toBe(false);
    expect(existsSync(join(dir, "named-by-server.bin.part.lock"))).toBe(false);
  });

  it("without -o, the server's name is found in the file after the probe", async () => {
    const content = makeContent(300 * KiB, 15);
    const server = await rangeServer({ content, contentDisposition: 'attachment; filename="real-name.bin"' });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `${"0".repeat(64)}  get\n${sha256(content)}  real-name.bin\n`);
    const run = await runMain(["-q", "--json", "--checksum-file", "SUMS", server.url("/get")], { cwd: dir });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ path: join(dir, "real-name.bin"), checksum: { hex: sha256(content) } });
  });

  it("a checksum file by URL on the download's origin is fetched once for a whole -i list, with the user's headers", async () => {
    const content = makeContent(120 * KiB, 16);
    const server = await serverWithSums(content, (bytes) => ["a.bin", "b.bin", "c.bin"].map((name) => `${sha256(bytes)}  ${name}`).join("\n"));
    const dir = await tempDir();
    await writeFile(join(dir, "list.txt"), ["a.bin", "b.bin", "c.bin"].map((name) => server.url(`/${name}`)).join("\n"));
    const run = await runMain(["-q", "--json", "-H", "X-Token: t0k", "--checksum-file", server.url("/SHA256SUMS"), "-i", "list.txt"], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(lines(run.stdout).map((line) => JSON.parse(line).checksum.hex)).toEqual([sha256(content), sha256(content), sha256(content)]);
    const sumsRequests = server.requests.filter((request) => request.path === "/SHA256SUMS");
    expect(sumsRequests).toHaveLength(1);
    expect(sumsRequests[0]?.headers["x-token"]).toBe("t0k");
    // Before any download.
    expect(server.requests[0]?.path).toBe("/SHA256SUMS");
  });

  it("a checksum file on another origin gets the netrc's login for its host but not the user's -H headers", async () => {
    const content = makeContent(60 * KiB, 17);
    const files = await rangeServer({ content });
    const sums = await serverWithSums(content, (bytes) => `${sha256(bytes)}  f.bin\n`);
    const dir = await tempDir();
    await writeFile(join(dir, "netrc"), "machine 127.0.0.1 login robot password s3cret\n", { mode: 0o600 });
    const run = await runMain(["-q", "--netrc-file", "netrc", "-H", "X-Token: t0k", "--checksum-file", sums.url("/SHA256SUMS"), files.url("/f.bin")], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(sums.requests).toHaveLength(1);
    expect(sums.requests[0]?.headers["x-token"]).toBeUndefined();
    expect(sums.requests[0]?.headers.authorization).toBe(`Basic ${Buffer.from("robot:s3cret").toString("base64")}`);
    expect(files.requests[0]?.headers["x-token"]).toBe("t0k");
  });

  it("an -i line whose output the file does not list stops the run before any request, naming the name", async () => {
    const content = makeContent(20 * KiB, 18);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `${sha256(content)}  a.bin\n`);
    await writeFile(join(dir, "list.txt"), `${server.url("/a.bin")}\n${server.url("/x")} b.bin\n`);
    const run = await runMain(["-q", "--checksum-file", "SUMS", "-i", "list.txt"], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('checksum file SUMS has no checksum for "b.bin" or "x"');
    expect(server.requests).toEqual([]);
  });

  it("a checksum file that cannot be fetched is the HTTP error, exit 3, before any download", async () => {
    const content = makeContent(20 * KiB, 19);
    const server = await rangeServer({ content, onRequest: (request) => (request.path === "/SUMS" ? { status: 404 } : undefined) });
    const dir = await tempDir();
    const run = await runMain(["-q", "--checksum-file", server.url("/SUMS"), server.url("/a.bin")], { cwd: dir });
    expect(run.code).toBe(3);
    expect(server.requests.map((request) => request.path)).toEqual(["/SUMS"]);
  });

  it("--checksum and --checksum-file together are a usage error", async () => {
    const dir = await tempDir();
    const run = await runMain(["-q", "--checksum", `sha256=${"0".repeat(64)}`, "--checksum-file", "SUMS", "http://127.0.0.1:9/a"], { cwd: dir });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--checksum and --checksum-file both give the digest to verify");
  });

  it("the library: checksumFile verifies, and a wrong listed digest rejects with IntegrityError", async () => {
    const content = makeContent(80 * KiB, 20);
    const server = await serverWithSums(content, (bytes) => `${hexOf("sha1", bytes)}  good.bin\n${"0".repeat(40)}  bad.bin\n`);
    const dir = await tempDir();
    const good = await download(server.url("/good.bin"), quick({ dir, checksumFile: server.url("/SHA256SUMS") }));
    expect(good.checksum).toEqual({ algorithm: "sha1", hex: hexOf("sha1", content) });
    await expect(download(server.url("/bad.bin"), quick({ dir, checksumFile: server.url("/SHA256SUMS") }))).rejects.toThrow(IntegrityError);
    expect(existsSync(join(dir, "bad.bin"))).toBe(false);
  });
});

describe("the command line's options for checksums and the cache", () => {
  it("--help describes SRI, --checksum-file and --cache", async () => {
    const { parseArgs } = await import("../src/cli/args.js");
    const help = await parseArgs(["--help"], { columns: 200 });
    expect(help.kind).toBe("help");
    const text = (help.kind === "help" ? help.text : "").replace(/\s+/g, " ");
    expect(text).toMatch(/--checksum .*SRI sha256-\/sha384-\/sha512-<base64>/);
    expect(text).toMatch(/--checksum-file .*sha256sum\/shasum/);
    expect(text).toMatch(/--cache .*\$XDG_CACHE_HOME\/rangeget/);
  });

  it.each([
    [["--cache", "http://x.test/a"], true, ["http://x.test/a"]],
    [["--cache"], true, ["http://x.test/a"]],
    [["--cache=/c"], "/c", ["http://x.test/a"]],
    [["--cache", "/c"], "/c", ["http://x.test/a"]],
  ] as const)("reads %j as cache %j", async (flags, cache, urls) => {
    const { parseArgs } = await import("../src/cli/args.js");
    const argv = flags[0] === "--cache" && flags.length === 1 ? ["http://x.test/a", ...flags] : [...flags, ...(flags.includes("http://x.test/a") ? [] : ["http://x.test/a"])];
    const command = await parseArgs(argv, { variables: {}, homeDir: "/nonexistent" });
    expect(command.kind).toBe("download");
    if (command.kind !== "download") return;
    expect(command.config.options.cache).toBe(cache);
    expect(command.config.items.map((item) => item.url)).toEqual(urls);
  });
});

describe("--checksum-file with the streams", () => {
  it("-o - finds the entry by the URL's last segment and exits 5 on a wrong one", async () => {
    const content = makeContent(100 * KiB, 21);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `${sha256(content)}  good.bin\n${"0".repeat(64)}  bad.bin\n`);
    const good = await runMain(["-q", "--checksum-file", "SUMS", "-o", "-", server.url("/good.bin")], { cwd: dir });
    expect(good.code).toBe(0);
    expect(good.stderr).toBe("");
    const bad = await runMain(["-q", "--checksum-file", "SUMS", "-o", "-", server.url("/bad.bin")], { cwd: dir });
    expect(bad.code).toBe(5);
    expect(bad.stderr).toContain(`expected ${"0".repeat(64)}`);
  });
});

describe("checksumFile in downloadAll", () => {
  it("one file serves every item; an item's own checksum or checksum file wins", async () => {
    const { downloadAll } = await import("../src/batch.js");
    const content = makeContent(40 * KiB, 22);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    await writeFile(join(dir, "SUMS"), `${sha256(content)}  a.bin\n${"0".repeat(64)}  b.bin\n`);
    await writeFile(join(dir, "OWN"), `${sha256(content)}  b.bin\n`);
    const results = await downloadAll(
      [server.url("/a.bin"), { url: server.url("/b.bin"), checksumFile: join(dir, "OWN") }, { url: server.url("/c.bin"), checksum: `sha256=${sha256(content)}` }],
      quick({ dir, checksumFile: join(dir, "SUMS") }),
    );
    expect(results.map((result) => [result.status, result.checksum?.hex])).toEqual([
      ["downloaded", sha256(content)],
      ["downloaded", sha256(content)],
      ["downloaded", sha256(content)],
    ]);
  });
});

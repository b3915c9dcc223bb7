// Checksums end to end: the spellings and SRI of --checksum, --checksum-file (a file
// or a URL, one for a whole list), and the check of an output reported up to date,
// through the library and the built CLI against real servers on 127.0.0.1.
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

  it.each([
    ["sha-256=<hex> (aria2)", (content: Buffer) => `sha-256=${hexOf("sha256", content)}`, "sha256"],
    ["sha256:<hex>", (content: Buffer) => `sha256:${hexOf("sha256", content)}`, "sha256"],
    ["SHA256=<HEX>", (content: Buffer) => `SHA256=${hexOf("sha256", content).toUpperCase()}`, "sha256"],
    ["sha384=<hex>", (content: Buffer) => `sha384=${hexOf("sha384", content)}`, "sha384"],
    ["sha512-<base64> (SRI)", (content: Buffer) => sri("sha512", content), "sha512"],
  ])("the CLI takes --checksum %s and reports the digest in --json", async (_what, checksumOf, algorithm) => {
    const content = makeContent(150 * KiB, 3);
    const server = await rangeServer({ content });
    const dir = await tempDir();
    const run = await runCli(["-q", "--json", "--checksum", checksumOf(content), "-o", "f.bin", server.url()], { cwd: dir });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout).checksum).toEqual({ algorithm, hex: hexOf(algorithm, content) });
  });

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

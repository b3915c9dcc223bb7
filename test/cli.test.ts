// End to end: the command line against real HTTP servers on 127.0.0.1. Section 0 runs
// the built `bin/rangeget.js` as a child process (`npm test` builds first); the rest run
// its `main` in this process (run-main.ts), with the same arguments, environment and
// CliRun, so each case costs no Node start.
import { existsSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, jsonLines, lines, runCli, type CliOptions, type CliRun } from "./support/run-cli.js";
import { rangeServer } from "./support/servers.js";
import { runMain, type MainOptions } from "./support/run-main.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** runMain with this file's defaults: the test's work directory, an empty stdin, 20 s. */
function rangeget(args: string[], options: Partial<MainOptions> = {}): Promise<CliRun> {
  return runMain(args, { cwd: workDir, stdin: "", timeoutMs: 20_000, ...options });
}

/** The same defaults, for the built CLI as a child process. */
function child(args: string[], options: Partial<CliOptions> = {}): Promise<CliRun> {
  return runCli(args, { cwd: workDir, stdin: "", timeoutMs: 20_000, ...options });
}

let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await tempDir();
});

describe("0. the built command, as a child process", () => {
  it("--version prints package.json's version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    const run = await child(["--version"]);
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: `${pkg.version}\n`, stderr: "" });
  });

  it("exits 2 with one line for bad input", async () => {
    const run = await child(["-c", "0", "http://127.0.0.1:9/x.bin"]);
    expect(run.code).toBe(2);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: -c\/--connections must be a whole number from 1 to 64/)]);
  });

  it("downloads, prints --json on stdout and exits with the download's code", async () => {
    const content = makeContent(1 * MiB, 41);
    const source = await rangeServer({ content, onRequest: (request) => (request.path.startsWith("/gone") ? { status: 404 } : undefined) });
    const ok = await child(["-q", "--json", "-c", "2", "--min-split", "256K", "-o", "out.bin", source.url("/out.bin")]);
    expect(ok.code).toBe(0);
    expect(jsonLines(ok)).toEqual([expect.objectContaining({ status: "downloaded", size: content.length, bytesTransferred: content.length })]);
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
    const missing = await child(["-q", "-o", "gone.bin", source.url("/gone.bin")]);
    expect({ code: missing.code, exists: existsSync(join(workDir, "gone.bin")) }).toEqual({ code: 3, exists: false });
  });
});

describe("1. flags, --help, --version and bad input", () => {
  it("--help lists every option in groups, with examples, on stdout", async () => {
    const run = await rangeget(["--help"]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    for (const text of ["Output:", "Connections:", "Retries and time:", "Verification:", "Output format:", "Examples:", "--limit-rate", "--if-changed"]) {
      expect(run.stdout).toContain(text);
    }
  });

  it("--help into a pipe wraps at COLUMNS, as ls does", async () => {
    const run = await rangeget(["--help"], { env: { COLUMNS: "60" } });
    expect(run.code).toBe(0);
    expect(run.stdout.split("\n").filter((line) => line.length > 60)).toEqual([]);
  });

  it("--version prints package.json's version", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8")) as { version: string };
    const run = await rangeget(["--version"]);
    expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 0, stdout: `${pkg.version}\n` });
  });

  it.each<[string, (url: string) => string[], RegExp]>([
    ["an unknown flag", (url) => ["--frobnicate", url], /unknown option --frobnicate/],
    ["-c 0", (url) => ["-c", "0", url], /-c\/--connections must be a whole number from 1 to 64/],
    ["-c 65", (url) => ["-c", "65", url], /from 1 to 64/],
    ["-j 0", (url) => ["-j", "0", url], /-j\/--jobs/],
    ["--retries -1", (url) => ["--retries", "-1", url], /--retries/],
    ["--timeout 0", (url) => ["--timeout", "0", url], /--timeout/],
    ["a bad --min-split", (url) => ["--min-split", "4X", url], /--min-split/],
    ["a bad --limit-rate", (url) => ["--limit-rate", "fast", url], /--limit-rate/],
    ["-o with two URLs", (url) => ["-o", "x.bin", url, `${url}?2`], /-o\/--output names one file but 2 URLs/],
    ["a URL that is not http/https", (url) => ["ftp://127.0.0.1/file.bin", url], /not an http or https URL/],
    ["a malformed --checksum", (url) => ["--checksum", "sha256=xyz", url], /--checksum: invalid checksum/],
    ["--checksum with two URLs", (url) => ["--checksum", `md5=${"0".repeat(32)}`, url, `${url}?2`], /--checksum verifies one file/],
    ["a missing input file", (url) => ["-i", "no-such-list.txt", url], /cannot read input file no-such-list.txt: no such file/],
    ["a bad line in the input file", () => ["-i", "bad-list.txt"], /bad-list.txt line 2: "gopher:\/\/x" is not an http or https URL/],
    ["a malformed -H", (url) => ["-H", "NoColon", url], /-H\/--header "NoColon" is not "Name: value"/],
    ["a missing --ca file", (url) => ["--ca", "no-such.pem", url], /cannot read --ca file no-such.pem/],
    ["no URL at all", () => ["-q"], /no URL given/],
  ])("%s: one line on stderr, exit 2, no request", async (_name, args, message) => {
    const source = await rangeServer({ content: makeContent(1000, 1) });
    await writeFile(join(workDir, "bad-list.txt"), `${source.url()}\ngopher://x\n`);
    const run = await rangeget(args(source.url()));
    expect(run.code).toBe(2);
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.stderr).toMatch(/^rangeget: /);
    expect(run.stderr).toMatch(message);
    expect(run.stdout).toBe("");
    expect(source.requests).toHaveLength(0);
  });

  it("passes the numeric options to the engine (--min-split sizes the probe)", async () => {
    const content = makeContent(1 * MiB, 2);
    const source = await rangeServer({ content });
    const run = await rangeget(["-q", "-c", "3", "-j", "1", "--min-split", "64K", "--retries", "2", "--timeout", "5", "--limit-rate", "64M", "-o", "out.bin", source.url()]);
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
    expect(source.requests[0]?.headers.range).toBe(`bytes=0-${64 * KiB - 1}`);
  });

  it("warns on stderr about --insecure and still downloads", async () => {
    const source = await rangeServer({ content: makeContent(1000, 3) });
    const run = await rangeget(["-q", "--insecure", "-o", "out.bin", source.url()]);
    expect(run.code).toBe(0);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: warning: --insecure/)]);
  });
});

describe("2. progress on stderr, --json on stdout", () => {
  it("-q prints nothing at all", async () => {
    const source = await rangeServer({ content: makeContent(256 * KiB, 4) });
    const run = await rangeget(["-q", source.url("/quiet.bin")]);
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: "", stderr: "" });
    expect(existsSync(join(workDir, "quiet.bin"))).toBe(true);
  });

  it("without a TTY prints plain lines, not bars, and nothing on stdout", async () => {
    const source = await rangeServer({ content: makeContent(1 * MiB, 5) });
    const run = await rangeget([source.url("/plain.bin")]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe("");
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^plain\.bin: downloaded 1\.00 MiB in \d+s/)]);
    expect(run.stderr).not.toContain("\u001b[");
  });

  // A child on the real clock: in-process, on a fake clock over a held answer, the held
  // bytes did not reach the .part on Node 26 (CI), and the run was left going.
  it("without a TTY, a long download prints a progress line every 10 s", async () => {
    const source = await rangeServer({ content: makeContent(3 * MiB, 24), bytesPerSecond: 256 * KiB });
    const run = await child(["-c", "1", source.url("/slow.bin")], { timeoutMs: 25_000 });
    expect(run.code).toBe(0);
    expect(lines(run.stderr)).toEqual([
      expect.stringMatching(/^slow\.bin: \d+% \(\d\.\d\d MiB of 3\.00 MiB\), \d+ KiB\/s, 1 connection, ETA \d+s$/),
      expect.stringMatching(/^slow\.bin: downloaded 3\.00 MiB in 1[12]s/),
    ]);
  }, 30_000);

  it("--json prints one object per file with every documented field", async () => {
    const content = makeContent(512 * KiB, 6);
    const source = await rangeServer({ content });
    const run = await rangeget(["--json", "-q", "-o", "out.bin", source.url()]);
    expect(run.code).toBe(0);
    const results = jsonLines(run);
    expect(results).toHaveLength(1);
    expect(Object.keys(results[0] ?? {})).toEqual([
      "url", "path", "status", "size", "bytesTransferred", "elapsedMs", "resumed", "restartedBecauseChanged", "error", "checksum", "cache", "http",
    ]);
    expect(results[0]).toMatchObject({
      url: source.url(),
      path: join(workDir, "out.bin"),
      status: "downloaded",
      size: content.length,
      bytesTransferred: content.length,
      elapsedMs: expect.any(Number),
      resumed: false,
      restartedBecauseChanged: false,
      error: null,
      checksum: null,
      cache: null,
      http: { requests: expect.any(Number), statusCounts: { "206": expect.any(Number) }, retries: 0 },
    });
    const http = results[0]?.http as { latencyMs: Record<string, unknown> };
    expect(Object.keys(http.latencyMs)).toEqual(["p50", "p95", "p99"]);
  });
});

describe("3. --stats", () => {
  it("prints requests by status, retries and latency percentiles after the file, matching --json", async () => {
    const content = makeContent(1 * MiB, 7);
    let first = true;
    const source = await rangeServer({
      content,
      onRequest: () => {
        if (!first) return undefined;
        first = false;
        return { status: 503, retryAfter: "0" };
      },
    });
    const run = await rangeget(["--stats", "--json", "-q", "-c", "2", "--min-split", "256K", "-o", "stats.bin", source.url()]);
    expect(run.code).toBe(0);
    const [result] = jsonLines(run) as Array<{ http: { requests: number; statusCounts: Record<string, number>; retries: number } }>;
    expect(result?.http.statusCounts["503"]).toBe(1);
    expect(result?.http.retries).toBe(1);
    expect(result?.http.requests).toBe(source.requests.length);
    const stats = lines(run.stderr);
    expect(stats).toHaveLength(1);
    expect(stats[0]).toMatch(
      new RegExp(`^rangeget: stats stats\\.bin: ${source.requests.length} requests \\(206: \\d+, 503: 1\\), 1 retry, latency p50 \\d+ ms, p95 \\d+ ms, p99 \\d+ ms$`),
    );
  });
});

describe("4. output names", () => {
  it("names the file from Content-Disposition (RFC 6266 filename*), inside -d", async () => {
    const source = await rangeServer({ content: makeContent(1000, 8), contentDisposition: `attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf` });
    await mkdir(join(workDir, "downloads"));
    const run = await rangeget(["-q", "-d", "downloads", source.url("/download?id=1")]);
    expect(run.code).toBe(0);
    expect(existsSync(join(workDir, "downloads", "résumé.pdf"))).toBe(true);
  });

  it("else uses the last URL path segment, percent-decoded, inside -d", async () => {
    const source = await rangeServer({ content: makeContent(1000, 9) });
    await mkdir(join(workDir, "out"));
    const run = await rangeget(["-q", "-d", "out", source.url("/files/my%20report.txt")]);
    expect(run.code).toBe(0);
    expect(existsSync(join(workDir, "out", "my report.txt"))).toBe(true);
  });

  it("never lets Content-Disposition escape -d", async () => {
    const source = await rangeServer({ content: makeContent(1000, 10), contentDisposition: 'attachment; filename="../../escape.bin"' });
    const run = await rangeget(["-q", "--json", source.url("/x")]);
    expect(run.code).toBe(0);
    const [result] = jsonLines(run) as Array<{ path: string }>;
    expect(result?.path).toBe(join(workDir, "escape.bin"));
  });

  it("refuses an existing output with exit 6 and leaves it untouched", async () => {
    const source = await rangeServer({ content: makeContent(1000, 11) });
    await writeFile(join(workDir, "file.bin"), "precious");
    const run = await rangeget(["-q", source.url("/file.bin")]);
    expect(run.code).toBe(6);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: .*file\.bin/)]);
    expect(await readFile(join(workDir, "file.bin"), "utf8")).toBe("precious");
  });

  it("overwrites an existing output with --force", async () => {
    const content = makeContent(1000, 12);
    const source = await rangeServer({ content });
    await writeFile(join(workDir, "file.bin"), "old");
    const run = await rangeget(["-q", "-f", source.url("/file.bin")]);
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(workDir, "file.bin")))).toBe(sha256(content));
  });
});

describe("5. --if-changed", () => {
  it("answers 304 with exit 0 and up-to-date, then fetches a new version when the server has one", async () => {
    const source = await rangeServer({ content: makeContent(64 * KiB, 13) });
    expect((await rangeget(["-q", "-o", "f.bin", source.url()])).code).toBe(0);
    const before = await stat(join(workDir, "f.bin"));

    const unchanged = await rangeget(["-q", "--json", "--if-changed", "-o", "f.bin", source.url()]);
    expect(unchanged.code).toBe(0);
    expect(jsonLines(unchanged)[0]?.status).toBe("up-to-date");
    expect(source.requests.at(-1)?.status).toBe(304);
    expect((await stat(join(workDir, "f.bin"))).mtimeMs).toBe(before.mtimeMs);

    const next = makeContent(80 * KiB, 14);
    source.setContent(next);
    const changed = await rangeget(["-q", "--json", "--if-changed", "-o", "f.bin", source.url()]);
    expect(changed.code).toBe(0);
    expect(jsonLines(changed)[0]?.status).toBe("downloaded");
    expect(sha256(await readFile(join(workDir, "f.bin")))).toBe(sha256(next));
  });
});

describe("6. --checksum", () => {
  it("finishes when the digest matches, and --json reports the digest computed", async () => {
    const content = makeContent(300 * KiB, 15);
    const source = await rangeServer({ content });
    const run = await rangeget(["-q", "--json", "--checksum", `sha256=${sha256(content)}`, "-o", "ok.bin", source.url()]);
    expect(run.code).toBe(0);
    expect(existsSync(join(workDir, "ok.bin"))).toBe(true);
    expect(jsonLines(run)[0]?.checksum).toEqual({ algorithm: "sha256", hex: sha256(content) });
  });

  it("exits 5 on a mismatch, leaving no output and no .part", async () => {
    const content = makeContent(300 * KiB, 16);
    const source = await rangeServer({ content });
    const run = await rangeget(["-q", "--checksum", `sha256=${"0".repeat(64)}`, "-o", "bad.bin", source.url()]);
    expect(run.code).toBe(5);
    expect(run.stderr).toContain(`sha256 is ${sha256(content)}`);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: checksum mismatch for .*; the partial file was removed$/)]);
    expect(existsSync(join(workDir, "bad.bin"))).toBe(false);
    expect(existsSync(join(workDir, "bad.bin.part"))).toBe(false);
  });
});

describe("7. -H", () => {
  it("sends every -H header on every request to the origin", async () => {
    const source = await rangeServer({ content: makeContent(1 * MiB, 17) });
    const run = await rangeget(["-q", "-c", "4", "--min-split", "128K", "-H", "X-Token: abc", "-H", "Authorization: Bearer s3cret", "-o", "h.bin", source.url()]);
    expect(run.code).toBe(0);
    expect(source.requests.length).toBeGreaterThan(1);
    for (const request of source.requests) {
      expect(request.headers["x-token"]).toBe("abc");
      expect(request.headers.authorization).toBe("Bearer s3cret");
    }
  });

  it("does not carry Authorization or Cookie across a redirect to another origin", async () => {
    const content = makeContent(64 * KiB, 18);
    const target = await rangeServer({ content });
    const origin = await rangeServer({ content, onRequest: () => ({ redirectTo: target.url(), status: 302 }) });
    const run = await rangeget(["-q", "-H", "Authorization: Bearer s3cret", "-H", "Cookie: session=1", "-o", "r.bin", origin.url()]);
    expect(run.code).toBe(0);
    expect(origin.requests[0]?.headers.authorization).toBe("Bearer s3cret");
    for (const request of target.requests) {
      expect(request.headers.authorization).toBeUndefined();
      expect(request.headers.cookie).toBeUndefined();
    }
  });
});

describe("8. -i and -j", () => {
  it("downloads every line, reports each failure, and exits with the first failure's code in input order", async () => {
    const good = makeContent(200 * KiB, 19);
    const source = await rangeServer({
      content: good,
      onRequest: (request) => (request.path.startsWith("/missing") ? { status: 404 } : undefined),
    });
    await writeFile(join(workDir, "exists.bin"), "keep me");
    await writeFile(
      join(workDir, "list.txt"),
      [
        "# three files and two failures",
        `${source.url("/a.bin")}`,
        `${source.url("/missing.bin")} missing.bin`,
        "",
        `${source.url("/c.bin")} exists.bin`,
        `${source.url("/d.bin")} renamed-d.bin`,
      ].join("\n"),
    );
    const run = await rangeget(["-q", "--json", "-j", "2", "-i", "list.txt"]);
    expect(run.code).toBe(3);
    const results = jsonLines(run) as Array<{ url: string; status: string; error: { code: string; message: string; exitCode: number } | null }>;
    expect(results.map((result) => result.url).sort()).toEqual([source.url("/a.bin"), source.url("/c.bin"), source.url("/d.bin"), source.url("/missing.bin")].sort());
    const byUrl = new Map(results.map((result) => [result.url, result]));
    expect(byUrl.get(source.url("/a.bin"))?.status).toBe("downloaded");
    expect(byUrl.get(source.url("/d.bin"))?.status).toBe("downloaded");
    expect(byUrl.get(source.url("/missing.bin"))?.status).toBe("failed");
    expect(byUrl.get(source.url("/c.bin"))?.status).toBe("failed");
    expect(byUrl.get(source.url("/missing.bin"))?.error).toEqual({ code: "ERR_HTTP_STATUS", message: expect.stringContaining("HTTP 404"), exitCode: 3 });
    expect(byUrl.get(source.url("/c.bin"))?.error).toEqual({ code: "ERR_EXISTS", message: expect.stringContaining("exists.bin"), exitCode: 6 });
    expect(sha256(await readFile(join(workDir, "a.bin")))).toBe(sha256(good));
    expect(sha256(await readFile(join(workDir, "renamed-d.bin")))).toBe(sha256(good));
    const errors = lines(run.stderr);
    expect(errors).toHaveLength(2);
    expect(errors.some((line) => line.includes(source.url("/missing.bin")))).toBe(true);
    expect(errors.some((line) => line.includes("exists.bin"))).toBe(true);
  });

  it("reads the list from stdin with -i -", async () => {
    const source = await rangeServer({ content: makeContent(10 * KiB, 20) });
    const run = await rangeget(["-q", "-i", "-"], { stdin: `${source.url("/one.bin")}\n${source.url("/two.bin")} second.bin\n` });
    expect(run.code).toBe(0);
    expect(existsSync(join(workDir, "one.bin")) && existsSync(join(workDir, "second.bin"))).toBe(true);
  });
});

describe("9. --limit-rate", () => {
  it("caps the total rate across connections and files", async () => {
    const content = makeContent(1536 * KiB, 21);
    const source = await rangeServer({ content });
    const run = await rangeget(["-q", "--json", "-c", "4", "--min-split", "128K", "--limit-rate", "1M", source.url("/r1.bin"), source.url("/r2.bin")]);
    expect(run.code).toBe(0);
    const results = jsonLines(run) as Array<{ elapsedMs: number }>;
    const slowest = Math.max(...results.map((result) => result.elapsedMs));
    // 3 MiB at 1 MiB/s; the bucket starts empty and holds 1/8 s of rate.
    expect(slowest).toBeGreaterThan(2700);
    expect(slowest).toBeLessThan(3 * 1000 * 1.3);
  });
});

// End to end: the built `bin/rangeget.js` as a child process against real HTTP servers
// on 127.0.0.1. `npm test` builds first (pretest); the tests read dist/, not src/.
import { existsSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, lines, startCli, type CliRun } from "./support/run-cli.js";
import { rangeServer } from "./support/servers.js";
import { checkpointedBytes } from "./support/checkpoint.js";
import { tarArchive } from "./support/tar-archive.js";
import { tempDir } from "./support/temp.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;

interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  stdin?: string;
  timeoutMs?: number;
  /** Called once the child runs: send it signals. */
  whileRunning?: (child: { kill(signal: NodeJS.Signals): void; stderr: () => string }) => Promise<void>;
}

/**
 * runCli with this file's defaults: the test's work directory, an empty stdin, 20 s; with
 * `whileRunning`, the child is killed if the callback fails so the test ends at once.
 */
async function rangeget(args: string[], options: RunOptions = {}): Promise<CliRun> {
  const running = startCli(args, { cwd: options.cwd ?? workDir, env: options.env, stdin: options.stdin ?? "", timeoutMs: options.timeoutMs ?? 20_000 });
  try {
    await options.whileRunning?.({ kill: (signal) => running.child.kill(signal), stderr: running.stderr });
  } catch (error) {
    running.child.kill("SIGKILL");
    throw error;
  }
  return running.done;
}

function jsonLines(run: CliRun): Array<Record<string, unknown>> {
  return lines(run.stdout).map((line) => JSON.parse(line) as Record<string, unknown>);
}

let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await tempDir();
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

  it("without a TTY, a long download prints a progress line every 10 s", async () => {
    const source = await rangeServer({ content: makeContent(3 * MiB, 24), bytesPerSecond: 256 * KiB });
    const run = await rangeget(["-c", "1", source.url("/slow.bin")], { timeoutMs: 25_000 });
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

// The state-saving signals reach a download the server holds mid-answer (holdAfterBytes),
// after a checkpoint with bytes: it cannot have finished before them, however fast or
// loaded the machine. The two "nothing was saved" cases keep a throttle: their message
// depends on the stream having begun in the client, which a burst up to a hold does not
// promise when the server has sent it.
describe("10. SIGINT and SIGTERM", () => {
  async function interruptedRun(signal: NodeJS.Signals, times = 1) {
    const content = makeContent(4 * MiB, 22);
    const source = await rangeServer({ content, holdAfterBytes: 256 * KiB });
    const output = join(workDir, "big.bin");
    const run = await rangeget(["-c", "4", "--min-split", "256K", "-o", output, source.url()], {
      whileRunning: async (child) => {
        await until(async () => (await checkpointedBytes(output)) > 0 && source.bytesServed() > 512 * KiB, "a checkpoint with bytes");
        for (let i = 0; i < times; i++) child.kill(signal);
      },
    });
    return { run, source, content, output };
  }

  it("SIGINT saves state, says how to resume, exits 130; the same command resumes", async () => {
    const { run, source, content, output } = await interruptedRun("SIGINT");
    expect(run.code).toBe(130);
    expect(run.stderr).toContain("rangeget: interrupted: state saved; run the same command again to resume\n");
    expect(existsSync(output)).toBe(false);
    expect(existsSync(`${output}.part.json`)).toBe(true);

    source.release();
    const servedBefore = source.bytesServed();
    const again = await rangeget(["-q", "--json", "-c", "4", "--min-split", "256K", "-o", output, source.url()]);
    expect(again.code).toBe(0);
    expect(jsonLines(again)[0]).toMatchObject({ status: "resumed", resumed: true });
    expect(source.bytesServed() - servedBefore).toBeLessThan(content.length);
    expect(sha256(await readFile(output))).toBe(sha256(content));
  });

  it("SIGTERM exits 143 with state saved", async () => {
    const { run, output } = await interruptedRun("SIGTERM");
    expect(run.code).toBe(143);
    expect(run.stderr).toContain("interrupted: state saved");
    expect(existsSync(`${output}.part.json`)).toBe(true);
  });

  it("a server without ranges interrupted says nothing was saved, not \"state saved\"", async () => {
    const content = makeContent(4 * MiB, 221);
    const source = await rangeServer({ content, bytesPerSecond: 256 * KiB, acceptRanges: false });
    const output = join(workDir, "plain.bin");
    const run = await rangeget(["-o", output, source.url()], {
      whileRunning: async (child) => {
        await until(() => source.bytesServed() > 256 * KiB, "bytes of the plain stream");
        child.kill("SIGINT");
      },
    });
    expect(run.code).toBe(130);
    expect(run.stderr).not.toContain("state saved");
    expect(run.stderr).toContain("rangeget: interrupted; nothing was saved (this server does not serve ranges): run again to start over\n");
    expect(existsSync(`${output}.part.json`) || existsSync(`${output}.part`)).toBe(false);
  });

  it("--extract interrupted says nothing was saved", async () => {
    const archive = tarArchive([{ path: "big.bin", body: makeContent(4 * MiB, 222) }]);
    const source = await rangeServer({ content: archive, bytesPerSecond: 256 * KiB });
    const run = await rangeget(["-c", "2", "--min-split", "256K", "--extract", join(workDir, "out"), source.url("/a.tar")], {
      whileRunning: async (child) => {
        await until(() => source.bytesServed() > 256 * KiB, "bytes of the archive");
        child.kill("SIGINT");
      },
    });
    expect(run.code).toBe(130);
    expect(run.stderr).not.toContain("state saved");
    expect(run.stderr).toContain("rangeget: interrupted; nothing was saved (an archive unpacked while it arrives cannot be resumed): run again to start over\n");
  });

  it("a restart after a remote change, interrupted, says what is left: state only where a manifest is", async () => {
    const first = makeContent(4 * MiB, 223);
    const source = await rangeServer({ content: first, bytesPerSecond: 256 * KiB });
    const output = join(workDir, "changing.bin");
    const args = ["-c", "2", "--min-split", "256K", "-o", output, source.url()];
    const interruptAfter = (bytes: number) => async (child: { kill(signal: NodeJS.Signals): void }) => {
      const served = source.bytesServed();
      await until(() => existsSync(`${output}.part.json`) || source.bytesServed() - served > bytes, "some bytes");
      await until(() => source.bytesServed() - served > bytes, "more bytes");
      child.kill("SIGINT");
    };
    expect((await rangeget(args, { whileRunning: interruptAfter(512 * KiB) })).code).toBe(130);
    expect(existsSync(`${output}.part.json`)).toBe(true);
    source.setContent(makeContent(4 * MiB, 224));
    const run = await rangeget(args, { whileRunning: interruptAfter(1 * MiB) });
    expect(run.code).toBe(130);
    expect(run.stderr).toContain("changed on the server");
    // The restart keeps state only if it checkpoints; whatever it did, the message says what is on disk.
    if (existsSync(`${output}.part.json`)) {
      expect(run.stderr).toContain("rangeget: interrupted: state saved; run the same command again to resume\n");
    } else {
      expect(run.stderr).not.toContain("state saved");
      expect(run.stderr).toMatch(/rangeget: interrupted; nothing was saved \(.+\): run again to start over\n/);
    }
  });

  it("a second Ctrl-C exits 130 at once", async () => {
    const { run, output } = await interruptedRun("SIGINT", 2);
    expect(run.code).toBe(130);
    expect(existsSync(output)).toBe(false);
  });
});

describe("11. errors are one line", () => {
  it("an HTTP error shows the reason phrase, not the server's HTML page; S3's XML <Message> is quoted", async () => {
    const page = '<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN">\n<html><head><title>404 Not Found</title></head><body><h1>404 Not Found</h1></body></html>\n';
    const source = await rangeServer({
      content: makeContent(1000, 231),
      onRequest: (request) =>
        request.path === "/page.bin"
          ? { status: 404, text: page, headers: { "content-type": "text/html" } }
          : { status: 403, text: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>', headers: { "content-type": "application/xml" } },
    });
    const run = await rangeget(["-q", source.url("/page.bin")]);
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([`rangeget: HTTP 404 from ${source.url("/page.bin")} (Not Found): check the URL`]);
    const s3 = await rangeget(["-q", source.url("/signed.bin")]);
    expect(s3.code).toBe(3);
    expect(lines(s3.stderr)).toEqual([expect.stringContaining(`HTTP 403 from ${source.url("/signed.bin")} (Forbidden: AccessDenied: Request has expired): check the credentials`)]);
  });

  it("an HTTP error names the status and URL on one line, exit 3, no stack", async () => {
    const source = await rangeServer({ content: makeContent(1000, 23), onRequest: () => ({ status: 404 }) });
    const run = await rangeget(["-q", source.url("/gone.bin")]);
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: .*404.*\/gone\.bin/)]);
  });

  it("a network error exits 4", async () => {
    const closed = await rangeServer({ content: Buffer.alloc(0) });
    const url = closed.url("/x.bin");
    // Closed here so nothing listens on its port; servers.ts closing it again after the test is harmless.
    await closed.close();
    const run = await rangeget(["-q", "--retries", "1", "--timeout", "2", url]);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toHaveLength(1);
  });

  it("DEBUG=rangeget adds the stack trace", async () => {
    const run = await rangeget(["-c", "0", "http://127.0.0.1:9/"], { env: { DEBUG: "rangeget" } });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^rangeget: -c\/--connections/);
    expect(run.stderr).toMatch(/\n {4}at /);
  });
});

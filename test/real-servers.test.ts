/**
 * Server behaviours that people have reported to other downloaders, each through a real
 * socket: honest answers that are not the textbook one must be accepted, unprovable ones
 * refused, and no short file ever published. Numbered as the inputs of the issue
 * "Real servers". The command line runs its `main` in this process (run-main.ts); what
 * only a process has (a file-size limit, a SIGINT) runs the built bin as a child.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { gzipSync } from "node:zlib";
import { beforeAll, describe, expect, it, onTestFinished, vi } from "vitest";
import { download, downloadAll, downloadStream, type DownloadEvent, type DownloadOptions, type DownloadResult } from "../src/index.js";
import type { InternalOptions } from "../src/options.js";
import { BAR, ByteCounter, expectWithinBar } from "./support/bytes-bar.js";
import { makeContent, sha256 } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import type { RangeServer } from "./support/range-server.js";
import { rangeServer, rawServer } from "./support/servers.js";
import { rangeAnswer, sendAndClose, type RawRequest, type RawServer } from "./support/raw-server.js";
import { assertBuilt, lines, runCli, startCli } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { tarArchive } from "./support/tar-archive.js";
import { tempDir } from "./support/temp.js";
import { until } from "./support/until.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Range servers on 127.0.0.1, each closed after its test. */
const serve = rangeServer;

beforeAll(() => assertBuilt());

function quick(extra: DownloadOptions = {}): DownloadOptions {
  return { timeout: 5, retries: 3, onWarning: () => {}, ...extra };
}

/**
 * For a download whose backoffs are what it waits for: a fake clock flowing 10× as fast
 * as real time (stopped after the test), and quick()'s 5 s answer deadline kept in real
 * seconds.
 */
function flowing(): Pick<InternalOptions, "clock" | "timeout"> {
  const clock = new FakeClock();
  onTestFinished(clock.flow({ speed: 10 }));
  return { clock, timeout: 50 };
}

/** Resolves with the result or the error: a test may accept either, but judges both. */
function settle(pending: Promise<DownloadResult>): Promise<DownloadResult | Error> {
  return pending.then(
    (result) => result,
    (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
  );
}

describe("1. a range answered 200 with the slice's Content-Length and Content-Range", () => {
  const sliceAs200 = (request: { range: unknown }) => (request.range ? { partialStatus: 200 } : undefined);

  it("never publishes the slice as the file: the whole file, or no output at all", async () => {
    const content = makeContent(12 * MiB, 1);
    const server = await serve({ content, onRequest: sliceAs200 });
    const output = join(await tempDir(), "a.bin");
    const outcome = await settle(download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, output })));
    if (outcome instanceof Error) {
      expect(existsSync(output)).toBe(false);
    } else {
      expect(outcome.size).toBe(content.length);
      expect(sha256(await readFile(output))).toBe(sha256(content));
    }
    expectWithinBar(server.bytesServed(), content.length, BAR.ignoresRanges);
  });

  it("through the CLI with --json: exit 0 with the 12 MiB file, or a failure and no a.bin", async () => {
    const content = makeContent(12 * MiB, 1);
    const server = await serve({ content, onRequest: sliceAs200 });
    const cwd = await tempDir();
    const run = await runMain(["-q", "--json", "-c", "4", "--min-split", "1M", "--timeout", "5", "-o", "a.bin", server.url()], {
      cwd,
      timeoutMs: 30_000,
    });
    const [line] = lines(run.stdout);
    const result = JSON.parse(line ?? "{}") as { status?: string; size?: number };
    if (run.code === 0) {
      expect(result).toMatchObject({ status: "downloaded", size: content.length });
      expect(sha256(await readFile(join(cwd, "a.bin")))).toBe(sha256(content));
    } else {
      expect(result.status).toBe("failed");
      expect(existsSync(join(cwd, "a.bin"))).toBe(false);
    }
  });
});

describe("2. a server that caps every 206 at 2 MiB, with an honest Content-Range", () => {
  it("keeps what each answer sent and asks again for the rest", async () => {
    const content = makeContent(12 * MiB, 2);
    const server = await serve({ content, onRequest: () => ({ capBytes: 2 * MiB }) });
    const output = join(await tempDir(), "capped.bin");
    const result = await download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, output }));
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(result.size).toBe(content.length);
    // Nothing was fetched twice: what was kept of each answer is never asked for again.
    expect(server.bytesServed()).toBeLessThan(content.length * 1.2);
    expect(server.requests.every((request) => request.status === 206)).toBe(true);
  });
});

describe("3. a CDN where every 4th ranged request gets the whole file (200) with the same validators", () => {
  it("is not a change: finishes with restartedBecauseChanged false", async () => {
    const content = makeContent(12 * MiB, 3);
    let ranged = 0;
    const server = await serve({
      content,
      onRequest: (request) => (request.range && ++ranged % 4 === 0 ? { ignoreRange: true } : undefined),
    });
    const output = join(await tempDir(), "cdn.bin");
    const result = await download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, output }));
    expect(result.restartedBecauseChanged).toBe(false);
    expect(result.status).toBe("downloaded");
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(server.requests.some((request) => request.status === 200)).toBe(true);
    expectWithinBar(server.bytesServed(), content.length, BAR.ignoresRanges);
  });
});

describe("4. ranged answers say bytes a-b/* while a plain GET gives a normal 200", () => {
  it("downloads the file as one plain stream", async () => {
    const content = makeContent(3 * MiB, 4);
    const server = await serve({ content, onRequest: (request) => (request.range ? { unknownTotal: true } : undefined) });
    const output = join(await tempDir(), "unknown-size.bin");
    const result = await download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, output }));
    expect(result.size).toBe(content.length);
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(server.requests.at(-1)?.range).toBeUndefined();
    expectWithinBar(server.bytesServed(), content.length, BAR.ignoresRanges);
  });
});

describe("5. a server that answers 403 to any request carrying Range", () => {
  it("falls back to one plain stream", async () => {
    const content = makeContent(3 * MiB, 5);
    const server = await serve({ content, onRequest: (request) => (request.range ? { status: 403 } : undefined) });
    const output = join(await tempDir(), "no-ranges.bin");
    const result = await download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, output }));
    expect(result.size).toBe(content.length);
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(server.requests.filter((request) => request.range !== undefined)).toHaveLength(1);
    expectWithinBar(server.bytesServed(), content.length, BAR.ignoresRanges);
  });
});

describe("6. a host that serves at most 2 requests at once and answers 503 (no Retry-After) to the rest", () => {
  it("finishes with the connections the host allows, from -c 8", async () => {
    const content = makeContent(4 * MiB, 6);
    // Every answer holds after 128 KiB until the run has learned from the refusals that
    // the host allows 2: its two are delivering all along, however fast the machine.
    const server = await serve({ content, maxConcurrent: 2, holdAfterBytes: 128 * KiB });
    const output = join(await tempDir(), "limited.bin");
    const retries: string[] = [];
    const onEvent = (event: DownloadEvent) => void (event.event === "retry" && retries.push(event.reason));
    // The refused connections back off before they ask again: on a clock that flows 10× as
    // fast. No hedge: it would judge the two connections' rates on that clock, so how many
    // bytes it asked twice would follow the machine's load (1.51 × once, on a busy run);
    // the bar is for what learning the limit costs. The hedge has tail.test and no-hedge.test.
    const pending = download(server.url(), { ...quick({ connections: 8, minSplit: 256 * KiB, output, onEvent, noHedge: true }), ...flowing() });
    await until(() => retries.some((reason) => reason.endsWith("(the host allows 2 connections at once)")), "the host's limit of 2 learned");
    server.release();
    const result = await pending;
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(result.status).toBe("downloaded");
    expectWithinBar(server.bytesServed(), content.length);
  });

  it("shares the learned limit with the next file of a batch: the second file never opens more than the host allows", async () => {
    const first = makeContent(2 * MiB, 61);
    // The first file's answers hold after 128 KiB until the run has learned from the
    // refusals that the host allows 2; the second file's are not held.
    const server = await serve({ content: first, maxConcurrent: 2, holdAfterBytes: 128 * KiB });
    const dir = await tempDir();
    const retries: string[] = [];
    const pending = downloadAll([server.url("/a.bin"), server.url("/b.bin")], {
      ...quick({ connections: 8, minSplit: 256 * KiB, dir }),
      ...flowing(),
      jobs: 1,
      onEvent: (_index, event) => void (event.event === "retry" && retries.push(event.reason)),
    });
    await until(() => retries.some((reason) => reason.endsWith("(the host allows 2 connections at once)")), "the host's limit of 2 learned");
    server.release();
    const results = await pending;
    expect(results.map((result) => result.status)).toEqual(["downloaded", "downloaded"]);
    // Without the shared limit the second file would start with 8 connections again. (The
    // server's own count of the first file's requests may lag its last byte, so a 503 at
    // the hand-over says nothing about the client.)
    expect(results[0]!.http.peakConnections).toBeGreaterThan(2);
    expect(results[1]!.http.peakConnections).toBeLessThanOrEqual(2);
  });

  it("honours --max-connections-per-host: never more than that many at once, and --json reports the peak connections used", async () => {
    const content = makeContent(4 * MiB, 62);
    // Every answer holds after 128 KiB until two are held at once: the cap is reached.
    const server = await serve({ content, maxConcurrent: 2, holdAfterBytes: 128 * KiB });
    const cwd = await tempDir();
    const pending = runMain(
      ["-q", "--json", "-c", "8", "--min-split", "256K", "--max-connections-per-host", "2", "-o", "capped.bin", server.url()],
      { cwd, timeoutMs: 30_000 },
    );
    await until(() => server.held() === 2, "two answers held at once");
    server.release();
    const run = await pending;
    expect(run.code).toBe(0);
    // The client never holds more than 2 (without the cap it would open 8). The server may
    // still refuse one request now and then: a connection the client has just closed is
    // counted there until its close arrives, as nginx's limit_conn would count it too.
    const result = JSON.parse(lines(run.stdout)[0] ?? "{}") as { http?: { peakConnections?: number } };
    expect(result.http?.peakConnections).toBe(2);
  });
});

describe("7. a signed URL that expires: the user's URL redirects to one valid for 600 ms, then 403 with an XML body", () => {
  it("goes back to the user's URL for a fresh redirect and finishes, keeping the bytes already written", async () => {
    const content = makeContent(12 * MiB, 7);
    const validForMs = 600;
    let userUrlAsked = 0;
    const server = await serve({
      content,
      bytesPerSecond: 1 * MiB,
      onRequest: (request) => {
        if (request.path === "/file.bin") {
          userUrlAsked++;
          return { redirectTo: `/signed/file.bin?expires=${Date.now() + validForMs}` };
        }
        const expires = Number(new URL(request.path, "http://x").searchParams.get("expires"));
        if (Date.now() > expires) {
          return {
            status: 403,
            headers: { "content-type": "application/xml" },
            text: '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>',
          };
        }
        // Each answer breaks after 1 MiB (a second at this rate), so every connection
        // must ask again, by then past the expiry.
        return { dropAfterBytes: 1 * MiB };
      },
    });
    const output = join(await tempDir(), "signed.bin");
    const result = await download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, retries: 5, output }));
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(result.status).toBe("downloaded");
    expect(userUrlAsked).toBeGreaterThan(1);
    expect(server.bytesServed()).toBeLessThan(content.length * 1.3);
  });
});

describe("8. credentials in the URL: http://user:p%40ss@host/file against a server that wants Basic auth", () => {
  const expected = `Basic ${Buffer.from("user:p@ss").toString("base64")}`;
  const basicAuth = (request: { headers: Record<string, unknown> }) =>
    request.headers["authorization"] === expected
      ? undefined
      : { status: 401, headers: { "www-authenticate": 'Basic realm="files"' } };

  function withCredentials(url: string, password = "p%40ss"): string {
    return url.replace("http://", `http://user:${password}@`);
  }

  it("sends Basic auth on every request to that origin and downloads the file", async () => {
    const content = makeContent(2 * MiB, 8);
    const server = await serve({ content, onRequest: basicAuth });
    const output = join(await tempDir(), "private.bin");
    const result = await download(withCredentials(server.url()), quick({ connections: 4, minSplit: 256 * KiB, output }));
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(server.requests.every((request) => request.headers["authorization"] === expected)).toBe(true);
    expect(JSON.stringify(result)).not.toContain("p%40ss");
  });

  it("sends the credentials to that origin only, never across a redirect to another", async () => {
    const content = makeContent(256 * KiB, 81);
    const elsewhere = await serve({ content });
    const front = await serve({ content, onRequest: () => ({ redirectTo: elsewhere.url() }) });
    await download(withCredentials(front.url()), quick({ output: join(await tempDir(), "moved.bin") }));
    expect(front.requests[0]?.headers["authorization"]).toBe(expected);
    expect(elsewhere.requests.length).toBeGreaterThan(0);
    expect(elsewhere.requests.every((request) => request.headers["authorization"] === undefined)).toBe(true);
  });

  it("a wrong password: exit 3, and the error line shows user:***@, never the password", async () => {
    const server = await serve({ content: makeContent(64 * KiB, 82), onRequest: basicAuth });
    const cwd = await tempDir();
    const run = await runMain(["--json", "-o", "x.bin", withCredentials(server.url(), "wr%40ng")], { cwd });
    expect(run.code).toBe(3);
    expect(server.requests[0]?.headers["authorization"]).toBe(`Basic ${Buffer.from("user:wr@ng").toString("base64")}`);
    for (const text of [run.stderr, run.stdout]) {
      expect(text).not.toContain("wr%40ng");
      expect(text).not.toContain("wr@ng");
    }
    expect(run.stderr).toContain("user:***@");
  });

  it("no password in --json, stderr or the manifest of an interrupted download", async () => {
    const content = makeContent(1 * MiB, 83);
    const server = await serve({
      content,
      // The probe's bytes arrive, the next answer breaks, and the retry is refused.
      onRequest: (request) =>
        basicAuth(request) ?? (request.index === 1 ? { dropAfterBytes: 100 * KiB } : request.index >= 2 ? { status: 403 } : undefined),
    });
    const cwd = await tempDir();
    const run = await runMain(
      ["--json", "-c", "1", "--min-split", "128K", "-o", "part.bin", withCredentials(server.url())],
      { cwd },
    );
    expect(run.code).toBe(3);
    const manifest = await readFile(join(cwd, "part.bin.part.json"), "utf8");
    for (const text of [run.stderr, run.stdout, manifest]) {
      expect(text).not.toContain("p%40ss");
      expect(text).not.toContain("p@ss");
    }
    expect((JSON.parse(manifest) as { url: string }).url).toBe(server.url());
  });
});

describe("8b. credentials in a mirror's URL: http://bob:s3cret@mirror/file.bin", () => {
  const bob = `Basic ${Buffer.from("bob:s3cret").toString("base64")}`;
  const wantsBob = (request: { headers: Record<string, unknown> }) =>
    request.headers["authorization"] === bob ? undefined : { status: 401, headers: { "www-authenticate": 'Basic realm="mirror"' } };
  const withBob = (url: string, password = "s3cret") => url.replace("http://", `http://bob:${password}@`);

  it("sends the mirror's Basic auth to the mirror's origin only, never to the URL's, and fetches from both", async () => {
    const content = makeContent(2 * MiB, 84);
    // The URL's copy holds its answers after 128 KiB until the mirror has answered and taken ranges.
    const primary = await serve({ content, holdAfterBytes: 128 * KiB });
    const mirror = await serve({ content, onRequest: wantsBob });
    const pending = download([primary.url(), withBob(mirror.url())], quick({ connections: 4, minSplit: 256 * KiB, dir: await tempDir() }));
    await until(() => mirror.requests.filter((request) => request.status === 206).length > 1, "the mirror serving ranges");
    primary.release();
    const result = await pending;
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(mirror.requests.length).toBeGreaterThan(1);
    expect(mirror.requests.every((request) => request.headers["authorization"] === bob)).toBe(true);
    expect(primary.requests.every((request) => request.headers["authorization"] === undefined)).toBe(true);
  });

  it("a refused mirror's warning shows bob:***@, never the password, and so does the default warning on stderr", async () => {
    const content = makeContent(256 * KiB, 85);
    // A mirror's probe still unanswered when the URL's bytes are in is dropped unreported:
    // each download's copy of the URL holds its answer after 64 KiB until the refusal is told.
    const heldCopy = () => serve({ content, holdAfterBytes: 64 * KiB });
    const primary = await heldCopy();
    const mirror = await serve({ content, onRequest: wantsBob });
    const warnings: string[] = [];
    const first = download([primary.url(), withBob(mirror.url(), "wr0ng")], quick({ dir: await tempDir(), onWarning: (message) => warnings.push(message) }));
    await until(() => warnings.length > 0, "the mirror's refusal as a warning");
    primary.release();
    await first;
    expect(warnings).toEqual([expect.stringContaining(`ignoring mirror ${withBob(mirror.url(), "***")}`)]);
    expect(warnings.join("\n")).not.toContain("wr0ng");

    const again = await heldCopy();
    const written: string[] = [];
    const write = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const { onWarning: _quiet, ...options } = quick({ dir: await tempDir() });
      const second = download([again.url(), withBob(mirror.url(), "wr0ng")], options);
      await until(() => written.join("").includes("ignoring mirror"), "the mirror's refusal on stderr");
      again.release();
      await second;
    } finally {
      write.mockRestore();
    }
    const stderr = written.join("");
    expect(stderr).toContain("bob:***@");
    expect(stderr).not.toContain("wr0ng");
  });
});

describe("9. a file larger than the process allows (RLIMIT_FSIZE)", () => {
  // More runs under a real limit, one hit mid-download, are in local-faults.test.ts.
  const fileSizeLimit = (bytes: number): string[] =>
    spawnSync("prlimit", ["--version"], { stdio: "ignore" }).status === 0
      ? ["prlimit", `--fsize=${bytes}`, "--"]
      : ["bash", "-c", `trap '' XFSZ; ulimit -f ${Math.floor(bytes / 1024)}; exec "$@"`, "bash"];

  it("is refused up front with its own error and remedy (exit 6, ERR_FILE_TOO_LARGE), never 'no space left'", async () => {
    const content = makeContent(2 * MiB, 9);
    const server = await serve({ content });
    const cwd = await tempDir();
    // A child: the limit is prlimit's, on a process.
    const run = await runCli(["--json", "-c", "2", "--min-split", "256K", "-o", "big.bin", server.url()], {
      cwd,
      wrapper: fileSizeLimit(512 * KiB),
    });
    expect(run.code).toBe(6);
    expect(JSON.parse(lines(run.stdout)[0] ?? "{}")).toMatchObject({ status: "failed", error: { code: "ERR_FILE_TOO_LARGE" } });
    expect(run.stderr).toMatch(/RLIMIT_FSIZE, ulimit -f/);
    expect(run.stderr).not.toMatch(/no space|free some space/);
    expect(existsSync(join(cwd, "big.bin.part"))).toBe(false);
    expect(server.requests).toHaveLength(1);
  });
});

describe("10. running the same command again", () => {
  it("rangeget -i list.txt interrupted, then run again: finished files are up-to-date with no request, the rest finish, exit 0", async () => {
    const small = makeContent(64 * KiB, 101);
    const large = makeContent(4 * MiB, 102);
    const server = await serve({
      content: small,
      // The large file's answers hold after 512 KiB until the first run is interrupted: it is under way, never done.
      onRequest: (request) => (request.path === "/slow.bin" ? { body: large, holdAfterBytes: 512 * KiB } : undefined),
    });
    const cwd = await tempDir();
    await writeFile(join(cwd, "list.txt"), `${server.url("/a.bin")}\n${server.url("/b.bin")} named-b.bin\n${server.url("/slow.bin")}\n`);
    const args = ["-q", "--json", "-j", "3", "-c", "2", "--min-split", "256K", "-i", "list.txt"];
    // The first run is a child, to be sent SIGINT; the second runs in this process.
    const first = startCli(args, { cwd, timeoutMs: 30_000 });
    // Interrupted once the two small files are done and the large one is under way.
    await until(() => existsSync(join(cwd, "a.bin")) && existsSync(join(cwd, "named-b.bin")) && server.held() > 0, "the small files done and the large one held");
    first.child.kill("SIGINT");
    const interrupted = await first.done;
    expect(interrupted.code).toBe(130);
    expect(existsSync(join(cwd, "slow.bin"))).toBe(false);
    server.release();

    const before = server.requests.length;
    const again = await runMain(args, { cwd, timeoutMs: 30_000 });
    expect(again.code, again.stderr).toBe(0);
    const results = lines(again.stdout).map((line) => JSON.parse(line) as { url: string; status: string });
    const statusOf = (path: string) => results.find((result) => result.url === server.url(path))?.status;
    expect(statusOf("/a.bin")).toBe("up-to-date");
    expect(statusOf("/b.bin")).toBe("up-to-date");
    expect(["resumed", "downloaded"]).toContain(statusOf("/slow.bin"));
    const asked = server.requests.slice(before).map((request) => request.path);
    expect(asked.every((path) => path === "/slow.bin")).toBe(true);
    expect(sha256(await readFile(join(cwd, "slow.bin")))).toBe(sha256(large));
    expect(sha256(await readFile(join(cwd, "named-b.bin")))).toBe(sha256(small));
  });

  it("an existing file rangeget did not finish from this URL is still refused (exit 6)", async () => {
    const server = await serve({ content: makeContent(64 * KiB, 103) });
    const cwd = await tempDir();
    await writeFile(join(cwd, "mine.bin"), "not from that server");
    const run = await runMain(["-q", "-o", "mine.bin", server.url()], { cwd });
    expect(run.code).toBe(6);
    expect(run.stderr).toContain("--continue");
    expect(await readFile(join(cwd, "mine.bin"), "utf8")).toBe("not from that server");
    expect(server.requests).toHaveLength(0);
  });

  it("--continue adopts a partial file another tool left: only the rest is fetched, with a warning that nothing vouches for the prefix", async () => {
    const content = makeContent(3 * MiB, 104);
    const server = await serve({ content });
    const cwd = await tempDir();
    const prefix = 1 * MiB + 123;
    await writeFile(join(cwd, "big.iso"), content.subarray(0, prefix));
    const run = await runMain(["--json", "-c", "2", "--min-split", "512K", "--continue", "-o", "big.iso", server.url()], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(lines(run.stdout)[0] ?? "{}")).toMatchObject({ status: "resumed", resumed: true, size: content.length });
    expect(run.stderr).toMatch(/nothing vouches/);
    expect(sha256(await readFile(join(cwd, "big.iso")))).toBe(sha256(content));
    // Every request asked past the prefix: none of its bytes was fetched again.
    expect(server.requests.every((request) => (request.range?.start ?? 0) >= prefix)).toBe(true);
    expectWithinBar(server.bytesServed(), content.length - prefix);
  });

  it("--continue on a file as long as the remote one finishes it with one request past the end (416)", async () => {
    const content = makeContent(256 * KiB, 105);
    const server = await serve({ content });
    const output = join(await tempDir(), "whole.bin");
    await writeFile(output, content);
    const result = await download(server.url(), quick({ continue: true, output }));
    expect(result).toMatchObject({ status: "resumed", size: content.length });
    expect(server.requests.map((request) => request.status)).toEqual([416]);
  });

  it.each([
    ["with -o", true],
    ["named by the URL", false],
  ])("--continue on a file longer than the remote one (%s) leaves it alone and fails", async (_how, withOutput) => {
    const content = makeContent(256 * KiB, 106);
    const server = await serve({ content });
    const dir = await tempDir();
    const output = join(dir, basename(new URL(server.url()).pathname));
    const longer = Buffer.concat([content, Buffer.from("tail")]);
    await writeFile(output, longer);
    const where = withOutput ? { output } : { dir };
    const warnings: string[] = [];
    const failure = await download(server.url(), { ...quick({ continue: true, ...where }), onWarning: (message) => warnings.push(message) }).catch(
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({ exitCode: 5, message: expect.stringMatching(/is not the start of .*; it was left as it is/) });
    // Only the refusal: no "taking the bytes as the start" before it.
    expect(warnings).toEqual([]);
    expect(sha256(await readFile(output))).toBe(sha256(longer));
    expect(await readdir(dir)).toEqual([basename(output)]);
  });
});

describe("headers are bytes: raw UTF-8 in Location and Content-Disposition", () => {
  /** `text` as the bytes a server writes: UTF-8, sent byte for byte. */
  const utf8Bytes = (text: string) => Buffer.from(text, "utf8").toString("latin1");

  it("reads a raw UTF-8 file name as UTF-8, and one that is not valid UTF-8 as Latin-1", async () => {
    const content = makeContent(32 * KiB, 110);
    for (const [header, expected] of [
      [`Content-Disposition: attachment; filename="${utf8Bytes("résumé €.pdf")}"`, "résumé €.pdf"],
      ['Content-Disposition: attachment; filename="caf\xe9.txt"', "café.txt"],
    ] as const) {
      const raw = await rawServer((socket, request) => sendAndClose(socket, rangeAnswer(content, request!, [header])));
      const dir = await tempDir();
      const result = await download(raw.url(), quick({ dir, connections: 1 }));
      expect(result.path).toBe(join(dir, expected));
      expect(sha256(await readFile(result.path))).toBe(sha256(content));
    }
  });

  it("follows a Location with raw UTF-8 to the percent-encoded path", async () => {
    const content = makeContent(32 * KiB, 111);
    const raw = await rawServer((socket, request) => {
      if (request!.path === "/file.bin") {
        sendAndClose(socket, `HTTP/1.1 302 Found\r\nLocation: ${utf8Bytes("/été/file.bin")}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      } else {
        sendAndClose(socket, rangeAnswer(content, request!));
      }
    });
    const result = await download(raw.url(), quick({ dir: await tempDir(), connections: 1 }));
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(raw.requests.map((request) => request.path)).toContain("/%C3%A9t%C3%A9/file.bin");
  });
});

// Round 2 (issue "Real servers, round 2"): lenient where the answer is honest. Each
// scenario also holds the bytes bar (test/support/bytes-bar.ts).

describe("r2-1. a .tar.gz served with Content-Encoding: gzip although identity was asked (Apache AddEncoding x-gzip .gz)", () => {
  /** A gzipped tar of one 3 MiB file of random bytes (so the .tar.gz is about as large). */
  const archive = gzipSync(tarArchive([{ path: "data/", type: "directory" }, { path: "data/payload.bin", body: makeContent(3 * MiB, 120) }]));
  const labelledGzip = () => ({ headers: { "content-encoding": "gzip", "content-type": "application/x-tar" } });

  it("at -c 4 saves the stored bytes verbatim: exit 0 and the sha256 of the .tar.gz", async () => {
    const server = await serve({ content: archive, onRequest: labelledGzip });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "512K", "-o", "data.tar.gz", server.url("/data.tar.gz")], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "data.tar.gz")))).toBe(sha256(archive));
    expect(server.requests.filter((request) => request.status === 206).length).toBeGreaterThan(1);
    expectWithinBar(server.bytesServed(), archive.length);
  });

  it("--extract of it unpacks the archive (the gzip layer is found by its magic bytes)", async () => {
    const server = await serve({ content: archive, onRequest: labelledGzip });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "512K", "--extract", "out", server.url("/data.tar.gz")], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "out", "data", "payload.bin")))).toBe(sha256(makeContent(3 * MiB, 120)));
    expectWithinBar(server.bytesServed(), archive.length);
  });
});

/** An answer a raw server writes: status text, header lines, body (Content-Length is added). */
interface Reply {
  status: string;
  headers: string[];
  body: Buffer;
}

/** The range asked for, its end cut to the file (`bytes=a-b` or `bytes=a-`), or undefined for none. */
function askedRange(request: RawRequest, size: number): { start: number; end: number; askedEnd: number } | undefined {
  const match = /^bytes=(\d+)-(\d*)$/.exec(request.headers["range"] ?? "");
  if (!match) return undefined;
  const start = Number(match[1]);
  const askedEnd = match[2] === "" ? size - 1 : Number(match[2]);
  return { start, end: Math.min(askedEnd, size - 1), askedEnd };
}

/** The textbook answer: 206 of a satisfiable range, 416 past the end, 200 without Range. */
function textbook(content: Buffer, request: RawRequest): Reply {
  const range = askedRange(request, content.length);
  const headers = ['ETag: "raw-r2"', "Accept-Ranges: bytes", "Content-Type: application/octet-stream"];
  if (range === undefined) return { status: "200 OK", headers, body: content };
  if (range.start >= content.length) {
    return { status: "416 Range Not Satisfiable", headers: [...headers, `Content-Range: bytes */${content.length}`], body: Buffer.alloc(0) };
  }
  return {
    status: "206 Partial Content",
    headers: [...headers, `Content-Range: bytes ${range.start}-${range.end}/${content.length}`],
    body: content.subarray(range.start, range.end + 1),
  };
}

/**
 * A raw server of `content` that answers each request with `reply` (default: the
 * textbook one) in `protocol` (HTTP/1.0 closes after each answer; HTTP/1.1 says
 * `Connection: close`), `before` written ahead of the final answer (interim answers),
 * every byte counted for the bar.
 */
async function rawFile(
  content: Buffer,
  options: { protocol?: "HTTP/1.0" | "HTTP/1.1"; before?: string; reply?: (request: RawRequest) => Reply; bytesPerSecond?: number } = {},
): Promise<{ server: RawServer; sent: ByteCounter }> {
  const sent = new ByteCounter();
  const protocol = options.protocol ?? "HTTP/1.1";
  const server = await rawServer((socket, request) => {
    const { status, headers, body } = (options.reply ?? ((asked: RawRequest) => textbook(content, asked)))(request!);
    const lines = [...headers, `Content-Length: ${body.length}`, ...(protocol === "HTTP/1.1" ? ["Connection: close"] : [])];
    if (options.before !== undefined) sent.write(socket, options.before);
    const answer = Buffer.concat([Buffer.from(`${protocol} ${status}\r\n${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]);
    if (options.bytesPerSecond === undefined) sent.end(socket, answer);
    else void sent.endPaced(socket, answer, options.bytesPerSecond);
  });
  return { server, sent };
}

describe("r2-2. an HTTP/1.0 range server that closes after each answer (Python's RangeHTTPServer)", () => {
  // The other shapes of closing servers are in closing-servers.test.ts.
  it("-c 4 through a slow sink: exit 0, exact bytes, several ranges", async () => {
    const content = makeContent(3 * MiB + 5, 121);
    const { server, sent } = await rawFile(content, { protocol: "HTTP/1.0" });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "512K", "--limit-rate", "48M", "-o", "out.bin", server.url()], { cwd });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    expect(server.requests.length).toBeGreaterThan(2);
    expectWithinBar(sent.total, content.length);
  });
});

describe("r2-4. Content-Range: bytes=a-b/N, the request's '=' copied into the answer (aria2 #509, swift3 #38)", () => {
  it("is read as bytes a-b/N: -c 4 exit 0, exact bytes, every range a 206", async () => {
    const content = makeContent(3 * MiB, 124);
    const { server, sent } = await rawFile(content, {
      reply: (request) => {
        const reply = textbook(content, request);
        return { ...reply, headers: reply.headers.map((line) => line.replace(/^Content-Range: bytes /, "Content-Range: bytes=")) };
      },
    });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "512K", "-o", "out.bin", server.url()], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    expect(server.requests.every((request) => request.headers["range"] !== undefined)).toBe(true);
    expectWithinBar(sent.total, content.length);
  });
});

describe("r2-5. a multipart/byteranges answer to a single-range request (HbbTV-Testsuite #16, jetty #3916)", () => {
  /** Every ranged request gets a 206 multipart/byteranges of its one part; a plain GET the whole file. */
  const multipart = (content: Buffer) => (request: RawRequest): Reply => {
    const range = askedRange(request, content.length);
    if (range === undefined) return textbook(content, request);
    const part = Buffer.concat([
      Buffer.from(`--SEPARATES\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${range.start}-${range.end}/${content.length}\r\n\r\n`),
      content.subarray(range.start, range.end + 1),
      Buffer.from("\r\n--SEPARATES--\r\n"),
    ]);
    return { status: "206 Partial Content", headers: ['ETag: "raw-r2"', "Content-Type: multipart/byteranges; boundary=SEPARATES"], body: part };
  };

  it("is taken as 'ranges not usable': one plain stream, exit 0, exact bytes, never a failure", async () => {
    const content = makeContent(3 * MiB, 125);
    const { server, sent } = await rawFile(content, { reply: multipart(content) });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "512K", "-o", "out.bin", server.url()], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    expect(server.requests.map((request) => request.headers["range"] !== undefined)).toEqual([true, false]);
    expectWithinBar(sent.total, content.length, BAR.ignoresRanges);
  });

  it("when only the workers' ranges get multipart answers (the probe's was a plain 206), the transfer gives way to one plain stream", async () => {
    const content = makeContent(3 * MiB, 127);
    let ranged = 0;
    const reply = (request: RawRequest): Reply =>
      askedRange(request, content.length) !== undefined && ranged++ === 0 ? textbook(content, request) : multipart(content)(request);
    // Paced, so that an answer refused at its headers costs what was sent of it, not the whole of it.
    const { server, sent } = await rawFile(content, { reply, bytesPerSecond: 16 * MiB });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "512K", "-o", "out.bin", server.url()], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    expect(server.requests.at(-1)?.headers["range"]).toBeUndefined();
    expectWithinBar(sent.total, content.length, BAR.ignoresRanges);
  });

  it("a stream (downloadStream) takes one plain stream too", async () => {
    const content = makeContent(3 * MiB, 126);
    const { server, sent } = await rawFile(content, { reply: multipart(content) });
    const { body, done } = downloadStream(server.url(), quick({ connections: 4, minSplit: 512 * KiB }));
    const chunks: Buffer[] = [];
    const [, result] = await Promise.all([(async () => { for await (const chunk of body) chunks.push(chunk as Buffer); })(), done]);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
    expect(result.size).toBe(content.length);
    expectWithinBar(sent.total, content.length, BAR.ignoresRanges);
  });

  it("a stream whose workers' ranges get multipart answers (the probe's was a plain 206) gives way to one plain stream that really runs", async () => {
    const content = makeContent(3 * MiB, 128);
    let ranged = 0;
    const reply = (request: RawRequest): Reply =>
      askedRange(request, content.length) !== undefined && ranged++ === 0 ? textbook(content, request) : multipart(content)(request);
    const { server, sent } = await rawFile(content, { reply, bytesPerSecond: 16 * MiB });
    const { body, done } = downloadStream(server.url(), quick({ connections: 4, minSplit: 512 * KiB }));
    const chunks: Buffer[] = [];
    const [, result] = await Promise.all([(async () => { for await (const chunk of body) chunks.push(chunk as Buffer); })(), done]);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
    expect(result.size).toBe(content.length);
    expect(server.requests.at(-1)?.headers["range"]).toBeUndefined();
    expectWithinBar(sent.total, content.length, BAR.ignoresRanges);
  });
});

describe("r2-9. a 200 to a ranged request that carries the Content-Range of a slice and the slice's body (modelscope_hub #50)", () => {
  it("one plain stream, as aria2c finishes it: exit 0, the right sha256, at most 2 × the file asked", async () => {
    const content = makeContent(6 * MiB, 129);
    const server = await serve({ content, onRequest: (request) => (request.range ? { partialStatus: 200 } : undefined) });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "1M", "-o", "slice.bin", server.url()], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "slice.bin")))).toBe(sha256(content));
    expect(server.requests.at(-1)?.range).toBeUndefined();
    expectWithinBar(server.bytesServed(), content.length, BAR.ignoresRanges);
  });
});

describe("r2-6. a file smaller than --min-split from a server that answers 416 bytes */N to any range ending past the end (old aiohttp, aiohttp #1588)", () => {
  /** 416 to any range whose end is at or past the size, as old aiohttp did; the textbook answer otherwise. */
  const strictEnd = (content: Buffer) => (request: RawRequest): Reply => {
    const range = askedRange(request, content.length);
    if (range !== undefined && range.askedEnd >= content.length) {
      return { status: "416 Range Not Satisfiable", headers: [`Content-Range: bytes */${content.length}`], body: Buffer.alloc(0) };
    }
    return textbook(content, request);
  };

  it("the probe's 416 proves the size: it asks again inside it, exit 0, exact bytes", async () => {
    const content = makeContent(100_000, 126);
    const { server, sent } = await rawFile(content, { reply: strictEnd(content) });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-o", "small.bin", server.url()], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "small.bin")))).toBe(sha256(content));
    expect(server.requests.map((request) => request.headers["range"])).toEqual([`bytes=0-${4 * MiB - 1}`, "bytes=0-99999"]);
    expectWithinBar(sent.total, content.length);
  });

  it("-o - (the stream's probe) does the same", async () => {
    const content = makeContent(100_000, 127);
    const { server } = await rawFile(content, { reply: strictEnd(content) });
    const { body, done } = downloadStream(server.url(), quick());
    const chunks: Buffer[] = [];
    const [, result] = await Promise.all([(async () => { for await (const chunk of body) chunks.push(chunk as Buffer); })(), done]);
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
    expect(result.size).toBe(content.length);
  });
});

describe("r2-11. the advice of a probe fault", () => {
  it("says what would help, never -c 1 (every run sends the same probe)", async () => {
    const server = await serve({ content: makeContent(64 * KiB, 131), onRequest: () => ({ contentRange: "bytes 200-299/1000" }) });
    const cwd = await tempDir();
    const run = await runMain(["-q", "--retries", "1", "-c", "1", "-o", "x.bin", server.url()], { cwd });
    expect(run.code).toBe(5);
    expect(run.stderr).toMatch(/every run starts with it; try again later .* or another URL of the file/);
    expect(run.stderr).not.toMatch(/-c 1/);
  });
});

describe("r2-10. --extract of a hostile archive: a hard link to an absolute path, a setuid member", () => {
  it("skips the link with one warning line naming it (as bsdtar), restores no s bits even as root, names no temp path: exit 0", async () => {
    const cwd = await tempDir();
    const canary = join(cwd, "canary");
    await writeFile(canary, "untouched");
    const archive = tarArchive([
      { path: "hard", type: "hardlink", linkpath: canary },
      { path: "hard", body: "overwritten" },
      { path: "tool", body: "#!/bin/sh\n", mode: 0o4755 },
    ]);
    const server = await serve({ content: archive });
    const run = await runMain(["-q", "--extract", "out", server.url("/hostile.tar")], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(lines(run.stderr)).toEqual([`rangeget: warning: --extract: skipped hard: a hard link to the absolute path ${canary}`]);
    expect(run.stderr).not.toMatch(/\.out\.extract-/);
    expect(await readFile(canary, "utf8")).toBe("untouched");
    expect(await readFile(join(cwd, "out", "hard"), "utf8")).toBe("overwritten");
    expect((await stat(join(cwd, "out", "tool"))).mode & 0o6777).toBe(0o755 & ~process.umask());
  });
});

describe("r2-interim. interim answers (100, 102, 103) before the final one, never asked for (RFC 9110 15.2)", () => {
  it.each([
    ["103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </hint.css>; rel=preload\r\n\r\n"],
    ["102 Processing", "HTTP/1.1 102 Processing\r\n\r\n"],
    ["102 and 103 in a row", "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"],
    ["all three in a row, 100 first", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"],
    ["100 after 103", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.0 100 Continue\r\n\r\n"],
  ])("%s before every answer, the probe's and each range's, is skipped: -c 4 exit 0, exact bytes", async (_name, before) => {
    const content = makeContent(2 * MiB + 3, 130);
    const { server, sent } = await rawFile(content, { before });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "256K", "-o", "out.bin", server.url()], { cwd });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    // The probe and several ranges each met the interim answer.
    expect(server.requests.filter((request) => request.headers["range"] !== undefined).length).toBeGreaterThan(2);
    expectWithinBar(sent.total, content.length);
  });

  // undici 8.13 alone destroys the socket on a 100 it did not ask for ('bad response',
  // lib/dispatcher/client-h1.js onHeadersComplete): src/interim-answers.ts drops it.
  it("100 Continue (unasked) before every answer is skipped: -c 4 exit 0, exact bytes", async () => {
    const content = makeContent(2 * MiB + 3, 131);
    const { server, sent } = await rawFile(content, { before: "HTTP/1.1 100 Continue\r\n\r\n" });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "256K", "-o", "out.bin", server.url()], { cwd });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    expectWithinBar(sent.total, content.length);
  });
});

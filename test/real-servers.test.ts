/**
 * Server behaviours that people have reported to other downloaders, each through a real
 * socket: honest answers that are not the textbook one must be accepted, unprovable ones
 * refused, and no short file ever published. Numbered as the inputs of the issue
 * "Real servers".
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { download, downloadAll, type DownloadOptions, type DownloadResult } from "../src/index.js";
import { makeContent, sha256 } from "./support/content.js";
import type { RangeServer } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { rangeAnswer, sendAndClose, startRawServer, type RawServer } from "./support/raw-server.js";
import { assertBuilt, lines, runCli, startCli } from "./support/run-cli.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;
const MiB = 1024 * KiB;
/** Range servers on 127.0.0.1, each closed after its test. */
const serve = rangeServer;

beforeAll(() => assertBuilt());

function quick(extra: DownloadOptions = {}): DownloadOptions {
  return { timeout: 5, retries: 3, onWarning: () => {}, ...extra };
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
  });

  it("through the CLI with --json: exit 0 with the 12 MiB file, or a failure and no a.bin", async () => {
    const content = makeContent(12 * MiB, 1);
    const server = await serve({ content, onRequest: sliceAs200 });
    const cwd = await tempDir();
    const run = await runCli(["-q", "--json", "-c", "4", "--min-split", "1M", "--timeout", "5", "-o", "a.bin", server.url()], {
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
  });
});

describe("6. a host that serves at most 2 requests at once and answers 503 (no Retry-After) to the rest", () => {
  it("finishes with the connections the host allows, from -c 8", async () => {
    const content = makeContent(4 * MiB, 6);
    const server = await serve({ content, maxConcurrent: 2, bytesPerSecond: 1 * MiB });
    const output = join(await tempDir(), "limited.bin");
    const result = await download(server.url(), quick({ connections: 8, minSplit: 256 * KiB, output }));
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(result.status).toBe("downloaded");
  });

  it("shares the learned limit with the next file of a batch: the second file never opens more than the host allows", async () => {
    const first = makeContent(2 * MiB, 61);
    const server = await serve({ content: first, maxConcurrent: 2, bytesPerSecond: 2 * MiB });
    const dir = await tempDir();
    const results = await downloadAll([server.url("/a.bin"), server.url("/b.bin")], {
      ...quick({ connections: 8, minSplit: 256 * KiB, dir }),
      jobs: 1,
    });
    expect(results.map((result) => result.status)).toEqual(["downloaded", "downloaded"]);
    // Without the shared limit the second file would start with 8 connections again. (The
    // server's own count of the first file's requests may lag its last byte, so a 503 at
    // the hand-over says nothing about the client.)
    expect(results[0]!.http.peakConnections).toBeGreaterThan(2);
    expect(results[1]!.http.peakConnections).toBeLessThanOrEqual(2);
  });

  it("honours --max-connections-per-host: never more than that many at once, and --json reports the peak connections used", async () => {
    const content = makeContent(4 * MiB, 62);
    const server = await serve({ content, maxConcurrent: 2, bytesPerSecond: 2 * MiB });
    const cwd = await tempDir();
    const run = await runCli(
      ["-q", "--json", "-c", "8", "--min-split", "256K", "--max-connections-per-host", "2", "-o", "capped.bin", server.url()],
      { cwd, timeoutMs: 30_000 },
    );
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
    const run = await runCli(["--json", "-o", "x.bin", withCredentials(server.url(), "wr%40ng")], { cwd });
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
    const run = await runCli(
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
    // The URL's copy is slow enough that the mirror answers and takes ranges.
    const primary = await serve({ content, bytesPerSecond: 2 * MiB });
    const mirror = await serve({ content, onRequest: wantsBob });
    const result = await download([primary.url(), withBob(mirror.url())], quick({ connections: 4, minSplit: 256 * KiB, dir: await tempDir() }));
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(mirror.requests.length).toBeGreaterThan(1);
    expect(mirror.requests.every((request) => request.headers["authorization"] === bob)).toBe(true);
    expect(primary.requests.every((request) => request.headers["authorization"] === undefined)).toBe(true);
  });

  it("a refused mirror's warning shows bob:***@, never the password, and so does the default warning on stderr", async () => {
    const content = makeContent(256 * KiB, 85);
    const primary = await serve({ content, bytesPerSecond: 1 * MiB });
    const mirror = await serve({ content, onRequest: wantsBob });
    const warnings: string[] = [];
    await download([primary.url(), withBob(mirror.url(), "wr0ng")], quick({ dir: await tempDir(), onWarning: (message) => warnings.push(message) }));
    expect(warnings).toEqual([expect.stringContaining(`ignoring mirror ${withBob(mirror.url(), "***")}`)]);
    expect(warnings.join("\n")).not.toContain("wr0ng");

    const written: string[] = [];
    const write = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
      written.push(String(chunk));
      return true;
    });
    try {
      const { onWarning: _quiet, ...options } = quick({ dir: await tempDir() });
      await download([primary.url(), withBob(mirror.url(), "wr0ng")], options);
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
      onRequest: (request) => (request.path === "/slow.bin" ? { body: large, bytesPerSecond: 1 * MiB } : undefined),
    });
    const cwd = await tempDir();
    await writeFile(join(cwd, "list.txt"), `${server.url("/a.bin")}\n${server.url("/b.bin")} named-b.bin\n${server.url("/slow.bin")}\n`);
    const args = ["-q", "--json", "-j", "3", "-c", "2", "--min-split", "256K", "-i", "list.txt"];
    const first = startCli(args, { cwd, timeoutMs: 30_000 });
    // Interrupted once the two small files are done and the large one is under way.
    for (let waited = 0; waited < 200 && !(existsSync(join(cwd, "a.bin")) && existsSync(join(cwd, "named-b.bin"))); waited++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    first.child.kill("SIGINT");
    const interrupted = await first.done;
    expect(interrupted.code).toBe(130);
    expect(existsSync(join(cwd, "slow.bin"))).toBe(false);

    const before = server.requests.length;
    const again = await runCli(args, { cwd, timeoutMs: 30_000 });
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
    const run = await runCli(["-q", "-o", "mine.bin", server.url()], { cwd });
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
    const run = await runCli(["--json", "-c", "2", "--min-split", "512K", "--continue", "-o", "big.iso", server.url()], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(lines(run.stdout)[0] ?? "{}")).toMatchObject({ status: "resumed", resumed: true, size: content.length });
    expect(run.stderr).toMatch(/nothing vouches/);
    expect(sha256(await readFile(join(cwd, "big.iso")))).toBe(sha256(content));
    // Every request asked past the prefix: none of its bytes was fetched again.
    expect(server.requests.every((request) => (request.range?.start ?? 0) >= prefix)).toBe(true);
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
  const raws: RawServer[] = [];
  afterEach(async () => {
    await Promise.all(raws.splice(0).map((server) => server.close()));
  });

  /** `text` as the bytes a server writes: UTF-8, sent byte for byte. */
  const utf8Bytes = (text: string) => Buffer.from(text, "utf8").toString("latin1");

  it("reads a raw UTF-8 file name as UTF-8, and one that is not valid UTF-8 as Latin-1", async () => {
    const content = makeContent(32 * KiB, 110);
    for (const [header, expected] of [
      [`Content-Disposition: attachment; filename="${utf8Bytes("résumé €.pdf")}"`, "résumé €.pdf"],
      ['Content-Disposition: attachment; filename="caf\xe9.txt"', "café.txt"],
    ] as const) {
      const raw = await startRawServer((socket, request) => sendAndClose(socket, rangeAnswer(content, request!, [header])));
      raws.push(raw);
      const dir = await tempDir();
      const result = await download(raw.url(), quick({ dir, connections: 1 }));
      expect(result.path).toBe(join(dir, expected));
      expect(sha256(await readFile(result.path))).toBe(sha256(content));
    }
  });

  it("follows a Location with raw UTF-8 to the percent-encoded path", async () => {
    const content = makeContent(32 * KiB, 111);
    const raw = await startRawServer((socket, request) => {
      if (request!.path === "/file.bin") {
        sendAndClose(socket, `HTTP/1.1 302 Found\r\nLocation: ${utf8Bytes("/été/file.bin")}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      } else {
        sendAndClose(socket, rangeAnswer(content, request!));
      }
    });
    raws.push(raw);
    const result = await download(raw.url(), quick({ dir: await tempDir(), connections: 1 }));
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    expect(raw.requests.map((request) => request.path)).toContain("/%C3%A9t%C3%A9/file.bin");
  });
});

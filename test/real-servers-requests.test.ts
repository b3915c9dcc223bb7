/**
 * Server behaviours that the request path and the job must survive, each through a real
 * socket (issue "Real servers, round 2", items 3, 7 and 8; issue "Everyday use", items 3
 * and 6): redirects on a worker's range, validators that prove useless, a signed URL
 * that keeps expiring, Apache in the first second after a change, a file that changes
 * under a partial download. Beside real-servers.test.ts, which holds the answers the
 * verdict judges. The command line runs its `main` in this process (run-main.ts), but for
 * one case that runs the built bin as a child.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { download, type DownloadOptions } from "../src/index.js";
import { makeContent, sha256 } from "./support/content.js";
import { defaultEtag, type RangeServer } from "./support/range-server.js";
import { rangeServer } from "./support/servers.js";
import { assertBuilt, runCli } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { tempDir } from "./support/temp.js";

const MiB = 1024 * 1024;

beforeAll(() => assertBuilt());

function quick(extra: DownloadOptions = {}): DownloadOptions {
  return { timeout: 5, retries: 3, onWarning: () => {}, ...extra };
}

/**
 * Every byte the server sent, over the file's size: the bar is 1.5 (2 where the server
 * ignores ranges). Servers that answer with whole files are throttled (8 MiB/s a response) in
 * these tests: an answer cut at its headers then costs what a real link would have
 * carried meanwhile, not the megabytes an unthrottled loopback socket buffers at once.
 */
function servedRatio(server: RangeServer, size: number): number {
  return server.bytesServed() / size;
}

describe("a CDN that sends every ranged request to a node with a 302 of its own", () => {
  it("follows the redirect on every worker's range as on the probe: exit 0, the right bytes, each range asked of a node", async () => {
    const content = makeContent(12 * MiB, 301);
    const server = await rangeServer({
      content,
      onRequest: (request) =>
        request.path === "/file.bin" && request.index > 0 ? { redirectTo: `/node/${request.index}/file.bin`, status: 302 } : undefined,
    });
    const cwd = await tempDir();
    // A child: the built command's own request path, redirects and all, once in this file.
    const run = await runCli(["-q", "--json", "-c", "4", "--min-split", "1M", "--timeout", "5", "-o", "out.bin", server.url("/file.bin")], {
      cwd,
      timeoutMs: 30_000,
    });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    const atNodes = server.requests.filter((request) => request.path.startsWith("/node/"));
    expect(atNodes.length).toBeGreaterThanOrEqual(3);
    // The node is asked for the range, with the validator: the redirect changes where, not what.
    for (const request of atNodes) {
      expect(request.range).toBeDefined();
      expect(request.headers["if-range"]).toBe(defaultEtag(content));
      expect(request.status).toBe(206);
    }
    expect(servedRatio(server, content.length)).toBeLessThanOrEqual(1.5);
  });
});

describe("a CDN that answers 200 with the whole file whenever If-Range carries an ETag (aria2-next #43)", () => {
  const wholeForEtagIfRange = (request: { headers: Record<string, string | string[] | undefined> }) => {
    const ifRange = request.headers["if-range"];
    return typeof ifRange === "string" && ifRange.startsWith('"') ? { ignoreRange: true } : undefined;
  };

  it("stops sending the ETag once it proved useless, takes Last-Modified instead, and finishes within 1.5 × the file", async () => {
    const content = makeContent(16 * MiB, 43);
    const server = await rangeServer({ content, bytesPerSecond: 8 * MiB, onRequest: wholeForEtagIfRange });
    const output = join(await tempDir(), "cdn.bin");
    const result = await download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, output }));
    expect(result.restartedBecauseChanged).toBe(false);
    expect(sha256(await readFile(output))).toBe(sha256(content));
    const whole = server.requests.filter((request) => request.status === 200);
    // Each connection may meet the useless validator once before the source learns it; never again after.
    expect(whole.length).toBeLessThanOrEqual(4);
    const last = server.requests.at(-1)!;
    expect(last.headers["if-range"]).toBe(new Date("2024-01-02T03:04:05Z").toUTCString());
    expect(servedRatio(server, content.length)).toBeLessThanOrEqual(1.5);
  });
});

describe("a server that answers the probe's range and then ignores every range (200, the same version)", () => {
  it("falls back to one plain stream that really runs, and stays within 2 × the file", async () => {
    const content = makeContent(12 * MiB, 44);
    const server = await rangeServer({
      content,
      bytesPerSecond: 8 * MiB,
      onRequest: (request) => (request.index > 0 ? { ignoreRange: true } : undefined),
    });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "1M", "--timeout", "5", "--retries", "2", "-o", "out.bin", server.url()], {
      cwd,
      timeoutMs: 30_000,
    });
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(cwd, "out.bin")))).toBe(sha256(content));
    // The last request is the plain stream: no Range, the whole file.
    const last = server.requests.at(-1)!;
    expect(last.range).toBeUndefined();
    expect(last.bytesSent).toBe(content.length);
    expect(servedRatio(server, content.length)).toBeLessThanOrEqual(2);
  });
});

describe("a signed URL whose fresh redirect keeps failing (503) after it expired", () => {
  it("asks the user's URL again at most once per attempt of the range: --retries 3 means at most 4 GETs of it", async () => {
    const content = makeContent(4 * MiB, 88);
    let redirects = 0;
    const server = await rangeServer({
      content,
      onRequest: (request) => {
        if (request.path === "/file.bin") return { redirectTo: `/signed/${++redirects}`, status: 302 };
        // The first signed URL serves the probe only; every later one is busy.
        if (request.path === "/signed/1") return request.index <= 1 ? undefined : { status: 403, text: "Request has expired" };
        return { status: 503, text: "busy" };
      },
    });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "1", "--min-split", "1M", "--timeout", "5", "--retries", "3", "-o", "out.bin", server.url("/file.bin")], {
      cwd,
      timeoutMs: 60_000,
    });
    expect(run.code).toBe(3);
    const toUserUrl = server.requests.filter((request) => request.path === "/file.bin");
    expect(toUserUrl.length).toBeGreaterThanOrEqual(2);
    expect(toUserUrl.length).toBeLessThanOrEqual(4);
  });
});

describe("Apache in the first second after a change: a weak ETag, a Last-Modified as new as the Date, and a date in If-Range refused", () => {
  it("sends no If-Range it cannot trust, checks the validators of every answer instead, and finishes: exit 0, no whole-file answer", async () => {
    const content = makeContent(8 * MiB, 86);
    const modified = new Date(Math.floor(Date.now() / 1000) * 1000);
    const server = await rangeServer({
      content,
      etag: 'W/"800000-5f1a2b3c4d5e6"',
      lastModified: modified,
      onRequest: (request) => {
        const ifRange = request.headers["if-range"];
        // Apache: a date in If-Range that is not a strong validator makes the Range ignored.
        const behaviour = { headers: { date: modified.toUTCString() } };
        return typeof ifRange === "string" ? { ...behaviour, ignoreRange: true } : behaviour;
      },
    });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "1M", "--timeout", "5", "-o", "apache.bin", server.url()], {
      cwd,
      timeoutMs: 30_000,
    });
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(cwd, "apache.bin")))).toBe(sha256(content));
    expect(server.requests.filter((request) => request.status === 200)).toHaveLength(0);
    expect(server.requests.every((request) => request.headers["if-range"] === undefined)).toBe(true);
  });
});

describe("a file that changes under every attempt", () => {
  it("gives up with exit 5 after the restarts, and leaves no .part without its manifest", async () => {
    const content = makeContent(8 * MiB, 55);
    // Every answer names a version of its own.
    const server = await rangeServer({ content, bytesPerSecond: 16 * MiB, onRequest: (request) => ({ headers: { etag: `"v${request.index}"` } }) });
    const cwd = await tempDir();
    const run = await runMain(["-q", "-c", "4", "--min-split", "1M", "--timeout", "5", "-o", "moving.bin", server.url()], {
      cwd,
      timeoutMs: 30_000,
    });
    expect(run.code).toBe(5);
    expect(run.stderr).toContain("changed");
    const part = join(cwd, "moving.bin.part");
    expect(existsSync(part) ? existsSync(`${part}.json`) : true).toBe(true);
    expect(existsSync(join(cwd, "moving.bin"))).toBe(false);
  });
});

describe("a restart after a remote change is a new download", () => {
  it("probes the new version and fetches it in parallel ranges, not as one plain stream", async () => {
    const first = makeContent(12 * MiB, 61);
    const second = makeContent(12 * MiB, 62);
    const server = await rangeServer({ content: first, bytesPerSecond: 8 * MiB });
    const cwd = await tempDir();
    const output = join(cwd, "new.bin");
    const abort = new AbortController();
    const interrupted = await download(
      server.url(),
      quick({
        connections: 4,
        minSplit: 1 * MiB,
        output,
        signal: abort.signal,
        onProgress: (progress) => {
          if (progress.bytesDone >= 3 * MiB) abort.abort();
        },
      }),
    ).catch((error: unknown) => error);
    expect(interrupted).toBeInstanceOf(Error);
    expect(existsSync(`${output}.part.json`)).toBe(true);
    server.bytesPerSecond = undefined;
    server.setContent(second);
    const before = server.requests.length;
    const result = await download(server.url(), quick({ connections: 4, minSplit: 1 * MiB, output }));
    expect(result.restartedBecauseChanged).toBe(true);
    expect(sha256(await readFile(output))).toBe(sha256(second));
    const after = server.requests.slice(before);
    // The stale If-Range gets one whole-file answer; the new version then comes as ranges on several connections.
    expect(after.filter((request) => request.status === 200).length).toBeLessThanOrEqual(1);
    expect(after.filter((request) => request.status === 206).length).toBeGreaterThanOrEqual(4);
  });
});

describe("a resume without -o (the name from the URL)", () => {
  it("asks for the first missing range with If-Range from its first request, and fetches no byte it has", async () => {
    const content = makeContent(12 * MiB, 71);
    const server = await rangeServer({ content, bytesPerSecond: 8 * MiB });
    const dir = await tempDir();
    const abort = new AbortController();
    const options = quick({ connections: 1, minSplit: 1 * MiB, dir });
    const interrupted = await download(server.url("/data.bin"), {
      ...options,
      signal: abort.signal,
      onProgress: (progress) => {
        if (progress.bytesDone >= 4 * MiB) abort.abort();
      },
    }).catch((error: unknown) => error);
    expect(interrupted).toBeInstanceOf(Error);
    const manifest = JSON.parse(await readFile(join(dir, "data.bin.part.json"), "utf8")) as { done: [number, number][] };
    const firstMissing = manifest.done[0]![1] + 1;
    server.bytesPerSecond = undefined;
    const before = server.requests.length;
    const result = await download(server.url("/data.bin"), options);
    expect(result.status).toBe("resumed");
    expect(sha256(await readFile(join(dir, "data.bin")))).toBe(sha256(content));
    const resumeProbe = server.requests[before]!;
    expect(resumeProbe.range?.start).toBe(firstMissing);
    expect(resumeProbe.headers["if-range"]).toBe(defaultEtag(content));
    const servedAfter = server.requests.slice(before).reduce((sum, request) => sum + request.bytesSent, 0);
    expect(servedAfter).toBe(content.length - firstMissing);
  });
});

describe("a server that refuses connections", () => {
  it("says so once, naming the host, while it retries; then fails with exit 4", async () => {
    // A port that was just free: nothing listens there.
    const server = await rangeServer({ content: makeContent(10) });
    const url = server.url();
    await server.close();
    const run = await runMain(["-q", "--retries", "3", "--timeout", "5", "-o", "x.bin", url], { cwd: await tempDir(), timeoutMs: 30_000 });
    expect(run.code).toBe(4);
    const host = new URL(url).host;
    const notices = run.stderr.split("\n").filter((line) => line.includes(`connection refused by ${host}, retrying`));
    expect(notices).toHaveLength(1);
  });
});

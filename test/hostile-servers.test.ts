// Hostile or broken servers against the built CLI: names that try to escape --dir,
// redirects that try to carry credentials away, and answers that are not HTTP at all.
// Each ends in a safe file or one clear line with a documented exit code: never a
// crash (exit 1), never a hang (every run has a deadline), never a file outside -d.
import { existsSync } from "node:fs";
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, type TestContext } from "vitest";
import { download, NetworkError } from "../src/index.js";
import { makeContent, sha256 } from "./support/content.js";
import type { Behaviour, RangeServer, RangeServerOptions } from "./support/range-server.js";
import { rangeAnswer, sendAndClose, type RawRequest, type RawServer } from "./support/raw-server.js";
import { lines, type CliRun } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { closeAfterTest, rangeServer, rawServer } from "./support/servers.js";

const KiB = 1024;
const VICTIM = "victim.txt";

// The CLI's main runs in this process (run-main.ts), and process.chdir is the process's:
// the concurrent runs share one working directory, which nothing may be written to.
// Each Scene's -d and -o are absolute, so a name that escapes them lands beside them.
let sharedCwd: string;
beforeAll(async () => {
  sharedCwd = await mkdtemp(join(tmpdir(), "rangeget-hostile-cwd-"));
});
afterAll(async () => {
  expect(await readdir(sharedCwd), "written to the working directory").toEqual([]);
  await rm(sharedCwd, { recursive: true, force: true });
});

/**
 * One test's world: a work directory with `downloads/` (the -d) and, next to it, a
 * file the user did not name; servers closed and files removed when the test ends.
 * Per test, not per file, because the tests run concurrently (each is mostly waiting
 * on a server).
 */
class Scene {
  readonly downloads: string;

  private constructor(
    readonly workDir: string,
    readonly owner: TestContext,
  ) {
    this.downloads = join(workDir, "downloads");
  }

  static async create(context: TestContext): Promise<Scene> {
    const scene = new Scene(await mkdtemp(join(tmpdir(), "rangeget-hostile-")), context);
    await mkdir(scene.downloads);
    await writeFile(join(scene.workDir, VICTIM), "precious");
    context.onTestFinished(() => rm(scene.workDir, { recursive: true, force: true }));
    return scene;
  }

  /** servers.ts's range server, closed when this test (not its concurrent neighbour) ends. */
  rangeServer(options: RangeServerOptions): Promise<RangeServer> {
    return rangeServer(options, this.owner);
  }

  /** servers.ts's raw server, closed when this test ends. */
  rawServer(respond: (socket: Socket, request: RawRequest | undefined) => void, options?: { onConnect?: boolean }): Promise<RawServer> {
    return rawServer(respond, options, this.owner);
  }

  /** Quick to give up: the point is the kind of failure, not the patience. */
  cli(args: string[], timeoutMs = 15_000): Promise<CliRun> {
    return runMain(["-q", "--retries", "2", "--timeout", "2", ...args], { cwd: sharedCwd, timeoutMs, owner: this.owner });
  }

  out(name = "out.bin"): string {
    return join(this.downloads, name);
  }

  /** The victim's bytes, summarised so a failure does not print a binary download. */
  async victim(): Promise<string> {
    const bytes = await readFile(join(this.workDir, VICTIM));
    return bytes.equals(Buffer.from("precious")) ? "untouched" : `overwritten with ${bytes.length} bytes`;
  }

  /** The victim is intact and nothing appeared outside -d. */
  async expectNothingOutside(): Promise<void> {
    expect(await this.victim()).toBe("untouched");
    expect((await readdir(this.workDir)).sort()).toEqual(["downloads", VICTIM]);
  }
}

/** One line, a documented exit code, no stack, no internal error, no output, within the deadline. */
function expectCleanFailure(run: CliRun, codes: number[], output?: string): void {
  expect(run.timedOut, "the CLI hung").toBe(false);
  expect(run.stderr).not.toContain("internal error");
  expect(lines(run.stderr), run.stderr).toHaveLength(1);
  expect(run.stderr).toMatch(/^rangeget: /);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(codes).toContain(run.code);
  if (output !== undefined) expect(existsSync(output)).toBe(false);
}

// Every test builds its own Scene, so all of them run concurrently: each mostly waits on a server.
describe.concurrent("hostile servers", () => {
  // The name comes from the library (src/filename.ts through download()); -d is its `dir`.
  // In-process, so the many cases stay fast; the CLI cases below pin the same through -d.
  describe("Content-Disposition names never escape -d", () => {
    const long = `${"a".repeat(4000)}.bin`;
    it.for<[string, string, (name: string) => void]>([
      ["../ traversal", `attachment; filename="../${VICTIM}"`, (name) => expect(name).toBe(VICTIM)],
      ["deep ../ traversal", 'attachment; filename="../../../../../../../../etc/passwd"', (name) => expect(name).toBe("passwd")],
      ["an absolute path", `attachment; filename="/tmp/../${VICTIM}"`, (name) => expect(name).toBe(VICTIM)],
      ["backslashes (Windows traversal)", `attachment; filename*=UTF-8''..%5C..%5C${VICTIM}`, (name) => expect(name).toBe(VICTIM)],
      ["filename* with encoded %2F..%2F", `attachment; filename*=UTF-8''%2F..%2F..%2F${VICTIM}`, (name) => expect(name).toBe(VICTIM)],
      ["only dots", 'attachment; filename=".."', (name) => expect(name).toBe("fallback.bin")],
      ["a hidden file", 'attachment; filename=".bashrc"', (name) => expect(name).toBe("bashrc")],
      ["a Windows device name", 'attachment; filename="CON"', (name) => expect(name).toBe("_CON")],
      ["a Windows device name with an extension", 'attachment; filename="nul.tar.gz"', (name) => expect(name).toBe("_nul.tar.gz")],
      ["Windows-forbidden characters", 'attachment; filename="a<b>c:d|e?.bin"', (name) => expect(name).toBe("a_b_c_d_e_.bin")],
      ["a right-to-left override (txt.exe shown as exe.txt)", "attachment; filename*=UTF-8''invoice%E2%80%AEtxt.exe", (name) => expect(name).toBe("invoicetxt.exe")],
      // `<name>.part.lock` and the lock's temp file need room within the 255-byte limit
      // of a name too: server- and URL-given names are cut to 223 bytes.
      ["4,000 characters", `attachment; filename="${long}"`, (name) => {
        expect(Buffer.byteLength(name)).toBeLessThanOrEqual(223);
        expect(name.startsWith("aaaa")).toBe(true);
        expect(name.endsWith(".bin")).toBe(true);
      }],
    ])("%s", async ([_name, disposition, checkName], context) => {
      const scene = await Scene.create(context);
      const content = makeContent(200 * KiB, 51);
      const server = await scene.rangeServer({ content, contentDisposition: disposition });
      const result = await download(server.url("/fallback.bin"), { dir: scene.downloads, connections: 2, minSplit: 64 * KiB, timeout: 2, onWarning() {} });
      const [name, ...others] = await readdir(scene.downloads);
      expect(others).toEqual([]);
      checkName(name!);
      expect(result.path).toBe(scene.out(name));
      expect(sha256(await readFile(scene.out(name)))).toBe(sha256(content));
      await scene.expectNothingOutside();
    });

    // node:http refuses to send these bytes, so a raw server does.
    it.for<[string, string]>([
      ["NUL", `attachment; filename="../${VICTIM}\u0000.bin"`],
      ["control characters and an escape sequence", `attachment; filename="ev\u0001il\u001b[2J\u0007.bin"`],
      ["DEL and C1 controls", `attachment; filename="a\u007fb\u0085c\u009b.bin"`],
    ])("%s: either refused as bad HTTP (NetworkError) or stripped from the name", async ([_name, disposition], context) => {
      const scene = await Scene.create(context);
      const content = makeContent(100 * KiB, 52);
      const server = await scene.rawServer((socket, request) => sendAndClose(socket, rangeAnswer(content, request!, [`Content-Disposition: ${disposition}`])));
      const outcome = await download(server.url("/fallback.bin"), { dir: scene.downloads, timeout: 2, retries: 1, onWarning() {} }).catch((error: unknown) => error);
      const names = await readdir(scene.downloads);
      if (outcome instanceof Error) {
        expect(outcome).toBeInstanceOf(NetworkError);
        expect(names).toEqual([]);
      } else {
        expect(names).toHaveLength(1);
        expect(names[0]).not.toMatch(/[\u0000-\u001f\u007f-\u009f/\\]/);
        expect(sha256(await readFile(scene.out(names[0])))).toBe(sha256(content));
      }
      await scene.expectNothingOutside();
    });

    it("through the CLI: a ../ name lands inside -d, and --json says where", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(200 * KiB, 50);
      const server = await scene.rangeServer({ content, contentDisposition: `attachment; filename="../../${VICTIM}"` });
      const run = await scene.cli(["--json", "-c", "2", "--min-split", "64K", "-d", scene.downloads, server.url("/x")]);
      expect(run.code, run.stderr).toBe(0);
      expect((JSON.parse(run.stdout) as { path: string }).path).toBe(scene.out(VICTIM));
      expect(sha256(await readFile(scene.out(VICTIM)))).toBe(sha256(content));
      await scene.expectNothingOutside();
    });

    it("never overwrites an existing file inside -d that the server's name lands on: exit 6", async (context) => {
      const scene = await Scene.create(context);
      await writeFile(scene.out(VICTIM), "mine");
      const server = await scene.rangeServer({ content: makeContent(100 * KiB, 53), contentDisposition: `attachment; filename="../${VICTIM}"` });
      const run = await scene.cli(["-d", scene.downloads, server.url("/x")]);
      expectCleanFailure(run, [6]);
      expect(run.stderr).toContain(scene.out(VICTIM));
      expect(await readFile(scene.out(VICTIM), "utf8")).toBe("mine");
      expect(await readdir(scene.downloads)).toEqual([VICTIM]);
      await scene.expectNothingOutside();
    });

    it("never writes through a symlink inside -d that the server's name lands on", async (context) => {
      const scene = await Scene.create(context);
      await symlink(join(scene.workDir, VICTIM), scene.out("link.bin"));
      const server = await scene.rangeServer({ content: makeContent(100 * KiB, 54), contentDisposition: 'attachment; filename="link.bin"' });
      const run = await scene.cli(["-d", scene.downloads, server.url("/x")]);
      expectCleanFailure(run, [6]);
      expect(await scene.victim()).toBe("untouched");
    });

    // Someone who can write to -d (a shared directory) plants `<name>.part` as a symlink to
    // a file of yours. The .part is created with O_EXCL and opened with O_NOFOLLOW (so is
    // the manifest's temp file), so nothing is ever written through the link.
    it("never writes the download through a planted <name>.part symlink", async (context) => {
      const scene = await Scene.create(context);
      await symlink(join(scene.workDir, VICTIM), scene.out("planted.bin.part"));
      const content = makeContent(100 * KiB, 55);
      const server = await scene.rangeServer({ content });
      const run = await scene.cli(["-d", scene.downloads, server.url("/planted.bin")]);
      expect(run.timedOut).toBe(false);
      expect(await scene.victim()).toBe("untouched");
      if (run.code === 0) {
        expect((await lstat(scene.out("planted.bin"))).isFile()).toBe(true);
        expect(sha256(await readFile(scene.out("planted.bin")))).toBe(sha256(content));
      } else {
        expectCleanFailure(run, [6]);
      }
    });
  });

  describe("redirects through the CLI", () => {
    it("a redirect loop: exit 3, one line", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rangeServer({
        content: Buffer.alloc(10),
        onRequest: (request) => ({ redirectTo: request.path === "/a" ? "/b" : "/a", status: 302 }),
      });
      const run = await scene.cli(["-d", scene.downloads, server.url("/a")]);
      expectCleanFailure(run, [3]);
      expect(run.stderr).toMatch(/redirect loop/);
      expect(server.requests).toHaveLength(2);
    });

    it("more than 10 hops: exit 3 after 11 requests", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rangeServer({
        content: Buffer.alloc(10),
        onRequest: (request) => ({ redirectTo: `/hop${request.index + 1}`, status: 301 }),
      });
      const run = await scene.cli(["-d", scene.downloads, server.url("/hop0")]);
      expectCleanFailure(run, [3]);
      expect(run.stderr).toMatch(/more than 10 redirects/);
      expect(server.requests).toHaveLength(11);
    });

    it.for<[string, string]>([
      ["file:", "file:///etc/passwd"],
      ["ftp:", "ftp://127.0.0.1/x"],
      ["javascript:", "javascript:alert(1)"],
      ["data:", "data:text/plain,hi"],
    ])("a redirect to %s is refused: exit 3", async ([_scheme, location], context) => {
      const scene = await Scene.create(context);
      const server = await scene.rangeServer({ content: Buffer.alloc(10), onRequest: () => ({ redirectTo: location, status: 302 }) });
      const run = await scene.cli(["-d", scene.downloads, server.url()]);
      expectCleanFailure(run, [3]);
      expect(run.stderr).toMatch(/unsupported scheme/);
    });

    it("a redirect without Location: exit 3", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rangeServer({ content: Buffer.alloc(10), onRequest: () => ({ status: 302 }) });
      expectCleanFailure(await scene.cli(["-d", scene.downloads, server.url()]), [3]);
    });

    // A Location that does not parse must be a redirect error (HttpStatusError
    // ERR_BAD_REDIRECT), not a TypeError from `new URL` reaching the CLI as an internal error.
    it("a Location that is not a URL at all: exit 3, not a crash", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rangeServer({ content: Buffer.alloc(10), onRequest: () => ({ redirectTo: "http://[::1", status: 302 }) });
      const run = await scene.cli(["-d", scene.downloads, server.url()]);
      expectCleanFailure(run, [3]);
    });

    it("-H credentials, Authorization and Cookie never follow a redirect to another origin", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(300 * KiB, 56);
      const other = await scene.rangeServer({ content });
      const first = await scene.rangeServer({ content: Buffer.alloc(0), onRequest: () => ({ redirectTo: other.url("/moved.bin"), status: 307 }) });
      const run = await scene.cli([
        "-c", "3", "--min-split", "64K", "-d", scene.downloads,
        "-H", "Authorization: Bearer secret", "-H", "Cookie: session=abc", "-H", "X-Api-Key: k",
        first.url("/start.bin"),
      ]);
      expect(run.code, run.stderr).toBe(0);
      expect(first.requests[0]?.headers).toMatchObject({ authorization: "Bearer secret", cookie: "session=abc", "x-api-key": "k" });
      expect(other.requests.length).toBeGreaterThanOrEqual(3);
      for (const request of other.requests) {
        for (const name of ["authorization", "cookie", "x-api-key"]) expect(request.headers[name]).toBeUndefined();
      }
      expect(sha256(await readFile(scene.out("start.bin")))).toBe(sha256(content));
    });

    it("-H headers stay on a same-origin redirect, on every ranged request", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(300 * KiB, 57);
      const server = await scene.rangeServer({
        content,
        onRequest: (request) => (request.path === "/a" ? { redirectTo: "/b", status: 302 } : undefined),
      });
      const run = await scene.cli(["-c", "3", "--min-split", "64K", "-d", scene.downloads, "-H", "Authorization: Bearer s", server.url("/a")]);
      expect(run.code, run.stderr).toBe(0);
      expect(server.requests.length).toBeGreaterThanOrEqual(4);
      expect(server.requests.every((request) => request.headers["authorization"] === "Bearer s")).toBe(true);
    });
  });

  describe("answers that are not sane HTTP", () => {
    it("a 100 KB header: a network error (exit 4), never a crash", async (context) => {
      const scene = await Scene.create(context);
      const behaviour: Behaviour = { headers: { "x-padding": "a".repeat(100 * KiB) } };
      const server = await scene.rangeServer({ content: makeContent(10 * KiB, 58), onRequest: () => behaviour });
      const run = await scene.cli(["-o", scene.out(), server.url()]);
      expectCleanFailure(run, [4], scene.out());
      expect(run.stderr).toMatch(/header/i);
    });

    it("thousands of small headers: exit 4", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(10 * KiB, 59);
      const padding = Array.from({ length: 5000 }, (_, index) => `X-H${index}: v`);
      const server = await scene.rawServer((socket, request) => sendAndClose(socket, rangeAnswer(content, request!, padding)));
      expectCleanFailure(await scene.cli(["-o", scene.out(), server.url()]), [4], scene.out());
    });

    it.for<[string, string]>([
      ["a non-numeric status", "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"],
      ["a status line with no status", "HTTP/1.1\r\n\r\n"],
      ["an unknown protocol", "HTTP/7.0 200 OK\r\nContent-Length: 0\r\n\r\n"],
      ["two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n0123456789"],
      ["a negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"],
      ["Content-Length with Transfer-Encoding", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"],
      ["a bad chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"],
      ["a header line without a colon", "HTTP/1.1 200 OK\r\nthis is not a header\r\nContent-Length: 0\r\n\r\n"],
      ["an HTTP/0.9-style body with no status line", "just some bytes, no status line\n"],
    ])("%s: exit 4 or 5, one line", async ([_name, answer], context) => {
      const scene = await Scene.create(context);
      const server = await scene.rawServer((socket) => sendAndClose(socket, answer));
      expectCleanFailure(await scene.cli(["-o", scene.out(), server.url()]), [4, 5], scene.out());
    });

    it("garbage instead of HTTP, sent before any request: exit 4", async (context) => {
      const scene = await Scene.create(context);
      const garbage = makeContent(4 * KiB, 60);
      const server = await scene.rawServer((socket) => sendAndClose(socket, garbage), { onConnect: true });
      expectCleanFailure(await scene.cli(["-o", scene.out(), server.url()]), [4], scene.out());
      expect(server.connections()).toBeLessThanOrEqual(3);
    });

    it("a server that closes the connection at once: exit 4", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rawServer((socket) => socket.destroy(), { onConnect: true });
      expectCleanFailure(await scene.cli(["-o", scene.out(), server.url()]), [4], scene.out());
    });

    it("a server that accepts and never answers: exit 4 within the timeout, not a hang", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rawServer(() => {});
      const run = await scene.cli(["--retries", "1", "--timeout", "1", "-o", scene.out(), server.url()]);
      expectCleanFailure(run, [4], scene.out());
      expect(run.elapsedMs).toBeLessThan(8_000);
    });

    /** A raw server that writes `first`, then `line(i)` every 200 ms until the client leaves. */
    async function trickling(scene: Scene, first: string, line: (index: number) => string): Promise<RawServer> {
      const timers = new Set<NodeJS.Timeout>();
      closeAfterTest(async () => timers.forEach((timer) => clearInterval(timer)), scene.owner);
      return scene.rawServer((socket) => {
        socket.write(first);
        let index = 0;
        const timer = setInterval(() => socket.write(line(index++)), 200);
        timers.add(timer);
        socket.on("close", () => clearInterval(timer));
      });
    }

    it("a server that trickles header lines forever: exit 4 within the timeout", async (context) => {
      const scene = await Scene.create(context);
      const server = await trickling(scene, "HTTP/1.1 206 Partial Content\r\n", (index) => `X-Slow-${index}: y\r\n`);
      const run = await scene.cli(["--retries", "1", "--timeout", "1", "-o", scene.out(), server.url()], 8_000);
      expectCleanFailure(run, [4], scene.out());
    });

    // undici restarts its headers timeout on every 1xx, so only rangeget's own deadline
    // for the final answer's headers, which does not move, stops this (NetworkError ERR_TIMEOUT).
    it("a server that sends 1xx informational answers forever: exit 4, not a hang", async (context) => {
      const scene = await Scene.create(context);
      const server = await trickling(scene, "", () => "HTTP/1.1 102 Processing\r\n\r\n");
      const run = await scene.cli(["--retries", "1", "--timeout", "1", "-o", scene.out(), server.url()], 8_000);
      expectCleanFailure(run, [4], scene.out());
    });

    it("an ETag with bytes that cannot be sent back in If-Range: a clean failure or a good file", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(300 * KiB, 61);
      const server = await scene.rawServer((socket, request) => sendAndClose(socket, rangeAnswer(content, request!, ['ETag: "\u0001bad"'])));
      const run = await scene.cli(["-c", "2", "--min-split", "64K", "-o", scene.out(), server.url()]);
      if (run.code === 0) expect(sha256(await readFile(scene.out()))).toBe(sha256(content));
      else expectCleanFailure(run, [4, 5], scene.out());
    });

    it("an unknown 9xx status: an HTTP error, exit 3", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rawServer((socket) => sendAndClose(socket, "HTTP/1.1 999 Weird\r\nContent-Length: 0\r\n\r\n"));
      expectCleanFailure(await scene.cli(["-o", scene.out(), server.url()]), [3], scene.out());
    });
  });

  describe("sizes and bodies that lie", () => {
    it("a body longer than Content-Length on every ranged answer: the extra bytes are never written", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(512 * KiB, 62);
      const server = await scene.rangeServer({ content, onRequest: () => ({ extraBytes: 4096 }) });
      const run = await scene.cli(["-c", "4", "--min-split", "64K", "--retries", "5", "-o", scene.out(), server.url()]);
      expect(run.timedOut).toBe(false);
      if (run.code === 0) expect(sha256(await readFile(scene.out()))).toBe(sha256(content));
      else expectCleanFailure(run, [4, 5], scene.out());
    });

    it("a body longer than Content-Length from a server without ranges: exact bytes or a clean failure", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(300 * KiB, 63);
      const server = await scene.rangeServer({ content, acceptRanges: false, onRequest: () => ({ extraBytes: 4096 }) });
      const run = await scene.cli(["-o", scene.out(), server.url()]);
      expect(run.timedOut).toBe(false);
      if (run.code === 0) expect(sha256(await readFile(scene.out()))).toBe(sha256(content));
      else expectCleanFailure(run, [4, 5], scene.out());
    });

    it("a petabyte announced in Content-Range: refused before anything is allocated (exit 6)", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rangeServer({
        content: makeContent(256 * KiB, 64),
        onRequest: () => ({ contentRange: `bytes 0-${64 * KiB - 1}/${10 ** 15}` }),
      });
      const run = await scene.cli(["--min-split", "64K", "-o", scene.out(), server.url()]);
      expectCleanFailure(run, [6], scene.out());
      expect(run.stderr).toMatch(/space/);
      expect(await readdir(scene.downloads)).toEqual([]);
    });

    it("a size beyond 2^53 in Content-Range: a wrong range, exit 5", async (context) => {
      const scene = await Scene.create(context);
      const server = await scene.rangeServer({ content: makeContent(1000, 65), onRequest: () => ({ contentRange: "bytes 0-999/99999999999999999999" }) });
      expectCleanFailure(await scene.cli(["-o", scene.out(), server.url()]), [5], scene.out());
    });

    it("a 206 without Content-Range: a wrong range, exit 5", async (context) => {
      const scene = await Scene.create(context);
      const content = makeContent(1000, 66);
      const server = await scene.rawServer((socket) =>
        sendAndClose(socket, Buffer.concat([Buffer.from("HTTP/1.1 206 Partial Content\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"), content])),
      );
      expectCleanFailure(await scene.cli(["-o", scene.out(), server.url()]), [5], scene.out());
    });
  });
});

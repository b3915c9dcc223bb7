import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import { downloadAll } from "../src/batch.js";
import { UsageError } from "../src/errors.js";
import { RateLimiter } from "../src/rate-limit.js";
import { makeContent } from "./support/content.js";
import { rangeAnswer, sendAndClose } from "./support/raw-server.js";
import { rangeServer, rawServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

describe("downloadAll", () => {
  it("gives the results in input order, whatever order the files finish in", async () => {
    const first = makeContent(5000, 1);
    const second = makeContent(7000, 2);
    let secondFinished!: () => void;
    const gate = new Promise<void>((resolve) => (secondFinished = resolve));
    // The first file's server answers only once the second file is done.
    const slow = await rawServer((socket, request) => {
      void gate.then(() => sendAndClose(socket, rangeAnswer(first, request!)));
    });
    const fast = await rangeServer({ content: second });
    const dir = await tempDir();
    const finishedInOrder: number[] = [];
    const results = await downloadAll([slow.url("/first.bin"), fast.url("/second.bin")], {
      dir,
      jobs: 2,
      onFileEnd: (index) => {
        finishedInOrder.push(index);
        if (index === 1) secondFinished();
      },
    });
    expect(finishedInOrder).toEqual([1, 0]);
    expect(results.map((result) => [result.url, result.status])).toEqual([
      [slow.url("/first.bin"), "downloaded"],
      [fast.url("/second.bin"), "downloaded"],
    ]);
    expect(await readFile(join(dir, "first.bin"))).toEqual(first);
    expect(await readFile(join(dir, "second.bin"))).toEqual(second);
  });

  it("downloads the other files when one fails, and reports that one as failed", async () => {
    const content = makeContent(4000);
    const server = await rangeServer({ content, onRequest: (request) => (request.path === "/missing.bin" ? { status: 404 } : undefined) });
    const dir = await tempDir();
    const results = await downloadAll([server.url("/a.bin"), server.url("/missing.bin"), server.url("/b.bin")], { dir, retries: 1 });
    expect(results.map((result) => result.status)).toEqual(["downloaded", "failed", "downloaded"]);
    expect(results[1]?.error?.code).toBe("ERR_HTTP_STATUS");
    expect(await readFile(join(dir, "a.bin"))).toEqual(content);
    expect(await readFile(join(dir, "b.bin"))).toEqual(content);
  });

  it.each([
    ["maxConnectionsPerHost", 0],
    ["maxConnectionsPerHost", 1.5],
    ["limitRate", 0],
    ["limitRate", -100],
    ["limitRate", Number.POSITIVE_INFINITY],
  ])("refuses %s %s as a usage error (exit 2) before any request", async (name, value) => {
    const server = await rangeServer({ content: makeContent(1000) });
    const error = await downloadAll([server.url("/a.bin")], { dir: await tempDir(), [name]: value }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UsageError);
    expect(error).toMatchObject({ exitCode: 2, message: expect.stringContaining(`${name} must be`) });
    expect(server.requests).toHaveLength(0);
  });

  it("charges the bytes of every file to one shared rate limit", async () => {
    const take = vi.spyOn(RateLimiter.prototype, "take");
    try {
      const server = await rangeServer({ content: makeContent(30_000) });
      const dir = await tempDir();
      await downloadAll([server.url("/a.bin"), server.url("/b.bin"), server.url("/c.bin")], { dir, limitRate: 100 * 1024 * 1024 });
      expect(new Set(take.mock.contexts).size).toBe(1);
      const charged = take.mock.calls.reduce((sum, [bytes]) => sum + bytes, 0);
      expect(charged).toBe(3 * 30_000);
    } finally {
      take.mockRestore();
    }
  });

  it("downloads at most `jobs` files at once", async () => {
    // A throttled server's pacing outlasts the last byte it sends, so its own count of
    // requests in progress runs late: files are counted from their first request to
    // their end as the batch reports it.
    const files = ["a", "b", "c", "d", "e"];
    const started = new Set<string>();
    const ended = new Set<string>();
    let most = 0;
    const server = await rangeServer({
      content: makeContent(20_000),
      bytesPerSecond: 200_000,
      onRequest: (request) => {
        started.add(request.path);
        most = Math.max(most, started.size - ended.size);
        return undefined;
      },
    });
    const urls = files.map((name) => server.url(`/${name}.bin`));
    const results = await downloadAll(urls, {
      dir: await tempDir(),
      jobs: 2,
      connections: 1,
      onFileEnd: (index) => ended.add(`/${files[index]}.bin`),
    });
    expect(results.every((result) => result.status === "downloaded")).toBe(true);
    expect(started.size).toBe(5);
    expect(most).toBeLessThanOrEqual(2);
  });
});

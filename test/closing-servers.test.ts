// Servers that close the connection after an answer, met with a slow sink so the HTTP
// parser is paused when the answer ends. undici 7 asserted `!this.paused` in
// Parser.finish() when the peer closed then (nodejs/undici #5360, fixed in 8.6 by PRs
// #5389 and #5474), an uncatchable AssertionError that killed rangeget with exit 1 and a
// stack trace. Each shape runs the CLI's main in this process (run-main.ts), where such
// an uncaught error fails the file as vitest's "unhandled error"; the slow reader of
// `-o -` is the built CLI in a child, because its pipe is a real one.
import { readFile } from "node:fs/promises";
import type { Socket } from "node:net";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import type { RawRequest } from "./support/raw-server.js";
import { assertBuilt, startCli } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { rawServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const MiB = 1024 * 1024;
/** Around 1 MiB (one range), around twice --min-split 1M (two), and 12 MiB (eight). */
const SIZES = [MiB + 7, 2 * MiB + 1, 12 * MiB];

interface Shape {
  /** "HTTP/1.0" closes after each answer by default; "HTTP/1.1" sends Connection: close. */
  protocol: "HTTP/1.0" | "HTTP/1.1";
  /** Answer ranges with 206 (else always 200 with the whole body). */
  ranges: boolean;
  /** Send Content-Length (else the body is delimited by the close). */
  length: boolean;
  /** Reset the connection half-way through the first answer to each range (its retry, asking for the rest, is answered whole). */
  resetFirst?: boolean;
}

/**
 * A server of `shape` for `content`: every answer is written in one go and the
 * connection closed right after it, so the last bytes and the FIN arrive while the
 * client is still draining the body.
 */
async function closingServer(content: Buffer, shape: Shape) {
  const resetDone = new Set<string>();
  const server = await rawServer((socket: Socket, request: RawRequest | undefined) => {
    const match = /^bytes=(\d+)-(\d*)$/.exec(request?.headers["range"] ?? "");
    let status = "200 OK";
    let body = content;
    const headers = ['ETag: "closing-v1"', "Accept-Ranges: bytes"];
    if (shape.ranges && match) {
      const start = Number(match[1]);
      const end = Math.min(match[2] === "" ? content.length - 1 : Number(match[2]), content.length - 1);
      status = "206 Partial Content";
      body = content.subarray(start, end + 1);
      headers.push(`Content-Range: bytes ${start}-${end}/${content.length}`);
    }
    if (shape.length) headers.push(`Content-Length: ${body.length}`);
    if (shape.protocol === "HTTP/1.1") headers.push("Connection: close");
    socket.write(`${shape.protocol} ${status}\r\n${headers.join("\r\n")}\r\n\r\n`, "latin1");
    // A range is known by where it ends: its retry resumes from the bytes that arrived,
    // so it asks from a new start to the same end. Keyed by the whole Range header, every
    // retry was a "first answer" and was cut again, halving the range some 20 times, each
    // after a backoff (12 s of the 12 MiB test) instead of one reset per range.
    const key = match ? `to ${match[2]}` : "whole";
    if (shape.resetFirst && !resetDone.has(key) && body.length > 1) {
      resetDone.add(key);
      socket.write(body.subarray(0, Math.floor(body.length / 2)), () => socket.resetAndDestroy());
      return;
    }
    socket.end(body);
  });
  /** How many answers were cut by a reset (one per range end asked for). */
  return Object.assign(server, { resets: () => resetDone.size });
}

let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await tempDir();
});

/** Runs the CLI to a file and asserts a clean exit with the exact bytes. */
async function downloadsExactly(content: Buffer, shape: Shape, args: string[]): Promise<void> {
  const server = await closingServer(content, shape);
  const run = await runMain(["-q", "--retries", "8", "-o", "out.bin", ...args, server.url()], { cwd: workDir, timeoutMs: 40_000 });
  expect({ code: run.code, stderr: run.stderr, timedOut: run.timedOut }).toEqual({ code: 0, stderr: "", timedOut: false });
  expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
  // The resets happened: one per range end asked for, at least one per range the
  // first four connections start with (one, two, four; later splits add ends of their own).
  if (shape.resetFirst === true) expect(server.resets()).toBeGreaterThanOrEqual(Math.min(4, Math.floor(content.length / MiB)));
}

// The rate cap is the slow sink: the body is consumed in metered slices, so the
// parser is paused behind it when the server's FIN arrives.
const SLOW = ["--limit-rate", "48M"];

describe.each(SIZES)("a server that closes after each answer, %i bytes", (size) => {
  const content = makeContent(size, size % 251);

  it("HTTP/1.0 range server (Python's RangeHTTPServer): parallel ranges", async () => {
    await downloadsExactly(content, { protocol: "HTTP/1.0", ranges: true, length: true }, ["-c", "4", "--min-split", "1M"]);
  });

  it("HTTP/1.0 range server through a slow sink", async () => {
    await downloadsExactly(content, { protocol: "HTTP/1.0", ranges: true, length: true }, ["-c", "4", "--min-split", "1M", ...SLOW]);
  });

  it("HTTP/1.1 with Connection: close on every answer, probe and ranges", async () => {
    await downloadsExactly(content, { protocol: "HTTP/1.1", ranges: true, length: true }, ["-c", "8", "--min-split", "1M"]);
  });

  it("HTTP/1.1 with Connection: close on every answer, through a slow sink", async () => {
    await downloadsExactly(content, { protocol: "HTTP/1.1", ranges: true, length: true }, ["-c", "8", "--min-split", "1M", ...SLOW]);
  });

  it("a close-delimited body without Content-Length at -c 1", async () => {
    await downloadsExactly(content, { protocol: "HTTP/1.1", ranges: false, length: false }, ["-c", "1", ...SLOW]);
  });

  it("a reset half-way through each range's first answer while the sink is slow: retried, exact bytes", async () => {
    await downloadsExactly(content, { protocol: "HTTP/1.1", ranges: true, length: true, resetFirst: true }, ["-c", "4", "--min-split", "1M", ...SLOW]);
  });

  it("-o - with a slow reader against a closing server", async () => {
    const server = await closingServer(content, { protocol: "HTTP/1.0", ranges: true, length: true });
    const running = startCli(["-q", "-c", "4", "--min-split", "1M", "-o", "-", server.url()], { cwd: workDir, timeoutMs: 40_000, stdout: "caller" });
    // A reader that takes 64 KiB at a time and pauses between reads: the pipe fills,
    // rangeget's window fills behind it, and the sockets are paused.
    const chunks: Buffer[] = [];
    for await (const chunk of running.child.stdout as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const { code, stderr, timedOut } = await running.done;
    expect({ code, stderr, timedOut }).toEqual({ code: 0, stderr: "", timedOut: false });
    expect(sha256(Buffer.concat(chunks))).toBe(sha256(content));
  });
});

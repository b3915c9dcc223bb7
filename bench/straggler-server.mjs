#!/usr/bin/env node
// A loopback origin with one slow range, for the benchmark's straggler scenario.
//
//   node bench/straggler-server.mjs <file> [port]     (port 0 or none: an ephemeral one)
//
// Serves <file> at every path, with single byte ranges, If-Range, ETag and Last-Modified,
// at RATE_MIB (default 16) MiB/s per response, like a CDN that throttles each connection.
// The query names a run: in `?run=<id>`, the first ranged request that starts after byte 0
// and covers the middle byte of the file is served SLOW_FACTOR (default 10) times slower;
// `?run=<id>&straggler=0` slows nothing. A downloader that waits for its slowest range
// takes about 10x longer; one that steals the slow range's tail barely notices.
// SERVER_MIB (unset: no cap) caps the server's total rate over all responses.
// `GET /_stats?run=<id>` answers what that run asked for, as JSON. Prints the port as
// `listening <port>` on stdout, listens on 127.0.0.1 only, and stops on SIGTERM, or when
// its stdin is a pipe that closes (so it never outlives the benchmark that started it).
import { fstatSync } from "node:fs";
import { open, stat } from "node:fs/promises";
import { createServer } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

const [file, portArgument = "0"] = process.argv.slice(2);
if (file === undefined) {
  console.error("usage: straggler-server.mjs <file> [port]");
  process.exit(2);
}
const MiB = 1024 * 1024;
const bytesPerSecond = Number(process.env.RATE_MIB ?? 16) * MiB;
const slowFactor = Number(process.env.SLOW_FACTOR ?? 10);
// SERVER_MIB caps the whole server, all responses together (a mirror with a fixed
// uplink): the mirrors scenario runs two of these servers side by side.
const serverBytesPerSecond = Number(process.env.SERVER_MIB ?? 0) * MiB;
// Small writes keep the pacing smooth: 64 KiB is 4 ms at 16 MiB/s, 40 ms at 1.6 MiB/s.
const CHUNK = 64 * 1024;

const handle = await open(file, "r");
const info = await stat(file);
const size = info.size;
const lastModified = info.mtime.toUTCString();
const etag = `"${size.toString(16)}-${Math.floor(info.mtimeMs).toString(16)}"`;
const middle = Math.floor(size / 2);

/** @type {Map<string, { requests: { range: string, status: number, bytesSent: number, slow: boolean, ms: number }[], slowTaken: boolean }>} */
const runs = new Map();

function runRecord(id) {
  let record = runs.get(id);
  if (record === undefined) {
    record = { requests: [], slowTaken: false };
    runs.set(id, record);
  }
  return record;
}

/** The single range a `Range` header asks for, clamped to the file, or "unsatisfiable" or undefined (whole file). */
function parseRange(header) {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header?.trim() ?? "");
  if (match === null) return undefined;
  const [, first, last] = match;
  if (first === "" && last === "") return undefined;
  if (first === "") {
    const suffix = Number(last);
    return suffix === 0 ? "unsatisfiable" : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === "" ? size - 1 : Math.min(Number(last), size - 1);
  return start >= size || end < start ? "unsatisfiable" : { start, end };
}

/** RFC 9110 13.1.5: serve the range only if the validator still names this file. */
function ifRangeMatches(value) {
  if (value === undefined) return true;
  if (value.startsWith('"')) return value === etag;
  return Date.parse(value) === Date.parse(lastModified);
}

/** When the server's shared uplink is next free; 0 when SERVER_MIB is not set. */
let serverFreeAt = 0;

/** Reserves the server's uplink for `length` bytes; resolves the time they may go. */
function serverSlot(length) {
  if (!(serverBytesPerSecond > 0)) return 0;
  const at = Math.max(performance.now(), serverFreeAt);
  serverFreeAt = at + (length / serverBytesPerSecond) * 1000;
  return at;
}

/** Writes bytes [start, end] paced to `rate` bytes per second; resolves with the bytes written. */
async function sendPaced(response, start, end, rate) {
  const began = performance.now();
  let sent = 0;
  const total = end - start + 1;
  while (sent < total && !response.destroyed) {
    const length = Math.min(CHUNK, total - sent);
    const due = Math.max(began + (sent / rate) * 1000, serverSlot(length));
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    const buffer = Buffer.allocUnsafe(length);
    const { bytesRead } = await handle.read(buffer, 0, length, start + sent);
    if (bytesRead !== length) {
      response.destroy(new Error(`${file} shrank while serving it`));
      break;
    }
    if (response.destroyed) break;
    sent += length;
    if (!response.write(buffer)) {
      await new Promise((resolve) => {
        const resume = () => {
          response.off("drain", resume);
          response.off("close", resume);
          resolve();
        };
        response.on("drain", resume);
        response.on("close", resume);
      });
    }
  }
  if (!response.destroyed) response.end();
  return sent;
}

const server = createServer(async (request, response) => {
  const url = new URL(request.url ?? "/", "http://127.0.0.1");
  if (url.pathname === "/_stats") {
    const record = runs.get(url.searchParams.get("run") ?? "") ?? { requests: [] };
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify({ size, middle, requests: record.requests }));
    return;
  }
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.writeHead(405, { allow: "GET, HEAD" }).end();
    return;
  }
  const runId = url.searchParams.get("run") ?? "";
  const stragglerOn = url.searchParams.get("straggler") !== "0";
  const record = runRecord(runId);

  const headers = {
    "accept-ranges": "bytes",
    etag,
    "last-modified": lastModified,
    "content-type": "application/octet-stream",
  };
  let range = request.headers.range === undefined ? undefined : parseRange(request.headers.range);
  if (range !== undefined && !ifRangeMatches(request.headers["if-range"])) range = undefined;
  if (range === "unsatisfiable") {
    response.writeHead(416, { ...headers, "content-range": `bytes */${size}` }).end();
    record.requests.push({ range: request.headers.range ?? "", status: 416, bytesSent: 0, slow: false, ms: 0 });
    return;
  }
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  const status = range === undefined ? 200 : 206;
  const slow = stragglerOn && status === 206 && !record.slowTaken && start > 0 && start <= middle && middle <= end;
  if (slow) record.slowTaken = true;
  const entry = { range: request.headers.range ?? "", status, bytesSent: 0, slow, ms: 0 };
  record.requests.push(entry);

  if (status === 206) headers["content-range"] = `bytes ${start}-${end}/${size}`;
  response.writeHead(status, { ...headers, "content-length": String(end - start + 1) });
  if (request.method === "HEAD" || end < start) {
    response.end();
    return;
  }
  const began = performance.now();
  entry.bytesSent = await sendPaced(response, start, end, slow ? bytesPerSecond / slowFactor : bytesPerSecond);
  entry.ms = Math.round(performance.now() - began);
});

server.listen(Number(portArgument), "127.0.0.1", () => {
  console.log(`listening ${server.address().port}`);
});
const stop = () => {
  server.close();
  server.closeAllConnections();
  void handle.close();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
if (fstatSync(0).isFIFO()) {
  process.stdin.on("end", stop);
  process.stdin.resume();
}

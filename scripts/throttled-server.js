// A small HTTP server for the demo: serves one in-memory file with byte ranges and
// caps every response at a fixed rate, as CDNs and object stores cap each connection.
// That cap is what makes parallel connections pay off, so the demo shows it locally.
import { once } from "node:events";
import { createServer } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";

const SLICE = 64 * 1024;

/**
 * @param {Buffer} content the file to serve, at every path
 * @param {number} bytesPerSecond the cap for each response (so each connection)
 * @returns {Promise<{ url: string, close: () => Promise<void> }>}
 */
export async function startThrottledServer(content, bytesPerSecond) {
  const etag = `"demo-${content.length}"`;
  const lastModified = new Date("2024-01-01T00:00:00Z").toUTCString();
  const server = createServer((request, response) => {
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { Allow: "GET, HEAD" }).end();
      return;
    }
    const common = { "Accept-Ranges": "bytes", ETag: etag, "Last-Modified": lastModified, "Content-Type": "application/octet-stream" };
    // RFC 9110 13.1.5: a validator that does not match asks for the whole, current file.
    const ifRange = request.headers["if-range"];
    const rangeHeader = ifRange === undefined || ifRange === etag || ifRange === lastModified ? request.headers.range : undefined;
    const range = rangeHeader === undefined ? undefined : parseRange(rangeHeader, content.length);
    if (range === "unsatisfiable") {
      response.writeHead(416, { ...common, "Content-Range": `bytes */${content.length}` }).end();
      return;
    }
    const [start, end] = range ?? [0, content.length - 1];
    const headers = { ...common, "Content-Length": String(end - start + 1) };
    if (range === undefined) response.writeHead(200, headers);
    else response.writeHead(206, { ...headers, "Content-Range": `bytes ${start}-${end}/${content.length}` });
    if (request.method === "HEAD") {
      response.end();
      return;
    }
    sendThrottled(response, content.subarray(start, end + 1), bytesPerSecond).catch(() => response.destroy());
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the demo server has no TCP address");
  return {
    url: `http://127.0.0.1:${address.port}/demo.bin`,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

/** One `bytes=a-b`, `bytes=a-` or `bytes=-n`; anything else is answered with the whole file. */
function parseRange(header, size) {
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === "" && match[2] === "")) return undefined;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    return suffix === 0 || size === 0 ? "unsatisfiable" : [Math.max(0, size - suffix), size - 1];
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  if (start >= size) return "unsatisfiable";
  return end < start ? undefined : [start, end];
}

/** Writes `body` no faster than `bytesPerSecond`, honouring backpressure; stops if the client leaves. */
async function sendThrottled(response, body, bytesPerSecond) {
  const startedAt = performance.now();
  let sent = 0;
  while (sent < body.length) {
    if (response.destroyed) return;
    const slice = body.subarray(sent, sent + SLICE);
    sent += slice.length;
    if (!response.write(slice)) await drainedOrClosed(response);
    const dueAt = startedAt + (sent / bytesPerSecond) * 1000;
    const wait = dueAt - performance.now();
    if (wait > 0) await sleep(wait);
  }
  response.end();
}

function drainedOrClosed(response) {
  return new Promise((resolve) => {
    const done = () => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.on("drain", done);
    response.on("close", done);
  });
}

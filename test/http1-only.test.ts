// undici 8 negotiates HTTP/2 by default and would then multiplex every range over one
// TCP connection (8 ranges at 50 ms round trip: 4.9 MiB/s against 150.8 MiB/s on
// separate HTTP/1.1 connections). A server that offers both over TLS (ALPN h2 and
// http/1.1) must get HTTP/1.1, one TLS connection per range in flight.
import { readFile } from "node:fs/promises";
import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, runCli } from "./support/run-cli.js";
import { closeAfterTest } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { serverCert, testCa } from "./support/tls-fixtures.js";

const MiB = 1024 * 1024;

beforeAll(assertBuilt);

it("asks an h2-capable HTTPS server for HTTP/1.1 and opens a connection per range", async () => {
  const content = makeContent(8 * MiB, 22);
  const protocols: string[] = [];
  const versions: string[] = [];
  const server = createSecureServer({ cert: serverCert.cert, key: serverCert.key, allowHTTP1: true }, (req: Http2ServerRequest, res: Http2ServerResponse) => {
    versions.push(req.httpVersion);
    const match = /^bytes=(\d+)-(\d+)$/.exec(req.headers["range"] ?? "");
    if (!match) {
      res.writeHead(200, { "content-length": String(content.length), etag: '"h2-v1"' }).end(content);
      return;
    }
    const start = Number(match[1]);
    const end = Math.min(Number(match[2]), content.length - 1);
    // Slow enough that the ranges overlap in time, so a client that multiplexed would
    // show it: every range would ride the first connection.
    setTimeout(() => {
      res.writeHead(206, { "content-range": `bytes ${start}-${end}/${content.length}`, "content-length": String(end - start + 1), etag: '"h2-v1"' });
      res.end(content.subarray(start, end + 1));
    }, 150);
  });
  server.on("secureConnection", (socket: TLSSocket) => protocols.push(String(socket.alpnProtocol)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closeAfterTest(() => new Promise((resolve) => server.close(resolve)));
  const port = (server.address() as AddressInfo).port;

  const dir = await tempDir();
  const run = await runCli(["-q", "-c", "4", "--min-split", "1M", "--ca", testCa.certPath, "-o", "out.bin", `https://127.0.0.1:${port}/f.bin`], { cwd: dir });
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
  expect(sha256(await readFile(join(dir, "out.bin")))).toBe(sha256(content));
  expect(new Set(versions)).toEqual(new Set(["1.1"]));
  expect(protocols.every((protocol) => protocol === "http/1.1")).toBe(true);
  expect(protocols.length).toBeGreaterThanOrEqual(4);
});

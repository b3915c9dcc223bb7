import { createSecureServer, type Http2ServerRequest, type Http2ServerResponse } from "node:http2";
import type { AddressInfo } from "node:net";
import type { TLSSocket } from "node:tls";
import { closeAfterTest } from "./servers.js";
import { serverCert } from "./tls-fixtures.js";

/**
 * An HTTPS range server on 127.0.0.1 that offers both HTTP/2 and HTTP/1.1 (ALPN h2 and
 * http/1.1), closed after the test: what undici 8 would multiplex every range over
 * unless told `allowH2: false`. Each 206 waits 150 ms, so ranges overlap in time and a
 * client that multiplexed would show as one connection. `protocols` holds the ALPN
 * protocol of each TLS connection, `versions` the HTTP version of each request.
 */
export async function startH2CapableRangeServer(content: Buffer): Promise<{ port: number; protocols: string[]; versions: string[] }> {
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
    setTimeout(() => {
      res.writeHead(206, { "content-range": `bytes ${start}-${end}/${content.length}`, "content-length": String(end - start + 1), etag: '"h2-v1"' });
      res.end(content.subarray(start, end + 1));
    }, 150);
  });
  server.on("secureConnection", (socket: TLSSocket) => protocols.push(String(socket.alpnProtocol)));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  closeAfterTest(() => new Promise((resolve) => server.close(resolve)));
  return { port: (server.address() as AddressInfo).port, protocols, versions };
}

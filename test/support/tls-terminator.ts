import { connect, type Socket } from "node:net";
import { createServer, type TLSSocket } from "node:tls";
import { listenOnLoopback } from "./listen.js";

export interface TlsTerminator {
  readonly port: number;
  /** `https://<host>:<port><path>`; host 127.0.0.1 unless given. */
  url(path?: string, host?: string): string;
  /** TLS handshakes that completed. */
  handshakes(): number;
  /** Handshakes the client broke off (an untrusted certificate, most often). */
  failedHandshakes(): number;
  close(): Promise<void>;
}

/**
 * HTTPS in front of any HTTP test server on 127.0.0.1: each TLS connection is
 * decrypted and piped to `targetPort`, so the range server's faults, counters and
 * recorded requests work unchanged over HTTPS.
 */
export async function startTlsTerminator(options: { targetPort: number; cert: string; key: string }): Promise<TlsTerminator> {
  const sockets = new Set<Socket>();
  let handshakes = 0;
  let failed = 0;
  const server = createServer({ cert: options.cert, key: options.key }, (tlsSocket: TLSSocket) => {
    handshakes += 1;
    const upstream = connect(options.targetPort, "127.0.0.1");
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    const teardown = () => {
      tlsSocket.destroy();
      upstream.destroy();
    };
    tlsSocket.on("error", teardown);
    upstream.on("error", teardown);
    tlsSocket.pipe(upstream);
    upstream.pipe(tlsSocket);
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("tlsClientError", () => (failed += 1));
  const port = await listenOnLoopback(server);
  return {
    port,
    url: (path = "/file.bin", host = "127.0.0.1") => `https://${host}:${port}${path.startsWith("/") ? path : `/${path}`}`,
    handshakes: () => handshakes,
    failedHandshakes: () => failed,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

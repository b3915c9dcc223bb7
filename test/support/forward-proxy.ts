import { createServer, request as httpRequest, type IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import { listenOnLoopback } from "./listen.js";

export interface ProxiedRequest {
  /** "CONNECT" for a tunnel, else the forwarded method. */
  method: string;
  /** "host:port" for CONNECT, the absolute URI otherwise. */
  target: string;
  headers: IncomingMessage["headers"];
}

export interface ForwardProxy {
  readonly port: number;
  readonly url: string;
  readonly requests: ProxiedRequest[];
  close(): Promise<void>;
}

/**
 * A minimal HTTP forward proxy on 127.0.0.1 that records what passes: absolute-URI
 * requests are forwarded to http:// targets (undici 8 sends http:// targets that way),
 * CONNECT opens a tunnel (https:// targets). With `refuse`, every request is answered with
 * that status instead (a proxy demanding authentication, say).
 */
export async function startForwardProxy(options: { refuse?: number } = {}): Promise<ForwardProxy> {
  const requests: ProxiedRequest[] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    requests.push({ method: req.method ?? "", target: req.url ?? "", headers: req.headers });
    res.on("error", () => {});
    if (options.refuse !== undefined || !/^http:\/\//.test(req.url ?? "")) {
      res.writeHead(options.refuse ?? 400, { "content-length": "0", "proxy-authenticate": 'Basic realm="test"' }).end();
      return;
    }
    const target = new URL(req.url!);
    // Proxy-Authorization is the proxy's own (RFC 9110 §11.7.2): a proxy consumes it.
    const { "proxy-connection": _dropped, "proxy-authorization": _consumed, ...headers } = req.headers;
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, path: target.pathname + target.search, method: req.method, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connect", (req: IncomingMessage, client: Socket, head: Buffer) => {
    requests.push({ method: "CONNECT", target: req.url ?? "", headers: req.headers });
    client.on("error", () => client.destroy());
    if (options.refuse !== undefined) {
      client.end(`HTTP/1.1 ${options.refuse} Refused\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const [host = "", port = ""] = (req.url ?? "").split(/:(?=\d+$)/);
    const upstream = connect(Number(port), host, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    upstream.on("error", () => {
      client.destroy();
      upstream.destroy();
    });
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("clientError", (_error, socket) => socket.destroy());
  const port = await listenOnLoopback(server);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}

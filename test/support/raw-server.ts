import { createServer, type Socket } from "node:net";
import { listenOnLoopback } from "./listen.js";

export interface RawRequest {
  method: string;
  path: string;
  /** Lower-cased names. */
  headers: Record<string, string>;
}

export interface RawServer {
  readonly port: number;
  url(path?: string): string;
  readonly requests: RawRequest[];
  connections(): number;
  close(): Promise<void>;
}

/**
 * A TCP server that answers in raw bytes, for what node:http refuses to send: junk
 * instead of HTTP, malformed status lines, NUL and control characters in headers. One
 * request per connection; `respond` is called with the parsed request head, or at
 * once with `undefined` when `onConnect` is set (the server speaks first, or hangs up).
 */
export async function startRawServer(
  respond: (socket: Socket, request: RawRequest | undefined) => void,
  options: { onConnect?: boolean } = {},
): Promise<RawServer> {
  const requests: RawRequest[] = [];
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections += 1;
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
    if (options.onConnect) {
      respond(socket, undefined);
      return;
    }
    let head = "";
    const onData = (data: Buffer) => {
      head += data.toString("latin1");
      const end = head.indexOf("\r\n\r\n");
      if (end === -1) {
        if (head.length > 64 * 1024) socket.destroy();
        return;
      }
      socket.off("data", onData);
      socket.resume();
      const [requestLine = "", ...headerLines] = head.slice(0, end).split("\r\n");
      const [method = "", path = ""] = requestLine.split(" ");
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(":");
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const request = { method, path, headers };
      requests.push(request);
      respond(socket, request);
    };
    socket.on("data", onData);
  });
  const port = await listenOnLoopback(server);
  return {
    port,
    url: (path = "/file.bin") => `http://127.0.0.1:${port}${path.startsWith("/") ? path : `/${path}`}`,
    requests,
    connections: () => connections,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * A well-formed answer to `request` from `content` (206 for a satisfiable single
 * "bytes=a-b" range, else 200), plus `extraHeaderLines` sent byte for byte (latin1),
 * then the connection closes.
 */
export function rangeAnswer(content: Buffer, request: RawRequest, extraHeaderLines: string[] = []): Buffer {
  const match = /^bytes=(\d+)-(\d*)$/.exec(request.headers["range"] ?? "");
  let status = "200 OK";
  let body = content;
  const headers = ["Content-Type: application/octet-stream", 'ETag: "raw-v1"', "Accept-Ranges: bytes", "Connection: close"];
  if (match) {
    const start = Number(match[1]);
    const end = Math.min(match[2] === "" ? content.length - 1 : Number(match[2]), content.length - 1);
    if (start < content.length && start <= end) {
      status = "206 Partial Content";
      body = content.subarray(start, end + 1);
      headers.push(`Content-Range: bytes ${start}-${end}/${content.length}`);
    }
  }
  headers.push(`Content-Length: ${body.length}`, ...extraHeaderLines);
  return Buffer.concat([Buffer.from(`HTTP/1.1 ${status}\r\n${headers.join("\r\n")}\r\n\r\n`, "latin1"), body]);
}

/** Writes `bytes`, then closes once they are flushed. */
export function sendAndClose(socket: Socket, bytes: Buffer | string): void {
  socket.end(typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes);
}

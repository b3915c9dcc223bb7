import { createServer, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Readable } from "node:stream";
import { buffer } from "node:stream/consumers";
import { pipeline } from "node:stream/promises";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { getResponse, type RequestHandler } from "msw";

export interface MswServer {
  readonly origin: string;
  url(path?: string): string;
  /** Prepends handlers, so they take precedence (like msw's `server.use`). */
  use(...handlers: RequestHandler[]): void;
  close(): Promise<void>;
}

/**
 * Serves msw handlers over a real socket: msw cannot intercept undici on Node 20,
 * so requests are turned into Fetch `Request`s and answered via msw's `getResponse`.
 * Relative handler paths ("/file.bin") resolve against this server's origin.
 */
export async function startMswServer(handlers: RequestHandler[]): Promise<MswServer> {
  let current = [...handlers];
  const sockets = new Set<Socket>();
  let origin = "";

  const server = createServer((req, res) => {
    serve(req, res).catch(() => res.destroy());
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  server.on("clientError", (_err, socket) => socket.destroy());

  async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    res.on("error", () => {});
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    const request = await toRequest(req, origin, abort.signal);

    let response: Response | undefined;
    try {
      response = await getResponse(current, request, { baseUrl: origin });
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
      res.end(`handler threw: ${String(err)}\n`);
      return;
    }
    if (!response || response.headers.get("x-msw-intention") === "passthrough") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
      res.end("no msw handler\n");
      return;
    }
    if (response.type === "error") {
      // HttpResponse.error() means "network error": the closest real-socket equivalent is a dropped connection.
      res.destroy();
      return;
    }
    res.writeHead(response.status, response.statusText || undefined, toNodeHeaders(response.headers));
    if (req.method === "HEAD" || !response.body) {
      res.end();
      return;
    }
    await pipeline(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), res).catch(() => {
      res.destroy();
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    origin,
    url: (path = "/file.bin") => origin + (path.startsWith("/") ? path : `/${path}`),
    use: (...more) => {
      current = [...more, ...current];
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}

async function toRequest(req: IncomingMessage, origin: string, signal: AbortSignal): Promise<Request> {
  const headers = new Headers();
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    headers.append(req.rawHeaders[i] as string, req.rawHeaders[i + 1] as string);
  }
  const method = req.method ?? "GET";
  let body: Uint8Array<ArrayBuffer> | undefined;
  if (method !== "GET" && method !== "HEAD") {
    body = new Uint8Array(await buffer(req));
  } else {
    req.resume();
  }
  return new Request(new URL(req.url ?? "/", origin), { method, headers, body, signal });
}

function toNodeHeaders(headers: Headers): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  headers.forEach((value, name) => {
    if (name !== "set-cookie") out[name] = value;
  });
  const cookies = headers.getSetCookie();
  if (cookies.length > 0) out["set-cookie"] = cookies;
  return out;
}

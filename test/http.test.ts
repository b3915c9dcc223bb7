import { createServer } from "node:http";
import type { Socket } from "node:net";
import { text } from "node:stream/consumers";
import { describe, expect, it } from "vitest";
import { HttpStatusError, NetworkError } from "../src/errors.js";
import { discard, STOP, streamGet, type BodyHandler } from "../src/http.js";
import { request, requestResponse, type Ask } from "../src/request.js";
import { USER_AGENT } from "../src/request-headers.js";
import { makeContent } from "./support/content.js";
import { requestContext } from "./support/http-context.js";
import { listenOnLoopback } from "./support/listen.js";
import { closeAfterTest, rangeServer, rawServer } from "./support/servers.js";
import { until } from "./support/until.js";

const anyStatus = () => true;
/** A plain GET of `url` through the whole request path. */
const ask = (url: string, extra: Partial<Ask> = {}): Ask => ({ url, signal: new AbortController().signal, ...extra });
const only200 = (status: number) => status === 200;

/** A handler that keeps every chunk and the headers it was shown. */
function collector(): BodyHandler & { chunks: Buffer[]; status?: number; headers?: Record<string, string | undefined> } {
  const handler = {
    chunks: [] as Buffer[],
    status: undefined as number | undefined,
    headers: undefined as Record<string, string | undefined> | undefined,
    onHeaders(status: number, headers: Record<string, string | undefined>) {
      handler.status = status;
      handler.headers = headers;
    },
    onData(chunk: Buffer) {
      handler.chunks.push(chunk);
      return undefined;
    },
  };
  return handler;
}

/**
 * A raw server that answers with `head` and the first `body` bytes, then holds the
 * connection open; `closed` resolves when the client hangs up.
 */
async function holdingServer(head: string, body: Buffer) {
  let socket: Socket | undefined;
  const server = await rawServer((client) => {
    socket = client;
    client.write(Buffer.concat([Buffer.from(head, "latin1"), body]));
  });
  const closed = async () => {
    await until(() => socket !== undefined, "the server to see the connection");
    // A reset is a close too: events.once would reject on the socket's error instead.
    if (!socket!.closed) await new Promise((resolve) => socket!.once("close", resolve));
  };
  return { server, closed };
}

describe("streamGet: what is sent", () => {
  it("asks for the identity encoding even when the user's headers ask for gzip, and names itself", async () => {
    const server = await rangeServer({ content: makeContent(1000) });
    const context = requestContext({ userOrigin: server.origin, userHeaders: { "Accept-Encoding": "gzip", "X-Token": "t1" } });
    await request(context, ask(server.url()), collector());
    expect(server.requests[0]!.headers["accept-encoding"]).toBe("identity");
    expect(server.requests[0]!.headers["user-agent"]).toBe(USER_AGENT);
    expect(USER_AGENT).toMatch(/^rangeget\/\d+\.\d+\.\d+/);
    expect(server.requests[0]!.headers["x-token"]).toBe("t1");
  });

  it("sends the user's headers only to their own origin", async () => {
    const theirs = await rangeServer({ content: makeContent(100) });
    const other = await rangeServer({ content: makeContent(100) });
    const context = requestContext({ userOrigin: theirs.origin, userHeaders: { "X-Api-Key": "secret" } });
    await request(context, ask(other.url()), collector());
    expect(other.requests[0]!.headers["x-api-key"]).toBeUndefined();
  });

  it("counts the request, its status and its origin in the stats", async () => {
    const server = await rangeServer({ content: makeContent(100) });
    const context = requestContext();
    await streamGet(context, server.url(), { range: "bytes=0-9" }, new AbortController().signal, anyStatus, collector());
    const stats = context.stats.snapshot();
    expect(stats.requests).toBe(1);
    expect(stats.statusCounts).toEqual({ "206": 1 });
    expect(stats.origins[server.origin]?.requests).toBe(1);
  });
});

describe("streamGet: the answer", () => {
  it("hands the final status, the headers and every body byte to the handler", async () => {
    const content = makeContent(300_000);
    const server = await rangeServer({ content });
    const handler = collector();
    await streamGet(requestContext(), server.url(), { range: "bytes=10-199999" }, new AbortController().signal, anyStatus, handler);
    expect(handler.status).toBe(206);
    expect(handler.headers?.["content-range"]).toBe(`bytes 10-199999/${content.length}`);
    expect(Buffer.concat(handler.chunks).equals(content.subarray(10, 200_000))).toBe(true);
  });

  it("gives up on a server that sends informational answers forever: the deadline does not move", async () => {
    const server = await rawServer((socket) => {
      const hint = () => socket.write("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n");
      hint();
      const timer = setInterval(hint, 20);
      socket.on("close", () => clearInterval(timer));
    });
    const context = requestContext({ timeoutMs: 300 });
    const error = await streamGet(context, server.url(), {}, new AbortController().signal, anyStatus, collector()).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).code).toBe("ERR_TIMEOUT");
  });

  it("fails a refused status with the status's reason phrase and the body's first line when the body is long", async () => {
    const reason = `NoSuchKey\n  The specified key does not exist. ${"x".repeat(300)}`;
    const server = await rangeServer({ content: makeContent(10), onRequest: () => ({ status: 404, text: reason }) });
    const handler = collector();
    const error = await streamGet(requestContext(), server.url(), {}, new AbortController().signal, only200, handler).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(HttpStatusError);
    expect((error as HttpStatusError).status).toBe(404);
    expect((error as HttpStatusError).message).toContain("(Not Found: NoSuchKey …)");
    expect((error as HttpStatusError).message).not.toContain("x".repeat(200));
    expect(handler.status).toBeUndefined();
    expect(handler.chunks).toEqual([]);
  });

  it("carries the Retry-After of a refused status as a delay", async () => {
    const server = await rangeServer({ content: makeContent(10), onRequest: () => ({ status: 503, retryAfter: "7" }) });
    const error = await streamGet(requestContext(), server.url(), {}, new AbortController().signal, only200, collector()).catch(
      (caught: unknown) => caught,
    );
    expect((error as HttpStatusError).retryAfterMs).toBe(7000);
  });

  it("ends the request once it has the reason, without reading a large error body", async () => {
    const head = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 10000000\r\n\r\n";
    const { server, closed } = await holdingServer(head, Buffer.from("E".repeat(4096)));
    const error = await streamGet(requestContext(), server.url(), {}, new AbortController().signal, only200, collector()).catch(
      (caught: unknown) => caught,
    );
    expect((error as HttpStatusError).status).toBe(500);
    await closed();
  });

  it("stops reading while the handler's promise is pending, and goes on when it settles", async () => {
    const content = makeContent(8 * 1024 * 1024);
    const server = await rangeServer({ content });
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const chunks: Buffer[] = [];
    let firstChunkSeen = false;
    const handler: BodyHandler = {
      onHeaders() {},
      onData(chunk) {
        chunks.push(chunk);
        if (firstChunkSeen) return undefined;
        firstChunkSeen = true;
        return gate;
      },
    };
    const request = streamGet(requestContext(), server.url(), {}, new AbortController().signal, anyStatus, handler);
    await until(() => chunks.length > 0, "the first chunk of the body");
    // Time for more chunks to arrive, were the socket still being read.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(chunks).toHaveLength(1);
    release();
    await request;
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
  });

  it("fails the request with the error of a handler's promise", async () => {
    const server = await rangeServer({ content: makeContent(100_000) });
    const diskFull = new Error("ENOSPC");
    const handler: BodyHandler = { onHeaders() {}, onData: () => Promise.reject(diskFull) };
    await expect(streamGet(requestContext(), server.url(), {}, new AbortController().signal, anyStatus, handler)).rejects.toBe(diskFull);
  });

  it("refuses an answer when onHeaders throws, with that error, and shows the handler no byte", async () => {
    const server = await rangeServer({ content: makeContent(100_000) });
    const refusal = new Error("not the range asked for");
    const chunks: Buffer[] = [];
    const handler: BodyHandler = {
      onHeaders() {
        throw refusal;
      },
      onData(chunk) {
        chunks.push(chunk);
        return undefined;
      },
    };
    await expect(streamGet(requestContext(), server.url(), {}, new AbortController().signal, anyStatus, handler)).rejects.toBe(refusal);
    expect(chunks).toEqual([]);
  });

  it("resolves and ends the request when the handler answers STOP", async () => {
    const head = "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n";
    const { server, closed } = await holdingServer(head, makeContent(1000));
    let calls = 0;
    const handler: BodyHandler = {
      onHeaders() {},
      onData: () => {
        calls++;
        return STOP;
      },
    };
    await streamGet(requestContext(), server.url(), {}, new AbortController().signal, anyStatus, handler);
    expect(calls).toBe(1);
    await closed();
  });

  it("rejects with the signal's reason and ends the request when the caller aborts", async () => {
    const head = "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n";
    const { server, closed } = await holdingServer(head, makeContent(1000));
    const abort = new AbortController();
    const reason = new Error("user pressed Ctrl-C");
    const handler: BodyHandler = {
      onHeaders() {},
      onData: () => {
        abort.abort(reason);
        return undefined;
      },
    };
    await expect(streamGet(requestContext(), server.url(), {}, abort.signal, anyStatus, handler)).rejects.toBe(reason);
    await closed();
  });

  it("maps a connection cut mid-body to a NetworkError naming the URL", async () => {
    const server = await rangeServer({ content: makeContent(100_000), onRequest: () => ({ dropAfterBytes: 5000 }) });
    const error = await streamGet(requestContext(), server.url(), {}, new AbortController().signal, anyStatus, collector()).catch(
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).url).toBe(server.url());
  });
});

describe("requestResponse", () => {
  it("resolves at the headers with the body as a Readable holding every byte", async () => {
    const content = makeContent(2 * 1024 * 1024);
    const server = await rangeServer({ content, etag: '"v1"' });
    const response = await requestResponse(requestContext(), ask(server.url()));
    expect(response.status).toBe(200);
    expect(response.headers["etag"]).toBe('"v1"');
    expect(response.url).toBe(server.url());
    const chunks: Buffer[] = [];
    for await (const chunk of response.body as AsyncIterable<Buffer>) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(content)).toBe(true);
  });

  it("rejects, before any body, with the error of a refused status", async () => {
    const server = await rangeServer({ content: makeContent(10), onRequest: () => ({ status: 403, text: "AccessDenied" }) });
    const error = await requestResponse(requestContext(), ask(server.url())).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(HttpStatusError);
    expect((error as HttpStatusError).message).toContain("AccessDenied");
  });

  it("ends the request when the body is destroyed", async () => {
    const head = "HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n";
    const { server, closed } = await holdingServer(head, makeContent(1000));
    const response = await requestResponse(requestContext(), ask(server.url()));
    response.body.destroy();
    await closed();
  });

  it("errors the body with a NetworkError when the connection is cut mid-body", async () => {
    const server = await rangeServer({ content: makeContent(100_000), onRequest: () => ({ dropAfterBytes: 5000 }) });
    const response = await requestResponse(requestContext(), ask(server.url()));
    await expect(text(response.body)).rejects.toBeInstanceOf(NetworkError);
  });
});

describe("discard", () => {
  it("drains a short body so the connection is used again", async () => {
    let connections = 0;
    const server = createServer((_request, response) => response.end("a short answer"));
    server.on("connection", () => connections++);
    const port = await listenOnLoopback(server);
    closeAfterTest(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });
    const context = requestContext();
    for (let index = 0; index < 3; index++) {
      await discard(await requestResponse(context, ask(`http://127.0.0.1:${port}/`)));
      // undici hands the socket back to its pool just after the answer ends.
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(connections).toBe(1);
  });

  it("ends the request instead of reading a large body to its end", async () => {
    const head = "HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n";
    const { server, closed } = await holdingServer(head, makeContent(200 * 1024));
    await discard(await requestResponse(requestContext(), ask(server.url())));
    await closed();
  });
});

describe("request: redirects", () => {
  it("follows relative and absolute Locations to the final answer, whose URL it reports", async () => {
    const target = await rangeServer({ content: makeContent(10) });
    const server = await rangeServer({
      content: makeContent(10),
      onRequest: (request) =>
        request.path === "/start" ? { redirectTo: "/next#fragment", status: 301 } : { redirectTo: target.url("/final.bin"), status: 307 },
    });
    const response = await requestResponse(requestContext(), ask(server.url("/start")));
    await discard(response);
    expect(response.status).toBe(200);
    expect(response.url).toBe(target.url("/final.bin"));
    expect(server.requests.map((request) => request.path)).toEqual(["/start", "/next"]);
  });

  it("gives up after 10 redirects", async () => {
    const server = await rangeServer({
      content: makeContent(10),
      onRequest: (request) => ({ redirectTo: `/hop${request.index + 1}`, status: 302 }),
    });
    const error = await requestResponse(requestContext(), ask(server.url("/hop0"))).catch(
      (caught: unknown) => caught,
    );
    expect((error as HttpStatusError).code).toBe("ERR_TOO_MANY_REDIRECTS");
    expect(server.requests).toHaveLength(11);
  });

  it("stops at a loop as soon as a redirect leads back to a URL already visited", async () => {
    const server = await rangeServer({
      content: makeContent(10),
      onRequest: (request) => ({ redirectTo: request.path === "/a" ? "/b" : "/a", status: 302 }),
    });
    const error = await requestResponse(requestContext(), ask(server.url("/a"))).catch(
      (caught: unknown) => caught,
    );
    expect((error as HttpStatusError).code).toBe("ERR_REDIRECT_LOOP");
    expect(server.requests).toHaveLength(2);
  });

  it.each([
    ["file:///etc/passwd", "unsupported scheme file:"],
    ["ftp://127.0.0.1/file.bin", "unsupported scheme ftp:"],
    ["http://[::1", "which is not a URL"],
  ])("refuses a redirect to %s", async (location, message) => {
    const server = await rangeServer({ content: makeContent(10), onRequest: () => ({ redirectTo: location, status: 302 }) });
    const error = await requestResponse(requestContext(), ask(server.url())).catch(
      (caught: unknown) => caught,
    );
    expect((error as HttpStatusError).code).toBe("ERR_BAD_REDIRECT");
    expect((error as HttpStatusError).message).toContain(message);
    expect(server.requests).toHaveLength(1);
  });

  it("refuses a redirect without a Location header", async () => {
    const server = await rangeServer({ content: makeContent(10), onRequest: () => ({ status: 302 }) });
    const error = await requestResponse(requestContext(), ask(server.url())).catch(
      (caught: unknown) => caught,
    );
    expect((error as HttpStatusError).code).toBe("ERR_BAD_REDIRECT");
    expect((error as HttpStatusError).message).toContain("without a Location header");
  });

  it("keeps credentials on a redirect within the origin and strips them, and the user's headers, at another", async () => {
    const other = await rangeServer({ content: makeContent(10) });
    const server = await rangeServer({
      content: makeContent(10),
      onRequest: (request) => (request.path === "/start" ? { redirectTo: "/same", status: 302 } : request.path === "/same" ? { redirectTo: other.url(), status: 302 } : undefined),
    });
    const userHeaders = { "X-Api-Key": "k", Authorization: "Bearer secret", Cookie: "session=1", "Proxy-Authorization": "Basic x" };
    const context = requestContext({ userOrigin: server.origin, userHeaders });
    await discard(await requestResponse(context, ask(server.url("/start"), { range: { start: 0, end: 4 } })));
    const [start, same] = server.requests;
    for (const request of [start!, same!]) {
      expect(request.headers["authorization"]).toBe("Bearer secret");
      expect(request.headers["cookie"]).toBe("session=1");
      expect(request.headers["x-api-key"]).toBe("k");
    }
    const elsewhere = other.requests[0]!;
    expect(elsewhere.headers["authorization"]).toBeUndefined();
    expect(elsewhere.headers["cookie"]).toBeUndefined();
    expect(elsewhere.headers["proxy-authorization"]).toBeUndefined();
    expect(elsewhere.headers["x-api-key"]).toBeUndefined();
    // What is not a credential still goes along: the range is part of the question.
    expect(elsewhere.headers["range"]).toBe("bytes=0-4");
  });
});

import { http, HttpResponse } from "msw";
import { Agent, request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { makeContent } from "./support/content.js";
import { startMswServer } from "./support/msw-server.js";

const content = makeContent(50_000, 3);
const agent = new Agent();
afterAll(() => agent.close());

describe("msw bridge", () => {
  it("serves handler responses over a real socket, with 206 and custom headers", async () => {
    const server = await startMswServer([
      http.get("/file.bin", ({ request: req }) => {
        const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.get("range") ?? "");
        if (!m) {
          return new HttpResponse(content, { headers: { "content-length": String(content.length), etag: '"v1"' } });
        }
        const [start, end] = [Number(m[1]), Number(m[2])];
        return new HttpResponse(content.subarray(start, end + 1), {
          status: 206,
          headers: {
            "content-range": `bytes ${start}-${end}/${content.length}`,
            "content-length": String(end - start + 1),
            "x-custom": "yes",
          },
        });
      }),
    ]);
    try {
      const full = await request(server.url(), { dispatcher: agent });
      expect(full.statusCode).toBe(200);
      expect(full.headers.etag).toBe('"v1"');
      expect(Buffer.from(await full.body.arrayBuffer()).equals(content)).toBe(true);

      const part = await request(server.url(), { dispatcher: agent, headers: { range: "bytes=100-199" } });
      expect(part.statusCode).toBe(206);
      expect(part.headers["content-range"]).toBe(`bytes 100-199/${content.length}`);
      expect(part.headers["x-custom"]).toBe("yes");
      expect(Buffer.from(await part.body.arrayBuffer()).equals(content.subarray(100, 200))).toBe(true);
    } finally {
      await server.close();
    }
  });

  it("answers 404 without a handler, lets later handlers take precedence, and streams", async () => {
    const server = await startMswServer([http.get("*/hello", () => HttpResponse.text("hello"))]);
    try {
      const missing = await request(server.url("/nope"), { dispatcher: agent });
      expect(missing.statusCode).toBe(404);
      await missing.body.dump();

      expect(await (await fetch(server.url("/hello"))).text()).toBe("hello");
      server.use(
        http.get(server.url("/hello"), () => {
          const stream = new ReadableStream<Uint8Array>({
            start(controller) {
              controller.enqueue(new TextEncoder().encode("streamed "));
              controller.enqueue(new TextEncoder().encode("body"));
              controller.close();
            },
          });
          return new HttpResponse(stream, { headers: { "x-from": "override" } });
        }),
      );
      const over = await fetch(server.url("/hello"));
      expect(over.headers.get("x-from")).toBe("override");
      expect(await over.text()).toBe("streamed body");
    } finally {
      await server.close();
    }
  });

  it("passes request bodies and headers through", async () => {
    const server = await startMswServer([
      http.post("/echo", async ({ request: req }) =>
        HttpResponse.text(`${req.headers.get("x-tag")}:${await req.text()}`, { status: 201 }),
      ),
    ]);
    try {
      const res = await fetch(server.url("/echo"), { method: "POST", headers: { "x-tag": "t" }, body: "payload" });
      expect(res.status).toBe(201);
      expect(await res.text()).toBe("t:payload");
    } finally {
      await server.close();
    }
  });

  it("turns HttpResponse.error() into a dropped connection", async () => {
    const server = await startMswServer([http.get("/file.bin", () => HttpResponse.error())]);
    try {
      await expect(request(server.url(), { dispatcher: agent })).rejects.toThrow();
    } finally {
      await server.close();
    }
  });
});

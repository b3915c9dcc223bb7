import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InterimFilter } from "../src/interim-answers.js";

const FINAL = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/10\r\nContent-Length: 10\r\n\r\n0123456789";

/** What the parser sees when `chunks` arrive after one request. */
function passed(chunks: string[], filter = new InterimFilter(), sent = true): string {
  if (sent) filter.requestSent();
  return chunks.map((chunk) => filter.take(Buffer.from(chunk, "latin1")).toString("latin1")).join("");
}

/** `text` cut at `cuts` (offsets, any order). */
function cut(text: string, cuts: number[]): string[] {
  const points = [...new Set(cuts.map((point) => point % (text.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let from = 0;
  for (const point of points) {
    pieces.push(text.slice(from, point));
    from = point;
  }
  pieces.push(text.slice(from));
  return pieces;
}

describe("InterimFilter: interim heads before the final answer (RFC 9110 15.2)", () => {
  it.each([
    ["an unasked 100 Continue", "HTTP/1.1 100 Continue\r\n\r\n"],
    ["an HTTP/1.0 100 without a reason phrase", "HTTP/1.0 100\r\n\r\n"],
    ["103 Early Hints with a Link", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"],
    ["102 then 103 then 100", "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"],
  ])("drops %s, in one chunk or byte by byte", (_name, interim) => {
    expect(passed([interim + FINAL])).toBe(FINAL);
    expect(passed([...interim + FINAL])).toBe(FINAL);
  });

  it("passes a final answer as it came, the same buffer", () => {
    const filter = new InterimFilter();
    filter.requestSent();
    const chunk = Buffer.from(FINAL, "latin1");
    expect(filter.take(chunk)).toBe(chunk);
  });

  it("leaves a 101 to undici (not an interim answer) and everything before the first request", () => {
    const upgrade = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    expect(passed([upgrade + FINAL])).toBe(upgrade + FINAL);
    expect(passed(["HTTP/1.1 100 Continue\r\n\r\n"], new InterimFilter(), false)).toBe("HTTP/1.1 100 Continue\r\n\r\n");
  });

  it("never touches a body, even one that reads like an interim head", () => {
    const body = "HTTP/1.1 100 Continue\r\n\r\n";
    const answer = `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    expect(passed([answer])).toBe(answer);
    expect(passed([...answer])).toBe(answer);
  });

  it("drops the interim heads of each answer on a kept-alive connection", () => {
    const filter = new InterimFilter();
    expect(passed([`HTTP/1.1 100 Continue\r\n\r\n${FINAL}`], filter)).toBe(FINAL);
    expect(passed([`HTTP/1.1 103 Early Hints\r\n\r\n${FINAL}`], filter)).toBe(FINAL);
  });

  it("gives up on an interim head longer than 16 KiB: the bytes go on as they came", () => {
    const huge = `HTTP/1.1 100 Continue\r\nX-Pad: ${"x".repeat(17 * 1024)}`;
    expect(passed([huge])).toBe(huge);
  });

  it("for any cuts of the bytes, passes exactly the final answer", () => {
    const interim = fc.constantFrom("HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", "HTTP/1.0 102\r\n\r\n");
    fc.assert(
      fc.property(fc.array(interim, { maxLength: 3 }), fc.array(fc.nat(), { maxLength: 8 }), (heads, cuts) => {
        const text = heads.join("") + FINAL;
        expect(passed(cut(text, cuts))).toBe(FINAL);
      }),
    );
  });
});

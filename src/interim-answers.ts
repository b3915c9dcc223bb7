/**
 * Interim answers that undici refuses. RFC 9110 15.2: a client must be able to parse one
 * or more 1xx answers before the final one, even when it did not expect one, and may
 * ignore them. undici 8.13 skips `102` and `103` but destroys the socket on a `100
 * Continue` it did not ask for ("bad response", lib/dispatcher/client-h1.js
 * onHeadersComplete), so a server or proxy that sends one anyway fails every request.
 *
 * The fix sits under undici's parser, on each socket: every interim head (`1xx` but
 * `101`, which is no interim answer) at the front of an answer is dropped before undici
 * reads it, so a `100` after a `103` is dropped too. A connection carries one
 * request at a time (pipelining 1), so an answer begins right after a request is
 * written; everything after the first byte of a final answer passes untouched.
 */
import type { Socket } from "node:net";

const HEAD_END = Buffer.from("\r\n\r\n");
/** The status line of an interim answer: `HTTP/1.1 103 ` (or `HTTP/1.0`, or no reason phrase); not `101`. */
const INTERIM = /^HTTP\/1\.[01] 1(?!01)[0-9]{2}[ \r]/;
/** Bytes that tell an interim answer from any other status line. */
const STATUS_BYTES = 13;
/** An interim head longer than this is no honest one: its bytes go to undici as they came. */
const MAX_HEAD_BYTES = 16 * 1024;

/**
 * The decision, without I/O: `requestSent` marks where an answer begins, `take` gets each
 * chunk read from the socket and returns what undici may see (possibly empty: bytes held
 * until they tell whether they begin an interim head, or an interim head dropped).
 */
export class InterimFilter {
  /** At the front of an answer: interim heads may come first. */
  #atFront = false;
  #held: Buffer = Buffer.alloc(0);

  /** A request was written: the next bytes begin its answer. */
  requestSent(): void {
    this.#atFront = true;
  }

  /** What of `chunk` (after any held bytes) passes to the parser. */
  take(chunk: Buffer): Buffer {
    if (!this.#atFront) return chunk;
    let data = this.#held.length > 0 ? Buffer.concat([this.#held, chunk]) : chunk;
    this.#held = Buffer.alloc(0);
    while (data.length > 0) {
      const status = data.subarray(0, STATUS_BYTES).toString("latin1");
      if (status.length < STATUS_BYTES && mayBeginInterim(status)) return this.#hold(data);
      if (!INTERIM.test(status)) break;
      const end = data.indexOf(HEAD_END);
      if (end === -1) {
        if (data.length > MAX_HEAD_BYTES) break;
        return this.#hold(data);
      }
      data = data.subarray(end + HEAD_END.length);
    }
    if (data.length > 0) this.#atFront = false;
    return data;
  }

  #hold(data: Buffer): Buffer {
    this.#held = data;
    return Buffer.alloc(0);
  }
}

/** Whether `text`, shorter than a status line's first 13 bytes, may still become an interim `HTTP/1.x 1xx`. */
function mayBeginInterim(text: string): boolean {
  const template = "HTTP/1.1 1";
  for (let index = 0; index < text.length; index++) {
    const char = text[index] ?? "";
    const fits = index === 7 ? char === "0" || char === "1" : index >= 10 ? /[0-9]/.test(char) : char === template[index];
    if (!fits) return false;
  }
  return !text.startsWith("101", 9);
}

/**
 * Makes `socket` drop the interim heads (a `100` undici would refuse among them) from the
 * front of each answer before undici's parser reads it (undici reads with `socket.read()` on 'readable' and writes
 * each request with `socket.write`). Returns the same socket.
 */
export function skipInterimAnswers<S extends Socket>(socket: S): S {
  const filter = new InterimFilter();
  const write = socket.write;
  const read = socket.read;
  socket.write = function (this: S, ...args: unknown[]): boolean {
    filter.requestSent();
    return (write as (...params: unknown[]) => boolean).apply(this, args);
  } as S["write"];
  socket.read = function (this: S, size?: number): unknown {
    for (;;) {
      const chunk = read.call(this, size) as Buffer | null;
      if (chunk === null) return null;
      const passed = filter.take(chunk);
      if (passed.length > 0) return passed;
    }
  } as S["read"];
  return socket;
}

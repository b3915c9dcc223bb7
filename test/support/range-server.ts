import { createHash } from "node:crypto";
import {
  createServer,
  STATUS_CODES,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { gzipSync } from "node:zlib";

export interface RecordedRequest {
  index: number;
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  /** Parsed "bytes=a-b" / "bytes=a-"; a suffix "bytes=-n" is recorded as { start: -n, end: undefined }. */
  range: { start: number; end: number | undefined } | undefined;
  status: number | undefined;
  bytesSent: number;
}

export interface Behaviour {
  status?: number;
  retryAfter?: string;
  headers?: Record<string, string>;
  redirectTo?: string;
  ignoreRange?: boolean;
  noLength?: boolean;
  contentRange?: string;
  /** The client gets headers and exactly this many body bytes, then a premature close (FIN after a flush). */
  dropAfterBytes?: number;
  /** This answer holds after this many body bytes until the server's `release()` (see RangeServerOptions.holdAfterBytes). */
  holdAfterBytes?: number;
  stallAfterBytes?: number;
  stallBeforeHeaders?: boolean;
  bytesPerSecond?: number;
  extraBytes?: number;
  gzip?: boolean;
  /** Served under the current ETag/Last-Modified (a server lying about its validators); override them via `headers`. */
  body?: Buffer;
  /** The body of a `status` answer instead of "<status> <reason>" (an S3 XML error, say). */
  text?: string;
  /** A satisfied range is answered with this status instead of 206, its Content-Range and Content-Length kept (seen: 200). */
  partialStatus?: number;
  /** A satisfied range is cut to at most this many bytes, with an honest Content-Range (object stores cap answers). */
  capBytes?: number;
  /** A satisfied range says `bytes a-b/*`: the server does not tell the size on ranged answers. */
  unknownTotal?: boolean;
}

export interface RangeServerOptions {
  content: Buffer;
  etag?: string | null;
  lastModified?: Date | null;
  contentDisposition?: string;
  bytesPerSecond?: number;
  acceptRanges?: boolean;
  /**
   * At most this many requests served at once; the rest get `503` without Retry-After,
   * as nginx `limit_conn` answers (its default status for the limit is 503).
   */
  maxConcurrent?: number;
  /**
   * Every answer with the file's bytes (200, 206) stops after this many of them and
   * waits, its connection open, until `release()`: a download kept running exactly as
   * long as the test needs, however fast or loaded the machine is, where a throttle only
   * hopes to be slow enough. Refusals, redirects and errors are not held. A Behaviour's
   * `holdAfterBytes` holds its answer, whatever it is.
   */
  holdAfterBytes?: number;
  onRequest?: (req: RecordedRequest) => Behaviour | undefined;
}

export interface RangeServer {
  readonly port: number;
  readonly origin: string;
  url(path?: string): string;
  readonly requests: RecordedRequest[];
  content: Buffer;
  /** Without `lastModified`, an existing Last-Modified moves forward a minute, as a rewritten file's would. */
  setContent(content: Buffer, opts?: { etag?: string | null; lastModified?: Date | null }): void;
  onRequest: RangeServerOptions["onRequest"];
  bytesPerSecond: number | undefined;
  bytesServed(): number;
  /** The most requests that were being served at once (those refused by `maxConcurrent` not counted). */
  peakConcurrent(): number;
  /** Requests being served now: their responses not yet closed (ended, or cut by either side). */
  servingNow(): number;
  /** Answers waiting at the hold now (`holdAfterBytes`): their bytes before it written and flushed. */
  held(): number;
  /** Opens the hold for good: held answers go on, later ones are not held. */
  release(): void;
  close(): Promise<void>;
}

const DEFAULT_LAST_MODIFIED = new Date("2024-01-02T03:04:05Z");
const FAST_SLICE = 64 * 1024;
const THROTTLED_SLICE = 16 * 1024;

export function defaultEtag(content: Buffer): string {
  return `"${createHash("sha256").update(content).digest("hex").slice(0, 16)}"`;
}

type ByteRange = { start: number; end: number | undefined } | { suffix: number };

/** Single byte range only; anything else (multi-range, other units, garbage) is undefined. */
function parseRange(header: string | undefined): ByteRange | undefined {
  const m = header === undefined ? null : /^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(header);
  if (!m) return undefined;
  const [, a = "", b = ""] = m;
  if (a === "") return b === "" ? undefined : { suffix: Number(b) };
  const start = Number(a);
  const end = b === "" ? undefined : Number(b);
  if (end !== undefined && end < start) return undefined;
  return { start, end };
}

function recordedRange(header: string | undefined): RecordedRequest["range"] {
  const r = parseRange(header);
  if (!r) return undefined;
  return "suffix" in r ? { start: -r.suffix, end: undefined } : r;
}

/** [start, end] inclusive within `size`, or "unsatisfiable". */
function resolveRange(r: ByteRange, size: number): [number, number] | "unsatisfiable" {
  if ("suffix" in r) {
    if (r.suffix === 0 || size === 0) return "unsatisfiable";
    return [Math.max(0, size - r.suffix), size - 1];
  }
  if (r.start >= size) return "unsatisfiable";
  return [r.start, Math.min(r.end ?? size - 1, size - 1)];
}

function isWeak(etag: string): boolean {
  return etag.startsWith("W/");
}

function opaque(etag: string): string {
  return isWeak(etag) ? etag.slice(2) : etag;
}

function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  return header.split(",").some((part) => {
    const [coding = "", ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    if (coding !== "gzip" && coding !== "x-gzip" && coding !== "*") return false;
    const q = params.find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  });
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(", ") : value;
}

function headerValue(headers: Record<string, string>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}

const gzipCache = new WeakMap<Buffer, Buffer>();
function gzipped(buf: Buffer): Buffer {
  let z = gzipCache.get(buf);
  if (!z) {
    z = gzipSync(buf);
    gzipCache.set(buf, z);
  }
  return z;
}

/** Resolves on 'drain' or on the response closing, so a vanished client never leaves us waiting. */
function drainOrClose(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.on("drain", done);
    res.on("close", done);
  });
}

class RangeServerImpl implements RangeServer {
  readonly requests: RecordedRequest[] = [];
  onRequest: RangeServerOptions["onRequest"];
  bytesPerSecond: number | undefined;
  port = 0;
  private file: Buffer;
  private etag: string | null;
  private lastModified: Date | null;
  private readonly sockets = new Set<Socket>();
  private serving = 0;
  private peakServing = 0;
  private holding = 0;
  private released = false;
  private readonly gate = Promise.withResolvers<void>();
  private readonly server = createServer((req, res) => {
    this.handle(req, res).catch(() => res.destroy());
  });

  constructor(private readonly options: RangeServerOptions) {
    this.onRequest = options.onRequest;
    this.bytesPerSecond = options.bytesPerSecond;
    this.file = options.content;
    this.etag = options.etag === undefined ? defaultEtag(options.content) : options.etag;
    this.lastModified = options.lastModified === undefined ? DEFAULT_LAST_MODIFIED : options.lastModified;
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    // Clients resetting mid-request are routine in these tests.
    this.server.on("clientError", (_err, socket) => socket.destroy());
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  url(path = "/file.bin"): string {
    return this.origin + (path.startsWith("/") ? path : `/${path}`);
  }

  get content(): Buffer {
    return this.file;
  }

  set content(content: Buffer) {
    this.setContent(content);
  }

  setContent(content: Buffer, opts: { etag?: string | null; lastModified?: Date | null } = {}): void {
    this.file = content;
    this.etag = opts.etag === undefined ? defaultEtag(content) : opts.etag;
    if (opts.lastModified !== undefined) this.lastModified = opts.lastModified;
    else if (this.lastModified !== null) this.lastModified = new Date(this.lastModified.getTime() + 60_000);
  }

  bytesServed(): number {
    return this.requests.reduce((sum, r) => sum + r.bytesSent, 0);
  }

  peakConcurrent(): number {
    return this.peakServing;
  }

  servingNow(): number {
    return this.serving;
  }

  held(): number {
    return this.holding;
  }

  release(): void {
    this.released = true;
    this.gate.resolve();
  }

  /** Waits at the hold until `release()` or until the client goes; counted in `held()` once the bytes before it are flushed. */
  private async hold(res: ServerResponse): Promise<void> {
    if (this.released || res.destroyed) return;
    await new Promise<void>((resolve) => res.write("", () => resolve()));
    this.holding++;
    try {
      await Promise.race([this.gate.promise, new Promise((resolve) => res.once("close", resolve))]);
    } finally {
      this.holding--;
    }
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(0, "127.0.0.1", () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
      for (const socket of this.sockets) socket.destroy();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    req.resume();
    res.on("error", () => {});
    const rec: RecordedRequest = {
      index: this.requests.length,
      method: req.method ?? "GET",
      path: req.url ?? "/",
      headers: req.headers,
      range: recordedRange(req.headers.range),
      status: undefined,
      bytesSent: 0,
    };
    this.requests.push(rec);
    const limit = this.options.maxConcurrent;
    if (limit !== undefined && this.serving >= limit) {
      return this.sendText(res, rec, {}, 503, {});
    }
    this.serving++;
    this.peakServing = Math.max(this.peakServing, this.serving);
    res.once("close", () => this.serving--);
    const b = this.onRequest?.(rec) ?? {};
    if (b.stallBeforeHeaders) return;

    const extra = b.headers ?? {};
    if (b.redirectTo !== undefined) {
      return this.sendText(res, rec, b, b.status ?? 302, { location: b.redirectTo, ...extra });
    }
    if (b.status !== undefined) {
      const retry: OutgoingHttpHeaders = b.retryAfter === undefined ? {} : { "retry-after": b.retryAfter };
      return this.sendText(res, rec, b, b.status, { ...retry, ...extra });
    }
    if (rec.method !== "GET" && rec.method !== "HEAD") {
      return this.sendText(res, rec, b, 405, { allow: "GET, HEAD", ...extra });
    }

    const useGzip = b.gzip === true && acceptsGzip(req.headers["accept-encoding"]);
    const plain = b.body ?? this.file;
    const rep = useGzip ? gzipped(plain) : plain;
    // The gzipped representation is a different byte sequence, so it must not share the identity ETag.
    const repEtag = this.etag !== null && useGzip ? this.etag.replace(/"$/, '-gzip"') : this.etag;
    const etag = headerValue(extra, "etag") ?? repEtag ?? undefined;
    const lastModified = headerValue(extra, "last-modified") ?? this.lastModified?.toUTCString();

    const validators: OutgoingHttpHeaders = {};
    if (etag !== undefined) validators.etag = etag;
    if (lastModified !== undefined) validators["last-modified"] = lastModified;
    if (this.notModified(req.headers, etag, lastModified)) {
      return this.finish(res, rec, b, 304, { ...validators, ...extra }, []);
    }

    const headers: OutgoingHttpHeaders = { "content-type": "application/octet-stream", ...validators };
    const rangesEnabled = this.options.acceptRanges !== false;
    if (rangesEnabled) headers["accept-ranges"] = "bytes";
    if (useGzip) headers["content-encoding"] = "gzip";
    if (b.gzip) headers.vary = "Accept-Encoding";
    if (this.options.contentDisposition !== undefined) {
      headers["content-disposition"] = this.options.contentDisposition;
    }

    let status = 200;
    let body = rep;
    const range = parseRange(req.headers.range);
    const honourRange =
      range !== undefined &&
      rangesEnabled &&
      !b.ignoreRange &&
      rec.method === "GET" &&
      this.ifRangeHolds(single(req.headers["if-range"]), etag, lastModified);
    if (honourRange) {
      const resolved = resolveRange(range, rep.length);
      if (resolved === "unsatisfiable") {
        const h = { ...validators, "content-length": "0", "content-range": b.contentRange ?? `bytes */${rep.length}` };
        return this.finish(res, rec, b, 416, { ...h, ...extra }, []);
      }
      const [start, cappedEnd] = resolved;
      const end = b.capBytes === undefined ? cappedEnd : Math.min(cappedEnd, start + b.capBytes - 1);
      status = b.partialStatus ?? 206;
      body = rep.subarray(start, end + 1);
      headers["content-range"] = `bytes ${start}-${end}/${b.unknownTotal ? "*" : rep.length}`;
    }
    if (b.contentRange !== undefined) headers["content-range"] = b.contentRange;
    if (!b.noLength) headers["content-length"] = String(body.length);
    const parts = [body];
    if (b.extraBytes) parts.push(Buffer.alloc(b.extraBytes, "garbage!"));
    return this.finish(res, rec, b, status, { ...headers, ...extra }, parts, this.options.holdAfterBytes);
  }

  private notModified(h: IncomingHttpHeaders, etag: string | undefined, lastModified: string | undefined): boolean {
    const inm = h["if-none-match"];
    if (inm !== undefined) {
      const tags = inm.split(",").map((s) => s.trim());
      return tags.includes("*") || (etag !== undefined && tags.some((t) => opaque(t) === opaque(etag)));
    }
    const ims = h["if-modified-since"];
    if (ims === undefined || lastModified === undefined) return false;
    const since = Date.parse(ims);
    const modified = Date.parse(lastModified);
    if (Number.isNaN(since) || Number.isNaN(modified)) return false;
    return Math.floor(modified / 1000) <= Math.floor(since / 1000);
  }

  private ifRangeHolds(ifRange: string | undefined, etag: string | undefined, lastModified: string | undefined): boolean {
    if (ifRange === undefined) return true;
    const v = ifRange.trim();
    if (v.startsWith('"') || v.startsWith("W/")) {
      // If-Range uses strong comparison: a weak tag on either side never matches.
      return etag !== undefined && !isWeak(v) && !isWeak(etag) && v === etag;
    }
    return lastModified !== undefined && v === lastModified;
  }

  private sendText(
    res: ServerResponse,
    rec: RecordedRequest,
    b: Behaviour,
    status: number,
    headers: OutgoingHttpHeaders,
  ): Promise<void> {
    const noBody = status === 204 || status === 304 || status < 200;
    const text = noBody ? Buffer.alloc(0) : Buffer.from(b.text ?? `${status} ${STATUS_CODES[status] ?? "Status"}\n`);
    const base: OutgoingHttpHeaders = { "content-type": "text/plain; charset=utf-8" };
    if (!noBody && !b.noLength) base["content-length"] = String(text.length);
    return this.finish(res, rec, b, status, { ...base, ...headers }, noBody ? [] : [text]);
  }

  /** Sends status, headers and body, applying the byte-level faults; `serverHold` is the server's hold, given for the file's answers only. */
  private async finish(
    res: ServerResponse,
    rec: RecordedRequest,
    b: Behaviour,
    status: number,
    headers: OutgoingHttpHeaders,
    parts: Buffer[],
    serverHold?: number,
  ): Promise<void> {
    res.writeHead(status, headers);
    rec.status = status;
    const body = rec.method === "HEAD" ? [] : parts;
    const limit = b.dropAfterBytes ?? b.stallAfterBytes;
    const hold = b.holdAfterBytes ?? serverHold;
    const sent = await this.pump(res, rec, body, limit, b.bytesPerSecond ?? this.bytesPerSecond, hold);
    if (res.destroyed) return;
    if (limit === undefined) {
      res.end();
      return;
    }
    if (sent === 0) res.flushHeaders();
    // FIN only after what was written is flushed, so the client sees exactly `sent` body bytes.
    if (b.dropAfterBytes !== undefined) res.socket?.destroySoon();
  }

  /** Writes up to `limit` bytes of `parts` with backpressure, optional pacing and an optional hold after `hold` bytes; returns the bytes written. */
  private async pump(
    res: ServerResponse,
    rec: RecordedRequest,
    parts: Buffer[],
    limit: number | undefined,
    rate: number | undefined,
    hold: number | undefined,
  ): Promise<number> {
    const paced = rate !== undefined && rate > 0;
    // Small slices at low rates keep the pacing smooth instead of one burst per second.
    const slice = paced ? Math.max(1, Math.min(THROTTLED_SLICE, Math.floor(rate / 10))) : FAST_SLICE;
    const abort = new AbortController();
    res.once("close", () => abort.abort());
    const t0 = performance.now();
    let sent = 0;
    for (const part of parts) {
      for (let off = 0; off < part.length; ) {
        if (res.destroyed || (limit !== undefined && sent >= limit)) return sent;
        if (hold !== undefined && sent === hold) await this.hold(res);
        if (res.destroyed) return sent;
        let n = Math.min(slice, part.length - off);
        if (limit !== undefined) n = Math.min(n, limit - sent);
        if (hold !== undefined && sent < hold) n = Math.min(n, hold - sent);
        const chunk = part.subarray(off, off + n);
        off += n;
        sent += n;
        const ok = res.write(chunk, (err) => {
          if (!err) rec.bytesSent += chunk.length;
        });
        if (!ok) await drainOrClose(res);
        if (paced) {
          const wait = t0 + (sent / rate) * 1000 - performance.now();
          if (wait > 0) await sleep(wait, undefined, { signal: abort.signal }).catch(() => {});
        }
      }
    }
    return sent;
  }
}

export async function startRangeServer(options: RangeServerOptions): Promise<RangeServer> {
  const server = new RangeServerImpl(options);
  await server.listen();
  return server;
}

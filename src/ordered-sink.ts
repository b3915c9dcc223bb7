/**
 * Where bytes go for `-o -` and `--extract`: many connections write at their own
 * offsets, and the bytes come out of `body` strictly in file order. Memory is bounded
 * by a window ahead of the write position (see `streamWindow`); the planner hands out
 * nothing past `limit`, so in a correct run no write ever lands beyond it, and a write
 * that does (a caller that ignores the limit) waits until the window reaches it.
 */
import { Readable } from "node:stream";
import { FileError } from "./errors.js";

const KiB = 1024;
const MiB = 1024 * KiB;

/** The largest default window: past this, a few more ranges in flight buy no speed. */
export const MAX_DEFAULT_WINDOW_BYTES = 64 * MiB;
/** The smallest window a caller may ask for: two ranges of the smallest size. */
export const MIN_WINDOW_BYTES = 1 * MiB;
/** No range handed out in stream mode is smaller: below this, request overhead shows. */
export const MIN_STREAM_RANGE_BYTES = 64 * KiB;
/**
 * How much `body` itself holds before the sink stops pushing into it. Node's default
 * (64 KiB since Node 22) is one network chunk, so nearly every push would pause.
 */
const BODY_HIGH_WATER_MARK = 256 * KiB;

/** How far ahead of the write position a stream may fetch, and in what pieces. */
export interface StreamWindow {
  /** Bytes past the write position that may be fetched and held in memory. */
  windowBytes: number;
  /** Size of the ranges handed out, so about two per connection fit in the window. */
  rangeBytes: number;
}

/**
 * The window of an ordered stream. By default two ranges of `minSplit` per connection
 * (a connection finishing one range has the next in hand), capped at 64 MiB: at
 * `-c 4 --min-split 1M` that is 8 MiB, at the defaults (`-c 8`, 4 MiB) 64 MiB. Ranges
 * are `minSplit` or, when the window is tighter, the window shared by two ranges per
 * connection (at least 64 KiB). A `windowBytes` the user gave must be at least
 * `MIN_WINDOW_BYTES`, so two ranges always fit (the caller checks it).
 */
export function streamWindow(connections: number, minSplit: number, windowBytes?: number): StreamWindow {
  const window = windowBytes ?? Math.max(MIN_WINDOW_BYTES, Math.min(MAX_DEFAULT_WINDOW_BYTES, 2 * connections * minSplit));
  const rangeBytes = Math.max(MIN_STREAM_RANGE_BYTES, Math.min(minSplit, Math.floor(window / (2 * connections))));
  return { windowBytes: window, rangeBytes };
}

/** Options of an `OrderedSink`. */
export interface OrderedSinkOptions {
  /** Bytes past the write position that may be held (see `streamWindow`). */
  windowBytes: number;
  /** The file's size when known: `end` checks that every byte came out. */
  size?: number | undefined;
  /** The first byte to come out (default 0): a resumed file's bytes before it are on disk already. */
  start?: number;
  /** Called with each chunk as it leaves in order, before `body` sees it (a running hash). */
  onChunk?: (chunk: Buffer) => void;
  /**
   * Called once every byte is out, before `body` ends. An error it throws fails `body`
   * and `end` instead, so a checksum that does not match never looks like a clean end.
   */
  beforeEnd?: () => void;
  /** Called after the write position moved (the planner's limit moved with it). */
  onAdvance?: (position: number) => void;
  /**
   * The reader went away before the end (`| head`, `body.destroy()`): called once with
   * a `FileError` `ERR_OUTPUT_CLOSED`, so the download can stop every request at once.
   */
  onConsumerGone?: (error: FileError) => void;
}

interface Pending {
  start: number;
  buffer: Buffer;
}

interface Waiter {
  /** The write waits until the window reaches this offset (exclusive end of its bytes). */
  end: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Positional writes in, an ordered `Readable` out. A write whose bytes are all before
 * the position (a retry or hedge delivering what already left) is dropped; bytes are
 * never sent twice. A slow reader leaves bytes here, the window stops moving, the
 * planner stops handing out ranges, and the sockets pause: memory stays within
 * `windowBytes` plus one chunk per connection.
 */
export class OrderedSink {
  readonly body: Readable;
  readonly #windowBytes: number;
  #size: number | undefined;
  readonly #beforeEnd: (() => void) | undefined;
  readonly #onChunk: ((chunk: Buffer) => void) | undefined;
  readonly #onAdvance: ((position: number) => void) | undefined;
  readonly #onConsumerGone: ((error: FileError) => void) | undefined;
  /** Sorted by start; overlaps are possible only from a misbehaving caller and are trimmed on the way out. */
  readonly #pending: Pending[] = [];
  #pendingBytes = 0;
  #waiters: Waiter[] = [];
  #position = 0;
  /** `body` asked us to stop pushing until it is read. */
  #bodyFull = false;
  #ending: PromiseWithResolvers<void> | undefined;
  #ended = false;
  #failure: unknown;

  constructor(options: OrderedSinkOptions) {
    this.#windowBytes = options.windowBytes;
    this.#size = options.size;
    this.#onChunk = options.onChunk;
    this.#beforeEnd = options.beforeEnd;
    this.#onAdvance = options.onAdvance;
    this.#onConsumerGone = options.onConsumerGone;
    this.#position = options.start ?? 0;
    this.body = new Readable({
      highWaterMark: BODY_HIGH_WATER_MARK,
      read: () => {
        this.#bodyFull = false;
        this.#drain();
      },
      destroy: (error, callback) => {
        this.#bodyDestroyed(error);
        callback(error);
      },
    });
  }

  /** The file's size, once the server told it (after the sink was made): `end` checks it. */
  expectSize(size: number): void {
    this.#size = size;
  }

  /** The first byte not yet handed to `body`. */
  get position(): number {
    return this.#position;
  }

  /** The planner hands out no byte at or past this offset. */
  get limit(): number {
    return this.#position + this.#windowBytes;
  }

  /** Bytes held here, received but not yet handed to `body`. */
  get bufferedBytes(): number {
    return this.#pendingBytes;
  }

  /**
   * Takes `chunk`, the bytes at `position`. Returns a promise only when the caller
   * must wait before sending more (its bytes lie past the window); it rejects once the
   * sink failed (the reader went away, or `abort`).
   */
  write(chunk: Buffer, position: number): Promise<void> | undefined {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (this.#ended) throw new Error("internal error: write after the ordered stream ended");
    const end = position + chunk.length;
    if (end <= this.#position || chunk.length === 0) return undefined;
    this.#insert({ start: position, buffer: chunk });
    this.#drain();
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    if (end <= this.limit) return undefined;
    return new Promise((resolve, reject) => this.#waiters.push({ end, resolve, reject }));
  }

  /** Writes are taken whole, so there is nothing to flush; rejects once the sink failed. */
  flush(): Promise<void> {
    return this.#failure === undefined ? Promise.resolve() : Promise.reject(this.#failure);
  }

  /**
   * Every byte has been written: resolves once all of them are handed to `body` and
   * it is ended (the reader may still be reading them). Rejects if a byte is missing.
   */
  end(): Promise<void> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    this.#ending = Promise.withResolvers<void>();
    const ended = this.#ending.promise;
    this.#drain();
    return ended;
  }

  /** The download failed: `body` errors with `error`, waiting writers are released. */
  abort(error: unknown): void {
    if (this.#failure !== undefined || this.#ended) return;
    this.#fail(error);
    this.body.destroy(error instanceof Error ? error : new Error(String(error)));
  }

  #insert(entry: Pending): void {
    const list = this.#pending;
    let low = 0;
    let high = list.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (list[mid]!.start <= entry.start) low = mid + 1;
      else high = mid;
    }
    list.splice(low, 0, entry);
    this.#pendingBytes += entry.buffer.length;
  }

  #drain(): void {
    const before = this.#position;
    let drained = 0;
    while (!this.#bodyFull && drained < this.#pending.length) {
      const first = this.#pending[drained]!;
      if (first.start > this.#position) break;
      drained++;
      this.#pendingBytes -= first.buffer.length;
      const skip = this.#position - first.start;
      if (skip >= first.buffer.length) continue;
      const piece = skip > 0 ? first.buffer.subarray(skip) : first.buffer;
      this.#position += piece.length;
      this.#onChunk?.(piece);
      if (!this.body.push(piece)) this.#bodyFull = true;
    }
    // One splice per drain, not one shift per chunk.
    if (drained > 0) this.#pending.splice(0, drained);
    if (this.#position > before) this.#advanced();
    if (this.#ending && !this.#bodyFull) this.#finishIfComplete();
  }

  #advanced(): void {
    const limit = this.limit;
    const still: Waiter[] = [];
    for (const waiter of this.#waiters) {
      if (waiter.end <= limit) waiter.resolve();
      else still.push(waiter);
    }
    this.#waiters = still;
    this.#onAdvance?.(this.#position);
  }

  #finishIfComplete(): void {
    const ending = this.#ending!;
    const missing = this.#pending.length > 0 || (this.#size !== undefined && this.#position !== this.#size);
    if (missing) {
      const error = new Error(
        `internal error: the ordered stream ended at byte ${this.#position}` +
          (this.#size === undefined ? " with bytes after a gap" : ` of ${this.#size}`),
      );
      this.abort(error);
      ending.reject(error);
      return;
    }
    try {
      this.#beforeEnd?.();
    } catch (error) {
      this.abort(error);
      ending.reject(error);
      return;
    }
    this.#ending = undefined;
    this.#ended = true;
    this.body.push(null);
    ending.resolve();
  }

  #fail(error: unknown): void {
    this.#failure = error;
    this.#pending.length = 0;
    this.#pendingBytes = 0;
    for (const waiter of this.#waiters) waiter.reject(error);
    this.#waiters = [];
    this.#ending?.reject(error);
    this.#ending = undefined;
  }

  /** Destroyed by the reader (or by `abort`, which already failed the sink). */
  #bodyDestroyed(error: Error | null): void {
    if (this.#failure !== undefined || this.#ended) return;
    const gone = new FileError(`the reader of the output closed it before the end${error ? ` (${error.message})` : ""}`, {
      path: "-",
      code: "ERR_OUTPUT_CLOSED",
      cause: error ?? undefined,
    });
    this.#fail(gone);
    this.#onConsumerGone?.(gone);
  }
}

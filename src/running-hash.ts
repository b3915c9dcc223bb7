/**
 * `--checksum` while the bytes arrive, not by reading the finished file again.
 *
 * File mode writes ranges out of order, so what can be hashed is the contiguous
 * written prefix. As it grows, a worker thread reads the newly covered bytes back
 * from the `.part` (just written, so from the page cache) and hashes them: the
 * hashing runs on another core beside the transfer, and when the last byte is written
 * only the last ranges are left to hash. The ordered streams (`-o -`, `--extract`)
 * hash each chunk as it leaves, with `createHash` directly.
 */
import { Worker } from "node:worker_threads";
import { digestMatches, type ExpectedChecksum } from "./checksum.js";
import { IntegrityError } from "./errors.js";
import { IntervalSet, type Interval } from "./ranges.js";
import type { Checksum } from "./types.js";

/** The prefix is handed to the worker in steps of at least this much (fewer messages). */
const STEP_BYTES = 4 * 1024 * 1024;

/**
 * The worker: reads `[hashed, upTo)` from the file in 1 MiB blocks and hashes them;
 * `final` asks for the digest. Plain CommonJS given as text, so it runs the same from
 * `src` under the test runner and from `dist` (a worker file would need a build step).
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const { openSync, readSync, closeSync } = require("node:fs");
const { createHash } = require("node:crypto");
const fd = openSync(workerData.path, "r");
const hash = createHash(workerData.algorithm);
const block = Buffer.allocUnsafe(1024 * 1024);
let hashed = 0;
parentPort.on("message", (message) => {
  while (hashed < message.upTo) {
    const read = readSync(fd, block, 0, Math.min(block.length, message.upTo - hashed), hashed);
    if (read === 0) throw new Error("the file ends at byte " + hashed + ", before " + message.upTo);
    hash.update(block.subarray(0, read));
    hashed += read;
  }
  if (message.final) {
    closeSync(fd);
    parentPort.postMessage(hash.digest("hex"));
  }
});
`;

/**
 * Hashes a file's contiguous written prefix as it grows. Tell it every interval
 * written (`written`, the same calls the checkpoint gets); `digest(size)` resolves
 * with the lower-case hex digest of bytes `[0, size)` once they are all written.
 * Rejects if the worker cannot read the file (the error as the file system gave it).
 */
export class PrefixHasher {
  readonly #worker: Worker;
  readonly #written: IntervalSet;
  readonly #result: Promise<string>;
  #sent = 0;
  #closed = false;

  /**
   * `path` must exist. `alreadyDone`: intervals already on disk (a resumed `.part`);
   * their prefix is hashed first, at once.
   */
  constructor(path: string, algorithm: Checksum["algorithm"], alreadyDone: Iterable<Interval> = []) {
    this.#written = IntervalSet.from(alreadyDone);
    // The source is CommonJS: the host's own flags (--input-type=module, say) must not reach it.
    this.#worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { path, algorithm } });
    this.#result = new Promise<string>((resolve, reject) => {
      this.#worker.once("message", (digest: string) => resolve(digest));
      this.#worker.once("error", reject);
      this.#worker.once("exit", (code) => reject(new Error(`the hashing thread stopped (exit ${code})`)));
    });
    // Settled by digest() or close(); until then a failure waits to be seen there.
    this.#result.catch(() => {});
    this.#send();
  }

  /** Bytes `[start, end]` are written (readable from the file). */
  written(start: number, end: number): void {
    this.#written.add(start, end);
    this.#send();
  }

  /**
   * The digest of `[0, size)`; every byte of it must have been reported written. The
   * worker is stopped whatever happens (a live one keeps the process from exiting).
   */
  async digest(size: number): Promise<string> {
    try {
      if (this.#prefixEnd() < size) {
        throw new Error(`internal error: hashing asked for ${size} bytes with only ${this.#prefixEnd()} written in order`);
      }
      this.#worker.postMessage({ upTo: size, final: true });
      return await this.#result;
    } finally {
      await this.close();
    }
  }

  /** Stops the worker (on failure or abort); safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#worker.terminate();
  }

  #prefixEnd(): number {
    return this.#written.missing(Number.POSITIVE_INFINITY)[0]?.[0] ?? 0;
  }

  #send(): void {
    const prefix = this.#prefixEnd();
    if (this.#closed || prefix - this.#sent < STEP_BYTES) return;
    this.#sent = prefix;
    this.#worker.postMessage({ upTo: prefix, final: false });
  }
}

/**
 * Compares a digest computed on the fly with the one the user gave (any of the
 * digests an SRI string accepts). Throws
 * `IntegrityError` `ERR_CHECKSUM` (exit 5) naming both; `consequence` says what was
 * done about the bytes ("the partial file was removed", "nothing was unpacked").
 */
export function checkDigest(expected: Checksum | ExpectedChecksum, actualHex: string, url: string, consequence: string): void {
  if (digestMatches(expected, actualHex)) return;
  const accepted = "accepted" in expected && expected.accepted.length > 1 ? `one of ${expected.accepted.join(", ")}` : expected.hex;
  throw new IntegrityError(
    `checksum mismatch for ${url}: ${expected.algorithm} is ${actualHex}, expected ${accepted}; ${consequence}`,
    { code: "ERR_CHECKSUM" },
  );
}

/**
 * The bar every server behaviour is held to (issue 20): the bytes a server sent for one
 * download stay under 1.5 × the file, or 2 × when the server ignores ranges, so an
 * honest but odd server costs one extra file at most.
 */
import type { Socket } from "node:net";
import { expect } from "vitest";

/** How many times the file a server may send: 1.5 normally, 2 when it ignores ranges. */
export const BAR = { ranges: 1.5, ignoresRanges: 2 } as const;

/**
 * Asserts that `served` body bytes (as the server counted them) are at most `factor` ×
 * `fileBytes`; `what` names the scenario in the failure message.
 */
export function expectWithinBar(served: number, fileBytes: number, factor: number = BAR.ranges, what = "the server"): void {
  expect(served, `${what} sent ${served} bytes for a ${fileBytes}-byte file (bar ${factor}×)`).toBeLessThanOrEqual(factor * fileBytes);
}

/**
 * A counter of the bytes a raw-socket server writes (status lines and headers included,
 * so it errs on the side of failing the bar). `write` and `end` each add what they send.
 */
export class ByteCounter {
  total = 0;

  /** Writes `bytes` to `socket`, counted. */
  write(socket: Socket, bytes: Buffer | string): void {
    const buffer = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes;
    this.total += buffer.length;
    socket.write(buffer);
  }

  /** Writes `bytes` and closes once they are flushed, counted. */
  end(socket: Socket, bytes: Buffer | string): void {
    const buffer = typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes;
    this.total += buffer.length;
    socket.end(buffer);
  }

  /**
   * Writes `bytes` at about `bytesPerSecond`, in 64 KiB pieces, and closes; counts only
   * what was written before the client closed the socket. Unpaced, a loopback socket
   * takes a whole answer at once (megabytes of kernel buffer), so an answer the client
   * refused at its headers would count as if it had been read.
   */
  async endPaced(socket: Socket, bytes: Buffer, bytesPerSecond: number): Promise<void> {
    const piece = 64 * 1024;
    for (let offset = 0; offset < bytes.length && !socket.destroyed && socket.writable; offset += piece) {
      const chunk = bytes.subarray(offset, offset + piece);
      this.total += chunk.length;
      socket.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, (chunk.length * 1000) / bytesPerSecond));
    }
    socket.end();
  }
}

/**
 * Servers that close themselves: each one started here is closed after the test that
 * started it, so a test file needs no list of its own and no afterEach to empty it.
 */
import type { Socket } from "node:net";
import { afterEach } from "vitest";
import { startRangeServer, type RangeServer, type RangeServerOptions } from "./range-server.js";
import { startRawServer, type RawRequest, type RawServer } from "./raw-server.js";

const closers: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** Runs `close` after the current test (a proxy, a TLS terminator, a dispatcher). */
export function closeAfterTest(close: () => Promise<unknown>): void {
  closers.push(close);
}

/** A range server on 127.0.0.1, closed after the test. */
export async function rangeServer(options: RangeServerOptions): Promise<RangeServer> {
  const server = await startRangeServer(options);
  closeAfterTest(() => server.close());
  return server;
}

/** A raw TCP server on 127.0.0.1 (see startRawServer), closed after the test. */
export async function rawServer(
  respond: (socket: Socket, request: RawRequest | undefined) => void,
  options: { onConnect?: boolean } = {},
): Promise<RawServer> {
  const server = await startRawServer(respond, options);
  closeAfterTest(() => server.close());
  return server;
}

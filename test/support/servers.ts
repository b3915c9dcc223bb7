/**
 * Servers that close themselves: each one started here is closed after the test that
 * started it, so a test file needs no list of its own and no afterEach to empty it.
 *
 * A test of a `describe.concurrent` block passes its `context` (vitest's TestContext)
 * as `owner`: the module-level afterEach below runs after every test and cannot tell
 * concurrent tests apart, so it would close a neighbour's servers while it still runs.
 */
import type { Socket } from "node:net";
import { afterEach, type TestContext } from "vitest";
import { startRangeServer, type RangeServer, type RangeServerOptions } from "./range-server.js";
import { startRawServer, type RawRequest, type RawServer } from "./raw-server.js";

/** The test that owns a fixture: its context, when the tests run concurrently. */
export type Owner = Pick<TestContext, "onTestFinished">;

const closers: Array<() => Promise<unknown>> = [];

afterEach(async () => {
  await Promise.all(closers.splice(0).map((close) => close()));
});

/** Runs `close` after the current test (a proxy, a TLS terminator, a dispatcher), or after `owner`'s. */
export function closeAfterTest(close: () => Promise<unknown>, owner?: Owner): void {
  if (owner === undefined) closers.push(close);
  else owner.onTestFinished(async () => void (await close()));
}

/** A range server on 127.0.0.1, closed after the test (`owner`'s, if given). */
export async function rangeServer(options: RangeServerOptions, owner?: Owner): Promise<RangeServer> {
  const server = await startRangeServer(options);
  closeAfterTest(() => server.close(), owner);
  return server;
}

/** A raw TCP server on 127.0.0.1 (see startRawServer), closed after the test (`owner`'s, if given). */
export async function rawServer(
  respond: (socket: Socket, request: RawRequest | undefined) => void,
  options: { onConnect?: boolean } = {},
  owner?: Owner,
): Promise<RawServer> {
  const server = await startRawServer(respond, options);
  closeAfterTest(() => server.close(), owner);
  return server;
}

import { Agent } from "undici";
import { systemClock, type Clock } from "../../src/clock.js";
import { HostLimits } from "../../src/host-limits.js";
import type { RequestContext } from "../../src/http.js";
import { HttpStatsRecorder } from "../../src/stats.js";
import { closeAfterTest } from "./servers.js";

/**
 * What the GET path needs, for tests that call it directly: a keep-alive dispatcher
 * of its own (destroyed after the test), fresh stats, the real clock unless one is
 * given, a 10 s deadline, no user headers, and 16 connections per host.
 */
export function requestContext(overrides: Partial<RequestContext> & { clock?: Clock } = {}): RequestContext {
  const dispatcher = new Agent({ connections: 8, pipelining: 1 });
  closeAfterTest(() => dispatcher.destroy());
  return {
    dispatcher,
    timeoutMs: 10_000,
    stats: new HttpStatsRecorder(),
    clock: systemClock,
    userOrigin: "http://127.0.0.1:1",
    userHeaders: {},
    hostLimits: new HostLimits(16),
    ...overrides,
  };
}

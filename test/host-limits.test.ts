import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { DEFAULT_MAX_CONNECTIONS_PER_HOST, hostKey, HostLimits, maxConnectionsPerHostFor, type HostLease } from "../src/host-limits.js";

const HOST = "127.0.0.1:8080";

function take(limits: HostLimits, count: number, host = HOST): HostLease[] {
  const leases: HostLease[] = [];
  for (let index = 0; index < count; index++) {
    const lease = limits.tryAcquire(host);
    if (!lease) throw new Error(`lease ${index} refused`);
    leases.push(lease);
  }
  return leases;
}

describe("maxConnectionsPerHostFor", () => {
  it("is 16 by default, -c when that is larger, and the explicit value when given", () => {
    expect(maxConnectionsPerHostFor({})).toBe(DEFAULT_MAX_CONNECTIONS_PER_HOST);
    expect(maxConnectionsPerHostFor({ connections: 8 })).toBe(16);
    expect(maxConnectionsPerHostFor({ connections: 32 })).toBe(32);
    expect(maxConnectionsPerHostFor({ connections: 32, maxConnectionsPerHost: 4 })).toBe(4);
  });
});

describe("HostLimits", () => {
  it("grants at most the cap per host, and each host has its own count", () => {
    const limits = new HostLimits(2);
    take(limits, 2);
    expect(limits.tryAcquire(HOST)).toBeUndefined();
    expect(limits.tryAcquire("other:80")).toBeDefined();
    expect(limits.inUse(HOST)).toBe(2);
  });

  it("a released lease frees its connection, once even if released twice", () => {
    const limits = new HostLimits(2);
    const [first] = take(limits, 2);
    first!.release();
    first!.release();
    expect(limits.inUse(HOST)).toBe(1);
    take(limits, 1);
    expect(limits.tryAcquire(HOST)).toBeUndefined();
  });

  it("a refusal while nothing else gets through is an ordinary failure and lowers nothing", () => {
    const limits = new HostLimits(8);
    const [refused] = take(limits, 3);
    expect(limits.refused(refused!)).toEqual({ kind: "failure" });
    expect(limits.limit(HOST)).toBe(8);
  });

  it("learns an nginx limit_conn of 2 from 503s while two connections deliver, down to 2 and no lower", () => {
    const limits = new HostLimits(16);
    const leases = take(limits, 8);
    leases[0]!.answered();
    leases[1]!.answered();
    for (const lease of leases.slice(2)) {
      expect(limits.refused(lease).kind).toBe("host-limit");
      lease.release();
    }
    expect(limits.limit(HOST)).toBe(2);
    expect(limits.tryAcquire(HOST)).toBeUndefined();
    leases[0]!.release();
    expect(limits.tryAcquire(HOST)).toBeDefined();
  });

  it("never lowers a host below 1 and never raises a learned limit", () => {
    const limits = new HostLimits(4);
    const [delivering, refused] = take(limits, 2);
    delivering!.answered();
    expect(limits.refused(refused!)).toEqual({ kind: "host-limit", limit: 1 });
    refused!.release();
    delivering!.release();
    const again = take(limits, 1);
    expect(limits.tryAcquire(HOST)).toBeUndefined();
    again[0]!.release();
    expect(limits.limit(HOST)).toBe(1);
  });

  it("keeps the learned limit for the next file of the run: one instance, shared", () => {
    const limits = new HostLimits(16);
    const first = take(limits, 3);
    first[0]!.answered();
    first[1]!.answered();
    limits.refused(first[2]!);
    for (const lease of first) lease.release();
    // A second file on the same host starts with what the first one learned.
    take(limits, 2);
    expect(limits.tryAcquire(HOST)).toBeUndefined();
  });

  it("records the peak of connections held at once", () => {
    const limits = new HostLimits(16);
    const leases = take(limits, 5);
    for (const lease of leases) lease.release();
    take(limits, 2);
    expect(limits.peak(HOST)).toBe(5);
    expect(limits.peak("unused:1")).toBe(0);
  });

  it("acquire waits for a release, in order, and gives up on abort", async () => {
    const limits = new HostLimits(1);
    const [held] = take(limits, 1);
    const order: string[] = [];
    const controller = new AbortController();
    const first = limits.acquire(HOST, controller.signal).then((lease) => {
      order.push("first");
      return lease;
    });
    const aborted = new AbortController();
    const gaveUp = limits.acquire(HOST, aborted.signal);
    aborted.abort(new Error("stop"));
    await expect(gaveUp).rejects.toThrow("stop");
    held!.release();
    const lease = await first;
    expect(order).toEqual(["first"]);
    expect(limits.inUse(HOST)).toBe(1);
    lease.release();
  });

  it("refuses a cap below 1", () => {
    expect(() => new HostLimits(0)).toThrow(RangeError);
  });

  it("never holds more leases than the limit, whatever the order of grants, answers, refusals and releases", () => {
    type Step = { op: "take" } | { op: "answer"; index: number } | { op: "refuse"; index: number } | { op: "release"; index: number };
    const step: fc.Arbitrary<Step> = fc.oneof(
      fc.constant({ op: "take" as const }),
      fc.record({ op: fc.constant("answer" as const), index: fc.nat(20) }),
      fc.record({ op: fc.constant("refuse" as const), index: fc.nat(20) }),
      fc.record({ op: fc.constant("release" as const), index: fc.nat(20) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 8 }), fc.array(step, { maxLength: 60 }), (cap, steps) => {
        const limits = new HostLimits(cap);
        const held: HostLease[] = [];
        let lastLimit = cap;
        for (const each of steps) {
          if (each.op === "take") {
            const lease = limits.tryAcquire(HOST);
            if (lease) held.push(lease);
          } else {
            const lease = held[each.index % Math.max(1, held.length)];
            if (!lease) continue;
            if (each.op === "answer") lease.answered();
            if (each.op === "refuse") limits.refused(lease);
            if (each.op === "release") {
              lease.release();
              held.splice(held.indexOf(lease), 1);
            }
          }
          expect(limits.limit(HOST)).toBeGreaterThanOrEqual(1);
          expect(limits.limit(HOST)).toBeLessThanOrEqual(lastLimit);
          lastLimit = limits.limit(HOST);
          expect(limits.inUse(HOST)).toBe(held.length);
          expect(limits.peak(HOST)).toBeLessThanOrEqual(cap);
        }
      }),
    );
  });
});

describe("hostKey", () => {
  it("counts connections by host and port", () => {
    expect(hostKey("http://user:pw@127.0.0.1:8080/a?b")).toBe("127.0.0.1:8080");
    expect(hostKey("https://example.com/x")).toBe("example.com");
  });
});

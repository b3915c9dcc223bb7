import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RangePlanner, type Assignment } from "../src/ranges.js";

/**
 * Workers as worker.ts drives them, with rescues and hedge races: a hedged range's
 * owner stops at its hedge's start and settles the race there.
 */
class TailModel {
  readonly planner: RangePlanner;
  readonly held: Assignment[] = [];
  readonly accepted: boolean[];

  constructor(readonly size: number, connections: number, minSplit: number) {
    this.accepted = new Array<boolean>(size).fill(false);
    this.planner = new RangePlanner(size > 0 ? [[0, size - 1]] : [], connections, minSplit);
  }

  next(): void {
    const assignment = this.planner.next();
    if (assignment) this.held.push(assignment);
  }

  hedge(victim: Assignment, minBytes: number): void {
    const hedge = this.planner.hedge(victim, minBytes);
    if (!hedge) return;
    expect(hedge.start).toBeGreaterThanOrEqual(victim.next);
    expect(hedge.end).toBe(victim.end);
    this.held.push(hedge);
  }

  rescue(assignment: Assignment): void {
    this.planner.rescue(assignment);
  }

  accept(assignment: Assignment, bytes: number): void {
    let left = bytes;
    while (left > 0) {
      const hedge = assignment.hedge;
      if (hedge && assignment.next >= hedge.start) this.planner.settleHedge(assignment);
      const limit = assignment.hedge ? assignment.hedge.start - 1 : assignment.end;
      const take = Math.min(left, limit - assignment.next + 1);
      if (take <= 0) return;
      for (let byte = assignment.next; byte < assignment.next + take; byte++) {
        if (this.accepted[byte]) throw new Error(`byte ${byte} was accepted twice`);
        this.accepted[byte] = true;
      }
      assignment.next += take;
      left -= take;
    }
  }

  release(assignment: Assignment): void {
    this.planner.release(assignment);
    this.held.splice(this.held.indexOf(assignment), 1);
  }

  /** Every byte not yet accepted is still queued or asked for by someone; none is lost. */
  checkNothingLost(): void {
    const covered = [...this.accepted];
    for (const [start, end] of this.planner.unassigned) {
      for (let byte = start; byte <= end; byte++) {
        if (this.accepted[byte]) throw new Error(`accepted byte ${byte} is queued again`);
        covered[byte] = true;
      }
    }
    for (const assignment of this.planner.inFlight) {
      for (let byte = assignment.next; byte <= assignment.end; byte++) covered[byte] = true;
    }
    const lost = covered.indexOf(false);
    expect(lost, `byte ${lost} is neither accepted, queued nor in flight`).toBe(-1);
  }

  drain(): void {
    for (let guard = 0; guard < 10_000; guard++) {
      for (const assignment of [...this.held]) {
        this.accept(assignment, this.size);
        this.release(assignment);
        this.checkNothingLost();
      }
      this.next();
      if (this.held.length === 0) break;
    }
    expect(this.planner.finished).toBe(true);
    expect(this.accepted.every(Boolean)).toBe(true);
  }
}

type Operation =
  | { kind: "next" }
  | { kind: "accept"; pick: number; bytes: number }
  | { kind: "release"; pick: number }
  | { kind: "hedge"; pick: number; minBytes: number }
  | { kind: "rescue"; pick: number };

const operation: fc.Arbitrary<Operation> = fc.oneof(
  fc.constant<Operation>({ kind: "next" }),
  fc.record({ kind: fc.constant("accept" as const), pick: fc.nat(), bytes: fc.nat({ max: 120 }) }),
  fc.record({ kind: fc.constant("release" as const), pick: fc.nat() }),
  fc.record({ kind: fc.constant("hedge" as const), pick: fc.nat(), minBytes: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("rescue" as const), pick: fc.nat() }),
);

describe("rescues and hedges", () => {
  it("never lose a byte nor accept one twice, whatever the order of events", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 400 }),
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 50 }),
        fc.array(operation, { maxLength: 80 }),
        (size, connections, minSplit, operations) => {
          const model = new TailModel(size, connections, minSplit);
          for (const op of operations) {
            const picked = "pick" in op ? model.held[op.pick % Math.max(1, model.held.length)] : undefined;
            if (op.kind === "next") model.next();
            else if (!picked) continue;
            else if (op.kind === "accept") model.accept(picked, op.bytes);
            else if (op.kind === "release") model.release(picked);
            else if (op.kind === "hedge") model.hedge(picked, op.minBytes);
            else model.rescue(picked);
            model.checkNothingLost();
          }
          model.drain();
        },
      ),
      { numRuns: 400 },
    );
  });

  it("a rescue queues the rest first and stops the owner where it is", () => {
    const planner = new RangePlanner([[0, 999]], 2, 100);
    const slow = planner.next()!;
    const other = planner.next()!;
    slow.next = 120;
    planner.rescue(slow);
    expect(slow.end).toBe(119);
    const fresh = planner.next()!;
    expect([fresh.start, fresh.end, fresh.rescues]).toEqual([120, 499, 1]);
    expect(other.end).toBe(999);
  });

  it("a hedge takes the back half, and a small rest whole", () => {
    const planner = new RangePlanner([[0, 999]], 1, 100);
    const victim = planner.next()!;
    victim.next = 600;
    const hedge = planner.hedge(victim, 100)!;
    expect([hedge.start, hedge.end]).toEqual([800, 999]);
    expect(victim.end).toBe(999);

    const small = new RangePlanner([[0, 99]], 1, 10);
    const crawling = small.next()!;
    crawling.next = 40;
    const whole = small.hedge(crawling, 50)!;
    expect([whole.start, whole.end]).toEqual([40, 99]);
  });

  it("a hedge leaves a slow victim only its share of the rest, never less than minBytes", () => {
    const planner = new RangePlanner([[0, 10_999]], 1, 100);
    const victim = planner.next()!;
    // A victim at 1/10 of a fresh connection's rate keeps 1/11 of the rest.
    const hedge = planner.hedge(victim, 100, 1 / 11)!;
    expect([hedge.start, hedge.end]).toEqual([1000, 10_999]);

    const stalled = new RangePlanner([[0, 999]], 1, 100);
    const stuck = stalled.next()!;
    expect(stalled.hedge(stuck, 100, 0)!.start).toBe(100);

    // A share above half (the victim is the faster one) still hedges only the back half.
    const fast = new RangePlanner([[0, 999]], 1, 100);
    expect(fast.hedge(fast.next()!, 100, 0.9)!.start).toBe(500);
  });

  it("the first to write into the back half wins it", () => {
    const hedgeWins = new RangePlanner([[0, 999]], 1, 100);
    const victim = hedgeWins.next()!;
    const hedge = hedgeWins.hedge(victim, 100)!;
    hedge.next += 10;
    victim.next = hedge.start;
    expect(hedgeWins.settleHedge(victim)).toBeUndefined();
    expect(victim.end).toBe(hedge.start - 1);

    const ownerWins = new RangePlanner([[0, 999]], 1, 100);
    const owner = ownerWins.next()!;
    const late = ownerWins.hedge(owner, 100)!;
    owner.next = late.start;
    expect(ownerWins.settleHedge(owner)).toBe(late);
    expect(late.end).toBe(late.start - 1);
    expect(owner.end).toBe(999);
  });

  it("a finished hedge leaves the owner only its front, and says so when nothing is left", () => {
    const planner = new RangePlanner([[0, 99]], 1, 10);
    const owner = planner.next()!;
    owner.next = 50;
    const hedge = planner.hedge(owner, 100)!;
    hedge.next = hedge.end + 1;
    expect(planner.release(hedge)).toBe(owner);
    expect(owner.end).toBe(49);
  });
});

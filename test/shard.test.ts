import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { jumpConsistentHash, parseShard, shareOf, takeShard } from "../src/shard.js";

const urls = fc.uniqueArray(fc.webUrl(), { maxLength: 60 });
const counts = fc.integer({ min: 1, max: 12 });

describe("parseShard", () => {
  it.each<[string, { index: number; count: number }]>([
    ["0/1", { index: 0, count: 1 }],
    ["3/8", { index: 3, count: 8 }],
    [" 7 / 8 ", { index: 7, count: 8 }],
  ])("reads %j", (text, shard) => {
    expect(parseShard(text)).toEqual(shard);
  });

  it.each(["8/8", "1/0", "0/0", "-1/4", "1", "a/b", "1/2/3", "1.5/4", "", "0/1000001"])("refuses %j", (text) => {
    expect(() => parseShard(text)).toThrow(UsageError);
    expect(() => parseShard(text)).toThrow(/--shard must be K\/N with 0 <= K < N/);
  });
});

describe("shares of a list", () => {
  it("are disjoint, cover the list, and keep its order", () => {
    fc.assert(
      fc.property(urls, counts, (list, count) => {
        const shares = Array.from({ length: count }, (_, index) => takeShard(list, { index, count }, (url) => url));
        expect(shares.flat().sort()).toEqual([...list].sort());
        for (const share of shares) expect(share).toEqual(list.filter((url) => share.includes(url)));
      }),
    );
  });

  it("depend on each item alone: reordering, adding or removing lines moves no other item", () => {
    fc.assert(
      fc.property(urls, fc.webUrl(), counts, (list, extra, count) => {
        const before = new Map(list.map((url) => [url, shareOf(url, count)]));
        const edited = [extra, ...[...list].reverse().slice(1)];
        for (const url of edited) if (before.has(url)) expect(shareOf(url, count)).toBe(before.get(url));
      }),
    );
  });

  it("move an item only to the new share when one more machine joins", () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 1, max: 100 }), (key, count) => {
        const after = shareOf(key, count + 1);
        expect(after === shareOf(key, count) || after === count).toBe(true);
      }),
    );
  });

  it("are the same on every machine: the jump hash gives the published reference values", () => {
    // Inputs and answers as other implementations test them (e.g. ClickHouse's jumpConsistentHash).
    const cases: [bigint, number, number][] = [
      [1n, 1, 0],
      [42n, 57, 43],
      [256n, 1024, 520],
      [3735883980n, 1, 0],
      [3735883980n, 666, 361],
      [16045690984833335023n, 255, 237],
    ];
    for (const [key, count, bucket] of cases) expect(jumpConsistentHash(key, count)).toBe(bucket);
  });

  it("are roughly even: 10,000 items over 8 shares, each within 10% of its mean", () => {
    const sizes = new Array<number>(8).fill(0);
    for (let item = 0; item < 10_000; item++) sizes[shareOf(`https://mirror.test/data/part-${item}.tar`, 8)]!++;
    for (const size of sizes) expect(Math.abs(size - 1250)).toBeLessThan(125);
  });
});

/**
 * `--shard K/N`: which lines of a list this machine takes. A line's share is a hash of
 * the line itself (its URL and output), so every machine agrees without talking to the
 * others and editing the list moves no other line.
 */
import { hash } from "node:crypto";
import { UsageError } from "./errors.js";

/** Share `index` (0-based) of `count` shares of a list. */
export interface Shard {
  index: number;
  count: number;
}

/** A limit that no cluster reaches and that keeps every share number a safe integer. */
const MAX_SHARDS = 1_000_000;

/** Parses `--shard K/N`: whole numbers, 0 <= K < N. Throws `UsageError`. */
export function parseShard(text: string): Shard {
  const match = /^\s*([0-9]+)\s*\/\s*([0-9]+)\s*$/.exec(text);
  const index = Number(match?.[1]);
  const count = Number(match?.[2]);
  if (match === null || !(count >= 1 && count <= MAX_SHARDS) || !(index < count)) {
    throw new UsageError(`--shard must be K/N with 0 <= K < N <= ${MAX_SHARDS} (K counts from 0), got "${text}"`);
  }
  return { index, count };
}

/**
 * Which of `count` shares `key` belongs to: the key's SHA-256 (the same on every
 * machine and Node version) fed to Lamping and Veach's jump consistent hash
 * (arXiv:1406.2294). Each item's share depends on that item alone, so editing the
 * list moves nothing else; and going from N to N+1 shares moves only about 1/(N+1)
 * of the items, so most partial downloads stay where they were started.
 */
export function shareOf(key: string, count: number): number {
  return jumpConsistentHash(hash("sha256", key, "buffer").readBigUInt64BE(0), count);
}

/** The jump consistent hash of a 64-bit `key` into `count` buckets, as the paper's C++ computes it. */
export function jumpConsistentHash(key: bigint, count: number): number {
  let state = key;
  let bucket = -1;
  let next = 0;
  while (next < count) {
    bucket = next;
    state = BigInt.asUintN(64, state * 2862933555777941757n + 1n);
    next = Math.floor((bucket + 1) * (2 ** 31 / (Number(state >> 33n) + 1)));
  }
  return bucket;
}

/**
 * The items of `shard`, in list order. Shares of one list are disjoint and together
 * hold every item, whatever the order of the list or the machine.
 */
export function takeShard<T>(items: readonly T[], shard: Shard, keyOf: (item: T) => string): T[] {
  return items.filter((item) => shareOf(keyOf(item), shard.count) === shard.index);
}

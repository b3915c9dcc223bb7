import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach } from "vitest";
import { until } from "./until.js";

const made: string[] = [];

/** A fresh temp directory, removed after the test. */
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "rangeget-test-"));
  made.push(dir);
  return dir;
}

afterEach(async () => {
  await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

/**
 * @deprecated use `until` from ./until.js, which names what it waited for; kept for the
 * files of the other branches of issue 19 until they are merged.
 */
export function waitFor(condition: () => boolean, ms = 10_000): Promise<void> {
  return until(condition, "a condition (waitFor)", ms);
}

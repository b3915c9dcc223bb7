/**
 * The one polling helper: waits for something a test cannot be told about directly (a
 * child's checkpoint on disk, a server's byte count), bounded so a condition that
 * never holds fails its test with what it waited for instead of hanging the suite.
 */
import { setTimeout as sleep } from "node:timers/promises";

/** How often `until` looks again, in ms: short against the waits it replaces, cheap against the CPU. */
const POLL_MS = 10;

/**
 * Resolves once `condition` (sync or async) returns true, looking every 10 ms for at
 * most `ms` (default 10 s). Throws `Error("timed out after <ms> ms waiting for <what>")`
 * if it never does; an error thrown by `condition` is thrown as it is.
 */
export async function until(condition: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

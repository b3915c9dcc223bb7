/**
 * What a download has checkpointed, read from its manifest (`<output>.part.json`) the
 * way a test polls for it: a missing manifest, or one being replaced, is "nothing yet".
 */
import { readFile } from "node:fs/promises";

/** The bytes the manifest next to `output` records as done (`done: [start, end][]`, inclusive); 0 while there is none. */
export async function checkpointedBytes(output: string): Promise<number> {
  const text = await readFile(`${output}.part.json`, "utf8").catch(() => undefined);
  if (text === undefined) return 0;
  try {
    return (JSON.parse(text) as { done: [number, number][] }).done.reduce((sum, [start, end]) => sum + end - start + 1, 0);
  } catch {
    return 0; // caught mid-replace: the next look reads the new one
  }
}

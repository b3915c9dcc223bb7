import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { sha256 } from "../support/content.js";

/**
 * What an interrupted or finished download left on disk, checked against the only
 * versions of the file the server ever had. Returns the broken promises, if any:
 * - the output name holds one whole version, byte for byte, or nothing;
 * - a manifest parses, stays inside the file, and every byte it claims is in `.part`
 *   exactly as one version has it (a SIGKILL keeps the page cache, so "durable" here
 *   means "written before the manifest said so").
 */
export async function brokenPromises(output: string, versions: readonly Buffer[]): Promise<string[]> {
  const broken: string[] = [];
  if (existsSync(output)) {
    const bytes = await readFile(output).catch(() => undefined);
    if (bytes === undefined) {
      broken.push(`${output} exists but cannot be read`);
    } else if (!versions.some((version) => version.equals(bytes))) {
      broken.push(`${output} holds ${bytes.length} bytes (sha256 ${sha256(bytes).slice(0, 16)}) that are no whole version: ${describeMix(bytes, versions)}`);
    }
  }
  const manifestPath = `${output}.part.json`;
  if (!existsSync(manifestPath)) return broken;
  const text = await readFile(manifestPath, "utf8").catch(() => undefined);
  if (text === undefined) return broken; // removed between the check and the read
  let manifest: { version?: unknown; size?: unknown; done?: unknown };
  try {
    manifest = JSON.parse(text) as typeof manifest;
  } catch {
    broken.push(`${manifestPath} is not valid JSON (a torn write): ${JSON.stringify(text.slice(0, 80))}`);
    return broken;
  }
  const size = manifest.size;
  const done = manifest.done;
  if (manifest.version !== 1 || typeof size !== "number" || !Array.isArray(done)) {
    broken.push(`${manifestPath} is not a version 1 manifest: ${text.slice(0, 120)}`);
    return broken;
  }
  const intervals = done as [number, number][];
  for (const [start, end] of intervals) {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && start <= end && end < size)) {
      broken.push(`${manifestPath} claims [${start}, ${end}] outside a ${size}-byte file`);
      return broken;
    }
  }
  const part = await readFile(`${output}.part`).catch(() => undefined);
  if (part === undefined || intervals.length === 0) return broken;
  const candidates = versions.filter((version) => version.length === size);
  const holds = (version: Buffer) =>
    intervals.every(([start, end]) => part.subarray(start, end + 1).equals(version.subarray(start, end + 1)));
  if (!candidates.some(holds)) {
    const claimed = intervals.reduce((sum, [start, end]) => sum + end - start + 1, 0);
    const first = candidates[0];
    const wrong = first === undefined ? "no version has this size" : `${countWrongClaimed(part, first, intervals)} of them differ from the server's bytes`;
    broken.push(`${manifestPath} claims ${claimed} bytes of ${output}.part that are not the file's: ${wrong}`);
  }
  return broken;
}

function countWrongClaimed(part: Buffer, version: Buffer, intervals: [number, number][]): number {
  let wrong = 0;
  for (const [start, end] of intervals) {
    for (let at = start; at <= end; at++) if (part[at] !== version[at]) wrong += 1;
  }
  return wrong;
}

/** For a report: how much of `bytes` agrees with each version, position by position. */
export function describeMix(bytes: Buffer, versions: readonly Buffer[]): string {
  return versions
    .map((version, index) => {
      const length = Math.min(bytes.length, version.length);
      let same = 0;
      for (let at = 0; at < length; at++) if (bytes[at] === version[at]) same += 1;
      return `version ${index} (${version.length} bytes): ${same} bytes agree`;
    })
    .join("; ");
}

/** The files a finished download must not leave behind. */
export function leftovers(output: string): string[] {
  return [".part", ".part.json", ".part.json.tmp", ".part.lock"]
    .map((suffix) => `${output}${suffix}`)
    .filter((path) => existsSync(path));
}

import { readFileSync } from "node:fs";

/**
 * rangeget's version, from package.json: one level above both src/ and dist/, so the
 * same relative path works under the tests and in the package. Read once, at load: a
 * 2 KB file costs well under a millisecond, and a generated file would be one more
 * build step to forget.
 */
export const VERSION: string = readPackageVersion();

function readPackageVersion(): string {
  const text = readFileSync(new URL("../package.json", import.meta.url), "utf8");
  return String((JSON.parse(text) as { version?: unknown }).version);
}

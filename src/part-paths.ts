/**
 * The files kept beside an output while it downloads (DESIGN, "Files on disk"): one
 * place that spells their names, so no module glues `.part` suffixes of its own.
 */

/** The paths of the `.part` family of `output`. */
export interface PartPaths {
  /** `<output>.part`: the data being written. */
  part: string;
  /** `<output>.part.json`: the manifest of durable bytes. */
  manifest: string;
  /** `<output>.part.lock`: held while a process works on this output. */
  lock: string;
}

/** The `.part`, manifest and lock paths of `output` (a path, as given). Pure. */
export function partPaths(output: string): PartPaths {
  return { part: `${output}.part`, manifest: `${output}.part.json`, lock: `${output}.part.lock` };
}

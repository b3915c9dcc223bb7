/**
 * The oldest Node rangeget runs on, checked when the library is imported: undici 8 needs
 * Node 22.19 (it fails at import on Node 20 with a TypeError of its own), so an importer
 * on an older Node gets this one sentence instead. index.ts imports this module first,
 * and ES modules evaluate their imports in order, so it runs before undici loads.
 * bin/rangeget.js makes the same check without importing anything.
 */
export const MINIMUM_NODE = { major: 22, minor: 19 } as const;

/** True when `version` ("22.19.0", `process.versions.node`) is at least MINIMUM_NODE. */
export function nodeIsSupported(version: string): boolean {
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > MINIMUM_NODE.major || (major === MINIMUM_NODE.major && minor >= MINIMUM_NODE.minor);
}

if (!nodeIsSupported(process.versions.node)) {
  throw new Error(`rangeget needs Node.js ${MINIMUM_NODE.major}.${MINIMUM_NODE.minor} or later (22, 24, 26); this is Node.js ${process.version}`);
}

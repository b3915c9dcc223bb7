import { configDefaults, defineConfig } from "vitest/config";

/**
 * Pure modules, tested with tables and properties: no socket, no child process. Every
 * other test file is end-to-end (real sockets on 127.0.0.1, real files, the built CLI).
 */
const UNIT = [
  "checksum",
  "checksum-file",
  "claim",
  "cli-args",
  "cli-config",
  "cli-interrupted",
  "cli-progress",
  "cli-summary",
  "cookies",
  "errors",
  "extract",
  "file-size-limit",
  "filename",
  "host-limits",
  "http-headers",
  "input-file",
  "interim-answers",
  "netrc",
  "next-step",
  "option-bounds",
  "options",
  "ordered-sink",
  "origin-record",
  "part-file",
  "properties",
  "proxy-routes",
  "ranges",
  "ranges-tail",
  "rate-limit",
  "rates",
  "readme",
  "redact",
  "retry",
  "shard",
  "sink",
  "size",
  "stats",
  "tail-policy",
  "ticker",
  "verdict",
].map((name) => `test/${name}.test.ts`);
/** SIGKILL loops and the fault soak: a minute of wall time, run by CI and `npm run torture`. */
const TORTURE = ["test/torture.test.ts"];

export default defineConfig({
  test: {
    // Most tests wait on sockets and throttled servers, not the CPU: on 2 cores, four
    // files at a time finish the suite in about half the time.
    maxWorkers: 4,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      // Pure modules keep no state between files: one module graph per worker, not one per file.
      { extends: true, test: { name: "unit", include: UNIT, isolate: false } },
      { extends: true, test: { name: "e2e", include: ["test/**/*.test.ts"], exclude: [...configDefaults.exclude, ...UNIT, ...TORTURE] } },
      { extends: true, test: { name: "torture", include: TORTURE } },
    ],
  },
});

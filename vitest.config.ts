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
/** End-to-end files that vi.mock a module (manifest.test: node:fs/promises, for the lock's race). */
const MOCKED = ["test/manifest.test.ts"];
/** SIGKILL loops and the fault soak: a minute of wall time, run by CI and `npm run torture`. */
const TORTURE = ["test/torture.test.ts"];

export default defineConfig({
  test: {
    // End-to-end tests mostly wait on sockets, held answers and child processes, not the
    // CPU: on 2 cores, six files at a time beat four (and eight) in this machine's runs.
    maxWorkers: 6,
    // Files share workers (isolate: false below): a spy (vi.spyOn) is undone after its
    // test, so none outlives it into the next test or file.
    restoreMocks: true,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    projects: [
      // Pure modules keep no state between files: one module graph per worker, not one per
      // file; and they wait on nothing, so two workers (the cores) run them as fast as six.
      // A project with its own worker count runs in a group of its own: after the rest.
      { extends: true, test: { name: "unit", include: UNIT, isolate: false, maxWorkers: 2, sequence: { groupOrder: 1 } } },
      // End-to-end files share a worker's module graph too (44 fewer Node processes to
      // start and fill, 15% of the suite's CPU): each one starts and closes its own
      // servers, temp dirs and runs; restoreMocks undoes its spies.
      {
        extends: true,
        test: { name: "e2e", include: ["test/**/*.test.ts"], exclude: [...configDefaults.exclude, ...UNIT, ...TORTURE, ...MOCKED], isolate: false },
      },
      // vi.mock replaces a module for whoever imports it after: only in a graph of its own.
      { extends: true, test: { name: "e2e-mocked", include: MOCKED } },
      { extends: true, test: { name: "torture", include: TORTURE } },
    ],
  },
});

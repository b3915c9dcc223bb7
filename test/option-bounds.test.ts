import { describe, expect, it } from "vitest";
import { VALUE_PARSERS } from "../src/cli/values.js";
import { UsageError } from "../src/errors.js";
import { checkBound, OPTION_BOUNDS, withFlagNames } from "../src/option-bounds.js";
import { resolveSettings } from "../src/options.js";

const URL = "http://127.0.0.1:8080/f.bin";

describe("option bounds: one table for the command line and the library", () => {
  it("--retries 5000 on the command line names --retries, retries: 5000 in the library names retries, with the same bounds", () => {
    expect(() => VALUE_PARSERS.retries("5000")).toThrow(new UsageError('--retries must be a whole number from 0 to 1000, got "5000"'));
    expect(() => resolveSettings(URL, [], { retries: 5000 })).toThrow(new UsageError("retries must be a whole number from 0 to 1000, not 5000"));
    expect(VALUE_PARSERS.retries("1000")).toBe(1000);
    expect(resolveSettings(URL, [], { retries: 1000 }).retries).toBe(1000);
  });

  it.each([
    ["connections", "-c/--connections", "65", { connections: 65 }, "connections must be a whole number from 1 to 64, not 65"],
    ["max-connections-per-host", "--max-connections-per-host", "0", { maxConnectionsPerHost: 0 }, "maxConnectionsPerHost must be a whole number 1 or more, not 0"],
    ["min-split", "--min-split", "0", { minSplit: 0 }, "minSplit must be at least 1 byte, not 0"],
    ["timeout", "--timeout", "0", { timeout: 0 }, "timeout must be a number of seconds greater than 0, not 0"],
  ] as const)("%s: the CLI names the flag, the library the option", (name, flag, text, options, libraryMessage) => {
    expect(() => VALUE_PARSERS[name](text)).toThrow(new RegExp(`^${flag.replace(/[-/]/g, "\\$&")} must be .*, got "${text}"$`));
    expect(() => resolveSettings(URL, [], options)).toThrow(new UsageError(libraryMessage));
  });

  it("checks whole numbers, bounds and finiteness", () => {
    expect(checkBound(OPTION_BOUNDS.connections, 64, "option")).toBe(64);
    for (const value of [0, 65, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => checkBound(OPTION_BOUNDS.connections, value, "option")).toThrow(UsageError);
    }
    expect(checkBound(OPTION_BOUNDS.timeout, 0.5, "option")).toBe(0.5);
    expect(() => checkBound(OPTION_BOUNDS.limitRate, Number.POSITIVE_INFINITY, "option")).toThrow("limitRate must be a number of bytes per second greater than 0, not Infinity");
  });
});

describe("withFlagNames: a library message on the command line", () => {
  it.each([
    ["use `force` to overwrite it, `ifChanged` to update it, or `continue` to finish it", "use --force to overwrite it, --if-changed to update it, or --continue to finish it"],
    ["try again later or with `connections: 1`", "try again later or with -c 1"],
    ["pass `ca` with its CA, or `insecure: true` to skip the check", "pass --ca <file> with its CA, or --insecure to skip the check"],
    ["check the credentials (user:password@ in the URL, `credentials` or `headers`)", "check the credentials (user:password@ in the URL, --netrc-file, --load-cookies or -H)"],
    ["choose another `dir` or `output`", "choose another --dir or -o"],
    ["`extract`: the archive is cut", "--extract: the archive is cut"],
    ['`proxy`: "ftp://127.0.0.1:21" is not a proxy URL rangeget speaks', '--proxy: "ftp://127.0.0.1:21" is not a proxy URL rangeget speaks'],
    ["a `word` that is no option stays", "a `word` that is no option stays"],
  ])("%s", (library, cli) => {
    expect(withFlagNames(library)).toBe(cli);
  });
});

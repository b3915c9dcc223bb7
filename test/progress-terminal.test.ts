// The progress display on a real pseudo-terminal of a given size: what a user sees.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { makeContent } from "./support/content.js";
import { runOnPty } from "./support/pty.js";
import { assertBuilt } from "./support/run-cli.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;

beforeAll(() => assertBuilt());

/** A file's bar line: its name, then a percentage somewhere after it. */
const isBar = (line: string) => /^\S+ .*\d+%/.test(line) && !line.includes(": ");

describe("the progress line on a terminal of 80 and 60 columns", () => {
  it.each<[number, RegExp]>([
    [80, /^a-file-with-a-l… [█░]+ +\d+% [\d.]+ [KM]iB\/768 KiB +[\d.]+ (B|KiB|MiB)\/s +ETA \S+ +\d conn$/],
    [60, /^a-file-with-a-… +\d+% [\d.]+ [KM]iB\/768 KiB +[\d.]+ (B|KiB|MiB)\/s +ETA \S+$/],
  ])("at %i columns shows what fits, no wider than the terminal", async (columns, shape) => {
    const work = await tempDir();
    const source = await rangeServer({ content: makeContent(768 * KiB, 3), bytesPerSecond: 256 * KiB });
    const run = await runOnPty(["-c", "2", "--min-split", "128K", source.url("/a-file-with-a-long-name-for-its-bar.bin")], { cwd: work, columns });
    expect(run.code).toBe(0);
    const bars = run.frames.flat().filter(isBar);
    expect(bars.length).toBeGreaterThan(0);
    const tooWide = bars.filter((line) => line.length > columns - 1);
    expect(tooWide).toEqual([]);
    // Once the speed is known (the first frames may still show 0 B/s).
    expect(bars.filter((line) => shape.test(line)).length, bars.join("\n")).toBeGreaterThan(0);
  });
});

// What the display and the closing lines say in the cases a new user met (issue 22,
// item 9): a server without ranges, a batch stopped by Ctrl-C, a second Ctrl-C (on a
// screen: main with its stderr a terminal and the signals in the test's hands).
import { EventEmitter } from "node:events";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { main, type SignalSource } from "../src/cli/main.js";
import { download } from "../src/index.js";
import type { InternalOptions } from "../src/options.js";
import type { ProgressEvent } from "../src/types.js";
import { makeContent } from "./support/content.js";
import { FakeClock } from "./support/fake-clock.js";
import { assertBuilt, lines, startCli } from "./support/run-cli.js";
import { until } from "./support/until.js";
import { Screen } from "./support/screen.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;

beforeAll(() => assertBuilt());

describe("a server without ranges that sends Content-Length", () => {
  it("gives progress its size while the one stream runs", async () => {
    const content = makeContent(384 * KiB, 5);
    // About a third of a real second: over three seconds of a clock flowing ten times as fast, a dozen beats of the ticker.
    const source = await rangeServer({ content, acceptRanges: false, bytesPerSecond: 1024 * KiB });
    const dir = await tempDir();
    const events: ProgressEvent[] = [];
    const clock = new FakeClock();
    onTestFinished(clock.flow({ speed: 10 }));
    const options: InternalOptions = { dir, timeout: 3600, clock, onProgress: (event) => events.push(event) };
    await download(source.url("/whole.bin"), options);
    const midway = events.filter((event) => event.bytesDone > 0 && event.bytesDone < content.length);
    expect(midway.length).toBeGreaterThan(0);
    expect(midway.map((event) => event.size)).toEqual(midway.map(() => content.length));
  });
});

describe("Ctrl-C in a batch", () => {
  it("counts the files never started as not started, and --json gives each its planned path", async () => {
    const work = await tempDir();
    const source = await rangeServer({ content: makeContent(1024 * KiB, 6), bytesPerSecond: 128 * KiB });
    await writeFile(join(work, "list.txt"), [source.url("/one.bin"), source.url("/two.bin"), `${source.url("/three.bin")} named.bin`].join("\n"));
    const run = startCli(["--json", "-j", "1", "-c", "1", "-i", "list.txt"], { cwd: work, timeoutMs: 20_000 });
    await until(() => source.bytesServed() > 0, "the first bytes");
    run.child.kill("SIGINT");
    const done = await run.done;
    expect(done.code).toBe(130);
    expect(lines(done.stderr).at(-2)).toMatch(/^rangeget: 3 files: 1 interrupted, 2 not started; /);
    const results = lines(done.stdout).map((line) => JSON.parse(line) as { path: string; status: string });
    expect(results.map((result) => result.path).sort()).toEqual(["named.bin", "one.bin", "two.bin"].map((name) => join(work, name)).sort());
  });
});

describe("a second Ctrl-C on a terminal", () => {
  it("leaves the bar on screen and says what is kept", async () => {
    const work = await tempDir();
    const source = await rangeServer({ content: makeContent(4096 * KiB, 7), bytesPerSecond: 256 * KiB });
    const screen = new Screen();
    const stderr = new PassThrough() as PassThrough & { isTTY: boolean; columns: number };
    stderr.isTTY = true;
    stderr.columns = 100;
    stderr.on("data", (chunk: Buffer) => screen.write(chunk.toString("utf8")));
    const emitter = new EventEmitter();
    const signals: SignalSource = { on: (event, listener) => emitter.on(event, listener), off: (event, listener) => emitter.off(event, listener) };
    let exitCode: number | undefined;
    const run = main(["-c", "2", "--min-split", "256K", "-d", work, source.url("/big.bin")], {
      stderr,
      stdout: new PassThrough() as never,
      signals,
      env: {},
      exit: (code) => (exitCode ??= code),
    });
    await until(() => screen.lines().some((line) => /^big\.bin .* [1-9]\d*% /.test(line)), "the bar at 1% or more");
    // A user pressing Ctrl-C twice, faster than the first one's shutdown.
    emitter.emit("SIGINT", "SIGINT");
    emitter.emit("SIGINT", "SIGINT");
    expect(exitCode).toBe(130);
    await run;
    await new Promise((resolve) => setImmediate(resolve));
    const shown = screen.lines();
    expect(shown.some((line) => /^big\.bin .*\d+% /.test(line)), shown.join("\n")).toBe(true);
    expect(shown.find((line) => line.startsWith("rangeget: interrupted again"))).toMatch(
      /^rangeget: interrupted again: stopped at once; .* run the same command again to resume$/,
    );
  });
});

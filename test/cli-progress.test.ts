import { PassThrough } from "node:stream";
import { afterEach, describe, expect, it } from "vitest";
import { createProgressReporter } from "../src/cli/progress.js";
import { DEFAULT_INTERVALS } from "../src/intervals.js";
import { fileLabel, formatBarLine, layoutBar, type ProgressReporter, type ProgressStream } from "../src/cli/progress-lines.js";
import type { DownloadResult, ProgressEvent } from "../src/types.js";
import { FakeClock } from "./support/fake-clock.js";
import { until } from "./support/until.js";
import { Screen } from "./support/screen.js";

const MiB = 1024 * 1024;

function fakeStream(isTTY: boolean): { stream: ProgressStream; text: () => string } {
  const stream = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number };
  stream.isTTY = isTTY;
  stream.columns = 120;
  let written = "";
  stream.on("data", (chunk: Buffer) => (written += chunk.toString("utf8")));
  return { stream, text: () => written };
}

function progress(overrides: Partial<ProgressEvent> = {}): ProgressEvent {
  return { path: "/tmp/out/big.iso", bytesDone: 64 * MiB, size: 256 * MiB, bytesPerSecond: 16 * MiB, activeConnections: 8, ...overrides };
}

function result(overrides: Partial<DownloadResult> = {}): DownloadResult {
  return {
    url: "http://example.test/big.iso",
    path: "/tmp/out/big.iso",
    status: "downloaded",
    size: 256 * MiB,
    bytesTransferred: 256 * MiB,
    elapsedMs: 16_000,
    resumed: false,
    restartedBecauseChanged: false,
    error: null,
    checksum: null,
    cache: null,
    http: { requests: 8, statusCounts: { "206": 8 }, retries: 0, latencyMs: { p50: 3, p95: 5, p99: 5 } },
    ...overrides,
  };
}

/** Lets stream `data` events run. */
const flush = () => new Promise((resolve) => setImmediate(resolve));

let reporter: ProgressReporter | undefined;
afterEach(() => reporter?.stop());

describe("progress without a TTY", () => {
  it("prints a plain line per file at most every 10 seconds, and a final line", async () => {
    const { stream, text } = fakeStream(false);
    const clock = new FakeClock();
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://example.test/big.iso"], clock });
    reporter.update(0, progress({ bytesDone: 0 }));
    while (clock.now() < DEFAULT_INTERVALS.plainLineMs - 1000) {
      clock.advance(1000);
      reporter.update(0, progress());
    }
    clock.advance(999);
    reporter.update(0, progress());
    await flush();
    expect(text()).toBe("");
    clock.advance(1);
    reporter.update(0, progress());
    clock.advance(5000);
    reporter.update(0, progress({ bytesDone: 128 * MiB }));
    reporter.fileEnd(0, result());
    await flush();
    expect(text().split("\n")).toEqual([
      "big.iso: 25% (64.0 MiB of 256 MiB), 16.0 MiB/s, 8 connections, ETA 12s",
      "big.iso: downloaded 256 MiB in 16s, 16.0 MiB/s",
      "",
    ]);
  });

  it("keeps a clock per file", async () => {
    const { stream, text } = fakeStream(false);
    const clock = new FakeClock();
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://a.test/a", "http://a.test/b"], clock });
    reporter.update(0, progress({ path: "/d/a" }));
    clock.advance(6000);
    reporter.update(1, progress({ path: "/d/b" }));
    clock.advance(4000);
    reporter.update(0, progress({ path: "/d/a" }));
    reporter.update(1, progress({ path: "/d/b" }));
    await flush();
    expect(text().split("\n").map((line) => line.split(":")[0])).toEqual(["a", ""]);
  });

  it("takes its period from plainLineMs", async () => {
    const { stream, text } = fakeStream(false);
    const clock = new FakeClock();
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://a.test/a"], clock, plainLineMs: 500 });
    reporter.update(0, progress({ path: "/d/a" }));
    clock.advance(499);
    reporter.update(0, progress({ path: "/d/a" }));
    clock.advance(1);
    reporter.update(0, progress({ path: "/d/a", bytesDone: 128 * MiB }));
    await flush();
    expect(text()).toBe("a: 50% (128 MiB of 256 MiB), 16.0 MiB/s, 8 connections, ETA 8s\n");
  });

  it("says how far an interrupted file got and leaves other failures to the error line", async () => {
    const { stream, text } = fakeStream(false);
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://a.test/a", "http://a.test/b"], clock: new FakeClock() });
    reporter.update(0, progress({ path: "/d/a" }));
    reporter.fileEnd(0, result({ path: "/d/a", status: "failed", error: { code: "ERR_ABORTED", message: "aborted", exitCode: 130 } }));
    reporter.fileEnd(1, result({ path: "/d/b", status: "failed", error: { code: "ERR_HTTP_STATUS", message: "404", exitCode: 3 } }));
    await flush();
    expect(text()).toBe("a: interrupted at 25% (64.0 MiB of 256 MiB)\n");
  });

  it.each<[DownloadResult["status"], Partial<DownloadResult>, string]>([
    ["resumed", { bytesTransferred: 64 * MiB, elapsedMs: 4000 }, "big.iso: resumed and finished 256 MiB in 4s (64.0 MiB fetched this run, 16.0 MiB/s)"],
    ["up-to-date", { bytesTransferred: 0, elapsedMs: 20 }, "big.iso: up to date, not downloaded again"],
  ])("ends a %s file with one line", async (status, overrides, line) => {
    const { stream, text } = fakeStream(false);
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://example.test/big.iso"], clock: new FakeClock() });
    reporter.fileEnd(0, result({ status, ...overrides }));
    await flush();
    expect(text()).toBe(`${line}\n`);
  });
});

describe("progress with -q", () => {
  it("prints no progress, but still the lines main logs", async () => {
    for (const isTTY of [false, true]) {
      const { stream, text } = fakeStream(isTTY);
      const clock = new FakeClock();
      const quiet = await createProgressReporter({ stream, quiet: true, urls: ["http://a.test/x"], clock });
      quiet.update(0, progress());
      clock.advance(60_000);
      quiet.update(0, progress());
      quiet.fileEnd(0, result());
      quiet.log("rangeget: an error");
      quiet.stop();
      await flush();
      expect(text()).toBe("rangeget: an error\n");
    }
  });
});

describe("progress on a TTY", () => {
  it("draws one bar per active file with bytes, percent, speed, ETA and connections, plus a total", async () => {
    const { stream, text } = fakeStream(true);
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://a.test/first.bin", "http://a.test/second.bin"], clock: new FakeClock() });
    reporter.update(0, progress({ path: "/d/first.bin" }));
    reporter.update(1, progress({ path: "/d/second.bin", bytesDone: 0, size: undefined, bytesPerSecond: 0, activeConnections: 1 }));
    reporter.stop();
    await flush();
    const screen = text();
    expect(screen).toMatch(/first\.bin .* 25% 64\.0 MiB\/256 MiB +16\.0 MiB\/s +ETA 12s +8 conn/);
    expect(screen).toMatch(/second\.bin .* {2}\?% 0 B\/\? +0 B\/s +ETA -- +1 conn/);
    expect(screen).toMatch(/total .* 64\.0 MiB\/\? +16\.0 MiB\/s +ETA -- +0\/2 files/);
  });

  it("shows a batch's total line before any file has started", async () => {
    const { stream } = fakeStream(true);
    const screen = new Screen();
    stream.on("data", (chunk: Buffer) => screen.write(chunk.toString("utf8")));
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://a.test/one", "http://a.test/two"], clock: new FakeClock() });
    await until(() => screen.lines().some((line) => line.startsWith("total ")), "the total line");
    expect(screen.lines().find((line) => line.startsWith("total "))).toMatch(/ \?% 0 B\/\? .* 0\/2 files$/);
  });

  it("gives the total a size once every file's is known, an up-to-date file's included", async () => {
    const { stream, text } = fakeStream(true);
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://a.test/one", "http://a.test/two"], clock: new FakeClock() });
    reporter.fileEnd(0, result({ path: "/d/one", status: "up-to-date", size: 64 * MiB, bytesTransferred: 0 }));
    reporter.update(1, progress({ path: "/d/two", bytesDone: 64 * MiB, size: 192 * MiB }));
    reporter.stop();
    await flush();
    expect(text()).toMatch(/total .* 50% 128 MiB\/256 MiB +16\.0 MiB\/s +ETA 8s +1\/2 files/);
  });

  it("logs a finished file above the bars", async () => {
    const { stream, text } = fakeStream(true);
    reporter = await createProgressReporter({ stream, quiet: false, urls: ["http://a.test/first.bin"], clock: new FakeClock() });
    reporter.update(0, progress({ path: "/d/first.bin" }));
    reporter.fileEnd(0, result({ path: "/d/first.bin" }));
    reporter.log("rangeget: stats first.bin: 8 requests");
    reporter.stop();
    await flush();
    expect(text()).toContain("first.bin: downloaded 256 MiB in 16s, 16.0 MiB/s\n");
    expect(text()).toContain("rangeget: stats first.bin: 8 requests\n");
    expect(text()).not.toContain("total");
  });
});

describe("progress on a TTY, as the screen shows it", () => {
  function screenOf(stream: ProgressStream): Screen {
    const screen = new Screen();
    stream.on("data", (chunk: Buffer) => screen.write(chunk.toString("utf8")));
    return screen;
  }
  const labels = (screen: Screen) => screen.lines().map((line) => line.split(" ")[0]);

  it("keeps the total line below every file's bar as files start and end", async () => {
    const { stream } = fakeStream(true);
    const screen = screenOf(stream);
    const urls = ["http://a.test/first.bin", "http://a.test/second.bin", "http://a.test/third.bin"];
    reporter = await createProgressReporter({ stream, quiet: false, urls, clock: new FakeClock() });
    reporter.update(0, progress({ path: "/d/first.bin" }));
    await until(() => labels(screen).join() === "first.bin,total", "the first bar and the total");
    reporter.update(1, progress({ path: "/d/second.bin" }));
    reporter.update(0, progress({ path: "/d/first.bin", bytesDone: 128 * MiB }));
    reporter.update(2, progress({ path: "/d/third.bin" }));
    await until(() => labels(screen).length === 4, "three bars and the total", 5000);
    expect(labels(screen)).toEqual(["first.bin", "second.bin", "third.bin", "total"]);
    reporter.fileEnd(1, result({ path: "/d/second.bin" }));
    await until(() => !labels(screen).includes("second.bin"), "the finished file's bar to go", 5000);
    expect(labels(screen)).toEqual(["second.bin:", "first.bin", "third.bin", "total"]);
    expect(screen.lines()[0]).toBe("second.bin: downloaded 256 MiB in 16s, 16.0 MiB/s");
  });

  it("reads cursor moves and erases the way a terminal does (the screen helper itself)", () => {
    const screen = new Screen();
    screen.write("one\ntwo\nthree");
    screen.write("\x1b[2A\x1b[1GONE\x1b[0K\n\x1b[0J");
    expect(screen.lines()).toEqual(["ONE"]);
    screen.write("\rx\x1b[3Cy\x1b[2K");
    expect(screen.lines()).toEqual(["ONE"]);
  });
});

describe("the bar line laid out for the terminal's width", () => {
  const payload = {
    label: "ubuntu-24.04.1-desktop-amd64.iso",
    bytesDone: 115 * MiB,
    size: 256 * MiB,
    bytesPerSecond: 12.1 * MiB,
    activeConnections: 8,
  };

  it.each<[number, string]>([
    [120, "ubuntu-24.04.1-desktop-… █████████░░░░░░░░░░░  44% 115 MiB/256 MiB   12.1 MiB/s ETA 12s   8 conn"],
    [80, "ubuntu-24.04.1-… ███░░░░  44% 115 MiB/256 MiB   12.1 MiB/s ETA 12s   8 conn"],
    [60, "ubuntu-24.04.1…  44% 115 MiB/256 MiB   12.1 MiB/s ETA 12s"],
    [40, "ubuntu-24.04…  44% 12.1 MiB/s ETA 12s"],
    [30, "ubuntu-24.04.…  44% ETA 12s"],
    [20, "ubuntu-24.04.…  44%"],
    [10, "ubu…  44%"],
  ])("at %i columns: %s", (columns, line) => {
    expect(formatBarLine(payload, columns)).toBe(line);
  });

  it("is never wider than the terminal less one column, at any width from 2 to 200", () => {
    for (let columns = 2; columns <= 200; columns++) {
      for (const size of [undefined, 0, 256 * MiB, 999 * 1024 * MiB]) {
        const line = formatBarLine({ ...payload, size, bytesDone: size ?? 3 }, columns);
        expect(line.length, `${columns} columns: ${line}`).toBeLessThanOrEqual(columns - 1);
      }
    }
  });

  it("drops the connections first, then the bytes, the speed and the ETA; never the name or the percentage", () => {
    const fieldsAt = (columns: number) => layoutBar(columns).fields.join(",");
    expect(fieldsAt(120)).toBe("percent,bytes,speed,eta,tail");
    expect(fieldsAt(68)).toBe("percent,bytes,speed,eta,tail");
    expect(fieldsAt(67)).toBe("percent,bytes,speed,eta");
    expect(fieldsAt(50)).toBe("percent,speed,eta");
    expect(fieldsAt(30)).toBe("percent,eta");
    expect(fieldsAt(20)).toBe("percent");
    expect(fieldsAt(3)).toBe("percent");
    // The bar only where the fields leave room for it.
    expect(layoutBar(80).barWidth).toBeGreaterThan(0);
    expect(layoutBar(70).barWidth).toBe(0);
  });
});

describe("fileLabel", () => {
  it.each<[string, string | undefined, string]>([
    ["http://a.test/dir/file.iso", "/out/named.iso", "named.iso"],
    ["http://a.test/dir/my%20file.iso", undefined, "my file.iso"],
    ["http://a.test/dir/", "", "http://a.test/dir/"],
    ["http://a.test/bad%zz", undefined, "http://a.test/bad%zz"],
    ["http://user:secret@a.test/dir/", undefined, "http://user:***@a.test/dir/"],
  ])("%s with path %s is %s", (url, path, label) => {
    expect(fileLabel(url, path)).toBe(label);
  });
});

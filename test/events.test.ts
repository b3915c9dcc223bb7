// The event stream of a download (onEvent, --progress json, --progress-fd) through
// real sockets, with the faults it reports: a connection dropped once, a 503 with
// Retry-After, a file that changes, a 404. The command line runs its `main` in this
// process (run-main.ts), on a fake clock where the test needs one; what reads the
// process's file descriptors (--progress-fd) runs the built bin as a child.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it, onTestFinished } from "vitest";
import { DownloadEvents } from "../src/events.js";
import { download, type DownloadEvent } from "../src/index.js";
import type { InternalOptions } from "../src/options.js";
import { makeContent, sha256 } from "./support/content.js";
import { FAKE_WALL_EPOCH_MS, FakeClock } from "./support/fake-clock.js";
import { assertBuilt, lines, runCli } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;
/** Answer deadlines on a flowing fake clock: long enough that none is reached while bytes arrive in real time. */
const TIMEOUT_S = 3600;
/**
 * How much faster than real time the fake clock flows in the tests that drive a whole
 * download on it: a 1 s Retry-After, the backoffs, the once-a-second progress events
 * and the rescue's three-second measure pass in tenths of real seconds.
 */
const SPEED = 10;

/** The sleeps that are neither an answer deadline nor an idle connection's poll (worker.ts, 200 ms): the backoffs. */
function backoffs(clock: FakeClock): number[] {
  return clock.sleeps.filter((ms) => ms !== TIMEOUT_S * 1000 && ms !== 200);
}

beforeAll(() => assertBuilt());

/**
 * A server whose second request gets a 503 asking for a 1 s pause and whose third is
 * cut after 10,000 bytes; each answer paced at `bytesPerSecond` (real time).
 */
async function faultyServer(size = 768 * KiB, bytesPerSecond = 192 * KiB) {
  const content = makeContent(size, 11);
  const source = await rangeServer({
    content,
    bytesPerSecond,
    onRequest: (request) => (request.index === 1 ? { status: 503, retryAfter: "1" } : request.index === 2 ? { dropAfterBytes: 10_000 } : undefined),
  });
  return { content, source };
}

/** Every event has the version, the time (the wall time of `clock`), the URL and the path. */
function expectBase(events: readonly { v: number; time: number; url: string; path: string }[], url: string, path: string, clock: FakeClock) {
  for (const event of events) {
    expect(event.v).toBe(1);
    expect(event.url).toBe(url);
    expect(event.time).toBeGreaterThanOrEqual(FAKE_WALL_EPOCH_MS);
    expect(event.time).toBeLessThanOrEqual(clock.wall());
  }
  expect(events.filter((event) => event.path !== path).map((event) => event.path)).toEqual([]);
}

describe("onEvent", () => {
  it("reports start, the retries with their reason and delay, progress once a second, and finish last", async () => {
    // About a third of a real second at these rates: more than three seconds of the flowing clock.
    const { content, source } = await faultyServer(768 * KiB, 768 * KiB);
    const dir = await tempDir();
    const events: DownloadEvent[] = [];
    const clock = new FakeClock();
    onTestFinished(clock.flow({ speed: SPEED }));
    const options: InternalOptions = { dir, connections: 4, minSplit: 64 * KiB, timeout: TIMEOUT_S, clock, onEvent: (event) => events.push(event) };
    const result = await download(source.url("/f.bin"), options);
    expect(sha256(await readFile(join(dir, "f.bin")))).toBe(sha256(content));
    const path = join(dir, "f.bin");
    expectBase(events, source.url("/f.bin"), path, clock);
    const kinds = events.map((event) => event.event);
    expect(kinds[0]).toBe("start");
    expect(kinds.at(-1)).toBe("finish");
    expect(kinds.filter((kind) => kind === "start" || kind === "finish")).toEqual(["start", "finish"]);
    expect(events[0]).toMatchObject({ event: "start", size: content.length, connections: 4 });

    const retries = events.filter((event) => event.event === "retry");
    expect(retries).toHaveLength(2);
    expect(retries[0]).toMatchObject({ code: "ERR_HTTP_STATUS", status: 503, delayMs: 1000, attempt: 1 });
    expect(retries[0]!.reason).toMatch(/503/);
    expect(retries[1]).toMatchObject({ code: "ERR_NETWORK", status: null, attempt: 1 });
    expect(retries[1]!.reason).toMatch(/closed/);
    // What was slept between attempts is what the events said: the server's 1 s, then the backoff.
    expect(backoffs(clock).map(Math.round)).toEqual(retries.map((retry) => retry.event === "retry" && retry.delayMs));

    const progress = events.filter((event) => event.event === "progress");
    expect(progress.length).toBeGreaterThan(0);
    for (const event of progress) {
      expect(event).toMatchObject({ size: content.length });
      expect(event.bytesDone).toBeLessThanOrEqual(content.length);
      expect(typeof event.bytesPerSecond).toBe("number");
      expect(event.etaSeconds === null || event.etaSeconds >= 0).toBe(true);
    }
    // Never more often than once a second: stamped and throttled on the one clock, so no slack.
    const times = [events[0]!, ...progress].map((event) => event.time);
    for (let index = 1; index < times.length; index++) expect(times[index]! - times[index - 1]!).toBeGreaterThanOrEqual(1000);
    const finish = events.at(-1)!;
    expect(finish.event === "finish" && finish.result).toEqual(result);
  });

  it("reports a remote change, then a new start, and an error event with the exit code when a file is missing", async () => {
    const first = makeContent(512 * KiB, 12);
    const second = makeContent(512 * KiB, 13);
    const source = await rangeServer({
      content: first,
      bytesPerSecond: 256 * KiB,
      onRequest: (request) => {
        if (request.index === 2) source.setContent(second);
        return undefined;
      },
    });
    const dir = await tempDir();
    const events: DownloadEvent[] = [];
    await download(source.url("/c.bin"), { dir, connections: 2, minSplit: 64 * KiB, onEvent: (event) => events.push(event) });
    expect(sha256(await readFile(join(dir, "c.bin")))).toBe(sha256(second));
    const kinds = events.map((event) => event.event).filter((kind) => kind !== "progress" && kind !== "retry");
    expect(kinds).toEqual(["start", "changed", "start", "finish"]);
    const changed = events.find((event) => event.event === "changed");
    expect(changed?.event === "changed" && changed.reason).toMatch(/changed/);

    const absent = await rangeServer({ content: first, onRequest: () => ({ status: 404 }) });
    const failed: DownloadEvent[] = [];
    await download(absent.url("/gone.bin"), { dir, onEvent: (event) => failed.push(event) }).catch(() => {});
    expect(failed.map((event) => event.event)).toEqual(["error"]);
    expect(failed[0]).toMatchObject({ event: "error", code: "ERR_HTTP_STATUS", exit: 3, path: join(dir, "gone.bin") });
  });
});

/** The JSON lines of a stream, every other line left out. */
function jsonLines(text: string): Array<Record<string, unknown>> {
  return lines(text)
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("progress events' period", () => {
  it("passes a snapshot on at most every progressEventMs of the download's clock, stamped with its wall time", () => {
    const clock = new FakeClock();
    const events: DownloadEvent[] = [];
    const downloadEvents = new DownloadEvents({ onEvent: (event) => events.push(event) }, "http://a.test/f", "/d/f", clock, 500);
    downloadEvents.start("/d/f", 1000, 1);
    for (let beat = 1; beat <= 8; beat++) {
      clock.advance(250);
      downloadEvents.progress({ path: "/d/f", bytesDone: beat * 100, size: 1000, bytesPerSecond: 400, activeConnections: 1 });
    }
    const progress = events.filter((event) => event.event === "progress");
    expect(progress.map((event) => event.time - FAKE_WALL_EPOCH_MS)).toEqual([500, 1000, 1500, 2000]);
    expect(progress.map((event) => event.event === "progress" && event.bytesDone)).toEqual([200, 400, 600, 800]);
  });
});

describe("onEvent at the tail", () => {
  it("reports a rescue or a hedge with the range it moves, as many as the result counts", async () => {
    const content = makeContent(3 * 1024 * KiB, 18);
    const source = await rangeServer({ content, bytesPerSecond: 1024 * KiB });
    // The first range after the probe crawls at 1/20 of its peers' speed.
    source.onRequest = (request) => (request.index === 1 ? { bytesPerSecond: 50 * KiB } : undefined);
    const dir = await tempDir();
    const events: DownloadEvent[] = [];
    const clock = new FakeClock();
    onTestFinished(clock.flow({ speed: SPEED }));
    const options: InternalOptions = { dir, connections: 4, minSplit: 256 * KiB, retries: 3, timeout: TIMEOUT_S, clock, onWarning: () => {}, onEvent: (event) => events.push(event) };
    const result = await download(source.url("/t.bin"), options);
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
    const moved = events.filter((event): event is Extract<DownloadEvent, { event: "rescue" | "hedge" }> => event.event === "rescue" || event.event === "hedge");
    expect(moved.filter((event) => event.event === "rescue")).toHaveLength(result.http.rescues);
    expect(moved.filter((event) => event.event === "hedge")).toHaveLength(result.http.hedges);
    expect(moved.length).toBeGreaterThanOrEqual(1);
    for (const event of moved) {
      const { start, end } = event.range;
      expect(0 <= start && start <= end && end < content.length, `${start}-${end}`).toBe(true);
    }
  });
});

describe("--progress json", () => {
  it("prints the events of a run with faults on stderr, in order, finish carrying the --json result", async () => {
    const { source } = await faultyServer(768 * KiB, 768 * KiB);
    const dir = await tempDir();
    const clock = new FakeClock();
    onTestFinished(clock.flow({ speed: SPEED }));
    const run = await runMain(["--progress", "json", "--json", "-c", "4", "--min-split", "64K", "--timeout", String(TIMEOUT_S), "-d", dir, source.url("/f.bin")], { cwd: dir, clock });
    expect(run.code, run.stderr).toBe(0);
    const events = jsonLines(run.stderr);
    const kinds = events.map((event) => event.event);
    expect(kinds[0]).toBe("start");
    expect(kinds.at(-1)).toBe("finish");
    expect(kinds.filter((kind) => kind === "retry")).toHaveLength(2);
    expect(kinds).toContain("progress");
    for (const event of events) {
      expect(Object.keys(event).slice(0, 6)).toEqual(["v", "event", "index", "time", "url", "path"]);
      expect(event).toMatchObject({ v: 1, index: 0, url: source.url("/f.bin"), path: join(dir, "f.bin") });
    }
    expect(events[0]).toMatchObject({ size: 768 * KiB, connections: 4 });
    expect(events.find((event) => event.event === "retry")).toMatchObject({ status: 503, delayMs: 1000, attempt: 1, code: "ERR_HTTP_STATUS" });
    expect(backoffs(clock).map(Math.round)).toEqual(events.filter((event) => event.event === "retry").map((event) => event.delayMs));
    expect(events.at(-1)!.result).toEqual(JSON.parse(run.stdout));
    // Human lines stay apart from the events: no bar, no plain progress line.
    expect(lines(run.stderr).filter((line) => !line.startsWith("{"))).toEqual([]);
  });

  it("ends a failed file with an error event naming its code and exit code", async () => {
    const source = await rangeServer({ content: makeContent(1024, 14), onRequest: () => ({ status: 404 }) });
    const cwd = await tempDir();
    const run = await runMain(["--progress", "json", source.url("/gone.bin")], { cwd });
    expect(run.code).toBe(3);
    const events = jsonLines(run.stderr);
    expect(events.map((event) => event.event)).toEqual(["error"]);
    expect(events[0]).toMatchObject({ code: "ERR_HTTP_STATUS", exit: 3, path: join(cwd, "gone.bin") });
    expect(lines(run.stderr).filter((line) => !line.startsWith("{"))).toEqual([expect.stringMatching(/^rangeget: .*404/)]);
  });

  it("goes to --progress-fd 3 alone, leaving stderr to people", async () => {
    const source = await rangeServer({ content: makeContent(256 * KiB, 11) });
    const cwd = await tempDir();
    // A child: fd 3 is a pipe the child is given, read here.
    const run = await runCli(["--progress", "json", "--progress-fd", "3", "-c", "2", "--min-split", "64K", source.url("/f.bin")], { cwd, fd3: true, timeoutMs: 20_000 });
    expect(run.code, run.stderr).toBe(0);
    const events = lines(run.fd3).map((line) => JSON.parse(line) as { event: string });
    expect(events[0]!.event).toBe("start");
    expect(events.at(-1)!.event).toBe("finish");
    expect(run.stderr).toBe("");
    // fd 3 took the events: stdout kept nothing of them either.
    expect(run.stdout).toBe("");
  });

  it("refuses an unknown kind and a descriptor that is not open, before any request (exit 2)", async () => {
    const source = await rangeServer({ content: makeContent(1024, 15) });
    const cwd = await tempDir();
    const kind = await runMain(["--progress", "fancy", source.url("/a")], { cwd });
    expect(kind.code).toBe(2);
    expect(kind.stderr).toMatch(/^rangeget: --progress must be one of bar, plain, json, none, got "fancy"/);
    // A child: whether fd 9 is open is a matter of the process's descriptors, and this one's are vitest's.
    const fd = await runCli(["--progress", "json", "--progress-fd", "9", source.url("/a")], { cwd });
    expect(fd.code).toBe(2);
    expect(fd.stderr).toMatch(/^rangeget: --progress-fd 9: no such open file descriptor/);
    expect(source.requests).toHaveLength(0);
  });
});

describe("plain progress lines on the CLI's clock", () => {
  it("prints one every plainLineMs of the clock given to main, and the closing line", async () => {
    const source = await rangeServer({ content: makeContent(512 * KiB, 19), bytesPerSecond: 1024 * KiB });
    const dir = await tempDir();
    const clock = new FakeClock();
    onTestFinished(clock.flow({ speed: SPEED }));
    const run = await runMain(["--progress", "plain", "-c", "1", "--timeout", String(TIMEOUT_S), "-d", dir, source.url("/p.bin")], {
      cwd: dir,
      clock,
      intervals: { plainLineMs: 1000 },
    });
    expect(run.code, run.stderr).toBe(0);
    const shown = lines(run.stderr);
    // Half a real second of bytes is five seconds of this clock: lines a second apart on it, where the default would print none.
    expect(shown.slice(0, -1).length).toBeGreaterThanOrEqual(2);
    for (const line of shown.slice(0, -1)) expect(line).toMatch(/^p\.bin: \d+% \(/);
    expect(shown.at(-1)).toMatch(/^p\.bin: downloaded 512 KiB in \d+s/);
  });
});

describe("-v, --verbose", () => {
  it("prints each request and answer, the verdict, the redirect and the retry, with no secret", async () => {
    const content = makeContent(256 * KiB, 16);
    const source = await rangeServer({
      content,
      onRequest: (request) =>
        request.path === "/start" ? { redirectTo: "/f.bin" } : request.index === 2 ? { status: 503, retryAfter: "0" } : undefined,
    });
    const cwd = await tempDir();
    const url = source.url("/start").replace("//", "//user:hunter2@");
    const run = await runMain(["-v", "-q", "-c", "2", "--min-split", "64K", "-H", "X-Api-Key: topsecret", "-o", "f.bin", url], { cwd });
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(cwd, "f.bin")))).toBe(sha256(content));
    const shown = lines(run.stderr);
    const shownUrl = source.url("/start").replace("//", "//user:***@");
    expect(shown[0]).toMatch(new RegExp(`^rangeget: > GET ${escape(shownUrl)} .*range: bytes=0-65535`));
    expect(shown[0]).toMatch(/ authorization: \*\*\* /);
    expect(shown[0]).toMatch(/ x-api-key: \*\*\*/);
    expect(shown[1]).toMatch(new RegExp(`^rangeget: < 302 ${escape(shownUrl)} .*location: /f\\.bin`));
    expect(shown[2]).toMatch(new RegExp(`^rangeget: > GET ${escape(source.url("/f.bin").replace("//", "//user:***@"))} .*range: bytes=0-65535`));
    expect(shown[3]).toMatch(/^rangeget: < 206 \S+ .*content-range: bytes 0-65535\/262144 .*content-length: 65536/);
    expect(shown[4]).toMatch(/^rangeget: = bytes: bytes 0-65535 of 262144 \(/);
    expect(shown.some((line) => /^rangeget: < 503 .*retry-after: 0/.test(line))).toBe(true);
    expect(shown.some((line) => /^rangeget: f\.bin: retry in 0\.0 s after attempt 1 \(ERR_HTTP_STATUS\): .*503/.test(line))).toBe(true);
    expect(run.stderr).not.toMatch(/hunter2|topsecret/);
  });
});

describe("DEBUG=rangeget", () => {
  it("adds the stack of a failed download after its one line, as README promises", async () => {
    const source = await rangeServer({ content: makeContent(1024, 17), onRequest: () => ({ status: 404 }) });
    const cwd = await tempDir();
    const quiet = await runMain(["-q", source.url("/gone.bin")], { cwd });
    expect(lines(quiet.stderr)).toHaveLength(1);
    const debug = await runMain(["-q", source.url("/gone.bin")], { cwd, env: { DEBUG: "rangeget" } });
    expect(debug.code).toBe(3);
    const shown = lines(debug.stderr);
    expect(shown[0]).toBe(lines(quiet.stderr)[0]);
    expect(shown[1]).toMatch(/^HttpStatusError: /);
    expect(shown.slice(2).every((line) => /^\s+at /.test(line))).toBe(true);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

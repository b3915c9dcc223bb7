// The event stream of a download (onEvent, --progress json, --progress-fd) through
// real sockets, with the faults it reports: a connection dropped once, a 503 with
// Retry-After, a file that changes, a 404.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { download, type DownloadEvent } from "../src/index.js";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, BIN, cliEnv, lines, runCli } from "./support/run-cli.js";
import { rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";

const KiB = 1024;

beforeAll(() => assertBuilt());

/** A server whose second request gets a 503 asking for a 1 s pause and whose third is cut after 10,000 bytes. */
async function faultyServer(size = 768 * KiB) {
  const content = makeContent(size, 11);
  const source = await rangeServer({
    content,
    bytesPerSecond: 192 * KiB,
    onRequest: (request) => (request.index === 1 ? { status: 503, retryAfter: "1" } : request.index === 2 ? { dropAfterBytes: 10_000 } : undefined),
  });
  return { content, source };
}

/** Every event has the version, the time, the URL and the path. */
function expectBase(events: readonly { v: number; time: number; url: string; path: string }[], url: string, path: string) {
  for (const event of events) {
    expect(event.v).toBe(1);
    expect(event.url).toBe(url);
    expect(Math.abs(event.time - Date.now())).toBeLessThan(60_000);
  }
  expect(events.filter((event) => event.path !== path).map((event) => event.path)).toEqual([]);
}

describe("onEvent", () => {
  it("reports start, the retries with their reason and delay, progress once a second, and finish last", async () => {
    const { content, source } = await faultyServer();
    const dir = await tempDir();
    const events: DownloadEvent[] = [];
    const result = await download(source.url("/f.bin"), { dir, connections: 4, minSplit: 64 * KiB, onEvent: (event) => events.push(event) });
    expect(sha256(await readFile(join(dir, "f.bin")))).toBe(sha256(content));
    const path = join(dir, "f.bin");
    expectBase(events, source.url("/f.bin"), path);
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

    const progress = events.filter((event) => event.event === "progress");
    expect(progress.length).toBeGreaterThan(0);
    for (const event of progress) {
      expect(event).toMatchObject({ size: content.length });
      expect(event.bytesDone).toBeLessThanOrEqual(content.length);
      expect(typeof event.bytesPerSecond).toBe("number");
      expect(event.etaSeconds === null || event.etaSeconds >= 0).toBe(true);
    }
    // Never more often than once a second (1 ms of slack between the two clocks).
    const times = [events[0]!, ...progress].map((event) => event.time);
    for (let index = 1; index < times.length; index++) expect(times[index]! - times[index - 1]!).toBeGreaterThanOrEqual(999);
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

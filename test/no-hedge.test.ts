/**
 * What a download costs the server in bytes (issue "Everyday use", item 15): with
 * `--no-hedge` exactly the file, every byte asked once and no answer cut short; by
 * default, no hedge of a rest too small to be worth a connection.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { download } from "../src/index.js";
import { makeContent, sha256 } from "./support/content.js";
import { rangeServer } from "./support/servers.js";
import { assertBuilt, lines, runCli } from "./support/run-cli.js";
import { tempDir } from "./support/temp.js";

const MiB = 1024 * 1024;

beforeAll(() => assertBuilt());

/** The second ranged request crawls: what rescues, steals and hedges exist for. */
const oneSlowConnection = (request: { index: number }) => (request.index === 2 ? { bytesPerSecond: 1 * MiB } : undefined);

describe("--no-hedge", () => {
  it("the server sends exactly the file's bytes: every byte asked once, no answer cut short, even with a slow connection", async () => {
    const content = makeContent(24 * MiB, 150);
    const server = await rangeServer({ content, bytesPerSecond: 16 * MiB, onRequest: oneSlowConnection });
    const cwd = await tempDir();
    const run = await runCli(["-q", "--json", "--no-hedge", "-c", "4", "--min-split", "1M", "--timeout", "10", "-o", "exact.bin", server.url()], {
      cwd,
      timeoutMs: 60_000,
    });
    expect(run.code).toBe(0);
    expect(sha256(await readFile(join(cwd, "exact.bin")))).toBe(sha256(content));
    expect(server.bytesServed()).toBe(content.length);
    // The asked ranges tile the file: none overlaps another, together they are the file.
    const asked = server.requests.map((request) => [request.range!.start, request.range!.end!] as const).sort((a, b) => a[0] - b[0]);
    let next = 0;
    for (const [start, end] of asked) {
      expect(start).toBe(next);
      next = end + 1;
    }
    expect(next).toBe(content.length);
    const result = JSON.parse(lines(run.stdout)[0] ?? "{}") as { http: { hedges: number; rescues: number } };
    expect(result.http).toMatchObject({ hedges: 0, rescues: 0 });
  });

  it("is the library option noHedge too", async () => {
    const content = makeContent(8 * MiB, 151);
    const server = await rangeServer({ content, bytesPerSecond: 16 * MiB, onRequest: oneSlowConnection });
    const output = join(await tempDir(), "lib.bin");
    const result = await download(server.url(), { output, connections: 4, minSplit: 1 * MiB, noHedge: true, onWarning: () => {} });
    expect(result.http).toMatchObject({ hedges: 0, rescues: 0 });
    expect(server.bytesServed()).toBe(content.length);
  });
});

describe("hedges by default", () => {
  it("no hedge of a rest smaller than --min-split that ends within 3 s: a 7.35 MB file at the defaults costs the server no more than 1.05 × its size", async () => {
    const content = makeContent(7_350_000, 152);
    // The second range (the first after the probe's) crawls, as on a congested path.
    const server = await rangeServer({ content, bytesPerSecond: 8 * MiB, onRequest: (request) => (request.index === 1 ? { bytesPerSecond: 2 * MiB } : undefined) });
    const output = join(await tempDir(), "small.bin");
    const result = await download(server.url(), { output, onWarning: () => {} });
    expect(sha256(await readFile(output))).toBe(sha256(content));
    expect(result.http.hedges).toBe(0);
    expect(server.bytesServed() / content.length).toBeLessThanOrEqual(1.05);
  });
});

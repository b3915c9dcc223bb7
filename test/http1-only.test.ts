// undici 8 negotiates HTTP/2 by default and would then multiplex every range over one
// TCP connection (8 ranges at 50 ms round trip: 4.9 MiB/s against 150.8 MiB/s on
// separate HTTP/1.1 connections). A server that offers both over TLS (ALPN h2 and
// http/1.1) must get HTTP/1.1, one TLS connection per range in flight.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import { assertBuilt, runCli } from "./support/run-cli.js";
import { startH2CapableRangeServer } from "./support/h2-range-server.js";
import { tempDir } from "./support/temp.js";
import { testCa } from "./support/tls-fixtures.js";

const MiB = 1024 * 1024;

beforeAll(assertBuilt);

it("asks an h2-capable HTTPS server for HTTP/1.1 and opens a connection per range", async () => {
  const content = makeContent(8 * MiB, 22);
  const { port, protocols, versions } = await startH2CapableRangeServer(content);

  const dir = await tempDir();
  const run = await runCli(["-q", "-c", "4", "--min-split", "1M", "--ca", testCa.certPath, "-o", "out.bin", `https://127.0.0.1:${port}/f.bin`], { cwd: dir });
  expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
  expect(sha256(await readFile(join(dir, "out.bin")))).toBe(sha256(content));
  expect(new Set(versions)).toEqual(new Set(["1.1"]));
  expect(protocols.every((protocol) => protocol === "http/1.1")).toBe(true);
  expect(protocols.length).toBeGreaterThanOrEqual(4);
});

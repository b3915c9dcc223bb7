// HTTPS with test certificates: the CLI against the range server behind a TLS
// terminator on 127.0.0.1. Certificates are checked-in fixtures (test/fixtures/tls).
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { download, NetworkError } from "../src/index.js";
import { makeContent, sha256 } from "./support/content.js";
import type { RangeServer } from "./support/range-server.js";
import { listenOnLoopback } from "./support/listen.js";
import { assertBuilt, lines, runCli, type CliRun } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { closeAfterTest, rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { selfSignedCert, serverCert, testCa, wrongHostCert, type CertAndKey } from "./support/tls-fixtures.js";
import { startTlsTerminator, type TlsTerminator } from "./support/tls-terminator.js";

const KiB = 1024;
let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await tempDir();
});

/** The range server behind HTTPS presenting `identity`. */
async function httpsServer(identity: CertAndKey, content = makeContent(600 * KiB, 31)) {
  const origin: RangeServer = await rangeServer({ content });
  const tls: TlsTerminator = await startTlsTerminator({ targetPort: origin.port, cert: identity.cert, key: identity.key });
  closeAfterTest(() => tls.close());
  return { origin, tls, content };
}

/**
 * The CLI's `main` in this process (run-main.ts). NODE_EXTRA_CA_CERTS is read once, as
 * Node starts: with one, the built CLI runs as a child that gets it.
 */
function cli(args: string[], extraCaCerts?: string): Promise<CliRun> {
  if (extraCaCerts === undefined) return runMain(args, { cwd: workDir, timeoutMs: 15_000 });
  return runCli(args, { cwd: workDir, env: { NODE_EXTRA_CA_CERTS: extraCaCerts }, timeoutMs: 15_000 });
}

const PARALLEL = ["-c", "4", "--min-split", "64K", "--timeout", "5"];

describe("an untrusted certificate", () => {
  it.each<[string, CertAndKey, RegExp]>([
    ["signed by a CA the system does not know", serverCert, /UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/],
    ["self-signed", selfSignedCert, /DEPTH_ZERO_SELF_SIGNED_CERT/],
  ])("%s fails by default: exit 4, one line naming the host and --ca/--insecure, no retry, no file", async (_name, identity, reason) => {
    const { origin, tls } = await httpsServer(identity);
    const run = await cli(["-q", "--json", "-o", "out.bin", tls.url()]);
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: TLS certificate of 127\.0\.0\.1:\d+ is not trusted/)]);
    expect(run.stderr).toMatch(reason);
    expect(run.stderr).toContain("--ca");
    expect(run.stderr).toContain("--insecure");
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "failed", error: { code: "ERR_TLS" } });
    // Trust does not come back by retrying.
    expect(tls.handshakes()).toBe(0);
    expect(tls.failedHandshakes()).toBe(1);
    expect(origin.requests).toHaveLength(0);
    expect(existsSync(join(workDir, "out.bin"))).toBe(false);
  });

  it("for another host fails even with its CA trusted (the name is checked too)", async () => {
    const { tls } = await httpsServer(wrongHostCert);
    const run = await cli(["-q", "--ca", testCa.certPath, "-o", "out.bin", tls.url()]);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: .*ERR_TLS_CERT_ALTNAME_INVALID/)]);
    expect(existsSync(join(workDir, "out.bin"))).toBe(false);
  });

  it("is not trusted because of an unrelated --ca", async () => {
    const { tls } = await httpsServer(serverCert);
    const run = await cli(["-q", "--ca", selfSignedCert.certPath, "-o", "out.bin", tls.url()]);
    expect(run.code).toBe(4);
    expect(run.stderr).toMatch(/^rangeget: TLS certificate of .* is not trusted/);
  });

  it("is a NetworkError with code ERR_TLS from the library", async () => {
    const { tls } = await httpsServer(selfSignedCert);
    const failure = download(tls.url(), { output: join(workDir, "lib.bin"), timeout: 5, onWarning() {} });
    await expect(failure).rejects.toBeInstanceOf(NetworkError);
    await expect(failure).rejects.toMatchObject({ code: "ERR_TLS", exitCode: 4 });
  });
});

describe("trusting the test CA", () => {
  it("--ca <file>: parallel ranges over TLS, exact bytes", async () => {
    const { origin, tls, content } = await httpsServer(serverCert);
    const run = await cli(["-q", ...PARALLEL, "--ca", testCa.certPath, "-o", "out.bin", tls.url()]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
    expect(origin.requests.filter((request) => request.status === 206).length).toBeGreaterThanOrEqual(4);
    expect(tls.handshakes()).toBeGreaterThanOrEqual(2);
  });

  it("--ca also verifies the certificate's DNS name (https://localhost)", async () => {
    const { tls, content } = await httpsServer(serverCert);
    const run = await cli(["-q", "--ca", testCa.certPath, "-o", "out.bin", tls.url("/file.bin", "localhost")]);
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
  });

  it("NODE_EXTRA_CA_CERTS: works without --ca", async () => {
    const { tls, content } = await httpsServer(serverCert);
    const run = await cli(["-q", ...PARALLEL, "-o", "out.bin", tls.url()], testCa.certPath);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
  });

  // --ca is documented as *extra* trusted CAs: it must add to what the system trusts
  // (Mozilla's roots, NODE_EXTRA_CA_CERTS), not replace it, or `--ca corp.pem` breaks
  // every public host and every redirect from the intranet to a public CDN.
  it("--ca adds to the CAs trusted through NODE_EXTRA_CA_CERTS instead of replacing them", async () => {
    const { tls, content } = await httpsServer(serverCert);
    const run = await cli(["-q", "--ca", selfSignedCert.certPath, "-o", "out.bin", tls.url()], testCa.certPath);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
  });

  it("the library takes the CA as PEM text", async () => {
    const { tls, content } = await httpsServer(serverCert);
    const result = await download(tls.url(), { output: join(workDir, "lib.bin"), ca: testCa.cert, connections: 3, minSplit: 64 * KiB, onWarning() {} });
    expect(result.status).toBe("downloaded");
    expect(sha256(await readFile(result.path))).toBe(sha256(content));
  });
});

describe("a redirect into HTTPS", () => {
  it("from http:// to an untrusted https:// fails on the certificate (exit 4), not silently", async () => {
    const { origin, tls } = await httpsServer(selfSignedCert);
    const front = await rangeServer({ content: Buffer.alloc(0), onRequest: () => ({ redirectTo: tls.url("/moved.bin"), status: 302 }) });
    const run = await cli(["-q", "-o", "out.bin", front.url()]);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: TLS certificate of 127\.0\.0\.1:\d+ is not trusted/)]);
    expect(origin.requests).toHaveLength(0);
  });

  it("from http:// to https:// trusted with --ca: downloads over TLS", async () => {
    const { tls, content } = await httpsServer(serverCert);
    const front = await rangeServer({ content: Buffer.alloc(0), onRequest: () => ({ redirectTo: tls.url("/moved.bin"), status: 302 }) });
    const run = await cli(["-q", ...PARALLEL, "--ca", testCa.certPath, "-o", "out.bin", front.url()]);
    expect(run.code, run.stderr).toBe(0);
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
  });
});

describe("--insecure", () => {
  it("downloads from a self-signed server and warns once on stderr", async () => {
    const { tls, content } = await httpsServer(selfSignedCert);
    const run = await cli(["-q", ...PARALLEL, "--insecure", "-o", "out.bin", tls.url()]);
    expect(run.code, run.stderr).toBe(0);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: warning: --insecure: TLS certificates are not checked/)]);
    expect(sha256(await readFile(join(workDir, "out.bin")))).toBe(sha256(content));
  });
});

describe("TLS that is not there", () => {
  it("an https:// URL on a plain-HTTP port fails clearly with exit 4", async () => {
    const plain = await rangeServer({ content: makeContent(1000, 32) });
    const run = await cli(["-q", "--retries", "1", "--timeout", "3", "-o", "out.bin", `https://127.0.0.1:${plain.port}/file.bin`]);
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: .*127\.0\.0\.1/)]);
  });

  it("a server that never completes the handshake times out instead of hanging", async () => {
    const held: Socket[] = [];
    const silent = createServer((socket) => held.push(socket.on("error", () => {})));
    const port = await listenOnLoopback(silent);
    closeAfterTest(
      () =>
        new Promise<void>((resolve) => {
          for (const socket of held) socket.destroy();
          silent.close(() => resolve());
        }),
    );
    const run = await cli(["-q", "--retries", "1", "--timeout", "1", "-o", "out.bin", `https://127.0.0.1:${port}/file.bin`]);
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toHaveLength(1);
    expect(run.elapsedMs).toBeLessThan(8_000);
  });
});

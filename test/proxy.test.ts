// HTTP_PROXY / HTTPS_PROXY / NO_PROXY and --proxy http:// through undici's ProxyAgent:
// the CLI's `main` in this process (run-main.ts) with an environment that names a
// recording forward proxy on 127.0.0.1; the first case runs the built CLI as a child,
// whose process environment names it. SOCKS5 is in socks.test.ts.
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { makeContent, sha256 } from "./support/content.js";
import { startForwardProxy, type ForwardProxy } from "./support/forward-proxy.js";
import type { RangeServer } from "./support/range-server.js";
import { assertBuilt, lines, runCli, type CliRun } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { closeAfterTest, rangeServer } from "./support/servers.js";
import { tempDir } from "./support/temp.js";
import { serverCert, testCa } from "./support/tls-fixtures.js";
import { startTlsTerminator } from "./support/tls-terminator.js";

const KiB = 1024;
let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await tempDir();
});

async function origin(content = makeContent(400 * KiB, 41)): Promise<RangeServer> {
  return rangeServer({ content });
}

async function proxy(options: { refuse?: number } = {}): Promise<ForwardProxy> {
  const started = await startForwardProxy(options);
  closeAfterTest(() => started.close());
  return started;
}

function cli(args: string[], env: Record<string, string>, run: typeof runMain = runMain): Promise<CliRun> {
  return run(["-q", "-c", "3", "--min-split", "64K", "--timeout", "5", ...args], { cwd: workDir, env, timeoutMs: 15_000 });
}

async function downloaded(name: string): Promise<string> {
  return sha256(await readFile(join(workDir, name)));
}

describe("HTTP_PROXY", () => {
  // A child: HTTP_PROXY in a real process's environment.
  it("sends every request for an http:// URL through the proxy, with exact bytes", async () => {
    const server = await origin();
    const forward = await proxy();
    const run = await cli(["-o", "out.bin", server.url()], { HTTP_PROXY: forward.url }, runCli);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    // undici 8 forwards plain http:// in absolute form (7 tunnelled it); either way the proxy carried it.
    expect(forward.requests.length).toBeGreaterThanOrEqual(1);
    for (const request of forward.requests) expect(request.target).toContain(`127.0.0.1:${server.port}`);
    expect(server.requests.filter((request) => request.status === 206).length).toBeGreaterThanOrEqual(3);
  });

  it("credentials in HTTP_PROXY go to the proxy as Proxy-Authorization, never to the server", async () => {
    const server = await origin();
    const forward = await proxy();
    const run = await cli(["-o", "out.bin", server.url()], { HTTP_PROXY: `http://alice:s%3Acret@127.0.0.1:${forward.port}` });
    expect(run.code, run.stderr).toBe(0);
    const expected = `Basic ${Buffer.from("alice:s:cret").toString("base64")}`;
    expect(forward.requests.length).toBeGreaterThanOrEqual(1);
    expect(forward.requests.every((request) => request.headers["proxy-authorization"] === expected)).toBe(true);
    expect(server.requests.every((request) => request.headers["proxy-authorization"] === undefined)).toBe(true);
    expect(server.requests.every((request) => request.headers["authorization"] === undefined)).toBe(true);
  });

  it("the lower-case http_proxy works as well", async () => {
    const server = await origin();
    const forward = await proxy();
    const run = await cli(["-o", "out.bin", server.url()], { http_proxy: forward.url });
    expect(run.code, run.stderr).toBe(0);
    expect(forward.requests.length).toBeGreaterThanOrEqual(1);
  });

  it("a proxy that asks for credentials (407) is one line saying so, exit 3, not a crash", async () => {
    const server = await origin();
    const forward = await proxy({ refuse: 407 });
    const run = await cli(["--retries", "1", "-o", "out.bin", server.url()], { HTTP_PROXY: forward.url });
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([
      `rangeget: proxy ${forward.url} asks for credentials (407 Proxy Authentication Required): give them in environment variable HTTP_PROXY as user:password@`,
    ]);
    expect(server.requests).toHaveLength(0);
    expect(existsSync(join(workDir, "out.bin"))).toBe(false);
  });

  it("a proxy that refuses the credentials (407) names it as user:***@, exit 3, no retry, the password nowhere", async () => {
    const server = await origin();
    const forward = await proxy({ refuse: 407 });
    const run = await cli(["-o", "out.bin", server.url()], { HTTP_PROXY: `http://alice:wrong-secret@127.0.0.1:${forward.port}` });
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([
      `rangeget: proxy http://alice:***@127.0.0.1:${forward.port} refused the credentials (407 Proxy Authentication Required): check the user and password in environment variable HTTP_PROXY`,
    ]);
    expect(run.stderr).not.toContain("wrong-secret");
    // Credentials do not get better by asking again.
    expect(forward.requests).toHaveLength(1);
  });

  it("a proxy that is down is one line naming it, exit 4", async () => {
    const server = await origin();
    const gone = await startForwardProxy();
    await gone.close();
    const run = await cli(["--retries", "1", "-o", "out.bin", server.url()], { HTTP_PROXY: gone.url });
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(new RegExp(`^rangeget: proxy http://127\\.0\\.0\\.1:${gone.port} does not answer \\(ECONNREFUSED\\)`))]);
    expect(server.requests).toHaveLength(0);
  });
});

describe("HTTPS_PROXY", () => {
  async function httpsOrigin() {
    const server = await origin();
    const tls = await startTlsTerminator({ targetPort: server.port, cert: serverCert.cert, key: serverCert.key });
    closeAfterTest(() => tls.close());
    return { server, tls };
  }

  it("tunnels an https:// URL with CONNECT; TLS is still verified end to end (--ca)", async () => {
    const { server, tls } = await httpsOrigin();
    const forward = await proxy();
    const run = await cli(["--ca", testCa.certPath, "-o", "out.bin", tls.url()], { HTTPS_PROXY: forward.url });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    expect(forward.requests.length).toBeGreaterThanOrEqual(1);
    expect(forward.requests.every((request) => request.method === "CONNECT" && request.target === `127.0.0.1:${tls.port}`)).toBe(true);
  });

  it("a CONNECT refused with 407 is exit 3 naming the proxy as user:***@", async () => {
    const { tls } = await httpsOrigin();
    const forward = await proxy({ refuse: 407 });
    const run = await cli(["--ca", testCa.certPath, "-o", "out.bin", tls.url()], { HTTPS_PROXY: `http://alice:wrong-secret@127.0.0.1:${forward.port}` });
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(new RegExp(`^rangeget: proxy http://alice:\\*\\*\\*@127\\.0\\.0\\.1:${forward.port} refused the credentials`))]);
    expect(run.stderr).not.toContain("wrong-secret");
    expect(forward.requests.map((request) => request.method)).toEqual(["CONNECT"]);
  });

  it("a CONNECT refused with another status names the proxy and the status (exit 3)", async () => {
    const { tls } = await httpsOrigin();
    const forward = await proxy({ refuse: 403 });
    const run = await cli(["--ca", testCa.certPath, "-o", "out.bin", tls.url()], { HTTPS_PROXY: forward.url });
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([`rangeget: proxy ${forward.url} answered 403 to CONNECT 127.0.0.1:${tls.port}: check the proxy (environment variable HTTPS_PROXY)`]);
  });

  it("through the tunnel, an untrusted certificate still fails (exit 4)", async () => {
    const { tls } = await httpsOrigin();
    const forward = await proxy();
    const run = await cli(["-o", "out.bin", tls.url()], { HTTPS_PROXY: forward.url });
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: TLS certificate of .* is not trusted/)]);
    expect(forward.requests.map((request) => request.method)).toContain("CONNECT");
  });

  // undici's rule (curl differs): without HTTPS_PROXY, https:// URLs use HTTP_PROXY.
  it("without it, https:// URLs use HTTP_PROXY", async () => {
    const { tls } = await httpsOrigin();
    const forward = await proxy();
    const run = await cli(["--ca", testCa.certPath, "-o", "out.bin", tls.url()], { HTTP_PROXY: forward.url });
    expect(run.code, run.stderr).toBe(0);
    expect(forward.requests.map((request) => `${request.method} ${request.target}`)).toContain(`CONNECT 127.0.0.1:${tls.port}`);
  });

  it("is not used for http:// URLs", async () => {
    const server = await origin();
    const forward = await proxy();
    const run = await cli(["-o", "out.bin", server.url()], { HTTPS_PROXY: forward.url });
    expect(run.code, run.stderr).toBe(0);
    expect(forward.requests).toHaveLength(0);
  });
});

describe("--proxy http://", () => {
  it("sends http:// and https:// URLs through the proxy, and wins over HTTP_PROXY", async () => {
    const server = await origin();
    const tls = await startTlsTerminator({ targetPort: server.port, cert: serverCert.cert, key: serverCert.key });
    closeAfterTest(() => tls.close());
    const forward = await proxy();
    const gone = await startForwardProxy();
    await gone.close();
    const env = { HTTP_PROXY: gone.url, HTTPS_PROXY: gone.url };
    const plain = await cli(["-o", "plain.bin", "--proxy", `127.0.0.1:${forward.port}`, server.url()], env);
    expect({ code: plain.code, stderr: plain.stderr }).toEqual({ code: 0, stderr: "" });
    const secure = await cli(["--ca", testCa.certPath, "-o", "secure.bin", "--proxy", forward.url, tls.url()], env);
    expect({ code: secure.code, stderr: secure.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("secure.bin")).toBe(sha256(server.content));
    expect(forward.requests.some((request) => request.method === "GET" && request.target.startsWith(`http://127.0.0.1:${server.port}/`))).toBe(true);
    expect(forward.requests.some((request) => request.method === "CONNECT" && request.target === `127.0.0.1:${tls.port}`)).toBe(true);
  });
});

describe("an https:// proxy", () => {
  it("speaks TLS to the proxy itself, trusted with --ca, and tunnels through it", async () => {
    const server = await origin();
    const forward = await proxy();
    const proxyTls = await startTlsTerminator({ targetPort: forward.port, cert: serverCert.cert, key: serverCert.key });
    closeAfterTest(() => proxyTls.close());
    const run = await cli(["--ca", testCa.certPath, "-o", "out.bin", "--proxy", `https://localhost:${proxyTls.port}`, server.url()]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    expect(proxyTls.handshakes()).toBeGreaterThanOrEqual(1);
    expect(forward.requests.length).toBeGreaterThanOrEqual(1);
  });
});

describe("NO_PROXY", () => {
  it.each([
    ["127.0.0.1", "the exact host"],
    ["example.com, 127.0.0.1", "one entry of a list"],
    ["*", "the wildcard"],
  ])("NO_PROXY=%s (%s) bypasses the proxy", async (noProxy) => {
    const server = await origin();
    const forward = await proxy();
    const run = await cli(["-o", "out.bin", server.url()], { HTTP_PROXY: forward.url, NO_PROXY: noProxy });
    expect(run.code, run.stderr).toBe(0);
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    expect(forward.requests).toHaveLength(0);
  });

  it("NO_PROXY=127.0.0.1:<port> bypasses only that port", async () => {
    const direct = await origin();
    const other = await origin(makeContent(100 * KiB, 42));
    const forward = await proxy();
    const env = { HTTP_PROXY: forward.url, NO_PROXY: `127.0.0.1:${direct.port}` };
    expect((await cli(["-o", "direct.bin", direct.url()], env)).code).toBe(0);
    expect(forward.requests).toHaveLength(0);
    expect((await cli(["-o", "other.bin", other.url()], env)).code).toBe(0);
    expect(forward.requests.length).toBeGreaterThanOrEqual(1);
    expect(forward.requests.every((request) => request.target.includes(`127.0.0.1:${other.port}`))).toBe(true);
  });

  // Matching is by name, as in curl: "localhost" does not cover 127.0.0.1 (no DNS lookup, no CIDR).
  it("NO_PROXY=localhost does not cover a URL that says 127.0.0.1", async () => {
    const server = await origin();
    const forward = await proxy();
    const run = await cli(["-o", "out.bin", server.url()], { HTTP_PROXY: forward.url, NO_PROXY: "localhost" });
    expect(run.code, run.stderr).toBe(0);
    expect(forward.requests.length).toBeGreaterThanOrEqual(1);
  });
});

// --proxy, ALL_PROXY and --noproxy with SOCKS5: the CLI through the SOCKS5 server of
// test/support/socks-server.ts on 127.0.0.1 (RFC 1928 and 1929), to range servers and a
// TLS terminator on 127.0.0.1. `cli` runs its `main` in this process (run-main.ts); the
// refused credentials, the stream to stdout and the killed-then-resumed download run the
// built CLI as a child.
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";
import { download, downloadAll, HttpStatusError, UsageError } from "../src/index.js";
import { checkpointedBytes } from "./support/checkpoint.js";
import { makeContent, sha256 } from "./support/content.js";
import type { RangeServer } from "./support/range-server.js";
import { assertBuilt, lines, runCli, startCli, type CliRun } from "./support/run-cli.js";
import { runMain } from "./support/run-main.js";
import { until } from "./support/until.js";
import { closeAfterTest, rangeServer } from "./support/servers.js";
import { startH2CapableRangeServer } from "./support/h2-range-server.js";
import { startSocksServer, type SocksServer, type SocksServerOptions } from "./support/socks-server.js";
import { tempDir } from "./support/temp.js";
import { serverCert, testCa } from "./support/tls-fixtures.js";
import { startTlsTerminator } from "./support/tls-terminator.js";

const KiB = 1024;
/** A name no resolver knows: only the test proxy's own table has it. */
const PROXY_ONLY_NAME = "files.internal";
let workDir: string;

beforeAll(assertBuilt);

beforeEach(async () => {
  workDir = await tempDir();
});

async function origin(content = makeContent(400 * KiB, 51)): Promise<RangeServer> {
  return rangeServer({ content });
}

async function socks(options: SocksServerOptions = {}): Promise<SocksServer> {
  const started = await startSocksServer({ hosts: { [PROXY_ONLY_NAME]: "127.0.0.1", localhost: "127.0.0.1" }, ...options });
  closeAfterTest(() => started.close());
  return started;
}

const COMMON = ["-q", "-c", "4", "--min-split", "64K", "--timeout", "5"];

function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return runMain([...COMMON, ...args], { cwd: workDir, env, timeoutMs: 20_000 });
}

async function downloaded(name: string): Promise<string> {
  return sha256(await readFile(join(workDir, name)));
}

/** `server`'s URL with another host name in it (the server listens on 127.0.0.1 whatever the name). */
function named(server: RangeServer, host: string): string {
  return server.url().replace("127.0.0.1", host);
}

describe("--proxy socks5h:// (names resolved by the proxy)", () => {
  it("fetches ranges over several tunnels to a name only the proxy knows, exact bytes", async () => {
    const server = await origin();
    const proxy = await socks();
    const run = await cli(["-o", "out.bin", "--proxy", proxy.url(), named(server, PROXY_ONLY_NAME)]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    // The name went to the proxy as a name (ATYP 3): rangeget resolved nothing itself.
    expect(proxy.requests.length).toBeGreaterThanOrEqual(2);
    expect(proxy.requests.every((request) => request.addressType === "domain" && request.host === PROXY_ONLY_NAME)).toBe(true);
    expect(proxy.resolved).toContain(PROXY_ONLY_NAME);
    expect(server.requests.filter((request) => request.status === 206).length).toBeGreaterThanOrEqual(4);
    expect(server.requests.every((request) => request.headers.host === `${PROXY_ONLY_NAME}:${server.port}`)).toBe(true);
  });
});

describe("--proxy socks5:// (names resolved here)", () => {
  it("asks the proxy for the address, keeping the Host header", async () => {
    const server = await origin();
    const proxy = await socks();
    const run = await cli(["-o", "out.bin", "--proxy", proxy.url({ scheme: "socks5" }), named(server, "localhost")]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    expect(proxy.resolved).toEqual([]);
    expect(proxy.requests.length).toBeGreaterThanOrEqual(1);
    expect(proxy.requests.every((request) => request.addressType === "ipv4" && request.host === "127.0.0.1" && request.port === server.port)).toBe(true);
    expect(server.requests.every((request) => request.headers.host === `localhost:${server.port}`)).toBe(true);
  });
});

describe("SOCKS5 login (RFC 1929)", () => {
  it("user and password in the URL log in", async () => {
    const server = await origin();
    const proxy = await socks({ users: { alice: "s:cr@t" } });
    const run = await cli(["-o", "out.bin", "--proxy", proxy.url({ user: "alice", password: "s:cr@t" }), server.url()]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    expect(proxy.requests.length).toBeGreaterThanOrEqual(1);
    expect(proxy.requests.every((request) => request.user === "alice")).toBe(true);
  });

  it("a wrong password is one line naming the proxy as user:***@, exit 3, the password nowhere", async () => {
    const server = await origin();
    const proxy = await socks({ users: { alice: "right" } });
    const run = await cli(["-o", "out.bin", "--proxy", proxy.url({ user: "alice", password: "wrong-secret" }), server.url()]);
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([
      `rangeget: proxy socks5h://alice:***@127.0.0.1:${proxy.port} refused the credentials (407 Proxy Authentication Required): check the user and password in --proxy`,
    ]);
    expect(run.stderr + run.stdout).not.toContain("wrong-secret");
    expect(proxy.authFailures()).toBeGreaterThanOrEqual(1);
    expect(server.requests).toHaveLength(0);
    expect(existsSync(join(workDir, "out.bin"))).toBe(false);
  });

  it("no credentials for a proxy that wants them: exit 3, saying so", async () => {
    const server = await origin();
    const proxy = await socks({ users: { alice: "right" } });
    const run = await cli(["-o", "out.bin", "--proxy", proxy.url(), server.url()]);
    expect(run.code).toBe(3);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(new RegExp(`^rangeget: proxy socks5h://127\\.0\\.0\\.1:${proxy.port} asks for credentials`))]);
  });

  it("--json carries ERR_PROXY_AUTH and exit code 3 without the password", async () => {
    const server = await origin();
    const proxy = await socks({ users: { alice: "right" } });
    const run = await runCli(["-q", "--json", "-o", "out.bin", "--proxy", proxy.url({ user: "alice", password: "wrong-secret" }), server.url()], {
      cwd: workDir,
    });
    expect(run.code).toBe(3);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "failed", error: { code: "ERR_PROXY_AUTH", exitCode: 3 } });
    expect(run.stdout).not.toContain("wrong-secret");
  });
});

describe("a SOCKS5 proxy that is not there", () => {
  it("is one line naming the proxy, exit 4", async () => {
    const server = await origin();
    const gone = await startSocksServer();
    await gone.close();
    const run = await cli(["--retries", "1", "-o", "out.bin", "--proxy", gone.url({ user: "bob", password: "hidden-pw" }), server.url()]);
    expect(run.timedOut).toBe(false);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([
      expect.stringMatching(new RegExp(`^rangeget: proxy socks5h://bob:\\*\\*\\*@127\\.0\\.0\\.1:${gone.port} does not answer \\(ECONNREFUSED\\)`)),
    ]);
    expect(run.stderr).not.toContain("hidden-pw");
    expect(server.requests).toHaveLength(0);
  });
});

describe("a SOCKS5 proxy that cannot reach the server", () => {
  it("is one line naming the proxy and the server, exit 4", async () => {
    const closed = await origin();
    await closed.close();
    const proxy = await socks();
    const run = await cli(["--retries", "0", "-o", "out.bin", "--proxy", proxy.url(), closed.url()]);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([
      `rangeget: proxy socks5h://127.0.0.1:${proxy.port} could not connect to 127.0.0.1:${closed.port}: Connection refused (UND_ERR_SOCKS5_REPLY_5)`,
    ]);
  });
});

describe("streams and resume through SOCKS5", () => {
  it("-o - writes the file in order to stdout", async () => {
    const server = await origin();
    const proxy = await socks();
    // stdout into a file by the shell, byte for byte (runCli reads stdout as text).
    const toFile = ["sh", "-c", 'exec "$0" "$@" > piped.bin'];
    const run = await runCli([...COMMON, "-o", "-", "--proxy", proxy.url(), named(server, PROXY_ONLY_NAME)], {
      cwd: workDir,
      timeoutMs: 20_000,
      wrapper: toFile,
    });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("piped.bin")).toBe(sha256(server.content));
    expect(proxy.requests.length).toBeGreaterThanOrEqual(2);
  });

  it("an interrupted download resumes through the proxy, fetching only what is missing", async () => {
    const content = makeContent(2 * 1024 * KiB, 52);
    // Each answer holds after 128 KiB until the first run is interrupted: it cannot finish first.
    const server = await rangeServer({ content, holdAfterBytes: 128 * KiB });
    const proxy = await socks();
    const args = [...COMMON, "--min-split", "128K", "-o", "big.bin", "--proxy", proxy.url(), named(server, PROXY_ONLY_NAME)];
    const first = startCli(args, { cwd: workDir, timeoutMs: 20_000 });
    await until(async () => (await checkpointedBytes(join(workDir, "big.bin"))) > 0 && server.bytesServed() > 384 * KiB, "a checkpoint with bytes");
    first.child.kill("SIGINT");
    const interrupted = await first.done;
    expect(interrupted.code).toBe(130);

    server.release();
    const servedBefore = server.bytesServed();
    const tunnelsBefore = proxy.requests.length;
    const again = await runCli([...args, "--json"], { cwd: workDir, timeoutMs: 20_000 });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ status: "resumed", resumed: true });
    expect(server.bytesServed() - servedBefore).toBeLessThan(content.length);
    expect(proxy.requests.length).toBeGreaterThan(tunnelsBefore);
    expect(await downloaded("big.bin")).toBe(sha256(content));
  });
});

describe("HTTPS through SOCKS5", () => {
  it("TLS runs end to end through the tunnel, verified for the host name with --ca", async () => {
    const server = await origin();
    const tls = await startTlsTerminator({ targetPort: server.port, cert: serverCert.cert, key: serverCert.key });
    closeAfterTest(() => tls.close());
    const proxy = await socks();
    const run = await cli(["--ca", testCa.certPath, "-o", "out.bin", "--proxy", proxy.url(), tls.url("/file.bin", "localhost")]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    expect(tls.handshakes()).toBeGreaterThanOrEqual(1);
    expect(proxy.requests.every((request) => request.host === "localhost" && request.port === tls.port)).toBe(true);
  });

  // Node 26 refuses an IP address as a TLS server name (22 and 24 warn, DEP0123), and
  // undici's SOCKS5 agent (8.13, 8.14) still sends the target's address as one.
  const refusesIpServername = Number(process.versions.node.split(".")[0]) >= 26;

  /** The CLI fetching `https://127.0.0.1:PORT/…` (an address, no name) through a SOCKS5 proxy. */
  async function httpsToAddress() {
    const server = await origin();
    const tls = await startTlsTerminator({ targetPort: server.port, cert: serverCert.cert, key: serverCert.key });
    closeAfterTest(() => tls.close());
    const proxy = await socks();
    const run = await cli(["--ca", testCa.certPath, "-o", "out.bin", "--proxy", proxy.url(), tls.url()]);
    return { server, tls, proxy, run };
  }

  it.skipIf(!refusesIpServername)("an https:// URL that names an address, on a Node that refuses it as the TLS server name: exit 4 at once, saying so", async () => {
    const { tls, proxy, run } = await httpsToAddress();
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([
      `rangeget: cannot open TLS to 127.0.0.1:${tls.port} through a SOCKS5 proxy on Node ${process.versions.node}: it refuses an IP address as the TLS server name, which undici's SOCKS5 agent sends; use the host's name instead of its address`,
    ]);
    // Refused before any tunnel (one would be left open by undici, and the run would never exit), and not retried.
    expect(proxy.requests).toHaveLength(0);
    expect(existsSync(join(workDir, "out.bin"))).toBe(false);
  });

  it.skipIf(refusesIpServername)("an https:// URL that names an address works too", async () => {
    const { server, proxy, run } = await httpsToAddress();
    expect(run.code).toBe(0);
    // undici 8.13's Socks5ProxyAgent sends the address as the TLS server name, and Node
    // warns once (DEP0123, RFC 6066 allows names only); nothing else may be printed.
    expect(lines(run.stderr).filter((line) => !/DEP0123|--trace-deprecation/.test(line))).toEqual([]);
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
    expect(proxy.requests.every((request) => request.addressType === "ipv4" && request.host === "127.0.0.1")).toBe(true);
  });

  it("an h2-capable server gets HTTP/1.1 on one tunnel per range in flight", async () => {
    const content = makeContent(4 * 1024 * KiB, 53);
    const { port, protocols, versions } = await startH2CapableRangeServer(content);
    const proxy = await socks();
    const run = await cli(["--min-split", "512K", "--ca", testCa.certPath, "-o", "out.bin", "--proxy", proxy.url(), `https://localhost:${port}/f.bin`]);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(content));
    expect(new Set(versions)).toEqual(new Set(["1.1"]));
    expect(protocols).not.toContain("h2");
    expect(protocols.length).toBeGreaterThanOrEqual(4);
    expect(proxy.requests.length).toBeGreaterThanOrEqual(protocols.length);
  });

  it("an untrusted certificate still fails through the tunnel (exit 4)", async () => {
    const server = await origin();
    const tls = await startTlsTerminator({ targetPort: server.port, cert: serverCert.cert, key: serverCert.key });
    closeAfterTest(() => tls.close());
    const proxy = await socks();
    const run = await cli(["-o", "out.bin", "--proxy", proxy.url(), tls.url("/file.bin", "localhost")]);
    expect(run.code).toBe(4);
    expect(lines(run.stderr)).toEqual([expect.stringMatching(/^rangeget: TLS certificate of localhost:\d+ is not trusted/)]);
  });
});

describe("which proxy: flag, ALL_PROXY, NO_PROXY, --noproxy", () => {
  it("ALL_PROXY (and all_proxy) alone sends requests through the SOCKS5 proxy", async () => {
    for (const name of ["ALL_PROXY", "all_proxy"]) {
      const server = await origin();
      const proxy = await socks();
      const run = await cli(["-o", `${name}.bin`, named(server, PROXY_ONLY_NAME)], { [name]: proxy.url() });
      expect({ name, code: run.code, stderr: run.stderr }).toEqual({ name, code: 0, stderr: "" });
      expect(proxy.requests.length).toBeGreaterThanOrEqual(1);
    }
  });

  it("--proxy wins over ALL_PROXY and HTTP_PROXY", async () => {
    const server = await origin();
    const used = await socks();
    const gone = await startSocksServer();
    await gone.close();
    const env = { ALL_PROXY: gone.url(), HTTP_PROXY: `http://127.0.0.1:${gone.port}` };
    const run = await cli(["-o", "out.bin", "--proxy", used.url(), server.url()], env);
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(used.requests.length).toBeGreaterThanOrEqual(1);
  });

  it('--proxy "" goes direct whatever the environment says', async () => {
    const server = await origin();
    const gone = await startSocksServer();
    await gone.close();
    const run = await cli(["-o", "out.bin", "--proxy", "", server.url()], { ALL_PROXY: gone.url() });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: "" });
    expect(await downloaded("out.bin")).toBe(sha256(server.content));
  });

  it("NO_PROXY applies to ALL_PROXY and to --proxy", async () => {
    const server = await origin();
    const proxy = await socks();
    expect((await cli(["-o", "a.bin", server.url()], { ALL_PROXY: proxy.url(), NO_PROXY: "127.0.0.1" })).code).toBe(0);
    expect((await cli(["-o", "b.bin", "--proxy", proxy.url(), server.url()], { NO_PROXY: "example.com,127.0.0.0/8" })).code).toBe(0);
    expect(proxy.connections()).toBe(0);
    expect(await downloaded("b.bin")).toBe(sha256(server.content));
  });

  it("--noproxy bypasses, and wins over NO_PROXY", async () => {
    const server = await origin();
    const proxy = await socks();
    expect((await cli(["-o", "a.bin", "--proxy", proxy.url(), "--noproxy", "*", server.url()])).code).toBe(0);
    expect((await cli(["-o", "b.bin", "--noproxy", `127.0.0.1:${server.port}`, server.url()], { ALL_PROXY: proxy.url() })).code).toBe(0);
    expect(proxy.connections()).toBe(0);
    // NO_PROXY would bypass; --noproxy replaces it with a list that does not.
    const run = await cli(["-o", "c.bin", "--noproxy", "example.com", server.url()], { ALL_PROXY: proxy.url(), NO_PROXY: "*" });
    expect(run.code, run.stderr).toBe(0);
    expect(proxy.requests.length).toBeGreaterThanOrEqual(1);
  });

  it("RANGEGET_PROXY and a config file's proxy line are defaults like any other", async () => {
    const server = await origin();
    const proxy = await socks();
    expect((await cli(["-o", "a.bin", server.url()], { RANGEGET_PROXY: proxy.url() })).code).toBe(0);
    const fromEnv = proxy.requests.length;
    expect(fromEnv).toBeGreaterThanOrEqual(1);
    const config = join(workDir, "rangeget.conf");
    await writeFile(config, `proxy = ${proxy.url()}\nnoproxy = example.com\n`);
    expect((await cli(["--config", config, "-o", "b.bin", server.url()])).code).toBe(0);
    expect(proxy.requests.length).toBeGreaterThan(fromEnv);
  });

  it("a proxy URL of another scheme is a usage error naming where it came from, exit 2", async () => {
    const server = await origin();
    const flag = await cli(["--proxy", "socks4://127.0.0.1:1080", server.url()]);
    expect(flag.code).toBe(2);
    expect(lines(flag.stderr)).toEqual([expect.stringMatching(/^rangeget: --proxy: "socks4:\/\/127\.0\.0\.1:1080" is not a proxy URL .*SOCKS4 is not supported/)]);
    const env = await cli(["-o", "out.bin", server.url()], { ALL_PROXY: "ftp://bob:hunter2@127.0.0.1:21" });
    expect(env.code).toBe(2);
    expect(lines(env.stderr)).toEqual([expect.stringMatching(/^rangeget: environment variable ALL_PROXY: "ftp:\/\/bob:\*\*\*@127\.0\.0\.1:21" is not a proxy URL/)]);
    expect(env.stderr).not.toContain("hunter2");
    expect(server.requests).toHaveLength(0);
  });
});

describe("the library's proxy and noProxy", () => {
  it("download({ proxy }) goes through the SOCKS5 proxy; downloadAll's noProxy (a list) bypasses it", async () => {
    const server = await origin();
    const proxy = await socks({ users: { alice: "pw" } });
    const proxied = await download(named(server, PROXY_ONLY_NAME), {
      output: join(workDir, "lib.bin"),
      connections: 4,
      minSplit: 64 * KiB,
      proxy: proxy.url({ user: "alice", password: "pw" }),
      // In-process: whatever NO_PROXY the test runner has must not send it direct.
      noProxy: "",
    });
    expect(proxied.status).toBe("downloaded");
    expect(await downloaded("lib.bin")).toBe(sha256(server.content));
    const tunnels = proxy.requests.length;
    expect(tunnels).toBeGreaterThanOrEqual(1);
    const [direct] = await downloadAll([{ url: server.url(), output: join(workDir, "all.bin") }], {
      proxy: proxy.url({ user: "alice", password: "pw" }),
      noProxy: ["example.com", "127.0.0.1"],
    });
    expect(direct?.status).toBe("downloaded");
    expect(proxy.requests.length).toBe(tunnels);
  });

  it("rejects a refused login with HttpStatusError ERR_PROXY_AUTH (407) and a bad proxy URL with UsageError", async () => {
    const server = await origin();
    const proxy = await socks({ users: { alice: "pw" } });
    const refused: unknown = await download(server.url(), { output: join(workDir, "x.bin"), proxy: proxy.url({ user: "alice", password: "nope-secret" }), noProxy: "" }).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(HttpStatusError);
    expect(refused).toMatchObject({ code: "ERR_PROXY_AUTH", status: 407, exitCode: 3 });
    expect((refused as Error).message).not.toContain("nope-secret");
    await expect(download(server.url(), { output: join(workDir, "y.bin"), proxy: "gopher://127.0.0.1:70" })).rejects.toBeInstanceOf(UsageError);
    await expect(downloadAll([server.url()], { proxy: "socks4a://127.0.0.1:1080" })).rejects.toBeInstanceOf(UsageError);
    expect(server.requests).toHaveLength(0);
  });
});

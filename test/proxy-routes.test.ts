// Which proxy a URL goes through (proxy.ts) and how a proxy's failures read
// (proxy-error.ts): pure tables, no socket.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HttpStatusError, NetworkError, UsageError } from "../src/errors.js";
import { bypasses, parseNoProxy, parseProxyUrl, proxyFor, proxyRoutes } from "../src/proxy.js";
import { proxyError } from "../src/proxy-error.js";

const HTTP = new URL("http://files.example.com/a.bin");
const HTTPS = new URL("https://files.example.com/a.bin");

describe("parseProxyUrl", () => {
  it.each([
    ["http://127.0.0.1:3128", "http", "http://127.0.0.1:3128", "http://127.0.0.1:3128"],
    ["10.0.0.1:3128", "http", "http://10.0.0.1:3128", "http://10.0.0.1:3128"],
    ["https://proxy.corp:8443/", "https", "https://proxy.corp:8443", "https://proxy.corp:8443"],
    ["socks5://127.0.0.1:1080", "socks5", "socks5://127.0.0.1:1080", "socks5://127.0.0.1:1080"],
    ["socks5h://alice:p%40ss@127.0.0.1:1080", "socks5h", "socks5://alice:p%40ss@127.0.0.1:1080", "socks5h://alice:***@127.0.0.1:1080"],
    ["SOCKS5H://bob@[::1]:9050", "socks5h", "socks5://bob@[::1]:9050", "socks5h://bob@[::1]:9050"],
  ])("%s", (text, scheme, agentUrl, shown) => {
    expect(parseProxyUrl(text, "--proxy")).toEqual({ scheme, agentUrl, shown, source: "--proxy", hasCredentials: shown.includes("@") });
  });

  it.each([
    ["ftp://bob:hunter2@host:21", /^--proxy: "ftp:\/\/bob:\*\*\*@host:21" is not a proxy URL rangeget speaks/],
    ["socks4://127.0.0.1:1080", /SOCKS4 is not supported/],
    ["socks4a://127.0.0.1:1080", /SOCKS4 is not supported/],
    ["http://", /is not a proxy URL/],
    ["socks5://:1080", /names no proxy host|is not a proxy URL/],
  ])("refuses %s", (text, message) => {
    const error: unknown = (() => {
      try {
        return parseProxyUrl(text, "--proxy");
      } catch (thrown) {
        return thrown;
      }
    })();
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain("hunter2");
  });
});

describe("proxyRoutes: which setting wins", () => {
  const shown = (routes: ReturnType<typeof proxyRoutes>) => [routes.http?.shown, routes.https?.shown];

  it("the proxy option serves both schemes and wins over every variable", () => {
    const env = { HTTP_PROXY: "http://a:1", HTTPS_PROXY: "http://b:2", ALL_PROXY: "socks5h://c:3" };
    expect(shown(proxyRoutes({ proxy: "socks5h://d:4" }, env))).toEqual(["socks5h://d:4", "socks5h://d:4"]);
  });

  it('"" means no proxy at all, whatever the environment says', () => {
    expect(shown(proxyRoutes({ proxy: "" }, { ALL_PROXY: "socks5h://c:3", HTTP_PROXY: "http://a:1" }))).toEqual([undefined, undefined]);
  });

  it.each([
    [{ HTTP_PROXY: "http://a:1" }, ["http://a:1", "http://a:1"]],
    [{ HTTPS_PROXY: "http://b:2" }, [undefined, "http://b:2"]],
    [{ ALL_PROXY: "socks5h://c:3" }, ["socks5h://c:3", "socks5h://c:3"]],
    [{ all_proxy: "socks5h://c:3", HTTP_PROXY: "http://a:1" }, ["http://a:1", "socks5h://c:3"]],
    [{ ALL_PROXY: "socks5h://c:3", HTTPS_PROXY: "http://b:2" }, ["socks5h://c:3", "http://b:2"]],
    [{ http_proxy: "http://lower:1", HTTP_PROXY: "http://upper:1" }, ["http://lower:1", "http://lower:1"]],
    [{ http_proxy: "", HTTP_PROXY: "http://upper:1" }, ["http://upper:1", "http://upper:1"]],
    [{}, [undefined, undefined]],
  ])("environment %j", (env, expected) => {
    expect(shown(proxyRoutes({}, env))).toEqual(expected);
  });

  it("a bad variable is a usage error naming it, its password hidden", () => {
    expect(() => proxyRoutes({}, { all_proxy: "gopher://u:secret-pw@h:70" })).toThrow(/^environment variable all_proxy: "gopher:\/\/u:\*\*\*@h:70"/);
  });

  it("NO_PROXY applies to the proxy option too; noProxy replaces it", () => {
    const env = { NO_PROXY: "example.com" };
    expect(proxyFor(proxyRoutes({ proxy: "socks5h://d:4" }, env), HTTP)).toBeUndefined();
    expect(proxyFor(proxyRoutes({ proxy: "socks5h://d:4", noProxy: "" }, env), HTTP)?.shown).toBe("socks5h://d:4");
    expect(proxyFor(proxyRoutes({ noProxy: ["other.org"] }, { ...env, ALL_PROXY: "socks5h://c:3" }), HTTPS)?.shown).toBe("socks5h://c:3");
    expect(proxyFor(proxyRoutes({}, { no_proxy: "*", ALL_PROXY: "socks5h://c:3" }), HTTPS)).toBeUndefined();
  });
});

describe("parseNoProxy and bypasses: curl's rules", () => {
  it.each([
    ["*", "http://anything.example/", true],
    ["none.invalid, *", "http://anything.example/", true],
    ["example.com", "http://example.com/", true],
    ["example.com", "http://www.example.com/", true],
    ["example.com", "http://notexample.com/", false],
    [".example.com", "http://example.com/", true],
    [".example.com", "http://a.b.example.com/", true],
    ["*.example.com", "http://example.com/", false],
    ["*.example.com", "http://www.example.com/", true],
    ["EXAMPLE.com.", "http://www.Example.COM./", true],
    ["localhost", "http://127.0.0.1/", false],
    ["127.0.0.1", "http://127.0.0.1:8080/", true],
    ["127.0.0.0/8", "http://127.1.2.3/", true],
    ["10.0.0.0/8", "http://11.0.0.1/", false],
    ["10.0.0.0/8", "http://ten.example/", false],
    ["::1", "http://[::1]:8080/", true],
    ["[::1]", "http://[0:0::1]/", true],
    ["fd00::/8", "http://[fd12::1]/", true],
    ["example.com:8080", "http://example.com:8080/", true],
    ["example.com:8080", "http://example.com/", false],
    ["example.com:443", "https://example.com/", true],
    ["[::1]:443", "https://[::1]/", true],
    ["*:80", "http://x.example/", true],
    ["*:80", "https://x.example/", false],
    ["a.example b.example", "http://b.example/", true],
    ["10.0.0.0/99,,  ", "http://10.0.0.1/", false],
    ["", "http://example.com/", false],
  ])("%j covers %s: %s", (list, url, expected) => {
    expect(bypasses(parseNoProxy(list), new URL(url))).toBe(expected);
  });
});

describe("proxyError", () => {
  const socks = parseProxyUrl("socks5h://alice:secret-pw@127.0.0.1:1080", "--proxy");
  const anonymous = parseProxyUrl("http://127.0.0.1:3128", "environment variable HTTP_PROXY");
  const url = "http://files.example.com:8080/a.bin";
  const coded = (message: string, code: string, cause?: unknown) => Object.assign(new Error(message, { cause }), { code });

  it.each([
    [socks, coded("Authentication failed", "UND_ERR_SOCKS5_AUTH_FAILED"), /^proxy socks5h:\/\/alice:\*\*\*@127\.0\.0\.1:1080 refused the credentials .*in --proxy$/],
    [anonymous, coded("No acceptable authentication method", "UND_ERR_SOCKS5_AUTH_REJECTED"), /^proxy http:\/\/127\.0\.0\.1:3128 asks for credentials .*HTTP_PROXY as user:password@$/],
    [socks, coded("Proxy response (407) !== 200 when HTTP Tunneling", "UND_ERR_ABORTED"), /refused the credentials/],
    [anonymous, coded("Proxy Authentication Required (407)", "UND_ERR_INVALID_ARG"), /asks for credentials/],
  ])("refused credentials: ERR_PROXY_AUTH, status 407 (%#)", (proxy, error, message) => {
    const mapped = proxyError(error, proxy, url, false);
    expect(mapped).toBeInstanceOf(HttpStatusError);
    expect(mapped).toMatchObject({ code: "ERR_PROXY_AUTH", status: 407, exitCode: 3, url });
    expect((mapped as Error).message).toMatch(message);
    expect((mapped as Error).message).not.toContain("secret-pw");
  });

  it("another status to CONNECT keeps it (a 503 is retried like any 503)", () => {
    const mapped = proxyError(coded("Proxy response (503) !== 200 when HTTP Tunneling", "UND_ERR_ABORTED"), anonymous, url, false);
    expect(mapped).toMatchObject({ code: "ERR_HTTP_STATUS", status: 503 });
    expect((mapped as Error).message).toBe("proxy http://127.0.0.1:3128 answered 503 to CONNECT files.example.com:8080: check the proxy (environment variable HTTP_PROXY)");
  });

  it("a SOCKS5 failure reply names the target the proxy could not reach", () => {
    const mapped = proxyError(coded("SOCKS5 connection failed: Host unreachable", "UND_ERR_SOCKS5_REPLY_4"), socks, url, false);
    expect(mapped).toBeInstanceOf(NetworkError);
    expect((mapped as Error).message).toBe("proxy socks5h://alice:***@127.0.0.1:1080 could not connect to files.example.com:8080: Host unreachable (UND_ERR_SOCKS5_REPLY_4)");
  });

  it("no connection to the proxy names it; the same reset after an answer began is left alone", () => {
    const refused = coded("connect ECONNREFUSED 127.0.0.1:1080", "ECONNREFUSED");
    expect(proxyError(refused, socks, url, false)).toMatchObject({ code: "ERR_NETWORK", message: expect.stringMatching(/^proxy socks5h:\/\/alice:\*\*\*@127\.0\.0\.1:1080 does not answer \(ECONNREFUSED\)/) });
    const wrapped = coded("other side closed", "UND_ERR_SOCKET", coded("read ECONNRESET", "ECONNRESET"));
    expect(proxyError(wrapped, socks, url, false)).toBeInstanceOf(NetworkError);
    expect(proxyError(wrapped, socks, url, true)).toBe(wrapped);
    expect(proxyError(coded("Connect Timeout Error", "UND_ERR_CONNECT_TIMEOUT"), socks, url, false)).toMatchObject({ code: "ERR_TIMEOUT" });
  });

  it("leaves what is not the proxy's alone", () => {
    const tls = coded("self-signed certificate in certificate chain", "SELF_SIGNED_CERT_IN_CHAIN");
    expect(proxyError(tls, socks, url, false)).toBe(tls);
    const ours = new UsageError("x");
    expect(proxyError(ours, socks, url, false)).toBe(ours);
  });
});

describe("hostile input", () => {
  it("parseNoProxy never throws and bypasses() answers for any list", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), fc.constantFrom("http://a.example/", "https://[::1]:8443/", "http://10.1.2.3:81/"), (list, url) => {
        expect(typeof bypasses(parseNoProxy(list), new URL(url))).toBe("boolean");
      }),
    );
  });

  it("parseProxyUrl either gives an endpoint or throws UsageError, never shows a password", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 40 }), (text) => {
        const withSecret = `socks5://user:pw-${text}-secret@${text}`;
        try {
          expect(parseProxyUrl(withSecret, "--proxy").shown).not.toContain("-secret");
        } catch (error) {
          expect(error).toBeInstanceOf(UsageError);
        }
      }),
    );
  });
});

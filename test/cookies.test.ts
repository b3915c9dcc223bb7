import { describe, expect, it } from "vitest";
import { cookieJarCredentials, createCookieJar } from "../src/cookies.js";
import { parseCookiesTxt } from "../src/cookies-txt.js";
import { UsageError } from "../src/errors.js";

const FUTURE = Math.floor(Date.now() / 1000) + 365 * 24 * 3600;
const PAST = 1_000_000_000;
const line = (...fields: (string | number)[]) => fields.join("\t");

describe("parseCookiesTxt", () => {
  it("reads the seven fields, the #HttpOnly_ prefix, comments, CRLF and a missing value", () => {
    const text = [
      "# Netscape HTTP Cookie File",
      "# https://curl.se/docs/http-cookies.html",
      "",
      line(".example.test", "TRUE", "/", "FALSE", FUTURE, "session", "abc"),
      line("#HttpOnly_files.example.test", "FALSE", "/private", "TRUE", 0, "token", "x=y") + "\r",
      line("example.test", "FALSE", "/", "FALSE", -1, "empty"),
    ].join("\n");
    expect(parseCookiesTxt(text, "c.txt")).toEqual([
      { domain: "example.test", includeSubdomains: true, path: "/", secure: false, expires: FUTURE, name: "session", value: "abc", httpOnly: false },
      { domain: "files.example.test", includeSubdomains: false, path: "/private", secure: true, expires: undefined, name: "token", value: "x=y", httpOnly: true },
      { domain: "example.test", includeSubdomains: false, path: "/", secure: false, expires: undefined, name: "empty", value: "", httpOnly: false },
    ]);
  });

  it.each<[string, RegExp]>([
    ["a.test TRUE / FALSE 0 n v", /line 1: expected 7 tab-separated fields .* found 1$/],
    [line("a.test", "YES", "/", "FALSE", 0, "n", "v"), /line 1: the subdomains field must be TRUE or FALSE, found "YES"$/],
    [line("a.test", "TRUE", "/", "maybe", 0, "n", "v"), /line 1: the secure field must be TRUE or FALSE/],
    [line("a.test", "TRUE", "/", "FALSE", "soon", "n", "v"), /line 1: the expiry must be a Unix time in seconds, found "soon"$/],
    [line("a.test", "TRUE", "nopath", "FALSE", 0, "n", "v"), /line 1: the path must start with "\/"$/],
    [`# c\n${line("", "TRUE", "/", "FALSE", 0, "n", "v")}`, /line 2: the domain is empty$/],
  ])("refuses a bad line with file and line: %j", (text, message) => {
    expect(() => parseCookiesTxt(text, "c.txt")).toThrow(UsageError);
    expect(() => parseCookiesTxt(text, "c.txt")).toThrow(message);
  });

  it("never quotes a cookie value in an error", () => {
    expect(() => parseCookiesTxt(line("a.test", "TRUE", "/", "FALSE", 0, "n", "secret-value", "extra"), "c.txt")).toThrow(
      /^(?!.*secret-value)/,
    );
  });
});

async function jarFrom(...lines: string[]) {
  return cookieJarCredentials(await createCookieJar(parseCookiesTxt(lines.join("\n"), "c.txt")));
}

describe("cookie jar from cookies.txt", () => {
  it("sends a host-only cookie to its host alone, a domain cookie to subdomains too", async () => {
    const jar = await jarFrom(line("a.test", "FALSE", "/", "FALSE", FUTURE, "host", "1"), line(".b.test", "TRUE", "/", "FALSE", FUTURE, "dom", "2"));
    expect(jar.headersFor(new URL("http://a.test/f"))).toEqual({ cookie: "host=1" });
    expect(jar.headersFor(new URL("http://sub.a.test/f"))).toEqual({});
    expect(jar.headersFor(new URL("http://b.test/f"))).toEqual({ cookie: "dom=2" });
    expect(jar.headersFor(new URL("http://deep.sub.b.test/f"))).toEqual({ cookie: "dom=2" });
    expect(jar.headersFor(new URL("http://notb.test/f"))).toEqual({});
  });

  it("sends a cookie only under its path", async () => {
    const jar = await jarFrom(line("a.test", "FALSE", "/private", "FALSE", FUTURE, "p", "1"));
    expect(jar.headersFor(new URL("http://a.test/private/f"))).toEqual({ cookie: "p=1" });
    expect(jar.headersFor(new URL("http://a.test/private"))).toEqual({ cookie: "p=1" });
    expect(jar.headersFor(new URL("http://a.test/privateer"))).toEqual({});
    expect(jar.headersFor(new URL("http://a.test/public"))).toEqual({});
  });

  it("sends a secure cookie over HTTPS only, even to loopback", async () => {
    const jar = await jarFrom(line("127.0.0.1", "FALSE", "/", "TRUE", FUTURE, "s", "1"), line("a.test", "FALSE", "/", "TRUE", FUTURE, "s", "2"));
    expect(jar.headersFor(new URL("http://127.0.0.1:8080/f"))).toEqual({});
    expect(jar.headersFor(new URL("https://127.0.0.1:8443/f"))).toEqual({ cookie: "s=1" });
    expect(jar.headersFor(new URL("http://a.test/f"))).toEqual({});
    expect(jar.headersFor(new URL("https://a.test/f"))).toEqual({ cookie: "s=2" });
  });

  it("drops expired cookies and keeps session cookies", async () => {
    const jar = await jarFrom(line("a.test", "FALSE", "/", "FALSE", PAST, "old", "1"), line("a.test", "FALSE", "/", "FALSE", 0, "session", "2"));
    expect(jar.headersFor(new URL("http://a.test/f"))).toEqual({ cookie: "session=2" });
  });

  it("keeps what a response sets, for that host only, and lets a later Set-Cookie replace or expire it", async () => {
    const jar = await jarFrom();
    jar.onResponse(new URL("http://login.a.test/signin"), { "set-cookie": ["sid=42; Path=/; Domain=a.test", "local=1"] });
    expect(jar.headersFor(new URL("http://files.a.test/big.iso"))).toEqual({ cookie: "sid=42" });
    expect(jar.headersFor(new URL("http://login.a.test/other"))).toEqual({ cookie: "sid=42; local=1" });
    expect(jar.headersFor(new URL("http://b.test/"))).toEqual({});
    jar.onResponse(new URL("http://a.test/"), { "set-cookie": "sid=43; Domain=a.test; Path=/" });
    expect(jar.headersFor(new URL("http://files.a.test/big.iso"))).toEqual({ cookie: "sid=43" });
    jar.onResponse(new URL("http://a.test/"), { "set-cookie": "sid=; Domain=a.test; Path=/; Max-Age=0" });
    expect(jar.headersFor(new URL("http://files.a.test/big.iso"))).toEqual({});
  });

  it("ignores cookies a server may not set: another domain, a public suffix, garbage", async () => {
    const jar = await jarFrom();
    jar.onResponse(new URL("http://a.test/"), { "set-cookie": ["x=1; Domain=b.test", "y=2; Domain=com", "=;;;"] });
    jar.onResponse(new URL("http://shop.example.com/"), { "set-cookie": "z=3; Domain=com" });
    expect(jar.headersFor(new URL("http://b.test/"))).toEqual({});
    expect(jar.headersFor(new URL("http://other.com/"))).toEqual({});
    expect(jar.headersFor(new URL("http://a.test/"))).toEqual({});
  });
});

/**
 * src/options.ts: the caller's options checked once and turned into Settings. Pure:
 * no socket, no file; the environment is passed in where options.ts lets it be.
 */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { systemClock } from "../src/clock.js";
import { UsageError } from "../src/errors.js";
import { HostLimits } from "../src/host-limits.js";
import { checkSharedLimits, DEFAULTS, parseHttpUrl, resolveSettings, type InternalOptions } from "../src/options.js";
import type { ProgressEvent } from "../src/types.js";
import { FakeClock } from "./support/fake-clock.js";

const URL_TEXT = "http://127.0.0.1:8080/dir/f.bin";
const HOST = "127.0.0.1:8080";
const HEX = "ab".repeat(32);
/** No proxy variables: the machine's own never reach a test. */
const NO_ENV = {};

function settings(options: InternalOptions = {}, mirrors: readonly string[] = [], url = URL_TEXT) {
  return resolveSettings(url, mirrors, { environment: NO_ENV, ...options });
}

function basic(userColonPassword: string): string {
  return `Basic ${Buffer.from(userColonPassword, "utf8").toString("base64")}`;
}

describe("defaults", () => {
  it("are those README's table of download options gives", () => {
    expect(DEFAULTS).toEqual({ connections: 8, minSplit: 4 * 1024 * 1024, retries: 5, timeout: 30 });
  });

  it("fill every setting the caller left out", () => {
    const got = settings();
    expect(got).toMatchObject({
      url: URL_TEXT,
      shownUrl: URL_TEXT,
      shownUserinfo: undefined,
      mirrors: [],
      userOrigin: "http://127.0.0.1:8080",
      dir: resolve("."),
      output: undefined,
      connections: 8,
      minSplit: 4 * 1024 * 1024,
      retries: 5,
      timeoutMs: 30_000,
      checksum: undefined,
      checksumList: undefined,
      cache: undefined,
      ifChanged: false,
      force: false,
      continue: false,
      headers: {},
      userAgent: undefined,
      restartOnChange: true,
      noHedge: false,
      rateLimiter: undefined,
      proxies: { http: undefined, https: undefined, bypass: [] },
    });
    expect(got.mirrorCredentials.size).toBe(0);
    expect(got.clock).toBe(systemClock);
    // 16 per host by default (README: "16, or `connections` when larger").
    expect(got.hostLimits.limit(HOST)).toBe(16);
  });
});

describe("bounds: each option's message names the library option, what it allows and what it got", () => {
  // [option, values accepted (the edges), values refused, the message before ", not <value>"]
  const bounds: [keyof InternalOptions, number[], number[], string][] = [
    ["connections", [1, 64], [0, 65, 2.5, -1, Number.NaN, Number.POSITIVE_INFINITY], "connections must be a whole number from 1 to 64"],
    ["retries", [0, 1000], [-1, 1001, 0.5, Number.NaN], "retries must be a whole number from 0 to 1000"],
    ["minSplit", [1, Number.MAX_SAFE_INTEGER], [0, -4, 1.5, 2 ** 53, Number.POSITIVE_INFINITY], "minSplit must be at least 1 byte"],
    ["timeout", [0.001, 0.5, 86_400], [0, -1, Number.NaN, Number.POSITIVE_INFINITY], "timeout must be a number of seconds greater than 0"],
    ["limitRate", [0.5, 1, 1e12], [0, -5, Number.NaN, Number.POSITIVE_INFINITY], "limitRate must be a number of bytes per second greater than 0"],
    ["maxConnectionsPerHost", [1, 1000], [0, -1, 1.5, Number.NaN], "maxConnectionsPerHost must be a whole number 1 or more"],
  ];

  describe.each(bounds)("%s", (option, accepted, refused, message) => {
    it.each(accepted)("takes %s", (value) => {
      expect(() => settings({ [option]: value })).not.toThrow();
    });

    it.each(refused)("refuses %s with a UsageError", (value) => {
      expect(() => settings({ [option]: value })).toThrow(new UsageError(`${message}, not ${value}`));
    });
  });

  it("checkSharedLimits checks the two limits a batch shares, with the same messages", () => {
    expect(() => checkSharedLimits({ limitRate: 100, maxConnectionsPerHost: 2 })).not.toThrow();
    expect(() => checkSharedLimits({})).not.toThrow();
    expect(() => checkSharedLimits({ limitRate: 0 })).toThrow(new UsageError("limitRate must be a number of bytes per second greater than 0, not 0"));
    expect(() => checkSharedLimits({ maxConnectionsPerHost: 0 })).toThrow(new UsageError("maxConnectionsPerHost must be a whole number 1 or more, not 0"));
  });
});

describe("how options become settings", () => {
  it("keeps the numbers given, the timeout in milliseconds", () => {
    expect(settings({ connections: 3, minSplit: 1024, retries: 0, timeout: 2.5 })).toMatchObject({
      connections: 3,
      minSplit: 1024,
      retries: 0,
      timeoutMs: 2500,
    });
  });

  it.each([
    [0.0004, 1],
    [0.0015, 2],
    [0.07, 70],
  ])("a timeout of %s s is %s ms: never 0, which would time out every request at once", (timeout, ms) => {
    expect(settings({ timeout }).timeoutMs).toBe(ms);
  });

  it("resolves `output` against the current directory (not `dir`) and `dir` itself", () => {
    const got = settings({ dir: "downloads", output: "sub/out.bin" });
    expect(got.dir).toBe(resolve("downloads"));
    expect(got.output).toBe(resolve("sub/out.bin"));
  });

  it("passes the switches through", () => {
    expect(settings({ ifChanged: true, restartOnChange: false, noHedge: true, userAgent: "mirror-sync/2.0" })).toMatchObject({
      ifChanged: true,
      restartOnChange: false,
      noHedge: true,
      userAgent: "mirror-sync/2.0",
    });
    expect(settings({ force: true })).toMatchObject({ force: true, continue: false });
    expect(settings({ continue: true })).toMatchObject({ force: false, continue: true });
  });

  it("caps connections per host at 16, or `connections` when larger, or `maxConnectionsPerHost`; a shared HostLimits is kept", () => {
    expect(settings({ connections: 32 }).hostLimits.limit(HOST)).toBe(32);
    expect(settings({ connections: 4 }).hostLimits.limit(HOST)).toBe(16);
    expect(settings({ connections: 32, maxConnectionsPerHost: 3 }).hostLimits.limit(HOST)).toBe(3);
    const shared = new HostLimits(5);
    expect(settings({ hostLimits: shared, maxConnectionsPerHost: 9 }).hostLimits).toBe(shared);
  });

  it("builds a rate limiter on the download's clock from `limitRate`; a shared one is kept", async () => {
    const clock = new FakeClock({ instantUpToMs: 10_000 });
    const got = settings({ limitRate: 1000, clock });
    expect(got.clock).toBe(clock);
    // The bucket starts empty: 1000 bytes at 1000 B/s are a second's wait, slept on this clock.
    await got.rateLimiter!.take(1000);
    expect(clock.sleeps.reduce((sum, ms) => sum + ms, 0)).toBe(1000);
    const shared = got.rateLimiter!;
    expect(settings({ rateLimiter: shared, limitRate: 5 }).rateLimiter).toBe(shared);
  });

  it("reads `checksum` as a string or as { algorithm, hex }, the hex in lower case", () => {
    expect(settings({ checksum: `sha256=${HEX.toUpperCase()}` }).checksum).toEqual({ algorithm: "sha256", hex: HEX, accepted: [HEX] });
    expect(settings({ checksum: { algorithm: "sha256", hex: HEX.toUpperCase() } }).checksum).toEqual({ algorithm: "sha256", hex: HEX, accepted: [HEX] });
    expect(() => settings({ checksum: "sha256=abc" })).toThrow(UsageError);
    expect(() => settings({ checksum: { algorithm: "sha256", hex: "abc" } })).toThrow(UsageError);
  });

  describe("a checksum file's entry", () => {
    const checksumList = { source: "SHA256SUMS", entries: [{ algorithm: "sha256" as const, hex: HEX, name: "f.bin", line: 1 }, { algorithm: "sha256" as const, hex: "cd".repeat(32), name: "out.bin", line: 2 }] };

    it("is found at once when the output's name is known: `output`", () => {
      const got = settings({ checksumList, output: "out.bin" });
      expect(got.checksum?.hex).toBe("cd".repeat(32));
      expect(got.checksumList).toBeUndefined();
    });

    it.each([
      ["streaming", { streaming: true }],
      ["extract", { extract: "unpacked" }],
    ] as const)("is found by the URL's name for %s (nothing names the file later)", (_name, options) => {
      const got = settings({ checksumList, ...options });
      expect(got.checksum?.hex).toBe(HEX);
      expect(got.checksumList).toBeUndefined();
    });

    it("waits for the server's name when only it can name the output", () => {
      const got = settings({ checksumList });
      expect(got.checksum).toBeUndefined();
      expect(got.checksumList).toBe(checksumList);
    });

    it("falls back on the URL's name, and refuses when the file lists neither", () => {
      expect(settings({ checksumList, output: "other.bin" }).checksum?.hex).toBe(HEX);
      expect(() => settings({ checksumList, output: "other.bin" }, [], "http://127.0.0.1:8080/g.bin")).toThrow(
        new UsageError('SHA256SUMS has no checksum for "other.bin" or "g.bin"; name the output as the file lists it (-o), or check the file'),
      );
    });
  });

  it("takes `cache: true` as the default directory and a path against the current directory", () => {
    const xdg = process.env["XDG_CACHE_HOME"];
    const root = xdg !== undefined && xdg.startsWith("/") ? xdg : join(homedir(), ".cache");
    expect(settings({ cache: true }).cache).toBe(join(root, "rangeget"));
    expect(settings({ cache: "cache-dir" }).cache).toBe(resolve("cache-dir"));
  });

  it("copies the user's headers: the caller's object is never written to", () => {
    const headers = { "X-Token": "t" };
    const got = settings({ headers }, [], "http://alice:pw@127.0.0.1:8080/f.bin");
    expect(got.headers).toEqual({ "X-Token": "t", authorization: basic("alice:pw") });
    expect(headers).toEqual({ "X-Token": "t" });
  });

  it("routes through `proxy`, else the environment given; `\"\"` is no proxy, `noProxy` replaces NO_PROXY", () => {
    const env = { http_proxy: "http://127.0.0.1:3128", NO_PROXY: "example.org" };
    const fromEnv = settings({ environment: env });
    expect(fromEnv.proxies.http?.shown).toBe("http://127.0.0.1:3128");
    expect(fromEnv.proxies.https?.shown).toBe("http://127.0.0.1:3128");
    expect(fromEnv.proxies.bypass).toHaveLength(1);
    const given = settings({ environment: env, proxy: "socks5://127.0.0.1:1080", noProxy: "a.test,b.test" });
    expect(given.proxies.http?.shown).toBe("socks5://127.0.0.1:1080");
    expect(given.proxies.bypass).toHaveLength(2);
    expect(settings({ environment: env, proxy: "" }).proxies).toMatchObject({ http: undefined, https: undefined });
  });

  it("feeds onProgress's snapshots to onEvent as progress events, and passes onProgress alone untouched", () => {
    const seen: ProgressEvent[] = [];
    const events: unknown[] = [];
    const onProgress = (progress: ProgressEvent) => seen.push(progress);
    expect(settings({ onProgress }).onProgress).toBe(onProgress);
    const got = settings({ onProgress, onEvent: (event) => events.push(event), clock: new FakeClock() });
    const snapshot = { path: "/tmp/f.bin", bytesDone: 10, size: 100, bytesPerSecond: 5, activeConnections: 1 };
    got.onProgress!(snapshot);
    expect(seen).toEqual([snapshot]);
    expect(events).toEqual([expect.objectContaining({ event: "progress", bytesDone: 10, size: 100 })]);
  });

  it("gives warnings to `onWarning`", () => {
    const warnings: string[] = [];
    settings({ onWarning: (message) => warnings.push(message) }).warn("careful");
    expect(warnings).toEqual(["careful"]);
  });
});

describe("secrets: a password is sent, never shown", () => {
  const withPassword = "http://alice:s3cret@127.0.0.1:8080/f.bin";

  it("takes user:password@ out of the URL into Basic auth for its origin, and shows user:***@", () => {
    const got = settings({}, [], withPassword);
    expect(got).toMatchObject({
      url: "http://127.0.0.1:8080/f.bin",
      shownUrl: "http://alice:***@127.0.0.1:8080/f.bin",
      shownUserinfo: "alice:***",
      userOrigin: "http://127.0.0.1:8080",
      headers: { authorization: basic("alice:s3cret") },
    });
  });

  it("decodes a percent-encoded password for sending; a user without a password is shown as typed", () => {
    expect(settings({}, [], "http://alice:p%40ss@127.0.0.1:8080/f.bin").headers["authorization"]).toBe(basic("alice:p@ss"));
    const userOnly = settings({}, [], "http://alice@127.0.0.1:8080/f.bin");
    expect(userOnly).toMatchObject({ shownUrl: "http://alice@127.0.0.1:8080/f.bin", shownUserinfo: "alice", headers: { authorization: basic("alice:") } });
  });

  it("lets an Authorization given in `headers` win over the URL's, whatever its case", () => {
    const got = settings({ headers: { AUTHORIZATION: "Bearer token" } }, [], withPassword);
    expect(got.headers).toEqual({ AUTHORIZATION: "Bearer token" });
  });

  it("keeps each mirror's credentials for its own origin only, the first per origin, and requests the mirrors without them", () => {
    const got = settings({}, [
      "http://carol:m1rr0r@127.0.0.1:9090/a/f.bin",
      "http://dave:other@127.0.0.1:9090/b/f.bin",
      "http://127.0.0.1:9191/f.bin",
    ]);
    expect(got.mirrors).toEqual(["http://127.0.0.1:9090/a/f.bin", "http://127.0.0.1:9090/b/f.bin", "http://127.0.0.1:9191/f.bin"]);
    expect([...got.mirrorCredentials]).toEqual([["http://127.0.0.1:9090", { authorization: basic("carol:m1rr0r"), shownUserinfo: "carol:***" }]]);
    // The URL's own headers carry no mirror's secret.
    expect(got.headers).toEqual({});
  });

  it("shows no password anywhere a setting may be shown", () => {
    const got = settings({}, ["http://carol:m1rr0r@127.0.0.1:9090/f.bin"], withPassword);
    const shown = JSON.stringify([got.url, got.shownUrl, got.shownUserinfo, got.mirrors, [...got.mirrorCredentials.values()].map((c) => c.shownUserinfo)]);
    expect(shown).not.toContain("s3cret");
    expect(shown).not.toContain("m1rr0r");
  });

  it.each([
    ["ftp://bob:hunter2@127.0.0.1/f", 'is not an http or https URL'],
    ["http://bob:hunter2@127.0.0.1:99999/f", "is not a URL"],
  ])("redacts the password of a refused URL %s", (url, why) => {
    expect(() => settings({}, [], url)).toThrow(UsageError);
    expect(() => settings({}, [], url)).toThrow(/bob:\*\*\*@/);
    expect(() => settings({}, [], url)).toThrow(why);
    expect(() => settings({}, [], url)).not.toThrow(/hunter2/);
  });

  it("redacts the password of a refused proxy", () => {
    expect(() => settings({ proxy: "ftp://pu:pr0xy@127.0.0.1:21" })).toThrow(/pu:\*\*\*@/);
    expect(() => settings({ proxy: "ftp://pu:pr0xy@127.0.0.1:21" })).not.toThrow(/pr0xy/);
  });
});

describe("refusals: a UsageError before any connection", () => {
  it.each([
    ["127.0.0.1:8080/f.bin", '"127.0.0.1:8080/f.bin" has no scheme; add https:// (or http://) in front of it'],
    ["example.com/f.bin", '"example.com/f.bin" has no scheme; add https:// (or http://) in front of it'],
    ["localhost:8080/f", '"localhost:8080/f" has no scheme; add https:// (or http://) in front of it'],
    ["not a url", '"not a url" is not a URL; give an absolute http:// or https:// URL'],
    ["ftp://127.0.0.1/f.bin", '"ftp://127.0.0.1/f.bin" is not an http or https URL (rangeget speaks HTTP only)'],
    ["file:///etc/passwd", '"file:///etc/passwd" is not an http or https URL (rangeget speaks HTTP only)'],
  ])("the URL %s", (url, message) => {
    expect(() => parseHttpUrl(url)).toThrow(new UsageError(message));
    expect(() => settings({}, [], url)).toThrow(new UsageError(message));
  });

  it("takes http and https URLs as they are", () => {
    expect(parseHttpUrl("https://127.0.0.1/f.bin").href).toBe("https://127.0.0.1/f.bin");
    expect(parseHttpUrl("HTTP://127.0.0.1/f.bin").protocol).toBe("http:");
  });

  it("a mirror's URL, by the same rules", () => {
    expect(() => settings({}, ["127.0.0.1:9090/f.bin"])).toThrow(new UsageError('"127.0.0.1:9090/f.bin" has no scheme; add https:// (or http://) in front of it'));
  });

  it.each<[string, InternalOptions, string]>([
    ["continue with force", { continue: true, force: true }, "`continue` keeps a partial output and `force` discards it; give one of them"],
    ["checksum with checksumFile", { checksum: `sha256=${HEX}`, checksumFile: "SHA256SUMS" }, "checksum and checksumFile both give the digest to verify; give one of them"],
    ["checksum with a read checksum file", { checksum: `sha256=${HEX}`, checksumList: { source: "SHA256SUMS", entries: [] } }, "checksum and checksumFile both give the digest to verify; give one of them"],
    ["cache with downloadStream", { cache: true, streaming: true }, "cache keeps finished files; it cannot serve downloadStream or extract"],
    ["cache with extract", { cache: "c", extract: "out" }, "cache keeps finished files; it cannot serve downloadStream or extract"],
    ["an empty cache", { cache: "" }, 'cache must be a directory or true, not ""'],
    ["a blank cache", { cache: "  " }, 'cache must be a directory or true, not "  "'],
    ["a cache that is no path", { cache: 5 as unknown as string }, "cache must be a directory or true, not 5"],
    ["a proxy of a scheme rangeget does not speak, naming the option", { proxy: "ftp://127.0.0.1:21" }, '`proxy`: "ftp://127.0.0.1:21" is not a proxy URL rangeget speaks: use http://, https://, socks5:// or socks5h://'],
    ["a proxy variable of such a scheme", { environment: { https_proxy: "socks4://127.0.0.1:1080" } }, 'environment variable https_proxy: "socks4://127.0.0.1:1080" is not a proxy URL rangeget speaks: use http://, https://, socks5:// or socks5h:// (SOCKS4 is not supported; SOCKS5 proxies speak socks5:// too)'],
  ])("%s", (_name, options, message) => {
    expect(() => resolveSettings(URL_TEXT, [], { environment: NO_ENV, ...options })).toThrow(new UsageError(message));
  });
});

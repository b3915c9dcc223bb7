import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { UsageError } from "../src/errors.js";
import { netrcCredentials, netrcLoginFor, netrcPermissionWarning, parseNetrc } from "../src/netrc.js";

const basic = (login: string, password: string) => `Basic ${Buffer.from(`${login}:${password}`).toString("base64")}`;

describe("parseNetrc", () => {
  it("reads machine entries on one line or spread over several, and default", () => {
    const netrc = parseNetrc(
      "machine a.test login alice password secret1\n" +
        "machine b.test\n  login bob\n  password secret2\n  account ignored\n" +
        "default login anonymous password guest\n",
      "~/.netrc",
    );
    expect(netrc.machines).toEqual([
      { machine: "a.test", login: "alice", password: "secret1" },
      { machine: "b.test", login: "bob", password: "secret2" },
    ]);
    expect(netrc.default).toEqual({ login: "anonymous", password: "guest" });
  });

  it("skips a macdef body up to the blank line, whatever it holds", () => {
    const netrc = parseNetrc(
      "machine a.test login alice password one\n" +
        "macdef init\n" +
        "cd /pub\n" +
        "machine evil.test login mallory password stolen\n" +
        "\n" +
        "machine b.test login bob password two\n",
      "f",
    );
    expect(netrc.machines.map((entry) => entry.machine)).toEqual(["a.test", "b.test"]);
  });

  it("takes a macdef body that ends the file, and a blank line made of spaces or CRLF", () => {
    expect(parseNetrc("machine a.test login a password p\nmacdef m\nls\n", "f").machines).toHaveLength(1);
    expect(parseNetrc("macdef m\r\nls\r\n\r\nmachine a.test login a password p\r\n", "f").machines).toEqual([
      { machine: "a.test", login: "a", password: "p" },
    ]);
    expect(parseNetrc("macdef m\nls\n   \nmachine a.test login a password p\n", "f").machines).toHaveLength(1);
  });

  it("reads quoted tokens with spaces and escapes", () => {
    const netrc = parseNetrc('machine "a.test" login "alice smith" password "p a\\"s\\\\s"\n', "f");
    expect(netrc.machines).toEqual([{ machine: "a.test", login: "alice smith", password: 'p a"s\\s' }]);
  });

  it("skips comments, and keywords of other tools with their values", () => {
    const netrc = parseNetrc("# work\nmachine a.test # the mirror\n port 8080 protocol https login a password p\n", "f");
    expect(netrc.machines).toEqual([{ machine: "a.test", login: "a", password: "p" }]);
  });

  it("keeps an entry without a password (empty password), drops one without a login", () => {
    const netrc = parseNetrc("machine a.test login alice\nmachine b.test password orphan\n", "f");
    expect(netrc.machines).toEqual([{ machine: "a.test", login: "alice", password: "" }]);
  });

  it.each<[string, RegExp]>([
    ["login alice password p\n", /^netrc f line 1: expected "machine" or "default", found "login"$/],
    ["machine a.test login\n", /^netrc f line 1: "login" needs a value$/],
    ["\n\nmachine\n", /^netrc f line 3: "machine" needs a value$/],
    ['machine a.test login "alice\n', /^netrc f line 1: a quoted token has no closing quote$/],
  ])("refuses %j with the line", (text, message) => {
    expect(() => parseNetrc(text, "f")).toThrow(UsageError);
    expect(() => parseNetrc(text, "f")).toThrow(message);
  });

  it("never echoes a stray password in an error", () => {
    expect(() => parseNetrc("hunter2-Secret!\n", "f")).toThrow(/found "…"$/);
  });

  it("reads back any login and password written quoted and escaped", () => {
    const quote = (text: string) => `"${text.replace(/[\\"]/g, (char) => `\\${char}`)}"`;
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.string(), (login, password) => {
        const netrc = parseNetrc(`machine h.test login ${quote(login)} password ${quote(password)}\n`, "f");
        expect(netrc.machines).toEqual([{ machine: "h.test", login, password }]);
      }),
    );
  });
});

describe("netrcLoginFor", () => {
  const netrc = parseNetrc(
    "machine A.Test login first password 1\nmachine a.test login second password 2\nmachine ::1 login six password 6\ndefault login anon password guest\n",
    "f",
  );

  it("matches host names case-insensitively, first entry wins", () => {
    expect(netrcLoginFor(netrc, "a.TEST")).toEqual({ login: "first", password: "1" });
  });

  it("matches an IPv6 literal as the URL writes it, in brackets", () => {
    expect(netrcLoginFor(netrc, "[::1]")).toEqual({ login: "six", password: "6" });
  });

  it("falls back to default, or nothing without one", () => {
    expect(netrcLoginFor(netrc, "other.test")).toEqual({ login: "anon", password: "guest" });
    expect(netrcLoginFor(parseNetrc("machine a.test login a password p", "f"), "other.test")).toBeUndefined();
  });
});

describe("netrcCredentials", () => {
  const source = netrcCredentials(parseNetrc("machine a.test login alice password s3cret\n", "f"));

  it("gives Basic auth to the host named in the netrc only", () => {
    expect(source.headersFor(new URL("https://a.test:8443/file"))).toEqual({ authorization: basic("alice", "s3cret") });
    expect(source.headersFor(new URL("https://b.test/file"))).toEqual({});
  });

  it("gives nothing to a URL that carries its own user name", () => {
    expect(source.headersFor(new URL("https://bob@a.test/file"))).toEqual({});
  });
});

describe("netrcPermissionWarning", () => {
  it("warns when group or others can read or write the file, naming the mode but no secret", () => {
    expect(netrcPermissionWarning("/home/u/.netrc", 0o100600)).toBeUndefined();
    expect(netrcPermissionWarning("/home/u/.netrc", 0o100400)).toBeUndefined();
    expect(netrcPermissionWarning("/home/u/.netrc", 0o100644)).toBe(
      "netrc /home/u/.netrc is open to other users (mode 0644); run chmod 600 /home/u/.netrc",
    );
    expect(netrcPermissionWarning("/n", 0o100640)).toMatch(/mode 0640/);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { redactText, redactUrl, withoutCredentials } from "../src/redact.js";
import { splitUrlCredentials } from "../src/url-credentials.js";

describe("redactUrl", () => {
  it.each([
    ["http://user:p%40ss@host/file", "http://user:***@host/file"],
    ["https://alice:secret@example.com:8443/a?b=c#d", "https://alice:***@example.com:8443/a?b=c#d"],
    ["http://u:p@ss@host/x", "http://u:***@host/x"],
    ["http://user@host/file", "http://user@host/file"],
    ["http://:only-password@host/", "http://:***@host/"],
    ["http://host/file", "http://host/file"],
  ])("%s is shown as %s", (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
  });

  it("redacts a string that is not a URL as text", () => {
    expect(redactUrl("see http://a:b@ not a url")).toBe("see http://a:***@ not a url");
  });
});

describe("redactText", () => {
  it("redacts every URL with a password inside a message or a JSON line", () => {
    const message = 'HTTP 401 from http://user:p%40ss@127.0.0.1:9/f (denied); mirror https://x:y@m/z failed';
    expect(redactText(message)).toBe("HTTP 401 from http://user:***@127.0.0.1:9/f (denied); mirror https://x:***@m/z failed");
    expect(redactText(JSON.stringify({ url: "http://u:pw@h/f" }))).toBe('{"url":"http://u:***@h/f"}');
  });

  it("leaves text without credentials, and times like 10:30@host, alone", () => {
    expect(redactText("http://host:8080/a@b and 10:30@noon")).toBe("http://host:8080/a@b and 10:30@noon");
  });

  it("never leaves a serialised URL's password in the text", () => {
    const part = fc.string({ minLength: 1, maxLength: 12 }).filter((text) => !text.includes("***"));
    fc.assert(
      fc.property(part, part, (user, password) => {
        const url = new URL("http://127.0.0.1/f");
        url.username = user;
        url.password = password;
        const text = `failed: ${url.href}: try again`;
        const redacted = redactText(text);
        expect(redacted).not.toContain(`:${url.password}@`);
        expect(redactUrl(url.href)).not.toContain(`:${url.password}@`);
      }),
    );
  });
});

describe("withoutCredentials", () => {
  it("drops the user name and password and keeps the rest", () => {
    expect(withoutCredentials("http://user:pw@host:81/a?b#c")).toBe("http://host:81/a?b#c");
    expect(withoutCredentials("http://host/a")).toBe("http://host/a");
  });
});

describe("splitUrlCredentials", () => {
  it("turns user:password@ into Basic auth for that origin, percent-decoded (RFC 7617)", () => {
    const split = splitUrlCredentials("http://user:p%40ss@127.0.0.1:8080/file");
    expect(split).toEqual({
      url: "http://127.0.0.1:8080/file",
      origin: "http://127.0.0.1:8080",
      authorization: `Basic ${Buffer.from("user:p@ss").toString("base64")}`,
      shown: "http://user:***@127.0.0.1:8080/file",
      shownUserinfo: "user:***",
    });
  });

  it("encodes a UTF-8 password as UTF-8", () => {
    const split = splitUrlCredentials("http://j%C3%B6rg:%C3%A9t%C3%A9@h/");
    expect(Buffer.from(split.authorization!.slice("Basic ".length), "base64").toString("utf8")).toBe("jörg:été");
  });

  it("sends nothing for a URL without credentials, and an empty password for a user name alone", () => {
    expect(splitUrlCredentials("http://h/f").authorization).toBeUndefined();
    expect(splitUrlCredentials("http://token@h/f").authorization).toBe(`Basic ${Buffer.from("token:").toString("base64")}`);
  });

  it("keeps a malformed escape as typed", () => {
    expect(splitUrlCredentials("http://u:%zz@h/").authorization).toBe(`Basic ${Buffer.from("u:%zz").toString("base64")}`);
  });
});

import path from "node:path";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { chooseFileName, fileNameFromUrl, parseContentDisposition, sanitizeFileName } from "../src/filename.js";

/** Every promise sanitizeFileName makes about its result. */
function expectSafeName(name: string | undefined): void {
  if (name === undefined) return;
  expect(name).not.toBe("");
  expect(name).not.toMatch(/[/\\\u0000-\u001f\u007f-\u009f]/);
  expect(name.startsWith(".")).toBe(false);
  expect(name).not.toBe(".");
  expect(name).not.toBe("..");
  expect(Buffer.byteLength(name, "utf8")).toBeLessThanOrEqual(223);
  const dir = "/srv/downloads";
  expect(path.posix.dirname(path.posix.join(dir, name))).toBe(dir);
  const windowsDir = "C:\\downloads";
  expect(path.win32.dirname(path.win32.join(windowsDir, name))).toBe(windowsDir);
}

/** RFC 8187 encoding: everything but attr-char is percent-encoded UTF-8. */
function encodeExtValue(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// Strings built from the pieces attackers use, so the properties meet them often.
const hostileString = fc
  .array(
    fc.oneof(
      fc.constantFrom("/", "\\", ".", "..", " ", "\u0000", "\u001f", "\u007f", "\u0085", "\u202e", "CON", "nul", "com1",
        "LPT9", ":", "*", "?", '"', "<", ">", "|", "C:", "%2e", "%2F", "\ud800", "\udc00", "€", "😀", ".txt", "a"),
      fc.string({ unit: "binary", maxLength: 3 }),
      fc.string({ unit: "grapheme-ascii", minLength: 100, maxLength: 300 }),
    ),
    { maxLength: 20 },
  )
  .map((parts) => parts.join(""));

describe("parseContentDisposition", () => {
  it.each([
    ['attachment; filename="report.pdf"', "report.pdf"],
    ["attachment; filename=report.pdf", "report.pdf"],
    ['inline; filename="report.pdf"', "report.pdf"],
    ['ATTACHMENT; FILENAME="report.pdf"', "report.pdf"],
    ['attachment;filename="report.pdf"', "report.pdf"],
    ['attachment ;  filename = "report.pdf" ', "report.pdf"],
    ['attachment; filename="report.pdf";', "report.pdf"],
    ['attachment; size=42; filename="report.pdf"; creation-date="Wed, 12 Feb 1997 16:29:51 -0500"', "report.pdf"],
    ['attachment; filename="with \\"quotes\\" and \\\\ backslash.txt"', 'with "quotes" and \\ backslash.txt'],
    ['attachment; filename="a;b=c.txt"', "a;b=c.txt"],
    ['attachment; filename="f\\oo.html"', "foo.html"],
    ["attachment; filename*=UTF-8''%e2%82%ac%20rates", "€ rates"],
    ["attachment; filename*=utf-8''%E2%82%AC%20rates", "€ rates"],
    ["attachment; filename*=UTF-8'en'%e2%82%ac%20rates", "€ rates"],
    ["attachment; filename*=ISO-8859-1''caf%E9.txt", "café.txt"],
    ["attachment; filename*=iso-8859-1'fr'caf%e9.txt", "café.txt"],
  ])("reads %j", (header, expected) => {
    expect(parseContentDisposition(header)).toBe(expected);
  });

  it("prefers filename* over filename, in either order", () => {
    expect(parseContentDisposition(`attachment; filename="EUR rates"; filename*=UTF-8''%e2%82%ac%20rates`)).toBe("€ rates");
    expect(parseContentDisposition(`attachment; filename*=UTF-8''%e2%82%ac%20rates; filename="EUR rates"`)).toBe("€ rates");
  });

  it("falls back to filename when filename* cannot be decoded", () => {
    const fallbacks = [
      "attachment; filename*=UTF-8''%ff%fe; filename=plain.txt",
      "attachment; filename*=KOI8-R''%c1; filename=plain.txt",
      "attachment; filename*=\"UTF-8''quoted.txt\"; filename=plain.txt",
      "attachment; filename*=UTF-8''%zz; filename=plain.txt",
      "attachment; filename*=no-quotes.txt; filename=plain.txt",
    ];
    for (const header of fallbacks) expect(parseContentDisposition(header)).toBe("plain.txt");
  });

  it("reads raw UTF-8 in a plain filename, as browsers do", () => {
    const utf8AsLatin1 = Buffer.from("€ rates.txt", "utf8").toString("latin1");
    expect(parseContentDisposition(`attachment; filename="${utf8AsLatin1}"`)).toBe("€ rates.txt");
    expect(parseContentDisposition('attachment; filename="caf\u00e9.txt"')).toBe("café.txt");
  });

  it("returns the name unsanitized: that is sanitizeFileName's job", () => {
    expect(parseContentDisposition('attachment; filename="../../etc/passwd"')).toBe("../../etc/passwd");
  });

  it.each([
    [null],
    [undefined],
    [""],
    ["attachment"],
    ["inline"],
    ['attachment; filename=""'],
    ["attachment; filename="],
    ['attachment; filename="unterminated'],
    ['attachment; filename="trailing backslash\\'],
    ["attachment; filename=foo bar.txt"],
    ['attachment; filename="a.txt" garbage'],
    ['attachment filename="a.txt"'],
    ['; filename="a.txt"'],
    ['filename="a.txt"'],
    ['attachment; ="a.txt"'],
    ['attachment; filename="a.txt"; filename="b.txt"'],
    ["attachment; filename*=UTF-8''%ff"],
  ])("gives up on %j", (header) => {
    expect(parseContentDisposition(header)).toBeUndefined();
  });

  it("reads back any name sent as filename*", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", minLength: 1 }), (name) => {
        expect(parseContentDisposition(`attachment; filename*=UTF-8''${encodeExtValue(name)}`)).toBe(name);
      }),
    );
  });

  it("reads back any ASCII name sent as a quoted string", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-ascii", minLength: 1 }), (name) => {
        const quoted = `"${name.replace(/["\\]/g, "\\$&")}"`;
        expect(parseContentDisposition(`attachment; filename=${quoted}`)).toBe(name);
      }),
    );
  });
});

describe("sanitizeFileName", () => {
  it.each([
    ["report.pdf", "report.pdf"],
    ["€ rates.txt", "€ rates.txt"],
    ["../../etc/passwd", "passwd"],
    ["/abs/path", "path"],
    ["C:\\win\\x.exe", "x.exe"],
    ["dir\\..\\..\\x.exe", "x.exe"],
    ["a\u0000b\u0007c\u001b[31m.txt", "abc[31m.txt"],
    ["new\nline\r.txt", "newline.txt"],
    ["c1\u0085\u009bcontrols.txt", "c1controls.txt"],
    ["evil\u202etxt.exe", "eviltxt.exe"],
    ['what?<is>"this":|*.txt', "what__is__this____.txt"],
    [".bashrc", "bashrc"],
    ["...hidden", "hidden"],
    ["  spaced  ", "spaced"],
    ["trailing.", "trailing"],
    ["trailing. . .", "trailing"],
    ["CON", "_CON"],
    ["con", "_con"],
    ["con.txt", "_con.txt"],
    ["NUL.tar.gz", "_NUL.tar.gz"],
    ["Com1", "_Com1"],
    ["lpt9.log", "_lpt9.log"],
    ["aux .txt", "_aux .txt"],
    ["COM¹", "_COM¹"],
    ["console.txt", "console.txt"],
    ["CONTRACT", "CONTRACT"],
    ["com10", "com10"],
    ["a\ud800b", "a\ufffdb"],
  ])("turns %j into %j", (name, expected) => {
    expect(sanitizeFileName(name)).toBe(expected);
  });

  it.each([[""], ["."], [".."], ["..."], ["/"], ["a/"], ["dir/.."], ["C:\\win\\"], ["\u0000"], ["  "], [". ."], ["\u202e"]])(
    "finds nothing usable in %j",
    (name) => {
      expect(sanitizeFileName(name)).toBeUndefined();
    },
  );

  it("cuts a 4,000-character name to 223 bytes (room for rangeget's own suffixes) and keeps its extension", () => {
    const name = sanitizeFileName(`${"a".repeat(4000)}.tar.gz`);
    expect(name).toBe(`${"a".repeat(223 - ".tar.gz".length)}.tar.gz`);
  });

  it("never splits a multi-byte character when cutting", () => {
    const name = sanitizeFileName(`${"€".repeat(200)}.txt`) ?? "";
    expect(name.endsWith(".txt")).toBe(true);
    expect(name).toBe(`${"€".repeat(73)}.txt`);
    const emoji = sanitizeFileName("😀".repeat(100)) ?? "";
    expect(emoji).toBe("😀".repeat(55));
  });

  it("drops an extension too long to be one when cutting", () => {
    const name = sanitizeFileName(`x.${"y".repeat(300)}`) ?? "";
    expect(Buffer.byteLength(name)).toBe(223);
    expect(name.startsWith("x.yyy")).toBe(true);
  });

  it("keeps any result safe, whatever the input", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), hostileString), (input) => {
        expectSafeName(sanitizeFileName(input));
      }),
      { numRuns: 2000 },
    );
  });

  it("is idempotent: a safe name stays as it is", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: "binary" }), hostileString), (input) => {
        const once = sanitizeFileName(input);
        if (once !== undefined) expect(sanitizeFileName(once)).toBe(once);
      }),
    );
  });
});

describe("fileNameFromUrl", () => {
  it.each([
    ["https://example.com/files/archive.tar.gz", "archive.tar.gz"],
    ["https://example.com/files/archive.tar.gz?sig=abc#frag", "archive.tar.gz"],
    ["https://example.com/files/dir/", "dir"],
    ["https://example.com/%E2%82%AC%20rates.csv", "€ rates.csv"],
    ["https://example.com/100%25.txt", "100%.txt"],
    ["https://example.com/bad%E2%82.txt", "bad%E2%82.txt"],
    ["https://example.com/half%zzescape.txt", "half%zzescape.txt"],
    ["https://example.com/a%2F..%2F..%2Fetc%2Fpasswd", "passwd"],
    ["https://example.com/%2e%2e", undefined],
    ["https://example.com/..%5C..%5Cx.exe", "x.exe"],
    ["https://example.com/CON", "_CON"],
    ["https://example.com/", undefined],
    ["https://example.com", undefined],
    ["not a url", undefined],
  ])("names %j as %j", (url, expected) => {
    expect(fileNameFromUrl(url)).toBe(expected);
  });

  it("keeps any result safe, whatever the path", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.webUrl({ withQueryParameters: true, withFragments: true }), hostileString.map((p) => `https://h/${p}`)),
        (url) => {
          expectSafeName(fileNameFromUrl(url));
        },
      ),
    );
  });
});

describe("chooseFileName", () => {
  const url = "https://example.com/files/from-url.bin";

  it("uses the server's name when it gives one", () => {
    expect(chooseFileName('attachment; filename="server.bin"', url)).toBe("server.bin");
  });

  it.each([
    ['attachment; filename="../../etc/passwd"', "passwd"],
    ['attachment; filename="/abs/path"', "path"],
    ['attachment; filename="C:\\\\win\\\\x.exe"', "x.exe"],
    ['attachment; filename="C:\\win\\x.exe"', "C_winx.exe"],
    ['attachment; filename="a\u0000b\u0001c.txt"', "abc.txt"],
    ["attachment; filename*=UTF-8''evil%00name%0a.txt", "evilname.txt"],
    ["attachment; filename*=UTF-8''..%2F..%2Fetc%2Fpasswd", "passwd"],
    ['attachment; filename="CON"', "_CON"],
    ['attachment; filename="con.txt"', "_con.txt"],
    ['attachment; filename=".bashrc"', "bashrc"],
  ])("sanitizes the hostile name in %j to %j", (header, expected) => {
    expect(chooseFileName(header, url)).toBe(expected);
  });

  it("cuts a 4,000-character server name to 223 bytes", () => {
    const name = chooseFileName(`attachment; filename="${"n".repeat(4000)}.iso"`, url);
    expect(name).toBe(`${"n".repeat(219)}.iso`);
  });

  it("falls back to the URL when the server's name sanitizes to nothing", () => {
    expect(chooseFileName('attachment; filename=".."', url)).toBe("from-url.bin");
    expect(chooseFileName('attachment; filename="/"', url)).toBe("from-url.bin");
    expect(chooseFileName('attachment; filename="\u0000\u0001"', url)).toBe("from-url.bin");
  });

  it("falls back to the URL when there is no usable header", () => {
    expect(chooseFileName(null, url)).toBe("from-url.bin");
    expect(chooseFileName(undefined, url)).toBe("from-url.bin");
    expect(chooseFileName("attachment", url)).toBe("from-url.bin");
    expect(chooseFileName("garbage;;;", url)).toBe("from-url.bin");
  });

  it('falls back to "download" when neither offers a name', () => {
    expect(chooseFileName(null, "https://example.com/")).toBe("download");
    expect(chooseFileName('attachment; filename=".."', "https://example.com/%2e%2e/")).toBe("download");
  });

  it("always names a file inside the output directory", () => {
    const header = fc.oneof(
      fc.string({ unit: "binary" }),
      hostileString.map((name) => `attachment; filename="${name.replace(/["\\]/g, "\\$&")}"`),
      hostileString.map((name) => `attachment; filename*=UTF-8''${encodeURIComponent(name.replace(/[\ud800-\udfff]/g, ""))}`),
    );
    fc.assert(
      fc.property(header, hostileString, (contentDisposition, urlPath) => {
        const name = chooseFileName(contentDisposition, `https://example.com/${urlPath}`);
        expectSafeName(name);
      }),
      { numRuns: 2000 },
    );
  });
});
